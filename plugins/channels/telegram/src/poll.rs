//! Long-poll mode: `getUpdates` instead of a webhook. The host runs one poller per account
//! under the account's lease (so one bot token is never polled twice at once, which Telegram
//! answers with 409 Conflict) and commits the returned cursor in the same store transaction as
//! the events.
//!
//! The cursor is the next `offset`: the highest `update_id` seen + 1. Passing it to
//! `getUpdates` confirms everything before it, so an update is confirmed to Telegram only after
//! the host has durably stored it (a crash in between re-delivers it, and the `update_id`
//! dedupe key makes that harmless).
//!
//! Settings: `poll_timeout_secs` (the long-poll wait, default 25; 0 = short polling) and
//! `poll_limit` (1-100, default 100). A webhook must not be set for the bot (Telegram refuses
//! getUpdates with 409 while one is).

use serde_json::{Value, json};
use switchboard_sdk::http::Request;
use switchboard_sdk::{Host, InboundEvent, LogLevel, config};

use crate::errors::ApiError;
use crate::inbound::parse_update;
use crate::outbound::Config;

/// What one `getUpdates` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<InboundEvent>,
    /// The next offset; the one passed in when nothing new arrived.
    pub cursor: Option<String>,
}

/// One `getUpdates` after `cursor`.
pub fn poll(host: &impl Host, cursor: Option<&str>) -> Result<Batch, String> {
    let cfg = Config::from_host(host).map_err(|f| f.reason)?;
    let timeout: u64 = config::setting_or(host, "poll_timeout_secs", "25").trim().parse().unwrap_or(25).min(50);
    let limit: u64 = config::setting_or(host, "poll_limit", "100").trim().parse().unwrap_or(100).clamp(1, 100);
    let offset = match cursor {
        Some(c) => Some(c.trim().parse::<i64>().map_err(|_| format!("cursor `{c}` is not an update offset"))?),
        None => None,
    };
    let mut body = json!({"timeout": timeout, "limit": limit});
    if let Some(o) = offset {
        body["offset"] = json!(o);
    }
    let request = Request::post(cfg.method_url("getUpdates"))
        .json(&body)
        .timeout_ms(((timeout + 10) * 1000) as u32)
        .build();
    // Errors name the method, never the URL (it carries the bot token).
    let resp = host.http_fetch(&request).map_err(|e| format!("getUpdates: {e:?}"))?;
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if let Some(err) = parsed.as_ref().and_then(ApiError::from_body) {
        let hint = if err.error_code == 409 { " (delete the bot's webhook, or another poller is running)" } else { "" };
        return Err(format!("getUpdates: {} {}{hint}", err.error_code, err.description));
    }
    let updates = parsed
        .as_ref()
        .filter(|v| v.get("ok").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("result"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("getUpdates: HTTP {} without a result", resp.status))?;

    let mut events = Vec::with_capacity(updates.len());
    let mut next = offset;
    for update in updates {
        if let Some(id) = update.get("update_id").and_then(Value::as_i64) {
            next = Some(next.map_or(id + 1, |n: i64| n.max(id + 1)));
        }
        match parse_update(update) {
            Ok(e) => events.push(e),
            Err(e) => host.log(LogLevel::Warn, &format!("getUpdates: skipped an update: {e:?}")),
        }
    }
    Ok(Batch { events, cursor: next.map(|n| n.to_string()).or_else(|| cursor.map(str::to_string)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::testing::MockHost;
    use switchboard_sdk::{HttpError, HttpResponse};

    const TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn host() -> MockHost {
        MockHost::new().secret("bot_token", TOKEN).setting("api_base", "https://api.telegram.org")
    }

    fn updates(ids: &[i64]) -> String {
        let result: Vec<Value> = ids
            .iter()
            .map(|i| json!({"update_id": i, "message": {"message_id": i, "chat": {"id": 42, "type": "private"}, "from": {"id": 42}, "date": 1749416383, "text": format!("m{i}")}}))
            .collect();
        json!({"ok": true, "result": result}).to_string()
    }

    #[test]
    fn first_poll_has_no_offset_and_the_cursor_is_the_next_one() {
        let h = host().setting("poll_timeout_secs", "0").respond(Ok(HttpResponse::new(200, updates(&[10, 12, 11]))));
        let b = poll(&h, None).unwrap();
        assert_eq!(b.events.len(), 3);
        assert_eq!(b.events[0].provider_event_id, "10");
        assert_eq!(b.cursor.as_deref(), Some("13"));
        let req = &h.requests()[0];
        assert_eq!(req.url, format!("https://api.telegram.org/bot{TOKEN}/getUpdates"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, json!({"timeout": 0, "limit": 100}));
    }

    #[test]
    fn later_polls_pass_the_offset_and_keep_it_when_nothing_arrives() {
        let h = host().respond(Ok(HttpResponse::new(200, updates(&[]))));
        let b = poll(&h, Some("13")).unwrap();
        assert!(b.events.is_empty());
        assert_eq!(b.cursor.as_deref(), Some("13"));
        let req = &h.requests()[0];
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["offset"], 13);
        assert_eq!(body["timeout"], 25);
        assert_eq!(req.timeout_ms, Some(35_000));
    }

    #[test]
    fn errors_never_carry_the_token() {
        let conflict = r#"{"ok":false,"error_code":409,"description":"Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}"#;
        let h = host().respond(Ok(HttpResponse::new(409, conflict)));
        let e = poll(&h, None).unwrap_err();
        assert!(e.contains("409") && e.contains("webhook"), "{e}");
        let h = host().respond(Err(HttpError::Transport("connection reset".into())));
        let e = poll(&h, None).unwrap_err();
        assert!(!e.contains(TOKEN), "{e}");
        let h = host().respond(Ok(HttpResponse::new(502, "<html>")));
        assert!(poll(&h, None).unwrap_err().contains("502"));
        assert!(poll(&host(), Some("x")).unwrap_err().contains("cursor"));
        assert!(poll(&MockHost::new(), None).is_err());
    }
}
