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
//! first; a run is read (one block of [`BLOCK`] entries, found by binary search of a sparse
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
use fastbloom::BloomFilter;
use sha2::{Digest, Sha256};
use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Keys in the memtable before it is written as a run.
pub const MEMTABLE_KEYS: usize = 65_536;
/// Runs of one size tier merged at a time; tiers grow by this factor.
const FANOUT: usize = 4;
/// Entries per block of a run's sparse index.
const BLOCK: u64 = 64;
const MAGIC: &[u8; 8] = b"SBDEDUP1";
/// Bloom filter false-positive rate (each one costs a block read).
const FALSE_POS: f64 = 0.01;

/// The 128-bit fingerprint runs are sorted and filtered by (the first bytes of the key's
/// SHA-256: stable across builds, uniform, so its low bits feed the filter directly).
pub fn fingerprint(key: &str) -> u128 {
    let d = Sha256::digest(key.as_bytes());
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

fn io_at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn bad(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
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

fn run_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("run-{seq:020}.dedupe"))
}

/// Streams a run's entries in order, checking its count and checksum at the end.
struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
    crc: crc32fast::Hasher,
    /// Entry bytes not read yet.
    left: u64,
    header: Header,
    seen: u64,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        let f = File::open(path).map_err(|e| io_at(path, e))?;
        let len = f.metadata()?.len();
        let mut me = Self { path: path.to_path_buf(), r: BufReader::with_capacity(1 << 16, f), crc: crc32fast::Hasher::new(), left: 0, header: Header::default(), seen: 0 };
        let mut magic = [0u8; 8];
        me.read(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad(path, "not a dedupe run"));
        }
        let expected = me.u64()?;
        let covers = Position { segment: me.u64()?, offset: me.u64()? };
        let n = me.u64()?;
        if n > 1 << 20 {
            return Err(bad(path, "damaged header"));
        }
        let inputs = (0..n).map(|_| me.u64()).collect::<io::Result<_>>()?;
        me.header = Header { expected, covers, inputs, count: 0, max_expiry: 0 };
        me.left = len.checked_sub(header_len(&me.header) + TRAILER).ok_or_else(|| bad(path, "truncated"))?;
        Ok(me)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { bad(&self.path, "truncated") } else { io_at(&self.path, e) })?;
        self.crc.update(buf);
        Ok(())
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The next entry and its length in bytes; `None` after the last (trailer verified, and
    /// then [`Self::header`] is complete).
    fn next_entry(&mut self) -> io::Result<Option<(Entry, u64)>> {
        if self.left == 0 {
            self.header.count = self.u64()?;
            self.header.max_expiry = self.u64()?;
            let mut b = [0u8; 4];
            self.r.read_exact(&mut b).map_err(|_| bad(&self.path, "truncated"))?;
            if u32::from_le_bytes(b) != self.crc.clone().finalize() || self.header.count != self.seen {
                return Err(bad(&self.path, "checksum mismatch"));
            }
            return Ok(None);
        }
        let mut head = [0u8; 26];
        self.read(&mut head)?;
        let fp = u128::from_le_bytes(head[..16].try_into().expect("16"));
        let expires_at_ms = u64::from_le_bytes(head[16..24].try_into().expect("8"));
        let len = u16::from_le_bytes(head[24..].try_into().expect("2")) as usize;
        let total = 26 + len as u64;
        if total > self.left {
            return Err(bad(&self.path, "damaged entry"));
        }
        let mut key = vec![0u8; len];
        self.read(&mut key)?;
        self.left -= total;
        self.seen += 1;
        let key = String::from_utf8(key).map_err(|_| bad(&self.path, "key is not UTF-8"))?;
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
    /// First fingerprint and file offset of every [`BLOCK`]-th entry.
    blocks: Vec<(u128, u64)>,
    entries_end: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("seq", &self.seq).field("count", &self.header.count).finish()
    }
}

/// Builds a run's in-memory part while its entries stream past (written or read).
struct RunBuilder {
    filter: BloomFilter,
    blocks: Vec<(u128, u64)>,
    n: u64,
}

