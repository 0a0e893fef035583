//! Pollers: channels whose provider is polled (Telegram `getUpdates`) instead of calling a
//! webhook. An account polls when its settings say `mode = "poll"` and its plugin declares the
//! `poll` capability.
//!
//! One poller task per polling account and process. It polls only while it holds the account's
//! lease (`poll:{account}`, [`crate::lease`]): of all processes sharing the store at most one
//! polls a bot at a time (Telegram answers concurrent `getUpdates` with 409 Conflict). Each
//! batch of events is stored together with the plugin's new cursor in **one** store
//! transaction that first checks the lease's fencing token ([`Store::ingest_polled`]): a poller
//! whose lease expired (a long pause) and was taken over writes nothing, and the cursor never
//! gets ahead of (or behind) the events it covers. The cursor is read back from the store
//! before every poll, so the next holder continues exactly where the last commit ended;
//! anything polled but not committed is polled again and deduped by its provider event id.
//!
//! [`Store::ingest_polled`]: crate::store::Store::ingest_polled

use crate::app::App;
use crate::lease::{AcquirePolicy, Lease, LeaseError, Manager};
use crate::store::{IngestRequest, Ingested, Polled};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The capability a plugin declares (in `describe`) when it implements `poll`.
pub const CAPABILITY: &str = "poll";

