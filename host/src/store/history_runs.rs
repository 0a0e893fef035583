//! Conversation history as a memtable plus immutable sorted runs on disk: the first part of
//! step 2 of the log-structured webhook path (`docs/log-store.md`).
//!
//! Why: the history ring was the largest part of the redb writer's time per webhook left
//! after steps 1 and 3 (~10.6 of ~33 µs, `BENCHMARKS.md`, "What the writer's ~33 µs per
//! webhook are now"): each message overwrote its conversation's slot in a B-tree, one random
//! 4 KiB leaf copied on write and written back every commit. Here a message is a `history`
//! frame in the inbox log (what makes it durable, see [`super::inbox_log`]) and an entry in a
//! memtable; entries reach disk in sorted runs written whole, off the writer's thread, so the
//! cost per message is an append and a sequential write whatever the senders do.
//!
//! **Numbering.** Each message of a conversation has its number `n` (the count of messages the
//! conversation had before it), kept by the conversation's row in the engine (`ring.next`).
//! The history is the entries with `n` in `next - size .. next`, `size` the retention; a
//! reader filters by the row it read, so entries past the retention, still on disk until a
//! merge drops them, are never shown, and an entry committed after the row was read is not
//! either.
//!
//! **Runs.** Entries sorted by (the conversation's 128-bit fingerprint, the conversation,
//! `n`), a sparse index of every [`BLOCK`](super::runs::BLOCK)-th entry and a Bloom filter over conversation
//! fingerprints in memory: a read probes the runs whose filter admits the conversation, one
//! or two blocks each. Each run records the log position it covers (replay at open starts
//! there) and, after a merge, the runs it replaced (deleted at open if a crash left them).
//! Runs are written to a temporary file, synced, renamed and the directory synced.
//!
//! **Space.** Runs of similar size are merged [`FANOUT`] at a time; a merge keeps, per
//! conversation, the newest `size` entries it sees (`size` as the newest entry recorded it).

use super::dedupe_runs::fingerprint;
use super::log::Position;
use super::runs::{self, CrcReader, Job, RunFile, SparseIndex as RunIndex, bad, io_at};
#[cfg(test)]
use super::runs::FANOUT;
use crate::store::history::HistoryEntry;
use fastbloom::BloomFilter;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Bytes of entries (roughly) in the memtable before it is written as a run.
pub const MEMTABLE_BYTES: usize = 4 << 20;
const MAGIC: &[u8; 8] = b"SBHIST01";
/// How long after a failed flush or merge the next one may start.
const RETRY_MS: u64 = 5_000;
/// Entry head: fingerprint, n, size, key length, value length.
const HEAD: usize = 16 + 8 + 4 + 2 + 4;

/// A message as the memtable keeps it: the retention it was recorded under, and the entry's
/// JSON as its frame carried it (encoded once, on the writer; decoded only when read).
#[derive(Debug, Clone)]
pub struct Kept {
    pub size: u32,
    pub entry: Arc<serde_json::value::RawValue>,
}

fn decode_entry(path: &Path, json: &[u8]) -> io::Result<HistoryEntry> {
    serde_json::from_slice(json).map_err(|err| bad(path, &err.to_string()))
}

/// Memtable: (`account\0conversation`, n) → the message.
type Memtable = BTreeMap<(String, u64), Kept>;

/// One run's entry, in the run's order (fingerprint, key, n).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RunEntry {
    fp: u128,
    key: String,
    n: u64,
    size: u32,
    /// The entry's JSON.
    value: Vec<u8>,
}

impl RunEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fp.to_le_bytes());
        out.extend_from_slice(&self.n.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.value);
    }

    /// The entry at the start of `buf` and its length; `None` when `buf` holds no whole one.
    fn decode(buf: &[u8]) -> Option<(Self, usize)> {
        let head = buf.get(..HEAD)?;
        let fp = u128::from_le_bytes(head[..16].try_into().expect("16"));
        let n = u64::from_le_bytes(head[16..24].try_into().expect("8"));
        let size = u32::from_le_bytes(head[24..28].try_into().expect("4"));
        let klen = u16::from_le_bytes(head[28..30].try_into().expect("2")) as usize;
        let vlen = u32::from_le_bytes(head[30..34].try_into().expect("4")) as usize;
        let key = std::str::from_utf8(buf.get(HEAD..HEAD + klen)?).ok()?.to_string();
        let value = buf.get(HEAD + klen..HEAD + klen + vlen)?.to_vec();
        Some((Self { fp, key, n, size, value }, HEAD + klen + vlen))
    }
}

