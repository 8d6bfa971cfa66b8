#!/bin/sh
# Retrieval benchmark: `diana pull` against the original DIANA flow and DCMTK's
# getscu, side by side in the same run, on a lab of two Orthanc servers
# (tests/lab/with-lab.sh: a "hospital PACS" and the DIANA helper).
#
#   (a) diana pull through the helper (orthanc+http://...?modality=pacs: C-FIND,
#       C-MOVE into the helper, GET /instances/{id}/file one by one),
#       de-identifying (secret file + key file), -j 1 and -j 2
#   (b) the original DIANA flow re-created (../shared/PERF.md): per study, one
#       after another, with curl + jq: C-FIND (POST /modalities/pacs/query),
#       C-MOVE (POST /queries/{id}/retrieve to the helper), POST
#       /studies/{id}/anonymize on the helper, GET /studies/{id}/archive (zip),
#       unzip                                               -> the anchor of (a)
#   (c) DCMTK getscu (C-GET) from the PACS, one process per study, no
#       de-identification (TCP_NODELAY=1)                    -> the floor of (d)
#  (c') the same, with a syncfs (`sync -f`) after each study, as diana pull
#       does before it journals a study: the like-for-like reference of (d)
#   (d) diana pull directly from the PACS (dicom://HOSP_PACS@...?aet=..., C-GET),
#       de-identifying, -j 1 and -j 2
#
# Data (tests/tools/synth.py): 5 CT studies x 100 slices of 512x512 and 20 XR
# studies of one 10-MB image (PERF.md); --quick: 2 CT x 20 slices + 3 XR.
# Each method runs on the CT set, then on the XR set; every run starts with an
# empty helper and an empty output folder, so every run really transfers. The
# methods are interleaved within each of the N runs (default 3) and the table
# gives medians (min-max) of ms per image and diana's CPU time (user+sys) per
# image; ratios are taken between medians of the same runs. Peak RSS of
# `diana pull` (/usr/bin/time -v) for one study against all studies (CT and XR
# in one job). No thresholds: the targets of
# PERF.md are printed beside the numbers.
#
# By hand only (or tests/bench/run.sh); never in CI. The lab is machine-wide
# (one at a time): data is generated before the lab lock is taken.
#
# usage: tests/bench/bench_pull.sh [--quick] [--runs N] [--profile] [BUILD_DIR]
#        (default BUILD_DIR: build; BENCH_PULL_ARGS in the environment is
#        prepended to the arguments, e.g. BENCH_PULL_ARGS=--quick tests/bench/run.sh)
#   --profile  after the runs, `diana pull` of the CT set through the helper
#              (-j 1) with DIANA_DEBUG=1 under strace: time per REST request
#              kind (C-MOVE, GET, DELETE...) and per syncfs; the same with and
#              without --keep-in-helper; and, if perf is installed, where
#              diana's own CPU goes (helper and direct)
# SPDX-License-Identifier: MIT
# shellcheck shell=bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck disable=SC2086
set -- ${BENCH_PULL_ARGS:-} "$@"

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/../.."
SRC=$PWD
quick=0 runs=3 profile=0 inlab=0 build=build
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--runs) runs=$2; shift ;;
	--runs=*) runs=${1#--runs=} ;;
	--profile) profile=1 ;;
	--in-lab) inlab=1 ;;
	-h|--help) sed -n '2,/^# SPDX/p' "$SELF" | sed 's/^# \{0,1\}//; /^SPDX/d'; exit 0 ;;
	-*) echo "bench_pull: unknown option $1" >&2; exit 2 ;;
	*) build=$1 ;;
	esac
	shift
done
PY=/usr/bin/python3

