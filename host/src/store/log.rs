//! An append-only log of checksummed frames in segment files: the first building block of the
//! log-structured webhook path proposed in `docs/log-store.md` (not wired into the store yet).
//!
//! Why a log: the benchmarks (`bench/ceiling.sh`) show the webhook path's B-tree work, not
//! the fsync, is what keeps ingest at ~14k req/s where the rest of the daemon allows ~33k; a
//! batch of webhooks appended here and synced once costs the writer a few microseconds.
//!
//! Layout: `dir/<segment id, 20 digits>.log`, each starting with [`MAGIC`], then frames of
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`. A new segment starts
//! when the current one would pass `segment_bytes`; whole segments are dropped once nothing
//! needs them ([`FrameLog::drop_before`]).
//!
//! Recovery ([`FrameLog::open`]): a group commit syncs a batch before anyone is told it is
//! stored, so only the last, unsynced batch can be torn by a crash, and only at the end of
//! the last segment. The first damaged frame there ends the log: it and everything after it
//! are cut off (frames after it were never acknowledged either). A damaged frame in any
//! earlier segment is corruption of acknowledged data, and opening fails ([`LogError::Corrupt`])
//! rather than silently losing it. (A damaged byte inside the last segment's acknowledged part
//! cannot be told from a torn tail without a second sync per batch; this is the policy of
//! most write-ahead logs, e.g. RocksDB's "tolerate corrupted tail records".)

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first bytes of every segment: the format and its version.
pub const MAGIC: &[u8; 8] = b"SBLOG\0\0\x01";
const HEADER: u64 = 8;
/// Length and checksum before each payload.
const FRAME_HEAD: u64 = 8;
/// Larger payloads are refused on append and read as damage on recovery.
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("log segment {segment} is damaged at byte {offset} (acknowledged data; not truncated)")]
    Corrupt { segment: u64, offset: u64 },
    #[error("{0} is not a log segment (wrong header)")]
    NotASegment(PathBuf),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// Where a frame starts: its segment and byte offset (of its length field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What [`FrameLog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Every intact frame, in order.
    pub frames: Vec<(Position, Vec<u8>)>,
    /// Bytes cut off the end of the last segment (a torn, never acknowledged batch).
    pub truncated_bytes: u64,
}

pub struct FrameLog {
    dir: PathBuf,
    segment_bytes: u64,
    current: File,
    current_id: u64,
    current_len: u64,
    /// A segment was created since the last sync: the directory entry must be synced too.
    new_segment: bool,
    /// Open read handles of older segments, for [`Self::read_at`] (the current one reads
    /// through `current`). Opening the file for each frame was ~11 % of the writer's time
    /// while consumers drained a backlog (`switchboard-bench drain`). Closed when their segment
    /// is dropped or cut off.
    readers: RefCell<HashMap<u64, File>>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.log"))
}

/// The segment ids in `dir`, ascending.
fn segment_ids(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".log").and_then(|n| n.parse::<u64>().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads the intact frames of one segment; returns them and the length of the intact part.
fn scan(path: &Path, segment: u64) -> Result<(Vec<(Position, Vec<u8>)>, u64, u64), LogError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    if bytes.len() < HEADER as usize || &bytes[..HEADER as usize] != MAGIC {
        // A segment created but torn before its header was written holds nothing.
        if bytes.len() < HEADER as usize && MAGIC.starts_with(&bytes) {
            return Ok((Vec::new(), 0, bytes.len() as u64));
        }
        return Err(LogError::NotASegment(path.to_path_buf()));
    }
    let mut frames = Vec::new();
    let mut at = HEADER as usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEAD as usize) else { break };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let start = at + FRAME_HEAD as usize;
        let Some(payload) = (len <= MAX_FRAME).then(|| bytes.get(start..start + len)).flatten() else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        frames.push((Position { segment, offset: at as u64 }, payload.to_vec()));
        at = start + len;
    }
    Ok((frames, at as u64, bytes.len() as u64))
}

