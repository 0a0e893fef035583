//! Several daemons sharing one PostgreSQL store (issue 10): a webhook retried against another
//! node is stored once, outbound messages are delivered exactly once across nodes, and a
//! node killed mid-delivery hands its leases to the survivor after they expire, with no double
//! send. Skipped (with a note) unless `SWITCHBOARD_TEST_PG_URL` names a test database;
//! `.ci/run` starts one.

use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard_tests::pg::PgSchema;
use switchboard_tests::process::{kill9, start, terminate};
use switchboard_tests::*;

const UNLIMITED: &str = "[delivery.rate_limits]\naccount_per_sec = 1000000\nrecipient_per_sec = 1000000\nrecipient_burst = 1000\nconversation_per_sec = 1000000\n";

fn to(i: usize) -> String {
    format!("1650{i:07}")
}

/// A daemon config on the shared store, with extra `[delivery]` keys.
fn config_text(dir: &std::path::Path, mock: &MockProvider, pg: &PgSchema, delivery: &str) -> String {
    let text = config_toml_with_store(dir, &mock.base_url(), &pg.store_toml())
        .replace("poll_interval_ms = 5", &format!("poll_interval_ms = 5\n{delivery}"));
    // Every message here opens a session with a new recipient: lift the per-account cap.
    format!("{text}\n{UNLIMITED}\n[inbox]\nmax_open_sessions = 100000\n")
}