# ------------------------------------------------------------------ outside the lab
if [ "$inlab" = 0 ]; then
	for t in getscu curl jq unzip /usr/bin/time "$PY"; do
		command -v "$t" >/dev/null || { echo "bench_pull: $t missing (see ../shared/LAB.md)"; exit 1; }
	done
	[ -x /usr/sbin/Orthanc ] || { echo "bench_pull: Orthanc missing (apt-get install orthanc)"; exit 1; }
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-pull.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	meson compile -C "$build" examples/cli/diana tests/lab/diana-bindshim >"$tmp/build.log" 2>&1 ||
		{ tail -30 "$tmp/build.log"; echo "bench_pull: build failed"; exit 1; }
	if [ "$quick" = 1 ]; then
		ct=2 slices=20 xr=3
	else
		ct=5 slices=100 xr=20
	fi
	t0=$EPOCHREALTIME
	"$PY" tests/tools/synth.py --out "$tmp/data" --ct "$ct" --ct-slices "$slices" --xr "$xr" -q
	echo "data: $ct CT x $slices slices 512x512, $xr XR 2000x2500 (synth.py, $("$PY" -c \
		"print(round($EPOCHREALTIME-$t0,1))") s)"
	export DIANA_BINDSHIM=$SRC/$build/tests/lab/libdiana-bindshim.so
	export BENCH_PULL_TMP=$tmp
	set +e
	extra=()
	[ "$profile" = 1 ] && extra+=(--profile)
	tests/lab/with-lab.sh bash "$SELF" --in-lab --runs "$runs" "${extra[@]}" "$build"
	rc=$?
	exit $rc
fi

# ------------------------------------------------------------------ inside the lab
tmp=${BENCH_PULL_TMP:?}
diana=$SRC/$build/examples/cli/diana
H=$DIANA_LAB_HELPER_URL P=$DIANA_LAB_PACS_URL
HA="$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD"
PA="$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD"
BENCH_AET=DIANA_BENCH
HELPER_URI="orthanc+http://$HA@127.0.0.1:${H##*:}?modality=$DIANA_LAB_PACS_MODALITY"
DIRECT_URI="dicom://$DIANA_LAB_PACS_AET@127.0.0.1:$DIANA_LAB_PACS_DICOM_PORT?aet=$BENCH_AET"
res=$tmp/results.tsv   # run set method seconds images rss_kb
: >"$res"
stages=$tmp/stages.tsv # run set find move anonymize zip unzip (seconds, summed over studies)
: >"$stages"

now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

echo "seeding the PACS..."
tests/lab/seed.sh -q "$tmp/data" >/dev/null
# the PACS answers C-GET only from AE titles it knows (DicomAlwaysAllowGet false)
curl -sSf -u "$PA" -X PUT "$P/modalities/bench" \
	-d "{\"AET\":\"$BENCH_AET\",\"Host\":\"127.0.0.1\",\"Port\":11112}" >/dev/null

umask 077
head -c 48 /dev/urandom | base64 >"$tmp/secret"
chmod 0600 "$tmp/secret"
for set in CT XR; do
	awk -F, -v m="-$set-" 'NR > 1 && index($1, m) { print $1 }' "$tmp/data/manifest.csv" >"$tmp/acc-$set"
	awk -F, -v m="-$set-" 'NR > 1 && index($1, m) { print $1, $3, $4 }' "$tmp/data/manifest.csv" \
		>"$tmp/studies-$set"
done
cat "$tmp/acc-CT" "$tmp/acc-XR" >"$tmp/acc-ALL"
head -1 "$tmp/acc-CT" >"$tmp/acc-ONECT"
head -1 "$tmp/acc-XR" >"$tmp/acc-ONEXR"
images() { # set -> instances
	case $1 in
	ALL) awk -F, 'NR > 1 { n += $4 } END { print n }' "$tmp/data/manifest.csv" ;;
	ONECT) awk 'NR == 1 { print $3 }' "$tmp/studies-CT" ;;
	ONEXR) awk 'NR == 1 { print $3 }' "$tmp/studies-XR" ;;
	*) awk '{ n += $3 } END { print n }' "$tmp/studies-$1" ;;
	esac
}
count_dcm() { find "$1" -path "$1/.diana" -prune -o -type f ! -name report.csv -print | grep -c . || true; }

