#!/bin/bash
# tests/dimse/bench/toolkits.sh - the DIMSE toolkit measurement behind doc/dimse.md.
#
#   tests/dimse/bench/build.sh /tmp            # bench_gdcm, bench_dcmtk
#   DIANA_BINDSHIM=$PWD/build/tests/lab/libdiana-bindshim.so \
#   BENCH_DIANA=$PWD/build/tests/dimse/bench-dimse \
#   tests/lab/with-lab.sh tests/dimse/bench/toolkits.sh [RUNS]
#
# One 100-slice synthetic CT (synth.py) is uploaded to the lab PACS; each
# operation runs in its own process, RUNS times, interleaved (C-ECHO, C-FIND
# of one study, C-MOVE of the study into an SCP of the same process, C-GET,
# C-STORE of 100 other files on one association), for GDCM 3.0.21's network
# layer, DCMTK 3.6.7's DcmSCU, DCMTK's command-line tools and libdiana.
# Every local SCP is kept on 127.0.0.1 (the bind shim for the foreign ones).
# Prints each run, then medians: whole process | inside the process.
set -uo pipefail
RUNS=${1:-5}
: "${DIANA_LAB_TMP:?run me through tests/lab/with-lab.sh}"
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/../../lab
TOOLS=$HERE/../../tools
PY=${PYTHON:-/usr/bin/python3}
SHIM=${DIANA_BINDSHIM:?set DIANA_BINDSHIM to libdiana-bindshim.so}
H=$DIANA_LAB_PACS_HOST P=$DIANA_LAB_PACS_DICOM_PORT C=$DIANA_LAB_PACS_AET
ME=DIANA_BENCH MYPORT=${BENCH_SCP_PORT:-11113}
GDCM=${BENCH_GDCM:-/tmp/bench_gdcm} DCMTK=${BENCH_DCMTK:-/tmp/bench_dcmtk} DIANA=${BENCH_DIANA:-}
# bench-dimse sets TCP_NODELAY itself; run it with TCP_NODELAY unset to show it
unset TCP_NODELAY
W=$DIANA_LAB_TMP/bench
REST() { curl -s --max-time 60 -u "$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD" "$@"; }

