#!/bin/bash
# tests/lab/lab.sh - the libdiana test lab: two Orthanc 1.10.1 servers on loopback.
#
#   pacs    "hospital PACS"   HOSP_PACS     http://127.0.0.1:18042  DICOM 127.0.0.1:14242  pacs/pacs-secret
#   helper  DIANA mini-PACS   DIANA_HELPER  http://127.0.0.1:28042  DICOM 127.0.0.1:24242  diana/diana-secret
#
# Usage:
#   eval "$(tests/lab/lab.sh start)"   start both, wait until ready, verify loopback, print `export` lines
#   tests/lab/lab.sh env               print the `export` lines of the running lab again
#   tests/lab/lab.sh status            show PIDs, readiness and listening sockets (exit 0 up, 3 down, 1 broken)
#   tests/lab/lab.sh logs [N]          last N (default 40) lines of both server logs
#   tests/lab/lab.sh stop              stop by PID (TERM, then KILL after a timeout), remove the temp folder
#   tests/lab/with-lab.sh CMD ARGS...  start, run CMD with the environment, always stop (for tests)
#
# Orthanc 1.10.1 binds 0.0.0.0 and has no setting against it, so each server runs
# with LD_PRELOAD=libdiana-bindshim.so (tests/lab/bindshim.c: 0.0.0.0 -> 127.0.0.1,
# :: -> ::1, any other non-loopback bind refused).  The shim is probed before any
# server starts, and after start `ss -ltn` must show the four ports on loopback only,
# or everything is stopped again and start fails.
#
# Environment (all optional):
#   DIANA_BINDSHIM            path of libdiana-bindshim.so (default: newest build*/tests/lab/ one)
#   ORTHANC_LAB_TMP           lab data folder (default: a new `mktemp -d`, removed by stop;
#                             a folder you give is kept, only its pacs/ and helper/ are removed)
#   DIANA_LAB_CONFIG          folder of pacs.json / helper.json (default tests/lab/config)
#   DIANA_LAB_PACS_CONFIG, DIANA_LAB_HELPER_CONFIG   single config files (e.g. config/helper-pg.json)
#   DIANA_LAB_ORTHANC         server binary (default /usr/sbin/Orthanc)
#   DIANA_LAB_STATE           state folder: PID files, lock (default /tmp/diana-lab-$UID;
#                             the ports are machine-wide, so is the state)
#   DIANA_LAB_START_TIMEOUT   seconds to wait for GET /system = 200 (default 30)
#   DIANA_LAB_STOP_TIMEOUT    seconds between TERM and KILL (default 10)
#   DIANA_LAB_LOCK_TIMEOUT    seconds to wait for another lab session to end (default 600)
#   DIANA_LAB_LOGDIR          if set, stop copies the server logs there before removing them
#   DIANA_LAB_VERBOSE=1       start Orthanc with --verbose
#
# Exit status: 0 ok, 1 error, 77 a prerequisite is missing (meson: skipped).
# SPDX-License-Identifier: MIT
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$LAB_DIR/../.." && pwd)
CONFIG_DIR=${DIANA_LAB_CONFIG:-$LAB_DIR/config}
PACS_CONFIG=${DIANA_LAB_PACS_CONFIG:-$CONFIG_DIR/pacs.json}
HELPER_CONFIG=${DIANA_LAB_HELPER_CONFIG:-$CONFIG_DIR/helper.json}
ORTHANC=${DIANA_LAB_ORTHANC:-/usr/sbin/Orthanc}
STATE=${DIANA_LAB_STATE:-/tmp/diana-lab-$(id -u)}
START_TIMEOUT=${DIANA_LAB_START_TIMEOUT:-30}
STOP_TIMEOUT=${DIANA_LAB_STOP_TIMEOUT:-10}
LOCK_TIMEOUT=${DIANA_LAB_LOCK_TIMEOUT:-600}

