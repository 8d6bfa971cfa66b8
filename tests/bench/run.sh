#!/bin/sh
# Run every benchmark (tests/bench/bench_*.sh). By hand only: never in CI,
# never with thresholds. Each prints ratios against a peer measured in the
# same run.  usage: tests/bench/run.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")"
rc=0
# bench_pull.sh (retrieval: diana pull against the original DIANA flow and
# getscu) is run by the loop below like the others: it starts its own Orthanc
# lab (tests/lab/with-lab.sh, waits for the machine-wide lab lock) and takes
# ~10-20 min at full size; BENCH_PULL_ARGS="--quick" (or "--runs N
# --profile") in the environment passes options to it. See doc/bench-pull.md.
for b in bench_*.sh; do
	echo "== $b"
	sh "./$b" "$@" || rc=1
done
exit $rc
