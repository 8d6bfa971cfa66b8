#!/bin/sh
# TAP tests of `diana anon` on synthetic studies full of PHI (tests/tools/synth.py).
# usage: test_anon_cli.sh PATH/TO/diana     (DIANA_TEST_DATA names tests/data)
# SPDX-License-Identifier: MIT
DIANA=$1
DATA=${DIANA_TEST_DATA:?}/dicom
HERE=$(cd "$(dirname "$0")" && pwd)
SYNTH=$HERE/../tools/synth.py
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; [ -f "$T/err" ] && sed 's/^/# /' "$T/err" | head -20; }
check() { # check NAME EXPECTED_STATUS CMD...
	name=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else notok "$name: exit $got, expected $want"; fi
}
contains() { # contains NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then ok "$1"; else notok "$1: '$3' not in $2"; fi
}
pycheck() { # pycheck NAME SCRIPT ARGS...   (the script fails with an assertion)
	name=$1; script=$2; shift 2
	if $PY -c "$script" "$@" >"$T/pyout" 2>"$T/err"; then ok "$name"; else notok "$name"; fi
}

echo "TAP version 13"
umask 077
printf 'diana anon CLI test secret, 0123456789abcdef\n' >"$T/secret"
printf 'a different project secret for the CLI tests 42\n' >"$T/secret2"
chmod 600 "$T/secret" "$T/secret2"
cp "$T/secret" "$T/open-secret" && chmod 644 "$T/open-secret"

# synthetic studies: 7 CT studies of 2 slices, 3 radiographs: 10 studies of 6
# patients (the first has two CT studies 6 days apart), 3 character sets
if ! $PY "$SYNTH" --out "$T/in" --ct 7 --ct-slices 2 --ct-size 64x64 --xr 3 --xr-size 64x64 -q 2>"$T/err"; then
	notok "synth.py generates the input"
	echo "1..$n"
	exit 1
fi
ok "synth.py generates the input"
mv "$T/in/manifest.csv" "$T/manifest.csv"
nin=$(find "$T/in" -name '*.dcm' | wc -l)

check "anon --help" 0 "$DIANA" anon --help
contains "help names --secret-file" "$T/out" "secret-file"
check "no secret is a usage error" 1 "$DIANA" anon -o "$T/o0" "$T/in"
check "no output folder is a usage error" 1 "$DIANA" anon --secret-file "$T/secret" "$T/in"
check "no input is a usage error" 1 "$DIANA" anon --secret-file "$T/secret" -o "$T/o0"
check "unknown option name" 1 "$DIANA" anon --secret-file "$T/secret" --option retain-all -o "$T/o0" "$T/in"
check "bad -j" 1 "$DIANA" anon --secret-file "$T/secret" -j 0 -o "$T/o0" "$T/in"
check "a group-readable secret is refused" 2 "$DIANA" anon --secret-file "$T/open-secret" -o "$T/o0" "$T/in"
contains "the refusal says why" "$T/err" "group or others"
[ ! -e "$T/o0" ] && ok "nothing written without a profile" || notok "output written without a profile"

check "anon -j 3 with key and map" 0 "$DIANA" anon --secret-file "$T/secret" --key "$T/key.csv" \
	--map "$T/map.tsv" -j 3 -o "$T/o1" "$T/in"
contains "summary line" "$T/out" "^$nin written, 0 failed, 0 skipped"
nout=$(find "$T/o1" -type f | wc -l)
[ "$nout" -eq "$nin" ] && ok "one output per input ($nout)" || notok "$nout outputs for $nin inputs"
[ "$(find "$T/o1" -name '.*' | wc -l)" -eq 0 ] && ok "no temporary files left" || notok "temporary files left"
[ "$(wc -l <"$T/map.tsv")" -eq "$nin" ] && ok "map has one line per file" || notok "map lines"
[ "$(wc -l <"$T/key.csv")" -eq 11 ] && ok "key file: header + one row per study (10)" || notok "key file has $(wc -l <"$T/key.csv") lines"
[ "$(stat -c %a "$T/key.csv")" = 600 ] && ok "key file mode 0600" || notok "key file mode $(stat -c %a "$T/key.csv")"

# every output: tree names are the new values, and the values are pseudonyms
for f in $(find "$T/o1" -name '*.dcm' | sort); do
	"$DIANA" dump --json --meta "$f" >"$f.json" 2>>"$T/err" || echo "$f" >>"$T/dumpfail"
done
[ ! -f "$T/dumpfail" ] && ok "every output parses" || notok "outputs that do not parse: $(cat "$T/dumpfail")"
if [ -x /usr/bin/dcmdump ]; then
	bad=0
	for f in $(find "$T/o1" -name '*.dcm'); do /usr/bin/dcmdump "$f" >/dev/null 2>&1 || bad=$((bad + 1)); done
	[ "$bad" -eq 0 ] && ok "dcmdump reads every output" || notok "dcmdump fails on $bad outputs"
