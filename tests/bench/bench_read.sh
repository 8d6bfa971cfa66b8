#!/bin/sh
# Read benchmark: libdiana (diana_dataset_open + 4 values per file, one
# process) against pydicom (dcmread + the same values, one process) and the
# I/O floor (cat > /dev/null), on the same synthetic files in the same run.
# usage: tests/bench/bench_read.sh [BUILD_DIR]      (default: build)
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
meson compile -C "$build" tests/bench/bench-read >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tests/tools/synth.py --out "$tmp/s" --ct 2 --ct-slices 100 --xr 10 --xr-size 2000x2500 >/dev/null
find "$tmp/s" -name '*.dcm' | sort >"$tmp/list"
n=$(wc -l <"$tmp/list")
echo "files: $n synthetic (200 CT 512x512, 10 XR 2000x2500)"
cat $(cat "$tmp/list") >/dev/null   # warm the page cache

t() { /usr/bin/python3 -c 'import time,subprocess,sys; t=time.monotonic(); subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL); print("%.4f"%(time.monotonic()-t))' "$@"; }
best() { b=999; for i in 1 2 3; do x=$(t "$@"); b=$(/usr/bin/python3 -c "print(min($b,$x))"); done; echo "$b"; }

diana=$(best "$build/tests/bench/bench-read" $(cat "$tmp/list"))
pyd=$(best /usr/bin/python3 -c '
import sys, pydicom
for p in sys.argv[1:]:
    ds = pydicom.dcmread(p)
    for k in ("PatientName", "StudyInstanceUID", "SOPInstanceUID", "Rows"):
        str(ds.get(k))
    ds.PixelData
' $(cat "$tmp/list"))
io=$(best sh -c 'cat "$@" >/dev/null' sh $(cat "$tmp/list"))
/usr/bin/python3 - "$n" "$diana" "$pyd" "$io" <<'PY'
import sys
n, d, p, c = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"libdiana  {d:7.3f} s  {n/d:8.0f} files/s")
print(f"pydicom   {p:7.3f} s  {n/p:8.0f} files/s   libdiana is {p/d:.1f}x faster")
print(f"cat       {c:7.3f} s  {n/c:8.0f} files/s   libdiana takes {d/c:.1f}x the I/O floor")
PY
