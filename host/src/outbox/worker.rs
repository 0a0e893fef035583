//! The delivery workers. Each of `workers` loops keeps up to `batch` deliveries in flight,
//! claimed under fenced leases: limiter and breaker first (a message that must wait is
//! rescheduled, no attempt counted), then the plugin's `deliver` while a heartbeat renews the
//! lease, then the outcome is recorded — only if this worker still holds the lease, so a
//! worker that stalled past its lease cannot overwrite the next holder's result.
//!
//! A worker tops its deliveries up as they finish instead of claiming a batch and waiting for
//! all of it: one slow provider call (a timeout is 30 s) used to hold the batch's other slots
//! empty until it ended. It claims again once a quarter of its slots are free (or all are),
//! so a claim, a durable write, serves several messages.

use super::backoff::Backoff;
use super::policy::AccountDelivery;
use crate::app::App;
use crate::metrics::{self, Deferral};
use crate::model::{DeliveryOutcome, Failure};
use crate::runtime::{CallError, Outbound};
use crate::store::{Attempt, ClaimedMessage, Disposition, OutboxRow, RecordResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Delay for messages of an account that is not running (its config must be fixed first).
const ACCOUNT_DOWN_RETRY_MS: u64 = 60_000;

/// Delay for a message whose delivery found every sandbox instance in use: calls end within
/// their wall-clock cap, most within milliseconds.
const SANDBOX_BUSY_RETRY_MS: u64 = 250;

/// Whether a worker with `in_flight` of `batch` deliveries running claims more now: when
/// none run, or a quarter of its slots (at least one) are free.
fn refills(in_flight: usize, batch: usize) -> bool {
    let free = batch.saturating_sub(in_flight);
    free > 0 && (in_flight == 0 || free >= batch.div_ceil(4))
}

pub async fn run(app: Arc<App>, worker: usize, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut cut_off = app.cut_off.subscribe();
    // Whether this worker's last claim got all it asked for: more is likely due, so the next
    // claim skips the look (a read transaction a claim, ~2 % of the request threads' CPU under
    // load) and claims at once. An empty claim costs a commit; this risks one at most, at the
    // end of a burst.
    let mut last_full = false;
    loop {
        // Shutting down: no more claims; the deliveries under way finish (or are cut off).
        let stopping = *shutdown.borrow();
        if stopping && tasks.is_empty() {
            break;
        }
        // Read every round: a config reload changes batch, lease and poll interval.
        let cfg = app.current_config().delivery.clone();
        let refill = !stopping && refills(tasks.len(), cfg.batch);
        // Listen before looking, so that a message queued (or a test clock moved) between
        // the look and the wait still wakes this worker. Only a worker that would claim
        // listens: one whose slots are full would take a wake-up meant for an idle worker
        // and pass it on only when it has room.
        let mut woken = refill.then(|| {
            let mut w = Box::pin(app.outbox_wake.notified());
            w.as_mut().enable();
            w
        });
        let moved = app.clock.moved();
        let mut sleep = Duration::ZERO;
        if refill {
            let now = app.clock.now_ms();
            let free = cfg.batch - tasks.len();
            // Look (a read) before claiming (a durable write): idle, nothing is committed.
            let looked = !last_full;
            let next = if looked { app.store.next_outbox_due(cfg.ordered).await } else { Ok(Some(now)) };
            let claimed = match next {
                Ok(None) => Vec::new(),
                Ok(Some(at)) if at > now => Vec::new(),
                _ => match app.store.claim_outbox(free, cfg.lease_ms, cfg.ordered).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(worker, error = %e, "outbox claim failed");
                        Vec::new()
                    }
                },
            };
            last_full = claimed.len() >= free;
            if last_full {
                // As many as asked for: more may be due. Another worker looks meanwhile.
                app.outbox_wake.notify_one();
            }
            let poll = Duration::from_millis(cfg.poll_interval_ms);
            // Claimed fewer than asked: nothing else is due before `next` (or, when it was due
            // and not all of it could be taken, look again after the poll interval).
            sleep = match next {
                // Claimed without looking and got less: look now, for when the rest is due.
                _ if !looked && !last_full => Duration::ZERO,
                Ok(next) => crate::idle::sleep_for(next, now, poll, app.store.shared()),
                Err(_) => poll,
            };
            if !claimed.is_empty() {
                metrics::OutboxClaimed { claimed: claimed.len(), reclaimed: claimed.iter().filter(|c| c.reclaimed).count() }
                    .emit(&app.metrics);
            }
            for c in claimed {
                let app = app.clone();
                app.in_flight.hold(&c.row.id, c.token);
                let span = tracing::info_span!("deliver", worker, message_id = %c.row.id, correlation_id = %c.row.correlation_id);
                tasks.spawn(
                    async move {
                        let id = c.row.id.clone();
                        deliver_one(&app, c).await;
                        app.in_flight.done(&id);
                    }
                    .instrument(span),
                );
            }
        }
        let listening = !stopping && refills(tasks.len(), cfg.batch);
        if !listening {
            woken = None;
        }
        // Deliveries run concurrently; if shutdown runs out of time they are cut off (and their
        // leases released by the daemon, see `InFlight`).
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                if !refills(tasks.len(), cfg.batch) {
                    // Others may be waiting behind a conversation just finished, and this
                    // worker will not look yet.
                    app.outbox_wake.notify_one();
                }
            }
            () = async { drop(cut_off.wait_for(|c| *c).await) } => {
                // Shutdown ran out of time: stop the deliveries and wait until they have stopped.
                return tasks.shutdown().await;
            }
            _ = async { if let Some(w) = woken.as_mut() { w.await } else { std::future::pending().await } }, if listening => {}
            _ = tokio::time::sleep(sleep), if listening => {}
            _ = crate::clock::moved(moved), if listening => {}
            _ = shutdown.changed(), if !stopping => {}
        }
    }
}

