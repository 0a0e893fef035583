use super::*;

const DAY: u64 = 86_400_000;

fn at(segment: u64, offset: u64) -> Position {
    Position { segment, offset }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn flushed_keys_are_found_after_reopen_and_expire_whole_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    assert_eq!(d.keep_segment(), None);
    d.insert("wa\0a", 10 * DAY);
    d.insert("wa\0b", 20 * DAY);
    assert_eq!(d.get("wa\0a").unwrap(), Some(10 * DAY));
    assert_eq!(d.keep_segment(), Some(0), "unflushed keys pin the log");
    d.maintain(0, at(0, 500), 0, true).unwrap();
    assert_eq!(d.run_count(), 1);
    assert_eq!(d.keep_segment(), None);
    assert_eq!(d.replay_from(), at(0, 500));
    let d = Dedupe::open(tmp.path()).unwrap();
    assert_eq!(d.replay_from(), at(0, 500));
    assert_eq!(d.get("wa\0a").unwrap(), Some(10 * DAY));
    assert_eq!(d.get("wa\0b").unwrap(), Some(20 * DAY));
    assert_eq!(d.get("wa\0c").unwrap(), None);
    assert_eq!(d.get("tg\0a").unwrap(), None);
    let mut d = d;
    d.maintain(20 * DAY, at(0, 500), 0, true).unwrap();
    assert_eq!(d.run_count(), 0, "a run whose newest key expired is deleted");
    assert!(files(tmp.path()).is_empty(), "{:?}", files(tmp.path()));
}

#[test]
fn the_memtable_is_flushed_when_the_log_moves_to_a_new_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    d.insert("k1", DAY);
    d.maintain(0, at(0, 100), 0, true).unwrap();
    d.insert("k2", DAY);
    d.maintain(0, at(0, 200), 0, true).unwrap();
    assert_eq!(d.run_count(), 1, "same segment, memtable not full: kept in memory");
    assert_eq!(d.keep_segment(), Some(0));
    d.maintain(0, at(1, 50), 1, true).unwrap();
    assert_eq!(d.run_count(), 2);
    assert_eq!(d.keep_segment(), None);
    assert_eq!(d.replay_from(), at(1, 50));
}

#[test]
fn runs_of_one_tier_merge_keeping_the_latest_expiry_and_dropping_expired_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    let mut model = HashMap::new();
    for i in 0..FANOUT as u64 {
        let mut keys = Vec::new();
        for k in 0..500u64 {
            let key = format!("wa\0wamid.{}", (k * 7 + i * 131) % 900);
            let exp = DAY + i * 1000 + k;
            keys.push((key.clone(), exp));
            let e = model.entry(key).or_insert(0);
            *e = (*e).max(exp);
        }
        keys.push((format!("old{i}"), 10));
        d.write_run(keys, at(i, 0)).unwrap();
    }
    assert_eq!(d.run_count(), FANOUT);
    d.maintain(100, at(5, 0), 5, true).unwrap();
    assert_eq!(d.run_count(), 1, "{:?}", files(tmp.path()));
    assert_eq!(files(tmp.path()).len(), 1);
    for (k, e) in &model {
        assert_eq!(d.get(k).unwrap(), Some(*e), "{k}");
    }
    assert_eq!(d.get("old0").unwrap(), None, "expired keys are dropped by a merge");
    let again = Dedupe::open(tmp.path()).unwrap();
    assert_eq!(again.all().unwrap(), model);
}

/// A store with [`FANOUT`] one-key runs (`k0`, `k1`, ...) of one tier: the next
/// maintenance merges them.
fn one_tier_of_runs() -> (tempfile::TempDir, Dedupe) {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    for i in 0..FANOUT as u64 {
        d.write_run([(format!("k{i}"), DAY)], at(i, 0)).unwrap();
    }
    (tmp, d)
}

/// Every key [`one_tier_of_runs`] wrote is found.
fn assert_tier_keys(d: &Dedupe) {
    for i in 0..FANOUT {
        assert_eq!(d.get(&format!("k{i}")).unwrap(), Some(DAY), "k{i}");
    }
}

