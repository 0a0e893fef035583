//! Outbound messages → Bot API `sendMessage` / `sendPhoto` / `sendDocument` / …, and the
//! classification of the answer. Pure except [`deliver`], which takes the host as a parameter.
//!
//! * No `parse_mode` unless the message's metadata asks for one (`{"parse_mode":"HTML"}`):
//!   plain text is never mangled by Markdown parsing. Other metadata passed through:
//!   `disable_notification`, `protect_content`, `message_thread_id`, `reply_markup`,
//!   `link_preview_options`, `reply_parameters`, and `reply_to_message_id` (sent as
//!   `reply_parameters.message_id`).
//! * `migrate_to_chat_id` (a group upgraded to a supergroup): the message is re-sent to the new
//!   chat id in the same attempt, and the move is remembered in the plugin's kv
//!   (`migrated:{account}:{old}`) so later messages to the old id go straight to the new one.
//!   The provider message id (`{chat_id}:{message_id}`) names the chat it really went to.
//! * The bot token is part of every Bot API URL: it is never logged.

use serde_json::{Map, Value, json};
use switchboard_sdk::http::Request;
use switchboard_sdk::{
    DeliveryOutcome, Failure, Host, HttpError, HttpRequest, HttpResponse, LogLevel, MessageBody,
    OutboundMessage, Transient, config,
};

use crate::errors::{self, ApiError, Class};

pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Metadata keys passed to the Bot API as they are.
pub const PASSTHROUGH: [&str; 7] = [
    "parse_mode",
    "disable_notification",
    "protect_content",
    "message_thread_id",
    "reply_markup",
    "link_preview_options",
    "reply_parameters",
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

    /// `{api_base}/bot{token}/{method}`.
    pub fn method_url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.api_base.trim().trim_end_matches('/'),
            self.bot_token
        )
    }
}

/// A chat id: an i64 (users, groups, supergroups `-100…`, channels) or a `@channelusername`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    Id(i64),
    Username(String),
}

impl ChatId {
    pub fn parse(to: &str) -> Result<Self, Failure> {
        let to = to.trim();
        if let Ok(id) = to.parse::<i64>() {
            return Ok(ChatId::Id(id));
        }
        if to.len() > 1 && to.starts_with('@') {
            return Ok(ChatId::Username(to.to_string()));
        }
        Err(Failure::new(
            "invalid-recipient",
            format!("`{to}` is not a Telegram chat id (a 64-bit integer) or @channelusername"),
        ))
    }
    fn json(&self) -> Value {
        match self {
            ChatId::Id(i) => json!(i),
            ChatId::Username(u) => json!(u),
        }
    }
    fn key(&self) -> String {
        match self {
            ChatId::Id(i) => i.to_string(),
            ChatId::Username(u) => u.clone(),
        }
    }
}

/// The Bot API method and JSON body for a message to `chat`.
pub fn method_and_body(msg: &OutboundMessage, chat: &ChatId) -> Result<(&'static str, Value), Failure> {
    let mut body = Map::new();
    body.insert("chat_id".into(), chat.json());
    let method = match &msg.body {
        MessageBody::Text(text) => {
            body.insert("text".into(), json!(text));
            "sendMessage"
        }
        MessageBody::Media(m) => {
            let (method, field) = match m.kind.trim().to_ascii_lowercase().as_str() {
                "image" | "photo" => ("sendPhoto", "photo"),
                "video" => ("sendVideo", "video"),
                "audio" => ("sendAudio", "audio"),
                "voice" => ("sendVoice", "voice"),
                "sticker" => ("sendSticker", "sticker"),
                "animation" | "gif" => ("sendAnimation", "animation"),
                _ => ("sendDocument", "document"),
            };
            body.insert(field.into(), json!(m.url));
            if let Some(c) = m.caption.as_deref().filter(|c| !c.is_empty())
                && field != "sticker"
            {
                body.insert("caption".into(), json!(c));
            }
            method
        }
        MessageBody::Template(_) => {
            return Err(Failure::new(
                "unsupported-template",
                "Telegram has no message templates: send text or media",
            ));
        }
    };
    if let Some(meta) = &msg.metadata {
        let meta: Value = serde_json::from_str(meta).unwrap_or(Value::Null);
        for key in PASSTHROUGH {
            if let Some(v) = meta.get(key).filter(|v| !v.is_null()) {
                body.insert(key.into(), v.clone());
            }
        }
        if let Some(r) = meta.get("reply_to_message_id").and_then(Value::as_i64)
            && !body.contains_key("reply_parameters")
        {
            body.insert("reply_parameters".into(), json!({"message_id": r}));
        }
    }
    Ok((method, Value::Object(body)))
}

pub fn build_request(cfg: &Config, msg: &OutboundMessage, chat: &ChatId) -> Result<HttpRequest, Failure> {
    let (method, body) = method_and_body(msg, chat)?;
    Ok(Request::post(cfg.method_url(method)).json(&body).build())
}

