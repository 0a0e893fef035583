//! The inbox log against its own replay: whatever the live paths did, reopening at the
//! committed end gives the same rows; a crash anywhere in an uncommitted batch's frames leaves
//! the last committed state; compaction keeps the log bounded without losing live events.

use super::*;
use crate::model::{EventKind, InboundEvent};
use proptest::prelude::*;

fn row(id: u64, conversation: &str) -> InboxRow {
    let event = InboundEvent {
        provider_event_id: format!("wamid.{id}"),
        kind: EventKind::Message,
        conversation: conversation.into(),
        sender: None,
        text: Some(format!("message {id} {}", "x".repeat((id % 13) as usize * 40))),
        timestamp_ms: None,
        status: None,
        payload: serde_json::json!({ "n": id }).into(),
    };
    InboxRow::received(id, "acct", "corr", event, 1_000 + id)
}

fn claim_req(max: usize, consumer: &str) -> ClaimRequest {
    ClaimRequest { max, lease_ms: 30_000, consumer: consumer.into(), account: None, conversation: None, max_deliveries: 3, max_held: 1_000 }
}

/// Every row as JSON, in id order: the whole observable state.
fn snapshot(log: &InboxLog) -> Vec<serde_json::Value> {
    log.rows().unwrap().iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

fn commit(log: &mut InboxLog) -> Position {
    let end = log.flush().unwrap();
    log.committed_at(end);
    log.committed()
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    Claim(u8, u8),
    /// Ack (true) or nack the events of the n-th claim made so far.
    Settle(u8, bool),
    Commit,
    Tick(u16),
    /// A webhook dedupe key (one of a few, so keys are seen again).
    Seen(u8),
    /// A message in one of three conversations' history (retention 3).
    History(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Put),
        2 => (1..5u8, 0..3u8).prop_map(|(m, c)| Op::Claim(m, c)),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(n, a)| Op::Settle(n, a)),
        2 => Just(Op::Commit),
        1 => (0..40_000u16).prop_map(Op::Tick),
        3 => (0..40u8).prop_map(Op::Seen),
        3 => (0..3u8).prop_map(Op::History),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Replay equals the live state at every commit, with segments small enough that
    /// compaction and segment deletion run.
    #[test]
    fn reopening_at_the_committed_end_gives_the_live_state(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox");
        let mut log = InboxLog::open(&path, None, 4096).unwrap();
        let (mut now, mut next_id, mut token) = (10_000u64, 1u64, 0u64);
        let mut claims: Vec<(String, Vec<String>)> = Vec::new();
        let (mut seen, mut committed_seen): (HashMap<String, u64>, HashMap<String, u64>) = (HashMap::new(), HashMap::new());
        // Messages per conversation recorded so far.
        let mut said = [0u64; 3];
        for op in ops {
            match op {
                Op::Put(c) => {
                    log.put(row(next_id, &format!("c{}", c % 4)));
                    next_id += 1;
                }
                Op::Claim(max, c) => {
                    let (claim, _dead) = log.claim(&claim_req(max as usize, &format!("w{c}")), now, || { token += 1; Ok(token) }).unwrap();
                    if claim.held_limit.is_none() {
                        claims.push((claim.lease.clone(), claim.events.iter().map(|e| e.id.clone()).collect()));
                    }
                }
                Op::Settle(n, ack) if !claims.is_empty() => {
                    let (lease, ids) = claims[n as usize % claims.len()].clone();
                    if ack { log.ack(&ids, &lease); } else { log.nack(&ids, &lease, now + 5); }
                }
                Op::Settle(..) => {}
                Op::Commit => {
                    let end = commit(&mut log);
                    committed_seen.clone_from(&seen);
                    let committed_said = said;
                    // A second instance must not race the first one's run writing.
                    log.settle_dedupe();
                    log.settle_history();
                    let reopened = InboxLog::open(&path, Some(end), 4096).unwrap();
                    prop_assert_eq!(snapshot(&reopened), snapshot(&log));
                    for (c, &next) in committed_said.iter().enumerate() {
                        let key = format!("acct\0c{c}");
                        let window = |l: &InboxLog| l.history_reader().entries(&key, next.saturating_sub(3), next).unwrap().into_iter().map(|e| e.id).collect::<Vec<_>>();
                        let want: Vec<String> = (next.saturating_sub(3)..next).rev().map(|n| format!("{c}-{n}")).collect();
                        prop_assert_eq!(window(&reopened), want.clone(), "reopened, conversation {}", c);
                        prop_assert_eq!(window(&log), want, "live, conversation {}", c);
                    }
                    for (k, exp) in &committed_seen {
                        prop_assert_eq!(reopened.seen(k).unwrap(), Some(*exp), "key {}", k);
                        prop_assert_eq!(log.seen(k).unwrap(), Some(*exp), "key {}", k);
                    }
                    drop(reopened);
                }
                Op::Tick(ms) => now += u64::from(ms),
                Op::History(c) => {
                    let c = c as usize;
                    let entry = HistoryEntry::outbound(format!("{c}-{}", said[c]), None, now);
                    log.record_history(&format!("acct\0c{c}"), said[c], 3, &entry);
                    said[c] += 1;
                }
                Op::Seen(n) => {
                    let (key, exp) = (format!("acct\0wamid.{n}"), u64::MAX - u64::from(n) * 1000 - now);
                    log.mark_seen(&key, exp);
                    let e = seen.entry(key).or_insert(0);
                    *e = exp.max(*e);
                }
            }
        }
        // An uncommitted tail is forgotten.
        let before = log.committed();
        let expected = InboxLog::open(&path, Some(before), 4096).map(|l| snapshot(&l)).unwrap();
        log.put(row(next_id, "late"));
        let _ = log.flush().unwrap();
        let reopened = InboxLog::open(&path, Some(before), 4096).unwrap();
        prop_assert_eq!(snapshot(&reopened), expected);
    }
}