impl FrameLog {
    /// Opens (or creates) the log in `dir`, recovering its frames (see the module docs).
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Self, Recovery), LogError> {
        std::fs::create_dir_all(dir)?;
        let ids = segment_ids(dir)?;
        let mut recovery = Recovery::default();
        for (i, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let (frames, intact, len) = scan(&path, id)?;
            recovery.frames.extend(frames);
            if intact < len {
                if i + 1 < ids.len() {
                    return Err(LogError::Corrupt { segment: id, offset: intact });
                }
                recovery.truncated_bytes = len - intact;
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(intact)?;
                f.sync_data()?;
            }
        }
        let mut log = match ids.last() {
            Some(&id) => {
                let mut current = OpenOptions::new().read(true).write(true).open(segment_path(dir, id))?;
                let current_len = current.seek(SeekFrom::End(0))?;
                Self { dir: dir.to_path_buf(), segment_bytes, current, current_id: id, current_len, new_segment: false, readers: RefCell::default() }
            }
            None => {
                let (current, current_id) = (Self::create_segment(dir, 0)?, 0);
                Self { dir: dir.to_path_buf(), segment_bytes, current, current_id, current_len: HEADER, new_segment: true, readers: RefCell::default() }
            }
        };
        if log.current_len < HEADER {
            // The header itself was torn: write it again.
            log.current.set_len(0)?;
            log.current.write_all_at(MAGIC, 0)?;
            log.current.seek(SeekFrom::Start(HEADER))?;
            log.current_len = HEADER;
            log.new_segment = true;
        }
        Ok((log, recovery))
    }

    fn create_segment(dir: &Path, id: u64) -> Result<File, LogError> {
        let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(segment_path(dir, id))?;
        f.write_all(MAGIC)?;
        Ok(f)
    }

    /// Appends `frames` (one write for the lot), not yet durable: call [`Self::sync`] before
    /// telling anyone they are stored. A batch never spans two segments.
    pub fn append(&mut self, frames: &[&[u8]]) -> Result<Vec<Position>, LogError> {
        if let Some(big) = frames.iter().find(|f| f.len() > MAX_FRAME) {
            return Err(LogError::TooLarge(big.len()));
        }
        let size: u64 = frames.iter().map(|f| FRAME_HEAD + f.len() as u64).sum();
        if self.current_len > HEADER && self.current_len + size > self.segment_bytes {
            // The finished segment is made durable before the next one is started.
            self.current.sync_data()?;
            self.current_id += 1;
            self.current = Self::create_segment(&self.dir, self.current_id)?;
            self.current_len = HEADER;
            self.new_segment = true;
        }
        let mut buf = Vec::with_capacity(size as usize);
        let mut positions = Vec::with_capacity(frames.len());
        for f in frames {
            positions.push(Position { segment: self.current_id, offset: self.current_len + buf.len() as u64 });
            buf.extend_from_slice(&(f.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(f).to_le_bytes());
            buf.extend_from_slice(f);
        }
        self.current.write_all(&buf)?;
        self.current_len += size;
        Ok(positions)
    }

    /// Makes everything appended so far durable (`fdatasync`, and the directory when a
    /// segment was created since the last sync).
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.current.sync_data()?;
        if std::mem::take(&mut self.new_segment) {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The frame at `pos` (written by [`Self::append`] or found by [`Self::open`]).
    pub fn read_at(&self, pos: Position) -> Result<Vec<u8>, LogError> {
        if pos.segment == self.current_id {
            return read_frame(&self.current, pos);
        }
        let mut readers = self.readers.borrow_mut();
        let f = match readers.entry(pos.segment) {
            std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(File::open(segment_path(&self.dir, pos.segment))?),
        };
        read_frame(f, pos)
    }
}

/// The checksummed frame at `pos` of segment file `f`.
fn read_frame(f: &File, pos: Position) -> Result<Vec<u8>, LogError> {
    let mut head = [0u8; FRAME_HEAD as usize];
    f.read_exact_at(&mut head, pos.offset)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return Err(LogError::Corrupt { segment: pos.segment, offset: pos.offset });
    }
    let mut payload = vec![0u8; len];
    f.read_exact_at(&mut payload, pos.offset + FRAME_HEAD)?;
    if crc32fast::hash(&payload) != crc {
        return Err(LogError::Corrupt { segment: pos.segment, offset: pos.offset });
    }
    Ok(payload)
}

