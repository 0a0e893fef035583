#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: builds release, starts the daemon on a temp dir with the bundled
# WhatsApp plugin, runs each load scenario against 127.0.0.1 only, and rewrites the tables
# between the markers in BENCHMARKS.md. Usage: bench/run.sh [seconds-per-scenario]
# With SWITCHBOARD_BENCH_PG_URL set it then measures the PostgreSQL store too (bench/run-pg.sh:
# one and two daemons sharing the database).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
TARGET=${CARGO_TARGET_DIR:-target}
cargo xtask plugins "$TARGET/bench-plugins" >/dev/null
cargo build --release -p switchboard -p switchboard-bench
BIN="$TARGET/release"
tmp=$(mktemp -d)
trap 'kill "${pid:-0}" "${floor_pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
. bench/lib.sh
bench_config "$tmp/switchboard.toml" "$tmp/data" "$(realpath "$TARGET/bench-plugins")"
SWITCHBOARD_LOG=warn "$BIN/switchboard" run --config "$tmp/switchboard.toml" &
pid=$!
wait_ready http://127.0.0.1:18787
stats() { curl -sf -H 'Authorization: Bearer bench-token' http://127.0.0.1:18787/v1/stats; }
before=$(stats)
ingest=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$SECS" --daemon-pid "$pid" ingest --app-secret bench-secret)
after=$(stats)
# The same load with every webhook from a new sender: each one opens a conversation's session
# (a new conversation row, history ring and session-cap check per webhook).
ingest_new=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$SECS" --daemon-pid "$pid" ingest --app-secret bench-secret --senders 0)
# Real wamids come in no order: every dedupe key lands at a random place in its index, as in
# production (the first scenario's ordered ids all append at its end: the best case).
ingest_scattered=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$SECS" --daemon-pid "$pid" ingest --app-secret bench-secret --scattered-ids)
# Pull consumers emptying the backlog those runs left: 8 of them, claiming 32 events at a time
# and acking each claim.
drain=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 8 --duration "$SECS" --daemon-pid "$pid" drain --api-token bench-token --max 32)
dispatch=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$SECS" --daemon-pid "$pid" dispatch --api-token bench-token --mock 127.0.0.1:18999)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill "$pid"; wait "$pid" || true

