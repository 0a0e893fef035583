#!/usr/bin/env bash
# Profiles the daemon under one load scenario and breaks its CPU down by what is on the stack.
#
#   bench/profile.sh [-s SECONDS] SCENARIO [PATTERN ...]
#
# SCENARIO is ingest | new-senders | scattered | dispatch (bench/ab.sh's, but drain). Runs a release daemon (target/release, built if missing) on a fresh
# store with the config of bench/run.sh and SWITCHBOARD_WASM_PERFMAP=1 (plugins' compiled code
# named), records `perf record --call-graph dwarf` of it for SECONDS (default 6) under the
# load, and prints, for the request threads and the store writer, the share of their samples
# with each PATTERN anywhere on the stack (default: a set that splits ingest and dispatch).
# Frame-pointer call graphs lose most of the daemon's frames (no frame pointers in release);
# DWARF unwinding gets them, at ~90 MB of perf data for 6 s. PLUGINS names the plugin
# directory (default target/bench-plugins; an unstripped build names the guest's functions,
# see "Profiling" in BENCHMARKS.md). The samples stay in $OUT (default /tmp/switchboard.perf)
# for bench/perf-breakdown.py's other modes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=6
while getopts "s:" opt; do
  case $opt in
    s) SECS=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '4p' "$0" >&2; exit 2; }
SCENARIO=$1; shift
case $SCENARIO in
  ingest) args=(ingest --app-secret bench-secret) ;;
  new-senders) args=(ingest --app-secret bench-secret --senders 0) ;;
  scattered) args=(ingest --app-secret bench-secret --scattered-ids) ;;
  dispatch) args=(dispatch --api-token bench-token --mock 127.0.0.1:18999) ;;
  *) echo "unknown scenario $SCENARIO (ingest | new-senders | scattered | dispatch)" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 2; }
BIN=${CARGO_TARGET_DIR:-target}/release
[ -x "$BIN/switchboard" ] && [ -x "$BIN/switchboard-bench" ] || cargo build --release -p switchboard -p switchboard-bench
PLUGINS=${PLUGINS:-${CARGO_TARGET_DIR:-target}/bench-plugins}
[ -f "$PLUGINS/whatsapp-cloud.wasm" ] || cargo xtask plugins "$PLUGINS" >/dev/null
OUT=${OUT:-/tmp/switchboard.perf}
tmp=$(mktemp -d)
trap 'kill "${pid:-0}" "${load:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
bench_config "$tmp/switchboard.toml" "$tmp/data" "$(realpath "$PLUGINS")"
SWITCHBOARD_LOG=warn SWITCHBOARD_WASM_PERFMAP=1 "$BIN/switchboard" run --config "$tmp/switchboard.toml" >"$tmp/daemon.log" 2>&1 &
pid=$!
wait_ready http://127.0.0.1:18787 || { tail -n 20 "$tmp/daemon.log" >&2; exit 1; }
"$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$((SECS + 2))" --daemon-pid "$pid" "${args[@]}" >"$tmp/bench.json" &
load=$!
sleep 1
perf record -F 499 --call-graph dwarf,32768 -p "$pid" -o "$tmp/perf.data" -- sleep "$SECS" >/dev/null 2>&1
wait "$load"
echo "load: $(tail -n 1 "$tmp/bench.json")"
perf script -i "$tmp/perf.data" -F comm,tid,ip,sym --no-inline >"$OUT" 2>/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true
python3 bench/perf-breakdown.py "$OUT" share tokio-rt "$@"
python3 bench/perf-breakdown.py "$OUT" share store-wr "$@"
