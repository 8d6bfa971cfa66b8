#!/bin/sh
# TAP tests of `diana dose`: stdout, --jsonl, --splunk against the local HEC
# receiver (tests/dose/hec_receiver.py), pseudonyms, exit codes, errors.
# usage: test_dose_cli.sh PATH/TO/diana     (DIANA_TEST_DATA names tests/data)
# SPDX-License-Identifier: MIT
DIANA=$1
DATA=${DIANA_TEST_DATA:?}/dicom
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
HEC_PID=
cleanup() { [ -n "$HEC_PID" ] && kill "$HEC_PID" 2>/dev/null && wait "$HEC_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
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
lacks() { # lacks NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then notok "$1: '$3' found in $2"; else ok "$1"; fi
}
pycheck() { # pycheck NAME SCRIPT ARGS...   (the script fails with an assertion)
	name=$1; script=$2; shift 2
	if $PY -c "$script" "$@" >"$T/pyout" 2>"$T/err"; then ok "$name"; else notok "$name"; fi
}

echo "TAP version 13"
umask 077
R=$DATA/rdsr

check "one report to stdout" 0 "$DIANA" dose "$R/synth-ct-rdsr.dcm"
pycheck "stdout is one JSON document with the report's values" '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
assert d["accession_number"] == "SYN-CT1"
assert [e["ctdivol"]["value"] for e in d["events"]] == [0.13, 7.81, 11.47]
assert d["totals"]["ct_dlp_total"] == {"value": 714.62, "unit": "mGy.cm"}
' "$T/out"

check "--pretty" 0 "$DIANA" dose --pretty "$R/synth-rf-rdsr-bigendian.dcm"
pycheck "--pretty output is indented JSON" '
import json, sys
t = open(sys.argv[1]).read()
assert t.count("\n") > 50
assert len(json.loads(t)["events"]) == 5
' "$T/out"

check "a folder: every dose report, the malformed one fails" 2 "$DIANA" dose "$R"
contains "the malformed report is named" "$T/err" "synth-bad-no-value-type.dcm"
pycheck "four reports on stdout" '
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
assert sorted(d["accession_number"] for d in docs) == ["SYN-CT1", "SYN-CT2", "SYN-RF1", "SYN-XA1"], docs
' "$T/out"

mkdir "$T/mixed"
cp "$R/synth-ct-rdsr.dcm" "$DATA/ct/CT_small.dcm" "$DATA/sr/reportsi.dcm" "$T/mixed/"
check "a folder with images and other SRs: skipped" 0 "$DIANA" dose "$T/mixed"
contains "summary counts the skipped objects" "$T/err" "1 report, 2 skipped"

check "a non-dose SR given by name" 2 "$DIANA" dose "$DATA/sr/reportsi.dcm"
contains "one-line error naming the file" "$T/err" "reportsi.dcm: not a radiation dose report"
check "a truncated file" 2 "$DIANA" dose "$DATA/malformed/MR_truncated.dcm"
contains "truncated: the file is named" "$T/err" "MR_truncated.dcm"
check "a missing file" 2 "$DIANA" dose "$T/none.dcm"
check "no input" 1 "$DIANA" dose
check "unknown option" 1 "$DIANA" dose --frobnicate "$R/synth-ct-rdsr.dcm"
check "--splunk without --token-file" 1 "$DIANA" dose --splunk http://127.0.0.1:1 --index i "$R/synth-ct-rdsr.dcm"
check "--index without --splunk" 1 "$DIANA" dose --index i "$R/synth-ct-rdsr.dcm"
check "--help" 0 "$DIANA" dose --help
contains "help names --splunk" "$T/out" "--splunk URL"

check "--jsonl" 0 "$DIANA" dose --jsonl "$T/dose.jsonl" "$R/synth-ct-rdsr.dcm" "$R/synth-ct-esr-implicit.dcm"
check "--jsonl appends" 0 "$DIANA" dose --jsonl "$T/dose.jsonl" "$R/synth-rf-rdsr-bigendian.dcm"
pycheck "JSONL: one line per report, appended, mode 0600" '
import json, os, stat, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
assert [d["accession_number"] for d in docs] == ["SYN-CT1", "SYN-CT2", "SYN-RF1"], docs
assert stat.S_IMODE(os.stat(sys.argv[1]).st_mode) == 0o600
' "$T/dose.jsonl"

# pseudonyms: the same secret as 'diana anon'
printf 'diana dose CLI test secret, 0123456789abcdef\n' >"$T/secret"
chmod 600 "$T/secret"
check "--secret-file" 0 "$DIANA" dose --secret-file "$T/secret" --option retain-long-modified-dates "$R/synth-ct-rdsr.dcm"
cp "$T/out" "$T/pseudo.json"
lacks "no date warning with a date option" "$T/err" "warning"
check "--secret-file without a date option" 0 "$DIANA" dose --secret-file "$T/secret" "$R/synth-ct-rdsr.dcm"
contains "warns that dates are removed" "$T/err" "warning: without --option retain-long-modified-dates"
pycheck "no times from removed dates" '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["time"] is None and d["study_date"] is None
assert all(e["datetime"] is None for e in d["events"])
' "$T/out"
lacks "no original accession number" "$T/pseudo.json" "SYN-CT1"
lacks "no original patient ID" "$T/pseudo.json" "SYN-PID-CT1"
check "diana anon with the same secret" 0 "$DIANA" anon --secret-file "$T/secret" --option retain-long-modified-dates \
	--option clean-structured-content -o "$T/anon" "$R/synth-ct-rdsr.dcm"
pycheck "accession, patient ID and study UID as in the de-identified object" '
import glob, json, sys
import pydicom
d = json.load(open(sys.argv[1]))
[f] = glob.glob(sys.argv[2] + "/**/*.dcm", recursive=True)
ds = pydicom.dcmread(f)
assert d["accession_number"] == ds.AccessionNumber, (d["accession_number"], ds.AccessionNumber)
assert d["patient_id"] == ds.PatientID
assert d["study_instance_uid"] == ds.StudyInstanceUID
assert d["events"][1]["ctdivol"]["value"] == 7.81
' "$T/pseudo.json" "$T/anon"

# Splunk HEC: a local receiver on 127.0.0.1
$PY "$HERE/hec_receiver.py" "$T/port" "$T/hec.log" &
HEC_PID=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
PORT=$(cat "$T/port" 2>/dev/null)
printf 'cli-token-5150\n' >"$T/token"
check "--splunk" 0 "$DIANA" dose --splunk "http://127.0.0.1:$PORT" --token-file "$T/token" --index dose \
	--sourcetype rdsr "$R/synth-ct-rdsr.dcm" "$R/synth-rf-rdsr-bigendian.dcm"
lacks "the token is not printed" "$T/err" "cli-token-5150"
contains "summary says sent" "$T/err" "2 reports sent"
pycheck "HEC got one POST with two events, token header, study time" '
import json, sys, calendar
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 1, reqs
r = reqs[0]
assert r["path"] == "/services/collector/event" and r["status"] == 200, r
assert r["auth"] == "Splunk cli-token-5150"
dec = json.JSONDecoder(); body = r["body"]; i = 0; evs = []
while i < len(body):
    o, i = dec.raw_decode(body, i); evs.append(o)
assert len(evs) == 2
assert evs[0]["index"] == "dose" and evs[0]["sourcetype"] == "rdsr"
# StudyDate/Time 20240304 101500 with TimezoneOffsetFromUTC +0100
assert evs[0]["time"] == calendar.timegm((2024, 3, 4, 9, 15, 0)), evs[0]["time"]
assert evs[1]["event"]["accession_number"] == "SYN-RF1"
' "$T/hec.log"
printf 'bad-token\n' >"$T/badtoken"
check "--splunk with a refused token" 2 "$DIANA" dose --splunk "http://127.0.0.1:$PORT" --token-file "$T/badtoken" \
	--index dose "$R/synth-ct-rdsr.dcm"
contains "refusal explained" "$T/err" "HTTP status 403"
lacks "the refused token is not printed" "$T/err" "bad-token"

# TLS: always verified; --ca-file trusts a private CA
if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$T/key.pem" -out "$T/cert.pem" 2>"$T/err"; then
	ok "test certificate made"
	$PY "$HERE/hec_receiver.py" "$T/tlsport" "$T/tls.log" "$T/cert.pem" "$T/key.pem" &
	TLS_PID=$!
	i=0
	while [ ! -s "$T/tlsport" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	TPORT=$(cat "$T/tlsport" 2>/dev/null)
	check "https HEC with an unknown CA is refused" 2 "$DIANA" dose --splunk "https://127.0.0.1:$TPORT" \
		--token-file "$T/token" --index dose "$R/synth-ct-rdsr.dcm"
	contains "the refusal names the certificate" "$T/err" "certificate"
	check "https HEC with --ca-file" 0 "$DIANA" dose --splunk "https://127.0.0.1:$TPORT" --ca-file "$T/cert.pem" \
		--token-file "$T/token" --index dose "$R/synth-ct-rdsr.dcm"
	contains "one event delivered over TLS" "$T/tls.log" '"status": 200'
	kill "$TLS_PID" 2>/dev/null
	wait "$TLS_PID" 2>/dev/null
else
	notok "openssl req makes a test certificate"
fi

echo "1..$n"
[ "$fails" -eq 0 ]
