#!/bin/bash
# tests/lab/selftest.sh - self-test of the lab scripts (meson test 'lab-selftest').
#
#   selftest.sh             the whole test; starts and stops several labs
#   selftest.sh --inside F  the checks made inside one lab (run by with-lab.sh);
#                           writes the server PIDs to F
#
# Checks: both servers answer GET /system with credentials (200) and refuse
# without or with a wrong password (401); C-ECHO helper->PACS and PACS->helper;
# the bind shim is mapped; `ss` shows the four ports on loopback only; a second
# start while a lab runs fails clearly.  After with-lab.sh: no server PID
# survives, the ports are free, the temp folder is gone.  Also: two runs in a
# row, CMD's status passed through, SIGTERM to with-lab.sh, recovery after a
# SIGKILLed with-lab.sh (stale PID files, servers still up), stale PID files of
# dead servers, a manual lab blocking with-lab.sh, a foreign program on a port,
# a lab whose state folder was lost.
# SPDX-License-Identifier: MIT
set -uo pipefail

LAB_DIR=${DIANA_LAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
WITH=$LAB_DIR/with-lab.sh
LAB=$LAB_DIR/lab.sh
FAILS=0

say() { printf 'selftest: %s\n' "$*"; }
ok() { say "ok   - $*"; }
bad() { say "FAIL - $*"; FAILS=$((FAILS + 1)); }
check() { # description command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

code() { # url [curl args...] -> HTTP status
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url"
}

listeners() {
	ss -Hltn '( sport = :18042 or sport = :14242 or sport = :28042 or sport = :24242 )'
}

ports_free() { [ -z "$(listeners)" ]; }

lab_orthancs() { # PIDs of any lab Orthanc on this machine
	local p
	for p in $(pgrep -x Orthanc); do
		[ "$( { awk '{ print $3 }' "/proc/$p/stat"; } 2>/dev/null)" = Z ] && continue
		{ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -q '^ORTHANC_LAB_TMP=' && echo "$p"
	done
	return 0
}

all_dead() { # pids...
	local p
	for p in "$@"; do
		[ -z "$p" ] && continue
		if kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
			return 1
		fi
	done
	return 0
}

# ------------------------------------------------------------ inside one lab
inside() {
	local rec=$1 s url user pw pid body
	echo "$DIANA_LAB_PACS_PID $DIANA_LAB_HELPER_PID $DIANA_LAB_TMP" >"$rec"
	for s in PACS HELPER; do
		url=DIANA_LAB_${s}_URL user=DIANA_LAB_${s}_USER pw=DIANA_LAB_${s}_PASSWORD
		url=${!url} user=${!user} pw=${!pw}
		check "$s GET /system with credentials -> 200" \
			test "$(code "$url/system" -u "$user:$pw")" = 200
		check "$s GET /system without credentials -> 401" \
			test "$(code "$url/system")" = 401
		check "$s GET /system with a wrong password -> 401" \
			test "$(code "$url/system" -u "$user:wrong")" = 401
		body=$(curl -s --max-time 10 -u "$user:$pw" "$url/system")
		aet=DIANA_LAB_${s}_AET port=DIANA_LAB_${s}_DICOM_PORT
		check "$s /system says DicomAet ${!aet}, DicomPort ${!port}, Version 1.10.x" \
			test "$(jq -r '"\(.DicomAet) \(.DicomPort) \(.Version|startswith("1.10"))"' <<<"$body")" = "${!aet} ${!port} true"
		pid=DIANA_LAB_${s}_PID
		check "$s (PID ${!pid}) has the bind shim mapped" \
			grep -qF "$DIANA_BINDSHIM" "/proc/${!pid}/maps"
		check "$s runs with TCP_NODELAY=1" \
			sh -c "tr '\\0' '\\n' </proc/${!pid}/environ | grep -qx TCP_NODELAY=1"
	done
	check "helper C-ECHO pacs (POST /modalities/pacs/echo) -> 200" \
		test "$(code "$DIANA_LAB_HELPER_URL/modalities/$DIANA_LAB_PACS_MODALITY/echo" \
			-u "$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD" -X POST -d '{}')" = 200
	check "pacs C-ECHO helper (POST /modalities/helper/echo) -> 200" \
		test "$(code "$DIANA_LAB_PACS_URL/modalities/$DIANA_LAB_HELPER_MODALITY/echo" \
			-u "$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD" -X POST -d '{}')" = 200
	if command -v echoscu >/dev/null; then
		check "echoscu -aec WRONG is rejected (DicomCheckCalledAet)" \
			sh -c "! echoscu -to 5 -aec WRONG 127.0.0.1 $DIANA_LAB_PACS_DICOM_PORT 2>/dev/null"
		check "echoscu to HOSP_PACS on 127.0.0.1:14242" \
			echoscu -to 5 -aec "$DIANA_LAB_PACS_AET" 127.0.0.1 "$DIANA_LAB_PACS_DICOM_PORT"
	fi

	local lines addrs
	lines=$(listeners)
	printf '%s\n' "$lines" | sed 's/^/selftest: ss: /'
	addrs=$(printf '%s\n' "$lines" | awk '{ print $4 }' | sort | tr '\n' ' ')
	check "ss -ltn: exactly the four lab ports, on 127.0.0.1" \
		test "$addrs" = "127.0.0.1:14242 127.0.0.1:18042 127.0.0.1:24242 127.0.0.1:28042 "
	local others
	others=$(ss -Hlntup | grep -E "pid=($DIANA_LAB_PACS_PID|$DIANA_LAB_HELPER_PID)," |
		awk '{ print $5 }' | grep -vE '^(127\.0\.0\.1|\[::1\]):' || true)
	check "no socket of the servers listens beyond loopback${others:+ ($others)}" test -z "$others"
	local w
	w=$(ss -Hltn | awk '{ print $4 }' | grep -E '^(0\.0\.0\.0|\*|\[::\]):(18042|14242|28042|24242)$' || true)
	check "nothing on 0.0.0.0 / [::] for the lab ports" test -z "$w"

	check "lab.sh status -> 0" sh -c "'$LAB' status >/dev/null 2>&1"
	check "lab.sh env repeats the environment" \
		sh -c "'$LAB' env 2>/dev/null | grep -qx 'export DIANA_LAB_TMP=$DIANA_LAB_TMP'"
	local out rc
	out=$("$LAB" start 2>&1 >/dev/null)
	rc=$?
	check "a second start while the lab runs fails (rc $rc): ${out##*error: }" test "$rc" = 1
	check "... and leaves the running lab alone" \
		test "$(code "$DIANA_LAB_PACS_URL/system" -u "$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD")" = 200
	[ "$FAILS" = 0 ]
}

if [ "${1:-}" = --inside ]; then
	inside "$2"
	exit $?
fi

# ------------------------------------------------------------ outer test
[ -x "${DIANA_LAB_ORTHANC:-/usr/sbin/Orthanc}" ] || { echo "Orthanc not installed"; exit 77; }
for t in curl jq ss flock; do command -v "$t" >/dev/null || { echo "$t not installed"; exit 77; }; done

work=$(mktemp -d "${TMPDIR:-/tmp}/diana-lab-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! ports_free; then
	say "lab ports in use before the test:"
	listeners
	say "(a stale lab? try: $LAB stop)"
	exit 1
fi

after_run() { # label record-file
	local pids tmp
	read -r -a pids <"$2" || true
	tmp=${pids[2]:-}
	check "$1: no server PID survives (${pids[0]:-?} ${pids[1]:-?})" all_dead "${pids[0]:-}" "${pids[1]:-}"
	check "$1: lab ports are free" ports_free
	check "$1: temp folder removed" test ! -e "${tmp:-/nonexistent}"
	check "$1: no state left" test ! -e "${DIANA_LAB_STATE:-/tmp/diana-lab-$(id -u)}/pacs.pid"
}

# 1, 2: full checks, twice in a row
for run in 1 2; do
	t0=$(now)
	"$WITH" "$0" --inside "$work/run$run"
	rc=$?
	check "run $run: with-lab.sh + checks inside -> 0 (rc $rc, $(since "$t0") s)" test "$rc" = 0
	after_run "run $run" "$work/run$run"
done

# 3: CMD's status comes back, lab stopped anyway
"$WITH" sh -c 'echo "$DIANA_LAB_PACS_PID $DIANA_LAB_HELPER_PID $DIANA_LAB_TMP" >"$1"; exit 7' sh "$work/run3" 2>/dev/null
rc=$?
check "run 3: with-lab.sh passes CMD's status 7 through (rc $rc)" test "$rc" = 7
after_run "run 3" "$work/run3"

# 4: SIGTERM to with-lab.sh while CMD runs
"$WITH" sh -c 'echo "$DIANA_LAB_PACS_PID $DIANA_LAB_HELPER_PID $DIANA_LAB_TMP" >"$1"; exec sleep 300' sh "$work/run4" 2>/dev/null &
wl=$!
for _ in $(seq 200); do [ -s "$work/run4" ] && break; sleep 0.05; done
kill -TERM "$wl"
wait "$wl"
rc=$?
check "run 4: SIGTERM to with-lab.sh -> 143 (rc $rc)" test "$rc" = 143
after_run "run 4" "$work/run4"

# 5: with-lab.sh SIGKILLed: servers and PID files stay behind; the next run recovers
"$WITH" sh -c 'echo "$DIANA_LAB_PACS_PID $DIANA_LAB_HELPER_PID $DIANA_LAB_TMP $$" >"$1"; exec sleep 300' sh "$work/run5" 2>/dev/null &
wl=$!
for _ in $(seq 200); do [ -s "$work/run5" ] && break; sleep 0.05; done
kill -KILL "$wl"
wait "$wl" 2>/dev/null
read -r -a r5 <"$work/run5"
kill -TERM "${r5[3]}" 2>/dev/null # the orphaned CMD (sleep)
check "run 5: after SIGKILL of with-lab.sh the servers still run (stale lab)" \
	sh -c "kill -0 ${r5[0]} && kill -0 ${r5[1]}"
out=$("$WITH" sh -c 'echo "$DIANA_LAB_PACS_PID $DIANA_LAB_HELPER_PID $DIANA_LAB_TMP" >"$1"' sh "$work/run5b" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E 'recovering|error' | sed 's/^/selftest: /'
check "run 5: the next with-lab.sh recovers (rc $rc)" test "$rc" = 0
check "run 5: ... saying so" grep -q 'recovering' <<<"$out"
check "run 5: the stale servers are gone" all_dead "${r5[0]}" "${r5[1]}"
check "run 5: the stale temp folder is gone" test ! -e "${r5[2]}"
after_run "run 5" "$work/run5b"

# 6: PID files of servers that died (kill -9): start cleans up and starts
eval "$("$LAB" start 2>/dev/null)"
p6=("$DIANA_LAB_PACS_PID" "$DIANA_LAB_HELPER_PID" "$DIANA_LAB_TMP")
kill -KILL "${p6[0]}" "${p6[1]}"
for _ in $(seq 100); do all_dead "${p6[0]}" "${p6[1]}" && break; sleep 0.05; done
out=$("$LAB" start 2>&1 >"$work/env6")
rc=$?
check "run 6: start over PID files of dead servers -> 0 (rc $rc)" test "$rc" = 0
check "run 6: ... and removed the dead lab's folder" test ! -e "${p6[2]}"
"$LAB" stop 2>/dev/null
check "run 6: stop -> ports free" ports_free

# 7: a manual lab blocks with-lab.sh with a clear error, and survives it
"$LAB" start >"$work/env7" 2>/dev/null
out=$("$WITH" true 2>&1)
rc=$?
say "${out##*error: }"
check "run 7: with-lab.sh while a manual lab runs -> 1 (rc $rc)" test "$rc" = 1
check "run 7: ... names the way out" grep -q 'lab.sh stop' <<<"$out"
check "run 7: ... the manual lab still runs" sh -c "'$LAB' status >/dev/null 2>&1"
check "run 7: stop -> 0" sh -c "'$LAB' stop 2>/dev/null"
check "run 7: stop again (idempotent) -> 0" sh -c "'$LAB' stop 2>/dev/null"
check "run 7: ports free" ports_free

# 8: a foreign program on a lab port: clear error, no server left
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 28042)); s.listen(1); print("up", flush=True); time.sleep(60)' >"$work/py8" &
py=$!
for _ in $(seq 100); do [ -s "$work/py8" ] && break; sleep 0.05; done
out=$("$LAB" start 2>&1)
rc=$?
kill "$py"
wait "$py" 2>/dev/null
say "${out##*error: }"
check "run 8: start with port 28042 taken -> 1 (rc $rc)" test "$rc" = 1
check "run 8: ... error names the port" grep -q '28042' <<<"$out"
check "run 8: ... no server was started" test -z "$(lab_orthancs)"
check "run 8: ports free again" ports_free

# 9: state folder lost while the servers run: start refuses, stop finds them by port
st=${DIANA_LAB_STATE:-/tmp/diana-lab-$(id -u)}
eval "$("$LAB" start 2>/dev/null)"
p9=("$DIANA_LAB_PACS_PID" "$DIANA_LAB_HELPER_PID" "$DIANA_LAB_TMP")
rm -f "$st"/pacs.pid "$st"/helper.pid "$st"/tmp "$st"/tmp_owned "$st"/owner "$st"/env "$st"/shim "$st"/started
out=$("$LAB" start 2>&1)
rc=$?
say "${out##*error: }"
check "run 9: start with lost state and servers up -> 1 (rc $rc)" test "$rc" = 1
check "run 9: stop finds the servers by their ports -> 0" sh -c "'$LAB' stop 2>/dev/null"
check "run 9: ... they are gone" all_dead "${p9[0]}" "${p9[1]}"
check "run 9: ... and so is their temp folder" test ! -e "${p9[2]}"

check "end: no lab Orthanc left on this machine" test -z "$(lab_orthancs)"
check "end: lab ports free" ports_free

if [ "$FAILS" = 0 ]; then
	say "all checks passed"
	exit 0
fi
say "$FAILS check(s) failed"
exit 1