fi

pycheck "tree: OUT/PatientID/StudyUID/SeriesUID/SOPUID.dcm, UIDs valid" '
import json, os, re, sys
root = sys.argv[1]
uid = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith(".dcm"):
            continue
        p = os.path.join(dp, f)
        d = json.load(open(p + ".json"))
        v = lambda t: d[t]["Value"][0]
        rel = os.path.relpath(p, root).split(os.sep)
        assert rel == [v("00100020"), v("0020000D"), v("0020000E"), v("00080018") + ".dcm"], rel
        for t in ("0020000D", "0020000E", "00080018", "00020003", "00200052"):
            if t not in d:
                continue
            assert uid.match(v(t)) and len(v(t)) <= 64 and v(t).startswith("2.25."), (t, v(t))
        assert v("00020003") == v("00080018")
        assert v("00120062") == "YES"
' "$T/o1"

pycheck "no PHI survives in any output or path" '
import csv, json, os, sys
root, manifest = sys.argv[1], sys.argv[2]
phi = set()
for row in csv.DictReader(open(manifest, encoding="utf-8")):
    for k in ("accession", "patient_id", "study_uid", "patient_name", "study_date"):
        phi.add(row[k])
    phi.update(p for p in row["patient_name"].split("^") if len(p) >= 4)
# constants synth.py writes into every file
phi.update(["HAUSARZT", "RADIOLOGE", "MTRA^MARTIN", "ZUWEISER", "DIANA-LAB-KIS",
            "Klinikstra", "Hospital Road", "Szpitalna", "Musterweg", "Elm Street",
            "PID-000", "PID-001", "PID-002", "PID-004", "KIS-7712", "MRN-555", "private copy",
            "19710203", "19580717", "19640229", "19851111", "19490530", "19920914",
            "Springfield", "Stuttgart", "Paris", "Kraków", "SN-CT-", "SN-XR-", "-DIANA-0"])
phi = {p for p in phi if p}
found = []
def walk(obj, where):
    if isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, where + "/" + k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            walk(v, "%s[%d]" % (where, i))
    elif isinstance(obj, str):
        for p in phi:
            if p.lower() in obj.lower():
                found.append(where)
for dp, dn, fn in os.walk(root):
    for f in fn:
        p = os.path.join(dp, f)
        for x in phi:
            assert x.lower() not in os.path.relpath(p, root).lower(), "PHI in a path name"
        if f.endswith(".json"):
            walk(json.load(open(p, encoding="utf-8")), f)
        elif f.endswith(".dcm"):
            raw = open(p, "rb").read()
            for x in phi:
                for enc in ("utf-8", "latin-1"):
                    try:
                        b = x.encode(enc)
                    except UnicodeEncodeError:
                        continue
                    if b in raw:
                        found.append(f + " (bytes)")
assert not found, "%d protected values survive, e.g. at %s" % (len(found), found[:3])
' "$T/o1" "$T/manifest.csv"

pycheck "references stay intact: one study/series/frame UID per study, distinct across studies" '
import json, os, sys, collections
root = sys.argv[1]
per_series = collections.defaultdict(set)
studies = set()
for dp, dn, fn in os.walk(root):
    for f in fn:
        if f.endswith(".json"):
            d = json.load(open(os.path.join(dp, f)))
            v = lambda t: d[t]["Value"][0] if t in d and "Value" in d[t] else None
            per_series[v("0020000E")].add((v("0020000D"), v("00200052"), v("00100020")))
            studies.add(v("0020000D"))
assert len(studies) == 10, len(studies)
for s, vals in per_series.items():
    assert len(vals) == 1, (s, vals)
' "$T/o1"

pycheck "map lines name existing outputs for every input" '
import os, sys
lines = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
ins = sorted(l[0] for l in lines)
assert all(os.path.isfile(o) for i, o in lines)
assert len(set(o for i, o in lines)) == len(lines)
' "$T/map.tsv"

