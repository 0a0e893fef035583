//! History runs: reads across the memtable and runs, merges keeping each conversation's
//! newest entries, reopening, and damage.

use super::*;
use crate::store::history::Direction;

fn kept(text: &str, size: u32) -> Kept {
    let entry = HistoryEntry { seq: 0, direction: Direction::Inbound, at_ms: 1, session: 1, kind: None, sender: None, text: Some(text.into()), id: text.into() };
    Kept { size, entry: serde_json::value::to_raw_value(&entry).unwrap().into() }
}

fn texts(v: Vec<HistoryEntry>) -> Vec<String> {
    v.into_iter().map(|e| e.text.unwrap()).collect()
}

fn add(h: &mut HistoryRuns, key: &str, ns: std::ops::Range<u64>, size: u32) {
    h.insert(ns.map(|n| (key.to_string(), n, kept(&format!("{key}-{n}"), size))));
}

#[test]
fn a_conversation_reads_the_same_from_the_memtable_and_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HistoryRuns::open(dir.path()).unwrap();
    add(&mut h, "a\0c1", 0..5, 3);
    add(&mut h, "a\0c2", 0..2, 3);
    let r = h.reader();
    assert_eq!(texts(r.entries("a\0c1", 2, 5).unwrap()), ["a\0c1-4", "a\0c1-3", "a\0c1-2"]);
    h.flush_now(Position { segment: 0, offset: 100 }).unwrap();
    // The run keeps c1's newest three (its retention), c2's two.
    assert_eq!(texts(r.entries("a\0c1", 0, 5).unwrap()), ["a\0c1-4", "a\0c1-3", "a\0c1-2"]);
    assert_eq!(texts(r.entries("a\0c2", 0, 2).unwrap()), ["a\0c2-1", "a\0c2-0"]);
    assert!(r.entries("a\0c3", 0, 10).unwrap().is_empty());
    add(&mut h, "a\0c1", 5..7, 3);
    assert_eq!(texts(r.entries("a\0c1", 4, 7).unwrap()), ["a\0c1-6", "a\0c1-5", "a\0c1-4"], "memtable and run together");
    assert_eq!(texts(r.entries("a\0c1", 6, 7).unwrap()), ["a\0c1-6"], "the window is the caller's");
}

#[test]
fn runs_come_back_after_a_reopen_and_merges_keep_each_conversations_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HistoryRuns::open(dir.path()).unwrap();
    // Many conversations, so that reads cross block boundaries of the sparse index.
    for round in 0..FANOUT as u64 {
        for c in 0..100 {
            add(&mut h, &format!("a\0c{c}"), round * 2..round * 2 + 2, 5);
        }
        h.flush_now(Position { segment: 0, offset: 100 + round }).unwrap();
    }
    assert_eq!(h.run_count(), FANOUT);
    h.maintain(0, Position { segment: 0, offset: 200 }, 0, true).unwrap();
    assert_eq!(h.run_count(), 1, "merged");
    let r = h.reader();
    for c in [0, 37, 99] {
        let key = format!("a\0c{c}");
        let want: Vec<String> = (3..8).rev().map(|n| format!("{key}-{n}")).collect();
        assert_eq!(texts(r.entries(&key, 0, 100).unwrap()), want, "newest five of eight kept");
    }
    drop(h);
    let h = HistoryRuns::open(dir.path()).unwrap();
    assert_eq!(h.replay_from(), Position { segment: 0, offset: 103 });
    assert_eq!(texts(h.reader().entries("a\0c5", 6, 8).unwrap()), ["a\0c5-7", "a\0c5-6"]);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 1, "the merged inputs are gone: {files:?}");
}

#[test]
fn a_damaged_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HistoryRuns::open(dir.path()).unwrap();
    add(&mut h, "a\0c1", 0..3, 3);
    h.flush_now(Position { segment: 0, offset: 10 }).unwrap();
    drop(h);
    let path = runs::run_path(dir.path(), 1, EXT);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(HistoryRuns::open(dir.path()).is_err());
}

/// One merged pass gives each conversation once, its entries in `n` order from every source,
/// the newest source's copy where two hold the same `n`.
#[test]
fn every_conversation_comes_once_from_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HistoryRuns::open(dir.path()).unwrap();
    for c in 0..50 {
        add(&mut h, &format!("a\0c{c}"), 0..3, 10);
    }
    h.flush_now(Position { segment: 0, offset: 10 }).unwrap();
    for c in (0..50).step_by(2) {
        add(&mut h, &format!("a\0c{c}"), 3..5, 10);
    }
    h.insert([("a\0c7".to_string(), 1, kept("newer copy", 10))]);
    let mut seen = Vec::new();
    h.reader()
        .for_each_conversation(|e| e, |key, entries| -> io::Result<()> {
            let ns: Vec<u64> = entries.iter().map(|(n, _)| *n).collect();
            let c: usize = key.trim_start_matches("a\0c").parse().unwrap();
            assert_eq!(ns, if c % 2 == 0 { vec![0, 1, 2, 3, 4] } else { vec![0, 1, 2] }, "{key}");
            if c == 7 {
                assert_eq!(entries[1].1.text.as_deref(), Some("newer copy"));
            }
            seen.push(c);
            Ok(())
        })
        .unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}
