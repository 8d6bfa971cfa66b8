#!/bin/sh
# Install what is missing (Debian 12), build, and run every test suite:
# unit (Criterion, header/symbol/CLI checks), lab (real Orthanc servers on
# loopback), python (ctypes binding), abi (abidiff against doc/abi), then the
# unit suite again under ASan+UBSan. Ends with one line "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 2
. tests/deps.sh

diana_ensure_packages $DIANA_BUILD_PACKAGES $DIANA_TEST_PACKAGES || exit 2

jobs=$(nproc 2>/dev/null || echo 2)
status=0
logs=""

run_suites() { # run_suites BUILD_DIR LOGBASE SUITE...
	dir=$1 base=$2
	shift 2
	args=""
	for s in "$@"; do args="$args --suite $s"; done
	rm -f "$dir/meson-logs/$base.json"
	# shellcheck disable=SC2086
	meson test -C "$dir" $args --num-processes "$jobs" --print-errorlogs --logbase "$base" || status=1
	logs="$logs $dir/meson-logs/$base.json"
}

echo "== build"
if ! diana_build build; then
	echo "0 passed, 1 failed"
	exit 1
fi
echo "== unit, python, abi"
run_suites build unit unit python abi
echo "== lab (real Orthanc servers on 127.0.0.1)"
run_suites build lab lab

echo "== unit under ASan+UBSan"
if diana_build build-asan -Db_sanitize=address,undefined -Dbuildtype=debug; then
	run_suites build-asan asan unit
else
	status=1
	logs="$logs build-asan/meson-logs/asan.json"
fi

/usr/bin/python3 tests/summarize.py $logs || status=1
exit $status
