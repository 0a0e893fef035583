//! Telegram long-poll mode: pollers run under the account lease (never two `getUpdates` for one
//! bot at once, counted by a fake Bot API), the one left takes over when the holder dies and
//! its lease expires, the offset is committed with the events (the new holder and a restarted
//! daemon continue from it), and every update is stored exactly once.

mod channels_support;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use channels_support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::poller::{self, PollerOptions};
use switchboard_tests::process::terminate;
use switchboard_tests::{API_TOKEN, T0, TestDaemon, eventually, plugins_dir};

const BOT_TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const FIRST_UPDATE: i64 = 718_245_931;

/// A fake Bot API `getUpdates`: answers from the updates pushed so far at or after `offset`,
/// each call held 15 ms (a short long-poll), counting calls in flight.
#[derive(Default)]
struct FakeBot {
    updates: Mutex<Vec<Value>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// The `offset` of every call, in order.
    offsets: Mutex<Vec<Option<i64>>>,
}

struct InFlight<'a>(&'a FakeBot);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeBot {
    async fn start() -> (Arc<Self>, String) {
        let bot = Arc::new(FakeBot::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(get_updates).with_state(bot.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        (bot, format!("http://{addr}"))
    }

    /// `n` more private text messages from users.
    fn push(&self, n: usize) {
        let mut u = self.updates.lock().unwrap();
        for _ in 0..n {
            let id = FIRST_UPDATE + u.len() as i64;
            u.push(json!({"update_id": id, "message": {"message_id": id - FIRST_UPDATE + 1, "from": {"id": 5123456789i64, "is_bot": false, "first_name": "Sheena"}, "chat": {"id": 5123456789i64, "type": "private"}, "date": 1749416383, "text": format!("update {id}")}}));
        }
    }

    fn calls(&self) -> usize {
        self.offsets.lock().unwrap().len()
    }
}

async fn get_updates(State(bot): State<Arc<FakeBot>>, uri: Uri, body: Bytes) -> axum::Json<Value> {
    assert_eq!(uri.path(), format!("/bot{BOT_TOKEN}/getUpdates"));
    let now = bot.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&bot);
    bot.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let req: Value = serde_json::from_slice(&body).unwrap();
    let offset = req["offset"].as_i64();
    bot.offsets.lock().unwrap().push(offset);
    tokio::time::sleep(Duration::from_millis(15)).await;
    let limit = req["limit"].as_u64().unwrap_or(100) as usize;
    let result: Vec<Value> = bot
        .updates
        .lock()
        .unwrap()
        .iter()
        .filter(|u| offset.is_none_or(|o| u["update_id"].as_i64().unwrap() >= o))
        .take(limit)
        .cloned()
        .collect();
    axum::Json(json!({"ok": true, "result": result}))
}

fn account(api: &str, mode: &str) -> String {
    format!(
        r#"
[accounts.tg]
plugin = "telegram"
secrets = {{ bot_token = "{BOT_TOKEN}", secret_token = "unused-in-poll-mode" }}
settings = {{ api_base = "{api}", mode = "{mode}", poll_timeout_secs = "0", poll_limit = "3" }}
"#
    )
}

/// The provider ids of every claimable event (claims them for 10 minutes).
async fn claim_ids(d: &TestDaemon) -> Vec<String> {
    let v = d.claim(1_000, 600_000).await;
    v["events"].as_array().unwrap().iter().map(|e| e["provider_event_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn two_pollers_never_poll_at_once_and_the_survivor_takes_over_without_loss_or_duplicates() {
    let (bot, api) = FakeBot::start().await;
    bot.push(7);
    let dir = tempfile::tempdir().unwrap();
    // mode = "webhook": the daemon itself starts no poller; the test runs two, as two
    // processes sharing the store would.
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugins_dir = \"{}\"\napi_tokens = [\"{API_TOKEN}\"]\n{}",
        dir.path().join("data").display(),
        plugins_dir().display(),
        account(&api, "webhook")
    );
    let clock = ManualClock::new(T0);
    let d = TestDaemon::start_with(Config::parse(&text, "test").unwrap(), clock.clone()).await;
    let app = d.daemon.app().clone();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let opts = PollerOptions {
        lease_ttl_ms: 30_000,
        acquire_every: Duration::from_millis(5),
        idle: Duration::from_millis(5),
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    };
    let a = poller::spawn(app.clone(), "tg".into(), "process-a".into(), opts, stop_rx.clone());
    let b = poller::spawn(app.clone(), "tg".into(), "process-b".into(), opts, stop_rx.clone());

    // Exactly one holds the lease and drains the bot (7 updates, 3 per getUpdates).
    eventually("the first 7 updates are stored", || a.state.stored.load(Ordering::SeqCst) + b.state.stored.load(Ordering::SeqCst) == 7).await;
    let (holder, other) = if a.state.holding.load(Ordering::SeqCst) { (a, b) } else { (b, a) };
    assert!(holder.state.holding.load(Ordering::SeqCst) && !other.state.holding.load(Ordering::SeqCst));
    let polls_before = holder.state.polls.load(Ordering::SeqCst);
    eventually("the holder keeps polling", || holder.state.polls.load(Ordering::SeqCst) >= polls_before + 10).await;
    assert_eq!(other.state.polls.load(Ordering::SeqCst), 0, "the poller without the lease never polls");
    assert_eq!(bot.max_in_flight.load(Ordering::SeqCst), 1);
    {
        let offsets = bot.offsets.lock().unwrap();
        assert_eq!(offsets[0], None, "the first poll starts from the beginning");
        assert!(offsets.contains(&Some(FIRST_UPDATE + 7)), "later polls confirm what was stored: {offsets:?}");
    }

    // The holder dies (no release: a crash). Its lease runs until it expires.
    holder.task.abort();
    let _ = holder.task.await;
    eventually("its last getUpdates is gone", || bot.in_flight.load(Ordering::SeqCst) == 0).await;
    bot.push(5);
    let calls_at_death = bot.calls();
    tokio::time::sleep(Duration::from_millis(60)).await; // many acquire attempts by the other
    assert_eq!(bot.calls(), calls_at_death, "nobody polls while the dead holder's lease is live");
    assert!(!other.state.holding.load(Ordering::SeqCst));

    clock.advance_ms(30_001);
    eventually("the survivor takes over and stores the 5 new updates", || other.state.stored.load(Ordering::SeqCst) == 5).await;
    assert!(other.state.holding.load(Ordering::SeqCst));
    assert_eq!(
        bot.offsets.lock().unwrap()[calls_at_death],
        Some(FIRST_UPDATE + 7),
        "the new holder continues from the committed offset"
    );
    assert_eq!(bot.max_in_flight.load(Ordering::SeqCst), 1, "never two getUpdates at once");

    // Every update exactly once.
    let ids = claim_ids(&d).await;
    let expected: Vec<String> = (0..12).map(|i| (FIRST_UPDATE + i).to_string()).collect();
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected.into_iter().collect());

    let _ = stop.send(true);
    let _ = other.task.await;
    d.stop().await;
}

#[tokio::test]
async fn the_binary_polls_in_poll_mode_and_resumes_from_the_committed_offset_after_a_restart() {
    let (bot, api) = FakeBot::start().await;
    bot.push(4);
    let dir = tempfile::tempdir().unwrap();
    let (d, cfg) = start_with_account(dir.path(), &account(&api, "poll"));
    let http = Api::new(&d);
    let mut seen = Vec::new();
    for _ in 0..3_000 {
        seen.extend(http.claim().await.into_iter().map(|e| e["provider_event_id"].as_str().unwrap().to_string()));
        if seen.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, (0..4).map(|i| (FIRST_UPDATE + i).to_string()).collect::<Vec<_>>());
    eventually("the offset after the last update is confirmed", || bot.offsets.lock().unwrap().contains(&Some(FIRST_UPDATE + 4))).await;
    let mut logs = terminate(d);

    bot.push(2);
    let calls_before_restart = bot.calls();
    let d = switchboard_tests::process::start(&cfg);
    let http = Api::new(&d);
    let mut after = Vec::new();
    for _ in 0..3_000 {
        after.extend(http.claim().await.into_iter().map(|e| e["provider_event_id"].as_str().unwrap().to_string()));
        if after.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(after, vec![(FIRST_UPDATE + 4).to_string(), (FIRST_UPDATE + 5).to_string()], "only the new updates");
    assert_eq!(bot.offsets.lock().unwrap()[calls_before_restart], Some(FIRST_UPDATE + 4), "resumed from the stored offset");
    assert_eq!(bot.max_in_flight.load(Ordering::SeqCst), 1);
    logs.extend(terminate(d));
    assert!(logs.iter().any(|l| l.contains("poller holds the account lease")));
    assert_no_secrets(&logs, &[BOT_TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"]);
}