# Fixed facts of the lab; they must match config/*.json.
SERVERS=(pacs helper)
declare -A HTTP_PORT=([pacs]=18042 [helper]=28042)
declare -A DICOM_PORT=([pacs]=14242 [helper]=24242)
declare -A AET=([pacs]=HOSP_PACS [helper]=DIANA_HELPER)
declare -A USER_=([pacs]=pacs [helper]=diana)
declare -A PASSWORD=([pacs]=pacs-secret [helper]=diana-secret)
declare -A CONFIG=([pacs]=$PACS_CONFIG [helper]=$HELPER_CONFIG)
# symbolic modality names: how the helper knows the PACS, and the PACS the helper
declare -A MODALITY=([pacs]=pacs [helper]=helper)
PORTS=(18042 14242 28042 24242)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
skip() { log "skipped: $*"; exit 77; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

usage() {
	sed -n '2,/^# SPDX/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//; /^SPDX/d' >&2
	exit 2
}

# ---------------------------------------------------------------- state, lock

state_dir() {
	if [ ! -d "$STATE" ]; then
		mkdir -p -m 0700 "$STATE" || die "cannot create state folder $STATE"
	fi
	[ -O "$STATE" ] && [ ! -L "$STATE" ] || die "state folder $STATE is not ours (or a symlink)"
}

# Serialize lab sessions machine-wide (the ports are fixed).  with-lab.sh holds
# the lock for its whole run and exports DIANA_LAB_LOCKED=1 to us.
take_lock() {
	state_dir
	[ "${DIANA_LAB_LOCKED:-0}" = 1 ] && return 0
	exec 9>"$STATE/lock"
	if ! flock -n 9; then
		log "another lab session holds $STATE/lock; waiting up to ${LOCK_TIMEOUT}s"
		flock -w "$LOCK_TIMEOUT" 9 || die "lab lock $STATE/lock still held after ${LOCK_TIMEOUT}s"
	fi
}

read_state() { # name -> value or empty
	[ -f "$STATE/$1" ] && cat "$STATE/$1" || true
}

# ---------------------------------------------------------------- processes

alive() { # pid: running and not a zombie
	local pid=$1 st
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
	[ "$st" != Z ] && [ "$st" != X ]
}

# pid is one of our Orthanc servers: its executable is Orthanc and its
# environment names a lab folder (ORTHANC_LAB_TMP) - protects against PID reuse.
is_lab_orthanc() {
	local pid=$1 exe
	alive "$pid" || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	case "$exe" in */Orthanc|*/Orthanc\ \(deleted\)) ;; *) return 1 ;; esac
	{ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -q '^ORTHANC_LAB_TMP=' || return 1
}

# ---------------------------------------------------------------- sockets

# ss lines of TCP listeners on the lab ports (with owning process when visible)
port_listeners() {
	local filter="" p
	for p in "${PORTS[@]}"; do filter+="${filter:+ or }sport = :$p"; done
	ss -Hltnp "( $filter )" 2>/dev/null || ss -Hltn "( $filter )"
}

# PIDs of Orthanc lab servers holding a lab port (also when our state is lost)
orphan_pids() {
	port_listeners | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | while read -r pid; do
		is_lab_orthanc "$pid" && echo "$pid"
	done
	return 0
}

ports_free() { [ -z "$(port_listeners)" ]; }

is_loopback_addr() { # local address column of ss: 127.0.0.1:18042, [::1]:18042, [::ffff:127.0.0.1]:18042
	case "$1" in
	127.0.0.1:*|\[::1\]:*|\[::ffff:127.0.0.1\]:*) return 0 ;;
	*) return 1 ;;
	esac
}

