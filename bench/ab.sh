#!/usr/bin/env bash
# Compares two builds of the daemon under one load scenario: runs alternate A, B, A, B, ...
# each on a fresh daemon and a fresh store (the config of bench/run.sh), and the verdict is the
# median CPU time per request of each build's threads, not one throughput figure. On a shared
# VM req/s drifts by more than most changes (see BENCHMARKS.md); thread CPU per request,
# measured back to back and alternating, is what tells two builds apart.
#
#   bench/ab.sh [-r ROUNDS] [-s SECONDS] SCENARIO DIR_A DIR_B
#
# SCENARIO is ingest | new-senders | scattered | dispatch | drain (the rows of bench/run.sh;
# `drain` first leaves a backlog with PREFILL seconds of ingest (default 6), not measured, then
# measures 8 consumers claiming and acking it).
# DIR_A and DIR_B each hold a release `switchboard` and `switchboard-bench`, e.g. copies of
# target/release built from two commits (`cp -r target/release /tmp/a`). ENV_A / ENV_B add
# environment variables to one side's daemon ("NAME=value ..."), to compare one binary
# with a switch on and off. PLUGINS names the plugin directory (default: target/bench-plugins,
# built with `cargo xtask plugins` when missing); PLUGINS_A / PLUGINS_B give one side its own
# (two builds or manifests of a plugin). STORE_A / STORE_B give one side the config's
# `store = ...` line (e.g. 'store = { cache_mib = 16 }'). Prints one line per run, then the medians;
# each line ends with the daemon's group commits and how many of them took 6.4 ms or more
# (its `switchboard_store_commit_duration_seconds` histogram: the slow commits make the p99).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=5 SECS=8
while getopts "r:s:" opt; do
  case $opt in
    r) ROUNDS=$OPTARG ;;
    s) SECS=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || { sed -n '8p' "$0" >&2; exit 2; }
SCENARIO=$1 A=$2 B=$3
case $SCENARIO in
  ingest) args=(ingest --app-secret bench-secret) ;;
  new-senders) args=(ingest --app-secret bench-secret --senders 0) ;;
  scattered) args=(ingest --app-secret bench-secret --scattered-ids) ;;
  dispatch) args=(dispatch --api-token bench-token --mock 127.0.0.1:18999) ;;
  drain) args=(drain --api-token bench-token) ;;
  *) echo "unknown scenario $SCENARIO (ingest | new-senders | scattered | dispatch | drain)" >&2; exit 2 ;;
esac
for d in "$A" "$B"; do
  [ -x "$d/switchboard" ] && [ -x "$d/switchboard-bench" ] || { echo "$d lacks switchboard or switchboard-bench" >&2; exit 2; }
done
PLUGINS=${PLUGINS:-${CARGO_TARGET_DIR:-target}/bench-plugins}
[ -f "$PLUGINS/whatsapp-cloud.wasm" ] || cargo xtask plugins "$PLUGINS" >/dev/null
PLUGINS=$(realpath "$PLUGINS")
PLUGINS_A=$(realpath "${PLUGINS_A:-$PLUGINS}") PLUGINS_B=$(realpath "${PLUGINS_B:-$PLUGINS}")
tmp=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