/// A run's header: what it covers and which runs it replaced.
type Header = runs::RunHead;

const EXT: &str = "history";

/// Streams a run's entries in order, verifying the count and checksum at the end.
struct RunReader {
    rd: CrcReader,
    /// Entry bytes not read yet.
    left: u64,
    header: Header,
    seen: u64,
    buf: Vec<u8>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        let (rd, len) = CrcReader::open(path)?;
        let mut me = Self { rd, left: 0, header: Header::default(), seen: 0, buf: Vec::new() };
        me.header = Header::read(&mut me.rd, MAGIC, "history run")?;
        // The trailer: the entry count and the checksum.
        me.left = len.checked_sub(me.header.len() + 8 + 4).ok_or_else(|| bad(path, "truncated"))?;
        Ok(me)
    }

    fn header_len(&self) -> u64 {
        self.header.len()
    }

    /// The next entry and its length; `None` after the last (trailer verified).
    fn next_entry(&mut self) -> io::Result<Option<(RunEntry, u64)>> {
        if self.left == 0 {
            let count = self.rd.u64()?;
            self.rd.check()?;
            if count != self.seen {
                return Err(bad(&self.rd.path, "checksum mismatch"));
            }
            return Ok(None);
        }
        let mut head = [0u8; HEAD];
        self.rd.read(&mut head)?;
        let klen = u16::from_le_bytes(head[28..30].try_into().expect("2")) as usize;
        let vlen = u32::from_le_bytes(head[30..34].try_into().expect("4")) as usize;
        let total = (HEAD + klen + vlen) as u64;
        if total > self.left {
            return Err(bad(&self.rd.path, "damaged entry"));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(total as usize, 0);
        self.rd.read(&mut buf[HEAD..])?;
        let entry = RunEntry::decode(&buf).map(|(e, _)| e).ok_or_else(|| bad(&self.rd.path, "damaged entry"))?;
        self.buf = buf;
        self.left -= total;
        self.seen += 1;
        Ok(Some((entry, total)))
    }
}

/// One immutable run on disk, with its filter and sparse index in memory.
pub struct Run {
    seq: u64,
    path: PathBuf,
    file: File,
    header: Header,
    count: u64,
    filter: BloomFilter,
    /// Fingerprint and file offset of every [`BLOCK`](super::runs::BLOCK)-th entry.
    blocks: Vec<(u128, u64)>,
    entries_end: u64,
}

impl Run {
    fn open(path: &Path, seq: u64) -> io::Result<Self> {
        let mut r = RunReader::open(path)?;
        let mut offset = r.header_len();
        let mut ix = RunIndex::new(r.header.expected);
        while let Some((e, len)) = r.next_entry()? {
            ix.add(e.fp, offset);
            offset += len;
        }
        let file = File::open(path).map_err(|e| io_at(path, e))?;
        Ok(Self { seq, path: path.to_path_buf(), file, header: r.header, count: ix.n, filter: ix.filter, blocks: ix.blocks, entries_end: offset })
    }

    /// Writes `entries` (in run order) as run `seq`.
    fn write(dir: &Path, seq: u64, header: Header, entries: impl Iterator<Item = io::Result<RunEntry>>) -> io::Result<Self> {
        let (path, file, (ix, offset, header)) = runs::write_run(dir, seq, EXT, |w| {
            let head = header.encode(MAGIC);
            w.put(&head)?;
            let mut offset = head.len() as u64;
            let mut ix = RunIndex::new(header.expected);
            let mut body = Vec::new();
            for e in entries {
                let e = e?;
                ix.add(e.fp, offset);
                body.clear();
                e.encode(&mut body);
                w.put(&body)?;
                offset += body.len() as u64;
            }
            w.put(&ix.n.to_le_bytes())?;
            Ok((ix, offset, header))
        })?;
        Ok(Self { seq, path, file, header, count: ix.n, filter: ix.filter, blocks: ix.blocks, entries_end: offset })
    }

