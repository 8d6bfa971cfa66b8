#!/bin/sh
# De-identification benchmark: `diana anon` (one process; -j 1 and -j 4xNPROC)
# against GDCM's gdcmanon (PS3.15 E.1.1 mode: -e with a throw-away
# certificate, one process over the folder) and `cp -r` of the same files
# (each alone, and followed by `sync`: diana flushes its outputs before it
# exits, so those are the like-for-like references),
# on 200 synthetic 512x512 CT slices and 20 synthetic 10-MB radiographs, in
# the same run. Prints files/s, MB/s, ratios and the peak memory of diana.
# By hand only (tests/bench/run.sh): never in CI, never with thresholds.
# usage: tests/bench/bench_anon.sh [BUILD_DIR]      (default: build)
# SPDX-License-Identifier: MIT
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
meson compile -C "$build" examples/cli/diana >/dev/null
diana=$PWD/$build/examples/cli/diana
command -v gdcmanon >/dev/null || { echo "gdcmanon missing (apt-get install libgdcm-tools)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077
head -c 48 /dev/urandom | base64 >"$tmp/secret"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
	-subj /CN=diana-bench -days 2 2>/dev/null

/usr/bin/python3 tests/tools/synth.py --out "$tmp/s" --ct 2 --ct-slices 100 --xr 20 --xr-size 2000x2500 -q
mkdir -p "$tmp/ct" "$tmp/xr"
mv "$tmp"/s/DIANA-CT-* "$tmp/ct/"
mv "$tmp"/s/DIANA-XR-* "$tmp/xr/"
jobs=$(( $(nproc) * 4 ))

t() { /usr/bin/python3 -c 'import time,subprocess,sys; t=time.monotonic(); subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL); print("%.4f"%(time.monotonic()-t))' "$@"; }
# best of three, output folder removed before each run (outside the timing)
best() {
	out=$1; shift
	b=999
	for i in 1 2 3; do
		rm -rf "$out"
		x=$(t "$@")
		b=$(/usr/bin/python3 -c "print(min($b,$x))")
	done
	echo "$b"
}

for set in ct xr; do
	in=$tmp/$set
	n=$(find "$in" -type f | wc -l)
	mb=$(du -sm --apparent-size "$in" | cut -f1)
	cat $(find "$in" -type f) >/dev/null # warm the page cache
	cp_s=$(best "$tmp/o-cp" cp -r "$in" "$tmp/o-cp")
	cps_s=$(best "$tmp/o-cp" sh -c 'cp -r "$1" "$2" && sync' sh "$in" "$tmp/o-cp")
	gdcm_s=$(best "$tmp/o-gdcm" gdcmanon -e -c "$tmp/cert.pem" -r -i "$in" -o "$tmp/o-gdcm")
	gdcms_s=$(best "$tmp/o-gdcm" sh -c 'gdcmanon -e -c "$1" -r -i "$2" -o "$3" && sync' sh "$tmp/cert.pem" \
		"$in" "$tmp/o-gdcm")
	d1_s=$(best "$tmp/o-d1" "$diana" anon --secret-file "$tmp/secret" -j 1 -o "$tmp/o-d1" "$in")
	dn_s=$(best "$tmp/o-dn" "$diana" anon --secret-file "$tmp/secret" -j "$jobs" -o "$tmp/o-dn" "$in")
	rss=$( (/usr/bin/time -f %M "$diana" anon --secret-file "$tmp/secret" -j 1 -o "$tmp/o-rss" "$in" \
		>/dev/null) 2>&1 | tail -1)
	rm -rf "$tmp"/o-*
	/usr/bin/python3 - "$set" "$n" "$mb" "$cp_s" "$gdcm_s" "$d1_s" "$dn_s" "$jobs" "$rss" "$cps_s" "$gdcms_s" <<'PY'
import sys
name, n, mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cp, gd, d1, dn = map(float, sys.argv[4:8])
jobs, rss = sys.argv[8], int(sys.argv[9]) / 1024.0
cps, gds = float(sys.argv[10]), float(sys.argv[11])
what = "200 CT 512x512" if name == "ct" else "20 XR 2000x2500 (10 MB)"
print(f"-- {what}: {n} files, {mb:.0f} MB")
for label, s in (("cp -r", cp), ("cp -r && sync", cps), ("gdcmanon -e", gd), ("gdcmanon -e && sync", gds), ("diana anon -j 1", d1), (f"diana anon -j {jobs}", dn)):
    print(f"{label:20s} {s:7.3f} s  {n/s:8.1f} files/s  {mb/s:8.1f} MB/s")
# diana flushes its outputs to disk before it exits (one syncfs): the
# durable references are "cp -r && sync" and "gdcmanon -e && sync"
for label, d in (("-j 1", d1), (f"-j {jobs}", dn)):
    print(f"diana {label}: {gd/d:.1f}x gdcmanon's files/s ({gds/d:.1f}x gdcmanon && sync);"
          f" {d/cp:.1f}x the time of cp -r ({d/cps:.1f}x cp -r && sync)")
print(f"diana -j 1 peak memory: {rss:.0f} MB")
PY
done
