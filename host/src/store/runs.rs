//! What the dedupe runs (`dedupe_runs.rs`) and the history runs (`history_runs.rs`) share:
//! immutable run files in one directory, named `run-<seq>.<ext>`, written to a temporary file
//! and renamed once synced, checksummed, merged [`FANOUT`] of a size tier at a time on a
//! background thread, and cleaned up at open after a crash (temporary files, and runs a
//! merged run names as replaced). Each module keeps its own entry format and merge rule.

use super::log::Position;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Runs of one size tier merged at a time; tiers grow by this factor.
pub const FANOUT: usize = 4;
/// Entries per block of a run's sparse index.
pub const BLOCK: u64 = 64;
/// Bloom filter false-positive rate (each one costs a block read).
const FALSE_POS: f64 = 0.01;

/// A run's in-memory part, built while its entries stream past (written or read): a Bloom
/// filter over the entries' 128-bit fingerprints and the fingerprint and file offset of every
/// [`BLOCK`]-th entry.
pub struct SparseIndex {
    pub filter: fastbloom::BloomFilter,
    pub blocks: Vec<(u128, u64)>,
    /// Entries added.
    pub n: u64,
}

impl SparseIndex {
    /// For about `expected` entries (what the filter is sized for).
    pub fn new(expected: u64) -> Self {
        Self { filter: fastbloom::BloomFilter::with_false_pos(FALSE_POS).expected_items(expected.max(1) as usize), blocks: Vec::new(), n: 0 }
    }

    pub fn add(&mut self, fp: u128, offset: u64) {
        self.filter.insert_hash(fp as u64);
        if self.n.is_multiple_of(BLOCK) {
            self.blocks.push((fp, offset));
        }
        self.n += 1;
    }
}

pub fn io_at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

