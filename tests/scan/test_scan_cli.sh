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

# --- the outputs' options (--option, the names of diana anon) -----------------
head -c 48 /dev/urandom | base64 >"secret"
chmod 600 "secret"
# (orig/manifest.csv is no DICOM: anon exits 2 for it)
"$DIANA" anon --secret-file "secret" --option retain-long-full-dates --option retain-device-identity \
	-o "anon-full" "orig/DIANA-CT-001" "orig/DIANA-CT-002" >"$T/out" 2>"$T/err"
contains "anon with retain options" "$T/out" "^4 written, 0 failed"
check "retained values are findings without --option" 2 "$DIANA" scan --original "orig" "anon-full"
contains "the kept study date is reported" "$T/out" ": 00080020: date$"
contains "the kept serial number is reported" "$T/out" ": 00181000: id$"
# (with the secret: a sham Operators' Name may share a word with a protected
# name under a random secret, see --secret-file below)
check "told with --option: nothing" 0 "$DIANA" scan --original "orig" --option retain-long-full-dates \
	--option retain_device_identity --secret-file "secret" "anon-full"
check "--option after the sources works the same" 0 "$DIANA" scan --original "orig" --key "key.csv" \
	--option retain-long-full-dates --option "Retain Device Identity" --secret-file "secret" "anon-full"
check "one option only: the other's values are still found" 2 "$DIANA" scan --original "orig" \
	--option retain-long-full-dates "anon-full"
contains "serial number still reported" "$T/out" ": 00181000: id$"
lacks "study date no longer reported" ": 00080020: date"
check "non-retained values still found with --option" 2 "$DIANA" scan --original "orig" \
	--option retain-long-full-dates --option retain-device-identity "leaky/x.dcm"
contains "the planted accession number" "$T/out" "x.dcm: 00081030: id$"
check "unknown --option" 1 "$DIANA" scan --option retain-everything --original "orig" "anon-full"
check "exclusive options" 1 "$DIANA" scan --option retain-long-full-dates \
	--option retain-long-modified-dates --original "orig" "anon-full"

# --- -j N: the same report as -j 1 -------------------------------------------
check "scan -j 1" 2 "$DIANA" scan -j 1 --original "orig" --key "key.csv" "clean" "leaky" "mixed" "anon-full"
mv "$T/out" "j1.out"
mv "$T/err" "j1.err"
check "scan -j 4" 2 "$DIANA" scan -j 4 --original "orig" --key "key.csv" "clean" "leaky" "mixed" "anon-full"
if cmp -s "j1.out" "$T/out" && cmp -s "j1.err" "$T/err"; then ok "-j 4 prints the same as -j 1"; else notok "-j 4 differs from -j 1"; diff "j1.out" "$T/out" | sed 's/^/# /'; fi
contains "-j 4 found the leaks" "$T/out" "x.dcm: 00081030: id$"
# --- --secret-file: the engine's sham names are its own ---------------------
# A sham name comes from the engine's name lists, which hold common names: it
# can share a word with a real one (seen in the pull lab test, a run in ten).
printf 'scan cli test secret: 0123456789abcdef0123456789\n' >"sec"
printf 'another scan cli test secret: abcdefghijklmnopqrstuvwxyz\n' >"sec2"
chmod 600 "sec" "sec2"
"$DIANA" anon --secret-file "sec" -o "sham" "orig/DIANA-CT-001/1.dcm" >/dev/null 2>&1
shamf=$(find "sham" -name '*.dcm' | head -1)
op=$("$PY" -c 'import pydicom, sys; print(pydicom.dcmread(sys.argv[1]).OperatorsName)' "$shamf")
fam=${op%%^*}
if [ -n "$fam" ] && [ "$op" != "MTRA^MARTIN" ]; then ok "the operator got a sham name"; else notok "operator name: '$op'"; fi
check "a sham sharing a word with a protected name: a finding without the secret" 2 "$DIANA" scan \
	--value "MTRA^MARTIN" --value "$fam^ZZYZX" "sham"
contains "... in Operators' Name" "$T/out" ": 00081070: name$"
check "with --secret-file the engine's sham is its own" 0 "$DIANA" scan --secret-file "sec" \
	--value "MTRA^MARTIN" --value "$fam^ZZYZX" "sham"
mkdir -p "shamleak"
deid "orig/DIANA-CT-001/1.dcm" "shamleak/a.dcm" "00081070:PN:$fam^ZZYZX" || echo "Bail out! pydicom failed"
check "with --secret-file a real name is still found" 2 "$DIANA" scan --secret-file "sec" \
	--value "MTRA^MARTIN" --value "$fam^ZZYZX" "shamleak"
contains "... the planted name" "$T/out" "a.dcm: 00081070: name$"
check "with another secret the sham is a finding again" 2 "$DIANA" scan --secret-file "sec2" \
	--value "MTRA^MARTIN" --value "$fam^ZZYZX" "sham"
# the patient's sham name is keyed by the patient (Patient ID), not by the name:
# known from an original dataset
pn=$("$PY" -c 'import pydicom, sys; print(pydicom.dcmread(sys.argv[1]).PatientName)' "$shamf")
pfam=${pn%%^*}
check "a patient's sham sharing a word with a protected name: a finding without the secret" 2 \
	"$DIANA" scan --original "orig/DIANA-CT-001/1.dcm" --value "$pfam^QWXZY" "sham"
contains "... in Patient Name" "$T/out" ": 00100010: name$"
check "with --secret-file the patient's sham is the engine's (from the original, no key file)" 0 \
	"$DIANA" scan --secret-file "sec" --original "orig/DIANA-CT-001/1.dcm" --value "$pfam^QWXZY" "sham"
check "--secret-file: a missing file" 2 "$DIANA" scan --secret-file "nope" --value MUSTERMANN "clean"

check "-j 0" 1 "$DIANA" scan -j 0 --value MUSTERMANN "clean"
check "-j x" 1 "$DIANA" scan -j x --value MUSTERMANN "clean"

echo "1..$n"
[ "$fails" -eq 0 ]
