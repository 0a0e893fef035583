#!/usr/bin/env bash
# The PostgreSQL rows of BENCHMARKS.md: ingest and dispatch with one daemon and with two daemons
# sharing one database. Called by bench/run.sh when SWITCHBOARD_BENCH_PG_URL names a database
# (each run gets a fresh schema, dropped afterwards); usable alone with BIN set to a directory
# holding `switchboard` and `switchboard-bench` and PLUGINS to the bundled plugins:
#   SWITCHBOARD_BENCH_PG_URL=postgres://user@127.0.0.1:5432/db BIN=target/release PLUGINS=target/bench-plugins bench/run-pg.sh 10
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
: "${SWITCHBOARD_BENCH_PG_URL:?set SWITCHBOARD_BENCH_PG_URL to a PostgreSQL URL}"
: "${BIN:?set BIN to the directory of the switchboard binaries}"
: "${PLUGINS:?set PLUGINS to the bundled plugins directory}"
# Ports (override when something else listens there).
PORT_A=${PORT_A:-18787}; PORT_B=${PORT_B:-18788}; MOCK_PORT=${MOCK_PORT:-18999}
command -v psql >/dev/null || { echo "psql is needed to create the bench schema" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
schema=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$schema" ] && psql -q "$SWITCHBOARD_BENCH_PG_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
sep='?'; case "$SWITCHBOARD_BENCH_PG_URL" in *\?*) sep='&';; esac

. bench/lib.sh
# config NODE PORT SCHEMA: a daemon on the shared store.
config() {
  bench_config "$tmp/$1.toml" "$tmp/$1-data" "$(realpath "$PLUGINS")" "$2" "$MOCK_PORT" \
    "store = { kind = \"postgres\", url = \"${SWITCHBOARD_BENCH_PG_URL}${sep}options=-csearch_path%3D$3\", pool_size = 16 }"
}

start() { # NODE PORT
  SWITCHBOARD_LOG=warn "$BIN/switchboard" run --config "$tmp/$1.toml" &
  pids+=($!)
  wait_ready "http://127.0.0.1:$2" || exit 1
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
  psql -q "$SWITCHBOARD_BENCH_PG_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
  schema=""
}

bench() { "$BIN/switchboard-bench" --duration "$SECS" "$@"; }

results=()
for nodes in 1 2; do
  schema="sb_bench_$$_$nodes"
  psql -q "$SWITCHBOARD_BENCH_PG_URL" -c "CREATE SCHEMA $schema" >/dev/null
  config a "$PORT_A" "$schema"; start a "$PORT_A"
  if [ "$nodes" = 2 ]; then config b "$PORT_B" "$schema"; start b "$PORT_B"; fi
  # Ingest: 64 connections in all, split over the nodes (a provider spreads its retries).
  if [ "$nodes" = 1 ]; then
    ingest=$(bench --url "http://127.0.0.1:$PORT_A" --connections 64 ingest --app-secret bench-secret)
  else
    bench --url "http://127.0.0.1:$PORT_A" --connections 32 ingest --app-secret bench-secret > "$tmp/ia" &
    ia=$!
    bench --url "http://127.0.0.1:$PORT_B" --connections 32 ingest --app-secret bench-secret > "$tmp/ib"
    wait "$ia"
    ingest=$(python3 -c 'import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); print(json.dumps({"per_second": a["per_second"]+b["per_second"], "ok": a["ok"]+b["ok"], "errors": a["errors"]+b["errors"], "p50_ms": max(a["p50_ms"],b["p50_ms"]), "p99_ms": max(a["p99_ms"],b["p99_ms"]), "max_ms": max(a["max_ms"],b["max_ms"])}))' "$tmp/ia" "$tmp/ib")
  fi
  # Dispatch: the API load on node a; every node's workers deliver to the one mock.
  dispatch=$(bench --url "http://127.0.0.1:$PORT_A" --connections 64 dispatch --api-token bench-token --mock "127.0.0.1:$MOCK_PORT")
  results+=("$nodes" "$ingest" "$dispatch")
  stop_all
done

python3 - "$SECS" "${results[@]}" <<'PY'
import json, re, sys, datetime
secs, rest = sys.argv[1], sys.argv[2:]
rows = []
for i in range(0, len(rest), 3):
    nodes, ingest, dispatch = rest[i], json.loads(rest[i + 1]), [json.loads(l) for l in rest[i + 2].strip().splitlines()]
    accept = next(l for l in dispatch if l["scenario"] == "dispatch_accept")
    e2e = next(l for l in dispatch if l["scenario"] == "dispatch_end_to_end")
    d = f"{nodes} daemon{'s' if nodes != '1' else ''}"
    rows.append(f"| PostgreSQL, {d}: durable ingest (64 connections) | {ingest['per_second']:.0f} req/s ({ingest['ok']} ok, {ingest['errors']} errors) | {ingest['p50_ms']:.2f} ms | {ingest['p99_ms']:.2f} ms | {ingest['max_ms']:.1f} ms | |")
    rows.append(f"| PostgreSQL, {d}: outbound accept | {accept['per_second']:.0f} req/s | {accept['p50_ms']:.2f} ms | {accept['p99_ms']:.2f} ms | {accept['max_ms']:.1f} ms | API load on one node |")
    rows.append(f"| PostgreSQL, {d}: outbound end to end | {e2e['per_second']:.0f} msg/s ({e2e['delivered']}/{e2e['accepted']} delivered) | lag {e2e['lag_p50_ms']:.1f} ms | lag {e2e['lag_p99_ms']:.1f} ms | lag {e2e['lag_max_ms']:.1f} ms | every node's workers deliver |")
table = "\n".join([
    "<!-- bench-pg:begin -->",
    f"Measured {datetime.date.today()}; PostgreSQL on the same machine; command: `SWITCHBOARD_BENCH_PG_URL=... bench/run.sh {secs}`.",
    "",
    "| scenario | result | p50 | p99 | max | notes |",
    "|---|---|---|---|---|---|",
    *rows,
    "<!-- bench-pg:end -->",
])
doc = open("BENCHMARKS.md").read()
doc = re.sub(r"<!-- bench-pg:begin -->.*<!-- bench-pg:end -->", table, doc, flags=re.S)
open("BENCHMARKS.md", "w").write(doc)
print(table)
PY
