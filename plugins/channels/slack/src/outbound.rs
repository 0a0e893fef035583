//! Outbound messages → `POST {api_base}/api/chat.postMessage` (JSON, bearer `bot_token`) and
//! the classification of the answer. Pure except [`deliver`].
//!
//! `to` is a channel id (C…, G…, D…) or a user id (U…, opens the DM). Metadata passed through:
//! `thread_ts`, `reply_broadcast`, `blocks`, `unfurl_links`, `unfurl_media`, `mrkdwn`,
//! `icon_emoji`, `icon_url`, `username`. Images are sent as an image block with the caption as
//! the notification text; other media as a link.
//! The provider message id is `{channel}:{ts}` (a `ts` is unique only within its channel).

use serde_json::{Map, Value, json};
use switchboard_sdk::http::Request;
use switchboard_sdk::{
    DeliveryOutcome, Failure, Host, HttpError, HttpRequest, HttpResponse, LogLevel, MessageBody,
    OutboundMessage, Transient, config,
};

use crate::errors::{self, Class};

pub const DEFAULT_API_BASE: &str = "https://slack.com";

pub const PASSTHROUGH: [&str; 9] = [
    "thread_ts",
    "reply_broadcast",
    "blocks",
    "unfurl_links",
    "unfurl_media",
    "mrkdwn",
    "icon_emoji",
    "icon_url",
    "username",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bot_token: String,
    pub api_base: String,
}

impl Config {
    pub fn from_host(host: &impl Host) -> Result<Self, Failure> {
        Ok(Config {
            bot_token: config::require_secret(host, "bot_token")?.trim().to_string(),
            api_base: config::setting_or(host, "api_base", DEFAULT_API_BASE),
        })
    }

    pub fn post_message_url(&self) -> String {
        format!("{}/api/chat.postMessage", self.api_base.trim().trim_end_matches('/'))
    }
}

pub fn message_body(msg: &OutboundMessage) -> Result<Value, Failure> {
    let mut body = Map::new();
    body.insert("channel".into(), json!(msg.to.trim()));
    match &msg.body {
        MessageBody::Text(text) => {
            body.insert("text".into(), json!(text));
        }
        MessageBody::Media(m) => {
            let caption = m.caption.as_deref().filter(|c| !c.is_empty());
            if m.kind.eq_ignore_ascii_case("image") {
                body.insert("text".into(), json!(caption.unwrap_or(&m.url)));
                body.insert(
                    "blocks".into(),
                    json!([{"type": "image", "image_url": m.url, "alt_text": caption.unwrap_or("image")}]),
                );
            } else {
                let text = match caption {
                    Some(c) => format!("<{}|{}>", m.url, c),
                    None => m.url.clone(),
                };
                body.insert("text".into(), json!(text));
            }
        }
        MessageBody::Template(_) => {
            return Err(Failure::new(
                "unsupported-template",
                "Slack has no message templates: send text (or blocks in metadata)",
            ));
        }
    }
    if let Some(meta) = &msg.metadata {
        let meta: Value = serde_json::from_str(meta).unwrap_or(Value::Null);
        for key in PASSTHROUGH {
            if let Some(v) = meta.get(key).filter(|v| !v.is_null()) {
                body.insert(key.into(), v.clone());
            }
        }
    }
    Ok(Value::Object(body))
}

pub fn build_request(cfg: &Config, msg: &OutboundMessage) -> Result<HttpRequest, Failure> {
    let body = message_body(msg)?;
    let mut req = Request::post(cfg.post_message_url()).bearer(&cfg.bot_token).json(&body).build();
    // Slack warns (`missing_charset`) without it.
    for (k, v) in req.headers.iter_mut() {
        if k == "content-type" {
            *v = "application/json; charset=utf-8".into();
        }
    }
    Ok(req)
}

pub fn classify(result: Result<HttpResponse, HttpError>) -> DeliveryOutcome {
    match result {
        Ok(resp) => classify_response(&resp),
        Err(err) => DeliveryOutcome::from_http_error(&err),
    }
}

pub fn classify_response(resp: &HttpResponse) -> DeliveryOutcome {
    let retry_after = resp.retry_after_ms();
    if resp.status == 429 {
        return DeliveryOutcome::RateLimited(retry_after.unwrap_or(0));
    }
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let ok = body.as_ref().and_then(|b| b.get("ok")).and_then(Value::as_bool);
    if resp.is_success() && ok == Some(true) {
        let b = body.as_ref().expect("ok implies a body");
        let channel = b.get("channel").and_then(Value::as_str).unwrap_or("");
        return match b.get("ts").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(ts) => DeliveryOutcome::Delivered(format!("{channel}:{ts}")),
            None => DeliveryOutcome::permanent("no-message-id", "ok:true without `ts`"),
        };
    }
    let Some(error) = body.as_ref().and_then(|b| b.get("error")).and_then(Value::as_str) else {
        let failure = Failure::new(
            format!("http-{}", resp.status),
            format!("HTTP {}: {}", resp.status, snippet(&resp.body)),
        );
        return if resp.status >= 500 {
            DeliveryOutcome::Retry(Transient::from(failure).after(retry_after))
        } else {
            DeliveryOutcome::Permanent(failure)
        };
    };
    let failure = || {
        let mut reason = errors::meaning(error).unwrap_or("Slack returned an error").to_string();
        if let Some(needed) = body.as_ref().and_then(|b| b.get("needed")).and_then(Value::as_str) {
            reason.push_str(&format!(" (needed: {needed})"));
        }
        Failure::new(error, reason)
    };
    match errors::classify(error) {
        Class::RateLimited => DeliveryOutcome::RateLimited(retry_after.unwrap_or(0)),
        Class::Retryable => DeliveryOutcome::Retry(Transient::from(failure()).after(retry_after)),
        Class::Permanent => DeliveryOutcome::Permanent(failure()),
        Class::Unknown if resp.status >= 500 => {
            DeliveryOutcome::Retry(Transient::from(failure()).after(retry_after))
        }
        Class::Unknown => DeliveryOutcome::Permanent(failure()),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

pub fn deliver(host: &impl Host, msg: &OutboundMessage) -> DeliveryOutcome {
    let request = match Config::from_host(host).and_then(|cfg| build_request(&cfg, msg)) {
        Ok(r) => r,
        Err(f) => {
            host.log(LogLevel::Error, &format!("message {}: {}: {}", msg.id, f.code, f.reason));
            return DeliveryOutcome::Permanent(f);
        }
    };
    let outcome = classify(host.http_fetch(&request));
    match &outcome {
        DeliveryOutcome::Delivered(_) => {}
        DeliveryOutcome::Permanent(f) => host.log(
            LogLevel::Warn,
            &format!("message {} failed: {} {}", msg.id, f.code, f.reason),
        ),
        other => host.log(
            LogLevel::Info,
            &format!("message {} attempt {}: {other:?}", msg.id, msg.attempt),
        ),
    }
    outcome
}
