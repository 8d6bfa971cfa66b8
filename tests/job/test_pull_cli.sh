#!/bin/sh
# TAP tests of `diana pull` against the lab (run through with-lab.sh): CT and
# XR studies plus an unknown accession through the Orthanc helper with
# de-identification; the output layout, the report, the key and its report,
# the leak scanner; a rerun skips everything; --dry-run writes nothing;
# kill -9 in the middle of a job, then a rerun completes it without
# duplicates. Expected values come from synth.py's manifest.
# usage: test_pull_cli.sh PATH/TO/diana
# SPDX-License-Identifier: MIT
DIANA=$1
: "${DIANA_LAB_TMP:?run through tests/lab/with-lab.sh}"
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "$DIANA_LAB_TMP/pull.XXXXXX")
bg=
cleanup() {
	[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; [ -f "$T/err" ] && sed 's/^/# /' "$T/err" | head -20; }
check() { # check NAME EXPECTED_STATUS CMD...
	name=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else notok "$name: exit $got, expected $want"; sed 's/^/# out: /' "$T/out" | head -20; fi
}
contains() { # contains NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then ok "$1"; else notok "$1: '$3' not in $2"; sed 's/^/# /' "$2" | head -10; fi
}
lacks() { # lacks NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then notok "$1: '$3' in $2"; grep -- "$3" "$2" | head -3 | sed 's/^/# /'; else ok "$1"; fi
}
is() { # is NAME GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1: got '$2', expected '$3'"; fi
}
pycheck() { # pycheck NAME SCRIPT ARGS...: a Python check, its stderr as the diagnostic
	name=$1; shift
	if "$PY" -c "$@" >"$T/py" 2>&1; then ok "$name"; else notok "$name"; sed 's/^/# /' "$T/py" | head -20; fi
}
dcm_count() { find "$1" -name '*.dcm' -type f 2>/dev/null | wc -l | tr -d ' '; }

echo "TAP version 13"
HELPER="orthanc+http://$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD@${DIANA_LAB_HELPER_URL#http://}?modality=pacs"

# --- data: 3 CT x 4 slices, 3 XR; and for the kill test 8 CT x 40 slices
if $PY "$DIANA_LAB_TOOLS/synth.py" --out "$T/data" --ct 3 --ct-slices 4 --ct-size 128x128 --xr 3 \
	--xr-size 128x128 --prefix PCLI -q 2>"$T/err" &&
	"$DIANA_LAB_DIR/seed.sh" "$T/data" >/dev/null 2>"$T/err"; then
	ok "seeded"
else
	notok "seeded"
fi
head -c 48 /dev/urandom | base64 >"$T/secret"
chmod 600 "$T/secret"
awk -F, 'NR > 1 { print $1 }' "$T/data/manifest.csv" >"$T/list"
echo "PCLI-NOPE-999" >>"$T/list"
nstudies=$(awk -F, 'NR > 1' "$T/data/manifest.csv" | wc -l | tr -d ' ')
ninst=$(awk -F, 'NR > 1 { s += $4 } END { print s }' "$T/data/manifest.csv")
is "manifest: 6 studies, 15 instances" "$nstudies/$ninst" "6/15"

# --- pull with de-identification: one unknown -> exit 2
OUT=$T/o1
check "pull: one unknown accession -> exit 2" 2 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$OUT" \
	--secret-file "$T/secret" --key "$T/key.csv" -j 2
cp "$T/out" "$T/pull1.out"
cp "$T/err" "$T/pull1.err"
is "pull: one line per accession and a summary and the key line" "$(wc -l <"$T/pull1.out" | tr -d ' ')" 9
contains "pull: summary counts" "$T/pull1.out" "^6 ok, 0 skipped, 1 unknown, 0 failed of 7; 15 instances"
[ "$(grep -c '^[0-9]*/7 ok ' "$T/pull1.out")" -eq 6 ] && ok "pull: six 'ok' lines" || notok "pull: six 'ok' lines"
contains "pull: the unknown accession's line (by its pseudonym)" "$T/pull1.out" "^7/7 unknown [A-Z0-9]* 0/0 instances"
lacks "pull: no original accession number on stdout" "$T/pull1.out" "PCLI-"
lacks "pull: no original accession number on stderr" "$T/pull1.err" "PCLI-"
contains "pull: stderr points to the report" "$T/pull1.err" "report.csv"
lacks "pull: no password on stderr" "$T/pull1.err" "$DIANA_LAB_HELPER_PASSWORD"
is "pull: $ninst files written" "$(dcm_count "$OUT")" "$ninst"
if [ -f "$OUT/report.csv" ]; then ok "report.csv written"; else notok "report.csv written"; fi
[ "$(grep -c unknown "$OUT/report.csv")" -eq 1 ] && ok "report.csv: the unknown accession listed once" ||
	notok "report.csv: the unknown accession listed once"
lacks "report.csv: no original accession numbers" "$OUT/report.csv" "PCLI-"
is "key report: mode 0600" "$(stat -c %a "$T/key.report.csv" 2>/dev/null)" 600
is "key: mode 0600" "$(stat -c %a "$T/key.csv" 2>/dev/null)" 600

# layout OUT/<pseudo PatientID>/<pseudo AccessionNumber>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm,
# named by the values inside; one key row per study; the key report maps every item
pycheck "layout, values, key rows and key report" '
import csv, os, sys
import pydicom
out, key, rep, manifest = sys.argv[1:5]
with open(manifest, newline="") as f:
    rows = list(csv.reader(f))
accs = {r[0]: r for r in rows[1:]}
keyrows = list(csv.DictReader(open(key, newline="")))
assert len(keyrows) == len(accs), "key rows %d, studies %d" % (len(keyrows), len(accs))
assert sorted(r["OriginalAccessionNumber"] for r in keyrows) == sorted(accs), "key: one row per study"
pseudo = {r["OriginalAccessionNumber"]: r for r in keyrows}
sops, dirs = set(), set()
for dp, dn, fn in os.walk(out):
    if "/.diana" in dp + "/" or dp.endswith(".diana"):
        continue
    for f in fn:
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, out).split(os.sep)
        if rel == ["report.csv"]:
            continue
        assert len(rel) == 4 and f.endswith(".dcm"), "unexpected file %s" % "/".join(rel)
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert rel[0] == ds.PatientID, "patient folder %s != %s" % (rel[0], ds.PatientID)
        assert rel[1] == ds.AccessionNumber, "accession folder"
        assert rel[2] == ds.SeriesInstanceUID, "series folder"
        assert f == ds.SOPInstanceUID + ".dcm", "file name"
        assert ds.SOPInstanceUID not in sops, "duplicate SOP Instance UID"
        sops.add(ds.SOPInstanceUID)
        dirs.add((rel[0], rel[1]))