/// The crash-image test: the engine committed batch k (its marker says the log ends at
/// `ends[k]`) while batch k+1's frames were being written. Whatever prefix of them reached the
/// disk, at every frame boundary and in the middle of frames, opening at `ends[k]` gives
/// exactly the state committed by batch k.
#[test]
fn a_crash_anywhere_in_an_uncommitted_batch_leaves_the_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let mut log = InboxLog::open(&path, None, 1 << 20).unwrap();
    let mut ends = vec![log.committed()];
    let mut states = vec![snapshot(&log)];
    let mut token = 0;
    for batch in 0..4u64 {
        for i in 0..3 {
            log.put(row(batch * 10 + i + 1, "c"));
        }
        let (claim, _) = log.claim(&claim_req(2, "w"), 50_000, || { token += 1; Ok(token) }).unwrap();
        if batch % 2 == 1 {
            let ids: Vec<String> = claim.events.iter().map(|e| e.id.clone()).collect();
            log.ack(&ids[..1], &claim.lease);
        }
        ends.push(commit(&mut log));
        states.push(snapshot(&log));
    }
    drop(log);
    let segment = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "log")).unwrap();
    let full = std::fs::read(&segment).unwrap();
    for k in 0..ends.len() - 1 {
        let (from, to) = (ends[k].offset as usize, ends[k + 1].offset as usize);
        let mut cuts = 0;
        for cut in from..=to {
            let image = tempfile::tempdir().unwrap();
            let copy = image.path().join("inbox");
            std::fs::create_dir(&copy).unwrap();
            std::fs::write(copy.join(segment.file_name().unwrap()), &full[..cut]).unwrap();
            if cut == to {
                // The batch reached the disk whole and its commit happened too.
                let whole = InboxLog::open(&copy, Some(ends[k + 1]), 1 << 20).unwrap();
                assert_eq!(snapshot(&whole), states[k + 1]);
            }
            let opened = InboxLog::open(&copy, Some(ends[k]), 1 << 20).unwrap();
            assert_eq!(snapshot(&opened), states[k], "batch {k} committed, log cut at byte {cut}");
            cuts += 1;
        }
        assert!(cuts > 100, "every byte of batch {}'s frames was a cut point", k + 1);
    }
}

#[test]
fn a_log_shorter_than_the_committed_end_is_refused_and_a_log_nobody_committed_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let mut log = InboxLog::open(&path, None, 1 << 20).unwrap();
    log.put(row(1, "c"));
    let end = commit(&mut log);
    drop(log);
    let missing = Position { segment: end.segment + 1, offset: 100 };
    let err = InboxLog::open(&path, Some(missing), 1 << 20).err().expect("refused");
    assert!(err.to_string().contains("segments are missing"), "{err}");
    assert_eq!(InboxLog::open(&path, Some(end), 1 << 20).unwrap().len(), 1);
    // No commit point recorded (a fresh or restored store): the frames were never committed.
    assert_eq!(InboxLog::open(&path, None, 1 << 20).unwrap().len(), 0);
}