# deterministic: same secret, same tree and bytes (one thread this time)
check "second run, -j 1" 0 "$DIANA" anon --secret-file "$T/secret" -o "$T/o2" "$T/in"
if diff -r -x '*.json' "$T/o1" "$T/o2" >"$T/err" 2>&1; then ok "same secret: identical output tree"; else notok "same secret: trees differ"; fi
check "--sync-each" 0 "$DIANA" anon --secret-file "$T/secret" --sync-each -j 2 -o "$T/o2s" "$T/in"
if diff -r -x '*.json' "$T/o1" "$T/o2s" >"$T/err" 2>&1; then ok "--sync-each: identical output tree"; else notok "--sync-each: trees differ"; fi
check "--no-sync" 0 "$DIANA" anon --secret-file "$T/secret" --no-sync -j 2 -o "$T/o2n" "$T/in"
if diff -r -x '*.json' "$T/o1" "$T/o2n" >"$T/err" 2>&1; then ok "--no-sync: identical output tree"; else notok "--no-sync: trees differ"; fi
check "--sync-each with --no-sync is a usage error" 1 "$DIANA" anon --secret-file "$T/secret" --sync-each --no-sync \
	-o "$T/o0" "$T/in"
contains "--sync-each with --no-sync: says why" "$T/err" "exclude each other"
check "another secret" 0 "$DIANA" anon --secret-file "$T/secret2" -o "$T/o3" "$T/in"
common=$(cd "$T/o1" && find . -type f -name '*.dcm' | sort >"$T/l1"; cd "$T/o3" && find . -type f -name '*.dcm' | sort >"$T/l3"; comm -12 "$T/l1" "$T/l3" | wc -l)
[ "$common" -eq 0 ] && ok "another secret: no path in common" || notok "another secret: $common paths in common"

# longitudinal option: intervals between a patient's studies survive
check "retain-long-modified-dates" 0 "$DIANA" anon --secret-file "$T/secret" --option retain-long-modified-dates \
	--option retain-patient-characteristics -o "$T/o4" "$T/in"
for f in $(find "$T/o4" -name '*.dcm'); do "$DIANA" dump --json "$f" >"$f.json"; done
pycheck "dates shifted by one offset per patient, within 365 days" '
import csv, datetime, json, os, sys, collections
root, manifest = sys.argv[1], sys.argv[2]
orig = {}
for row in csv.DictReader(open(manifest, encoding="utf-8")):
    orig[row["accession"]] = (row["patient_id"], row["study_date"])
shifts = collections.defaultdict(set)
day = lambda s: datetime.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
by_patient = collections.defaultdict(set)
for dp, dn, fn in os.walk(root):
    for f in fn:
        if f.endswith(".json"):
            d = json.load(open(os.path.join(dp, f)))
            by_patient[d["00100020"]["Value"][0]].add(d["00080020"]["Value"][0])
            assert d["00280303"]["Value"] == ["MODIFIED"]
            assert d["00100040"]["Value"][0] in ("F", "M")
orig_by_patient = collections.defaultdict(set)
for acc, (pid, date) in orig.items():
    orig_by_patient[pid].add(date)
assert sorted(len(v) for v in by_patient.values()) == sorted(len(v) for v in orig_by_patient.values())
assert max(len(v) for v in by_patient.values()) == 2, "no patient with two studies"
for new in by_patient.values():
    new = sorted(new)
    # some original patient has the same dates, all shifted by one offset in -365..-1
    ok = False
    for old in orig_by_patient.values():
        old = sorted(old)
        if len(old) != len(new):
            continue
        deltas = {(day(n) - day(o)).days for n, o in zip(new, old)}
        if len(deltas) == 1 and -365 <= deltas.pop() <= -1:
            ok = True
    assert ok, new
' "$T/o4" "$T/manifest.csv"

# bad inputs: reported with their path, skipped; the others are still written
mkdir -p "$T/mixed"
cp "$T/in/DIANA-CT-001/1.dcm" "$T/mixed/good.dcm"
cp "$DATA/malformed/MR_truncated.dcm" "$T/mixed/truncated.dcm"
echo "not dicom" >"$T/mixed/notes.txt"
cp "$DATA/dicomdir/pydicom_dicomdirtests/DICOMDIR" "$T/mixed/DICOMDIR"
check "mixed inputs: non-zero exit" 2 "$DIANA" anon --secret-file "$T/secret" -o "$T/o5" "$T/mixed" "$T/absent.dcm"
contains "the truncated file is named" "$T/err" "truncated.dcm"
contains "the text file is named" "$T/err" "notes.txt"
contains "the missing input is named" "$T/err" "absent.dcm"
contains "DICOMDIR skipped with a note" "$T/err" "DICOMDIR skipped"
contains "summary counts" "$T/out" "^1 written, 3 failed, 1 skipped"
[ "$(find "$T/o5" -name '*.dcm' | wc -l)" -eq 1 ] && ok "the good file is written" || notok "good file not written"
if grep -q -i -e "MUSTERMANN" -e "PID-0" -e "DOE^JOHN" "$T/err"; then notok "PHI in error messages"; else ok "no PHI in error messages"; fi

echo "1..$n"
[ "$fails" -eq 0 ]
