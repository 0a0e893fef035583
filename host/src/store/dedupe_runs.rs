//! Webhook dedupe keys as a memtable plus immutable sorted runs on disk, each run with a Bloom
//! filter in memory: step 3 of the log-structured webhook path (`docs/log-store.md`).
//!
//! Why: a dedupe key in a B-tree costs the redb writer a random 4 KiB leaf per webhook, copied
//! on write and written back every commit (wamids arrive in no order), ~18 µs of writer CPU
//! and ~6 KB written per webhook in `bench/ab.sh scattered`. Here a key is a hash-map insert
//! and a frame in the inbox log (which is what makes it durable, see [`super::inbox_log`]);
//! keys reach disk in sorted runs written whole, off the writer's thread.
//!
//! **Lookup.** The memtable, then the frozen memtable being written, then the runs newest
//! first; a run is read (one block of [`BLOCK`](super::runs::BLOCK) entries, found by binary search of a sparse
//! index in memory) only when its filter says the key may be in it (~1 % of misses).
//! Entries keep the whole key, not only its 128-bit fingerprint, so a lookup is exact and an
//! export can give keys back.
//!
//! **Durability and the log.** Each run records the log position it covers: every key logged
//! before it is in this run or an older one. Replay at open starts there
//! ([`Dedupe::replay_from`]), and log segments before it are not needed for dedupe any more
//! ([`Dedupe::keep_segment`]). A run is written to a temporary file, synced, renamed and the
//! directory synced, so a run file that exists is whole; its trailer checksum catches damage.
//!
//! **Space.** Runs of similar size (within a factor of [`FANOUT`]) are merged, [`FANOUT`] at
//! a time, dropping expired keys, so a lookup probes a few filters per size tier; a run whose
//! newest key has expired is deleted whole. A merged run names the runs it replaces, so a
//! crash between writing it and deleting them leaves nothing counted twice: open deletes them.

use super::log::Position;
use super::runs::{self, CrcReader, Job, RunFile, SparseIndex as RunBuilder, bad, io_at};
#[cfg(test)]
use super::runs::FANOUT;
use fastbloom::BloomFilter;
use sha2::{Digest, Sha256};
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keys in the memtable before it is written as a run.
pub const MEMTABLE_KEYS: usize = 65_536;
const MAGIC: &[u8; 8] = b"SBDEDUP1";

/// The 128-bit fingerprint runs are sorted and filtered by (the first bytes of the key's
/// SHA-256: stable across builds, uniform, so its low bits feed the filter directly).
pub fn fingerprint(key: &str) -> u128 {
    let d = Sha256::digest(key.as_bytes());
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// One run's entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub fp: u128,
    pub key: String,
    pub expires_at_ms: u64,
}

/// A run's header (known when writing starts) and trailer (known at its end).
#[derive(Debug, Clone, Default)]
struct Header {
    /// At least the number of entries (what the filter is sized for).
    expected: u64,
    covers: Position,
    inputs: Vec<u64>,
    count: u64,
    max_expiry: u64,
}

const TRAILER: u64 = 8 + 8 + 4;

const EXT: &str = "dedupe";

/// Streams a run's entries in order, checking its count and checksum at the end.
struct RunReader {
    rd: CrcReader,
    /// Entry bytes not read yet.
    left: u64,
    header: Header,
    seen: u64,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        let (rd, len) = CrcReader::open(path)?;
        let mut me = Self { rd, left: 0, header: Header::default(), seen: 0 };
        let runs::RunHead { expected, covers, inputs } = runs::RunHead::read(&mut me.rd, MAGIC, "dedupe run")?;
        me.header = Header { expected, covers, inputs, count: 0, max_expiry: 0 };
        me.left = len.checked_sub(header_len(&me.header) + TRAILER).ok_or_else(|| bad(path, "truncated"))?;
        Ok(me)
    }

    /// The next entry and its length in bytes; `None` after the last (trailer verified, and
    /// then [`Self::header`] is complete).
    fn next_entry(&mut self) -> io::Result<Option<(Entry, u64)>> {
        if self.left == 0 {
            self.header.count = self.rd.u64()?;
            self.header.max_expiry = self.rd.u64()?;
            self.rd.check()?;
            if self.header.count != self.seen {
                return Err(bad(&self.rd.path, "checksum mismatch"));
            }
            return Ok(None);
        }
        let mut head = [0u8; 26];
        self.rd.read(&mut head)?;
        let fp = u128::from_le_bytes(head[..16].try_into().expect("16"));
        let expires_at_ms = u64::from_le_bytes(head[16..24].try_into().expect("8"));
        let len = u16::from_le_bytes(head[24..].try_into().expect("2")) as usize;
        let total = 26 + len as u64;
        if total > self.left {
            return Err(bad(&self.rd.path, "damaged entry"));
        }
        let mut key = vec![0u8; len];
        self.rd.read(&mut key)?;
        self.left -= total;
        self.seen += 1;
        let key = String::from_utf8(key).map_err(|_| bad(&self.rd.path, "key is not UTF-8"))?;
        Ok(Some((Entry { fp, key, expires_at_ms }, total)))
    }
}

