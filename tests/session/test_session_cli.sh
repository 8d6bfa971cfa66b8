#!/bin/sh
# TAP tests of `diana echo|find|get|store` against the lab (run through with-lab.sh).
# usage: test_session_cli.sh PATH/TO/diana
# SPDX-License-Identifier: MIT
DIANA=$1
: "${DIANA_LAB_TMP:?run through tests/lab/with-lab.sh}"
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "$DIANA_LAB_TMP/cli.XXXXXX")
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
	if grep -q -- "$3" "$2"; then ok "$1"; else notok "$1: '$3' not in $2"; sed 's/^/# /' "$2" | head -10; fi
}
lacks() { # lacks NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then notok "$1: '$3' in $2"; else ok "$1"; fi
}

echo "TAP version 13"
host=${DIANA_LAB_PACS_URL#http://}
PACS="orthanc+http://$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD@$host"
HELPER="orthanc+http://$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD@${DIANA_LAB_HELPER_URL#http://}"
DICOM="dicom://$DIANA_LAB_PACS_AET@$DIANA_LAB_PACS_HOST:$DIANA_LAB_PACS_DICOM_PORT?aet=DIANA_C"
curl -s -u "$DIANA_LAB_PACS_USER:$DIANA_LAB_PACS_PASSWORD" -X PUT -d '{"AET":"DIANA_C","Host":"127.0.0.1","Port":14292}' \
	"$DIANA_LAB_PACS_URL/modalities/session-cli" >/dev/null

if $PY "$DIANA_LAB_TOOLS/synth.py" --out "$T/data" --ct 1 --ct-slices 4 --xr 1 --xr-size 128x128 --prefix SCLI -q 2>"$T/err" &&
	"$DIANA_LAB_DIR/seed.sh" "$T/data" >/dev/null 2>"$T/err"; then
	ok "seeded"
else
	notok "seeded"
fi
uid=$(awk -F, '$1=="SCLI-CT-001"{print $3}' "$T/data/manifest.csv")
pid=$(awk -F, '$1=="SCLI-CT-001"{print $2}' "$T/data/manifest.csv")

for uri in "$PACS" "$HELPER?modality=pacs" "$DICOM"; do
	kind=${uri%%:*}
	case $uri in *modality*) kind=helper ;; esac
	check "echo $kind" 0 "$DIANA" echo "$uri"
	contains "echo $kind says ok" "$T/out" ": ok ("
	lacks "echo $kind shows no password" "$T/out" "secret"
	check "find $kind" 0 "$DIANA" find "$uri" AccessionNumber=SCLI-CT-001
	contains "find $kind: header line" "$T/out" "^AccessionNumber"
	contains "find $kind: the study UID" "$T/out" "$uid"
	contains "find $kind: the patient ID" "$T/out" "$pid"
	check "find $kind --json" 0 "$DIANA" find "$uri" --json AccessionNumber=SCLI-CT-001
	if $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==1 and d[0]["0020000D"]["Value"]==[sys.argv[2]]' "$T/out" "$uid" 2>"$T/err"; then
		ok "find $kind --json: one DICOM JSON answer"
	else
		notok "find $kind --json: one DICOM JSON answer"
	fi
	check "find $kind --level series" 0 "$DIANA" find "$uri" --level series "StudyInstanceUID=$uid"
	[ "$(wc -l <"$T/out")" -eq 2 ] && ok "find $kind: one series" || notok "find $kind: one series"
	rm -rf "$T/get"
	check "get $kind" 0 "$DIANA" get "$uri" --study "$uid" -o "$T/get"
	[ "$(find "$T/get/$uid" -name '*.dcm' | wc -l)" -eq 4 ] && ok "get $kind: 4 files in DIR/<study>/<series>/" ||
		notok "get $kind: 4 files"
	contains "get $kind: summary" "$T/out" "^4 instances"
done

check "find: unknown keyword is a usage-like failure" 2 "$DIANA" find "$PACS" NoSuchKey=1
contains "find: the error names the key" "$T/err" "NoSuchKey"
check "find: bad level" 1 "$DIANA" find "$PACS" --level galaxy
check "get: --study required" 1 "$DIANA" get "$PACS" -o "$T/x"
check "get: unknown study" 2 "$DIANA" get "$PACS" --study 1.2.3.4.999 -o "$T/x"
contains "get: unknown study says so" "$T/err" "no such study"
start=$(date +%s)
check "echo: nothing listens" 2 "$DIANA" echo --connect-timeout 3 orthanc+http://u:p@127.0.0.1:1
[ $(( $(date +%s) - start )) -le 10 ] && ok "echo: fails within the timeout" || notok "echo: fails within the timeout"
[ "$(wc -l <"$T/err")" -eq 1 ] && ok "echo: one line on stderr" || notok "echo: one line on stderr"
check "echo: wrong password" 2 "$DIANA" echo "orthanc+http://$DIANA_LAB_PACS_USER:bad-pw@$host"
lacks "echo: the password is not shown" "$T/err" "bad-pw"
check "echo: refused association" 2 "$DIANA" echo "dicom://NOT_THE_PACS@$DIANA_LAB_PACS_HOST:$DIANA_LAB_PACS_DICOM_PORT?aet=DIANA_C"
check "echo: malformed URI" 2 "$DIANA" echo "dicom://127.0.0.1:104"
check "echo: unknown scheme" 2 "$DIANA" echo "gopher://x:1"

# store: the helper's own store, a folder with a non-DICOM file in it
mkdir -p "$T/st"
cp "$T/data/SCLI-XR-001/"*.dcm "$T/st/"
echo "not dicom" >"$T/st/zz.dcm"
check "store: one bad file fails the command" 2 "$DIANA" store "$HELPER" "$T/st"
contains "store: the good file is stored" "$T/out" "^1 of 2 files stored, 1 failed"
contains "store: the bad file is named" "$T/err" "zz.dcm"
check "store: find it there" 0 "$DIANA" find "$HELPER" AccessionNumber=SCLI-XR-001
[ "$(wc -l <"$T/out")" -eq 2 ] && ok "store: found" || notok "store: found"
rm "$T/st/zz.dcm"
check "store by C-STORE" 0 "$DIANA" store "$DICOM" "$T/st"
contains "store by C-STORE: summary" "$T/out" "^1 of 1 files stored, 0 failed"

for c in echo find get store; do
	check "$c --help" 0 "$DIANA" "$c" --help
	contains "$c --help: usage" "$T/out" "Usage: diana $c"
done
echo "1..$n"
[ "$fails" -eq 0 ]