want = {(r["PseudoPatientID"], r["PseudoAccessionNumber"]) for r in keyrows}
assert dirs == want, "folders %s != key %s" % (sorted(dirs), sorted(want))
rep = list(csv.DictReader(open(rep, newline="")))
assert [r["Index"] for r in rep] == [str(i) for i in range(1, 8)], [r["Index"] for r in rep]
for r in rep:
    if r["OriginalAccessionNumber"] == "PCLI-NOPE-999":
        assert r["Status"] == "unknown" and r["Reason"], r
    else:
        assert r["Status"] == "ok", r
        assert r["PseudoAccessionNumber"] == pseudo[r["OriginalAccessionNumber"]]["PseudoAccessionNumber"], r
' "$OUT" "$T/key.csv" "$T/key.report.csv" "$T/data/manifest.csv"

check "scan: the output is clean (key and originals protected)" 0 "$DIANA" scan --key "$T/key.csv" \
	--original "$T/data" --secret-file "$T/secret" -j 2 "$OUT"/*/
helper_left=$(curl -s -u "$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD" "$DIANA_LAB_HELPER_URL/studies")
is "the helper is emptied once the studies are written" "$helper_left" "[]"

# --- rerun: everything skipped, nothing new
find "$OUT" -name '*.dcm' -printf '%P %i %T@\n' | sort >"$T/files1"
check "rerun: exit 2 (the unknown stays unknown)" 2 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$OUT" \
	--secret-file "$T/secret" --key "$T/key.csv"
contains "rerun: everything skipped" "$T/out" "^0 ok, 6 skipped, 1 unknown, 0 failed of 7; 0 instances"
find "$OUT" -name '*.dcm' -printf '%P %i %T@\n' | sort >"$T/files2"
if cmp -s "$T/files1" "$T/files2"; then ok "rerun: no file written or replaced"; else notok "rerun: files changed"; fi
is "rerun: still one key row per study" "$(($(wc -l <"$T/key.csv") - 1))" "$nstudies"
pycheck "rerun: the key report keeps the pseudonyms of skipped studies" '
import csv, sys
rep = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rep) == 7, len(rep)
for r in rep:
    if r["Status"] == "skipped":
        assert r["PseudoAccessionNumber"], r
assert sum(r["Status"] == "skipped" for r in rep) == 6
' "$T/key.report.csv"

# --- dry run: queries only
check "dry run: exit 2 (one unknown)" 2 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$T/dry" \
	--secret-file "$T/secret" --key "$T/dry-key.csv" --dry-run
contains "dry run: counts and an estimate" "$T/out" "^dry run: 6 of 7 accession numbers found (1 unknown, 0 failed): 6 studies, 15 instances; estimate"
[ "$(grep -c '^[0-9]*/7 found ' "$T/out")" -eq 6 ] && ok "dry run: six 'found' lines" || notok "dry run: six 'found' lines"
lacks "dry run: no original accession number" "$T/out" "PCLI-"
is "dry run: no file written" "$(find "$T/dry" -type f 2>/dev/null | wc -l | tr -d ' ')" 0
if [ ! -e "$T/dry-key.csv" ] && [ ! -e "$T/dry-key.report.csv" ]; then ok "dry run: no key file"; else notok "dry run: no key file"; fi