#[test]
fn open_cleans_up_after_a_crash_mid_write_or_mid_merge() {
    let (tmp, mut d) = one_tier_of_runs();
    // Keep copies of the inputs, merge, then put them back: as if the daemon died after the
    // merged run was renamed into place but before the inputs were deleted.
    let saved: Vec<(PathBuf, Vec<u8>)> = files(tmp.path()).iter().map(|n| (tmp.path().join(n), std::fs::read(tmp.path().join(n)).unwrap())).collect();
    d.maintain(0, at(9, 0), 9, true).unwrap();
    for (p, b) in &saved {
        std::fs::write(p, b).unwrap();
    }
    std::fs::write(tmp.path().join("run-00000000000000000099.tmp"), b"torn").unwrap();
    let d = Dedupe::open(tmp.path()).unwrap();
    assert_eq!(d.run_count(), 1);
    assert_eq!(files(tmp.path()).len(), 1, "{:?}", files(tmp.path()));
    assert_tier_keys(&d);
}

/// Under load the merged inputs are deleted off the caller's (the store writer's) thread; they
/// go all the same, and a store opening the directory meanwhile does not trip over them.
#[test]
fn merged_inputs_are_deleted_in_the_background_and_an_open_meanwhile_copes() {
    let (tmp, mut d) = one_tier_of_runs();
    // Not waiting: the merge starts here and is installed by a later call once it finished.
    let mut polls = 0;
    while d.run_count() != 1 {
        d.maintain(0, at(9, 0), 9, false).unwrap();
        polls += 1;
        assert!(polls < 2_000, "merge never installed: {:?}", files(tmp.path()));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // (A second store opening the directory while the merge is written would remove its
    // temporary file; only once it is installed does this test open one.)
    while files(tmp.path()).len() != 1 {
        let other = Dedupe::open(tmp.path()).unwrap();
        assert_tier_keys(&other);
        polls += 1;
        assert!(polls < 4_000, "inputs never deleted: {:?}", files(tmp.path()));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_tier_keys(&d);
}

#[test]
fn a_damaged_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    d.write_run((0..100).map(|i| (format!("key{i}"), DAY)), at(0, 0)).unwrap();
    let name = files(tmp.path()).remove(0);
    let path = tmp.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = Dedupe::open(tmp.path()).err().expect("damage is found");
    assert!(err.to_string().contains("checksum") || err.to_string().contains("damaged"), "{err}");
    bytes.truncate(mid);
    std::fs::write(&path, &bytes).unwrap();
    assert!(Dedupe::open(tmp.path()).is_err());
}

#[test]
fn lookups_across_many_blocks_find_every_key_and_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(tmp.path()).unwrap();
    d.write_run((0..5000u64).map(|i| (format!("acct\0id-{i}"), DAY + i)), at(0, 0)).unwrap();
    for i in 0..5000u64 {
        assert_eq!(d.get(&format!("acct\0id-{i}")).unwrap(), Some(DAY + i));
    }
    for i in 5000..6000u64 {
        assert_eq!(d.get(&format!("acct\0id-{i}")).unwrap(), None);
    }
}

#[test]
fn a_failed_flush_keeps_its_keys_and_is_retried_later_not_at_every_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let mut d = Dedupe::open(&runs).unwrap();
    d.insert("k1", DAY);
    // The directory vanishes (as good as a full disk for the run writer).
    std::fs::remove_dir_all(&runs).unwrap();
    d.maintain(0, at(0, 100), 0, false).unwrap();
    while d.job.as_ref().is_some_and(|j| !matches!(j, Job::Flush(h) if h.is_finished())) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    d.maintain(10, at(0, 100), 0, false).unwrap();
    assert!(d.job.is_none(), "no retry right after a failure");
    assert_eq!(d.get("k1").unwrap(), Some(DAY), "the frozen keys are still looked up");
    assert_eq!(d.keep_segment(), Some(0), "and still pin the log");
    std::fs::create_dir_all(&runs).unwrap();
    d.maintain(10 + RETRY_MS, at(0, 100), 0, true).unwrap();
    assert_eq!(d.run_count(), 1);
    assert_eq!(d.keep_segment(), None);
    assert_eq!(Dedupe::open(&runs).unwrap().get("k1").unwrap(), Some(DAY));
}
