#!/bin/sh
# De-identification benchmark: `diana anon` against GDCM's gdcmanon
# (PS3.15 E.1.1 mode: -e with a throw-away certificate, one process over the
# folder) and `cp -r` of the same files, on 200 synthetic 512x512 CT slices
# and 20 synthetic 10-MB radiographs, in the same run. See doc/bench-anon.md.
#
# Two like-for-like comparisons, because durability costs the same disk
# writes whoever asks for them:
#   not durable: diana anon --no-sync  vs  gdcmanon -e  and  cp -r
#   durable:     diana anon (default)   vs  gdcmanon -e && sync  and  cp -r && sync
# diana runs with -j 1 and -j NPROC (and -j 4xNPROC when durable).
#
# Protocol: RUNS rounds (default 7), the order of the methods rotated from
# round to round; every run writes into a new folder, after a `sync`
# outside the timing; outputs are removed only at the end of each set (on an
# ext4 without journal, creating files just after deleting many costs a scan
# of the recently deleted inodes, which would fall on whoever runs next).
# Before each run: sync, then a pause (1 s; 2 s for the radiographs): on
# a cloud disk the device is still busy after sync returns, and a run that
# starts at once waits behind it for the inode table blocks it reads.
# Medians and minima of the wall time of the whole command; the fixed
# start-up cost of each program (`diana version`, `gdcmanon --version`) is
# measured too, and the per-file rate without it printed as "steady".
# By hand only (tests/bench/run.sh): never in CI, never with thresholds.
# usage: tests/bench/bench_anon.sh [BUILD_DIR]      (default: build; RUNS=N)
# SPDX-License-Identifier: MIT
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
runs=${RUNS:-7}
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
rm -rf "$tmp/s"
np=$(nproc)
# room for every output of a set, kept to its end
need=$(( 200 * 9 * runs + 500 ))
avail=$(df -Pm "$tmp" | awk 'NR==2 {print $4}')
if [ "$avail" -lt "$need" ]; then
	echo "need ${need} MB free in $tmp for RUNS=$runs (have ${avail}): set RUNS lower"
	exit 1
fi

echo "libdiana bench_anon: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)," \
	"$(df -PT "$tmp" | awk 'NR==2 {print $2}') under $tmp, load $(cut -d' ' -f1-3 /proc/loadavg), RUNS=$runs"
"$diana" version | head -1
gdcmanon --version 2>&1 | head -1

/usr/bin/python3 - "$tmp" "$diana" "$runs" "$np" <<'PY'
import os, shutil, statistics, subprocess, sys, time

tmp, diana, runs, np = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
secret, cert = f"{tmp}/secret", f"{tmp}/cert.pem"


def timed(cmd, settle=0.0):
    # the previous run's data on disk first, then a pause (see the top)
    subprocess.run(["sync"], check=True)
    time.sleep(settle)
    t = time.monotonic()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def startup(cmd, n=15):
    return min(timed(cmd) for _ in range(n))


st_diana = startup(f"'{diana}' version")
st_gdcm = startup("gdcmanon --version")
print(f"start-up (best of 15): diana {st_diana*1000:.1f} ms, gdcmanon {st_gdcm*1000:.1f} ms")

for name, what, settle in (("ct", "200 CT 512x512", 1.0), ("xr", "20 XR 2000x2500 (10 MB)", 2.0)):
    src = f"{tmp}/{name}"
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs]
    n = len(files)
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    for f in files:  # warm the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass
    d = f"'{diana}' anon --secret-file '{secret}'"
    g = f"gdcmanon -e -c '{cert}' -r -i '{src}'"
    methods = [
        ("cp -r", "nd", f"cp -r '{src}' {{out}}", None),
        ("gdcmanon -e", "nd", f"{g} -o {{out}}", st_gdcm),
        ("diana --no-sync -j 1", "nd", f"{d} --no-sync -j 1 -o {{out}} '{src}'", st_diana),
        (f"diana --no-sync -j {np}", "nd", f"{d} --no-sync -j {np} -o {{out}} '{src}'", st_diana),
        ("cp -r && sync", "d", f"cp -r '{src}' {{out}} && sync", None),
        ("gdcmanon -e && sync", "d", f"{g} -o {{out}} && sync", st_gdcm),
        ("diana -j 1", "d", f"{d} -j 1 -o {{out}} '{src}'", st_diana),
        (f"diana -j {np}", "d", f"{d} -j {np} -o {{out}} '{src}'", st_diana),
        (f"diana -j {4*np}", "d", f"{d} -j {4*np} -o {{out}} '{src}'", st_diana),
    ]
    times = {m[0]: [] for m in methods}
    k = 0
    for r in range(runs):
        order = methods[r % len(methods):] + methods[:r % len(methods)]
        for label, _, cmd, _ in order:
            k += 1
            out = f"{tmp}/o-{name}-{k}"
            times[label].append(timed(cmd.replace("{out}", f"'{out}'"), settle=settle))
            got = sum(len(fs) for _, _, fs in os.walk(out))
            if got != n:
                sys.exit(f"{label}: {got} files written, {n} expected")
    # peak memory of one diana run
    out = f"{tmp}/o-{name}-rss"
    rss = subprocess.run(f"/usr/bin/time -f %M {d} --no-sync -j 1 -o '{out}' '{src}' >/dev/null",
                         shell=True, check=True, capture_output=True, text=True).stderr.split()[-1]
    for e in os.listdir(tmp):
        if e.startswith(f"o-{name}-"):
            shutil.rmtree(f"{tmp}/{e}")
    subprocess.run(["sync"], check=True)

    med = {l: statistics.median(v) for l, v in times.items()}
    print(f"\n-- {what}: {n} files, {mb:.0f} MB; median (min) of {runs} runs")
    for label, kind, _, st in methods:
        s, lo = med[label], min(times[label])
        steady = f"  steady {n/(s-st):7.1f} files/s" if st is not None and s > st else ""
        print(f"{label:24s} {s*1000:8.1f} ms ({lo*1000:7.1f})  {n/s:8.1f} files/s  {mb/s:7.1f} MB/s{steady}")
    for kind, gd, cp, title in (("nd", "gdcmanon -e", "cp -r", "not durable"),
                                ("d", "gdcmanon -e && sync", "cp -r && sync", "durable")):
        for label, k2, _, _ in methods:
            if k2 != kind or not label.startswith("diana"):
                continue
            s = med[label]
            print(f"{title:12s} {label:22s} {med[gd]/s:4.2f}x {gd}'s files/s (best runs {min(times[gd])/min(times[label]):4.2f}x);"
                  f" {s/med[cp]:4.2f}x the time of {cp}")
    s1, sg = med[f"diana --no-sync -j {np}"], med["gdcmanon -e"]
    print(f"steady state (start-up taken out), not durable: diana -j {np} {(sg-st_gdcm)/(s1-st_diana):4.2f}x gdcmanon")
    print(f"diana -j 1 peak memory: {int(rss)/1024:.0f} MB")
PY
