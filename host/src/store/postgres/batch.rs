//! Group commit for PostgreSQL: one task takes the first waiting webhook ingest or outbound
//! enqueue, drains everything else already queued (up to `max_batch`), applies all of them in
//! one transaction, commits, and only then answers each caller. Many webhooks share one
//! commit (one WAL flush) as they share one fsync on redb.
//!
//! If any request fails with a storage error, the transaction rolls back and every caller in
//! the batch gets the error: nobody is told "stored" for a write that is not durable.

use super::{Tx, ingest, outbox};
use crate::store::{CommitObserver, EnqueueOutcome, IngestOptions, IngestRequest, Ingested, NewMessage, StoreError};
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Job {
    Ingest { req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64, reply: oneshot::Sender<Result<Ingested, StoreError>> },
    Enqueue { msg: NewMessage, id: String, now: u64, reply: oneshot::Sender<Result<EnqueueOutcome, StoreError>> },
}

/// A job applied in the open transaction, waiting for the commit to answer.
enum Done {
    Ingest(oneshot::Sender<Result<Ingested, StoreError>>, Ingested),
    Enqueue(oneshot::Sender<Result<EnqueueOutcome, StoreError>>, EnqueueOutcome),
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
        let result = commit_batch(&pool, batch.drain(..)).await;
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(observe) = stats.observer.get() {
            observe(started.elapsed(), n);
        }
        match result {
            Ok(done) => {
                for d in done {
                    // The caller may have gone away; the write stands regardless.
                    match d {
                        Done::Ingest(reply, out) => drop(reply.send(Ok(out))),
                        Done::Enqueue(reply, out) => drop(reply.send(Ok(out))),
                    }
                }
            }
            Err((e, replies)) => {
                tracing::error!(error = %e, batch = n, "store transaction failed; batch rolled back");
                for r in replies {
                    r(e.clone());
                }
            }
        }
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

type Fail = Box<dyn FnOnce(StoreError) + Send>;

fn fail_of(job: Job) -> Fail {
    match job {
        Job::Ingest { reply, .. } => Box::new(move |e| drop(reply.send(Err(e)))),
        Job::Enqueue { reply, .. } => Box::new(move |e| drop(reply.send(Err(e)))),
    }
}

fn fail_of_done(d: Done) -> Fail {
    match d {
        Done::Ingest(reply, _) => Box::new(move |e| drop(reply.send(Err(e)))),
        Done::Enqueue(reply, _) => Box::new(move |e| drop(reply.send(Err(e)))),
    }
}

/// Applies the jobs in one transaction. On failure, every job's reply comes back to be told.
async fn commit_batch(pool: &Pool, jobs: impl Iterator<Item = Job>) -> Result<Vec<Done>, (StoreError, Vec<Fail>)> {
    let jobs: Vec<Job> = jobs.collect();
    let mut c = match pool.get().await {
        Ok(c) => c,
        Err(e) => return Err((e.into(), jobs.into_iter().map(fail_of).collect())),
    };
    let tx = match c.transaction().await {
        Ok(t) => t,
        Err(e) => return Err((e.into(), jobs.into_iter().map(fail_of).collect())),
    };
    let mut done = Vec::with_capacity(jobs.len());
    let mut rest = jobs.into_iter();
    while let Some(job) = rest.next() {
        let applied = apply(&tx, job).await;
        match applied {
            Ok(d) => done.push(d),
            Err((e, fail)) => {
                let mut fails: Vec<Fail> = done.into_iter().map(fail_of_done).collect();
                fails.push(fail);
                fails.extend(rest.map(fail_of));
                return Err((e, fails)); // dropping `tx` rolls it back
            }
        }
    }
    if let Err(e) = tx.commit().await {
        return Err((e.into(), done.into_iter().map(fail_of_done).collect()));
    }
    Ok(done)
}

async fn apply(tx: &Tx<'_>, job: Job) -> Result<Done, (StoreError, Fail)> {
    match job {
        Job::Ingest { req, opts, now, ttl, reply } => match ingest::ingest_in(tx, req, opts, now, ttl).await {
            Ok(out) => Ok(Done::Ingest(reply, out)),
            Err(e) => Err((e, Box::new(move |e| drop(reply.send(Err(e)))))),
        },
        Job::Enqueue { msg, id, now, reply } => match outbox::enqueue_in(tx, msg, id, now).await {
            Ok(out) => Ok(Done::Enqueue(reply, out)),
            Err(e) => Err((e, Box::new(move |e| drop(reply.send(Err(e)))))),
        },
    }
}