# Every listener on a lab port, and every TCP/UDP socket of our PIDs, must be on
# loopback, and each of the four ports must be listening.
verify_loopback() { # pids...
	local bad=0 lines p addr pid
	lines=$(port_listeners)
	printf '%s\n' "$lines" | sed 's/^/lab: ss: /' >&2
	for p in "${PORTS[@]}"; do
		if ! printf '%s\n' "$lines" | awk '{ print $4 }' | grep -q ":$p\$"; then
			log "port $p is not listening"
			bad=1
		fi
	done
	while read -r addr; do
		[ -z "$addr" ] && continue
		is_loopback_addr "$addr" || { log "NOT LOOPBACK: listener on $addr"; bad=1; }
	done < <(printf '%s\n' "$lines" | awk 'NF { print $4 }')
	for pid in "$@"; do
		while read -r addr; do
			[ -z "$addr" ] && continue
			is_loopback_addr "$addr" || { log "NOT LOOPBACK: PID $pid listens on $addr"; bad=1; }
		done < <(ss -Hlntup 2>/dev/null | grep "pid=$pid," | awk '{ print $5 }')
	done
	return "$bad"
}

# ---------------------------------------------------------------- bind shim

find_shim() {
	local cand best="" bt=0 t
	if [ -n "${DIANA_BINDSHIM:-}" ]; then
		[ -f "$DIANA_BINDSHIM" ] || die "DIANA_BINDSHIM=$DIANA_BINDSHIM does not exist (run meson compile)"
		readlink -f "$DIANA_BINDSHIM"
		return
	fi
	for cand in "$SRC_ROOT"/build*/tests/lab/libdiana-bindshim.so \
		    "$SRC_ROOT"/*/tests/lab/libdiana-bindshim.so; do
		[ -f "$cand" ] || continue
		t=$(stat -c %Y "$cand")
		if [ "$t" -gt "$bt" ]; then best=$cand; bt=$t; fi
	done
	[ -n "$best" ] || die "bind shim not found: build it (meson compile -C <builddir>) or set DIANA_BINDSHIM"
	readlink -f "$best"
}

# Prove the shim loads and rewrites, before any server may bind.
probe_shim() {
	local shim=$1 out
	if [ -x /usr/bin/python3 ]; then
		out=$(env -i LD_PRELOAD="$shim" DIANA_BINDSHIM_STRICT=1 /usr/bin/python3 -c '
import socket
s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[0])' 2>&1) || true
		[ "$out" = 127.0.0.1 ] || die "bind shim $shim does not work: $out"
	else
		out=$(env -i LD_PRELOAD="$shim" /bin/true 2>&1) || true
		[ -z "$out" ] || die "bind shim $shim cannot be preloaded: $out"
	fi
}

# ---------------------------------------------------------------- stop

wait_gone() { # timeout pids... ; 0 when all are gone
	local deadline pid left
	deadline=$(awk -v n="$(now)" -v t="$1" 'BEGIN { printf "%.3f", n + t }')
	shift
	while :; do
		left=0
		for pid in "$@"; do alive "$pid" && left=1; done
		[ "$left" = 0 ] && return 0
		awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
		sleep 0.05
	done
}

# stop the given PIDs (only those that are lab Orthancs): TERM, wait, KILL
stop_pids() {
	local pids=() pid
	for pid in "$@"; do is_lab_orthanc "$pid" && pids+=("$pid"); done
	[ "${#pids[@]}" -gt 0 ] || return 0
	log "stopping PIDs ${pids[*]} (TERM)"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	if ! wait_gone "$STOP_TIMEOUT" "${pids[@]}"; then
		log "still running after ${STOP_TIMEOUT}s: KILL"
		for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
		wait_gone 5 "${pids[@]}" || { log "PIDs ${pids[*]} survive KILL"; return 1; }
	fi
}

remove_tmp() {
	local tmp owned s
	tmp=$(read_state tmp)
	owned=$(read_state tmp_owned)
	[ -n "$tmp" ] && [ -d "$tmp" ] || return 0
	if [ -n "${DIANA_LAB_LOGDIR:-}" ]; then
		mkdir -p "$DIANA_LAB_LOGDIR"
		for s in "${SERVERS[@]}"; do
			[ -f "$tmp/$s.log" ] && cp "$tmp/$s.log" "$DIANA_LAB_LOGDIR/$s.log"
		done
		log "server logs copied to $DIANA_LAB_LOGDIR"
	fi
	if [ "$owned" = 1 ]; then
		case "$tmp" in
		*/diana-lab.*) rm -rf -- "$tmp" ;;
		*) log "not removing unexpected temp path $tmp" ;;
		esac
	else
		rm -rf -- "$tmp/pacs" "$tmp/helper" "$tmp/helper-pg" "$tmp/pacs.log" "$tmp/helper.log"
	fi
}

