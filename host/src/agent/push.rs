//! Push delivery: accounts with `deliver_to` get each inbox event POSTed as JSON, signed with
//! Standard Webhooks (`webhook-id` = the event id, stable across retries, so the agent can
//! dedupe; `webhook-timestamp` from the daemon's clock; `webhook-signature: v1,<base64
//! HMAC-SHA256>` with the account's `deliver_secret`).
//!
//! The same machinery as outbound messages: the worker claims due events under fenced leases
//! (only the oldest undelivered event of a conversation, so the agent sees a conversation in
//! order), records the outcome only if it still holds the lease, retries with exponential
//! backoff and full jitter (a `Retry-After` wins) up to the account's `max_attempts`, then
//! dead-letters (`push:<event id>`, redrivable). `410 Gone` dead-letters at once.

use crate::app::App;
use crate::outbox::backoff::Backoff;
use crate::store::{ClaimedPush, PushDisposition, PushRow};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One POST to an agent endpoint may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Events one pass claims and delivers concurrently (different conversations).
const BATCH: usize = 16;
/// Delay for events of an account whose push config or secret is unavailable.
const NOT_CONFIGURED_RETRY_MS: u64 = 60_000;

/// The JSON an agent endpoint receives: the event as `POST /v1/inbox/claim` returns it.
pub fn body(row: &PushRow) -> serde_json::Value {
    let mut v = serde_json::to_value(&row.event).expect("serializable");
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), row.id.to_string().into());
        o.insert("account".into(), row.account.clone().into());
        o.insert("correlation_id".into(), row.correlation_id.clone().into());
        o.insert("received_at_ms".into(), row.received_at_ms.into());
        o.insert("deliveries".into(), (row.attempts + 1).into());
    }
    v
}

/// `webhook-signature` for `id`, `timestamp` (Unix seconds) and `body` with the HMAC `key`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("TLS backend initialises");
    // The lease outlives any single attempt, so a live worker never loses it mid-request.
    let lease_ms = app.config.delivery.lease_ms.max(3 * REQUEST_TIMEOUT.as_millis() as u64);
    let poll = Duration::from_millis(app.config.delivery.poll_interval_ms);
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Listen before looking; not while delivering (see `outbox::worker`).
        let mut woken = Box::pin(app.agent.push_wake.notified());
        woken.as_mut().enable();
        let moved = app.clock.moved();
        let now = app.clock.now_ms();
        // Look (a read) before claiming (a durable write): idle, nothing is committed.
        let next = app.store.next_push_due().await;
        let claimed = match next {
            Ok(None) => Vec::new(),
            Ok(Some(at)) if at > now => Vec::new(),
            _ => match app.store.claim_push(BATCH, lease_ms).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "push claim failed");
                    Vec::new()
                }
            },
        };
        if claimed.is_empty() {
            let sleep = match next {
                Ok(next) => crate::idle::sleep_for(next, now, poll, app.store.shared()),
                Err(_) => poll,
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = crate::clock::moved(moved) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        drop(woken);
        let tasks: Vec<_> = claimed
            .into_iter()
            .map(|c| {
                let (app, client) = (app.clone(), client.clone());
                tokio::spawn(async move { deliver_one(&app, &client, c).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn deliver_one(app: &App, client: &reqwest::Client, claimed: ClaimedPush) {
    let ClaimedPush { row, token } = claimed;
    let config = app.current_config();
    let account = config.accounts.get(&row.account);
    let push = account.and_then(|a| a.agent.push.clone());
    let now = app.clock.now_ms();
    let Some(push) = push else {
        tracing::warn!(account = %row.account, event_id = row.id, "account no longer has deliver_to; the event waits");
        let d = PushDisposition::RetryAt { at_ms: now + NOT_CONFIGURED_RETRY_MS, error: "deliver_to is not configured".into() };
        return record(app, &row, token, d).await;
    };
    let key = push
        .secret
        .resolve()
        .map_err(|e| e.to_string())
        .and_then(|s| crate::verify::standard_webhooks_key(&s).map_err(|e| e.to_string()));
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(account = %row.account, error = %e, "deliver_secret is not usable; push waits");
            let d = PushDisposition::RetryAt { at_ms: now + NOT_CONFIGURED_RETRY_MS, error: format!("deliver_secret: {e}") };
            return record(app, &row, token, d).await;
        }
    };
    let body = body(&row).to_string().into_bytes();
    let id = row.id.to_string();
    let ts = now / 1000;
    let sent = client
        .post(&push.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(&key, &id, ts, &body))
        .header("x-correlation-id", &row.correlation_id)
        .body(body)
        .send()
        .await;
    let retry = account.and_then(|a| a.retry).unwrap_or(config.delivery.retry);
    let attempt = row.attempts + 1;
    let now = app.clock.now_ms();
    let retry_at = |error: String, provider_delay: Option<u64>| {
        if attempt >= retry.max_attempts {
            return PushDisposition::Failed(format!("gave up after {attempt} attempts; last: {error}"));
        }
        let backoff = Backoff { base_ms: retry.backoff_base_ms, cap_ms: retry.backoff_cap_ms };
        let delay = provider_delay.unwrap_or_else(|| backoff.delay_ms(attempt, &mut rand::rng()));
        PushDisposition::RetryAt { at_ms: now + delay, error }
    };
    let disposition = match sent {
        Ok(r) if r.status().is_success() => PushDisposition::Delivered,
        Ok(r) if r.status() == reqwest::StatusCode::GONE => PushDisposition::Failed("the endpoint answered 410 Gone".into()),
        Ok(r) => {
            let after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s * 1000);
            retry_at(format!("HTTP {}", r.status().as_u16()), after)
        }
        Err(e) => retry_at(if e.is_timeout() { "timed out".into() } else { e.without_url().to_string() }, None),
    };
    tracing::info!(
        account = %row.account, event_id = row.id, attempt, correlation_id = %row.correlation_id,
        outcome = match &disposition { PushDisposition::Delivered => "delivered", PushDisposition::RetryAt { .. } => "retry", PushDisposition::Failed(_) => "dead-lettered" },
        "push attempt"
    );
    record(app, &row, token, disposition).await;
}

async fn record(app: &App, row: &PushRow, token: u64, d: PushDisposition) {
    match app.store.record_push(row.id, token, d).await {
        Ok(true) => app.agent.push_wake.notify_one(), // the conversation's next event may go now
        Ok(false) => tracing::warn!(event_id = row.id, "push lease lost before the outcome was recorded; discarded"),
        Err(e) => tracing::error!(event_id = row.id, error = %e, "recording a push outcome failed; the lease will expire and retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HttpRequest;
    use crate::redact::Secret;

    #[test]
    fn a_signed_push_verifies_with_the_standard_webhooks_verifier() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = crate::verify::standard_webhooks_key(&secret).unwrap();
        let body = br#"{"id":"7","text":"hi"}"#;
        let req = HttpRequest {
            method: "POST".into(),
            url: "/".into(),
            headers: vec![
                ("webhook-id".into(), "7".into()),
                ("webhook-timestamp".into(), "1700000000".into()),
                ("webhook-signature".into(), sign(&key, "7", 1_700_000_000, body)),
            ],
            body: body.to_vec(),
            timeout_ms: None,
        };
        assert_eq!(crate::verify::verify_standard_webhooks(&secret, 1_700_000_000_000, &req), Ok(()));
    }
}
