#!/usr/bin/env bash
# The daemon's RSS with a backlog of unclaimed inbox events (the redb store keeps the inbox's
# index in memory, see docs/log-store.md): a fresh daemon on a temp dir (the config of
# bench/run.sh), SECONDS of signed webhooks with wamids in no order and nothing claiming them,
# then the events stored and VmRSS.
#
#   bench/backlog-rss.sh [SECONDS] [BIN_DIR]
#
# BIN_DIR holds a release `switchboard` and `switchboard-bench` (default: target/release,
# built here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${1:-15}
BIN=${2:-${CARGO_TARGET_DIR:-target}/release}
[ -x "$BIN/switchboard" ] && [ -x "$BIN/switchboard-bench" ] || cargo build --release -p switchboard -p switchboard-bench
PLUGINS=${PLUGINS:-${CARGO_TARGET_DIR:-target}/bench-plugins}
[ -f "$PLUGINS/whatsapp-cloud.wasm" ] || cargo xtask plugins "$PLUGINS" >/dev/null
tmp=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
bench_config "$tmp/switchboard.toml" "$tmp/data" "$(realpath "$PLUGINS")"
SWITCHBOARD_LOG=warn "$BIN/switchboard" run --config "$tmp/switchboard.toml" >"$tmp/daemon.log" 2>&1 &
pid=$!
wait_ready http://127.0.0.1:18787 || { tail -n 20 "$tmp/daemon.log" >&2; exit 1; }
idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
out=$("$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 --duration "$SECS" --daemon-pid "$pid" \
  ingest --app-secret bench-secret --scattered-ids | tail -n 1)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
python3 - "$out" "$idle" "$rss" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); idle, rss = int(sys.argv[2]), int(sys.argv[3])
print(f"{d['ok']} events unclaimed: RSS {rss // 1024} MiB (idle {idle // 1024} MiB), {(rss - idle) * 1024 // max(d['ok'], 1)} bytes an event")
PY
