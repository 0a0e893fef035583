//! The rest of the store's surface, once per engine: push deliveries, history and session
//! caps, provider status updates, the outbox census, and inbound dead letters with redrive.

use crate::clock::ManualClock;
use crate::model::{DeliveryState, EventKind, InboundEvent, MessageBody, StatusUpdate};
use crate::store::testing::conformance;
use crate::store::*;

pub(crate) fn message(id: &str, conversation: &str) -> InboundEvent {
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

fn req(events: Vec<InboundEvent>) -> IngestRequest {
    IngestRequest { account: "a".into(), correlation_id: "x".into(), events }
}

fn outbound(conversation: &str) -> NewMessage {
    NewMessage {
        account: "a".into(),
        to: conversation.into(),
        conversation: conversation.into(),
        body: MessageBody::Text("hi".into()),
        metadata: None,
        idempotency_key: None,
        fingerprint: "f".into(),
        correlation_id: "c".into(),
        priority: Priority::Normal,
        max_queued: 100,
        idempotency_ttl_ms: 1_000,
        window_ms: None,
        history: None,
    }
}

conformance! {
    async fn push_deliveries_retry_in_order_dead_letter_and_redrive(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        let opts = IngestOptions { push: Some(PushRoute { kinds: None, pull_too: false }), ..Default::default() };
        let Ingested::Stored(o, fx) = store.ingest_with(req(vec![message("e1", "c"), message("e2", "c")]), opts).await.unwrap() else { panic!() };
        assert_eq!((o.stored, fx.pushed, fx.pullable), (2, 2, 0));
        assert_eq!((store.push_len().await.unwrap(), store.inbox_len().await.unwrap()), (2, 0));
        assert_eq!(store.next_push_due().await.unwrap(), Some(1_000), "due now");
        let first = store.claim_push(10, 5_000).await.unwrap();
        assert_eq!(first.len(), 1, "only the conversation's head is in flight");
        let head = &first[0];
        assert!(store.record_push(head.row.id, head.token, PushDisposition::RetryAt { at_ms: 2_000, error: "503".into() }).await.unwrap());
        assert!(store.claim_push(10, 5_000).await.unwrap().is_empty(), "the head waits for its retry; the next waits behind it");
        clock.set_ms(2_000);
        let again = store.claim_push(10, 5_000).await.unwrap().remove(0);
        assert_eq!((again.row.id, again.row.attempts, again.row.last_error.as_deref()), (head.row.id, 1, Some("503")));
        assert!(!store.record_push(again.row.id, head.token, PushDisposition::Delivered).await.unwrap(), "a stale token is fenced");
        assert!(store.record_push(again.row.id, again.token, PushDisposition::Failed("410 gone".into())).await.unwrap());
        let dead = store.dlq_get(&format!("push:{}", head.row.id)).await.unwrap().expect("dead-lettered");
        assert_eq!((dead.kind, dead.tries), (DeadKind::Push, 2));
        let second = store.claim_push(10, 5_000).await.unwrap().remove(0);
        assert!(store.record_push(second.row.id, second.token, PushDisposition::Delivered).await.unwrap());
        assert_eq!(store.push_len().await.unwrap(), 0);
        let r = store.dlq_redrive(None).await.unwrap();
        assert_eq!(r.redriven.len(), 1);
        assert_eq!(store.claim_push(10, 5_000).await.unwrap().remove(0).row.id, head.row.id);
        store.close().await;
    }

    async fn a_long_push_backlog_in_one_conversation_does_not_starve_the_others(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        let opts = IngestOptions { push: Some(PushRoute { kinds: None, pull_too: false }), ..Default::default() };
        let backlog: Vec<_> = (0..600).map(|i| message(&format!("b{i}"), "busy")).collect();
        store.ingest_with(req(backlog), opts.clone()).await.unwrap();
        store.ingest_with(req(vec![message("q1", "quiet")]), opts).await.unwrap();
        let head = store.claim_push(1, 60_000).await.unwrap().remove(0);
        assert_eq!(head.row.event.conversation, "busy");
        // The busy conversation's head is in flight and 599 wait behind it: the quiet one's
        // event is still found, by a claim of one.
        let next = store.claim_push(1, 60_000).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].row.event.conversation, "quiet");
        // When the head is delivered, the next of its conversation goes, in order.
        assert!(store.record_push(head.row.id, head.token, PushDisposition::Delivered).await.unwrap());
        let second = store.claim_push(10, 60_000).await.unwrap();
        assert_eq!(second.len(), 1, "one per conversation in flight");
        assert_eq!(second[0].row.event.provider_event_id, "b1");
        store.close().await;
    }

    async fn history_keeps_the_newest_and_sessions_are_capped_per_account(db) {
        let clock = ManualClock::new(10_000);
        let store = db.open(&clock).await;
        let h = HistoryOptions { limit: 3, session_timeout_ms: 1_000, max_open_sessions: 1 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        store.ingest_with(req(vec![message("e1", "c1"), message("e2", "c1")]), opts.clone()).await.unwrap();
        let reply = NewMessage { body: MessageBody::Text("reply".into()), history: Some(h), ..outbound("c1") };
        let EnqueueOutcome::Created(sent) = store.enqueue(reply).await.unwrap() else { panic!("queued") };
        store.ingest_with(req(vec![message("e3", "c1")]), opts.clone()).await.unwrap();
        let kept = store.history("a", "c1", 10).await.unwrap();
        let ids: Vec<&str> = kept.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(kept.len(), 3, "trimmed to the limit: {ids:?}");
        assert_eq!(kept[1].id, sent.id);
        assert_eq!(kept[1].text.as_deref(), Some("reply"));
        assert_eq!(kept[1].direction, Direction::Outbound);
        assert!(kept.iter().all(|e| e.session == 1));
        assert!(kept[0].seq > kept[1].seq, "newest first");
        // A second conversation would open a second session: refused, nothing written.
        let refused = store.ingest_with(req(vec![message("e4", "c2")]), opts.clone()).await.unwrap();
        assert_eq!(refused, Ingested::SessionLimit { open: 1 });
        let to_c2 = || NewMessage { history: Some(h), ..outbound("c2") };
        assert!(matches!(store.enqueue(to_c2()).await.unwrap(), EnqueueOutcome::SessionLimit { open: 1 }));
        assert_eq!(store.queued_count("a").await.unwrap(), 1, "the refused message is not queued");
        // After the timeout the first session is closed: c2 opens, c1 starts session 2 later.
        clock.advance_ms(1_000);
        store.ingest_with(req(vec![message("e4", "c2")]), opts.clone()).await.unwrap();
        assert_eq!(store.history("a", "c2", 10).await.unwrap().len(), 1);
        // c2's session is open now: a message to it is queued and kept.
        assert!(matches!(store.enqueue(to_c2()).await.unwrap(), EnqueueOutcome::Created(_)));
        assert_eq!(store.history("a", "c2", 10).await.unwrap().len(), 2);
        assert_eq!(store.last_inbound_ms("a", "c2").await.unwrap(), Some(11_000));
        assert_eq!(store.last_inbound_ms("a", "nope").await.unwrap(), None);
        store.close().await;
    }

    // The customer-service window is checked in the enqueue's transaction: a message after
    // it closed is refused and writes nothing (no queue entry, no history); a conversation
    // with no inbound on record is not refused; a new inbound message opens it again.
    async fn a_message_outside_the_window_is_refused_by_the_enqueue(db) {
        let clock = ManualClock::new(10_000);
        let store = db.open(&clock).await;
        let h = HistoryOptions { limit: 10, session_timeout_ms: 60_000, max_open_sessions: 10 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        store.ingest_with(req(vec![message("e1", "c1")]), opts.clone()).await.unwrap();
        let windowed = |c: &str| NewMessage { window_ms: Some(5_000), history: Some(h), ..outbound(c) };
        clock.advance_ms(4_999);
        assert!(matches!(store.enqueue(windowed("c1")).await.unwrap(), EnqueueOutcome::Created(_)));
        clock.advance_ms(1);
        let refused = store.enqueue(windowed("c1")).await.unwrap();
        assert!(matches!(refused, EnqueueOutcome::OutsideWindow { closed_at_ms: 15_000 }), "{refused:?}");
        assert_eq!(store.queued_count("a").await.unwrap(), 1, "the refused message is not queued");
        assert_eq!(store.history("a", "c1", 10).await.unwrap().len(), 2, "nor kept in the history");
        assert!(matches!(store.enqueue(windowed("nobody")).await.unwrap(), EnqueueOutcome::Created(_)), "no record: the provider decides");
        assert!(matches!(store.enqueue(outbound("c1")).await.unwrap(), EnqueueOutcome::Created(_)), "no window asked for");
        store.ingest_with(req(vec![message("e2", "c1")]), opts).await.unwrap();
        assert!(matches!(store.enqueue(windowed("c1")).await.unwrap(), EnqueueOutcome::Created(_)), "the user wrote again");
        store.close().await;
    }

    // The open-session count follows conversations that open, stay active and go quiet, and
    // survives a restart: the cap admits exactly as many as are open, whatever the order.
    async fn the_open_session_count_follows_expiry_and_restarts(db) {
        let clock = ManualClock::new(10_000);
        let h = HistoryOptions { limit: 2, session_timeout_ms: 1_000, max_open_sessions: 3 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        let mut n = 0;
        let mut send = |conversation: &str| {
            n += 1;
            req(vec![message(&format!("e{n}"), conversation)])
        };
        let store = db.open(&clock).await;
        for c in ["c1", "c2", "c3"] {
            assert!(matches!(store.ingest_with(send(c), opts.clone()).await.unwrap(), Ingested::Stored(..)), "{c}");
        }
        assert_eq!(store.ingest_with(send("c4"), opts.clone()).await.unwrap(), Ingested::SessionLimit { open: 3 });
        // c3 stays active; c1 and c2 go quiet.
        clock.advance_ms(600);
        store.ingest_with(send("c3"), opts.clone()).await.unwrap();
        clock.advance_ms(500);
        store.close().await;
        let store = db.open(&clock).await;
        // Two closed, one open: two more may open, then the cap holds again.
        for c in ["c4", "c1"] {
            assert!(matches!(store.ingest_with(send(c), opts.clone()).await.unwrap(), Ingested::Stored(..)), "{c}");
        }
        assert_eq!(store.ingest_with(send("c2"), opts.clone()).await.unwrap(), Ingested::SessionLimit { open: 3 });
        // Messages in open sessions move them on without counting twice.
        for c in ["c1", "c3", "c4", "c1"] {
            assert!(matches!(store.ingest_with(send(c), opts.clone()).await.unwrap(), Ingested::Stored(..)), "{c}");
        }
        assert_eq!(store.ingest_with(send("c5"), opts.clone()).await.unwrap(), Ingested::SessionLimit { open: 3 });
        // All quiet: every one of them may open again.
        clock.advance_ms(1_000);
        for c in ["c5", "c2", "c3"] {
            assert!(matches!(store.ingest_with(send(c), opts.clone()).await.unwrap(), Ingested::Stored(..)), "{c}");
        }
        assert_eq!(store.ingest_with(send("c1"), opts.clone()).await.unwrap(), Ingested::SessionLimit { open: 3 });
        store.close().await;
    }

    async fn history_follows_a_changed_retention_and_keeps_time_order(db) {
        let clock = ManualClock::new(10_000);
        let store = db.open(&clock).await;
        let texts = |kept: Vec<HistoryEntry>| kept.into_iter().map(|e| e.text.unwrap()).collect::<Vec<_>>();
        let with = |limit| IngestOptions {
            history: Some(HistoryOptions { limit, session_timeout_ms: 60_000, max_open_sessions: 10 }),
            ..Default::default()
        };
        for i in 1..=5 {
            store.ingest_with(req(vec![message(&format!("e{i}"), "c1")]), with(3)).await.unwrap();
        }
        assert_eq!(texts(store.history("a", "c1", 10).await.unwrap()), ["text e5", "text e4", "text e3"]);
        // Retention lowered: the newest two stay.
        store.ingest_with(req(vec![message("e6", "c1")]), with(2)).await.unwrap();
        assert_eq!(texts(store.history("a", "c1", 10).await.unwrap()), ["text e6", "text e5"]);
        // Raised: nothing older comes back, and the newest always win.
        for i in 7..=9 {
            store.ingest_with(req(vec![message(&format!("e{i}"), "c1")]), with(4)).await.unwrap();
        }
        assert_eq!(texts(store.history("a", "c1", 10).await.unwrap()), ["text e9", "text e8", "text e7", "text e6"]);
        assert_eq!(texts(store.history("a", "c1", 2).await.unwrap()), ["text e9", "text e8"]);
        store.close().await;
    }

    // Idle loops sleep until the store says the next item is due. redb knows when; a shared
    // store (polled anyway) answers only "due now".
    async fn idle_loops_learn_when_the_next_message_or_push_is_due(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        assert_eq!(store.next_outbox_due(true).await.unwrap(), None, "nothing queued");
        store.enqueue(outbound("c1")).await.unwrap();
        assert_eq!(store.next_outbox_due(true).await.unwrap(), Some(1_000), "due now");
        let c = store.claim_outbox(1, 5_000, true).await.unwrap().remove(0);
        let in_flight = store.next_outbox_due(true).await.unwrap();
        store.record_attempt(c.row.id.clone(), c.token, None, Disposition::RetryAt(4_000)).await.unwrap();
        let retrying = store.next_outbox_due(true).await.unwrap();
        if store.shared() {
            assert_eq!((in_flight, retrying), (None, None));
        } else {
            assert_eq!((in_flight, retrying), (Some(6_000), Some(4_000)), "due again at its lease expiry, then at its retry");
        }
        clock.set_ms(4_000);
        assert_eq!(store.next_outbox_due(true).await.unwrap(), Some(4_000));

        assert_eq!(store.next_push_due().await.unwrap(), None);
        let opts = IngestOptions { push: Some(PushRoute { kinds: None, pull_too: false }), ..Default::default() };
        store.ingest_with(req(vec![message("e1", "c")]), opts).await.unwrap();
        let p = store.claim_push(10, 5_000).await.unwrap().remove(0);
        store.record_push(p.row.id, p.token, PushDisposition::RetryAt { at_ms: 7_000, error: "503".into() }).await.unwrap();
        let next = store.next_push_due().await.unwrap();
        assert_eq!(next, if store.shared() { None } else { Some(7_000) });
        store.close().await;
    }

    async fn status_webhooks_move_a_sent_message_forward_only_and_the_census_counts(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        let EnqueueOutcome::Created(m) = store.enqueue(outbound("c1")).await.unwrap() else { panic!() };
        store.enqueue(outbound("c2")).await.unwrap();
        assert_eq!(store.next_outbox_due(true).await.unwrap(), Some(1_000), "due now");
        let c = store.claim_outbox(1, 5_000, true).await.unwrap().remove(0);
        assert_eq!(c.row.id, m.id);
        let census = store.outbox_census().await.unwrap();
        assert_eq!((census.queued, census.sending, census.retrying, census.stored, census.oldest_due_ms), (1, 1, 0, 2, Some(1_000)));
        // One more behind c1's head in flight: a claim passes it by (redb parks it), and it
        // still counts as waiting.
        store.enqueue(outbound("c1")).await.unwrap();
        let other = store.claim_outbox(10, 5_000, true).await.unwrap();
        assert_eq!(other.len(), 1, "c2's message; c1's second waits behind its head");
        let census = store.outbox_census().await.unwrap();
        assert_eq!((census.queued, census.sending, census.stored), (1, 2, 3));
        store.record_attempt(m.id.clone(), c.token, None, Disposition::Delivered { provider_message_id: "p1".into() }).await.unwrap();
        let status = |state| {
            let mut e = message("s", "c1");
            e.provider_event_id = format!("status-{state:?}");
            e.kind = EventKind::Status;
            e.status = Some(StatusUpdate { provider_message_id: "p1".into(), state, error: None });
            req(vec![e])
        };
        assert_eq!(store.ingest(status(DeliveryState::Delivered)).await.unwrap().status_updates, 1);
        assert_eq!(store.ingest(status(DeliveryState::Sent)).await.unwrap().status_updates, 0, "never backwards");
        let row = store.message(&m.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.provider_message_id.as_deref()), (MessageStatus::Delivered, Some("p1")));
        let listed = store.list_messages(Some(MessageStatus::Delivered), 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(store.list_messages(None, 10).await.unwrap().len(), 3);
        store.close().await;
    }

    async fn an_event_never_acked_is_dead_lettered_and_redriven_into_the_inbox(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        store.ingest(req(vec![message("e1", "c")])).await.unwrap();
        let claim = |consumer: &str| ClaimRequest { max: 10, lease_ms: 100, consumer: consumer.into(), account: Some("a".into()), conversation: Some("c".into()), max_deliveries: 1, max_held: 1 };
        let first = store.claim_inbox(claim("t")).await.unwrap();
        assert_eq!(first.events.len(), 1);
        let held = store.claim_inbox(claim("t")).await.unwrap();
        assert_eq!(held.held_limit, Some(1), "the consumer holds its limit");
        clock.advance_ms(100);
        let again = store.claim_inbox(claim("u")).await.unwrap();
        assert!(again.events.is_empty(), "handed out max_deliveries times: dead-lettered");
        assert_eq!((store.inbox_len().await.unwrap(), store.dlq_len().await.unwrap()), (0, 1));
        let listed = store.dlq_list(10).await.unwrap();
        assert_eq!(listed[0].kind, DeadKind::Inbound);
        store.dlq_redrive(Some(vec![listed[0].id.clone()])).await.unwrap();
        let back = store.claim_inbox(claim("u")).await.unwrap();
        assert_eq!((back.events.len(), back.events[0].deliveries), (1, 1));
        let ack = store.ack_inbox(vec![back.events[0].id.clone(), "999".into()], back.lease.clone()).await.unwrap();
        assert_eq!((ack.acked.len(), ack.rejected), (1, vec!["999".to_string()]));
        assert_eq!(store.kv_get("p", "k").await.unwrap(), None);
        store.kv_set("p", "k", Some(b"v".to_vec())).await.unwrap();
        store.kv_set("q", "k", Some(b"w".to_vec())).await.unwrap();
        assert_eq!(store.kv_get("p", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
        store.kv_set("p", "k", None).await.unwrap();
        assert_eq!(store.kv_get("p", "k").await.unwrap(), None);
        assert_eq!(store.kv_get("q", "k").await.unwrap().as_deref(), Some(&b"w"[..]));
        store.close().await;
    }
}

/// PostgreSQL only (one redb file has one daemon): two daemons opening sessions for one
/// account at once cannot take it past its open-session cap between them (a batch that may
/// open a session locks the account's sessions before counting them). Before that lock, each
/// daemon admitted the whole cap: 20 sessions here.
#[tokio::test]
async fn two_daemons_share_an_accounts_session_cap() {
    let Some(db) = crate::store::testing::TestStore::postgres().await else { return };
    let clock = ManualClock::new(10_000);
    let h = HistoryOptions { limit: 2, session_timeout_ms: 60_000, max_open_sessions: 10 };
    let opts = IngestOptions { history: Some(h), ..Default::default() };
    let (a, b) = (db.open(&clock).await, db.open(&clock).await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..120u32 {
        let (s, opts) = (if i % 2 == 0 { a.clone() } else { b.clone() }, opts.clone());
        set.spawn(async move {
            match s.ingest_with(req(vec![message(&format!("e{i}"), &format!("c{i}"))]), opts).await.unwrap() {
                Ingested::Stored(..) => Some(i),
                Ingested::SessionLimit { open } => {
                    assert!(open <= 10, "{open}");
                    None
                }
            }
        });
    }
    let mut opened = Vec::new();
    while let Some(r) = set.join_next().await {
        opened.extend(r.unwrap());
    }
    assert_eq!(opened.len(), 10, "exactly the cap's worth of sessions opened across both daemons");
    // Outbound obeys the same shared count: a new conversation is refused on either daemon,
    // an open one is written to.
    for s in [&a, &b] {
        let new = NewMessage { history: Some(h), ..outbound("fresh") };
        assert!(matches!(s.enqueue(new).await.unwrap(), EnqueueOutcome::SessionLimit { open: 10 }));
        let open = NewMessage { history: Some(h), ..outbound(&format!("c{}", opened[0])) };
        assert!(matches!(s.enqueue(open).await.unwrap(), EnqueueOutcome::Created(_)));
    }
    a.close().await;
    b.close().await;
}
