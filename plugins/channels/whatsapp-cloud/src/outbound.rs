//! Outbound messages → Graph API `POST /{version}/{phone-number-id}/messages`, and the
//! classification of its answer. Everything here is pure except [`deliver`], which takes the
//! host as a parameter so tests can script it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
use switchboard_sdk::http::Request;
use switchboard_sdk::{
    DeliveryOutcome, Failure, Host, HttpError, HttpRequest, HttpResponse, LogLevel, MessageBody,
    OutboundMessage, Transient, config,
};

use crate::errors::{self, Class};

pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v21.0";

/// The account's configuration for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub access_token: String,
    pub phone_number_id: String,
    pub api_base: String,
    pub api_version: String,
}

impl Config {
    /// Reads the secrets and settings; a missing `access_token` or `phone_number_id` is a
    /// permanent `config` failure.
    pub fn from_host(host: &impl Host) -> Result<Self, Failure> {
        Ok(Config {
            access_token: config::require_secret(host, "access_token")?,
            phone_number_id: config::require_setting(host, "phone_number_id")?,
            // The host applies the manifest defaults; the fallbacks only matter for a host
            // that does not.
            api_base: config::setting_or(host, "api_base", DEFAULT_API_BASE),
            api_version: config::setting_or(host, "api_version", DEFAULT_API_VERSION),
        })
    }

    /// `{api_base}/{api_version}/{phone_number_id}/messages`.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/{}/{}/messages",
            self.api_base.trim().trim_end_matches('/'),
            self.api_version.trim().trim_matches('/'),
            self.phone_number_id.trim()
        )
    }
}

/// The Graph API JSON body for a message.
pub fn message_body(msg: &OutboundMessage) -> Result<Value, Failure> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": msg.to.trim(),
    });
    match &msg.body {
        MessageBody::Text(text) => {
            body["type"] = json!("text");
            body["text"] = json!({"body": text, "preview_url": false});
        }
        MessageBody::Template(t) => {
            let mut template = json!({"name": t.name, "language": {"code": t.language}});
            if let Some(components) = &t.components {
                let parsed: Value = serde_json::from_str(components).map_err(|e| {
                    Failure::new(
                        "invalid-template",
                        format!("template components are not JSON: {e}"),
                    )
                })?;
                if !parsed.is_array() {
                    return Err(Failure::new(
                        "invalid-template",
                        "template components must be a JSON array",
                    ));
                }
                template["components"] = parsed;
            }
            body["type"] = json!("template");
            body["template"] = template;
        }
        MessageBody::Media(m) => {
            let kind = m.kind.trim().to_ascii_lowercase();
            if !crate::inbound::MEDIA_TYPES.contains(&kind.as_str()) {
                return Err(Failure::new(
                    "unsupported-media",
                    format!(
                        "WhatsApp cannot send media of kind `{}` (image, audio, video, document, sticker)",
                        m.kind
                    ),
                ));
            }
            let mut media = json!({"link": m.url});
            // Audio and stickers cannot carry a caption.
            if let Some(caption) = m.caption.as_deref().filter(|c| !c.is_empty())
                && kind != "audio"
                && kind != "sticker"
            {
                media["caption"] = json!(caption);
            }
            body["type"] = json!(kind);
            body[kind.as_str()] = media;
        }
    }
    Ok(body)
}

/// A text message's body, written straight from the message: the same JSON as
/// [`message_body`] builds for it, without building a `Value` tree first (a text is nearly
/// every message, and the tree was most of the guest's time in a `deliver`).
#[derive(Serialize)]
struct TextRequest<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    text: TextContent<'a>,
}

#[derive(Serialize)]
struct TextContent<'a> {
    body: &'a str,
    preview_url: bool,
}

/// The full `http-fetch` request for a message.
pub fn build_request(cfg: &Config, msg: &OutboundMessage) -> Result<HttpRequest, Failure> {
    let request = Request::post(cfg.messages_url()).bearer(&cfg.access_token);
    if let MessageBody::Text(text) = &msg.body {
        let body = TextRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: msg.to.trim(),
            kind: "text",
            text: TextContent { body: text, preview_url: false },
        };
        let body = serde_json::to_vec(&body).expect("a text request serializes");
        return Ok(request
            .body(body)
            .header("content-type", "application/json")
            .build());
    }
    Ok(request.json(&message_body(msg)?).build())
}

