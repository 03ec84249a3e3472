#!/usr/bin/env bash
# Runs every test: provisions what the tests need (scripts/provision.sh), builds the shim and CLI
# in release (the tests run real processes under the real libmemshim.so), then runs the whole
# workspace's tests, every test binary even when one fails. Arguments go to `cargo test`.
#
# Ends with one summary line, `memshim: N passed, N failed, N skipped`, after the skipped and
# failed tests by name. A test whose prerequisite is missing (tests/pythons) fails under CI=true
# and is skipped elsewhere. Exit status: non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/provision.sh ||
  echo "test.sh: going on without what provision.sh named; the tests that need it say so"
if ! cargo build --release --workspace; then
  echo "test.sh: the build failed, no test ran"
  echo "memshim: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
mkdir -p target
log=$PWD/target/test-output.log
skips=$PWD/target/test-skips.tsv
: >"$skips"
MEMSHIM_TEST_SKIPS=$skips cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
python3 scripts/test-summary.py "$log" "$skips" "$rc"