impl FrameLog {
    /// Deletes the segments before `segment` (never the one being written).
    pub fn drop_before(&mut self, segment: u64) -> Result<usize, LogError> {
        self.readers.get_mut().retain(|&id, _| id >= segment.min(self.current_id));
        let mut dropped = 0;
        for id in segment_ids(&self.dir)?.into_iter().filter(|&id| id < segment.min(self.current_id)) {
            std::fs::remove_file(segment_path(&self.dir, id))?;
            dropped += 1;
        }
        if dropped > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(dropped)
    }

    /// The segment being written.
    pub fn current_segment(&self) -> u64 {
        self.current_id
    }

    /// Where the next frame will start (the end of everything appended so far).
    pub fn end(&self) -> Position {
        Position { segment: self.current_id, offset: self.current_len }
    }

    /// Cuts the log back to `end` (an earlier [`Self::end`]): segments after its segment are
    /// deleted and its segment is shortened, durably. For frames appended by a batch that was
    /// then not committed (their commit point, e.g. a database transaction, failed).
    pub fn truncate_to(&mut self, end: Position) -> Result<(), LogError> {
        if end > self.end() || end.offset < HEADER {
            return Err(LogError::Corrupt { segment: end.segment, offset: end.offset });
        }
        let later: Vec<u64> = segment_ids(&self.dir)?.into_iter().filter(|&id| id > end.segment).collect();
        // The segment cut becomes the current one again: read through `current`.
        self.readers.get_mut().retain(|&id, _| id < end.segment);
        if end.segment != self.current_id {
            self.current = OpenOptions::new().read(true).write(true).open(segment_path(&self.dir, end.segment))?;
            self.current_id = end.segment;
        }
        self.current.set_len(end.offset)?;
        self.current.seek(SeekFrom::Start(end.offset))?;
        self.current.sync_data()?;
        self.current_len = end.offset;
        for id in &later {
            std::fs::remove_file(segment_path(&self.dir, *id))?;
        }
        if !later.is_empty() {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(n: usize, size: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| (0..size + i % 7).map(|b| (b * 31 + i) as u8).collect()).collect()
    }

    fn write(dir: &Path, batches: &[Vec<Vec<u8>>], segment_bytes: u64) -> Vec<Position> {
        let (mut log, _) = FrameLog::open(dir, segment_bytes).unwrap();
        let mut all = Vec::new();
        for b in batches {
            let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
            all.extend(log.append(&refs).unwrap());
            log.sync().unwrap();
        }
        all
    }

    #[test]
    fn frames_come_back_in_order_after_a_reopen_and_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let batches = vec![frames(3, 100), frames(5, 1000), frames(1, 0)];
        let positions = write(dir.path(), &batches, 1 << 20);
        let (log, rec) = FrameLog::open(dir.path(), 1 << 20).unwrap();
        let want: Vec<Vec<u8>> = batches.concat();
        assert_eq!(rec.frames.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(), want);
        assert_eq!(rec.frames.iter().map(|(p, _)| *p).collect::<Vec<_>>(), positions);
        assert_eq!(rec.truncated_bytes, 0);
        for (p, f) in positions.iter().zip(&want) {
            assert_eq!(&log.read_at(*p).unwrap(), f);
        }
    }