pub fn bad(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// The head every run starts with, after its format's magic: the entries it was sized for,
/// the log position it covers, and the runs it replaced (a merge's inputs).
#[derive(Debug, Clone, Default)]
pub struct RunHead {
    pub expected: u64,
    pub covers: Position,
    pub inputs: Vec<u64>,
}

impl RunHead {
    pub fn len(&self) -> u64 {
        8 + 8 * 4 + 8 * self.inputs.len() as u64
    }

    pub fn encode(&self, magic: &[u8; 8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        out.extend_from_slice(magic);
        for v in [self.expected, self.covers.segment, self.covers.offset, self.inputs.len() as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in &self.inputs {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads the head of a run of format `magic` (`what` names the format in errors).
    pub fn read(rd: &mut CrcReader, magic: &[u8; 8], what: &str) -> io::Result<Self> {
        let mut m = [0u8; 8];
        rd.read(&mut m)?;
        if &m != magic {
            return Err(bad(&rd.path, &format!("not a {what}")));
        }
        let expected = rd.u64()?;
        let covers = Position { segment: rd.u64()?, offset: rd.u64()? };
        let n = rd.u64()?;
        if n > 1 << 20 {
            return Err(bad(&rd.path, "damaged header"));
        }
        let inputs = (0..n).map(|_| rd.u64()).collect::<io::Result<_>>()?;
        Ok(Self { expected, covers, inputs })
    }
}

/// A run file as the shared code needs to see it.
pub trait RunFile: Sized + Send + Sync + 'static {
    /// Opens (and verifies) run `seq` at `path`.
    fn open(path: &Path, seq: u64) -> io::Result<Self>;
    fn meta(&self) -> RunMeta<'_>;
    fn seq(&self) -> u64 {
        self.meta().seq
    }
    fn path(&self) -> &Path {
        self.meta().path
    }
    fn inputs(&self) -> &[u64] {
        self.meta().inputs
    }
    fn count(&self) -> u64 {
        self.meta().count
    }
}

/// What the shared code reads of a run: its number and file, the runs it replaced (a merge's
/// inputs) and its entry count (its size tier comes from this).
pub struct RunMeta<'a> {
    pub seq: u64,
    pub path: &'a Path,
    pub inputs: &'a [u64],
    pub count: u64,
}

pub fn run_path(dir: &Path, seq: u64, ext: &str) -> PathBuf {
    dir.join(format!("run-{seq:020}.{ext}"))
}

/// Opens the runs in `dir` (created when missing), oldest first, deleting leftovers of
/// interrupted writes and runs a merged run replaced; and the next free sequence number.
pub fn open_dir<R: RunFile>(dir: &Path, ext: &str) -> io::Result<(Vec<Arc<R>>, u64)> {
    std::fs::create_dir_all(dir).map_err(|e| io_at(dir, e))?;
    let suffix = format!(".{ext}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".tmp") {
            std::fs::remove_file(&path).map_err(|e| io_at(&path, e))?;
        } else if let Some(seq) = name.strip_prefix("run-").and_then(|n| n.strip_suffix(suffix.as_str())).and_then(|n| n.parse::<u64>().ok()) {
            found.push(seq);
        }
    }
    found.sort_unstable();
    let mut runs = Vec::new();
    for &seq in &found {
        match R::open(&run_path(dir, seq, ext), seq) {
            Ok(run) => runs.push(Arc::new(run)),
            // Deleted since the listing: only replaced and expired runs are, by a store that
            // opened this directory before (see `remove_files`).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let replaced: std::collections::HashSet<u64> = runs.iter().flat_map(|r| r.inputs().iter().copied()).collect();
    remove_files(runs.iter().filter(|r| replaced.contains(&r.seq())).map(|r| r.path().to_path_buf()).collect(), true)?;
    runs.retain(|r| !replaced.contains(&r.seq()));
    Ok((runs, found.last().map_or(1, |s| s + 1)))
}

/// Deletes replaced or expired run files: on a thread of its own unless `now` (tests that
/// settle the runs and then count files). On the store writer's thread an `unlink` of a
/// multi-megabyte run can wait for the filesystem's journal: measured under ingest, 3–10 ms
/// stalls of a group commit, the webhooks' p99. A file that a crash or a failure leaves
/// behind goes when the directory is opened next: a merged run names its inputs, and an
/// expired run is expired.
pub fn remove_files(paths: Vec<PathBuf>, now: bool) -> io::Result<()> {
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
    let spawned = std::thread::Builder::new().name("runs-remove".into()).spawn(move || {
        if let Err(e) = remove() {
            tracing::warn!(error = %e, "could not delete a replaced run file; it goes at the next start");
        }
    });
    spawned.map(drop)
}

/// Drops `v` on a thread of its own: a flushed memtable is tens of thousands of allocations,
/// and freeing them on the store writer's thread stalled a group commit by ~2 ms. If no
/// thread can be started, the closure and `v` with it drop here.
pub fn drop_elsewhere<T: Send + 'static>(v: T) {
    let _ = std::thread::Builder::new().name("runs-drop".into()).spawn(move || drop(v));
}

/// Writes run `seq` through `body` (given the buffered temporary file and a running CRC-32 of
/// what it wrote, the checksum appended after it), then syncs it, renames it into place and
/// syncs the directory, so a run file that exists is whole. Returns the run's file, open for
/// reading, and what `body` returned.
pub fn write_run<T>(dir: &Path, seq: u64, ext: &str, body: impl FnOnce(&mut CrcWriter) -> io::Result<T>) -> io::Result<(PathBuf, File, T)> {
    let path = run_path(dir, seq, ext);
    let tmp = path.with_extension("tmp");
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| io_at(&tmp, e))?;
    let mut w = CrcWriter { w: BufWriter::with_capacity(1 << 16, f), crc: crc32fast::Hasher::new(), unsynced: 0 };
    let out = body(&mut w)?;
    let CrcWriter { mut w, crc, .. } = w;
    w.write_all(&crc.finalize().to_le_bytes())?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all().map_err(|e| io_at(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| io_at(&path, e))?;
    File::open(dir)?.sync_all()?;
    let file = File::open(&path).map_err(|e| io_at(&path, e))?;
    Ok((path, file, out))
}

/// A run is written this many bytes at a time, each piece synced, with a pause after it.
/// Written in one go and synced at the end, a run of several MB reached the disk as one burst,
/// and the webhooks' group commits whose sync came behind it waited 4–7 ms: measured with
/// `bench/ab.sh` (its slow-commit count), paced this way the slow commits under ingest went
/// from 9 to 4 per 8 s and p99 from 8.0 to 7.1 ms (3 of 3 pairs; with the history runs, which write
/// more, 21 → 12 and 10.8 → 8.8 ms). It caps a run's writing at ~45 MB/s,
/// several times what the merges of 30k webhooks a second need.
const PACE_CHUNK: usize = 256 << 10;
const PACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// A run's writer: everything written goes into the checksum; written paced ([`PACE_CHUNK`]).
pub struct CrcWriter {
    w: BufWriter<File>,
    crc: crc32fast::Hasher,
    unsynced: usize,
}

impl CrcWriter {
    pub fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.w.write_all(b)?;
        self.unsynced += b.len();
        if self.unsynced >= PACE_CHUNK {
            self.unsynced = 0;
            self.w.flush()?;
            self.w.get_ref().sync_data()?;
            std::thread::sleep(PACE_PAUSE);
        }
        Ok(())
    }
}

/// A run's reader: everything read goes into the checksum, checked by [`Self::check`].
pub struct CrcReader {
    pub path: PathBuf,
    r: BufReader<File>,
    crc: crc32fast::Hasher,
}

impl CrcReader {
    /// Opens `path`; returns the reader and the file's length.
    pub fn open(path: &Path) -> io::Result<(Self, u64)> {
        let f = File::open(path).map_err(|e| io_at(path, e))?;
        let len = f.metadata()?.len();
        Ok((Self { path: path.to_path_buf(), r: BufReader::with_capacity(1 << 16, f), crc: crc32fast::Hasher::new() }, len))
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { bad(&self.path, "truncated") } else { io_at(&self.path, e) })?;
        self.crc.update(buf);
        Ok(())
    }

    pub fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads the checksum that ends the file and compares it with what was read.
    pub fn check(&mut self) -> io::Result<()> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).map_err(|_| bad(&self.path, "truncated"))?;
        if u32::from_le_bytes(b) != self.crc.clone().finalize() {
            return Err(bad(&self.path, "checksum mismatch"));
        }
        Ok(())
    }
}