fn parse_block(buf: &[u8]) -> impl Iterator<Item = (u128, u64, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = buf.get(at..at + 26)?;
        let fp = u128::from_le_bytes(head[..16].try_into().expect("16"));
        let exp = u64::from_le_bytes(head[16..24].try_into().expect("8"));
        let len = u16::from_le_bytes(head[24..].try_into().expect("2")) as usize;
        let key = buf.get(at + 26..at + 26 + len)?;
        at += 26 + len;
        Some((fp, exp, key))
    })
}

/// One immutable run on disk, with its filter and sparse index in memory.
pub struct Run {
    seq: u64,
    path: PathBuf,
    file: File,
    header: Header,
    filter: BloomFilter,
    /// First fingerprint and file offset of every [`BLOCK`](super::runs::BLOCK)-th entry.
    blocks: Vec<(u128, u64)>,
    entries_end: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("seq", &self.seq).field("count", &self.header.count).finish()
    }
}

impl Run {
    fn open(path: &Path, seq: u64) -> io::Result<Self> {
        let mut r = RunReader::open(path)?;
        let mut offset = header_len(&r.header);
        let mut b = RunBuilder::new(r.header.expected);
        while let Some((e, len)) = r.next_entry()? {
            b.add(e.fp, offset);
            offset += len;
        }
        let file = File::open(path).map_err(|e| io_at(path, e))?;
        Ok(Self { seq, path: path.to_path_buf(), file, header: r.header, filter: b.filter, blocks: b.blocks, entries_end: offset })
    }

    /// Writes `entries` (sorted by fingerprint, then key; no key twice) as run `seq`.
    fn write(dir: &Path, seq: u64, expected: u64, entries: impl Iterator<Item = io::Result<Entry>>, covers: Position, inputs: Vec<u64>) -> io::Result<Self> {
        let (path, file, (header, b, offset)) = runs::write_run(dir, seq, EXT, |w| {
            let mut header = Header { expected, covers, inputs, count: 0, max_expiry: 0 };
            let head = encode_header(&header);
            w.put(&head)?;
            let mut offset = head.len() as u64;
            let mut b = RunBuilder::new(expected);
            let mut body = Vec::new();
            for e in entries {
                let e = e?;
                b.add(e.fp, offset);
                body.clear();
                body.extend_from_slice(&e.fp.to_le_bytes());
                body.extend_from_slice(&e.expires_at_ms.to_le_bytes());
                // Keys are `account\0event id`, far below 64 KiB; a longer one is cut (it can
                // then never match, which only costs a missed duplicate).
                let key = &e.key.as_bytes()[..e.key.len().min(u16::MAX as usize)];
                body.extend_from_slice(&(key.len() as u16).to_le_bytes());
                body.extend_from_slice(key);
                header.max_expiry = header.max_expiry.max(e.expires_at_ms);
                offset += body.len() as u64;
                w.put(&body)?;
            }
            header.count = b.n;
            w.put(&header.count.to_le_bytes())?;
            w.put(&header.max_expiry.to_le_bytes())?;
            Ok((header, b, offset))
        })?;
        Ok(Self { seq, path, file, header, filter: b.filter, blocks: b.blocks, entries_end: offset })
    }

