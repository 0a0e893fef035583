#!/usr/bin/env bash
# How fast could durable ingest be on this machine with a cheaper store? Builds the daemon
# with the benchmark-only `ceiling` feature (host/src/store/redb/ceiling.rs) into
# target/ceiling (its own release build, ~7 min the first time) and runs, with bench/ab.sh,
# the webhook scenario against four store paths, A against B in alternating pairs:
#
#   skip   against empty   (no store call at all | one empty group commit per batch)
#   memlog against redb    (hash maps and an appended log in that commit | the real store)
#   bulk   against redb    (memlog, plus the real store's work for every 4096 webhooks in one
#                           job: a log in front of redb with the B-tree work deferred)
#
#   bench/ceiling.sh [-r ROUNDS] [-s SECONDS] [SCENARIO]     (default: 3 rounds, 8 s, scattered)
#
# skip, empty and memlog answer webhooks as stored WITHOUT storing them: this measures the
# rest of the daemon, it is not a way to run it. See "The ceiling" in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# Defaults, then the caller's -r / -s (bench/ab.sh takes the last of each).
opts=(-r 3 -s 8) SCENARIO=scattered
while [ $# -gt 0 ]; do
  case $1 in
    -r | -s) opts+=("$1" "$2"); shift 2 ;;
    *) SCENARIO=$1; shift ;;
  esac
done
[ -f target/bench-plugins/whatsapp-cloud.wasm ] || cargo xtask plugins target/bench-plugins >/dev/null
cargo build --release --target-dir target/ceiling -p switchboard -p switchboard-bench --features switchboard/ceiling
BIN=target/ceiling/release
ENV_A="SWITCHBOARD_CEILING=skip" ENV_B="SWITCHBOARD_CEILING=empty" \
  bench/ab.sh "${opts[@]}" "$SCENARIO" "$BIN" "$BIN"
ENV_A="SWITCHBOARD_CEILING=memlog" ENV_B="" \
  bench/ab.sh "${opts[@]}" "$SCENARIO" "$BIN" "$BIN"
ENV_A="SWITCHBOARD_CEILING=bulk" ENV_B="" \
  bench/ab.sh "${opts[@]}" "$SCENARIO" "$BIN" "$BIN"