clear_state() {
	rm -f "$STATE/pacs.pid" "$STATE/helper.pid" "$STATE/tmp" "$STATE/tmp_owned" \
	      "$STATE/owner" "$STATE/env" "$STATE/shim" "$STATE/started"
}

do_stop() {
	local t0 pids=() s pid rc=0 otmp
	t0=$(now)
	for s in "${SERVERS[@]}"; do
		pid=$(read_state "$s.pid")
		[ -n "$pid" ] && pids+=("$pid")
	done
	# servers of a lab whose state was lost, still holding our ports
	while read -r pid; do
		[ -n "$pid" ] && [[ " ${pids[*]} " != *" $pid "* ]] || continue
		pids+=("$pid")
		# adopt its temp folder when it is one of ours (mktemp'd diana-lab.*)
		otmp=$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | sed -n 's/^ORTHANC_LAB_TMP=//p')
		if [ -z "$(read_state tmp)" ] && [[ "$otmp" == */diana-lab.* ]]; then
			printf '%s\n' "$otmp" >"$STATE/tmp"
			echo 1 >"$STATE/tmp_owned"
		fi
	done < <(orphan_pids)
	if [ "${#pids[@]}" -eq 0 ] && [ -z "$(read_state tmp)" ]; then
		log "no lab running"
		return 0
	fi
	stop_pids "${pids[@]}" || rc=1
	for _ in $(seq 100); do ports_free && break; sleep 0.05; done
	if ! ports_free; then
		log "lab ports still in use after stop:"
		port_listeners | sed 's/^/lab:   /' >&2
		rc=1
	fi
	remove_tmp
	clear_state
	log "stopped in $(elapsed "$t0") s"
	return "$rc"
}

# ---------------------------------------------------------------- start

env_lines() {
	local s S
	for s in "${SERVERS[@]}"; do
		S=${s^^}
		printf 'export DIANA_LAB_%s_URL=%q\n' "$S" "http://127.0.0.1:${HTTP_PORT[$s]}"
		printf 'export DIANA_LAB_%s_USER=%q\n' "$S" "${USER_[$s]}"
		printf 'export DIANA_LAB_%s_PASSWORD=%q\n' "$S" "${PASSWORD[$s]}"
		printf 'export DIANA_LAB_%s_AET=%q\n' "$S" "${AET[$s]}"
		printf 'export DIANA_LAB_%s_HOST=%q\n' "$S" 127.0.0.1
		printf 'export DIANA_LAB_%s_DICOM_PORT=%q\n' "$S" "${DICOM_PORT[$s]}"
		printf 'export DIANA_LAB_%s_MODALITY=%q\n' "$S" "${MODALITY[$s]}"
		printf 'export DIANA_LAB_%s_PID=%q\n' "$S" "$(read_state "$s.pid")"
		printf 'export DIANA_LAB_%s_LOG=%q\n' "$S" "$1/$s.log"
	done
	printf 'export DIANA_LAB_TMP=%q\n' "$1"
}

log_tails() { # lines
	local tmp s
	tmp=$(read_state tmp)
	for s in "${SERVERS[@]}"; do
		[ -n "$tmp" ] && [ -f "$tmp/$s.log" ] || continue
		log "---- last $1 lines of $tmp/$s.log"
		tail -n "$1" "$tmp/$s.log" | sed "s/^/lab: $s| /" >&2
	done
}