# empty the helper (and keep nothing between runs)
clear_helper() {
	local id
	for id in $(curl -sSf -u "$HA" "$H/patients" | jq -r '.[]'); do
		curl -sSf -u "$HA" -X DELETE "$H/patients/$id" >/dev/null
	done
}
reset() {
	clear_helper
	rm -rf "$tmp/out" "$tmp/key.csv" "$tmp/key.report.csv" "$tmp/zip"
	mkdir -p "$tmp/out"
}
check() { # label set dir
	local want got
	want=$(images "$2")
	got=$(count_dcm "$3")
	if [ "$got" != "$want" ]; then
		echo "bench_pull: $1 on $2 wrote $got files, expected $want" >&2
		exit 1
	fi
}

# (a), (d): one diana pull of the set; prints seconds and peak RSS (kB)
pull() { # run set method uri jobs
	local t0 t1 rc=0
	reset
	t0=$(now)
	/usr/bin/time -v -o "$tmp/time.txt" "$diana" pull "$4" --accessions "$tmp/acc-$2" -o "$tmp/out" \
		--secret-file "$tmp/secret" --key "$tmp/key.csv" -j "$5" -q >"$tmp/pull.log" 2>&1 || rc=$?
	t1=$(now)
	if [ "$rc" != 0 ]; then
		echo "bench_pull: diana pull ($3, $2) failed with status $rc:" >&2
		tail -20 "$tmp/pull.log" >&2
		exit 1
	fi
	check "$3" "$2" "$tmp/out"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(sub "$t0" "$t1")" "$(images "$2")" \
		"$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")" \
		"$(awk -F': ' '/(User|System) time \(seconds\)/ { s += $2 } END { print s }' "$tmp/time.txt")" >>"$res"
}

# (b) the original DIANA flow, one study after another
orig() { # run set
	local t0 t1 ta tb tc td te acc qid sid aid f=0 m=0 a=0 z=0 u=0
	reset
	t0=$(now)
	while read -r acc; do
		ta=$(now)
		qid=$(curl -sSf -u "$HA" -X POST "$H/modalities/$DIANA_LAB_PACS_MODALITY/query" \
			-d "{\"Level\":\"Study\",\"Query\":{\"AccessionNumber\":\"$acc\"}}" | jq -r .ID)
		tb=$(now)
		curl -sSf -u "$HA" -X POST "$H/queries/$qid/retrieve" \
			-d "{\"TargetAet\":\"$DIANA_LAB_HELPER_AET\",\"Synchronous\":true}" >/dev/null
		tc=$(now)
		sid=$(curl -sSf -u "$HA" -X POST "$H/tools/find" \
			-d "{\"Level\":\"Study\",\"Query\":{\"AccessionNumber\":\"$acc\"}}" | jq -r '.[0]')
		aid=$(curl -sSf -u "$HA" -X POST "$H/studies/$sid/anonymize" -d '{"Replace":{"PatientName":"ANON^DIANA",
			"PatientID":"DIANA-'"$acc"'","AccessionNumber":"A-'"$acc"'"},"Keep":["StudyDescription",
			"SeriesDescription","StudyDate"],"KeepPrivateTags":false,"DicomVersion":"2017c",
			"Force":true,"Synchronous":true}' | jq -r .ID)
		td=$(now)
		curl -sSf -u "$HA" "$H/studies/$aid/archive" -o "$tmp/zip"
		te=$(now)
		unzip -q -o "$tmp/zip" -d "$tmp/out/$acc"
		rm -f "$tmp/zip"
		t1=$(now)
		f=$(awk -v s="$f" -v a="$ta" -v b="$tb" 'BEGIN { printf "%.4f", s + b - a }')
		m=$(awk -v s="$m" -v a="$tb" -v b="$tc" 'BEGIN { printf "%.4f", s + b - a }')
		a=$(awk -v s="$a" -v a="$tc" -v b="$td" 'BEGIN { printf "%.4f", s + b - a }')
		z=$(awk -v s="$z" -v a="$td" -v b="$te" 'BEGIN { printf "%.4f", s + b - a }')
		u=$(awk -v s="$u" -v a="$te" -v b="$t1" 'BEGIN { printf "%.4f", s + b - a }')
	done <"$tmp/acc-$2"
	t1=$(now)
	check orig "$2" "$tmp/out"
	printf '%s\t%s\t%s\t%s\t%s\t\t\n' "$1" "$2" orig "$(sub "$t0" "$t1")" "$(images "$2")" >>"$res"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$f" "$m" "$a" "$z" "$u" >>"$stages"
}