# run SIDE DIR ENV PLUGINS STORE: one run on a fresh daemon; appends its JSON line to $tmp/runs.
run() {
  rm -rf "$tmp/data"
  bench_config "$tmp/switchboard.toml" "$tmp/data" "$4" 18787 18999 "$5"
  # shellcheck disable=SC2086 # ENV is a list of NAME=value words
  env SWITCHBOARD_LOG=warn $3 "$2/switchboard" run --config "$tmp/switchboard.toml" >>"$tmp/daemon.log" 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:18787 || { tail -n 20 "$tmp/daemon.log" >&2; exit 1; }
  local io0 out io1 conns=64
  if [ "$SCENARIO" = drain ]; then
    "$2/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "${PREFILL:-6}" ingest --app-secret bench-secret >/dev/null
    conns=8
  fi
  io0=$(awk '/^write_bytes/ {print $2}' "/proc/$pid/io")
  out=$("$2/switchboard-bench" --url http://127.0.0.1:18787 --connections "$conns" --duration "$SECS" --daemon-pid "$pid" "${args[@]}" | tail -n 1)
  io1=$(awk '/^write_bytes/ {print $2}' "/proc/$pid/io")
  # The group commits and how many took 6.4 ms or more (the histogram's bucket edge nearest 5
  # ms): the slow ones are what the webhooks' p99 is made of.
  commits=$(curl -s -H 'authorization: Bearer bench-token' http://127.0.0.1:18787/metrics |
    awk '/^switchboard_store_commit_duration_seconds_bucket\{le="0.0064"\}/ {fast=$2} /^switchboard_store_commit_duration_seconds_count/ {n=$2} END {print n+0, n-fast}')
  kill "$pid"; wait "$pid" || true
  python3 "$tmp/report.py" add "$tmp/runs" "$1" "$((io1 - io0))" "$out" $commits
}

cat > "$tmp/report.py" <<'PY'
import json, statistics, sys

def show(side, r):
    print(f"{side}  {r['per_second']:8.0f}/s  p99 {r['p99_ms']:6.1f} ms  daemon {r['daemon']:6.1f} µs"
          f" (writer {r['writer']:5.1f}, request threads {r['workers']:5.1f})"
          f"  load generator {r['load_generator']:5.1f} µs  {r['kb_written']:5.1f} KB written"
          f"  commits {r['commits']:6.0f} ({r['slow_commits']:3.0f} slow)", flush=True)

if sys.argv[1] == "add":  # add RUNS SIDE BYTES_WRITTEN BENCH_JSON COMMITS SLOW: record one run, show it
    runs, side, written, line = sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
    commits, slow = (float(sys.argv[6]), float(sys.argv[7])) if len(sys.argv) > 7 else (0.0, 0.0)
    t = line["cpu"]["daemon_threads_us_per_request"]
    r = {"side": side, "per_second": line["per_second"],
         "p99_ms": line.get("p99_ms", line.get("lag_p99_ms")), "daemon": line["cpu"]["daemon_us_per_request"],
         "writer": t.get("store-writer", 0), "workers": t.get("tokio-rt-worker", 0),
         "load_generator": line["cpu"]["load_generator_us_per_request"],
         "kb_written": written / (line.get("ok") or line.get("delivered") or 1) / 1000,
         "commits": commits, "slow_commits": slow}
    open(runs, "a").write(json.dumps(r) + "\n")
    show(side, r)
else:  # summary RUNS: the medians of each side
    runs = [json.loads(l) for l in open(sys.argv[2])]
    sides = {s: [r for r in runs if r["side"] == s] for s in "AB"}
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "side"} for s, rs in sides.items()}
    print("medians:")
    for s in "AB":
        show(s, med[s])
    lower = sum(b["daemon"] < a["daemon"] for a, b in zip(sides["A"], sides["B"]))
    change = 100 * (med["B"]["daemon"] / med["A"]["daemon"] - 1)
    print(f"daemon CPU per request, B against A: {change:+.1f} % (B lower in {lower} of {len(sides['B'])} pairs)")
PY

echo "$SCENARIO, $ROUNDS rounds of ${SECS}s; A = $A ${ENV_A:-} ${STORE_A:-}, B = $B ${ENV_B:-} ${STORE_B:-}; CPU per request"
for _ in $(seq "$ROUNDS"); do
  run A "$A" "${ENV_A:-}" "$PLUGINS_A" "${STORE_A:-}"
  run B "$B" "${ENV_B:-}" "$PLUGINS_B" "${STORE_B:-}"
done
python3 "$tmp/report.py" summary "$tmp/runs"