# --- usage errors
check "usage: no secret" 1 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$T/u"
check "usage: --no-anonymize with --key" 1 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$T/u" --no-anonymize --key "$T/k.csv"
check "usage: bad window" 1 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$T/u" --secret-file "$T/secret" --window 25:00-07:00
check "usage: unknown option name" 1 "$DIANA" pull "$HELPER" --accessions "$T/list" -o "$T/u" --secret-file "$T/secret" --option retain-everything
check "missing accession file" 2 "$DIANA" pull "$HELPER" --accessions "$T/nope.txt" -o "$T/u" --secret-file "$T/secret"
check "pull --help" 0 "$DIANA" pull --help
contains "pull --help: usage" "$T/out" "Usage: diana pull"
contains "pull --help: the estimate is explained" "$T/out" "estimate is"

# --- kill -9 in the middle, then a rerun completes without duplicates
if $PY "$DIANA_LAB_TOOLS/synth.py" --out "$T/big" --ct 8 --ct-slices 40 --ct-size 128x128 --xr 0 --prefix PKIL -q 2>"$T/err" &&
	"$DIANA_LAB_DIR/seed.sh" "$T/big" >/dev/null 2>"$T/err"; then
	ok "seeded the larger set"
else
	notok "seeded the larger set"
fi
awk -F, 'NR > 1 { print $1 }' "$T/big/manifest.csv" >"$T/biglist"
bigtotal=$(awk -F, 'NR > 1 { s += $4 } END { print s }' "$T/big/manifest.csv")
OUT2=$T/o2
"$DIANA" pull "$HELPER" --accessions "$T/biglist" -o "$OUT2" --secret-file "$T/secret" --key "$T/key2.csv" \
	--max-studies-per-minute 60 >"$T/kill.out" 2>"$T/kill.err" &
