//! The delivery worker: claims due messages under a fenced lease, calls the plugin's
//! `deliver`, and records each attempt. A result is only recorded if the worker still holds
//! the lease, so a worker that stalled past its lease cannot overwrite the next holder.

use super::backoff::Backoff;
use crate::app::App;
use crate::model::{DeliveryOutcome, Failure};
use crate::redact::mask_phone;
use crate::runtime::Outbound;
use crate::store::{Attempt, ClaimedMessage, Disposition, RecordResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let cfg = app.config.delivery.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let claimed = match app.store.claim_outbox(cfg.workers, cfg.lease_ms).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "outbox claim failed");
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
                let span = tracing::info_span!("deliver", message_id = %c.row.id, correlation_id = %c.row.correlation_id);
                tokio::spawn(async move { deliver_one(&app, c).await }.instrument(span))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn deliver_one(app: &App, claimed: ClaimedMessage) {
    let ClaimedMessage { row, token } = claimed;
    let cfg = &app.config.delivery;
    let number = row.attempts.len() as u32 + 1;
    let outcome = match app.accounts.ready(&row.account) {
        None => Err(format!("account `{}` is not running", row.account)),
        Some(ctx) => {
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
            app.runtime.deliver(ctx, msg).await.map_err(|e| e.to_string())
        }
    };
    let now = app.clock.now_ms();
    let backoff = Backoff { base_ms: cfg.backoff_base_ms, cap_ms: cfg.backoff_cap_ms };
    let retry_at = |provider_delay: Option<u64>| -> Disposition {
        if number >= cfg.max_attempts {
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
        Ok(DeliveryOutcome::Permanent { code, reason }) => (
            "permanent",
            Some(code.clone()),
            Some(reason.clone()),
            Disposition::Failed(Failure { code, reason }),
        ),
        Err(e) => ("error", None, Some(e), retry_at(None)),
    };
    let next_attempt_at_ms = match &disposition {
        Disposition::RetryAt(at) => Some(*at),
        _ => None,
    };
    let attempt = Attempt { number, at_ms: now, outcome: label.into(), code, detail, next_attempt_at_ms };
    tracing::info!(
        account = %row.account, to = %mask_phone(&row.to), attempt = number, outcome = label,
        code = attempt.code.as_deref().unwrap_or(""), "delivery attempt"
    );
    match app.store.record_attempt(row.id.clone(), token, attempt, disposition).await {
        Ok(RecordResult::Recorded(_)) => {}
        Ok(RecordResult::Fenced) => tracing::warn!("lease lost before the outcome was recorded; discarded"),
        Err(e) => tracing::error!(error = %e, "recording delivery outcome failed; the lease will expire and retry"),
    }
}