/// Work done off the writer's thread: one at a time.
pub enum Job<R> {
    /// Writing a frozen memtable as a run.
    Flush(JoinHandle<io::Result<R>>),
    /// Merging runs (by seq) into one.
    Merge(JoinHandle<io::Result<R>>, Vec<u64>),
}

/// The job in `slot` if it is done (or, with `wait`, once it is); `None` while it runs.
pub fn take_finished<R>(slot: &mut Option<Job<R>>, wait: bool) -> Option<Job<R>> {
    let done = match slot.as_ref()? {
        Job::Flush(h) | Job::Merge(h, _) => h.is_finished(),
    };
    (done || wait).then(|| slot.take()).flatten()
}

/// Runs `f` on a thread of its own named `name`.
pub fn spawn<R: Send + 'static>(name: &str, f: impl FnOnce() -> io::Result<R> + Send + 'static) -> io::Result<JoinHandle<io::Result<R>>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

/// A run's size tier: how many times [`FANOUT`] its entry count is over `base`.
pub fn tier(count: u64, base: u64) -> u32 {
    let mut n = count.max(1) / base.max(1);
    let mut t = 0;
    while n >= FANOUT as u64 {
        n /= FANOUT as u64;
        t += 1;
    }
    t
}

/// The [`FANOUT`] oldest runs of the smallest tier that has that many.
pub fn merge_candidates<R: RunFile>(runs: &[Arc<R>], base: u64) -> Option<Vec<Arc<R>>> {
    let mut tiers: std::collections::BTreeMap<u32, Vec<Arc<R>>> = std::collections::BTreeMap::new();
    for r in runs {
        tiers.entry(tier(r.count(), base)).or_default().push(r.clone());
    }
    tiers.into_values().find(|v| v.len() >= FANOUT).map(|mut v| {
        v.truncate(FANOUT);
        v
    })
}