    #[test]
    fn segments_roll_over_and_old_ones_are_dropped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<_> = (0..10).map(|_| frames(4, 500)).collect();
        let positions = write(dir.path(), &batches, 4096);
        let (mut log, rec) = FrameLog::open(dir.path(), 4096).unwrap();
        assert_eq!(rec.frames.len(), 40);
        assert!(log.current_segment() >= 4, "a 2 KB batch a segment of 4 KiB: {}", log.current_segment());
        // A batch never spans segments.
        for b in positions.chunks(4) {
            assert!(b.iter().all(|p| p.segment == b[0].segment));
        }
        let keep = positions[20].segment;
        assert!(log.drop_before(keep).unwrap() > 0);
        let (_, rec) = FrameLog::open(dir.path(), 4096).unwrap();
        assert_eq!(rec.frames.first().unwrap().0.segment, keep);
    }

    #[test]
    fn damage_in_an_earlier_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<_> = (0..6).map(|_| frames(4, 500)).collect();
        write(dir.path(), &batches, 4096);
        let first = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[HEADER as usize + 20] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        match FrameLog::open(dir.path(), 4096) {
            Err(LogError::Corrupt { segment: 0, offset }) => assert_eq!(offset, HEADER),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a damaged log"),
        }
    }

    #[test]
    fn a_log_torn_inside_its_header_starts_over_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 0), &MAGIC[..3]).unwrap();
        let (mut log, rec) = FrameLog::open(dir.path(), 4096).unwrap();
        assert!(rec.frames.is_empty());
        let p = log.append(&[b"after"]).unwrap();
        log.sync().unwrap();
        assert_eq!(log.read_at(p[0]).unwrap(), b"after");
        let (_, rec) = FrameLog::open(dir.path(), 4096).unwrap();
        assert_eq!(rec.frames.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A crash tears the last batch anywhere (a cut, or garbage past it): recovery keeps
        /// exactly the frames wholly written before the damage, and the log takes appends
        /// again that the next recovery finds.
        #[test]
        fn a_torn_tail_keeps_exactly_the_whole_frames_before_it(
            sizes in proptest::collection::vec(0usize..300, 1..12),
            cut_back in 0usize..4000,
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let acked = frames(3, 50);
            let last: Vec<Vec<u8>> = sizes.iter().map(|&s| vec![s as u8; s]).collect();
            write(dir.path(), &[acked.clone(), last.clone()], 1 << 20);
            let path = segment_path(dir.path(), 0);
            let mut bytes = std::fs::read(&path).unwrap();
            let acked_end = HEADER as usize + acked.iter().map(|f| FRAME_HEAD as usize + f.len()).sum::<usize>();
            let cut = bytes.len() - cut_back.min(bytes.len() - acked_end);
            bytes.truncate(cut);
            bytes.extend_from_slice(&garbage);
            std::fs::write(&path, &bytes).unwrap();

            let (mut log, rec) = FrameLog::open(dir.path(), 1 << 20).unwrap();
            let mut whole = acked.clone();
            let mut end = acked_end;
            for f in &last {
                end += FRAME_HEAD as usize + f.len();
                if end > cut { break; }
                whole.push(f.clone());
            }
            let got: Vec<Vec<u8>> = rec.frames.iter().map(|(_, f)| f.clone()).collect();
            // Garbage that happens to form a valid frame can only add frames after the
            // whole ones; the acknowledged batch always survives.
            prop_assert!(got.len() >= whole.len());
            prop_assert_eq!(&got[..whole.len()], &whole[..]);
            let p = log.append(&[b"next"]).unwrap();
            log.sync().unwrap();
            prop_assert_eq!(log.read_at(p[0]).unwrap(), b"next".to_vec());
            let (_, again) = FrameLog::open(dir.path(), 1 << 20).unwrap();
            prop_assert_eq!(again.frames.last().unwrap().1.clone(), b"next".to_vec());
            prop_assert_eq!(again.truncated_bytes, 0);
        }
    }
}
