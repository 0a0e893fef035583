#!/usr/bin/env bash
# The long reliability runs (CI runs the short versions of the same tests):
#   - kill -9 under load: SWITCHBOARD_CHAOS_KILLS SIGKILLs (default 20) of the real daemon
#     while webhooks and outbound messages flow; every acknowledged webhook is in the inbox
#     exactly once and the mock provider received every accepted message exactly once;
#   - the duplicate storm, hostile input (proptest, with PROPTEST_CASES cases) and disk full.
# Usage: bench/chaos.sh [kills] [proptest-cases]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
CASES=${2:-2000}
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
# The tests start the real daemon binary (`cargo xtask test` builds it; alone it may be missing).
cargo build -p switchboard
SWITCHBOARD_CHAOS_KILLS="$KILLS" cargo test -p switchboard-tests --test chaos -- --nocapture --test-threads 1
PROPTEST_CASES="$CASES" cargo test -p switchboard --lib verify:: -- --test-threads 2
PROPTEST_CASES="$CASES" cargo test -p switchboard-tests --test hostile_input --test disk_full -- --nocapture