fail_start() {
	log "start failed: $*"
	log_tails 30
	do_stop || true
	exit 1
}

http_code() { # server -> HTTP status of GET /system with credentials
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
	     -u "${USER_[$1]}:${PASSWORD[$1]}" "http://127.0.0.1:${HTTP_PORT[$1]}/system" || true
}

launch() { # server shim tmp
	local s=$1 shim=$2 tmp=$3 verbose=()
	[ "${DIANA_LAB_VERBOSE:-0}" = 1 ] && verbose=(--verbose)
	mkdir -p "$tmp/$s"
	# A clean environment: nothing of the caller's (ASAN_OPTIONS, MALLOC_PERTURB_,
	# LD_PRELOAD, ...) leaks into the servers.  The lab lock (fd 9) is not inherited.
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$tmp" LANG=C.UTF-8 \
		ORTHANC_LAB_TMP="$tmp" TCP_NODELAY=1 \
		LD_PRELOAD="$shim" DIANA_BINDSHIM_STRICT=1 \
		"$ORTHANC" --no-jobs "${verbose[@]}" "${CONFIG[$s]}" \
		</dev/null >"$tmp/$s.log" 2>&1 9>&- &
	echo "$!" >"$STATE/$s.pid"
}

do_start() {
	local t0 tmp owned=0 shim s pid owner opid pending deadline pids=()
	t0=$(now)
	[ -x "$ORTHANC" ] || skip "Orthanc not installed ($ORTHANC)"
	for s in curl ss flock awk; do
		command -v "$s" >/dev/null || skip "$s not installed"
	done
	for s in "${SERVERS[@]}"; do
		[ -f "${CONFIG[$s]}" ] || die "config ${CONFIG[$s]} missing"
	done
	take_lock

	# ---- leftovers of an earlier lab
	owner=$(read_state owner)
	for s in "${SERVERS[@]}"; do
		pid=$(read_state "$s.pid")
		is_lab_orthanc "${pid:-0}" && pids+=("$pid")
	done
	if [ "${#pids[@]}" -gt 0 ]; then
		case "$owner" in
		with-lab:*)
			opid=${owner#with-lab:}
			if alive "$opid" && tr '\0' ' ' <"/proc/$opid/cmdline" 2>/dev/null | grep -q with-lab; then
				die "a lab run by with-lab.sh (PID $opid) is active: PIDs ${pids[*]}"
			fi
			log "recovering: stale lab of a dead with-lab.sh (PID $opid) still runs as PIDs ${pids[*]}; stopping it"
			do_stop || die "could not stop the stale lab"
			;;
		*)
			die "a lab is already running (PIDs ${pids[*]}, folder $(read_state tmp), started $(read_state started)); stop it first: $LAB_DIR/lab.sh stop"
			;;
		esac
	elif [ -n "$(read_state tmp)" ] || [ -f "$STATE/pacs.pid" ] || [ -f "$STATE/helper.pid" ]; then
		log "removing stale state of a lab that is no longer running ($(read_state tmp))"
		remove_tmp
		clear_state
	fi
	if ! ports_free; then
		log "lab ports ${PORTS[*]} are in use:"
		port_listeners | sed 's/^/lab:   /' >&2
		if [ -n "$(orphan_pids)" ]; then
			die "an earlier lab whose state was lost still runs; stop it with: $LAB_DIR/lab.sh stop"
		fi
		die "another program holds a lab port; stop it (see the process in the lines above)"
	fi

	# ---- shim first: nothing may ever listen beyond loopback
	shim=$(find_shim)
	probe_shim "$shim"

	# ---- folder
	if [ -n "${ORTHANC_LAB_TMP:-}" ]; then
		tmp=$ORTHANC_LAB_TMP
		mkdir -p "$tmp"
		tmp=$(cd "$tmp" && pwd)
	else
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/diana-lab.XXXXXXXX")
		owned=1
	fi
	printf '%s\n' "$tmp" >"$STATE/tmp"
	echo "$owned" >"$STATE/tmp_owned"
	echo "${DIANA_LAB_OWNER:-manual}" >"$STATE/owner"
	echo "$shim" >"$STATE/shim"
	date '+%Y-%m-%d %H:%M:%S' >"$STATE/started"

	# ---- servers
	trap 'fail_start "interrupted"' INT TERM
	for s in "${SERVERS[@]}"; do launch "$s" "$shim" "$tmp"; done

	pending=("${SERVERS[@]}")
	deadline=$(awk -v n="$(now)" -v t="$START_TIMEOUT" 'BEGIN { printf "%.3f", n + t }')
	while [ "${#pending[@]}" -gt 0 ]; do
		local still=()
		for s in "${pending[@]}"; do
			pid=$(read_state "$s.pid")
			alive "$pid" || fail_start "$s (PID $pid) exited during start-up"
			[ "$(http_code "$s")" = 200 ] || still+=("$s")
		done
		pending=("${still[@]+"${still[@]}"}")
		[ "${#pending[@]}" -eq 0 ] && break
		if awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
			fail_start "no HTTP 200 from GET /system of ${pending[*]} within ${START_TIMEOUT}s"
		fi
		sleep 0.1
	done

	# ---- verify: the shim is mapped, only loopback listens
	pids=()
	for s in "${SERVERS[@]}"; do
		pid=$(read_state "$s.pid")
		pids+=("$pid")
		grep -qF "$shim" "/proc/$pid/maps" || fail_start "bind shim not loaded in $s (PID $pid)"
	done
	verify_loopback "${pids[@]}" || fail_start "a lab server listens beyond loopback (see ss lines above)"
	trap - INT TERM

	env_lines "$tmp" >"$STATE/env"
	log "ready in $(elapsed "$t0") s: pacs PID ${pids[0]}, helper PID ${pids[1]}, folder $tmp"
	cat "$STATE/env"
}