#[test]
fn an_event_left_unacked_does_not_pin_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let segment = 8 << 10;
    let mut log = InboxLog::open(&path, None, segment).unwrap();
    log.put(row(1, "stays"));
    commit(&mut log);
    let mut token = 0;
    for id in 2..2_000u64 {
        log.put(row(id, "busy"));
        log.mark_seen(&format!("acct\0{id}"), u64::MAX);
        let entry = HistoryEntry::outbound(format!("m{id}"), Some(format!("text {id}")), id);
        log.record_history(&format!("acct\0c{}", id % 7), id / 7, 5, &entry);
        let req = ClaimRequest { conversation: Some("busy".into()), ..claim_req(1, "w") };
        let (claim, _) = log.claim(&req, 10_000, || { token += 1; Ok(token) }).unwrap();
        let ids: Vec<String> = claim.events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(log.ack(&ids, &claim.lease).acked.len(), 1);
        commit(&mut log);
    }
    let segments = std::fs::read_dir(&path).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log")).count() as u64;
    assert!(segments <= 4, "{segments} segments kept for one live event");
    assert!(log.log.current_segment() > 20, "the test wrote many segments");
    // A second instance on the same directory must not race the first one's run writing.
    log.settle_history();
    log.settle_dedupe();
    let reopened = InboxLog::open(&path, Some(log.committed()), segment).unwrap();
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened.row(1).unwrap().unwrap().event.conversation, "stays");
    drop(reopened);
    log.settle_dedupe();
    let reopened = InboxLog::open(&path, Some(log.committed()), segment).unwrap();
    for id in 2..2_000u64 {
        assert_eq!(reopened.seen(&format!("acct\0{id}")).unwrap(), Some(u64::MAX), "key {id} survives in runs or the log");
    }
    assert!(std::fs::read_dir(path.join("dedupe")).unwrap().count() < 12, "runs were merged");
    // History: each conversation's newest five, whether in runs, the log or both.
    for reopened in [false, true] {
        let reader = if reopened { InboxLog::open(&path, Some(log.committed()), segment).unwrap().history_reader() } else { log.history_reader() };
        for c in 0..7u64 {
            let last = (2..2_000u64).filter(|id| id % 7 == c).max().unwrap() / 7;
            let got: Vec<u64> = reader.entries(&format!("acct\0c{c}"), last - 4, last + 1).unwrap().iter().map(|e| e.at_ms / 7).collect();
            assert_eq!(got, (last - 4..=last).rev().collect::<Vec<_>>(), "conversation {c}, reopened: {reopened}");
        }
    }
    assert!(std::fs::read_dir(path.join("history")).unwrap().count() < 12, "history runs were merged");
}

#[test]
fn claims_fence_and_dead_letter_as_the_btree_inbox_did() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = InboxLog::open(&dir.path().join("inbox"), None, 1 << 20).unwrap();
    log.put(row(1, "c"));
    let mut token = 0;
    let mut next = || { token += 1; Ok(token) };
    let (first, _) = log.claim(&claim_req(5, "w"), 10_000, &mut next).unwrap();
    assert_eq!((first.events.len(), first.events[0].deliveries), (1, 1));
    // The lease runs out; a second claim takes it over and the first lease is fenced off.
    let (second, _) = log.claim(&claim_req(5, "w2"), 50_000, &mut next).unwrap();
    assert_eq!((second.events[0].deliveries, second.expired_leases), (2, 1));
    assert_eq!(log.ack(&["1".into()], &first.lease).rejected, vec!["1".to_string()]);
    let (third, _) = log.claim(&claim_req(5, "w3"), 90_000, &mut next).unwrap();
    assert_eq!(third.events[0].deliveries, 3);
    let (fourth, dead) = log.claim(&claim_req(5, "w4"), 130_000, &mut next).unwrap();
    assert!(fourth.events.is_empty());
    assert_eq!((dead.len(), dead[0].deliveries, log.len()), (1, 3, 0));
}

/// What the index holds per event stays small (names shared, see `Entry`): a backlog of
/// unclaimed events is kept in memory, so its RSS follows this.
#[test]
fn an_index_entry_stays_small() {
    assert!(std::mem::size_of::<Entry>() <= 64, "{} bytes", std::mem::size_of::<Entry>());
}

/// The fast paths of `decode` read the frames `encode` writes exactly as serde's general
/// decoder does, and leave anything else to it.
#[test]
fn frames_decode_the_same_by_either_path() {
    let general = |b: &[u8]| serde_json::to_value(serde_json::from_slice::<Frame>(b).unwrap()).unwrap();
    let frames = [
        Frame::Put { row: row(7, "c\"1\u{e9}") },
        Frame::Seen { key: "a\0wamid.1".into(), expires_at_ms: 99 },
        Frame::Claim { ids: vec![1, 2], token: 3, consumer: "w".into(), expires_at_ms: 4 },
        Frame::Nack { ids: vec![5], visible_at_ms: 6 },
        Frame::Remove { ids: vec![8] },
    ];
    for f in &frames {
        let bytes = encode(f);
        assert_eq!(serde_json::to_value(decode(&bytes).unwrap()).unwrap(), general(&bytes));
    }
    // The tag elsewhere in the object: not the fast path's shape, still read.
    let moved = br#"{"key":"k","op":"seen","expires_at_ms":1}"#;
    assert!(matches!(decode(moved).unwrap(), Frame::Seen { expires_at_ms: 1, .. }));
    assert!(decode(br#"{"op":"put","row":{}}"#).is_err(), "a broken put is an error, not a fast-path miss");
}
