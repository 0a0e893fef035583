//! Polled intake: events and the poll cursor commit together, only under the poller's live lease.

use crate::store::*;
use crate::store::testing::conformance;
use crate::clock::ManualClock;
use crate::model::{EventKind, InboundEvent};

fn event(id: &str) -> InboundEvent {
    InboundEvent {
        provider_event_id: id.into(),
        kind: EventKind::Message,
        conversation: "42".into(),
        sender: Some("42".into()),
        text: Some(format!("m{id}")),
        timestamp_ms: None,
        status: None,
        payload: serde_json::json!({}).into(),
    }
}

async fn ingest_polled2(store: &Store, req: IngestRequest, lease: &str, token: u64, cursor: Option<String>) -> Result<Polled, StoreError> {
    store.ingest_polled(req, IngestOptions::default(), lease, token, cursor).await
}

fn stored(stored: usize, duplicates: usize) -> Polled {
    Polled::Stored(Ingested::Stored(IngestOutcome { stored, duplicates, status_updates: 0 }, IngestEffects { pullable: stored, ..Default::default() }))
}

fn req(ids: &[&str]) -> IngestRequest {
    IngestRequest { account: "tg".into(), correlation_id: "c".into(), events: ids.iter().map(|i| event(i)).collect() }
}

conformance! {
    async fn events_and_cursor_commit_together_and_only_under_the_live_lease(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        assert_eq!(store.poll_cursor("tg").await.unwrap(), None);
        let Acquire::Granted(a) = store.lease_acquire("poll:tg", "a", 1_000).await.unwrap() else { panic!() };

        let out = ingest_polled2(&store, req(&["1", "2"]), "poll:tg", a.token, Some("3".into())).await.unwrap();
        assert_eq!(out, stored(2, 0));
        assert_eq!(store.poll_cursor("tg").await.unwrap().as_deref(), Some("3"));
        // Polled again (say the previous commit's answer was lost): duplicates, same cursor.
        let out = ingest_polled2(&store, req(&["2", "3"]), "poll:tg", a.token, Some("4".into())).await.unwrap();
        assert_eq!(out, stored(1, 1));
        // `None` keeps the cursor.
        ingest_polled2(&store, req(&[]), "poll:tg", a.token, None).await.unwrap();
        assert_eq!(store.poll_cursor("tg").await.unwrap().as_deref(), Some("4"));

        // The lease expires and `b` takes it: `a`'s late write is fenced and changes nothing.
        clock.advance_ms(1_001);
        let Acquire::Granted(b) = store.lease_acquire("poll:tg", "b", 1_000).await.unwrap() else { panic!() };
        let out = ingest_polled2(&store, req(&["9"]), "poll:tg", a.token, Some("10".into())).await.unwrap();
        assert_eq!(out, Polled::Fenced);
        assert_eq!(store.poll_cursor("tg").await.unwrap().as_deref(), Some("4"));
        // An expired lease nobody took is not held either.
        clock.advance_ms(1_001);
        assert_eq!(ingest_polled2(&store, req(&["9"]), "poll:tg", b.token, None).await.unwrap(), Polled::Fenced);
        let Acquire::Granted(b2) = store.lease_acquire("poll:tg", "b", 1_000).await.unwrap() else { panic!() };
        let out = ingest_polled2(&store, req(&["4", "9"]), "poll:tg", b2.token, Some("10".into())).await.unwrap();
        assert_eq!(out, stored(2, 0));
        assert_eq!(store.poll_cursor("tg").await.unwrap().as_deref(), Some("10"));
        store.close().await;
    }
    // Pollers of several daemons take and give back one lease at once: every acquire either
    // grants it to one holder or says who has it, and never fails. (PostgreSQL's acquire once
    // inserted, then selected the row, and another daemon's release could delete it in
    // between: the poller panicked, seen once in CI with two daemons polling one bot.)
    async fn racing_acquires_and_releases_of_one_lease_never_fail_and_never_share_it(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        let holding = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut set = tokio::task::JoinSet::new();
        for holder in 0..4 {
            let (store, holding) = (store.clone(), holding.clone());
            set.spawn(async move {
                let mut granted = 0;
                for _ in 0..25 {
                    match store.lease_acquire("poll:race", &format!("daemon-{holder}"), 60_000).await.unwrap() {
                        Acquire::Granted(lease) => {
                            granted += 1;
                            let others = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(others, 0, "two holders of one lease at once");
                            tokio::task::yield_now().await;
                            holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            assert!(store.lease_release("poll:race", lease.token).await.unwrap(), "the holder releases its own lease");
                        }
                        Acquire::Busy(other) => assert_ne!(other.holder, format!("daemon-{holder}"), "told it is busy with its own lease"),
                    }
                }
                granted
            });
        }
        // A lost row lock shows as a hang, not an error: give it a bound.
        let all = tokio::time::timeout(std::time::Duration::from_secs(60), set.join_all()).await.expect("acquires and releases hung");
        let granted: u32 = all.iter().sum();
        assert!(granted > 0, "nobody ever got the lease");
        assert_eq!(store.lease_get("poll:race").await.unwrap(), None, "the last holder released it");
        store.close().await;
    }
}
