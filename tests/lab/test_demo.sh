#!/bin/sh
# TAP test of examples/demo.sh, the README's first command, against this
# build: the whole demo (lab up, synthetic studies, dry run, de-identified
# pull through the helper, key, leak scan, lab down) must succeed.
# usage: test_demo.sh BUILD_DIR
# SPDX-License-Identifier: MIT
build=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$T/log" | tail -40; }

echo "TAP version 13"
DIANA_DEMO_BUILD=$build DIANA_DEMO_OUT=$T/out sh "$top/examples/demo.sh" >"$T/log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then ok "examples/demo.sh exits 0"; else notok "examples/demo.sh: exit $rc"; fi
if grep -q "clean: no protected value found" "$T/log"; then ok "its leak scan is clean"; else notok "no clean scan"; fi
files=$(find "$T/out/pulled" -name '*.dcm' 2>/dev/null | wc -l)
want=$(awk -F, 'NR > 1 { s += $4 } END { print s + 0 }' "$T/out/studies/manifest.csv" 2>/dev/null)
if [ "$files" -gt 0 ] && [ "$files" -eq "$want" ]; then ok "every instance pulled ($files)"; else notok "$files files pulled, $want expected"; fi
mode=$(stat -c %a "$T/out/key.csv" 2>/dev/null)
if [ "$mode" = 600 ]; then ok "the key file is mode 600"; else notok "key file mode '$mode'"; fi
if grep -q "lab: stopped" "$T/log"; then ok "the demo stopped its lab"; else notok "no 'lab: stopped' in the demo's output"; fi
echo "1..$n"
[ "$fails" -eq 0 ]
