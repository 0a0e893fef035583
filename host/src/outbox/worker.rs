//! The delivery workers. Each of `workers` loops claims up to `batch` due messages under fenced
//! leases and delivers them concurrently: limiter and breaker first (a message that must wait
//! is rescheduled, no attempt counted), then the plugin's `deliver` while a heartbeat renews
//! the lease, then the outcome is recorded — only if this worker still holds the lease, so a
//! worker that stalled past its lease cannot overwrite the next holder's result.

use super::backoff::Backoff;
use super::policy::AccountDelivery;
use crate::app::App;
use crate::model::{DeliveryOutcome, Failure};
use crate::redact::mask_phone;
use crate::runtime::Outbound;
use crate::store::{Attempt, ClaimedMessage, Disposition, OutboxRow, RecordResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Delay for messages of an account that is not running (its config must be fixed first).
const ACCOUNT_DOWN_RETRY_MS: u64 = 60_000;

pub async fn run(app: Arc<App>, worker: usize, mut shutdown: watch::Receiver<bool>) {
    let cfg = app.config.delivery.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let claimed = match app.store.claim_outbox(cfg.batch, cfg.lease_ms, cfg.ordered).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(worker, error = %e, "outbox claim failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = app.outbox_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let tasks: Vec<_> = claimed
            .into_iter()
            .map(|c| {
                let app = app.clone();
                let span = tracing::info_span!("deliver", worker, message_id = %c.row.id, correlation_id = %c.row.correlation_id);
                tokio::spawn(async move { deliver_one(&app, c).await }.instrument(span))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        // Others may be waiting behind a conversation we just finished.
        app.outbox_wake.notify_one();
    }
}

async fn deliver_one(app: &App, claimed: ClaimedMessage) {
    let ClaimedMessage { row, token } = claimed;
    let now = app.clock.now_ms();
    let (Some(ctx), Some(policy)) = (app.accounts.ready(&row.account), app.delivery.get(&row.account)) else {
        tracing::warn!(account = %row.account, "account is not running; message waits");
        return record(app, &row, token, None, Disposition::Deferred(now + ACCOUNT_DOWN_RETRY_MS)).await;
    };
    if let Err((wait, scope)) = policy.limiter.check(&row.account, &row.to, &row.conversation) {
        tracing::debug!(wait_ms = wait, ?scope, "rate limited; rescheduled");
        return record(app, &row, token, None, Disposition::Deferred(now + wait)).await;
    }
    if let Err(wait) = policy.breaker.admit(now) {
        tracing::debug!(wait_ms = wait, "circuit open; rescheduled");
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
    let outcome = tokio::select! {
        r = app.runtime.deliver(ctx, msg) => r.map_err(|e| e.to_string()),
        () = heartbeat(app, &row.id, token) => {
            // Our lease is gone: someone else owns this message now. Dropping the call
            // abandons it; whatever it did is the new holder's to find out.
            tracing::warn!("lease lost during delivery; abandoned");
            return;
        }
    };
    let now = app.clock.now_ms();
    let transient = matches!(outcome, Ok(DeliveryOutcome::Retry { .. }) | Err(_));
    policy.breaker.record(now, transient);
    let (attempt, disposition) = decide(policy, number, now, outcome);
    tracing::info!(
        account = %row.account, to = %mask_phone(&row.to), attempt = number, outcome = %attempt.outcome,
        code = attempt.code.as_deref().unwrap_or(""), "delivery attempt"
    );
    record(app, &row, token, Some(attempt), disposition).await;
}

/// Renews the lease at a third of its length; returns only when a renewal fails.
async fn heartbeat(app: &App, id: &str, token: u64) {
    let lease_ms = app.config.delivery.lease_ms;
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
    let retry_at = |provider_delay: Option<u64>| -> Disposition {
        if number >= policy.retry.max_attempts {
            return Disposition::Failed(Failure {
                code: "max_attempts".into(),
                reason: format!("gave up after {number} attempts"),
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
        Ok(DeliveryOutcome::Retry { after_ms }) => ("retry", None, None, retry_at(after_ms)),
        Ok(DeliveryOutcome::RateLimited { after_ms }) => ("rate_limited", None, None, retry_at(Some(after_ms))),
        Ok(DeliveryOutcome::Permanent { code, reason }) => {
            ("permanent", Some(code.clone()), Some(reason.clone()), Disposition::Failed(Failure { code, reason }))
        }
        Err(e) => ("error", None, Some(e), retry_at(None)),
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
        Ok(RecordResult::Recorded(_)) if dead => tracing::warn!("message dead-lettered"),
        Ok(RecordResult::Recorded(_)) => {}
        Ok(RecordResult::Fenced) => tracing::warn!("lease lost before the outcome was recorded; discarded"),
        Err(e) => tracing::error!(error = %e, "recording delivery outcome failed; the lease will expire and retry"),
    }
}