    /// The key's expiry in this run, if it is here.
    fn get(&self, fp: u128, key: &str) -> io::Result<Option<u64>> {
        if !self.filter.contains_hash(fp as u64) {
            return Ok(None);
        }
        let i = self.blocks.partition_point(|(f, _)| *f <= fp);
        if i == 0 {
            return Ok(None);
        }
        let start = self.blocks[i - 1].1;
        let end = self.blocks.get(i).map_or(self.entries_end, |b| b.1);
        let mut buf = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut buf, start).map_err(|e| io_at(&self.path, e))?;
        Ok(parse_block(&buf).find(|(f, _, k)| *f == fp && *k == key.as_bytes()).map(|(_, exp, _)| exp))
    }

}

impl RunFile for Run {
    fn open(path: &Path, seq: u64) -> io::Result<Self> {
        Run::open(path, seq)
    }

    fn meta(&self) -> runs::RunMeta<'_> {
        runs::RunMeta { seq: self.seq, path: &self.path, inputs: &self.header.inputs, count: self.header.count }
    }
}

fn head(h: &Header) -> runs::RunHead {
    runs::RunHead { expected: h.expected, covers: h.covers, inputs: h.inputs.clone() }
}

fn header_len(h: &Header) -> u64 {
    head(h).len()
}

fn encode_header(h: &Header) -> Vec<u8> {
    head(h).encode(MAGIC)
}

/// Merges sorted runs' entries into one sorted stream: a key in several keeps its latest
/// expiry; keys expired at `now` are dropped.
fn merged(inputs: &[Arc<Run>], now: u64) -> io::Result<impl Iterator<Item = io::Result<Entry>>> {
    let mut readers: Vec<RunReader> = inputs.iter().map(|r| RunReader::open(&r.path)).collect::<io::Result<_>>()?;
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some((e, _)) = r.next_entry()? {
            heap.push(std::cmp::Reverse((e.fp, e.key, e.expires_at_ms, i)));
        }
    }
    let mut failed = false;
    Ok(std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            let std::cmp::Reverse((fp, key, mut exp, i)) = heap.pop()?;
            let mut refill = |i: usize, heap: &mut BinaryHeap<_>| -> io::Result<()> {
                if let Some((e, _)) = readers[i].next_entry()? {
                    heap.push(std::cmp::Reverse((e.fp, e.key, e.expires_at_ms, i)));
                }
                Ok(())
            };
            if let Err(e) = refill(i, &mut heap) {
                failed = true;
                return Some(Err(e));
            }
            while let Some(std::cmp::Reverse((f, k, _, _))) = heap.peek()
                && *f == fp
                && *k == key
            {
                let std::cmp::Reverse((_, _, e, j)) = heap.pop().expect("peeked");
                exp = exp.max(e);
                if let Err(e) = refill(j, &mut heap) {
                    failed = true;
                    return Some(Err(e));
                }
            }
            if exp > now {
                return Some(Ok(Entry { fp, key, expires_at_ms: exp }));
            }
        }
    }))
}

/// The dedupe keys of the webhook path (see the module docs). Owned by the store's writer.
pub struct Dedupe {
    dir: PathBuf,
    memtable: HashMap<String, u64>,
    /// The memtable being written as a run, and the log position its keys end at.
    frozen: Option<(Arc<HashMap<String, u64>>, Position)>,
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    next_seq: u64,
    job: Option<Job<Run>>,
    /// Every key logged before this is in a run.
    floor: Option<Position>,
    /// After a failed flush or merge (a full disk), no new one starts before this time: the
    /// keys are safe in the log meanwhile, and a retry per commit would flood the log.
    retry_at_ms: u64,
}


/// How long after a failed flush or merge the next one may start.
const RETRY_MS: u64 = 5_000;

