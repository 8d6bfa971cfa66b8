#!/usr/bin/python3
"""Add up test results from meson test logs (meson-logs/<base>.json, one JSON
object per line). TAP tests count each 'ok'/'not ok' line, pytest runs count
each PASSED/FAILED/ERROR line, other tests count once. Prints the last line
'N passed, M failed'; exit 1 when anything failed or nothing passed, or when
a log is missing or empty (a suite that ran no test is a failure)."""
import json
import re
import sys

passed = failed = 0
problems = []
for path in sys.argv[1:]:
    try:
        lines = [l for l in open(path, encoding="utf-8", errors="replace") if l.strip()]
    except OSError as e:
        problems.append(f"missing test log {path}: {e.strerror}")
        failed += 1
        continue
    if not lines:
        problems.append(f"no test ran for {path}")
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or t.get("stdo") or ""
        result = t.get("result", "")
        ok_fail = None
        tap_ok = len(re.findall(r"^ok\b", out, re.M))
        tap_bad = len(re.findall(r"^not ok\b", out, re.M))
        py_ok = len(re.findall(r"::\S+ PASSED", out))
        py_bad = len(re.findall(r"::\S+ (?:FAILED|ERROR)", out))
        if tap_ok + tap_bad:
            ok_fail = (tap_ok, tap_bad)
        elif py_ok + py_bad:
            ok_fail = (py_ok, py_bad)
        else:
            ok_fail = (1, 0) if result in ("OK", "EXPECTEDFAIL") else (0, 1)
            if result == "SKIP":
                ok_fail = (0, 0)
        p, f = ok_fail
        # a test whose process failed counts as a failure even if its lines were all ok
        if result not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
            f = 1
        if f:
            problems.append(f"{t.get('name')}: {result}")
        passed += p
        failed += f
for p in problems:
    print("FAILED:", p)
if passed == 0:
    failed += 1
    print("FAILED: no test passed")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