impl RunBuilder {
    fn new(expected: u64) -> Self {
        Self { filter: BloomFilter::with_false_pos(FALSE_POS).expected_items(expected.max(1) as usize), blocks: Vec::new(), n: 0 }
    }

    fn add(&mut self, fp: u128, offset: u64) {
        self.filter.insert_hash(fp as u64);
        if self.n.is_multiple_of(BLOCK) {
            self.blocks.push((fp, offset));
        }
        self.n += 1;
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
        let path = run_path(dir, seq);
        let tmp = path.with_extension("tmp");
        let f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| io_at(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 16, f);
        let mut crc = crc32fast::Hasher::new();
        let mut unsynced = 0;
        let mut put = |w: &mut BufWriter<File>, b: &[u8]| -> io::Result<()> {
            crc.update(b);
            w.write_all(b)?;
            unsynced += b.len();
            if unsynced >= PACE_CHUNK {
                unsynced = 0;
                w.flush()?;
                w.get_ref().sync_data()?;
                std::thread::sleep(PACE_PAUSE);
            }
            Ok(())
        };
        let mut header = Header { expected, covers, inputs, count: 0, max_expiry: 0 };
        let head = encode_header(&header);
        put(&mut w, &head)?;
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
            put(&mut w, &body)?;
        }
        header.count = b.n;
        put(&mut w, &header.count.to_le_bytes())?;
        put(&mut w, &header.max_expiry.to_le_bytes())?;
        drop(put);
        w.write_all(&crc.finalize().to_le_bytes())?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all().map_err(|e| io_at(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io_at(&path, e))?;
        File::open(dir)?.sync_all()?;
        let file = File::open(&path).map_err(|e| io_at(&path, e))?;
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

    fn tier(&self) -> u32 {
        let mut n = self.header.count.max(1) / MEMTABLE_KEYS as u64;
        let mut t = 0;
        while n >= FANOUT as u64 {
            n /= FANOUT as u64;
            t += 1;
        }
        t
    }
}

fn header_len(h: &Header) -> u64 {
    8 + 8 * 4 + 8 * h.inputs.len() as u64
}

fn encode_header(h: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(h) as usize);
    out.extend_from_slice(MAGIC);
    for v in [h.expected, h.covers.segment, h.covers.offset, h.inputs.len() as u64] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &h.inputs {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
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

/// Work done off the writer's thread: one at a time.
enum Job {
    /// Writing the frozen memtable as a run.
    Flush(JoinHandle<io::Result<Run>>),
    /// Merging runs (by seq) into one.
    Merge(JoinHandle<io::Result<Run>>, Vec<u64>),
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
    job: Option<Job>,
    /// Every key logged before this is in a run.
    floor: Option<Position>,
    /// After a failed flush or merge (a full disk), no new one starts before this time: the
    /// keys are safe in the log meanwhile, and a retry per commit would flood the log.
    retry_at_ms: u64,
}

/// A run is written this many bytes at a time, each piece synced, with a pause after it.
/// Written in one go and synced at the end, a run of several MB reached the disk as one burst,
/// and the webhooks' group commits whose sync came behind it waited 4–7 ms: measured with
/// `bench/ab.sh` (its slow-commit count), paced this way the slow commits under ingest went
/// from 9 to 4 per 8 s and p99 from 8.0 to 7.1 ms (3 of 3 pairs; on the history-runs branch,
/// which writes more runs, 21 → 12 and 10.8 → 8.8 ms). It caps a run's writing at ~45 MB/s,
/// several times what the merges of 30k webhooks a second need.
const PACE_CHUNK: usize = 256 << 10;
const PACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// How long after a failed flush or merge the next one may start.
const RETRY_MS: u64 = 5_000;

impl Dedupe {
    /// Opens the runs in `dir` (created when missing), deleting leftovers of interrupted
    /// writes and runs a merged run replaced.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_at(dir, e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| io_at(&path, e))?;
            } else if let Some(seq) = name.strip_prefix("run-").and_then(|n| n.strip_suffix(".dedupe")).and_then(|n| n.parse::<u64>().ok()) {
                found.push(seq);
            }
        }
        found.sort_unstable();
        let mut runs = Vec::new();
        for &seq in &found {
            match Run::open(&run_path(dir, seq), seq) {
                Ok(run) => runs.push(Arc::new(run)),
                // Deleted since the listing: only replaced and expired runs are, by a store
                // that opened this directory before (see `remove_files`).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let replaced: std::collections::HashSet<u64> = runs.iter().flat_map(|r| r.header.inputs.iter().copied()).collect();
        let leftovers = runs.iter().filter(|r| replaced.contains(&r.seq)).map(|r| r.path.clone()).collect();
        remove_files(leftovers, true)?;
        runs.retain(|r| !replaced.contains(&r.seq));
        let floor = runs.iter().map(|r| r.header.covers).max();
        let next_seq = found.last().map_or(1, |s| s + 1);
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
        if let Some(job) = self.job.take() {
            let finished = match &job {
                Job::Flush(h) | Job::Merge(h, _) => h.is_finished(),
            };
            if !finished && !wait {
                self.job = Some(job);
                return Ok(());
            }
            if !self.install(job, wait)? {
                self.retry_at_ms = now + RETRY_MS;
            }
        }
        let now_expired: Vec<usize> = (0..self.runs.len()).filter(|&i| self.runs[i].header.max_expiry <= now).collect();
        let expired: Vec<PathBuf> = now_expired.iter().rev().map(|&i| self.runs.remove(i).path.clone()).collect();
        if !expired.is_empty() {
            remove_files(expired, wait)?;
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
    /// files it replaces are deleted on this thread (see [`remove_files`]).
    fn install(&mut self, job: Job, now: bool) -> io::Result<bool> {
        match job {
            Job::Flush(h) => match h.join().expect("dedupe flush panicked") {
                Ok(run) => {
                    self.floor = self.floor.max(Some(run.header.covers));
                    drop_elsewhere(self.frozen.take());
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
                    remove_files(inputs.iter().map(|&seq| run_path(&self.dir, seq)).collect(), now)?;
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

    /// The [`FANOUT`] oldest runs of the smallest tier that has that many.
    fn merge_candidates(&self) -> Option<Vec<Arc<Run>>> {
        let mut tiers: std::collections::BTreeMap<u32, Vec<Arc<Run>>> = std::collections::BTreeMap::new();
        for r in &self.runs {
            tiers.entry(r.tier()).or_default().push(r.clone());
        }
        tiers.into_values().find(|v| v.len() >= FANOUT).map(|mut v| {
            v.truncate(FANOUT);
            v
        })
    }
}

fn spawn(f: impl FnOnce() -> io::Result<Run> + Send + 'static) -> io::Result<JoinHandle<io::Result<Run>>> {
    std::thread::Builder::new().name("dedupe-runs".into()).spawn(f)
}

/// Deletes replaced or expired run files: on a thread of its own unless `now` (tests that
/// settle the runs and then count files). On the store writer's thread an `unlink` of a
/// multi-megabyte run can wait for the filesystem's journal: measured under ingest (the
/// history runs of branch `wip/history-runs`, which delete more), 3–10 ms stalls of a group
/// commit, the webhooks' p99. A file that a crash or a failure leaves behind goes when the
/// directory is opened next: a merged run names its inputs, and an expired run is expired.
fn remove_files(paths: Vec<PathBuf>, now: bool) -> io::Result<()> {
    let remove = move || -> io::Result<()> {
        for path in &paths {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(path, e)),
                _ => {}
            }
        }
        Ok(())
    };
    if now {
        return remove();
    }
    let spawned = std::thread::Builder::new().name("dedupe-remove".into()).spawn(move || {
        if let Err(e) = remove() {
            tracing::warn!(error = %e, "could not delete a replaced dedupe run; it goes at the next start");
        }
    });
    spawned.map(drop)
}

/// Drops `v` on a thread of its own: a flushed memtable is up to [`MEMTABLE_KEYS`] strings,
/// and freeing them on the store writer's thread stalled a group commit by ~2 ms. If no
/// thread can be started, the closure and `v` with it drop here.
fn drop_elsewhere<T: Send + 'static>(v: T) {
    let _ = std::thread::Builder::new().name("dedupe-drop".into()).spawn(move || drop(v));
}

#[cfg(test)]
mod tests;
