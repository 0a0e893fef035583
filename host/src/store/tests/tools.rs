//! Agent-tool calls and approvals.

use crate::store::*;
use crate::store::testing::conformance;
use crate::clock::ManualClock;
use crate::model::{EventKind, InboundEvent};

fn pending(id: &str, expires_at_ms: u64) -> ToolCall {
    ToolCall {
        id: id.into(),
        tool: "t".into(),
        account: Some("a".into()),
        conversation: Some("c".into()),
        args: serde_json::json!({}),
        correlation_id: "cid".into(),
        status: CallStatus::AwaitingApproval,
        created_at_ms: 0,
        updated_at_ms: 0,
        approval: Some(ApprovalInfo { expires_at_ms, prompt_message_id: None, resolved_by: None, resolved_at_ms: None }),
        result: None,
        error: None,
    }
}

fn reply(id: &str, sender: &str, text: &str) -> IngestRequest {
    let event = InboundEvent {
        provider_event_id: id.into(),
        kind: EventKind::Message,
        conversation: "c".into(),
        sender: Some(sender.into()),
        text: Some(text.into()),
        timestamp_ms: None,
        status: None,
        payload: serde_json::json!({}).into(),
    };
    IngestRequest { account: "a".into(), correlation_id: "x".into(), events: vec![event] }
}

conformance! {
    async fn a_yes_approves_all_pending_calls_of_the_conversation_once_and_a_crash_never_reruns(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        store.create_tool_call(pending("c1", 10_000)).await.unwrap();
        store.create_tool_call(pending("c2", 10_000)).await.unwrap();
        let opts = IngestOptions { approvers: vec!["+100".into()], ..Default::default() };

        let stranger = store.ingest_with(reply("e1", "999", "yes"), opts.clone()).await.unwrap();
        assert!(matches!(stranger, Ingested::Stored(_, ref fx) if fx.approved_calls.is_empty()));
        let yes = store.ingest_with(reply("e2", "100", " YES "), opts.clone()).await.unwrap();
        let Ingested::Stored(_, fx) = yes else { panic!() };
        assert_eq!(fx.approved_calls, ["c1", "c2"]);
        let dup = store.ingest_with(reply("e2", "100", " YES "), opts.clone()).await.unwrap();
        assert!(matches!(dup, Ingested::Stored(o, ref fx) if o.duplicates == 1 && fx.approved_calls.is_empty()));
        assert_eq!(store.approved_calls().await.unwrap(), ["c1", "c2"]);

        assert!(store.start_approved_call("c1".into()).await.unwrap().is_some());
        assert!(store.start_approved_call("c1".into()).await.unwrap().is_none(), "started once");
        // The process dies while c1 runs: the next start fails it instead of running it again.
        store.close().await;
        drop(store);
        let store = db.open(&clock).await;
        assert_eq!(store.fail_interrupted_calls().await.unwrap(), 1);
        assert_eq!(store.tool_call("c1").await.unwrap().unwrap().status, CallStatus::Failed);
        assert_eq!(store.approved_calls().await.unwrap(), ["c2"], "approved but not started: still queued");
    }

    async fn unanswered_approvals_expire_and_a_late_yes_approves_nothing(db) {
        let clock = ManualClock::new(1_000);
        let store = db.open(&clock).await;
        assert_eq!(store.next_approval_expiry().await.unwrap(), None);
        store.create_tool_call(pending("c1", 5_000)).await.unwrap();
        assert_eq!(store.expire_approvals(10).await.unwrap(), 0);
        assert_eq!(store.next_approval_expiry().await.unwrap(), Some(5_000), "the approvals task sleeps until then");
        clock.set_ms(5_000);
        assert_eq!(store.expire_approvals(10).await.unwrap(), 1);
        assert_eq!(store.next_approval_expiry().await.unwrap(), None);
        assert_eq!(store.tool_call("c1").await.unwrap().unwrap().status, CallStatus::Expired);
        let opts = IngestOptions { approvers: vec!["100".into()], ..Default::default() };
        let Ingested::Stored(_, fx) = store.ingest_with(reply("e1", "100", "yes"), opts).await.unwrap() else { panic!() };
        assert!(fx.approved_calls.is_empty());
    }
}

/// PostgreSQL only (one redb file has one daemon): a daemon starting next to a live one leaves
/// the calls that one is running alone, and fails them once it is gone.
#[tokio::test]
async fn a_starting_daemon_fails_only_the_calls_of_daemons_that_are_gone() {
    let Some(db) = crate::store::testing::TestStore::postgres().await else { return };
    let clock = ManualClock::new(1_000);
    let a = db.open(&clock).await;
    let mut running = pending("r1", 10_000);
    running.status = CallStatus::Running;
    running.approval = None;
    a.create_tool_call(running).await.unwrap();
    let b = db.open(&clock).await;
    assert_eq!(b.fail_interrupted_calls().await.unwrap(), 0, "a is alive: its call is left alone");
    assert_eq!(b.tool_call("r1").await.unwrap().unwrap().status, CallStatus::Running);
    a.close().await;
    drop(a);
    assert_eq!(b.fail_interrupted_calls().await.unwrap(), 1, "a is gone: its call fails");
    assert_eq!(b.tool_call("r1").await.unwrap().unwrap().status, CallStatus::Failed);
    b.close().await;
}
