#!/bin/sh
# tests/dimse/bench/build.sh [OUTDIR] - build the two toolkit probes of toolkits.sh
# (not part of the meson build: they link GDCM's network layer, which libdiana
# does not use). Default OUTDIR: /tmp.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-/tmp}
g++ -O2 -std=c++17 -I/usr/include/gdcm-3.0 "$HERE/bench_gdcm.cc" -o "$OUT/bench_gdcm" \
	-lgdcmMEXD -lgdcmMSFF -lgdcmDSED -lgdcmDICT -lgdcmCommon -lgdcmIOD
g++ -O2 -std=c++17 "$HERE/bench_dcmtk.cc" -o "$OUT/bench_dcmtk" -ldcmnet -ldcmdata -loflog -lofstd
echo "built $OUT/bench_gdcm $OUT/bench_dcmtk"