    /// The conversation's entries in this run, in `n` order.
    fn get(&self, fp: u128, key: &str) -> io::Result<Vec<RunEntry>> {
        let mut out = Vec::new();
        if !self.filter.contains_hash(fp as u64) {
            return Ok(out);
        }
        // The block before the first one starting past `fp` may hold its first entries.
        let mut i = self.blocks.partition_point(|(f, _)| *f < fp).saturating_sub(1);
        while i < self.blocks.len() {
            let start = self.blocks[i].1;
            let end = self.blocks.get(i + 1).map_or(self.entries_end, |b| b.1);
            let mut buf = vec![0u8; (end - start) as usize];
            self.file.read_exact_at(&mut buf, start).map_err(|e| io_at(&self.path, e))?;
            let mut at = 0;
            while at < buf.len() {
                let (e, len) = RunEntry::decode(&buf[at..]).ok_or_else(|| bad(&self.path, "damaged entry"))?;
                at += len;
                if e.fp > fp {
                    return Ok(out);
                }
                if e.fp == fp && e.key == key {
                    out.push(e);
                }
            }
            i += 1;
        }
        Ok(out)
    }

}

impl RunFile for Run {
    fn open(path: &Path, seq: u64) -> io::Result<Self> {
        Run::open(path, seq)
    }

    fn meta(&self) -> runs::RunMeta<'_> {
        runs::RunMeta { seq: self.seq, path: &self.path, inputs: &self.header.inputs, count: self.count }
    }
}

/// Entries in a run of the smallest size tier.
const TIER_BASE: u64 = 8_192;

/// Keeps, of one conversation's entries (in `n` order, no `n` twice), the newest `size` (the
/// retention the newest was recorded under).
fn keep_newest(group: &mut Vec<RunEntry>) {
    if let Some(size) = group.last().map(|e| e.size as usize) {
        let cut = group.len().saturating_sub(size.max(1));
        group.drain(..cut);
    }
}

/// Merges runs into one stream in run order, keeping per conversation its newest entries.
fn merged(inputs: &[Arc<Run>]) -> io::Result<impl Iterator<Item = io::Result<RunEntry>>> {
    let mut readers: Vec<RunReader> = inputs.iter().map(|r| RunReader::open(&r.path)).collect::<io::Result<_>>()?;
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some((e, _)) = r.next_entry()? {
            heap.push(std::cmp::Reverse((e, i)));
        }
    }
    let mut ready: std::collections::VecDeque<RunEntry> = Default::default();
    let mut failed = false;
    Ok(std::iter::from_fn(move || {
        loop {
            if let Some(e) = ready.pop_front() {
                return Some(Ok(e));
            }
            if failed {
                return None;
            }
            // One conversation's entries from every input.
            let std::cmp::Reverse((first, _)) = heap.peek()?.clone();
            let mut group: Vec<RunEntry> = Vec::new();
            while let Some(std::cmp::Reverse((e, _))) = heap.peek()
                && e.fp == first.fp
                && e.key == first.key
            {
                let std::cmp::Reverse((e, i)) = heap.pop().expect("peeked");
                match readers[i].next_entry() {
                    Ok(Some((next, _))) => heap.push(std::cmp::Reverse((next, i))),
                    Ok(None) => {}
                    Err(err) => {
                        failed = true;
                        return Some(Err(err));
                    }
                }
                if group.last().is_some_and(|g| g.n == e.n) {
                    continue;
                }
                group.push(e);
            }
            keep_newest(&mut group);
            ready.extend(group);
        }
    }))
}

/// What readers on other threads share with the writer: the committed memtable, the one being
/// written, and the runs.
#[derive(Default)]
struct Shared {
    memtable: Memtable,
    frozen: Option<Arc<Memtable>>,
    runs: Vec<Arc<Run>>,
}

/// Reads history from any thread (see [`HistoryRuns::reader`]).
#[derive(Clone)]
pub struct HistoryReader {
    shared: Arc<RwLock<Shared>>,
}

impl HistoryReader {
    /// The entries of conversation `key` numbered `from..to`, newest first.
    pub fn entries(&self, key: &str, from: u64, to: u64) -> io::Result<Vec<HistoryEntry>> {
        let mut found: BTreeMap<u64, HistoryEntry> = BTreeMap::new();
        let mut fresh: Vec<(u64, Arc<serde_json::value::RawValue>)> = Vec::new();
        let runs = {
            let s = self.shared.read().expect("history lock");
            for m in std::iter::once(&s.memtable).chain(s.frozen.as_deref()) {
                for ((_, n), kept) in m.range((key.to_string(), from)..(key.to_string(), to)) {
                    fresh.push((*n, kept.entry.clone()));
                }
            }
            s.runs.clone()
        };
        for (n, json) in fresh {
            if !found.contains_key(&n) {
                found.insert(n, decode_entry(Path::new("history memtable"), json.get().as_bytes())?);
            }
        }
        let fp = fingerprint(key);
        for r in runs.iter().rev() {
            for e in r.get(fp, key)? {
                if (from..to).contains(&e.n) && !found.contains_key(&e.n) {
                    found.insert(e.n, decode_entry(&r.path, &e.value)?);
                }
            }
        }
        Ok(found.into_values().rev().collect())
    }

