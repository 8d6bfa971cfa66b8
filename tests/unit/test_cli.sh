#!/bin/sh
# TAP tests of the diana command-line program: dispatch, help, exit status.
# usage: test_cli.sh PATH/TO/diana     (DIANA_TEST_DATA names tests/data)
DIANA=$1
DATA=${DIANA_TEST_DATA:?}/dicom
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; [ -f "$T/err" ] && sed 's/^/# /' "$T/err"; }
check() { # check NAME EXPECTED_STATUS CMD...
	name=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"; got=$?
	if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else notok "$name: exit $got, expected $want"; fi
}
one_line_stderr() {
	lines=$(wc -l <"$T/err")
	if [ "$lines" -eq 1 ]; then ok "$1: one line on stderr"; else notok "$1: $lines lines on stderr"; fi
}
contains() { # contains NAME FILE PATTERN
	if grep -q -- "$3" "$2"; then ok "$1"; else notok "$1: '$3' not in output"; fi
}

echo "TAP version 13"
check "no arguments is a usage error" 1 "$DIANA"
check "--help" 0 "$DIANA" --help
contains "--help lists dump" "$T/out" "dump"
check "--version" 0 "$DIANA" --version
contains "--version prints the version" "$T/out" "diana [0-9][0-9]*\.[0-9][0-9]*\.[0-9]"
check "unknown command" 1 "$DIANA" frobnicate
for c in dump version help; do
	check "$c --help" 0 "$DIANA" "$c" --help
	contains "$c --help shows usage" "$T/out" "Usage: diana $c"
done
check "help dump" 0 "$DIANA" help dump
check "dump without FILE" 1 "$DIANA" dump
check "dump with a bad option" 1 "$DIANA" dump --nope "$DATA/ct/CT_small.dcm"
check "dump missing file" 2 "$DIANA" dump "$T/does-not-exist.dcm"
one_line_stderr "dump missing file"
check "dump malformed file" 2 "$DIANA" dump "$DATA/malformed/MR_truncated.dcm"
one_line_stderr "dump malformed file"
check "dump CT" 0 "$DIANA" dump "$DATA/ct/CT_small.dcm"
contains "dump lists PatientName" "$T/out" "(0010,0010) PN PatientName"
contains "dump shows Rows" "$T/out" "(0028,0010) US Rows .*\[128\]"
check "dump --json" 0 "$DIANA" dump --json "$DATA/ct/CT_small.dcm"
if /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["00100010"]["vr"] == "PN", d["00100010"]
assert "Alphabetic" in d["00100010"]["Value"][0]
assert d["00280010"]["Value"] == [128]
assert "InlineBinary" not in d["7FE00010"], "pixel data must be left out by default"
' "$T/out" 2>"$T/err"; then ok "dump --json is DICOM JSON"; else notok "dump --json is DICOM JSON"; fi
check "dump --json --bulk --compact" 0 "$DIANA" dump --json --bulk --compact "$DATA/ct/CT_small.dcm"
lines=$(wc -l <"$T/out")
[ "$lines" -eq 1 ] && ok "compact JSON is one line" || notok "compact JSON has $lines lines"
contains "--bulk includes pixel data" "$T/out" '"7FE00010":{"vr":"OW","InlineBinary"'
check "dump --meta" 0 "$DIANA" dump --meta "$DATA/ct/CT_small.dcm"
contains "--meta shows the transfer syntax" "$T/out" "(0002,0010) UI TransferSyntaxUID"
echo "1..$n"
[ "$fails" -eq 0 ]
