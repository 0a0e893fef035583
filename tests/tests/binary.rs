//! The real `switchboard` binary, as an operator runs it: webhook in → redb → agent claims →
//! reply out to a mock Graph API; SIGTERM exits cleanly; a restart keeps the dedupe state;
//! no configured secret ever appears in the logs.

use serde_json::json;
use std::process::Command;
use switchboard_tests::process::{binary, start, terminate};
use switchboard_tests::*;

#[tokio::test]
async fn the_binary_runs_the_whole_loop_and_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(&cfg, config_toml(dir.path(), &mock.base_url()).replace("poll_interval_ms = 5", "poll_interval_ms = 20")).unwrap();
    let http = reqwest::Client::new();
    let body = fixture("text.json");
    let sig = meta_signature(APP_SECRET, &body);

    let d = start(&cfg);
    assert_eq!(http.get(format!("{}/readyz", d.base)).send().await.unwrap().status(), 200);
    let r = http.post(format!("{}/webhooks/wa-main", d.base)).header("x-hub-signature-256", &sig).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let claim: serde_json::Value = http
        .post(format!("{}/v1/inbox/claim", d.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "max": 10, "lease_ms": 60_000 }))
        .send().await.unwrap().json().await.unwrap();
    let event = &claim["events"][0];
    assert_eq!(event["text"], "Does it come in another color?");

    let sent: serde_json::Value = http
        .post(format!("{}/v1/messages", d.base))
        .bearer_auth(API_TOKEN)
        .header("idempotency-key", "reply-to-first")
        .json(&json!({ "account": "wa-main", "to": event["sender"], "text": "Yes: blue and green." }))
        .send().await.unwrap().json().await.unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    eventually("the mock provider receives the reply", || mock.requests().len() == 1).await;
    assert_eq!(mock.requests()[0].body["text"]["body"], "Yes: blue and green.");
    let ack = http
        .post(format!("{}/v1/inbox/ack", d.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "ids": [event["id"]], "lease": claim["lease"] }))
        .send().await.unwrap();
    assert_eq!(ack.status(), 200);
    let mut logs = terminate(d);

    let d = start(&cfg);
    let again: serde_json::Value = http
        .post(format!("{}/webhooks/wa-main", d.base)).header("x-hub-signature-256", &sig).body(body).send().await.unwrap()
        .json().await.unwrap();
    assert_eq!(again["duplicates"], 1, "a provider retry after restart is recognised");
    let msg: serde_json::Value = http
        .get(format!("{}/v1/messages/{id}", d.base)).bearer_auth(API_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(msg["status"], "sent");
    logs.extend(terminate(d));

    let all = logs.join("\n");
    for secret in [APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN, API_TOKEN] {
        assert!(!all.contains(secret), "secret leaked into logs");
    }
    assert!(!all.contains(USER), "a full phone number leaked into logs");
    assert!(all.contains("1650****234"), "masked numbers are logged");
}

#[tokio::test]
async fn the_dlq_commands_list_and_redrive_a_dead_message() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let cfg = dir.path().join("switchboard.toml");
    let text = config_toml(dir.path(), &mock.base_url()).replace("poll_interval_ms = 5", "poll_interval_ms = 20");
    std::fs::write(&cfg, format!("{text}\n[accounts.wa-main.retry]\nmax_attempts = 1\n")).unwrap();
    mock.respond_next(500, r#"{"error":{"code":131000,"message":"Something went wrong"}}"#);
    let d = start(&cfg);
    let http = reqwest::Client::new();
    let sent: serde_json::Value = http
        .post(format!("{}/v1/messages", d.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "account": "wa-main", "to": USER, "text": "retry me" }))
        .send().await.unwrap().json().await.unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(binary()).args(args).args(["--url", &d.base, "--token", API_TOKEN]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let mut listed = String::new();
    for _ in 0..2_000 {
        listed = cli(&["dlq", "list", "--json"]);
        if listed.contains(&id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v["items"][0]["id"], format!("out:{id}"));
    assert!(cli(&["dlq", "list"]).contains("max_attempts"), "human table shows the reason");
    assert!(cli(&["dlq", "show", &id]).contains("retry me"));
    assert!(cli(&["dlq", "redrive", &id]).contains(&format!("out:{id}")));
    eventually("the redriven message is delivered", || mock.accepted() == 1).await;
    assert!(cli(&["dlq", "list", "--json"]).contains("\"items\":[]"));
    assert!(cli(&["outbox", "list"]).contains("1650****234"), "outbox list masks numbers");
    terminate(d);
}

/// The bench scripts run only by hand (they build release and load the machine for minutes),
/// so CI at least holds them to valid shell: a broken `bench/ab.sh` or `bench/lib.sh` would
/// otherwise surface only when someone needs a measurement.
#[test]
fn the_bench_scripts_are_valid_shell() {
    let bench = repo_root().join("bench");
    let mut scripts: Vec<_> = std::fs::read_dir(&bench)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 6, "bench scripts found: {scripts:?}");
    for script in scripts {
        let out = Command::new("bash").arg("-n").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
}
