use crate::accounts::AccountState;
use crate::app::App;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store answers, every configured account is running and the daemon is not
/// shutting down; otherwise 503. The body always says, per account, whether its plugin is
/// loaded, its secrets are present, its circuit breaker state and its poller lease (if it
/// polls), and `not_ready` names each thing that keeps the daemon from being ready. An open
/// breaker is reported but does not make the daemon unready: webhooks are still taken in.
pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<serde_json::Value>) {
    let mut not_ready = Vec::new();
    let draining = app.draining.load(Ordering::SeqCst);
    if draining {
        not_ready.push("shutting down".to_string());
    }
    // A real (tiny) write: a full disk still reads fine but takes no webhooks.
    let store_ok = matches!(tokio::time::timeout(std::time::Duration::from_secs(2), app.store.ping()).await, Ok(Ok(())));
    if !store_ok {
        not_ready.push("store: unavailable".to_string());
    }
    let now = app.clock.now_ms();
    let config = app.current_config();
    let loaded = app.runtime.plugin_names();
    let mut accounts = serde_json::Map::new();
    for (id, state) in app.accounts.iter() {
        let breaker = app.delivery.get(&id).map_or("closed", |p| p.breaker.state(now).name());
        let poller = app.store.lease_get(&format!("poll:{id}")).await.ok().flatten().map(|l| {
            serde_json::json!({ "holder": l.holder, "expires_at_ms": l.expires_at_ms, "live": l.expires_at_ms > now })
        });
        let v = match state {
            AccountState::Ready(ctx) => serde_json::json!({
                "ready": true,
                "plugin": ctx.plugin,
                "plugin_loaded": loaded.contains(&ctx.plugin),
                "secrets_present": true,
                "breaker": breaker,
                "poller_lease": poller,
            }),
            AccountState::Refused { plugin, reasons } => {
                for r in &reasons {
                    not_ready.push(format!("accounts.{id}: {r}"));
                }
                let secrets_present = config
                    .accounts
                    .get(&id)
                    .is_some_and(|a| a.secrets.values().all(|s| s.resolve().is_ok()));
                serde_json::json!({
                    "ready": false,
                    "plugin_loaded": loaded.contains(&plugin),
                    "plugin": plugin,
                    "secrets_present": secrets_present,
                    "breaker": breaker,
                    "poller_lease": poller,
                    "reasons": reasons,
                })
            }
        };
        accounts.insert(id, v);
    }
    let ready = not_ready.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "store": if store_ok { "ok" } else { "unavailable" },
        "plugins": loaded,
        // Files whose latest version failed to load; a previous version may still be serving.
        "plugin_errors": app.runtime.load_errors(),
        "accounts": accounts,
        "not_ready": not_ready,
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// `GET /metrics`: Prometheus (OpenMetrics text). Unauthenticated like `/readyz`; it carries
/// account ids and plugin names, never a secret or a phone number.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let a = app.clone();
    let gauges = crate::metrics::StoreGauges::read(&app.store).await;
    match tokio::task::spawn_blocking(move || a.metrics.render(&a, gauges)).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
