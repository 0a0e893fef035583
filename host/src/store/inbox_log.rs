//! The pull inbox kept in a [`FrameLog`] and in memory instead of in B-trees: step 1 of the
//! log-structured webhook path (`docs/log-store.md`).
//!
//! Why: the benchmarks (`bench/ceiling.sh`, knock-outs in `BENCHMARKS.md`) showed the inbox
//! row and its ready-index entry costing the redb writer ~12 µs of its ~49 µs per webhook,
//! in proportion to the random 4 KiB leaves they dirty every commit. Here a webhook's event
//! is one appended frame, and the index (what is ready when, who holds what) lives in memory,
//! rebuilt from the log at start.
//!
//! Frames are the inbox's operations (`put` a row, `claim`, `nack`, `remove` ids); replaying
//! them in order rebuilds the state, and the live paths apply exactly the same function
//! ([`InboxLog::apply`]) as the replay, so the two cannot drift apart.
//!
//! **Commit point.** The log does not decide what is committed: the engine's transaction
//! does. A batch's frames are buffered in memory, appended and synced just before the
//! engine commits, and the transaction records the log's new end ([`InboxLog::flush`]). On
//! open, frames after the end the engine recorded are cut off: they belong to a batch whose
//! transaction never committed, so nobody was told they were stored, and the dedupe keys and
//! counters written with them are not there either. If a batch fails, the state is rebuilt
//! from the log up to the end the engine has ([`InboxLog::reload`]).
//!
//! **Space.** A segment is deleted once no live event's `put` is in it or before it. So that
//! one event left unacked cannot pin every later segment, the oldest segment's live events are
//! copied forward (a fresh `put` with their current state) whenever the log holds more than
//! twice the live bytes: the disk use stays within about twice the live events plus two
//! segments, and each byte is copied only when as much garbage is reclaimed.

use super::StoreError;
use super::dedupe_runs::Dedupe;
use super::history_runs::{HistoryReader, HistoryRuns, Kept};
use crate::store::history::HistoryEntry;
use super::inbox::*;
use crate::clock::{SharedClock, SystemClock};
use super::log::{FrameLog, LogError, Position};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Segment size of the daemon's inbox log.
pub const SEGMENT_BYTES: u64 = 32 << 20;
/// Live events copied forward per batch at most, so compaction never stalls a group commit.
const COPY_PER_BATCH: usize = 256;

impl From<LogError> for StoreError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Io(e) => StoreError::Io(format!("inbox log: {e}")),
            other => StoreError::Codec { table: "inbox log", reason: other.to_string() },
        }
    }
}

/// An error while visiting the dedupe keys: the visitor's own, or reading a run.
enum DedupeVisit {
    Store(Box<StoreError>),
    Io(std::io::Error),
}

impl From<std::io::Error> for DedupeVisit {
    fn from(e: std::io::Error) -> Self {
        DedupeVisit::Io(e)
    }
}

/// One inbox operation, as logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Frame {
    /// A new event, or a live one copied forward with its current state.
    Put { row: InboxRow },
    /// Events handed to `consumer` under fencing token `token` (deliveries + 1 each).
    Claim { ids: Vec<u64>, token: u64, consumer: String, expires_at_ms: u64 },
    /// Events returned to the queue, visible again at `visible_at_ms`.
    Nack { ids: Vec<u64>, visible_at_ms: u64 },
    /// Events acked or moved to the dead-letter queue.
    Remove { ids: Vec<u64> },
    /// A webhook event's dedupe key, seen until `expires_at_ms` (see [`Dedupe`]).
    Seen { key: String, expires_at_ms: u64 },
    /// Message `n` of conversation `key` (`account\0conversation`), kept while it is among
    /// the newest `size` (see [`HistoryRuns`]).
    History { key: String, n: u64, size: u32, entry: Box<serde_json::value::RawValue> },
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, frame).expect("frames serialize infallibly");
    out
}

