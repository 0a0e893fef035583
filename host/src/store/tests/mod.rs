//! The conformance suite: every test runs against each engine (redb always, PostgreSQL when
//! `SWITCHBOARD_TEST_PG_URL` is set). The inbox and dedupe are checked against a plain
//! in-memory model, with restarts (close and reopen the same file or schema) between
//! operations, as redb tests itself against a `BTreeMap`.

mod poll;
pub(crate) mod queues;
mod tools;
mod transfer;

use super::testing::{TestStore, conformance};
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::model::{EventKind, InboundEvent};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn event(n: u8) -> InboundEvent {
    InboundEvent {
        provider_event_id: format!("wamid.{n}"),
        kind: EventKind::Message,
        conversation: "16505551234".into(),
        sender: None,
        text: Some(format!("m{n}")),
        timestamp_ms: None,
        status: None,
        payload: serde_json::Value::Null.into(),
    }
}


#[derive(Debug, Clone)]
enum Op {
    Ingest(Vec<u8>),
    Claim { max: usize, lease_ms: u64 },
    /// Ack the events of the n-th most recent claim (with that claim's lease).
    Ack(usize),
    Nack(usize, u64),
    Advance(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(0u8..12, 1..4).prop_map(Op::Ingest),
        3 => (1usize..4, 1u64..5_000).prop_map(|(max, lease_ms)| Op::Claim { max, lease_ms }),
        2 => (0usize..3).prop_map(Op::Ack),
        1 => (0usize..3, 0u64..3_000).prop_map(|(c, d)| Op::Nack(c, d)),
        2 => (1u64..6_000).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

const MAX_DELIVERIES: u32 = 3;

/// The model: what a correct inbox holds.
#[derive(Default)]
struct Model {
    seen: BTreeSet<u8>,
    /// id → (visible at, lease token, event number, deliveries)
    events: BTreeMap<u64, (u64, Option<u64>, u8, u32)>,
    dead: usize,
    next_id: u64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn inbox_matches_a_simple_model_across_restarts_redb(ops in prop::collection::vec(op(), 1..40)) {
        run_model(Some(TestStore::redb()), ops);
    }

    #[test]
    fn inbox_matches_a_simple_model_across_restarts_postgres(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let db = rt.block_on(TestStore::postgres());
        drop(rt);
        run_model(db, ops);
    }
}

fn run_model(db: Option<TestStore>, ops: Vec<Op>) {
    let Some(db) = db else { return };
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(1_000_000);
            let mut store = db.open(&clock).await;
            let mut model = Model::default();
            let mut claims: Vec<(String, Vec<String>)> = Vec::new();
            for op in ops {
                let now = clock.now_ms();
                match op {
                    Op::Ingest(ns) => {
                        let events = ns.iter().map(|n| event(*n)).collect();
                        let out = store.ingest(IngestRequest { account: "a".into(), correlation_id: "c".into(), events }).await.unwrap();
                        let mut stored = 0;
                        for n in ns {
                            if model.seen.insert(n) {
                                model.next_id += 1;
                                model.events.insert(model.next_id, (now, None, n, 0));
                                stored += 1;
                            }
                        }
                        assert_eq!(out.stored, stored);
                    }
                    Op::Claim { max, lease_ms } => {
                        let got = store.claim_inbox(ClaimRequest { max, lease_ms, consumer: "t".into(), account: None, conversation: None, max_deliveries: MAX_DELIVERIES, max_held: usize::MAX }).await.unwrap();
                        let mut due: Vec<(u64, u64)> = model.events.iter().filter(|(_, e)| e.0 <= now).map(|(id, e)| (e.0, *id)).collect();
                        due.sort();
                        let token: u64 = got.lease.parse().unwrap();
                        let mut expect = Vec::new();
                        for (_, id) in due {
                            if expect.len() >= max {
                                break;
                            }
                            if model.events[&id].3 >= MAX_DELIVERIES {
                                model.events.remove(&id);
                                model.dead += 1;
                            } else {
                                expect.push(id);
                            }
                        }
                        let ids: Vec<u64> = got.events.iter().map(|e| e.id.parse().unwrap()).collect();
                        assert_eq!(ids, expect);
                        for id in &expect {
                            let e = model.events.get_mut(id).unwrap();
                            *e = (now + lease_ms, Some(token), e.2, e.3 + 1);
                        }
                        claims.push((got.lease, ids.iter().map(u64::to_string).collect()));
                    }
                    Op::Ack(back) | Op::Nack(back, _) if back >= claims.len() => {}
                    Op::Ack(back) => {
                        let (lease, ids) = claims[claims.len() - 1 - back].clone();
                        let r = store.ack_inbox(ids.clone(), lease.clone()).await.unwrap();
                        let token: u64 = lease.parse().unwrap();
                        let expect: Vec<String> = ids.iter().filter(|id| model.events.get(&id.parse().unwrap()).is_some_and(|e| e.1 == Some(token))).cloned().collect();
                        for id in &expect { model.events.remove(&id.parse().unwrap()); }
                        assert_eq!(r.acked, expect);
                    }
                    Op::Nack(back, delay) => {
                        let (lease, ids) = claims[claims.len() - 1 - back].clone();
                        let r = store.nack_inbox(ids.clone(), lease.clone(), delay).await.unwrap();
                        let token: u64 = lease.parse().unwrap();
                        let mut expect = Vec::new();
                        for id in &ids {
                            if let Some(e) = model.events.get_mut(&id.parse().unwrap()) && e.1 == Some(token) {
                                *e = (now + delay, None, e.2, e.3);
                                expect.push(id.clone());
                            }
                        }
                        assert_eq!(r.acked, expect);
                    }
                    Op::Advance(ms) => clock.advance_ms(ms),
                    Op::Restart => {
                        store.close().await;
                        drop(store);
                        store = db.open(&clock).await;
                    }
                }
                assert_eq!(store.inbox_len().await.unwrap(), model.events.len() as u64, "{}", db.engine());
                assert_eq!(store.dlq_len().await.unwrap(), model.dead as u64, "{}", db.engine());
            }
            store.close().await;
        });
    }
}