impl Dedupe {
    /// Opens the runs in `dir` (created when missing), deleting leftovers of interrupted
    /// writes and runs a merged run replaced.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let (runs, next_seq) = runs::open_dir::<Run>(dir, EXT)?;
        let floor = runs.iter().map(|r| r.header.covers).max();
        Ok(Self { dir: dir.to_path_buf(), memtable: HashMap::new(), frozen: None, runs, next_seq, job: None, floor, retry_at_ms: 0 })
    }

    /// A stand-in holding nothing, touching no files (while the real one is moved out).
    pub fn detached() -> Self {
        Self { dir: PathBuf::new(), memtable: HashMap::new(), frozen: None, runs: Vec::new(), next_seq: 1, job: None, floor: None, retry_at_ms: 0 }
    }

    /// Keys logged from this position on are not in a run: replay them into the memtable.
    pub fn replay_from(&self) -> Position {
        self.frozen.as_ref().map(|f| f.1).or(self.floor).unwrap_or_default()
    }

    /// The oldest log segment dedupe still needs (`None`: none).
    pub fn keep_segment(&self) -> Option<u64> {
        (!self.memtable.is_empty() || self.frozen.is_some()).then(|| self.floor.unwrap_or_default().segment)
    }

    /// Forgets the memtable (its keys are rebuilt from the log by the caller).
    pub fn clear_memtable(&mut self) {
        self.memtable.clear();
    }

    /// Records a key as seen until `expires_at_ms`.
    pub fn insert(&mut self, key: &str, expires_at_ms: u64) {
        match self.memtable.get_mut(key) {
            Some(exp) => *exp = (*exp).max(expires_at_ms),
            None => {
                self.memtable.insert(key.to_string(), expires_at_ms);
            }
        }
    }

    /// The latest expiry recorded for `key`, if any (expired or not). The latest, not the
    /// newest source's: a clock set back could log a key again with an earlier expiry.
    pub fn get(&self, key: &str) -> io::Result<Option<u64>> {
        let mut best = self.memtable.get(key).copied();
        best = best.max(self.frozen.as_ref().and_then(|(m, _)| m.get(key)).copied());
        let fp = fingerprint(key);
        for r in self.runs.iter().rev() {
            best = best.max(r.get(fp, key)?);
        }
        Ok(best)
    }

    /// Calls `f` with every recorded key and its latest expiry, streaming (for exports and
    /// backups, off the writer's thread: memory stays flat however many keys there are; each
    /// run entry is checked against [`Self::get`], so a key comes once, from the source holding
    /// its latest expiry).
    pub fn for_each_latest<E: From<io::Error>>(&self, mut f: impl FnMut(&str, u64) -> Result<(), E>) -> Result<(), E> {
        for r in &self.runs {
            let mut rd = RunReader::open(&r.path)?;
            while let Some((e, _)) = rd.next_entry()? {
                if self.get(&e.key)? == Some(e.expires_at_ms) {
                    f(&e.key, e.expires_at_ms)?;
                }
            }
        }
        for (k, &e) in self.frozen.iter().flat_map(|(m, _)| m.iter()).chain(self.memtable.iter()) {
            if self.get(k)? == Some(e) {
                f(k, e)?;
            }
        }
        Ok(())
    }

    /// Every recorded key with its latest expiry.
    #[cfg(test)]
    pub fn all(&self) -> io::Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        self.for_each_latest(|k, e| -> io::Result<()> {
            assert!(out.insert(k.to_string(), e).is_none(), "{k} came twice");
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes `keys` as a run covering the log up to `covers` right away, on this thread
    /// (tests; the daemon's keys go through [`Self::maintain`]).
    #[cfg(test)]
    pub fn write_run(&mut self, keys: impl IntoIterator<Item = (String, u64)>, covers: Position) -> io::Result<()> {
        let seq = self.take_seq();
        let mut entries: Vec<Entry> = keys.into_iter().map(|(key, expires_at_ms)| Entry { fp: fingerprint(&key), key, expires_at_ms }).collect();
        entries.sort_unstable();
        entries.dedup_by(|b, a| {
            let same = a.fp == b.fp && a.key == b.key;
            if same {
                a.expires_at_ms = a.expires_at_ms.max(b.expires_at_ms);
            }
            same
        });
        let run = Run::write(&self.dir, seq, entries.len() as u64, entries.into_iter().map(Ok), covers, Vec::new())?;
        self.floor = self.floor.max(Some(covers));
        self.runs.push(Arc::new(run));
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    #[cfg(test)]
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Housekeeping after a commit that made the log durable up to `committed`, with `now`
    /// the store's clock: installs finished background work, deletes expired runs, and starts
    /// the next flush or merge. `segment` is the log's current segment: the memtable is
    /// flushed when it is full or when its keys reach back to an older segment (so dedupe
    /// pins at most about one segment of the log). With `wait`, background work is joined
    /// before returning (tests).
    pub fn maintain(&mut self, now: u64, committed: Position, segment: u64, wait: bool) -> io::Result<()> {
        if self.job.is_some() {
            let Some(job) = runs::take_finished(&mut self.job, wait) else { return Ok(()) };
            if !self.install(job, wait)? {
                self.retry_at_ms = now + RETRY_MS;
            }
        }
        let now_expired: Vec<usize> = (0..self.runs.len()).filter(|&i| self.runs[i].header.max_expiry <= now).collect();
        let expired: Vec<PathBuf> = now_expired.iter().rev().map(|&i| self.runs.remove(i).path.clone()).collect();
        if !expired.is_empty() {
            runs::remove_files(expired, wait)?;
        }
        if now < self.retry_at_ms && !wait {
            return Ok(());
        }
        let stale = self.floor.is_none_or(|f| f.segment < segment);
        if self.frozen.is_none() && (self.memtable.len() >= MEMTABLE_KEYS || (!self.memtable.is_empty() && stale)) {
            self.frozen = Some((Arc::new(std::mem::take(&mut self.memtable)), committed));
        }
        if let Some((keys, covers)) = self.frozen.clone() {
            let (dir, seq) = (self.dir.clone(), self.take_seq());
            self.job = Some(Job::Flush(spawn(move || {
                let mut entries: Vec<Entry> = keys.iter().map(|(k, &e)| Entry { fp: fingerprint(k), key: k.clone(), expires_at_ms: e }).collect();
                entries.sort_unstable();
                Run::write(&dir, seq, entries.len() as u64, entries.into_iter().map(Ok), covers, Vec::new())
            })?));
        } else if let Some(inputs) = self.merge_candidates() {
            let (dir, seq) = (self.dir.clone(), self.take_seq());
            let seqs: Vec<u64> = inputs.iter().map(|r| r.seq).collect();
            let expected = inputs.iter().map(|r| r.header.count).sum();
            let covers = inputs.iter().map(|r| r.header.covers).max().unwrap_or_default();
            let ins = seqs.clone();
            self.job = Some(Job::Merge(spawn(move || Run::write(&dir, seq, expected, merged(&inputs, now)?, covers, ins))?, seqs));
        }
        if wait && let Some(job) = self.job.take() {
            self.install(job, true)?;
        }
        Ok(())
    }

    /// Takes in a finished job's run; `false` when the job failed (logged). With `now`, the
    /// files it replaces are deleted on this thread (see [`runs::remove_files`]).
    fn install(&mut self, job: Job<Run>, now: bool) -> io::Result<bool> {
        match job {
            Job::Flush(h) => match h.join().expect("dedupe flush panicked") {
                Ok(run) => {
                    self.floor = self.floor.max(Some(run.header.covers));
                    runs::drop_elsewhere(self.frozen.take());
                    self.runs.push(Arc::new(run));
                }
                // The frozen keys stay (looked up, and retried after `RETRY_MS`).
                Err(e) => {
                    tracing::warn!(error = %e, "could not write a dedupe run; will retry");
                    return Ok(false);
                }
            },
            Job::Merge(h, inputs) => match h.join().expect("dedupe merge panicked") {
                Ok(run) => {
                    self.runs.retain(|r| !inputs.contains(&r.seq));
                    runs::remove_files(inputs.iter().map(|&seq| runs::run_path(&self.dir, seq, EXT)).collect(), now)?;
                    self.runs.push(Arc::new(run));
                    self.runs.sort_by_key(|r| r.seq);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not merge dedupe runs; will retry");
                    return Ok(false);
                }
            },
        }
        Ok(true)
    }

    fn merge_candidates(&self) -> Option<Vec<Arc<Run>>> {
        runs::merge_candidates(&self.runs, MEMTABLE_KEYS as u64)
    }
}

fn spawn(f: impl FnOnce() -> io::Result<Run> + Send + 'static) -> io::Result<std::thread::JoinHandle<io::Result<Run>>> {
    runs::spawn("dedupe-runs", f)
}

#[cfg(test)]
mod tests;
