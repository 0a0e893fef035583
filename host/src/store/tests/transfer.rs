//! `switchboard store export|import`: a redb store with something in every table, exported and
//! imported into PostgreSQL (twice: the second run writes nothing), reads the same there.

use crate::clock::ManualClock;
use crate::config::Config;
use crate::model::{EventKind, InboundEvent, MessageBody};
use crate::store::testing::TestStore;
use crate::store::*;
use crate::store_cli;

fn event(id: &str, conversation: &str) -> InboundEvent {
    InboundEvent {
        provider_event_id: id.into(),
        kind: EventKind::Message,
        conversation: conversation.into(),
        sender: Some(conversation.into()),
        text: Some(format!("text {id}")),
        timestamp_ms: None,
        status: None,
        payload: serde_json::json!({}).into(),
    }
}

fn msg(n: u32) -> NewMessage {
    NewMessage {
        account: "a".into(),
        to: format!("+1650555{n:04}"),
        conversation: format!("c{n}"),
        body: MessageBody::Text(format!("m{n}")),
        metadata: None,
        idempotency_key: Some(format!("k{n}")),
        fingerprint: "f".into(),
        correlation_id: "c".into(),
        priority: Priority::Normal,
        max_queued: 1_000,
        idempotency_ttl_ms: 60_000,
        window_ms: None,
        history: None,
    }
}

#[tokio::test]
async fn a_redb_store_exported_and_imported_twice_reads_the_same_in_postgres() {
    let Some(pg) = TestStore::postgres().await else { return };
    let TestStore::Postgres { url, schema } = &pg else { unreachable!() };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);

    // A redb store with a row in every table.
    let config = Config::parse(&format!("data_dir = \"{}\"", dir.path().display()), "t").unwrap();
    let redb_path = config.redb_path().unwrap();
    let store = Store::open(&redb_path, std::sync::Arc::new(clock.clone()), StoreOptions::default()).unwrap();
    let history = HistoryOptions::default();
    let push = IngestOptions { history: Some(history), push: Some(PushRoute { kinds: None, pull_too: true }), ..Default::default() };
    let req = IngestRequest { account: "a".into(), correlation_id: "x".into(), events: vec![event("e1", "c1"), event("e2", "c2")] };
    store.ingest_with(req, push).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let EnqueueOutcome::Created(row) = store.enqueue(msg(n)).await.unwrap() else { panic!() };
        ids.push(row.id);
    }
    let c = store.claim_outbox(1, 30_000, true).await.unwrap().remove(0);
    let fail = crate::model::Failure { code: "x".into(), reason: "y".into() };
    store.record_attempt(c.row.id.clone(), c.token, None, Disposition::Failed(fail)).await.unwrap();
    store.kv_set("plug", "cursor", Some(b"42".to_vec())).await.unwrap();
    let Acquire::Granted(lease) = store.lease_acquire("poll:a", "p", 1_000).await.unwrap() else { panic!() };
    let polled = IngestRequest { account: "a".into(), correlation_id: "p".into(), events: vec![event("e3", "c1")] };
    store.ingest_polled(polled, IngestOptions::default(), "poll:a", lease.token, Some("7".into())).await.unwrap();
    let before_history = store.history("a", "c1", 10).await.unwrap();
    let before_msg = store.message(&ids[1]).await.unwrap().unwrap();
    store.close().await;
    drop(store);

    // Export, then import twice into the schema.
    let file = dir.path().join("export.jsonl");
    let out = store_cli::export(&config, &file).unwrap();
    assert_eq!(out.records["inbox"], 3);
    assert_eq!(out.records["outbox"], 3);
    let pg_url = format!("{url}?options=-csearch_path%3D{schema}");
    let target = Config::parse(&format!("data_dir = \"{}\"\nstore = {{ kind = \"postgres\", url = \"{pg_url}\" }}", dir.path().display()), "t").unwrap();
    let first = store_cli::import(&target, &file).await.unwrap();
    assert!(first.written > 0);
    let again = store_cli::import(&target, &file).await.unwrap();
    assert_eq!(again.written, 0, "a second import writes nothing");
    assert_eq!(again.records, first.records);

    let store = pg.open(&clock).await;
    assert_eq!(store.inbox_len().await.unwrap(), 3);
    assert_eq!(store.push_len().await.unwrap(), 2);
    assert_eq!(store.dlq_len().await.unwrap(), 1);
    assert_eq!(store.queued_count("a").await.unwrap(), 2);
    assert_eq!(store.message(&ids[1]).await.unwrap().unwrap(), before_msg);
    assert_eq!(store.history("a", "c1", 10).await.unwrap(), before_history);
    assert_eq!(store.kv_get("plug", "cursor").await.unwrap().as_deref(), Some(&b"42"[..]));
    assert_eq!(store.poll_cursor("a").await.unwrap().as_deref(), Some("7"));
    // Dedupe and idempotency keys came along…
    let dup = store.ingest(IngestRequest { account: "a".into(), correlation_id: "x".into(), events: vec![event("e1", "c1")] }).await.unwrap();
    assert_eq!(dup.duplicates, 1);
    assert!(matches!(store.enqueue(msg(2)).await.unwrap(), EnqueueOutcome::Existing(r) if r.id == ids[2]));
    // …the queues work, and fencing tokens continue above the old store's.
    assert_eq!(store.claim_outbox(10, 30_000, true).await.unwrap().len(), 2);
    let Acquire::Granted(next) = store.lease_acquire("poll:b", "p", 1_000).await.unwrap() else { panic!() };
    assert!(next.token > lease.token);
    store.close().await;
}
