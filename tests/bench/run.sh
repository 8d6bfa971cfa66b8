#!/bin/sh
# Run every benchmark (tests/bench/bench_*.sh). By hand only: never in CI,
# never with thresholds. Each prints ratios against a peer measured in the
# same run.  usage: tests/bench/run.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")"
rc=0
for b in bench_*.sh; do
	echo "== $b"
	sh "./$b" "$@" || rc=1
done
exit $rc
