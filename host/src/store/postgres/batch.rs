//! Group commit for PostgreSQL: one task takes the first waiting webhook ingest or outbound
//! enqueue, drains everything else already queued (up to `max_batch`), applies all of them in
//! one transaction, commits, and only then answers each caller. Many webhooks share one
//! commit (one WAL flush) as they share one fsync on redb.
//!
//! Several daemons batch at once, and batches lock rows (conversations above all). To keep two
//! batches from deadlocking, a batch first locks every conversation it will touch, in one
//! global order, then the queue locks and then the session locks of its accounts (the caps
//! that must hold across daemons), each in account order. A deadlock or serialization conflict PostgreSQL still reports (two nodes
//! writing the same idempotency keys in opposite orders) rolls the batch back, and the batch
//! runs again, up to [`MAX_TRIES`] times.
//!
//! If a request fails with a storage error, the transaction rolls back and every caller in the
//! batch gets the error: nobody is told "stored" for a write that is not durable.

use super::{Tx, execute, ingest, outbox, query_opt};
use crate::model::EventKind;
use crate::store::{CommitObserver, EnqueueOutcome, IngestOptions, IngestRequest, Ingested, NewMessage, StoreError};
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Attempts at one batch when PostgreSQL aborts it for a conflict with another daemon.
const MAX_TRIES: usize = 4;

enum Job {
    Ingest { req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64, reply: oneshot::Sender<Result<Ingested, StoreError>> },
    Enqueue { msg: NewMessage, id: String, now: u64, reply: oneshot::Sender<Result<EnqueueOutcome, StoreError>> },
}

/// What one job produced, waiting for the commit to be answered.
enum Out {
    Ingest(Ingested),
    Enqueue(EnqueueOutcome),
}

enum Msg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    requests: AtomicU64,
    observer: OnceLock<CommitObserver>,
}

pub(super) struct Batcher {
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<Stats>,
}