/// Two in-process daemons (own data dirs, own ports) on one schema and one clock.
async fn two_daemons(pg: &PgSchema, mock: &MockProvider, delivery: &str) -> (tempfile::TempDir, TestDaemon, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut nodes = Vec::new();
    for n in ["a", "b"] {
        let d = dir.path().join(n);
        let cfg = Config::parse(&config_text(&d, mock, pg, delivery), "test").unwrap();
        nodes.push(TestDaemon::start_with(cfg, clock.clone()).await);
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    assert_ne!(a.base, b.base);
    (dir, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivered_to_both_daemons_is_stored_once() {
    let Some(pg) = PgSchema::create("a_webhook_delivered_to_both_daemons_is_stored_once").await else { return };
    let mock = MockProvider::start().await;
    let (_dir, a, b) = two_daemons(&pg, &mock, "").await;
    assert_eq!(a.daemon.app().store.kind(), "postgres");
    let body = fixture("text.json");
    // The provider's retry lands on the other node while the first delivery is in flight.
    let (ra, rb) = tokio::join!(a.signed_webhook(&body), b.signed_webhook(&body));
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    // And once more, later, on each.
    assert_eq!(a.signed_webhook(&body).await.status(), 200);
    assert_eq!(b.signed_webhook(&body).await.status(), 200);
    assert_eq!(a.daemon.app().store.inbox_len().await.unwrap(), 1, "one event for four deliveries");
    let claimed = b.claim(10, 60_000).await;
    assert_eq!(claimed["events"].as_array().unwrap().len(), 1, "{claimed}");
    assert_eq!(a.claim(10, 60_000).await["events"].as_array().unwrap().len(), 0, "claimed on b, so not claimable on a");
    a.stop().await;
    b.stop().await;
}

/// Text webhook `n` of conversation `n % 37`: its own event id, a sender shared with others.
fn webhook(n: usize) -> Vec<u8> {
    let s = String::from_utf8(fixture("text.json")).unwrap();
    s.replace("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &format!("wamid.MULTI{n:06}"))
        .replace("16505551234", &format!("1650{:07}", n % 37))
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhooks_over_many_conversations_on_both_daemons_all_succeed_once() {
    let Some(pg) = PgSchema::create("concurrent_webhooks_over_many_conversations").await else { return };
    let mock = MockProvider::start().await;
    let (_dir, a, b) = two_daemons(&pg, &mock, "").await;
    // 300 webhooks, all in flight together, each sent to one node and then retried on the
    // other: both nodes' group commits lock the same conversations in every order, and must
    // queue behind each other, not deadlock or fail.
    let mut set = tokio::task::JoinSet::new();
    for n in 0..300usize {
        let first = if n % 2 == 0 { (a.http.clone(), a.base.clone()) } else { (b.http.clone(), b.base.clone()) };
        let second = if n % 2 == 0 { (b.http.clone(), b.base.clone()) } else { (a.http.clone(), a.base.clone()) };
        set.spawn(async move {
            let body = webhook(n);
            let sig = meta_signature(APP_SECRET, &body);
            let mut codes = Vec::new();
            for (http, base) in [first, second] {
                let r = http.post(format!("{base}/webhooks/wa-main")).header("x-hub-signature-256", &sig).body(body.clone()).send().await.unwrap();
                codes.push(r.status().as_u16());
            }
            codes
        });
    }
    for codes in set.join_all().await {
        assert_eq!(codes, [200, 200]);
    }
    assert_eq!(a.daemon.app().store.inbox_len().await.unwrap(), 300, "each webhook stored once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_messages_sent_through_both_daemons_are_delivered_exactly_once() {
    let Some(pg) = PgSchema::create("two_thousand_messages_sent_through_both_daemons_are_delivered_exactly_once").await else { return };
    let mock = MockProvider::start().await;
    let (_dir, a, b) = two_daemons(&pg, &mock, "workers = 2\nbatch = 16").await;
    let mut set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..2_000 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (http, base, sem) = (node.http.clone(), node.base.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let r = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(API_TOKEN)
                .json(&json!({ "account": "wa-main", "to": to(i), "text": format!("m{i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        });
    }
    set.join_all().await;
    for _ in 0..6_000 {
        if mock.requests().len() >= 2_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give a (wrong) duplicate send every chance to show up.
    a.daemon.app().outbox_wake.notify_waiters();
    b.daemon.app().outbox_wake.notify_waiters();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for r in mock.requests() {
        *per_recipient.entry(r.body["to"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 2_000, "every message delivered");
    assert!(per_recipient.values().all(|n| *n == 1), "a message was sent twice");
    assert_eq!(a.daemon.app().store.queued_count("wa-main").await.unwrap(), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_delivery_hands_its_lease_over_after_expiry_without_a_double_send() {
    let Some(pg) = PgSchema::create("a_daemon_killed_mid_delivery").await else { return };
    let mock = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for n in ["a", "b"] {
        let path = dir.path().join(format!("{n}.toml"));
        std::fs::write(&path, config_text(&dir.path().join(n), &mock, &pg, "workers = 1\nlease_ms = 1000")).unwrap();
        nodes.push(path);
    }
    // b's first start compiles the bundled plugins into its data dir's cache: in a debug build
    // on a loaded 2-core machine that has taken longer than a's provider request may be held
    // (30 s, the host's cap), which turned a's held attempt into a timed-out one before b was
    // up. Paid here, b's start below is a cache hit.
    terminate(start(&nodes[1]));
    // Real processes on the system clock: the lease really runs out.
    let a = start(&nodes[0]);
    let hold = mock.hold_next(200, String::from_utf8(fixture("send_ok.json")).unwrap());
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/messages", a.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "account": "wa-main", "to": USER, "text": "exactly once" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    eventually("a's attempt reaches the provider (and is held there)", || mock.requests().len() == 1).await;

    let b = start(&nodes[1]);
    let get = |id: String| {
        let (http, base) = (http.clone(), b.base.clone());
        async move {
            let r = http.get(format!("{base}/v1/messages/{id}")).bearer_auth(API_TOKEN).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    // While a lives it renews its lease (every lease_ms / 3). Wait, on evidence rather than a
    // fixed pause, until the lease has moved a full lease_ms past where it was when b came up:
    // b has run beyond the original expiry, and must not have touched the message.
    let expiry = |m: &serde_json::Value| m["lease"]["expires_at_ms"].as_u64();
    let first = expiry(&get(id.clone()).await).expect("a holds the lease");
    let mut renewed = false;
    for _ in 0..2_000 {
        if expiry(&get(id.clone()).await).is_some_and(|e| e >= first + 1_000) {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(renewed, "a keeps renewing its lease while it lives");
    assert_eq!(mock.requests().len(), 1, "b must not send while a's lease is live");

    kill9(a);
    drop(hold); // a's connection is gone; the provider never answered it
    let mut m = serde_json::Value::Null;
    for _ in 0..2_000 {
        m = get(id.clone()).await;
        if m["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(mock.requests().len(), 2, "the dead node's cut-off attempt and the survivor's");
    assert_eq!(mock.accepted(), 1, "one send completed");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "only the survivor's attempt is recorded: {m}");
    assert!(m["lease"].is_null() && m["due_at_ms"].is_null(), "nothing left to do for it: {m}");
    assert_eq!(mock.requests().len(), 2, "and nothing after");
    terminate(b);
}

mod telegram {
    //! One Telegram bot, two daemons in poll mode on one store: the account lease lets exactly
    //! one of them call `getUpdates` at a time, and every update is stored once.

    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use serde_json::Value;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const BOT_TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    const FIRST_UPDATE: i64 = 718_245_931;

    /// A fake Bot API `getUpdates` counting calls in flight (each held 15 ms).
    #[derive(Default)]
    struct FakeBot {
        updates: Mutex<Vec<Value>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        calls: AtomicUsize,
    }

    impl FakeBot {
        fn push(&self, n: usize) {
            let mut u = self.updates.lock().unwrap();
            for _ in 0..n {
                let id = FIRST_UPDATE + u.len() as i64;
                u.push(json!({"update_id": id, "message": {"message_id": id - FIRST_UPDATE + 1, "from": {"id": 5123456789i64, "is_bot": false, "first_name": "Sheena"}, "chat": {"id": 5123456789i64, "type": "private"}, "date": 1749416383, "text": format!("update {id}")}}));
            }
        }
    }

    struct InFlight<'a>(&'a FakeBot);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn get_updates(State(bot): State<Arc<FakeBot>>, uri: axum::http::Uri, body: Bytes) -> axum::Json<Value> {
        assert_eq!(uri.path(), format!("/bot{BOT_TOKEN}/getUpdates"), "only getUpdates is called in poll mode");
        let now = bot.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        // A caller that goes away (a daemon stopping mid-poll) ends its call too.
        let _guard = InFlight(&bot);
        bot.max_in_flight.fetch_max(now, Ordering::SeqCst);
        bot.calls.fetch_add(1, Ordering::SeqCst);
        let req: Value = serde_json::from_slice(&body).unwrap();
        let offset = req["offset"].as_i64();
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

    fn config(dir: &std::path::Path, api: &str, pg: &PgSchema) -> Config {
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugins_dir = \"{}\"\napi_tokens = [\"{API_TOKEN}\"]\n{}\n\
             [accounts.tg]\nplugin = \"telegram\"\n\
             secrets = {{ bot_token = \"{BOT_TOKEN}\", secret_token = \"unused-in-poll-mode\" }}\n\
             settings = {{ api_base = \"{api}\", mode = \"poll\", poll_timeout_secs = \"0\", poll_limit = \"3\" }}\n",
            dir.join("data").display(),
            plugins_dir().display(),
            pg.store_toml(),
        );
        Config::parse(&text, "test").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_daemons_one_bot_only_one_polls_and_every_update_is_stored_once() {
        let Some(pg) = PgSchema::create("two_daemons_one_bot_only_one_polls").await else { return };
        let bot = Arc::new(FakeBot::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(get_updates).with_state(bot.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        bot.push(7);

        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let a = TestDaemon::start_with(config(&dir.path().join("a"), &api, &pg), clock.clone()).await;
        let b = TestDaemon::start_with(config(&dir.path().join("b"), &api, &pg), clock.clone()).await;
        let store = a.daemon.app().store.clone();
        eventually_async("the 7 updates are stored", || async { store.inbox_len().await.unwrap() == 7 }).await;
        let calls = bot.calls.load(Ordering::SeqCst);
        eventually("polling goes on", || bot.calls.load(Ordering::SeqCst) >= calls + 4).await;
        assert_eq!(bot.max_in_flight.load(Ordering::SeqCst), 1, "never two getUpdates for one bot at once");
        let lease = store.lease_get("poll:tg").await.unwrap().expect("the account lease is held");

        // One node leaves (releasing its lease); the other polls on and stores what comes next.
        a.stop().await;
        bot.push(5);
        let store = b.daemon.app().store.clone();
        eventually_async("the 5 new updates are stored", || async { store.inbox_len().await.unwrap() == 12 }).await;
        assert_eq!(bot.max_in_flight.load(Ordering::SeqCst), 1);
        let now = store.lease_get("poll:tg").await.unwrap().expect("still held");
        assert!(now.token >= lease.token);
        let v = b.claim(1_000, 600_000).await;
        let ids: Vec<String> = v["events"].as_array().unwrap().iter().map(|e| e["provider_event_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 12, "{ids:?}");
        let expected: BTreeSet<String> = (0..12).map(|i| (FIRST_UPDATE + i).to_string()).collect();
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
        b.stop().await;
    }
}