mkdir -p "$W"
"$PY" "$TOOLS/synth.py" --out "$W/ct" --ct 1 --ct-slices 100 --quiet || exit 1
"$PY" "$TOOLS/synth.py" --out "$W/st" --ct 1 --ct-slices 100 --prefix STORE --quiet || exit 1
"$LAB/seed.sh" "$W/ct" >/dev/null || exit 1
ACC=$(awk -F, 'NR==2{print $1}' "$W/ct/manifest.csv")
SUID=$(awk -F, 'NR==2{print $3}' "$W/ct/manifest.csv")
STUID=$(awk -F, 'NR==2{print $3}' "$W/st/manifest.csv")
STFILES=("$W"/st/*/*.dcm)
REST -X PUT "$DIANA_LAB_PACS_URL/modalities/bench" \
	-d "{\"AET\":\"$ME\",\"Host\":\"127.0.0.1\",\"Port\":$MYPORT}" >/dev/null

ms() { date +%s%N; }
declare -A RES INP
run() { # label cmd...   (wall clock of the whole process)
	if [ "${1%%-*}" = gdcm ]; then local l=$1; shift; run_gdcm "$l" "$@"; return; fi
	local label=$1 t0 t1 rc
	shift
	t0=$(ms); "$@" >"$W/out.txt" 2>&1; rc=$?; t1=$(ms)
	if [ $rc != 0 ]; then echo "$label FAILED rc=$rc: $(tail -3 "$W/out.txt")"; return 1; fi
	local d=$(( (t1 - t0) / 1000 )) inproc
	inproc=$(grep -o ' ok [0-9.]* ms' "$W/out.txt" | awk '{print int($2 * 1000)}')
	echo "$label $((d / 1000)).$(( (d % 1000) / 100 )) ms${inproc:+ (in process $((inproc / 1000)) ms)}"
	RES[$label]+="$d "
	[ -n "$inproc" ] && INP[$label]+="$inproc "
	return 0
}
# GDCM 3.0.21 throws gdcm::Exception "ProtocolStream as nullptr is invalid" at the
# A-RELEASE of every association (see doc/dimse.md); bench_gdcm catches it and
# reports the time of the work done before it.  Keep such runs, flagged.
run_gdcm() {
	local label=$1 t0 t1 rc
	shift
	t0=$(ms); "$@" >"$W/out.txt" 2>&1; rc=$?; t1=$(ms)
	local d=$(( (t1 - t0) / 1000 )) inproc
	inproc=$(grep -o ' [0-9.]* ms n=' "$W/out.txt" | awk '{print int($1 * 1000)}')
	echo "$label $((d / 1000)).$(( (d % 1000) / 100 )) ms rc=$rc: $(tr '\n' ' ' <"$W/out.txt" | cut -c1-160)"
	RES[$label]+="$d "
	[ -n "$inproc" ] && INP[$label]+="$inproc "
	return $rc
}
clean_store() { # remove the STORE study from the PACS so every store run writes new files
	local id
	id=$(REST -X POST "$DIANA_LAB_PACS_URL/tools/lookup" -d "$STUID" | jq -r '.[0].ID // empty')
	[ -n "$id" ] && REST -X DELETE "$DIANA_LAB_PACS_URL/studies/$id" >/dev/null
	return 0
}
count() { # dir expected
	local n; n=$(find "$1" -type f | wc -l)
	[ "$n" = "$2" ] || { echo "expected $2 files in $1, got $n"; return 1; }
}
out() { rm -rf "$W/o"; mkdir -p "$W/o"; }

# One function per measurement; within each group (echo, find, move, get,
# store) the order is shuffled anew in every run (reproducibly: seeded by the
# run number), so that no tool always runs right after the same neighbour.
step_echo_gdcm() { run gdcm-echo env LD_PRELOAD="$SHIM" "$GDCM" echo "$H" "$P" "$C" "$ME"; }
step_echo_dcmtk() { run dcmtk-echo env TCP_NODELAY=1 "$DCMTK" echo "$H" "$P" "$C" "$ME"; }
step_echo_echoscu() { run echoscu env TCP_NODELAY=1 echoscu -aet "$ME" -aec "$C" "$H" "$P"; }
step_echo_diana() { [ -z "$DIANA" ] || run diana-echo "$DIANA" echo "$H" "$P" "$C" "$ME"; }

step_find_gdcm() { run gdcm-find env LD_PRELOAD="$SHIM" "$GDCM" find "$H" "$P" "$C" "$ME" "$ACC"; }
step_find_dcmtk() { run dcmtk-find env TCP_NODELAY=1 "$DCMTK" find "$H" "$P" "$C" "$ME" "$ACC"; }
step_find_findscu() {
	run findscu env TCP_NODELAY=1 findscu -S -aet "$ME" -aec "$C" -k QueryRetrieveLevel=STUDY \
		-k AccessionNumber="$ACC" -k PatientName -k PatientID -k StudyInstanceUID \
		-k NumberOfStudyRelatedInstances "$H" "$P"
}
step_find_diana() { [ -z "$DIANA" ] || run diana-find "$DIANA" find "$H" "$P" "$C" "$ME" "$ACC"; }

# C-MOVE of the 100 slices into an SCP of the same process (and movescu -> storescp)
step_move_gdcm() { out; run gdcm-move env LD_PRELOAD="$SHIM" "$GDCM" move "$H" "$P" "$C" "$ME" "$SUID" "$MYPORT" "$W/o" && count "$W/o" 100; }
step_move_movescu() {
	out; run movescu env TCP_NODELAY=1 LD_PRELOAD="$SHIM" movescu -S -aet "$ME" -aec "$C" -aem "$ME" --port "$MYPORT" \
		-od "$W/o" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$SUID" "$H" "$P" && count "$W/o" 100
}
step_move_movescu_nonagle() {
	out; run movescu-nonagle env LD_PRELOAD="$SHIM" movescu -S -aet "$ME" -aec "$C" -aem "$ME" --port "$MYPORT" \
		-od "$W/o" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$SUID" "$H" "$P" && count "$W/o" 100
}
step_move_storescp() {
	local scp
	out; TCP_NODELAY=1 LD_PRELOAD="$SHIM" storescp -aet "$ME" -od "$W/o" "$MYPORT" & scp=$!
	sleep 0.3
	run movescu+storescp env TCP_NODELAY=1 movescu -S -aet "$ME" -aec "$C" -aem "$ME" \
		-k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$SUID" "$H" "$P"
	sleep 0.2; kill "$scp"; wait "$scp" 2>/dev/null; count "$W/o" 100
}
step_move_diana() { [ -z "$DIANA" ] || { out; run diana-move "$DIANA" move "$H" "$P" "$C" "$ME" "$SUID" "$MYPORT" "$W/o" && count "$W/o" 100; }; }

# C-GET of the 100 slices (DCMTK only)
step_get_dcmtk() { out; run dcmtk-get env TCP_NODELAY=1 "$DCMTK" get "$H" "$P" "$C" "$ME" "$SUID" "$W/o" && count "$W/o" 100; }
step_get_getscu() {
	out; run getscu env TCP_NODELAY=1 getscu -S -aet "$ME" -aec "$C" -od "$W/o" \
		-k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$SUID" "$H" "$P" && count "$W/o" 100
}
step_get_getscu_nonagle() {
	out; run getscu-nonagle getscu -S -aet "$ME" -aec "$C" -od "$W/o" \
		-k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$SUID" "$H" "$P" && count "$W/o" 100
}
step_get_diana() { [ -z "$DIANA" ] || { out; run diana-get "$DIANA" get "$H" "$P" "$C" "$ME" "$SUID" "$W/o" && count "$W/o" 100; }; }
step_get_diana_reuse() { [ -z "$DIANA" ] || { out; run diana-5x-find+get-1-assoc "$DIANA" reuse "$H" "$P" "$C" "$ME" "$SUID" 5 "$W/o" && count "$W/o" 500; }; }

# C-STORE of 100 other files, one association
step_store_gdcm() { clean_store; run gdcm-store env LD_PRELOAD="$SHIM" "$GDCM" store "$H" "$P" "$C" "$ME" "${STFILES[@]}"; }
step_store_dcmtk() { clean_store; run dcmtk-store env TCP_NODELAY=1 "$DCMTK" store "$H" "$P" "$C" "$ME" "${STFILES[@]}"; }
step_store_storescu() { clean_store; run storescu env TCP_NODELAY=1 storescu -aet "$ME" -aec "$C" "$H" "$P" "${STFILES[@]}"; }
step_store_diana() { [ -z "$DIANA" ] || { clean_store; run diana-store "$DIANA" store "$H" "$P" "$C" "$ME" "${STFILES[@]}"; }; }

for i in $(seq "$RUNS"); do
	for g in echo find move get store; do
		for s in $(declare -F | awk '{print $3}' | grep "^step_${g}_" |
		           shuf --random-source=<(yes "$i")); do
			"$s"
		done
	done
done

med() { # microsecond values -> "median (min-max)" in ms
	[ -z "${1// /}" ] && { printf -- '-'; return; }
	# shellcheck disable=SC2086
	printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {if (!NR) {printf "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f (%.1f-%.1f)", m/1000, a[1]/1000, a[NR]/1000}'
}
echo "--- medians over $RUNS runs, ms: whole process | inside the process (association included)"
for k in $(printf '%s\n' "${!RES[@]}" | sort); do
	printf '%-26s %-24s %s\n' "$k" "$(med "${RES[$k]}")" "$(med "${INP[$k]:-}")"
done
