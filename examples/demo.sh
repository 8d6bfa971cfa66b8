#!/bin/sh
# libdiana demo on a fresh Debian 12 machine:
#  1. installs what is missing (apt-get) and builds libdiana,
#  2. generates synthetic studies (with fake PHI) and starts a local Orthanc
#     "hospital PACS" and DIANA helper on 127.0.0.1,
#  3. uploads the studies to the PACS, fetches an instance back through
#     libdiana's HTTP layer and prints it as DICOM JSON with `diana dump`,
#  4. stops the servers, and tells where the files are.
# It grows into the full de-identified retrieval demo (`diana pull`).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
. tests/deps.sh

say() { printf '\n== %s\n' "$*"; }

say "checking Debian packages"
diana_ensure_packages $DIANA_BUILD_PACKAGES libcriterion-dev orthanc orthanc-dicomweb dcmtk \
	python3 python3-pydicom python3-numpy curl iproute2

say "building libdiana (build/)"
diana_build build >/dev/null
DIANA=$top/build/examples/cli/diana
"$DIANA" --version

out=${DIANA_DEMO_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/diana-demo-XXXXXX")}
mkdir -p "$out"
say "generating synthetic studies with fake PHI in $out/studies"
/usr/bin/python3 tests/tools/synth.py --out "$out/studies" --ct 2 --ct-slices 10 --xr 3 --xr-size 512x512 >/dev/null
cat "$out/studies/manifest.csv"

say "starting the lab (Orthanc PACS + helper on 127.0.0.1)"
DIANA_BINDSHIM=$top/build/tests/lab/libdiana-bindshim.so
export DIANA_BINDSHIM
lab_env=$(tests/lab/lab.sh start)
eval "$lab_env"
trap 'tests/lab/lab.sh stop >/dev/null 2>&1 || true' EXIT INT TERM
echo "PACS: $DIANA_LAB_PACS_URL (AET $DIANA_LAB_PACS_AET)   helper: $DIANA_LAB_HELPER_URL"

say "uploading the studies to the PACS"
tests/lab/seed.sh "$out/studies"

say "fetching one instance of DIANA-CT-001 back through libdiana"
"$top/build/tests/lab/diana-lab-fetch" DIANA-CT-001 "$out/DIANA-CT-001.dcm"

say "diana dump --json $out/DIANA-CT-001.dcm"
"$DIANA" dump --json "$out/DIANA-CT-001.dcm"

say "stopping the lab"
tests/lab/lab.sh stop >/dev/null
trap - EXIT INT TERM
say "done"
echo "synthetic studies:  $out/studies"
echo "fetched instance:   $out/DIANA-CT-001.dcm"
echo "(the studies carry fake PHI; de-identified retrieval comes with 'diana pull')"