/// Outbox leases this process holds: (message id → fencing token), from claim until the
/// outcome is recorded. A delivery aborted by a shutdown that ran out of time stays listed,
/// so the daemon can put its message back in the queue at once ([`InFlight::release_all`])
/// instead of leaving it to wait for its lease to expire.
#[derive(Default)]
pub struct InFlight(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl InFlight {
    fn hold(&self, id: &str, token: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), token);
    }

    fn done(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Releases every lease still held (the messages are due again now, no attempt counted);
    /// returns how many were released. Call only once the deliveries have stopped. A message
    /// whose delivery was cut off mid-request may reach the provider twice; the provider
    /// idempotency key (when the channel supports one) covers that.
    pub async fn release_all(&self, app: &App) -> usize {
        let held: Vec<(String, u64)> = self.0.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
        let now = app.clock.now_ms();
        let mut released = 0;
        for (id, token) in held {
            if let Ok(RecordResult::Recorded(_)) = app.store.record_attempt(id, token, None, Disposition::Deferred(now)).await {
                released += 1;
            }
        }
        released
    }
}

async fn deliver_one(app: &App, claimed: ClaimedMessage) {
    let ClaimedMessage { row, token, .. } = claimed;
    let now = app.clock.now_ms();
    let (Some(ctx), Some(policy)) = (app.accounts.ready(&row.account), app.delivery.get(&row.account)) else {
        metrics::DeliveryDeferred { account: &row.account, why: Deferral::AccountDown, wait_ms: ACCOUNT_DOWN_RETRY_MS }.emit(&app.metrics);
        return record(app, &row, token, None, Disposition::Deferred(now + ACCOUNT_DOWN_RETRY_MS)).await;
    };
    if let Err((wait, scope)) = policy.limiter.check(&row.account, &row.to, &row.conversation) {
        metrics::DeliveryDeferred { account: &row.account, why: Deferral::RateLimit(scope), wait_ms: wait }.emit(&app.metrics);
        return record(app, &row, token, None, Disposition::Deferred(now + wait)).await;
    }
    if let Err(wait) = policy.breaker.admit(now) {
        metrics::DeliveryDeferred { account: &row.account, why: Deferral::CircuitOpen, wait_ms: wait }.emit(&app.metrics);
        return record(app, &row, token, None, Disposition::Deferred(now + wait)).await;
    }
    let number = row.attempts.len() as u32 + 1;
    let msg = Outbound {
        id: &row.id,
        account: &row.account,
        to: &row.to,
        conversation: &row.conversation,
        body: &row.body,
        metadata: row.metadata.as_ref(),
        attempt: number,
        idempotency_key: row.idempotency_key.as_deref(),
    };
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        r = app.runtime.deliver(&ctx, msg) => r,
        () = heartbeat(app, &row.id, token) => {
            // Our lease is gone: someone else owns this message now. Dropping the call
            // abandons it; whatever it did is the new holder's to find out.
            return metrics::LeaseLost { queue: "outbox", message: "lease lost during delivery; abandoned" }.emit(&app.metrics);
        }
    };
    let outcome = match outcome {
        Err(CallError::Busy(_)) => {
            // The host's capacity, not the provider's health nor the message's: no attempt.
            policy.breaker.abandon();
            metrics::DeliveryDeferred { account: &row.account, why: Deferral::SandboxBusy, wait_ms: SANDBOX_BUSY_RETRY_MS }.emit(&app.metrics);
            return record(app, &row, token, None, Disposition::Deferred(app.clock.now_ms() + SANDBOX_BUSY_RETRY_MS)).await;
        }
        r => r.map_err(|e| e.to_string()),
    };
    let call = started.elapsed();
    let now = app.clock.now_ms();
    let transient = matches!(outcome, Ok(DeliveryOutcome::Retry { .. }) | Err(_));
    policy.breaker.record(now, transient);
    let delivered = matches!(outcome, Ok(DeliveryOutcome::Delivered { .. }));
    let (attempt, disposition) = decide(&policy, number, now, outcome);
    metrics::DeliveryAttempted { row: &row, plugin: &ctx.plugin, attempt: &attempt, call, delivered, now_ms: now }.emit(&app.metrics);
    record(app, &row, token, Some(attempt), disposition).await;
}