bg=$!
i=0
while [ "$i" -lt 600 ] && [ "$(dcm_count "$OUT2")" -le 40 ] && kill -0 "$bg" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
kill -9 "$bg" 2>/dev/null
wait "$bg" 2>/dev/null
bg=
landed=$(dcm_count "$OUT2")
if [ "$landed" -gt 40 ] && [ "$landed" -lt "$bigtotal" ]; then
	ok "kill -9 after the first studies landed ($landed of $bigtotal files)"
else
	notok "kill -9 mid-job: $landed of $bigtotal files when killed"
	sed 's/^/# /' "$T/kill.out" "$T/kill.err" | head -10
fi
check "rerun after kill -9: complete (exit 0)" 0 "$DIANA" pull "$HELPER" --accessions "$T/biglist" -o "$OUT2" \
	--secret-file "$T/secret" --key "$T/key2.csv" -j 2
contains "rerun after kill -9: all 8 accounted for" "$T/out" "^[0-9]* ok, [0-9]* skipped, 0 unknown, 0 failed of 8; "
is "rerun after kill -9: every instance there" "$(dcm_count "$OUT2")" "$bigtotal"
pycheck "rerun after kill -9: no duplicate SOP Instance UID, one key row per study, no stray file" '
import csv, os, sys
import pydicom
out, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sops = []
for dp, dn, fn in os.walk(out):
    dn[:] = [d for d in dn if d != ".diana"]
    for f in fn:
        if dp == out and f == "report.csv":
            continue
        assert f.endswith(".dcm"), "stray file %s" % os.path.join(dp, f)
        sops.append(pydicom.dcmread(os.path.join(dp, f), stop_before_pixels=True).SOPInstanceUID)
assert len(sops) == len(set(sops)) == n, (len(sops), len(set(sops)), n)
rows = list(csv.DictReader(open(key, newline="")))
accs = [r["OriginalAccessionNumber"] for r in rows]
assert len(accs) == len(set(accs)) == 8, accs
' "$OUT2" "$T/key2.csv" "$bigtotal"
check "scan after kill -9 and rerun: clean" 0 "$DIANA" scan --key "$T/key2.csv" --secret-file "$T/secret" -j 2 \
	"$OUT2"/*/

# --- SIGTERM (like Ctrl-C in a terminal): the job stops soon, says so, a rerun finishes it
OUT3=$T/o3
"$DIANA" pull "$HELPER" --accessions "$T/biglist" -o "$OUT3" --secret-file "$T/secret" --key "$T/key3.csv" \
	--max-studies-per-minute 60 >"$T/term.out" 2>"$T/term.err" &
bg=$!
i=0
while [ "$i" -lt 600 ] && [ "$(dcm_count "$OUT3")" -le 40 ] && kill -0 "$bg" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
kill -TERM "$bg" 2>/dev/null
wait "$bg"
got=$?
bg=
is "SIGTERM: exit 2" "$got" 2
contains "SIGTERM: says how to finish" "$T/term.err" "rerun the same command to finish the job"
contains "SIGTERM: the summary is printed" "$T/term.out" " ok, 0 skipped, 0 unknown, 0 failed of 8; "
if [ -f "$T/key3.report.csv" ] && [ "$(wc -l <"$T/key3.report.csv")" -ge 2 ]; then
	ok "SIGTERM: the key report is written"
else
	notok "SIGTERM: the key report is written"
fi
check "SIGTERM: the rerun completes (exit 0)" 0 "$DIANA" pull "$HELPER" --accessions "$T/biglist" -o "$OUT3" \
	--secret-file "$T/secret" --key "$T/key3.csv" -j 2
is "SIGTERM: every instance there after the rerun" "$(dcm_count "$OUT3")" "$bigtotal"
is "SIGTERM: the key report has every accession" "$(($(wc -l <"$T/key3.report.csv") - 1))" 8

echo "1..$n"
[ "$fails" -eq 0 ]