fn new_msg(to: &str, conversation: &str, priority: Priority) -> NewMessage {
    NewMessage {
        account: "a".into(),
        to: to.into(),
        conversation: conversation.into(),
        body: crate::model::MessageBody::Text("hi".into()),
        metadata: None,
        idempotency_key: None,
        fingerprint: "f".into(),
        correlation_id: "c".into(),
        priority,
        max_queued: 100,
        idempotency_ttl_ms: 1_000,
        window_ms: None,
        history: None,
    }
}

async fn created(store: &Store, m: NewMessage) -> OutboxRow {
    match store.enqueue(m).await.unwrap() {
        EnqueueOutcome::Created(r) => r,
        other => panic!("{other:?}"),
    }
}

conformance! {
    async fn concurrent_writes_share_transactions(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let s = store.clone();
            set.spawn(async move {
                let mut e = event(0);
                e.provider_event_id = format!("id-{i}");
                s.ingest(IngestRequest { account: "a".into(), correlation_id: "c".into(), events: vec![e] }).await.unwrap()
            });
        }
        let stored: usize = set.join_all().await.iter().map(|o| o.stored).sum();
        assert_eq!(stored, 200);
        let (txns, reqs) = store.commit_stats();
        assert_eq!(reqs, 200);
        assert!(txns < 200, "group commit batched nothing: {txns} transactions for 200 requests");
    }

    async fn dedupe_keys_expire_after_their_ttl_and_are_swept(db) {
        let clock = ManualClock::new(0);
        let store = db.open_with(&clock, StoreOptions { dedupe_ttl_ms: 1_000, ..Default::default() }).await;
        let ingest = |s: Store| async move {
            s.ingest(IngestRequest { account: "a".into(), correlation_id: "c".into(), events: vec![event(1)] }).await.unwrap()
        };
        assert_eq!(ingest(store.clone()).await.stored, 1);
        assert_eq!(ingest(store.clone()).await.duplicates, 1);
        clock.advance_ms(1_000);
        // PostgreSQL deletes the expired row here; the redb store drops expired keys by whole
        // runs after commits (store/dedupe_runs.rs), so its sweep has nothing to do.
        assert!(store.sweep_dedupe(100).await.unwrap() <= 1);
        assert_eq!(ingest(store.clone()).await.stored, 1, "an expired key no longer dedupes");
    }

    async fn a_stale_fencing_token_cannot_record_an_outcome(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let msg = NewMessage {
            account: "a".into(),
            to: "1".into(),
            conversation: "1".into(),
            body: crate::model::MessageBody::Text("hi".into()),
            metadata: None,
            idempotency_key: None,
            fingerprint: "f".into(),
            correlation_id: "c".into(),
            priority: Priority::Normal,
            max_queued: 100,
            idempotency_ttl_ms: 1_000,
            window_ms: None,
            history: None,
        };
        let EnqueueOutcome::Created(row) = store.enqueue(msg).await.unwrap() else { panic!() };
        let first = store.claim_outbox(10, 1_000, true).await.unwrap().remove(0);
        clock.advance_ms(1_000);
        let second = store.claim_outbox(10, 1_000, true).await.unwrap().remove(0);
        assert!(second.token > first.token);
        let attempt = |o: &str| Attempt { number: 1, at_ms: 0, outcome: o.into(), code: None, detail: None, next_attempt_at_ms: None };
        let late = store
            .record_attempt(row.id.clone(), first.token, Some(attempt("delivered")), Disposition::Delivered { provider_message_id: "p1".into() })
            .await
            .unwrap();
        assert_eq!(late, RecordResult::Fenced);
        let ok = store
            .record_attempt(row.id.clone(), second.token, Some(attempt("delivered")), Disposition::Delivered { provider_message_id: "p2".into() })
            .await
            .unwrap();
        assert_eq!(ok, RecordResult::Recorded(MessageStatus::Sent));
        assert_eq!(store.message(&row.id).await.unwrap().unwrap().provider_message_id.as_deref(), Some("p2"));
    }

    async fn claims_go_by_priority_then_due_time(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let low = created(&store, new_msg("1", "1", Priority::Low)).await;
        clock.advance_ms(1);
        let normal = created(&store, new_msg("2", "2", Priority::Normal)).await;
        clock.advance_ms(1);
        let high = created(&store, new_msg("3", "3", Priority::High)).await;
        let order: Vec<String> = store.claim_outbox(3, 1_000, true).await.unwrap().into_iter().map(|c| c.row.id).collect();
        assert_eq!(order, [high.id, normal.id, low.id]);
    }

    async fn a_conversation_has_one_message_in_flight_and_keeps_its_order(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let first = created(&store, new_msg("1", "conv", Priority::Normal)).await;
        let second = created(&store, new_msg("1", "conv", Priority::High)).await;
        let other = created(&store, new_msg("2", "other", Priority::Normal)).await;
        let claimed: Vec<String> = store.claim_outbox(10, 1_000, true).await.unwrap().into_iter().map(|c| c.row.id).collect();
        assert_eq!(claimed, [first.id.clone(), other.id.clone()], "the second message waits behind the first");
        assert!(store.claim_outbox(10, 1_000, true).await.unwrap().is_empty());

        // The head retries later: the conversation stays blocked (order over throughput).
        let token = store.message(&first.id).await.unwrap().unwrap().lease.unwrap().token;
        store.record_attempt(first.id.clone(), token, None, Disposition::RetryAt(500)).await.unwrap();
        assert!(store.claim_outbox(10, 1_000, true).await.unwrap().is_empty());
        clock.set_ms(500);
        let again = store.claim_outbox(10, 1_000, true).await.unwrap().remove(0);
        assert_eq!(again.row.id, first.id);
        store
            .record_attempt(first.id.clone(), again.token, None, Disposition::Delivered { provider_message_id: "p".into() })
            .await
            .unwrap();
        assert_eq!(store.claim_outbox(10, 1_000, true).await.unwrap().remove(0).row.id, second.id);
        // Unordered mode lets the rest of a conversation through.
        let third = created(&store, new_msg("1", "conv", Priority::Normal)).await;
        assert_eq!(store.claim_outbox(10, 1_000, false).await.unwrap().remove(0).row.id, third.id);
    }

    // A long conversation blocked behind its head neither hides other conversations' messages
    // (the claim scan is bounded) nor costs every claim a rescan: blocked messages are parked
    // once (redb; PostgreSQL's claim checks the head in its query) and come back, in order, as
    // their heads finish.
    async fn a_long_blocked_conversation_neither_starves_others_nor_is_rescanned(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let big = |m: NewMessage| NewMessage { max_queued: 10_000, ..m };
        let mut ids = Vec::new();
        for _ in 0..3_000 {
            ids.push(created(&store, big(new_msg("1", "busy", Priority::Normal))).await.id);
        }
        clock.advance_ms(1);
        let late = created(&store, big(new_msg("2", "quiet", Priority::Normal))).await;
        // One claim of 1: the busy head. The next claims park what is blocked and reach `late`.
        let head = store.claim_outbox(1, 60_000, true).await.unwrap().remove(0);
        assert_eq!(head.row.id, ids[0]);
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(store.claim_outbox(1, 60_000, true).await.unwrap().into_iter().map(|c| c.row.id));
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got, std::slice::from_ref(&late.id), "the quiet conversation is not starved");
        let next = store.next_outbox_due(true).await.unwrap();
        assert!(next.is_none_or(|t| t >= 60_000), "blocked messages are parked, not rescanned: only the two leases come due ({next:?})");
        // The head finishes: the next of its conversation is due again, then the one after.
        let d = || Disposition::Delivered { provider_message_id: format!("p{}", clock.now_ms()) };
        store.record_attempt(ids[0].clone(), head.token, None, d()).await.unwrap();
        let next = store.claim_outbox(10, 60_000, true).await.unwrap();
        assert_eq!(next.iter().map(|c| c.row.id.clone()).collect::<Vec<_>>(), [ids[1].clone()]);
        clock.advance_ms(1);
        store.record_attempt(ids[1].clone(), next[0].token, None, d()).await.unwrap();
        assert_eq!(store.claim_outbox(10, 60_000, true).await.unwrap().remove(0).row.id, ids[2]);
        // Close and reopen: parked messages stay parked and in line.
        store.close().await;
        let store = db.open(&clock).await;
        assert_eq!(store.queued_count("a").await.unwrap(), 2_999, "2 delivered of 3,001");
    }

    async fn the_queue_cap_counts_unfinished_messages_per_account(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let cap = |mut m: NewMessage| {
            m.max_queued = 1;
            m
        };
        let first = created(&store, cap(new_msg("1", "1", Priority::Normal))).await;
        assert!(matches!(store.enqueue(cap(new_msg("2", "2", Priority::Normal))).await.unwrap(), EnqueueOutcome::QueueFull { queued: 1 }));
        let c = store.claim_outbox(1, 1_000, true).await.unwrap().remove(0);
        store
            .record_attempt(first.id, c.token, None, Disposition::Failed(crate::model::Failure { code: "x".into(), reason: "y".into() }))
            .await
            .unwrap();
        assert_eq!(store.queued_count("a").await.unwrap(), 0);
        assert_eq!(store.dlq_len().await.unwrap(), 1, "a failed message is dead-lettered");
        created(&store, cap(new_msg("2", "2", Priority::Normal))).await;
    }

    async fn a_redriven_message_is_claimable_again_under_the_same_id(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let mut m = new_msg("1", "1", Priority::Normal);
        m.idempotency_key = Some("k".into());
        let row = created(&store, m).await;
        let c = store.claim_outbox(1, 1_000, true).await.unwrap().remove(0);
        let fail = crate::model::Failure { code: "max_attempts".into(), reason: "gave up".into() };
        store.record_attempt(row.id.clone(), c.token, None, Disposition::Failed(fail)).await.unwrap();
        let r = store.dlq_redrive(Some(vec![row.id.clone(), "out:nope".into()])).await.unwrap();
        assert_eq!(r.redriven, [format!("out:{}", row.id)]);
        assert_eq!(r.not_found, ["out:nope"]);
        assert_eq!(store.claim_outbox(1, 1_000, true).await.unwrap().remove(0).row.id, row.id);
        let mut again = new_msg("1", "1", Priority::Normal);
        again.idempotency_key = Some("k".into());
        assert!(matches!(store.enqueue(again).await.unwrap(), EnqueueOutcome::Existing(r) if r.id == row.id));
    }

    async fn idempotency_keys_expire_and_are_swept(db) {
        let clock = ManualClock::new(0);
        let store = db.open(&clock).await;
        let keyed = || {
            let mut m = new_msg("1", "1", Priority::Normal);
            m.idempotency_key = Some("k".into());
            m
        };
        let first = created(&store, keyed()).await;
        assert!(matches!(store.enqueue(keyed()).await.unwrap(), EnqueueOutcome::Existing(_)));
        clock.advance_ms(1_000);
        assert_eq!(store.sweep_idempotency(10).await.unwrap(), 1);
        let second = created(&store, keyed()).await;
        assert_ne!(first.id, second.id, "after its TTL the key is free again");
    }
}

/// PostgreSQL only (one redb file has one daemon): two daemons enqueueing for one account at
/// once cannot take its queue past the cap between them (each batch locks the account's queue
/// before counting it).
#[tokio::test]
async fn two_daemons_share_an_accounts_queue_cap() {
    let Some(db) = TestStore::postgres().await else { return };
    let clock = ManualClock::new(0);
    let (a, b) = (db.open(&clock).await, db.open(&clock).await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..80u32 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        set.spawn(async move { s.enqueue(NewMessage { max_queued: 10, ..new_msg(&format!("u{i}"), &format!("u{i}"), Priority::Normal) }).await });
    }
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap().unwrap() {
            EnqueueOutcome::Created(_) => created += 1,
            EnqueueOutcome::QueueFull { queued } => assert!(queued >= 10, "{queued}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 10);
    assert_eq!(a.queued_count("a").await.unwrap(), 10);
    a.close().await;
    b.close().await;
}