/// Renews the lease at a third of its length; returns only when a renewal fails.
async fn heartbeat(app: &App, id: &str, token: u64) {
    let lease_ms = app.current_config().delivery.lease_ms;
    loop {
        tokio::time::sleep(Duration::from_millis(lease_ms / 3)).await;
        match app.store.renew_outbox_lease(id.to_string(), token, lease_ms).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
}

/// Turns a plugin outcome into an attempt record and what happens next.
fn decide(policy: &AccountDelivery, number: u32, now: u64, outcome: Result<DeliveryOutcome, String>) -> (Attempt, Disposition) {
    let backoff = Backoff { base_ms: policy.retry.backoff_base_ms, cap_ms: policy.retry.backoff_cap_ms };
    // `last`: why this attempt failed, kept on the dead letter if it was the last one allowed.
    let retry_at = |provider_delay: Option<u64>, last: &str| -> Disposition {
        if number >= policy.retry.max_attempts {
            return Disposition::Failed(Failure {
                code: "max_attempts".into(),
                reason: format!("gave up after {number} attempts; the last: {last}"),
            });
        }
        // The provider's own delay always wins over our backoff.
        let delay = provider_delay.filter(|d| *d > 0).unwrap_or_else(|| backoff.delay_ms(number, &mut rand::rng()));
        Disposition::RetryAt(now + delay)
    };
    let (label, code, detail, disposition) = match outcome {
        Ok(DeliveryOutcome::Delivered { provider_message_id }) => {
            ("delivered", None, None, Disposition::Delivered { provider_message_id })
        }
        Ok(DeliveryOutcome::Retry { code, reason, after_ms }) => {
            let then = retry_at(after_ms, &format!("{code}: {reason}"));
            ("retry", Some(code), Some(reason), then)
        }
        Ok(DeliveryOutcome::RateLimited { after_ms }) => ("rate_limited", None, None, retry_at(Some(after_ms), "rate limited by the provider")),
        Ok(DeliveryOutcome::Permanent { code, reason }) => {
            ("permanent", Some(code.clone()), Some(reason.clone()), Disposition::Failed(Failure { code, reason }))
        }
        Err(e) => {
            let then = retry_at(None, &format!("the plugin call failed: {e}"));
            ("error", None, Some(e), then)
        }
    };
    let next_attempt_at_ms = match &disposition {
        Disposition::RetryAt(at) => Some(*at),
        _ => None,
    };
    (Attempt { number, at_ms: now, outcome: label.into(), code, detail, next_attempt_at_ms }, disposition)
}

async fn record(app: &App, row: &OutboxRow, token: u64, attempt: Option<Attempt>, disposition: Disposition) {
    let dead = matches!(disposition, Disposition::Failed(_));
    match app.store.record_attempt(row.id.clone(), token, attempt, disposition).await {
        Ok(RecordResult::Recorded(_)) if dead => metrics::DeadLettered { account: &row.account }.emit(&app.metrics),
        Ok(RecordResult::Recorded(_)) => {}
        Ok(RecordResult::Fenced) => {
            metrics::LeaseLost { queue: "outbox", message: "lease lost before the outcome was recorded; discarded" }.emit(&app.metrics)
        }
        Err(e) => tracing::error!(error = %e, "recording delivery outcome failed; the lease will expire and retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::refills;

    #[test]
    fn a_worker_claims_when_idle_or_a_quarter_of_its_slots_are_free() {
        assert!(refills(0, 8), "idle: claim");
        assert!(!refills(7, 8) && !refills(8, 8), "one of eight free: wait for a second");
        assert!(refills(6, 8), "a quarter free: top up");
        assert!(refills(0, 1) && !refills(1, 1), "a batch of one claims whenever it is free");
        assert!(!refills(49, 64) && refills(48, 64));
        assert!(!refills(9, 8), "a reload that lowered batch below what is in flight: wait");
    }
}