/// Classifies the result of `http-fetch`.
pub fn classify(result: Result<HttpResponse, HttpError>) -> DeliveryOutcome {
    match result {
        Ok(resp) => classify_response(&resp),
        Err(err) => DeliveryOutcome::from_http_error(&err),
    }
}

/// A successful send as Meta answers it (`{"messaging_product":"whatsapp","contacts":[..],
/// "messages":[{"id":"wamid..."}]}`), read in place. Other members are skipped unread.
#[derive(Deserialize)]
struct Sent<'a> {
    #[serde(borrow)]
    messages: Vec<SentMessage<'a>>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SentMessage<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Classifies a Graph API response on its body's `error.code`, falling back to the HTTP
/// status only for codes (or bodies) we do not know.
pub fn classify_response(resp: &HttpResponse) -> DeliveryOutcome {
    // The common answer, a 2xx naming the message's id, without a `Value` tree; anything
    // else (an `error` member, no or an empty id, another shape) is read in full below.
    if resp.is_success()
        && let Ok(sent) = serde_json::from_slice::<Sent<'_>>(&resp.body)
        && sent.error.is_none()
        && let Some(first) = sent.messages.first()
        && !first.id.is_empty()
    {
        return DeliveryOutcome::Delivered(first.id.to_string());
    }
    classify_response_in_full(resp)
}

/// [`classify_response`] through a `serde_json::Value`: every shape.
pub fn classify_response_in_full(resp: &HttpResponse) -> DeliveryOutcome {
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let error = body
        .as_ref()
        .and_then(|b| b.get("error"))
        .filter(|e| e.is_object());

    if resp.is_success() && error.is_none() {
        let wamid = body
            .as_ref()
            .and_then(|b| b.pointer("/messages/0/id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        return match wamid {
            Some(id) => DeliveryOutcome::Delivered(id.to_string()),
            // Accepted but without an id: a retry could send twice, so do not retry.
            None => DeliveryOutcome::permanent(
                "no-message-id",
                format!(
                    "HTTP {} without messages[0].id: {}",
                    resp.status,
                    snippet(&resp.body)
                ),
            ),
        };
    }

    let Some(error) = error else {
        // Not a Graph API error body (proxy page, empty body, ...).
        return by_http_status(resp, || {
            Failure::new(
                format!("http-{}", resp.status),
                format!("HTTP {}: {}", resp.status, snippet(&resp.body)),
            )
        });
    };
    let class = errors::error_code(error).map_or(Class::Unknown, errors::classify_code);
    match class {
        Class::RateLimited => DeliveryOutcome::RateLimited(resp.retry_after_ms().unwrap_or(0)),
        Class::Retryable => DeliveryOutcome::Retry(failure(error).into()),
        Class::Permanent => DeliveryOutcome::Permanent(failure(error)),
        Class::Unknown => by_http_status(resp, || failure(error)),
    }
}

/// For an unknown code: HTTP 5xx or 429 is retried, anything else is permanent; either way
/// with what the answer said.
fn by_http_status(resp: &HttpResponse, failure: impl FnOnce() -> Failure) -> DeliveryOutcome {
    if resp.status >= 500 || resp.status == 429 {
        DeliveryOutcome::Retry(Transient::from(failure()).after(resp.retry_after_ms()))
    } else {
        DeliveryOutcome::Permanent(failure())
    }
}

fn failure(error: &Value) -> Failure {
    Failure::new(errors::code_string(error), errors::reason(error))
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

/// Sends one message through the host.
pub fn deliver(host: &impl Host, msg: &OutboundMessage) -> DeliveryOutcome {
    let request = match Config::from_host(host).and_then(|cfg| build_request(&cfg, msg)) {
        Ok(r) => r,
        Err(failure) => {
            host.log(
                LogLevel::Error,
                &format!("message {}: {}: {}", msg.id, failure.code, failure.reason),
            );
            return DeliveryOutcome::Permanent(failure);
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
