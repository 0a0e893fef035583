use crate::accounts::AccountState;
use crate::app::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store answers and every configured account is running; otherwise 503 with a
/// body naming what is not ready.
pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<serde_json::Value>) {
    let store_ok = app.store.inbox_len().is_ok();
    let mut ready = store_ok;
    let accounts: serde_json::Map<String, serde_json::Value> = app
        .accounts
        .iter()
        .map(|(id, state)| {
            let v = match state {
                AccountState::Ready(ctx) => {
                    let now = app.clock.now_ms();
                    let breaker = app.delivery.get(id).map_or("closed", |p| p.breaker.state(now).name());
                    serde_json::json!({ "ready": true, "plugin": ctx.plugin, "breaker": breaker })
                }
                AccountState::Refused { plugin, reasons } => {
                    ready = false;
                    serde_json::json!({ "ready": false, "plugin": plugin, "reasons": reasons })
                }
            };
            (id.clone(), v)
        })
        .collect();
    let body = serde_json::json!({
        "ready": ready,
        "store": if store_ok { "ok" } else { "unavailable" },
        "plugins": app.runtime.plugin_names(),
        // Files whose latest version failed to load; a previous version may still be serving.
        "plugin_errors": app.runtime.load_errors(),
        "accounts": accounts,
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