# ---------------------------------------------------------------- status, env

do_status() {
	local s pid rc=0 up=0 tmp
	state_dir
	tmp=$(read_state tmp)
	if [ -z "$tmp" ]; then
		log "no lab running"
		if ! ports_free; then
			log "but lab ports are in use:"; port_listeners | sed 's/^/lab:   /' >&2; return 1
		fi
		return 3
	fi
	echo "folder:  $tmp"
	echo "owner:   $(read_state owner)"
	echo "started: $(read_state started)"
	echo "shim:    $(read_state shim)"
	for s in "${SERVERS[@]}"; do
		pid=$(read_state "$s.pid")
		if is_lab_orthanc "${pid:-0}"; then
			echo "$s: PID $pid running, GET /system -> $(http_code "$s")"
			[ "$(http_code "$s")" = 200 ] && up=$((up + 1))
		else
			echo "$s: PID ${pid:-?} NOT running"
		fi
	done
	echo "listening:"
	port_listeners | sed 's/^/  /'
	[ "$up" = 2 ] || rc=1
	return "$rc"
}

do_env() {
	state_dir
	[ -f "$STATE/env" ] || { log "no lab running"; exit 3; }
	local s pid
	for s in "${SERVERS[@]}"; do
		pid=$(read_state "$s.pid")
		is_lab_orthanc "${pid:-0}" || { log "lab state present but $s is not running (try: lab.sh stop)"; exit 1; }
	done
	cat "$STATE/env"
}

do_logs() {
	state_dir
	log_tails "${1:-40}"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
start) do_start ;;
stop) take_lock; do_stop ;;
status) do_status ;;
env) do_env ;;
logs) do_logs "$@" ;;
-h|--help|help|"") usage ;;
*) log "unknown command: $cmd"; usage ;;
esac
