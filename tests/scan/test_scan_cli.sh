#!/bin/sh
# TAP tests of `diana scan`: exit status, one line per finding, never a value.
# usage: test_scan_cli.sh PATH/TO/diana   (DIANA_SYNTH names tests/tools/synth.py)
DIANA=$1
SYNTH=${DIANA_SYNTH:?}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# paths are scanned too: relative names, so that the random folder name never matches
cd "$T" || exit 1
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; for f in "$T/out" "$T/err"; do [ -f "$f" ] && sed 's/^/# /' "$f"; done; }
check() { # check NAME EXPECTED_STATUS CMD...
	name=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else notok "$name: exit $got, expected $want"; fi
}
contains() { # contains NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then ok "$1"; else notok "$1: '$3' not in output"; fi
}
lacks() { # lacks NAME PATTERN: neither stdout nor stderr holds it (case-insensitive)
	if grep -qi -- "$2" "$T/out" "$T/err"; then notok "$1: '$2' printed"; else ok "$1"; fi
}
lines() { # lines NAME FILE N
	got=$(wc -l <"$2")
	if [ "$got" -eq "$3" ]; then ok "$1"; else notok "$1: $got lines, expected $3"; fi
}

echo "TAP version 13"

# originals: synthetic studies with PHI (MUSTERMANN^ERIKA, PID-000456, 19710203, DIANA-CT-001...)
"$PY" "$SYNTH" --out "orig" --ct 2 --ct-slices 2 --ct-size 32x32 --quiet || { echo "Bail out! synth.py failed"; exit 1; }

# a de-identified copy made with pydicom: a whitelist of safe attributes, new UIDs, pseudonyms.
# plant=NAME:TAG:VALUE puts a value into an element to simulate a leak.
deid() { # deid SRC DST [TAG=VALUE]...
	"$PY" - "$@" <<'EOF'
import hashlib, sys
import pydicom
src, dst, plants = sys.argv[1], sys.argv[2], sys.argv[3:]
ds = pydicom.dcmread(src)
keep = {0x00080008, 0x00080016, 0x00080060, 0x00180015, 0x00200013, 0x00280002, 0x00280004,
        0x00280010, 0x00280011, 0x00280030, 0x00280100, 0x00280101, 0x00280102, 0x00280103,
        0x00281052, 0x00281053, 0x7FE00010}
for el in list(ds):
    if el.tag not in keep:
        del ds[el.tag]
uid = lambda s: "2.25.%d" % int(hashlib.sha256(s.encode()).hexdigest()[:30], 16)
ds.SOPInstanceUID = uid(src + "sop")
ds.StudyInstanceUID = uid("study")
ds.SeriesInstanceUID = uid("series")
ds.PatientName = "SHAM^PERSON"
ds.PatientID = "X7KQ2M"
ds.PatientIdentityRemoved = "YES"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
for p in plants:
    tag, vr, value = p.split(":", 2)
    ds.add_new(int(tag, 16), vr, value)
ds.save_as(dst, write_like_original=False)
EOF
}

mkdir -p "clean" "leaky"
deid "orig/DIANA-CT-001/1.dcm" "clean/a.dcm" || echo "Bail out! pydicom failed"
deid "orig/DIANA-CT-001/2.dcm" "clean/b.dcm"
deid "orig/DIANA-CT-002/1.dcm" "clean/c.dcm"

# --- usage -----------------------------------------------------------------
check "scan --help" 0 "$DIANA" scan --help
contains "help shows usage" "$T/out" "Usage: diana scan"
check "help lists scan" 0 "$DIANA" --help
contains "scan in the command list" "$T/out" "scan"
check "no arguments" 1 "$DIANA" scan
check "nothing to look for" 1 "$DIANA" scan "clean"
check "no OUTPUT" 1 "$DIANA" scan --value MUSTERMANN
check "bad option" 1 "$DIANA" scan --nope "clean"
check "value too short" 1 "$DIANA" scan --value ab "clean"

# --- clean outputs -----------------------------------------------------------
check "clean outputs against the originals" 0 "$DIANA" scan --original "orig" "clean"
lines "clean: nothing on stdout" "$T/out" 0
contains "clean: summary on stderr" "$T/err" "3 files, 0 with protected data, 0 unreadable"
check "clean outputs against values" 0 "$DIANA" scan --value "MUSTERMANN^ERIKA" --value PID-000456 "clean/a.dcm"

# --- leaks -------------------------------------------------------------------
deid "orig/DIANA-CT-001/1.dcm" "leaky/x.dcm" "00204000:LT:seen Erika Mustermann, born 1971-02-03" \
	"00081030:LO:DIANA-CT-001"
check "leak found" 2 "$DIANA" scan --original "orig" "leaky"
contains "finding: comment holds the name" "$T/out" "^leaky/x.dcm: 00204000: name$"
contains "finding: comment holds the birth date" "$T/out" "^leaky/x.dcm: 00204000: date$"
contains "finding: description holds the accession" "$T/out" "^leaky/x.dcm: 00081030: id$"
lines "one line per finding" "$T/out" 3
for v in MUSTERMANN ERIKA 1971-02-03 19710203 DIANA-CT-001 PID-000456; do
	lacks "no value printed ($v)" "$v"
done

# leak in the file name, with values given on the command line
cp "clean/a.dcm" "leaky/PID-000456.dcm"
check "file name leak" 2 "$DIANA" scan --value PID-000456 "leaky/PID-000456.dcm"
contains "finding: file name" "$T/out" "PID-000456.dcm: file name: id$"

# key file: the Original* columns
cat >"key.csv" <<'EOF'
OriginalPatientName,OriginalPatientID,OriginalPatientBirthDate,OriginalAccessionNumber,OriginalStudyInstanceUID,OriginalStudyDate,PseudoPatientName,PseudoPatientID,PseudoPatientBirthDate,PseudoAccessionNumber,PseudoStudyInstanceUID,PseudoStudyDate
MUSTERMANN^ERIKA,PID-000456,19710203,DIANA-CT-001,2.25.1234,20240301,SHAM^PERSON,X7KQ2M,19710101,A5T2,2.25.99,20240101
EOF
check "key file: clean" 0 "$DIANA" scan --key "key.csv" "clean"
check "key file: leak" 2 "$DIANA" scan --key "key.csv" "leaky/x.dcm"
contains "key file: the accession" "$T/out" "00081030: id$"
check "missing key file" 2 "$DIANA" scan --key "nope.csv" "clean"
printf 'a,b\r\n1,2\r\n' >"foreign.csv"
check "foreign key file" 2 "$DIANA" scan --key "foreign.csv" "clean"

# --- unreadable files fail closed -------------------------------------------
mkdir -p "mixed"
cp "clean/a.dcm" "mixed/"
echo "not DICOM" >"mixed/notes.txt"
head -c 600 "clean/b.dcm" >"mixed/truncated.dcm"
check "unreadable files" 2 "$DIANA" scan --original "orig" "mixed"
contains "unreadable: text file" "$T/out" "notes.txt: unreadable: "
contains "unreadable: truncated file" "$T/out" "truncated.dcm: unreadable: "
lines "one line per unreadable file" "$T/out" 2
contains "summary counts unreadable files" "$T/err" "3 files, 0 with protected data, 2 unreadable"
check "missing output" 2 "$DIANA" scan --value MUSTERMANN "does-not-exist"

echo "1..$n"
[ "$fails" -eq 0 ]
