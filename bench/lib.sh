# Shared by bench/run.sh, run-pg.sh and ab.sh (sourced, not run): the daemon config the load
# scenarios run against, and the wait for a daemon to be ready. One config, so that the A/B
# comparisons measure what the table measures.

# bench_config FILE DATA_DIR PLUGINS_DIR [PORT [MOCK_PORT [STORE]]]: the daemon on
# 127.0.0.1:PORT (default 18787), the bundled WhatsApp plugin on wa-main, its Graph API at
# 127.0.0.1:MOCK_PORT (default 18999: the load generator's mock), and STORE as the `store = ...`
# line (default none: the embedded redb store in DATA_DIR).
bench_config() {
  cat > "$1" <<TOML
listen = "127.0.0.1:${4:-18787}"
data_dir = "$2"
plugins_dir = "$3"
api_tokens = ["bench-token"]
${6:-}
[accounts.wa-main]
plugin = "whatsapp-cloud"
secrets = { app_secret = "bench-secret", verify_token = "v", access_token = "t" }
settings = { phone_number_id = "106540352242922", api_base = "http://127.0.0.1:${5:-18999}" }
[delivery]
workers = 4
batch = 64
max_queued = 200000
[inbox]
# Far above what a run opens: the new-sender scenario opens a session per webhook.
max_open_sessions = 10000000
[delivery.rate_limits]
account_per_sec = 10000000
recipient_per_sec = 1000
recipient_burst = 100
conversation_per_sec = 1000
TOML
}

# wait_ready URL [TRIES]: polls URL/readyz every 50 ms (200 tries by default).
wait_ready() {
  for _ in $(seq "${2:-200}"); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "no daemon became ready at $1" >&2
  return 1
}
