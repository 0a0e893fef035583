#!/usr/bin/env bash
# The footprint row of bench/run.sh alone (100k queued messages, 10 plugins loaded, then idle),
# with where the resident memory is: anonymous (heap, redb's page cache) against file-backed
# (the binary, compiled plugins mapped from the wasm cache).
#
#   bench/footprint.sh [BIN_DIR] [STORE_LINE]
#
# BIN_DIR holds a release `switchboard` and `switchboard-bench` (default: target/release,
# built here when missing). STORE_LINE, when given, is the config's `store = ...` line, e.g.
# 'store = { cache_mib = 12 }'.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}
STORE_LINE=${2:-}
[ -x "$BIN/switchboard" ] && [ -x "$BIN/switchboard-bench" ] || cargo build --release -p switchboard -p switchboard-bench
PLUGINS=${PLUGINS:-${CARGO_TARGET_DIR:-target}/bench-plugins}
[ -f "$PLUGINS/whatsapp-cloud.wasm" ] || cargo xtask plugins "$PLUGINS" >/dev/null
tmp=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
bench_config "$tmp/switchboard.toml" "$tmp/data" "$(realpath "$PLUGINS")" 18787 18999 "$STORE_LINE"
# The plugins of bench/run.sh's footprint row: the bundled ones, the example and two new ones.
fp="$tmp/fp-plugins"; mkdir -p "$fp"
cp "$PLUGINS"/* "$fp/"
"$BIN/switchboard" plugin build examples/minimal-channel --out "$fp" >/dev/null 2>&1
for kind in channel tool; do
  "$BIN/switchboard" plugin new "fp-$kind" --kind "$kind" --dir "$tmp/fp-$kind" >/dev/null
  "$BIN/switchboard" plugin build "$tmp/fp-$kind" --out "$fp" >/dev/null 2>&1
done
sed -e "s|plugins_dir = .*|plugins_dir = \"$fp\"|" "$tmp/switchboard.toml" > "$tmp/fp.toml"
SWITCHBOARD_LOG=warn "$BIN/switchboard" run --config "$tmp/fp.toml" >"$tmp/daemon.log" 2>&1 &
pid=$!
wait_ready http://127.0.0.1:18787 1200 || { tail -n 20 "$tmp/daemon.log" >&2; exit 1; }
"$BIN/switchboard-bench" --url http://127.0.0.1:18787 --connections 64 footprint --api-token bench-token \
  --mock 127.0.0.1:18999 --pid "$pid" --queue 100000 --idle-seconds "${IDLE:-5}"
grep -E '^(Rss|Anonymous|Pss_File)' "/proc/$pid/smaps_rollup"
