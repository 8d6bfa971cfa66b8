#!/bin/bash
# tests/lab/seed_test.sh - meson test 'lab-seed', run by with-lab.sh.
#
# synth.py -> seed.sh into the PACS (all Success; again: all AlreadyStored) ->
# the helper C-FINDs an accession on the PACS (names in ISO_IR 100 and
# ISO_IR 192 come back right) and C-MOVEs the study to itself.
# SPDX-License-Identifier: MIT
set -uo pipefail

LAB_DIR=${DIANA_LAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
TOOLS=${DIANA_LAB_TOOLS:-$LAB_DIR/../tools}
PY=${PYTHON:-/usr/bin/python3}
: "${DIANA_LAB_TMP:?run me through with-lab.sh}"
FAILS=0

ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

H() { curl -s --max-time 60 -u "$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD" "$@"; }
P() { curl -s --max-time 60 -u "$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD" "$@"; }

"$PY" -c 'import pydicom, numpy' 2>/dev/null || { echo "pydicom/numpy missing for $PY"; exit 77; }

data=$DIANA_LAB_TMP/synth
"$PY" "$TOOLS/synth.py" --out "$data" --ct 2 --ct-slices 5 --xr 3 --xr-size 256x256 --seed 3 ||
	{ bad "synth.py"; exit 1; }

out=$("$LAB_DIR/seed.sh" --json "$data")
rc=$?
check "seed.sh -> 0 (rc $rc)" test "$rc" = 0
check "13 files, all Success: $out" test "$(jq -r '"\(.files) \(.Success) \(.failed)"' <<<"$out")" = "13 13 0"
out=$("$LAB_DIR/seed.sh" --json "$data")
check "seeding again: all AlreadyStored: $out" \
	test "$(jq -r '"\(.AlreadyStored) \(.failed)"' <<<"$out")" = "13 0"
check "PACS /statistics: 13 instances, 5 studies" \
	test "$(P "$DIANA_LAB_PACS_URL/statistics" | jq -r '"\(.CountInstances) \(.CountStudies)"')" = "13 5"
check "helper is empty" \
	test "$(H "$DIANA_LAB_HELPER_URL/statistics" | jq -r .CountInstances)" = 0

# C-FIND by accession from the helper; compare with the manifest
find_study() { # accession -> query id
	H -X POST "$DIANA_LAB_HELPER_URL/modalities/$DIANA_LAB_PACS_MODALITY/query" \
		-d "{\"Level\":\"Study\",\"Query\":{\"AccessionNumber\":\"$1\",\"PatientName\":\"\",\"PatientID\":\"\",\"StudyInstanceUID\":\"\",\"NumberOfStudyRelatedInstances\":\"\"}}" |
		jq -r .ID
}
while IFS=, read -r acc pid suid n _mod name _date cs _bytes; do
	[ "$acc" = accession ] && continue
	case "$acc" in DIANA-CT-001|DIANA-XR-001|DIANA-XR-002|DIANA-XR-003) ;; *) continue ;; esac
	q=$(find_study "$acc")
	ans=$(H "$DIANA_LAB_HELPER_URL/queries/$q/answers?expand&simplify")
	# Orthanc 1.10.1 answers C-FIND in its "DefaultEncoding" (Latin1 unless set to
	# Utf8 on both servers): characters outside Latin-1 are dropped on the way.
	want=$name
	if [ "$(jq -r '.[0].SpecificCharacterSet' <<<"$ans")" = "ISO_IR 100" ]; then
		want=$(printf '%s' "$name" | iconv -c -f UTF-8 -t ISO-8859-1 | iconv -f ISO-8859-1 -t UTF-8)
		[ "$want" != "$name" ] && echo "note: C-FIND answered in ISO_IR 100: '$name' comes back as '$want'"
	fi
	check "C-FIND $acc ($cs): 1 answer, $want, $pid, $n instances" \
		test "$(jq -r '"\(length)|\(.[0].PatientName)|\(.[0].PatientID)|\(.[0].StudyInstanceUID)|\(.[0].NumberOfStudyRelatedInstances)"' <<<"$ans")" \
		= "1|$want|$pid|$suid|$n"
	if [ "$acc" = DIANA-CT-001 ]; then
		code=$(H -o /dev/null -w '%{http_code}' -X POST "$DIANA_LAB_HELPER_URL/queries/$q/retrieve" \
			-d "{\"TargetAet\":\"$DIANA_LAB_HELPER_AET\",\"Synchronous\":true}")
		check "C-MOVE $acc to the helper -> 200" test "$code" = 200
		sid=$(H -X POST "$DIANA_LAB_HELPER_URL/tools/lookup" -d "$suid" | jq -r '.[0].ID')
		check "helper has $acc with $n instances" \
			test "$(H "$DIANA_LAB_HELPER_URL/studies/$sid/instances" | jq length)" = "$n"
	fi
done <"$data/manifest.csv"

[ "$FAILS" = 0 ] && echo "all checks passed" && exit 0
echo "$FAILS check(s) failed"
exit 1