#[derive(Debug, Clone, Copy)]
pub struct PollerOptions {
    /// The account lease's time to live; the heartbeat renews it at a third of that.
    pub lease_ttl_ms: u64,
    /// How often a poller without the lease tries to take it (real time).
    pub acquire_every: Duration,
    /// Pause after a poll that brought nothing new (long-polling plugins already waited).
    pub idle: Duration,
    /// First pause after a failed poll or write; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PollerOptions {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 30_000,
            acquire_every: Duration::from_secs(1),
            idle: Duration::from_millis(250),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What a running poller is doing, readable from outside (tests, status).
#[derive(Debug, Default)]
pub struct PollerState {
    /// Holds the account lease right now.
    pub holding: AtomicBool,
    /// `poll` calls made.
    pub polls: AtomicU64,
    /// Events stored (duplicates not counted).
    pub stored: AtomicU64,
}

pub struct Poller {
    pub account: String,
    pub holder: String,
    pub state: Arc<PollerState>,
    pub task: JoinHandle<()>,
}

/// The lease resource of an account's poller.
pub fn lease_resource(account: &str) -> String {
    format!("poll:{account}")
}

/// Whether the account is configured to poll (`settings.mode = "poll"`).
pub fn wants_poll(app: &App, account: &str) -> bool {
    app.config.accounts.get(account).and_then(|a| a.settings.get("mode")).is_some_and(|m| m == "poll")
}

/// Starts a poller for every ready account configured to poll whose plugin can.
pub fn spawn_all(app: &Arc<App>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let holder = format!("switchboard-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
    let mut tasks = Vec::new();
    for id in app.config.accounts.keys() {
        if !wants_poll(app, id) {
            continue;
        }
        let Some(ctx) = app.accounts.ready(id).map(|c| Arc::clone(&c)) else {
            tracing::error!(account = %id, "account is not running; it does not poll");
            continue;
        };
        if !app.runtime.capabilities(&ctx.plugin).iter().any(|c| c == CAPABILITY) {
            tracing::error!(account = %id, plugin = %ctx.plugin, "mode = \"poll\" but the plugin cannot poll; nothing is polled");
            continue;
        }
        tasks.push(spawn(app.clone(), id.clone(), holder.clone(), PollerOptions::default(), shutdown.clone()).task);
    }
    tasks
}

/// Starts one poller for `account` named `holder` in lease records.
pub fn spawn(app: Arc<App>, account: String, holder: String, opts: PollerOptions, shutdown: watch::Receiver<bool>) -> Poller {
    let state = Arc::new(PollerState::default());
    let task = tokio::spawn(run(app, account.clone(), holder.clone(), opts, state.clone(), shutdown));
    Poller { account, holder, state, task }
}

enum Stop {
    Shutdown,
    Lost,
}

async fn run(app: Arc<App>, account: String, holder: String, opts: PollerOptions, state: Arc<PollerState>, mut shutdown: watch::Receiver<bool>) {
    let manager = Manager::new(app.store.clone(), holder.clone());
    let resource = lease_resource(&account);
    let policy = AcquirePolicy { ttl_ms: opts.lease_ttl_ms, attempts: 1, retry_every: opts.acquire_every };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut lease = match manager.acquire(&resource, policy).await {
            Ok(lease) => lease,
            Err(LeaseError::Busy { .. }) => {
                if pause(opts.acquire_every, &mut shutdown).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(account = %account, error = %e, "poller cannot take the account lease");
                if pause(opts.backoff, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(account = %account, holder = %holder, token = lease.token, "poller holds the account lease");
        state.holding.store(true, Ordering::SeqCst);
        let stop = hold(&app, &account, &mut lease, &opts, &state, &mut shutdown).await;
        state.holding.store(false, Ordering::SeqCst);
        match stop {
            Stop::Shutdown => {
                if let Err(e) = lease.release().await {
                    tracing::warn!(account = %account, error = %e, "poller lease not released; it expires on its own");
                }
                return;
            }
            Stop::Lost => tracing::warn!(account = %account, holder = %holder, "poller lost the account lease; stopped polling"),
        }
    }
}

/// Polls while the lease holds.
async fn hold(app: &App, account: &str, lease: &mut Lease, opts: &PollerOptions, state: &PollerState, shutdown: &mut watch::Receiver<bool>) -> Stop {
    let mut backoff = opts.backoff;
    loop {
        if lease.is_lost() {
            return Stop::Lost;
        }
        let Some(ctx) = app.accounts.ready(account).map(|c| Arc::clone(&c)) else {
            tracing::warn!(account = %account, "account is not running; poller waits");
            if pause(opts.max_backoff, shutdown).await {
                return Stop::Shutdown;
            }
            continue;
        };
        let cursor = match app.store.poll_cursor(account).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(account = %account, error = %e, "reading the poll cursor failed");
                if pause(backoff, shutdown).await {
                    return Stop::Shutdown;
                }
                continue;
            }
        };
        let polled = tokio::select! {
            r = app.runtime.poll(&ctx, cursor.clone()) => r,
            () = lease.lost() => return Stop::Lost,
            _ = shutdown.wait_for(|s| *s) => return Stop::Shutdown,
        };
        state.polls.fetch_add(1, Ordering::SeqCst);
        let batch = match polled {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::warn!(account = %account, error = %e, retry_in_ms = backoff.as_millis() as u64, "poll failed");
                if pause(backoff, shutdown).await {
                    return Stop::Shutdown;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
            Err(e) => {
                tracing::warn!(account = %account, error = %e, retry_in_ms = backoff.as_millis() as u64, "poll call failed");
                if pause(backoff, shutdown).await {
                    return Stop::Shutdown;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
        };
        backoff = opts.backoff;
        let nothing_new = batch.events.is_empty();
        if nothing_new && (batch.cursor.is_none() || batch.cursor == cursor) {
            if pause(opts.idle, shutdown).await {
                return Stop::Shutdown;
            }
            continue;
        }
        let req = IngestRequest {
            account: account.to_string(),
            correlation_id: uuid::Uuid::now_v7().simple().to_string(),
            events: batch.events,
        };
        // The same routing as a webhook (push/pull, approvals, history), plus the fence.
        let opts_in = crate::agent::ingest_options(app, account);
        match app.store.ingest_polled(req, opts_in, &lease.resource, lease.token, batch.cursor).await {
            Ok(Polled::Stored(Ingested::Stored(o, effects))) => {
                crate::agent::after_ingest(app, &effects);
                state.stored.fetch_add(o.stored as u64, Ordering::SeqCst);
                if o.stored + o.duplicates > 0 {
                    tracing::info!(account = %account, stored = o.stored, duplicates = o.duplicates, "polled events stored");
                }
            }
            Ok(Polled::Stored(Ingested::SessionLimit { open })) => {
                // Nothing written, cursor not advanced: polled again once sessions close.
                tracing::warn!(account = %account, open, "polled events refused: open session limit; retrying");
                if pause(opts.max_backoff, shutdown).await {
                    return Stop::Shutdown;
                }
                continue;
            }
            Ok(Polled::Fenced) => return Stop::Lost,
            Err(e) => {
                tracing::error!(account = %account, error = %e, "storing polled events failed; they are polled again");
                if pause(backoff, shutdown).await {
                    return Stop::Shutdown;
                }
                continue;
            }
        }
        if nothing_new && pause(opts.idle, shutdown).await {
            return Stop::Shutdown;
        }
    }
}

/// Sleeps `d`; `true` if shutdown was asked meanwhile.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        _ = shutdown.wait_for(|s| *s) => return true,
    }
    *shutdown.borrow()
}