    /// Calls `f` with each conversation's entries (`n` and the entry, oldest first; the caller
    /// keeps its window), conversation by conversation, in one merged pass over the runs and
    /// the memtables: a backup or export of a large history reads each run once, not one
    /// index probe per conversation.
    pub fn for_each_conversation<E>(&self, wrap: impl Fn(io::Error) -> E, mut f: impl FnMut(&str, Vec<(u64, HistoryEntry)>) -> Result<(), E>) -> Result<(), E> {
        // Sources, newest first: the memtable, the frozen one, then the runs newest first; the
        // source's index decides which copy of an `n` is kept.
        let (fresh, runs) = {
            let s = self.shared.read().expect("history lock");
            let fresh: Vec<Vec<RunEntry>> = std::iter::once(&s.memtable)
                .chain(s.frozen.as_deref())
                .map(|m| {
                    let mut v: Vec<RunEntry> =
                        m.iter().map(|((key, n), kept)| RunEntry { fp: fingerprint(key), key: key.clone(), n: *n, size: kept.size, value: kept.entry.get().as_bytes().to_vec() }).collect();
                    v.sort_unstable_by(|a, b| (a.fp, &a.key, a.n).cmp(&(b.fp, &b.key, b.n)));
                    v
                })
                .collect();
            (fresh, s.runs.iter().rev().cloned().collect::<Vec<_>>())
        };
        let mut sources: Vec<Box<dyn Iterator<Item = io::Result<RunEntry>>>> = Vec::new();
        for part in fresh {
            sources.push(Box::new(part.into_iter().map(Ok)));
        }
        for r in &runs {
            let mut rd = RunReader::open(&r.path).map_err(&wrap)?;
            sources.push(Box::new(std::iter::from_fn(move || rd.next_entry().transpose().map(|e| e.map(|(e, _)| e)))));
        }
        let mut heap = BinaryHeap::new();
        let pull = |i: usize, sources: &mut Vec<Box<dyn Iterator<Item = io::Result<RunEntry>>>>, heap: &mut BinaryHeap<_>| -> io::Result<()> {
            if let Some(e) = sources[i].next().transpose()? {
                heap.push(std::cmp::Reverse((e.fp, e.key, e.n, i, e.value)));
            }
            Ok(())
        };
        for i in 0..sources.len() {
            pull(i, &mut sources, &mut heap).map_err(&wrap)?;
        }
        let mut group: Vec<(u64, HistoryEntry)> = Vec::new();
        let mut current: Option<(u128, String)> = None;
        while let Some(std::cmp::Reverse((fp, key, n, i, value))) = heap.pop() {
            pull(i, &mut sources, &mut heap).map_err(&wrap)?;
            if current.as_ref().is_some_and(|(f, k)| (*f, k.as_str()) != (fp, key.as_str())) {
                let (_, k) = current.take().expect("checked");
                f(&k, std::mem::take(&mut group))?;
            }
            if current.is_none() {
                current = Some((fp, key.clone()));
            }
            // The first copy of an `n` popped comes from the newest source holding it.
            if group.last().is_none_or(|(last, _)| *last != n) {
                group.push((n, decode_entry(Path::new(&key), &value).map_err(&wrap)?));
            }
        }
        if let Some((_, k)) = current {
            f(&k, group)?;
        }
        Ok(())
    }
}

/// The history of the webhook and enqueue paths (see the module docs). Owned by the store's
/// writer; readers go through [`Self::reader`].
pub struct HistoryRuns {
    dir: PathBuf,
    shared: Arc<RwLock<Shared>>,
    memtable_bytes: usize,
    /// The log position the frozen memtable's entries end at.
    frozen_covers: Option<Position>,
    next_seq: u64,
    job: Option<Job<Run>>,
    /// Every entry logged before this is in a run.
    floor: Option<Position>,
    retry_at_ms: u64,
}