# The HTTP floor: the same ingest load against a server that only answers 200 (hyper, as in
# the daemon): what loopback HTTP and the load generator cost here, with no daemon at all.
"$BIN/switchboard-bench" --url http://127.0.0.1:18788 floor &
floor_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18788/ && break; sleep 0.05; done
floor=$("$BIN/switchboard-bench" --url http://127.0.0.1:18788 --connections 64 --duration "$SECS" ingest --app-secret bench-secret)
kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true

# Footprint: a fresh daemon with 10 plugins (the 7 bundled, the example, a scaffolded channel
# and tool) and 100k messages queued behind a provider that throttles every send for an hour.
fp="$tmp/fp-plugins"; mkdir -p "$fp"
cp "$TARGET/bench-plugins"/* "$fp/"
"$BIN/switchboard" plugin build examples/minimal-channel --out "$fp" >/dev/null
for kind in channel tool; do
  "$BIN/switchboard" plugin new "fp-$kind" --kind "$kind" --dir "$tmp/fp-$kind" >/dev/null
  "$BIN/switchboard" plugin build "$tmp/fp-$kind" --out "$fp" >/dev/null
done
sed -e "s|$tmp/data|$tmp/fp-data|" -e "s|plugins_dir = .*|plugins_dir = \"$fp\"|" "$tmp/switchboard.toml" > "$tmp/fp.toml"
SWITCHBOARD_LOG=warn "$BIN/switchboard" run --config "$tmp/fp.toml" &
pid=$!
wait_ready http://127.0.0.1:18787 1200
plugins=$(curl -sf http://127.0.0.1:18787/readyz | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["plugins"]))')
footprint=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 footprint --api-token bench-token --mock 127.0.0.1:18999 --pid "$pid" --queue 100000 --idle-seconds 10)
kill "$pid"; wait "$pid" || true
python3 - "$SECS" "$rss_kib" "$plugins" <<PY
import json, re, sys, platform, subprocess, datetime
secs, rss, plugins = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fp = json.loads('''$footprint''')
ingest = json.loads('''$ingest''')
ingest_new = json.loads('''$ingest_new''')
ingest_scattered = json.loads('''$ingest_scattered''')
drain = json.loads('''$drain''')
floor = json.loads('''$floor''')
before, after = json.loads('''$before'''), json.loads('''$after''')
lines = [json.loads(l) for l in '''$dispatch'''.strip().splitlines()]
accept = next(l for l in lines if l["scenario"] == "dispatch_accept")
e2e = next(l for l in lines if l["scenario"] == "dispatch_end_to_end")
txns = after["store"]["transactions"] - before["store"]["transactions"]
reqs = after["store"]["requests"] - before["store"]["requests"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def cpu_note(c):
    # CPU time per request: comparable across machines and runs where req/s is not.
    t = c["daemon_threads_us_per_request"]
    writer, workers = t.get("store-writer", 0), t.get("tokio-rt-worker", 0)
    return (f"CPU per request: daemon {c['daemon_us_per_request']:.0f} µs (store writer {writer:.0f}, "
            f"request threads {workers:.0f}), load generator {c['load_generator_us_per_request']:.0f} µs")
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
table = f"""<!-- bench:begin -->
Measured {datetime.date.today()} on {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {rustc}, release build,
load generator on the same machine; command: \`bench/run.sh {secs}\`.

| scenario | result | p50 | p99 | max | notes |
|---|---|---|---|---|---|
| durable ingest (signed ~1 KiB webhooks, 64 connections) | {ingest['per_second']:.0f} req/s ({ingest['ok']} ok, {ingest['errors']} errors) | {ingest['p50_ms']:.2f} ms | {ingest['p99_ms']:.2f} ms | {ingest['max_ms']:.1f} ms | {reqs/max(txns,1):.1f} store requests per transaction ({txns} commits); {cpu_note(ingest['cpu'])} |
| durable ingest, every webhook from a new sender (each opens a session) | {ingest_new['per_second']:.0f} req/s ({ingest_new['ok']} ok, {ingest_new['errors']} errors) | {ingest_new['p50_ms']:.2f} ms | {ingest_new['p99_ms']:.2f} ms | {ingest_new['max_ms']:.1f} ms | {cpu_note(ingest_new['cpu'])} |
| durable ingest, wamids in no order (as real ones; the rows above send them in order) | {ingest_scattered['per_second']:.0f} req/s ({ingest_scattered['ok']} ok, {ingest_scattered['errors']} errors) | {ingest_scattered['p50_ms']:.2f} ms | {ingest_scattered['p99_ms']:.2f} ms | {ingest_scattered['max_ms']:.1f} ms | {cpu_note(ingest_scattered['cpu'])} |
| inbox drain: 8 consumers claiming 32 events and acking them (the backlog the ingest rows left) | {drain['per_second']:.0f} events/s ({drain['ok']} acked, {drain['errors']} errors) | {drain['p50_ms']:.2f} ms | {drain['p99_ms']:.2f} ms | {drain['max_ms']:.1f} ms | latency = one claim and its ack; {cpu_note(drain['cpu']).replace('per request', 'per event')} |
| outbound accept (\`POST /v1/messages\`, 64 connections) | {accept['per_second']:.0f} req/s | {accept['p50_ms']:.2f} ms | {accept['p99_ms']:.2f} ms | {accept['max_ms']:.1f} ms | |
| outbound end to end (API → worker → plugin → mock Graph API) | {e2e['per_second']:.0f} msg/s ({e2e['delivered']}/{e2e['accepted']} delivered) | lag {e2e['lag_p50_ms']:.1f} ms | lag {e2e['lag_p99_ms']:.1f} ms | lag {e2e['lag_max_ms']:.1f} ms | queue lag = POST to provider receipt; {cpu_note(e2e['cpu'])} (the mock provider runs in the load generator) |
| HTTP floor: the ingest load against a server that only answers 200 (no daemon) | {floor['per_second']:.0f} req/s | {floor['p50_ms']:.2f} ms | {floor['p99_ms']:.2f} ms | {floor['max_ms']:.1f} ms | the most any daemon could take here |
| daemon RSS after the load runs | {rss/1024:.0f} MiB | | | | |
| footprint: {fp['queued']} messages queued, {plugins} plugins loaded | RSS {fp['rss_mib']:.0f} MiB (peak {fp['peak_rss_mib']:.0f} MiB) | | | | idle CPU {fp['idle_cpu_percent']:.1f} % over {fp['idle_seconds']} s; queue filled in {fp['fill_seconds']:.0f} s |
<!-- bench:end -->"""
doc = open("BENCHMARKS.md").read()
doc = re.sub(r"<!-- bench:begin -->.*<!-- bench:end -->", table, doc, flags=re.S)
open("BENCHMARKS.md", "w").write(doc)
print(table)
PY

if [ -n "${SWITCHBOARD_BENCH_PG_URL:-}" ]; then
  BIN="$BIN" PLUGINS="$TARGET/bench-plugins" bench/run-pg.sh "$SECS"
fi