# (c) getscu, one process per study; getscu-sync: each study followed by a
# syncfs of the output's file system (`sync -f`), as diana pull does (durable
# before journaled): the like-for-like reference of (d)
getscu_set() { # run set method
	local t0 t1 acc uid
	reset
	t0=$(now)
	while read -r acc uid _; do
		mkdir -p "$tmp/out/$acc"
		TCP_NODELAY=1 getscu -aet "$BENCH_AET" -aec "$DIANA_LAB_PACS_AET" 127.0.0.1 \
			"$DIANA_LAB_PACS_DICOM_PORT" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$uid" \
			-od "$tmp/out/$acc" >/dev/null 2>"$tmp/getscu.log" ||
			{ echo "bench_pull: getscu failed:" >&2; cat "$tmp/getscu.log" >&2; exit 1; }
		[ "$3" = getscu ] || sync -f "$tmp/out/$acc"
	done <"$tmp/studies-$2"
	t1=$(now)
	check "$3" "$2" "$tmp/out"
	printf '%s\t%s\t%s\t%s\t%s\t\t\n' "$1" "$2" "$3" "$(sub "$t0" "$t1")" "$(images "$2")" >>"$res"
}

echo "runs: $runs, each: CT then XR; (a) -j1, (a) -j2, (b), (c), (d) -j1, (d) -j2, (c) + syncfs; order rotated per run"
methods=(helper-j1 helper-j2 orig getscu direct-j1 direct-j2 getscu-sync)
for ((r = 1; r <= runs; r++)); do
	for set in CT XR; do
		# rotate the order so that no method always runs first (cold caches) or last
		for ((k = 0; k < ${#methods[@]}; k++)); do
			m=${methods[$(((k + r - 1) % ${#methods[@]}))]}
			case $m in
			helper-j1) pull "$r" "$set" "$m" "$HELPER_URI" 1 ;;
			helper-j2) pull "$r" "$set" "$m" "$HELPER_URI" 2 ;;
			direct-j1) pull "$r" "$set" "$m" "$DIRECT_URI" 1 ;;
			direct-j2) pull "$r" "$set" "$m" "$DIRECT_URI" 2 ;;
			orig) orig "$r" "$set" ;;
			getscu|getscu-sync) getscu_set "$r" "$set" "$m" ;;
			esac
		done
		echo "  run $r $set done ($(date -u +%H:%M:%S))"
	done
done
# peak memory: one study against all studies (CT and XR in one job), -j 1
for set in ONECT ONEXR ALL; do
	pull 0 "$set" helper-j1 "$HELPER_URI" 1
	pull 0 "$set" direct-j1 "$DIRECT_URI" 1
done

if [ "$profile" = 1 ]; then
	echo
	echo "-- profile: diana pull of the CT set through the helper, -j 1, under strace (requests, syncfs)"
	reset
	if command -v strace >/dev/null; then
		DIANA_DEBUG=1 strace -f --seccomp-bpf -tt -T -s 48 -o "$tmp/strace.txt" \
			-e trace=sendto,syncfs,fdatasync,fsync "$diana" pull "$HELPER_URI" --accessions "$tmp/acc-CT" \
			-o "$tmp/out" --secret-file "$tmp/secret" --key "$tmp/key.csv" -j 1 -q >/dev/null 2>"$tmp/debug.log"
		grep 'retrieve:' "$tmp/debug.log" | sed 's/^/   /'
		"$PY" - "$tmp/strace.txt" "$(images CT)" <<'PY'
import re, sys
ev = []   # (t, kind, dur)
for l in open(sys.argv[1]):
    m = re.search(r"(\d\d):(\d\d):(\d\d\.\d+) (\w+)\(", l)
    if not m:
        continue
    t = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    d = re.search(r"<(\d+\.\d+)>\s*$", l)
    d = float(d[1]) if d else 0.0
    if m[4] == "sendto":
        r = re.search(r'"(GET|POST|PUT|DELETE) (/[^ ?"\\]*)', l)
        if not r:
            continue   # request bodies
        path = re.sub(r"/[0-9a-f]{8}-[0-9a-f-]+", "/{id}", r[2])
        ev.append((t, r[1] + " " + path, 0.0))
    else:
        ev.append((t, m[4], d))
ev.sort()
tot = {}
for i, (t, k, d) in enumerate(ev):
    nxt = ev[i + 1][0] if i + 1 < len(ev) else t
    span = d if d else nxt - t
    n, s = tot.get(k, (0, 0.0))
    tot[k] = (n + 1, s + span)
n_img = int(sys.argv[2])
whole = ev[-1][0] - ev[0][0] if ev else 0
print("   from each request sent to the next one (the time of the answer and of what diana does with it),")
print("   over %d CT slices, %.2f s from the first request to the last event:" % (n_img, whole))
for k, (n, s) in sorted(tot.items(), key=lambda x: -x[1][1]):
    print("   %-40s %5d x  %8.1f ms total  %7.2f ms per slice" % (k, n, 1000 * s, 1000 * s / n_img))
PY
	fi
	for keep in "" --keep-in-helper; do
		reset
		t0=$(now)
		"$diana" pull "$HELPER_URI" --accessions "$tmp/acc-CT" -o "$tmp/out" --secret-file "$tmp/secret" \
			--key "$tmp/key.csv" -j 1 -q $keep >/dev/null 2>&1
		t1=$(now)
		echo "-- CT set through the helper, -j 1 ${keep:-(evicting, the default)}:" \
			"$(awk -v s="$(sub "$t0" "$t1")" -v n="$(images CT)" 'BEGIN { printf "%.1f", 1000 * s / n }') ms per slice"
	done
	if command -v perf >/dev/null; then
		for uri in "$HELPER_URI" "$DIRECT_URI"; do
			reset
			echo "-- perf (CPU of diana only; the Orthancs are other processes): ${uri%%:*}, CT set, -j 1"
			perf record -q -o "$tmp/perf.data" "$diana" pull "$uri" --accessions "$tmp/acc-CT" \
				-o "$tmp/out" --secret-file "$tmp/secret" --key "$tmp/key.csv" -j 1 -q \
				>/dev/null 2>"$tmp/perf.log" || { tail "$tmp/perf.log"; continue; }
			perf report -i "$tmp/perf.data" -g none --sort dso --stdio 2>/dev/null |
				grep '%' | grep -v '^#' | sed 's/^/   /' | head -8 || true
			perf report -i "$tmp/perf.data" -g none --sort sym --stdio 2>/dev/null |
				grep '%' | grep -v '^#' | sed 's/^/   /' | head -12 || true
		done
	fi
fi

echo
echo "-- versions"
echo "libdiana: $("$diana" --version) git $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?')"
echo "Orthanc: $(curl -sSf -u "$PA" "$P/system" | jq -r .Version) (PACS and helper, TCP_NODELAY=1, SQLite)"
echo "DCMTK: $(getscu --version | head -1)"
echo "curl: $(curl --version | head -1 | cut -d' ' -f1-2), jq: $(jq --version), unzip: $(unzip -v | head -1 | cut -d' ' -f1-2)"
echo "machine: $(uname -srm), $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$res" "$stages" <<'PY'
import sys, statistics as st
res, stages = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
per = {}   # (set, method) -> [ms per image per run]
rss = {}   # (set, method) -> [kB]
cpu = {}   # (set, method) -> [diana's user+sys ms per image]
for run, s, m, sec, n, kb, cs in rows:
    if run == "0":
        rss.setdefault((s, m), []).append(int(kb))
        continue
    per.setdefault((s, m), []).append(1000.0 * float(sec) / int(n))
    if kb:
        rss.setdefault((s, m), []).append(int(kb))
        cpu.setdefault((s, m), []).append(1000.0 * float(cs) / int(n))
def med(s, m):
    v = per.get((s, m))
    return st.median(v) if v else float("nan")
names = [("helper-j1", "(a) diana pull via helper, -j 1"), ("helper-j2", "(a) diana pull via helper, -j 2"),
         ("orig", "(b) original DIANA flow (anchor)"), ("getscu", "(c) getscu C-GET, no de-id (floor)"),
         ("getscu-sync", "(c') getscu + syncfs after each study"),
         ("direct-j1", "(d) diana pull C-GET, -j 1"), ("direct-j2", "(d) diana pull C-GET, -j 2")]
print()
print("-- ms per image, median of %d runs (min-max)" % max(len(v) for v in per.values()))
print("%-40s %24s %24s   %s" % ("", "per CT slice", "per 10-MB XR", "diana's CPU (user+sys) CT | XR"))
for m, label in names:
    cells = []
    for s in ("CT", "XR"):
        v = per.get((s, m), [])
        cells.append("%7.1f (%.1f-%.1f)" % (st.median(v), min(v), max(v)) if v else "-")
    c = ["%.1f" % st.median(cpu[(s, m)]) for s in ("CT", "XR") if cpu.get((s, m))]
    print("%-40s %24s %24s   %s" % (label, cells[0], cells[1], " | ".join(c)))
print()
print("-- ratios (medians of the same runs) against PERF.md's targets")
for s, what in (("CT", "per CT slice"), ("XR", "per XR")):
    for j in ("j1", "j2"):
        r = med(s, "orig") / med(s, "helper-" + j)
        print("(b)/(a) -j %s %-13s %6.1fx   target >= 6x%s" % (j[1], what, r, "" if r >= 6 else "   MISSED"))
for s, what in (("CT", "per CT slice"), ("XR", "per XR")):
    for j in ("j1", "j2"):
        r = med(s, "direct-" + j) / med(s, "getscu")
        r2 = med(s, "direct-" + j) / med(s, "getscu-sync")
        print("(d)/(c) -j %s %-13s %6.2fx   target <= 1.5x%s   (against (c'), durable like diana: %.2fx)" %
              (j[1], what, r, "" if r <= 1.5 else "   MISSED", r2))
# PERF.md's anchors were measured on a quiet machine of the same kind: scale
# this run's XR numbers by how much slower this run's anchor and floor were
k_orig = 1111.0 / med("XR", "orig")
k_get = 201.0 / med("XR", "getscu")
print("this run against PERF.md (quiet machine): original flow %.1fx slower (CT %.1fx), getscu %.1fx slower (CT %.1fx)" %
      (1 / k_orig, med("CT", "orig") / 67.0, 1 / k_get, med("CT", "getscu") / 1.8))
for m in ("helper-j1", "helper-j2", "direct-j1", "direct-j2"):
    v = med("XR", m)
    print("XR %-10s %6.0f ms per image   target <= 115 ms%s   (scaled to PERF.md by the anchor: %.0f, by getscu: %.0f)" %
          (m, v, "" if v <= 115 else "   MISSED", v * k_orig, v * k_get))
print()
print("-- peak RSS of diana pull (MB, /usr/bin/time -v), -j 1 unless said")
for m in ("helper-j1", "direct-j1", "helper-j2", "direct-j2"):
    cells = []
    for s in ("ONECT", "ONEXR", "CT", "XR", "ALL"):
        v = rss.get((s, m))
        cells.append("%6.1f" % (max(v) / 1024.0) if v else "     -")
    print("%-10s 1 CT study %s  1 XR study %s  CT set %s  XR set %s  all studies %s" % (m, *cells))
print("target: flat (all studies ~ one study)")
srows = [l.split("\t") for l in open(stages) if l.strip()]
if srows:
    print()
    print("-- where the original flow spends its time, ms per image (median over runs)")
    n = {}
    for run, s, m, sec, cnt, kb, cs in rows:
        n[s] = int(cnt)
    print("%-4s %8s %8s %10s %8s %8s" % ("", "C-FIND", "C-MOVE", "anonymize", "zip", "unzip"))
    for s in ("CT", "XR"):
        v = [[float(x) for x in r[2:7]] for r in srows if r[1] == s]
        if v:
            print("%-4s %8.1f %8.1f %10.1f %8.1f %8.1f" % (s, *[1000 * st.median(c) / n[s] for c in zip(*v)]))
PY