impl Batcher {
    pub(super) fn start(pool: Pool, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(pool, rx, max_batch.max(1), stats.clone()));
        Self { tx, stats }
    }

    pub(super) async fn ingest(&self, req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64) -> Result<Ingested, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Job(Job::Ingest { req, opts, now, ttl, reply })).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn enqueue(&self, msg: NewMessage, id: String, now: u64) -> Result<EnqueueOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Job(Job::Enqueue { msg, id, now, reply })).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn stats(&self) -> (u64, u64) {
        (self.stats.transactions.load(Ordering::Relaxed), self.stats.requests.load(Ordering::Relaxed))
    }

    pub(super) fn on_commit(&self, f: CommitObserver) {
        let _ = self.stats.observer.set(f);
    }

    pub(super) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<Msg>, max_batch: usize, stats: Arc<Stats>) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut closing = None;
    while closing.is_none() {
        match rx.recv().await {
            Some(Msg::Job(j)) => batch.push(j),
            Some(Msg::Close(done)) => closing = Some(done),
            None => break,
        }
        while batch.len() < max_batch && closing.is_none() {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len();
        let started = Instant::now();
        let mut result = commit_batch(&pool, &batch).await;
        for _ in 1..MAX_TRIES {
            match &result {
                Err(e) if e.is_retryable_conflict() => {
                    tracing::debug!(error = %e, batch = n, "batch conflicted with another daemon's; running it again");
                    result = commit_batch(&pool, &batch).await;
                }
                _ => break,
            }
        }
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(observe) = stats.observer.get() {
            observe(started.elapsed(), n);
        }
        match result {
            Ok(outs) => {
                // The caller may have gone away; the write stands regardless.
                for (job, out) in batch.drain(..).zip(outs) {
                    match (job, out) {
                        (Job::Ingest { reply, .. }, Out::Ingest(o)) => drop(reply.send(Ok(o))),
                        (Job::Enqueue { reply, .. }, Out::Enqueue(o)) => drop(reply.send(Ok(o))),
                        _ => unreachable!("outputs follow their jobs"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = n, "store transaction failed; batch rolled back");
                for job in batch.drain(..) {
                    match job {
                        Job::Ingest { reply, .. } => drop(reply.send(Err(e.clone()))),
                        Job::Enqueue { reply, .. } => drop(reply.send(Err(e.clone()))),
                    }
                }
            }
        }
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Applies the jobs in one transaction and commits; the outputs are in job order.
async fn commit_batch(pool: &Pool, jobs: &[Job]) -> Result<Vec<Out>, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    lock_conversations(&tx, jobs).await?;
    lock_queues(&tx, jobs).await?;
    lock_sessions(&tx, jobs).await?;
    let mut outs = Vec::with_capacity(jobs.len());
    for job in jobs {
        outs.push(match job {
            Job::Ingest { req, opts, now, ttl, .. } => Out::Ingest(ingest::ingest_in(&tx, req.clone(), opts.clone(), *now, *ttl).await?),
            Job::Enqueue { msg, id, now, .. } => Out::Enqueue(outbox::enqueue_in(&tx, msg.clone(), id.clone(), *now).await?),
        });
    }
    tx.commit().await?;
    Ok(outs)
}

/// Takes the queue lock (a transaction-scoped advisory lock) of each account the batch
/// enqueues for, in account order, after the conversation locks (the same order in every
/// batch, so no two batches deadlock). The count behind the queue cap is then taken with no
/// other daemon's enqueue for that account in flight: without it two daemons could each count
/// below the cap and together pass it.
async fn lock_queues(tx: &Tx<'_>, jobs: &[Job]) -> Result<(), StoreError> {
    let mut accounts: Vec<&str> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Enqueue { msg, .. } => Some(msg.account.as_str()),
            Job::Ingest { .. } => None,
        })
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    for account in accounts {
        // One statement per lock: the order of calls within one statement is not defined.
        query_opt(tx, "SELECT pg_advisory_xact_lock(hashtextextended('switchboard.outbox_queue.' || $1, 0))", &[&account]).await?;
    }
    Ok(())
}

/// Takes the session lock (a transaction-scoped advisory lock) of each account in which the
/// batch may open a session, in account order, after the queue locks (the same order in every
/// batch). The open-session count behind the account's cap is then taken with no other
/// daemon's session-opening batch for that account in flight: without it, two daemons each
/// counted below the cap and together opened twice its worth. Batches whose conversations are
/// all open already (most of them, under load) take no lock: they cannot move the count up.
async fn lock_sessions(tx: &Tx<'_>, jobs: &[Job]) -> Result<(), StoreError> {
    // (account, conversation, last activity at or before which the session has closed)
    let mut keys: Vec<(&str, &str, i64)> = Vec::new();
    for job in jobs {
        match job {
            Job::Ingest { req, opts, now, .. } if let Some(h) = &opts.history => keys.extend(
                req.events
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Message | EventKind::Reaction))
                    .map(|e| (req.account.as_str(), e.conversation.as_str(), closed_at_or_before(*now, h))),
            ),
            Job::Enqueue { msg, now, .. } if let Some(h) = &msg.history => {
                keys.push((msg.account.as_str(), msg.conversation.as_str(), closed_at_or_before(*now, h)))
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let (mut accounts, mut conversations, mut closed) = (Vec::new(), Vec::new(), Vec::new());
    for (a, c, f) in keys {
        accounts.push(a);
        conversations.push(c);
        closed.push(f);
    }
    // The conversation rows exist and are locked (`lock_conversations`): their state cannot
    // change before this transaction ends.
    let opening = super::query(
        tx,
        "SELECT DISTINCT k.a FROM unnest($1::text[], $2::text[], $3::int8[]) AS k(a, c, f)
         JOIN conversations v ON v.account = k.a AND v.conversation = k.c
         WHERE v.last_activity IS NULL OR v.last_activity <= k.f
         ORDER BY k.a",
        &[&accounts, &conversations, &closed],
    )
    .await?;
    for row in opening {
        let account: &str = row.get(0);
        query_opt(tx, "SELECT pg_advisory_xact_lock(hashtextextended('switchboard.sessions.' || $1, 0))", &[&account]).await?;
    }
    Ok(())
}

/// A conversation last active at or before this is no longer in a session at `now`.
fn closed_at_or_before(now: u64, h: &crate::store::HistoryOptions) -> i64 {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    signed(now).saturating_sub(signed(h.session_timeout_ms))
}

/// Locks the conversation rows the batch's messages touch, in (account, conversation) order,
/// creating the missing ones: every batch takes these locks in the same order, so two
/// daemons' batches queue behind each other instead of deadlocking.
async fn lock_conversations(tx: &Tx<'_>, jobs: &[Job]) -> Result<(), StoreError> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for job in jobs {
        match job {
            Job::Ingest { req, .. } => keys.extend(
                req.events
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Message | EventKind::Reaction))
                    .map(|e| (req.account.as_str(), e.conversation.as_str())),
            ),
            // A message kept in history moves its conversation's session on.
            Job::Enqueue { msg, .. } if msg.history.is_some() => keys.push((msg.account.as_str(), msg.conversation.as_str())),
            Job::Enqueue { .. } => {}
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let (accounts, conversations): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    execute(
        tx,
        "INSERT INTO conversations (account, conversation)
         SELECT a, c FROM unnest($1::text[], $2::text[]) AS k(a, c) ORDER BY a, c ON CONFLICT DO NOTHING",
        &[&accounts, &conversations],
    )
    .await?;
    execute(
        tx,
        "SELECT 1 FROM conversations WHERE (account, conversation) IN (SELECT a, c FROM unnest($1::text[], $2::text[]) AS k(a, c))
         ORDER BY account, conversation FOR UPDATE",
        &[&accounts, &conversations],
    )
    .await?;
    Ok(())
}
