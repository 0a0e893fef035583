//! `switchboard store export|import` with the real binary: a daemon's redb store, exported
//! after it stopped, imported (twice) into PostgreSQL; a daemon on PostgreSQL then knows the
//! webhook (a duplicate) and the idempotency key (the same message) from before. The import
//! half is skipped unless `SWITCHBOARD_TEST_PG_URL` names a test database.

use serde_json::json;
use std::process::Command;
use switchboard_tests::pg::PgSchema;
use switchboard_tests::process::{binary, start, terminate};
use switchboard_tests::*;

fn run(args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "switchboard {args:?} failed: {text}");
    text
}

#[tokio::test]
async fn a_redb_store_moves_into_postgres_and_keeps_its_dedupe_and_idempotency_state() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let http = reqwest::Client::new();
    let body = fixture("text.json");
    let sig = meta_signature(APP_SECRET, &body);
    let send = |base: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(API_TOKEN)
                .header("idempotency-key", "moved-once")
                .json(&json!({ "account": "wa-main", "to": USER, "text": "hello" }))
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };

    let redb_cfg = dir.path().join("redb.toml");
    std::fs::write(&redb_cfg, config_toml(&dir.path().join("a"), &mock.base_url())).unwrap();
    let d = start(&redb_cfg);
    let r = http.post(format!("{}/webhooks/wa-main", d.base)).header("x-hub-signature-256", &sig).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = send(d.base.clone()).await;
    eventually("the message is delivered", || mock.requests().len() == 1).await;
    terminate(d);

    let export = dir.path().join("store.jsonl");
    let out = run(&["store", "export", "--out", export.to_str().unwrap(), "--config", redb_cfg.to_str().unwrap()]);
    assert!(out.contains("exported"), "{out}");
    let lines = std::fs::read_to_string(&export).unwrap();
    assert!(lines.lines().any(|l| l.contains("\"table\":\"outbox\"") && l.contains(&id)), "{lines}");

    let Some(pg) = PgSchema::create("a_redb_store_moves_into_postgres").await else { return };
    let pg_cfg = dir.path().join("pg.toml");
    std::fs::write(&pg_cfg, config_toml_with_store(&dir.path().join("b"), &mock.base_url(), &pg.store_toml())).unwrap();
    let first = run(&["store", "import", "--from", export.to_str().unwrap(), "--config", pg_cfg.to_str().unwrap()]);
    assert!(first.contains("imported"), "{first}");
    let again = run(&["store", "import", "--from", export.to_str().unwrap(), "--config", pg_cfg.to_str().unwrap()]);
    assert!(again.contains("(0 new)"), "a second import writes nothing: {again}");

    let d = start(&pg_cfg);
    let r = http.post(format!("{}/webhooks/wa-main", d.base)).header("x-hub-signature-256", &sig).body(body.clone()).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["stored"].as_u64(), v["duplicates"].as_u64()), (Some(0), Some(1)), "the webhook is known: {v}");
    assert_eq!(send(d.base.clone()).await, id, "the idempotency key names the imported message");
    let m: serde_json::Value = http.get(format!("{}/v1/messages/{id}", d.base)).bearer_auth(API_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(mock.requests().len(), 1, "nothing is sent again");
    terminate(d);
}
