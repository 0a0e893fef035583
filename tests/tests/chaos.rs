//! Crashes and abuse against the real binary and the real plugin: SIGKILL under load, duplicate
//! storms. `SWITCHBOARD_CHAOS_KILLS=20` runs the long version (CI runs 3).

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_tests::process::{kill9, start, terminate};
use switchboard_tests::*;

/// A text webhook with its own wamid, as Meta would send it.
fn webhook(n: u64) -> Vec<u8> {
    let s = String::from_utf8(fixture("text.json")).unwrap();
    s.replace("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &format!("wamid.CHAOS{n:08}")).into_bytes()
}

#[derive(Default)]
struct Ledger {
    /// Webhooks the daemon answered 200.
    acked_webhooks: BTreeSet<u64>,
    /// Message ids the daemon answered 202, by idempotency key.
    accepted: BTreeMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_webhook_or_message() {
    let kills: usize = std::env::var("SWITCHBOARD_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let cfg = dir.path().join("switchboard.toml");
    let text = config_toml(dir.path(), &mock.base_url()).replace("poll_interval_ms = 5", "poll_interval_ms = 10\nbatch = 8\nlease_ms = 1000");
    let limits = "[delivery.rate_limits]\naccount_per_sec = 1000000\nrecipient_per_sec = 1000000\nrecipient_burst = 1000\nconversation_per_sec = 1000000\n";
    std::fs::write(&cfg, format!("{text}\n{limits}")).unwrap();

    let base = Arc::new(Mutex::new(String::new()));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut d = start(&cfg);
    *base.lock().unwrap() = d.base.clone();

    let mut load = tokio::task::JoinSet::new();
    for lane in 0..4u64 {
        let (base, ledger, stop) = (base.clone(), ledger.clone(), stop.clone());
        load.spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let mut n = lane;
            while !stop.load(Ordering::Relaxed) {
                let url = base.lock().unwrap().clone();
                if lane % 2 == 0 {
                    // A provider retries a webhook until it gets a 200.
                    let body = webhook(n);
                    let r = http.post(format!("{url}/webhooks/wa-main")).header("x-hub-signature-256", meta_signature(APP_SECRET, &body)).body(body).send().await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        ledger.lock().unwrap().acked_webhooks.insert(n);
                        n += 4;
                    }
                } else {
                    // An agent retries a send with the same Idempotency-Key until it gets a 202.
                    let key = format!("chaos-{n}");
                    let r = http
                        .post(format!("{url}/v1/messages"))
                        .bearer_auth(API_TOKEN)
                        .header("idempotency-key", &key)
                        .json(&json!({ "account": "wa-main", "to": format!("1650{n:07}"), "text": key }))
                        .send()
                        .await;
                    if let Ok(r) = r
                        && r.status() == 202
                    {
                        let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                        let mut l = ledger.lock().unwrap();
                        if let Some(prev) = l.accepted.insert(key, id.clone()) {
                            assert_eq!(prev, id, "a retried key must name the same message");
                        }
                        n += 4;
                    }
                }
                if r_pause(n) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
    }
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(40 + (k as u64 * 37) % 60)).await;
        kill9(d);
        d = start(&cfg);
        *base.lock().unwrap() = d.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    load.join_all().await;

    let (acked, accepted) = {
        let l = ledger.lock().unwrap();
        (l.acked_webhooks.clone(), l.accepted.clone())
    };
    assert!(!acked.is_empty() && !accepted.is_empty(), "the load ran");

    // Every acknowledged webhook is in the inbox exactly once.
    let http = reqwest::Client::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let claim: serde_json::Value = http
            .post(format!("{}/v1/inbox/claim", d.base))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "max": 100, "lease_ms": 600_000 }))
            .send().await.unwrap().json().await.unwrap();
        let events = claim["events"].as_array().unwrap_or_else(|| panic!("claim refused: {claim}"));
        if events.is_empty() {
            break;
        }
        for e in events {
            *seen.entry(e["provider_event_id"].as_str().unwrap().to_string()).or_default() += 1;
        }
        // Acked as a consumer would: a consumer may hold only `max_per_consumer` (100) events
        // unacknowledged, so the long run (more than 100 webhooks) needs this to read them all.
        let ids: Vec<&serde_json::Value> = events.iter().map(|e| &e["id"]).collect();
        let ack: serde_json::Value = http
            .post(format!("{}/v1/inbox/ack", d.base))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "ids": ids, "lease": claim["lease"] }))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(ack["acked"].as_array().map(Vec::len), Some(events.len()), "ack: {ack}");
    }
    for n in &acked {
        assert_eq!(seen.get(&format!("wamid.CHAOS{n:08}")), Some(&1), "acknowledged webhook {n}");
    }
    assert!(seen.values().all(|c| *c == 1), "no event stored twice");

    // Every accepted message reaches the provider; WhatsApp has no idempotency key, so a crash
    // between its answer and our commit can repeat a send: counted and reported, bounded.
    let wanted: BTreeSet<String> = accepted.keys().cloned().collect();
    eventually("every accepted message delivered", || {
        let got: BTreeSet<String> = mock.requests().iter().filter_map(|r| r.body["text"]["body"].as_str().map(String::from)).collect();
        wanted.is_subset(&got)
    })
    .await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for r in mock.requests() {
        *per_key.entry(r.body["text"]["body"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let repeats: usize = per_key.values().map(|c| c - 1).sum();
    println!(
        "chaos: {kills} kills, {} webhooks acknowledged, {} messages accepted, {repeats} provider-side repeats",
        acked.len(),
        accepted.len()
    );
    assert!(repeats <= kills * 4 * 8, "repeats are bounded by in-flight work at each crash");
    terminate(d);
}

fn r_pause(n: u64) -> bool {
    n % 16 == 0
}

#[tokio::test]
async fn a_duplicate_storm_stores_one_event_per_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..100u64 {
        for _ in 0..5 {
            let (http, url, body) = (reqwest::Client::new(), format!("{}/webhooks/wa-main", d.base), webhook(n));
            set.spawn(async move {
                let r = http.post(url).header("x-hub-signature-256", meta_signature(APP_SECRET, &body)).body(body).send().await.unwrap();
                assert_eq!(r.status(), 200);
            });
        }
    }
    set.join_all().await;
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), 100);
    d.stop().await;
}

// Hostile bodies (for every channel plugin, not only WhatsApp) are in `hostile_input.rs`.