/// Decodes a frame. `put` and `seen` frames, nearly all of a log, are read straight into
/// their fields when they have the shape [`encode`] writes (the tag first): serde's decoder for
/// an internally tagged enum first copies the whole document into a tree of owned values and
/// then reads the variant from that, which was a third of the writer's decoding time while
/// consumers drained a backlog (claims read each event's `put`), and is most of replaying the
/// log at start. Anything else takes the general path, so both read the same frames.
fn decode(bytes: &[u8]) -> Result<Frame, StoreError> {
    // The same objects without the tag (an unknown field, skipped).
    #[derive(Deserialize)]
    struct PutFields {
        row: InboxRow,
    }
    #[derive(Deserialize)]
    struct SeenFields {
        key: String,
        expires_at_ms: u64,
    }
    if bytes.starts_with(br#"{"op":"put","#)
        && let Ok(PutFields { row }) = serde_json::from_slice(bytes)
    {
        return Ok(Frame::Put { row });
    }
    #[derive(Deserialize)]
    struct HistoryFields {
        key: String,
        n: u64,
        size: u32,
        entry: Box<serde_json::value::RawValue>,
    }
    if bytes.starts_with(br#"{"op":"history","#)
        && let Ok(HistoryFields { key, n, size, entry }) = serde_json::from_slice(bytes)
    {
        return Ok(Frame::History { key, n, size, entry });
    }
    if bytes.starts_with(br#"{"op":"seen","#)
        && let Ok(SeenFields { key, expires_at_ms }) = serde_json::from_slice(bytes)
    {
        return Ok(Frame::Seen { key, expires_at_ms });
    }
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec { table: "inbox log", reason: e.to_string() })
}

/// Where an event's `put` frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Logged(Position),
    /// In this batch's buffer, not yet appended.
    Pending(usize),
}

/// What the index keeps of an event: enough to pick and fence it; the rest is in its frame.
/// Kept small, since a backlog of unclaimed events is held here (64 bytes): the account and
/// conversation are one shared string ([`InboxLog::intern`]; a backlog is mostly a few
/// conversations), and the lease, which few events of a backlog have, is boxed.
#[derive(Debug, Clone)]
struct Entry {
    /// `account\0conversation`.
    names: Arc<str>,
    visible_at_ms: u64,
    deliveries: u32,
    /// Length of the `put` frame.
    len: u32,
    lease: Option<Box<Lease>>,
    body: Body,
}

impl Entry {
    fn account(&self) -> &str {
        self.names.split_once('\0').map_or(&*self.names, |(a, _)| a)
    }

    fn conversation(&self) -> &str {
        self.names.split_once('\0').map_or("", |(_, c)| c)
    }
}

/// An event's lease as the index keeps it.
#[derive(Debug, Clone)]
struct Lease {
    token: u64,
    consumer: Arc<str>,
    expires_at_ms: u64,
}

/// The live events whose `put` is in one segment.
#[derive(Debug, Default)]
struct SegmentLive {
    ids: HashSet<u64>,
    bytes: u64,
}

pub struct InboxLog {
    dir: PathBuf,
    segment_bytes: u64,
    log: FrameLog,
    entries: HashMap<u64, Entry>,
    /// (visible at, id): claimable once the time has come; a claimed event sits at its
    /// lease's expiry, so an expired lease makes it claimable again without a sweeper.
    ready: BTreeSet<(u64, u64)>,
    /// consumer → id → lease expiry.
    held: HashMap<Arc<str>, HashMap<u64, u64>>,
    /// The account, conversation and consumer names entries share; pruned of unused ones
    /// when it has doubled since the last prune.
    names: HashSet<Arc<str>>,
    names_pruned_at: usize,
    /// segment → its live events (logged ones only).
    live: BTreeMap<u64, SegmentLive>,
    /// This batch's frames, and the new events among them.
    pending: Vec<Vec<u8>>,
    pending_puts: Vec<u64>,
    /// The end of the committed log.
    committed: Position,
    /// Events stored, published after each commit for readers on other threads.
    len: Arc<AtomicU64>,
    /// The webhook dedupe keys: its memtable is rebuilt from this log's `seen` frames.
    dedupe: Dedupe,
    /// Conversation history: its memtable is rebuilt from this log's `history` frames.
    history: HistoryRuns,
    /// This batch's history entries, published to readers once it commits.
    pending_history: Vec<(String, u64, Kept)>,
    /// The store's clock (dedupe runs expire by it).
    clock: SharedClock,
}

impl InboxLog {
    /// The log directory of the store at `store_path` (`<file>.inbox`).
    pub fn dir_for(store_path: &Path) -> PathBuf {
        let mut name = store_path.as_os_str().to_os_string();
        name.push(".inbox");
        PathBuf::from(name)
    }

    /// Opens the log in `dir` up to `committed`, the end the engine's last commit recorded.
    /// `None` (nothing ever committed, or a store restored from a backup, which carries its
    /// inbox in its own tables): whatever is in `dir` was never committed and is deleted.
    /// A log shorter than `committed` (segments lost) is refused, not silently emptied.
    pub fn open(dir: &Path, committed: Option<Position>, segment_bytes: u64) -> Result<Self, StoreError> {
        Self::open_counted(dir, committed, segment_bytes, Arc::new(AtomicU64::new(0)), None, None, Arc::new(SystemClock))
    }

    /// The same, with the store's clock.
    pub fn open_with_clock(dir: &Path, committed: Option<Position>, segment_bytes: u64, clock: SharedClock) -> Result<Self, StoreError> {
        Self::open_counted(dir, committed, segment_bytes, Arc::new(AtomicU64::new(0)), None, None, clock)
    }

    /// `dedupe`, `history`: the runs kept across a [`Self::reload`] (they hold only
    /// committed entries, and reading them again would cost a pass over every run; the
    /// history's readers keep their handle).
    fn open_counted(
        dir: &Path,
        committed: Option<Position>,
        segment_bytes: u64,
        len: Arc<AtomicU64>,
        dedupe: Option<Dedupe>,
        history: Option<HistoryRuns>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let dedupe = match dedupe {
            Some(d) if committed.is_some() => Some(d),
            _ => None,
        };
        let (history, readers_of) = match history {
            Some(h) if committed.is_some() => (Some(h), None),
            other => (None, other),
        };
        if committed.is_none() && dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        }
        let (mut log, recovery) = FrameLog::open(dir, segment_bytes)?;
        let end = match committed {
            Some(end) if end > log.end() => {
                return Err(StoreError::Codec {
                    table: "inbox log",
                    reason: format!(
                        "{} ends at segment {} byte {} but the store committed up to segment {} byte {}: segments are missing",
                        dir.display(),
                        log.end().segment,
                        log.end().offset,
                        end.segment,
                        end.offset
                    ),
                });
            }
            Some(end) => {
                if end < log.end() {
                    log.truncate_to(end)?;
                }
                end
            }
            None => log.end(),
        };
        let mut dedupe = match dedupe {
            Some(d) => d,
            None => Dedupe::open(&Self::dedupe_dir(dir)).map_err(|e| StoreError::Io(format!("dedupe runs: {e}")))?,
        };
        dedupe.clear_memtable();
        let replay_from = dedupe.replay_from();
        let mut history = match history {
            Some(h) => h,
            None => HistoryRuns::open(&dir.join("history")).map_err(|e| StoreError::Io(format!("history runs: {e}")))?,
        };
        if let Some(old) = readers_of {
            history.share_readers_of(&old);
        }
        history.clear_memtable();
        let history_from = history.replay_from();
        let mut me = Self {
            dir: dir.to_path_buf(),
            segment_bytes,
            log,
            entries: HashMap::new(),
            ready: BTreeSet::new(),
            held: HashMap::new(),
            names: HashSet::new(),
            names_pruned_at: 0,
            live: BTreeMap::new(),
            pending: Vec::new(),
            pending_puts: Vec::new(),
            committed: end,
            len,
            dedupe,
            history,
            pending_history: Vec::new(),
            clock,
        };
        for (pos, bytes) in recovery.frames.into_iter().filter(|(p, _)| *p < end) {
            let frame = decode(&bytes)?;
            match frame {
                Frame::Seen { .. } if pos < replay_from => continue,
                Frame::History { .. } if pos < history_from => continue,
                _ => {}
            }
            me.apply(&frame, Body::Logged(pos), bytes.len() as u64);
        }
        let replayed = std::mem::take(&mut me.pending_history);
        me.history.insert(replayed);
        me.publish();
        Ok(me)
    }

    /// Forgets everything since the last commit and rebuilds the state from the log up to
    /// `committed` (read back from the engine after a failed batch: a commit that reported an
    /// error may still have become durable).
    pub fn reload(&mut self, committed: Option<Position>) -> Result<(), StoreError> {
        let dedupe = std::mem::replace(&mut self.dedupe, Dedupe::detached());
        let history = std::mem::replace(&mut self.history, HistoryRuns::detached());
        *self = Self::open_counted(&self.dir, committed, self.segment_bytes, self.len.clone(), Some(dedupe), Some(history), self.clock.clone())?;
        Ok(())
    }

    fn dedupe_dir(dir: &Path) -> PathBuf {
        dir.join("dedupe")
    }

    /// The latest expiry recorded for a webhook dedupe key (expired or not), this batch's
    /// keys included.
    pub fn seen(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.dedupe.get(key).map_err(|e| StoreError::Io(format!("dedupe runs: {e}")))
    }

    /// Records a webhook dedupe key as seen until `expires_at_ms`.
    pub fn mark_seen(&mut self, key: &str, expires_at_ms: u64) {
        self.record(Frame::Seen { key: key.to_string(), expires_at_ms });
    }

    /// Calls `f` with every dedupe key and its latest expiry, streaming (exports and backups).
    pub fn for_each_seen(&self, mut f: impl FnMut(&str, u64) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.dedupe.for_each_latest(|k, e| f(k, e).map_err(|e| DedupeVisit::Store(Box::new(e)))).map_err(|e| match e {
            DedupeVisit::Store(e) => *e,
            DedupeVisit::Io(e) => StoreError::Io(format!("dedupe runs: {e}")),
        })
    }

    /// Finishes the dedupe runs' background work now (tests).
    #[cfg(test)]
    pub fn settle_dedupe(&mut self) {
        self.dedupe.maintain(self.clock.now_ms(), self.committed, self.log.current_segment(), true).unwrap();
    }

    /// Records message `n` of conversation `key` (`account\0conversation`), kept while it is
    /// among the conversation's newest `size` (see [`HistoryRuns`]); readers see it once this
    /// batch commits.
    pub fn record_history(&mut self, key: &str, n: u64, size: u32, entry: &HistoryEntry) {
        let entry = serde_json::value::to_raw_value(entry).expect("entries serialize");
        self.record(Frame::History { key: key.to_string(), n, size, entry });
    }

    /// A handle for reading the history from other threads (it stays valid across reloads).
    pub fn history_reader(&self) -> HistoryReader {
        self.history.reader()
    }

    /// Finishes the history runs' background work now (tests).
    #[cfg(test)]
    pub fn settle_history(&mut self) {
        self.history.maintain(self.clock.now_ms(), self.committed, self.log.current_segment(), true).unwrap();
    }

    /// The counter [`Self::len`] readers share.
    pub fn len_handle(&self) -> Arc<AtomicU64> {
        self.len.clone()
    }

    fn publish(&self) {
        self.len.store(self.entries.len() as u64, Ordering::Relaxed);
    }

    /// Events stored (claimable now or later, or leased), this batch's included.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The end of the committed log (what the engine last recorded).
    #[cfg(test)]
    fn committed(&self) -> Position {
        self.committed
    }

    fn index(&mut self, id: u64, e: &Entry) {
        self.ready.insert((e.visible_at_ms, id));
        if let Some(l) = &e.lease {
            self.held.entry(l.consumer.clone()).or_default().insert(id, l.expires_at_ms);
        }
        if let Body::Logged(pos) = e.body {
            let s = self.live.entry(pos.segment).or_default();
            s.ids.insert(id);
            s.bytes += u64::from(e.len);
        }
    }

    fn unindex(&mut self, id: u64, e: &Entry) {
        self.ready.remove(&(e.visible_at_ms, id));
        if let Some(l) = &e.lease
            && let Some(h) = self.held.get_mut(&l.consumer)
        {
            h.remove(&id);
            if h.is_empty() {
                self.held.remove(&l.consumer);
            }
        }
        if let Body::Logged(pos) = e.body
            && let Some(s) = self.live.get_mut(&pos.segment)
        {
            s.ids.remove(&id);
            s.bytes -= u64::from(e.len);
            if s.ids.is_empty() {
                self.live.remove(&pos.segment);
            }
        }
    }

    /// Changes one event's state (re-indexing it), if it is stored.
    fn update(&mut self, id: u64, change: impl FnOnce(&mut Entry)) {
        if let Some(mut e) = self.entries.remove(&id) {
            self.unindex(id, &e);
            change(&mut e);
            self.index(id, &e);
            self.entries.insert(id, e);
        }
    }

    /// Applies one frame to the state: the one function both replay and the live paths use.
    /// Ids that are not stored are skipped (their `put` was in a dropped segment: they were
    /// removed, and this frame is older than that).
    /// The shared `account\0conversation` of an event.
    fn intern_names(&mut self, account: &str, conversation: &str) -> Arc<str> {
        let mut key = String::with_capacity(account.len() + 1 + conversation.len());
        key.push_str(account);
        key.push('\0');
        key.push_str(conversation);
        self.intern(&key)
    }

    /// The shared copy of `name`.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.names.get(name) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(name);
        self.names.insert(a.clone());
        a
    }

    fn prune_names(&mut self) {
        if self.names.len() >= (2 * self.names_pruned_at).max(1024) {
            self.names.retain(|a| Arc::strong_count(a) > 1);
            self.names_pruned_at = self.names.len();
        }
    }

    fn apply(&mut self, frame: &Frame, body: Body, len: u64) {
        match frame {
            Frame::Put { row } => {
                if let Some(old) = self.entries.remove(&row.id) {
                    self.unindex(row.id, &old);
                }
                let e = Entry {
                    names: self.intern_names(&row.account, &row.event.conversation),
                    visible_at_ms: row.visible_at_ms,
                    deliveries: row.deliveries,
                    lease: row.lease.as_ref().map(|l| Box::new(Lease { token: l.token, consumer: self.intern(&l.consumer), expires_at_ms: l.expires_at_ms })),
                    body,
                    len: len as u32,
                };
                self.index(row.id, &e);
                self.entries.insert(row.id, e);
            }
            Frame::Claim { ids, token, consumer, expires_at_ms } => {
                let consumer = self.intern(consumer);
                for &id in ids {
                    self.update(id, |e| {
                        e.deliveries += 1;
                        e.visible_at_ms = *expires_at_ms;
                        e.lease = Some(Box::new(Lease { token: *token, consumer: consumer.clone(), expires_at_ms: *expires_at_ms }));
                    });
                }
            }
            Frame::Nack { ids, visible_at_ms } => {
                for &id in ids {
                    self.update(id, |e| {
                        e.visible_at_ms = *visible_at_ms;
                        e.lease = None;
                    });
                }
            }
            Frame::Remove { ids } => {
                for id in ids {
                    if let Some(old) = self.entries.remove(id) {
                        self.unindex(*id, &old);
                    }
                }
            }
            Frame::Seen { key, expires_at_ms } => self.dedupe.insert(key, *expires_at_ms),
            // Published after the commit (live) or after the replay (at open).
            Frame::History { key, n, size, entry } => self.pending_history.push((key.clone(), *n, Kept { size: *size, entry: Arc::from(entry.clone()) })),
        }
    }

    /// Applies `frame` now and buffers it for this batch's append.
    fn record(&mut self, frame: Frame) {
        let bytes = encode(&frame);
        let idx = self.pending.len();
        if let Frame::Put { row } = &frame {
            self.pending_puts.push(row.id);
        }
        self.apply(&frame, Body::Pending(idx), bytes.len() as u64);
        self.pending.push(bytes);
    }

    /// Stores `row` (a verified webhook's event, or a redriven dead letter) as it is.
    pub fn put(&mut self, row: InboxRow) {
        self.record(Frame::Put { row });
    }

    /// The stored row of `id` with its current state.
    pub fn row(&self, id: u64) -> Result<Option<InboxRow>, StoreError> {
        let Some(e) = self.entries.get(&id) else { return Ok(None) };
        let frame = match e.body {
            Body::Logged(pos) => decode(&self.log.read_at(pos)?)?,
            Body::Pending(i) => decode(&self.pending[i])?,
        };
        let Frame::Put { mut row } = frame else {
            return Err(StoreError::Codec { table: "inbox log", reason: format!("event {id} points at a frame that is not a put") });
        };
        row.visible_at_ms = e.visible_at_ms;
        row.deliveries = e.deliveries;
        row.lease = e.lease.as_ref().map(|l| InboxLease { token: l.token, consumer: l.consumer.to_string(), expires_at_ms: l.expires_at_ms });
        Ok(Some(row))
    }

    /// Every stored row, in id order (for backups and exports).
    pub fn rows(&self) -> Result<Vec<InboxRow>, StoreError> {
        let mut ids: Vec<u64> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.row(id).transpose()).collect()
    }

    /// Events `consumer` holds under unexpired leases; expired holds are forgotten.
    fn held_by(&mut self, consumer: &str, now: u64) -> usize {
        let Some(h) = self.held.get_mut(consumer) else { return 0 };
        h.retain(|_, expires| *expires > now);
        h.len()
    }

    /// Hands up to `req.max` due events to `req.consumer` under a new lease. `token` is called
    /// for the fencing token only when something may be claimed. Events already handed out
    /// `max_deliveries` times are removed and returned as the second value, for the caller to
    /// put in the dead-letter queue in the same commit.
    pub fn claim(
        &mut self,
        req: &ClaimRequest,
        now: u64,
        token: impl FnOnce() -> Result<u64, StoreError>,
    ) -> Result<(InboxClaim, Vec<InboxRow>), StoreError> {
        let held = self.held_by(&req.consumer, now);
        if held >= req.max_held {
            let claim = InboxClaim { lease: String::new(), lease_expires_at_ms: 0, events: Vec::new(), expired_leases: 0, held_limit: Some(held) };
            return Ok((claim, Vec::new()));
        }
        let max = req.max.min(req.max_held - held);
        let token = token()?;
        let expires = now + req.lease_ms;
        let (mut chosen, mut dead) = (Vec::new(), Vec::new());
        for &(_, id) in self.ready.range((0, 0)..=(now, u64::MAX)) {
            if chosen.len() >= max {
                break;
            }
            let e = &self.entries[&id];
            if req.account.as_ref().is_some_and(|a| a != e.account()) || req.conversation.as_ref().is_some_and(|c| c != e.conversation()) {
                continue;
            }
            if e.deliveries >= req.max_deliveries {
                dead.push(id);
            } else {
                chosen.push(id);
            }
        }
        let dead_rows = dead.iter().filter_map(|&id| self.row(id).transpose()).collect::<Result<Vec<_>, _>>()?;
        if !dead.is_empty() {
            self.record(Frame::Remove { ids: dead });
        }
        let mut events = Vec::with_capacity(chosen.len());
        let mut expired_leases = 0;
        for &id in &chosen {
            let row = self.row(id)?.expect("chosen from the index");
            expired_leases += usize::from(row.lease.is_some());
            events.push(ClaimedEvent {
                id: id.to_string(),
                account: row.account,
                correlation_id: row.correlation_id,
                received_at_ms: row.received_at_ms,
                deliveries: row.deliveries + 1,
                event: row.event,
            });
        }
        if !chosen.is_empty() {
            self.record(Frame::Claim { ids: chosen, token, consumer: req.consumer.clone(), expires_at_ms: expires });
        }
        let claim = InboxClaim { lease: token.to_string(), lease_expires_at_ms: expires, events, expired_leases, held_limit: None };
        Ok((claim, dead_rows))
    }

    /// The ids held under `lease` (the rest are rejected).
    fn settle(&self, ids: &[String], lease: &str) -> (Vec<u64>, AckResult) {
        let token: Option<u64> = lease.parse().ok();
        let mut out = AckResult::default();
        let mut accepted = Vec::new();
        for s in ids {
            let held = s.parse::<u64>().ok().and_then(|id| self.entries.get(&id).map(|e| (id, e)));
            match held {
                Some((id, e)) if token.is_some() && e.lease.as_ref().map(|l| l.token) == token && !accepted.contains(&id) => {
                    accepted.push(id);
                    out.acked.push(s.clone());
                }
                _ => out.rejected.push(s.clone()),
            }
        }
        (accepted, out)
    }

    /// Deletes events held under `lease`.
    pub fn ack(&mut self, ids: &[String], lease: &str) -> AckResult {
        let (accepted, out) = self.settle(ids, lease);
        if !accepted.is_empty() {
            self.record(Frame::Remove { ids: accepted });
        }
        out
    }

    /// Returns events held under `lease` to the queue, visible at `visible_at_ms`.
    pub fn nack(&mut self, ids: &[String], lease: &str, visible_at_ms: u64) -> AckResult {
        let (accepted, out) = self.settle(ids, lease);
        if !accepted.is_empty() {
            self.record(Frame::Nack { ids: accepted, visible_at_ms });
        }
        out
    }

    /// Copies the oldest segment's live events forward when the log holds more than twice the
    /// live bytes (see the module docs).
    fn compact(&mut self) -> Result<(), StoreError> {
        let Some((&oldest, _)) = self.live.iter().next() else { return Ok(()) };
        let current = self.log.current_segment();
        let spanned = (current - oldest + 1) * self.segment_bytes;
        let live: u64 = self.live.values().map(|s| s.bytes).sum();
        if current - oldest < 2 || live * 2 >= spanned {
            return Ok(());
        }
        let ids: Vec<u64> = self.live[&oldest].ids.iter().copied().take(COPY_PER_BATCH).collect();
        for id in ids {
            if let Some(row) = self.row(id)? {
                self.put(row);
            }
        }
        Ok(())
    }

    /// Appends and syncs this batch's frames. Returns the log's new end, which the engine must
    /// record in the transaction it commits next (and then call [`Self::committed_at`]);
    /// `None` when the batch wrote nothing here.
    pub fn flush(&mut self) -> Result<Option<Position>, StoreError> {
        self.compact()?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
        let positions = self.log.append(&refs)?;
        self.log.sync()?;
        for id in std::mem::take(&mut self.pending_puts) {
            let Some(e) = self.entries.get(&id) else { continue };
            let Body::Pending(i) = e.body else { continue };
            let mut e = self.entries.remove(&id).expect("present");
            self.unindex(id, &e);
            e.body = Body::Logged(positions[i]);
            self.index(id, &e);
            self.entries.insert(id, e);
        }
        self.pending.clear();
        Ok(Some(self.log.end()))
    }

    /// The engine committed the end [`Self::flush`] returned: publish the state and delete the
    /// segments nothing live needs any more.
    pub fn committed_at(&mut self, end: Option<Position>) {
        if let Some(end) = end {
            self.committed = end;
        }
        self.publish();
        let committed_history = std::mem::take(&mut self.pending_history);
        self.history.insert(committed_history);
        self.prune_names();
        let segment = self.log.current_segment();
        if let Err(e) = self.dedupe.maintain(self.clock.now_ms(), self.committed, segment, false) {
            // The keys stay in the memtable and the log; retried at the next commit.
            tracing::warn!(error = %e, "dedupe run housekeeping failed");
        }
        if let Err(e) = self.history.maintain(self.clock.now_ms(), self.committed, segment, false) {
            tracing::warn!(error = %e, "history run housekeeping failed");
        }
        let keep = self.live.keys().next().copied().unwrap_or(segment)
            .min(self.dedupe.keep_segment().unwrap_or(segment))
            .min(self.history.keep_segment().unwrap_or(segment));
        if let Err(e) = self.log.drop_before(keep) {
            // Harmless: the segments are dropped at the next commit or start.
            tracing::warn!(error = %e, "could not delete old inbox log segments");
        }
    }

    /// Whether this batch changed anything here (a failed batch must then be reloaded).
    pub fn dirty(&self) -> bool {
        !self.pending.is_empty() || self.log.end() != self.committed
    }
}

#[cfg(test)]
mod tests;