impl HistoryRuns {
    /// Opens the runs in `dir` (created when missing), deleting leftovers of interrupted
    /// writes and runs a merged run replaced.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let (runs, next_seq) = runs::open_dir::<Run>(dir, EXT)?;
        let floor = runs.iter().map(|r| r.header.covers).max();
        let shared = Arc::new(RwLock::new(Shared { runs, ..Default::default() }));
        Ok(Self { dir: dir.to_path_buf(), shared, memtable_bytes: 0, frozen_covers: None, next_seq, job: None, floor, retry_at_ms: 0 })
    }

    /// A stand-in holding nothing, touching no files (while the real one is moved out).
    pub fn detached() -> Self {
        Self {
            dir: PathBuf::new(),
            shared: Arc::default(),
            memtable_bytes: 0,
            frozen_covers: None,
            next_seq: 1,
            job: None,
            floor: None,
            retry_at_ms: 0,
        }
    }

    /// A handle for reading from other threads; it sees what [`Self::insert`] published.
    pub fn reader(&self) -> HistoryReader {
        HistoryReader { shared: self.shared.clone() }
    }

    /// Takes over `old`'s readers: they see this instance's state from now on (a store
    /// reloaded from scratch keeps the handles it gave out).
    pub fn share_readers_of(&mut self, old: &HistoryRuns) {
        let mine = std::mem::take(&mut *self.shared.write().expect("history lock"));
        *old.shared.write().expect("history lock") = mine;
        self.shared = old.shared.clone();
    }

    /// Entries logged from this position on are not in a run: replay them.
    pub fn replay_from(&self) -> Position {
        self.frozen_covers.or(self.floor).unwrap_or_default()
    }

    /// The oldest log segment the history still needs (`None`: none).
    pub fn keep_segment(&self) -> Option<u64> {
        let s = self.shared.read().expect("history lock");
        (!s.memtable.is_empty() || s.frozen.is_some()).then(|| self.floor.unwrap_or_default().segment)
    }

    /// Forgets the memtable (rebuilt from the log by the caller).
    pub fn clear_memtable(&mut self) {
        self.shared.write().expect("history lock").memtable.clear();
        self.memtable_bytes = 0;
    }

    /// Adds committed (or replayed) entries: (`account\0conversation`, n, the message). An
    /// entry a retention's worth older than one pushed out of it leaves the memtable at once,
    /// so a busy conversation holds at most twice its retention here. (Not the one just
    /// pushed out: a reader that read the conversation's row a commit or more ago still wants
    /// it.)
    pub fn insert(&mut self, entries: impl IntoIterator<Item = (String, u64, Kept)>) {
        let mut s = self.shared.write().expect("history lock");
        for (key, n, kept) in entries {
            let cost = key.len() + kept.entry.get().len() + 64;
            if let Some(old) = n.checked_sub(2 * u64::from(kept.size.max(1)))
                && let Some(gone) = s.memtable.remove(&(key.clone(), old))
            {
                self.memtable_bytes = self.memtable_bytes.saturating_sub(key.len() + gone.entry.get().len() + 64);
            }
            self.memtable_bytes += cost;
            s.memtable.insert((key, n), kept);
        }
    }

    /// Writes the memtable as a run covering the log up to `covers` now, on this thread (tests).
    #[cfg(test)]
    pub fn flush_now(&mut self, covers: Position) -> io::Result<()> {
        let m = std::mem::take(&mut self.shared.write().expect("history lock").memtable);
        self.memtable_bytes = 0;
        let seq = self.take_seq();
        let run = Run::write(&self.dir, seq, Header { expected: m.len() as u64, covers, inputs: Vec::new() }, sorted(&m).map(Ok))?;
        self.floor = self.floor.max(Some(covers));
        self.shared.write().expect("history lock").runs.push(Arc::new(run));
        Ok(())
    }

    #[cfg(test)]
    pub fn run_count(&self) -> usize {
        self.shared.read().expect("history lock").runs.len()
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Housekeeping after a commit that made the log durable up to `committed` (as
    /// [`super::dedupe_runs::Dedupe::maintain`]): installs finished work, then starts the
    /// next flush (memtable full, or its entries reach back to an older segment than
    /// `segment`) or merge.
    pub fn maintain(&mut self, now: u64, committed: Position, segment: u64, wait: bool) -> io::Result<()> {
        if self.job.is_some() {
            let Some(job) = runs::take_finished(&mut self.job, wait) else { return Ok(()) };
            if !self.install(job, wait)? {
                self.retry_at_ms = now + RETRY_MS;
            }
        }
        if now < self.retry_at_ms && !wait {
            return Ok(());
        }
        let frozen = {
            let mut s = self.shared.write().expect("history lock");
            let stale = self.floor.is_none_or(|f| f.segment < segment);
            if s.frozen.is_none() && !s.memtable.is_empty() && (self.memtable_bytes >= MEMTABLE_BYTES || stale) {
                s.frozen = Some(Arc::new(std::mem::take(&mut s.memtable)));
                self.memtable_bytes = 0;
                self.frozen_covers = Some(committed);
            }
            s.frozen.clone()
        };
        if let (Some(m), Some(covers)) = (frozen, self.frozen_covers) {
            let (dir, seq) = (self.dir.clone(), self.take_seq());
            self.job = Some(Job::Flush(spawn(move || {
                Run::write(&dir, seq, Header { expected: m.len() as u64, covers, inputs: Vec::new() }, sorted(&m).map(Ok))
            })?));
        } else if let Some(inputs) = self.merge_candidates() {
            let (dir, seq) = (self.dir.clone(), self.take_seq());
            let seqs: Vec<u64> = inputs.iter().map(|r| r.seq).collect();
            let header = Header {
                expected: inputs.iter().map(|r| r.count).sum(),
                covers: inputs.iter().map(|r| r.header.covers).max().unwrap_or_default(),
                inputs: seqs.clone(),
            };
            self.job = Some(Job::Merge(spawn(move || Run::write(&dir, seq, header, merged(&inputs)?))?, seqs));
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
            Job::Flush(h) => match h.join().expect("history flush panicked") {
                Ok(run) => {
                    self.floor = self.floor.max(Some(run.header.covers));
                    self.frozen_covers = None;
                    let mut s = self.shared.write().expect("history lock");
                    runs::drop_elsewhere(s.frozen.take());
                    s.runs.push(Arc::new(run));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not write a history run; will retry");
                    return Ok(false);
                }
            },
            Job::Merge(h, inputs) => match h.join().expect("history merge panicked") {
                Ok(run) => {
                    let mut s = self.shared.write().expect("history lock");
                    s.runs.retain(|r| !inputs.contains(&r.seq));
                    s.runs.push(Arc::new(run));
                    s.runs.sort_by_key(|r| r.seq);
                    drop(s);
                    // Readers holding a replaced run keep reading it through its open file.
                    runs::remove_files(inputs.iter().map(|&seq| runs::run_path(&self.dir, seq, EXT)).collect(), now)?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not merge history runs; will retry");
                    return Ok(false);
                }
            },
        }
        Ok(true)
    }

    fn merge_candidates(&self) -> Option<Vec<Arc<Run>>> {
        runs::merge_candidates(&self.shared.read().expect("history lock").runs, TIER_BASE)
    }
}

/// A memtable's entries in run order, each conversation trimmed to its newest entries. Only
/// references are sorted; each entry is copied out as it is written, so a flush holds about
/// 40 bytes an entry beyond the frozen memtable itself.
fn sorted(m: &Memtable) -> impl Iterator<Item = RunEntry> + '_ {
    let mut refs: Vec<(u128, &str, u64, &Kept)> = Vec::with_capacity(m.len());
    let mut group: Vec<(u64, &Kept)> = Vec::new();
    let mut entries = m.iter().peekable();
    while let Some(((key, n), kept)) = entries.next() {
        group.push((*n, kept));
        if entries.peek().is_none_or(|((next, _), _)| next != key) {
            let keep = group.last().map_or(0, |(_, k)| k.size.max(1) as usize);
            let fp = fingerprint(key);
            refs.extend(group.drain(..).rev().take(keep).map(|(n, k)| (fp, key.as_str(), n, k)));
        }
    }
    refs.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    refs.into_iter().map(|(fp, key, n, kept)| RunEntry { fp, key: key.to_string(), n, size: kept.size, value: kept.entry.get().as_bytes().to_vec() })
}

fn spawn(f: impl FnOnce() -> io::Result<Run> + Send + 'static) -> io::Result<std::thread::JoinHandle<io::Result<Run>>> {
    runs::spawn("history-runs", f)
}

#[cfg(test)]
mod tests;