/// What one Bot API call said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Outcome(DeliveryOutcome),
    /// Send again to this chat.
    Migrated(i64, String),
}

pub fn classify(result: Result<HttpResponse, HttpError>, chat: &ChatId) -> Answer {
    match result {
        Ok(resp) => classify_response(&resp, chat),
        Err(err) => Answer::Outcome(DeliveryOutcome::from_http_error(&err)),
    }
}

pub fn classify_response(resp: &HttpResponse, chat: &ChatId) -> Answer {
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let out = Answer::Outcome;
    if let Some(b) = &body
        && b.get("ok").and_then(Value::as_bool) == Some(true)
    {
        let message_id = b.pointer("/result/message_id").and_then(Value::as_i64);
        let chat_id = b
            .pointer("/result/chat/id")
            .and_then(Value::as_i64)
            .map_or_else(|| chat.key(), |i| i.to_string());
        return out(match message_id {
            Some(m) => DeliveryOutcome::Delivered(format!("{chat_id}:{m}")),
            None => DeliveryOutcome::permanent(
                "no-message-id",
                format!("ok:true without result.message_id: {}", snippet(&resp.body)),
            ),
        });
    }
    let Some(err) = body.as_ref().and_then(ApiError::from_body) else {
        // Not a Bot API body (proxy page, empty): decide on the HTTP status.
        return out(if resp.status == 429 {
            DeliveryOutcome::RateLimited(resp.retry_after_ms().unwrap_or(0))
        } else {
            let failure = Failure::new(
                format!("http-{}", resp.status),
                format!("HTTP {}: {}", resp.status, snippet(&resp.body)),
            );
            if resp.status >= 500 {
                DeliveryOutcome::Retry(Transient::from(failure).after(resp.retry_after_ms()))
            } else {
                DeliveryOutcome::Permanent(failure)
            }
        });
    };
    let code = if err.error_code == 0 { format!("http-{}", resp.status) } else { err.error_code.to_string() };
    match errors::classify(&err) {
        Class::Migrated(to) => Answer::Migrated(to, err.description),
        Class::RateLimited(0) => out(DeliveryOutcome::RateLimited(resp.retry_after_ms().unwrap_or(0))),
        Class::RateLimited(ms) => out(DeliveryOutcome::RateLimited(ms)),
        Class::Retryable => out(DeliveryOutcome::retry(code, err.description)),
        Class::Permanent => out(DeliveryOutcome::permanent(code, err.description)),
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

fn migration_key(account: &str, chat: &ChatId) -> String {
    format!("migrated:{account}:{}", chat.key())
}

/// The chat to send to: `to`, or where it migrated to.
pub fn resolve_chat(host: &impl Host, msg: &OutboundMessage) -> Result<ChatId, Failure> {
    let chat = ChatId::parse(&msg.to)?;
    let moved = host
        .kv_get(&migration_key(&msg.account, &chat))
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<i64>().ok());
    Ok(moved.map_or(chat, ChatId::Id))
}

/// Sends one message through the host.
pub fn deliver(host: &impl Host, msg: &OutboundMessage) -> DeliveryOutcome {
    let fail = |f: Failure| {
        host.log(LogLevel::Error, &format!("message {}: {}: {}", msg.id, f.code, f.reason));
        DeliveryOutcome::Permanent(f)
    };
    let cfg = match Config::from_host(host) {
        Ok(c) => c,
        Err(f) => return fail(f),
    };
    let mut chat = match resolve_chat(host, msg) {
        Ok(c) => c,
        Err(f) => return fail(f),
    };
    // At most one migration hop per attempt.
    for hop in 0..2 {
        let request = match build_request(&cfg, msg, &chat) {
            Ok(r) => r,
            Err(f) => return fail(f),
        };
        match classify(host.http_fetch(&request), &chat) {
            Answer::Outcome(outcome) => {
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
                return outcome;
            }
            Answer::Migrated(to, _) if hop == 0 => {
                host.log(
                    LogLevel::Info,
                    &format!("message {}: chat {} migrated to {to}; re-sending there", msg.id, chat.key()),
                );
                let original = ChatId::parse(&msg.to).unwrap_or_else(|_| chat.clone());
                host.kv_set(&migration_key(&msg.account, &original), Some(to.to_string().as_bytes()));
                if chat != original {
                    host.kv_set(&migration_key(&msg.account, &chat), Some(to.to_string().as_bytes()));
                }
                chat = ChatId::Id(to);
            }
            Answer::Migrated(to, description) => {
                return DeliveryOutcome::permanent(
                    "migrated",
                    format!("{description} (migrate_to_chat_id {to}; migrated again while re-sending)"),
                );
            }
        }
    }
    unreachable!("the loop returns on its second pass")
}
