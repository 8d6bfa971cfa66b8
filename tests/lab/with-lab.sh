#!/bin/bash
# tests/lab/with-lab.sh CMD ARGS... - run CMD against a fresh lab, always stop it.
#
# Starts the two Orthanc servers (tests/lab/lab.sh start), exports the
# DIANA_LAB_* variables (URL, USER, PASSWORD, AET, HOST, DICOM_PORT, PID, ... of
# PACS and HELPER, and DIANA_LAB_TMP), runs CMD, then stops the lab whatever
# happens (EXIT, INT, TERM).  Exits with CMD's status; 77 (meson: skipped)
# when Orthanc or a tool is not installed; 1 when the lab cannot start, or
# when CMD succeeded but the lab could not be stopped cleanly.
#
# Lab sessions are serialized machine-wide with a lock (the ports are fixed):
# a second with-lab.sh waits for the first (DIANA_LAB_LOCK_TIMEOUT, default 600 s).
# When CMD fails, the last 40 lines of both server logs go to stderr
# (DIANA_LAB_LOG_TAIL=N to change, 0 for none); DIANA_LAB_LOGDIR=DIR keeps the logs.
#
# meson:  test('x', lab_with_prog, args: [exe], env: lab_env, depends: bindshim,
#              suite: 'lab', is_parallel: false)
# SPDX-License-Identifier: MIT
set -uo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SH=$LAB_DIR/lab.sh
STATE=${DIANA_LAB_STATE:-/tmp/diana-lab-$(id -u)}
LOCK_TIMEOUT=${DIANA_LAB_LOCK_TIMEOUT:-600}

log() { printf 'with-lab: %s\n' "$*" >&2; }

if [ $# -lt 1 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi
command -v flock >/dev/null || { log "skipped: flock not installed"; exit 77; }
if [ "${DIANA_LAB_LOCKED:-0}" = 1 ]; then
	log "error: with-lab.sh cannot be nested (a lab session ${DIANA_LAB_OWNER:-} is already active)"
	exit 1
fi

mkdir -p -m 0700 "$STATE" || exit 1
exec 9>"$STATE/lock"
if ! flock -n 9; then
	log "another lab session is running; waiting up to ${LOCK_TIMEOUT}s for $STATE/lock"
	flock -w "$LOCK_TIMEOUT" 9 || { log "lab lock still held after ${LOCK_TIMEOUT}s"; exit 1; }
fi
export DIANA_LAB_LOCKED=1 DIANA_LAB_OWNER="with-lab:$$" DIANA_LAB_STATE="$STATE"

child=
started=0
cleanup() {
	local rc=$? stop_rc tail_n=${DIANA_LAB_LOG_TAIL:-40}
	trap - EXIT INT TERM
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	if [ "$started" = 1 ]; then
		if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ "$tail_n" != 0 ]; then
			log "CMD exited with status $rc; server logs follow"
			"$LAB_SH" logs "$tail_n" || true
		fi
		"$LAB_SH" stop
		stop_rc=$?
		if [ "$stop_rc" != 0 ]; then
			log "lab did not stop cleanly"
			[ "$rc" = 0 ] && rc=1
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

lab_env=$("$LAB_SH" start)
rc=$?
if [ "$rc" != 0 ]; then
	# lab.sh start cleans up after itself on failure
	exit "$rc"
fi
started=1
eval "$lab_env"

# CMD runs in the background so that INT/TERM reach our traps at once; its
# stdin is ours (not /dev/null), the lock fd is not inherited.
exec 3<&0
"$@" <&3 3<&- 9>&- &
child=$!
wait "$child"
rc=$?
child=
exit "$rc"
