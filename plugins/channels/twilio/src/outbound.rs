//! Outbound messages → `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json`
//! (form-encoded, HTTP Basic `account_sid:auth_token`), and the classification of the answer.
//! Pure except [`deliver`], which takes the host as a parameter so tests can script it.
//!
//! Idempotency: Twilio's message create has no idempotency key, so a 5xx, a timeout or a reset
//! connection leaves it unknown whether the message went out. Default: retry (at-least-once;
//! the outbox backs off). With the setting `at_most_once = "true"` those outcomes are permanent
//! (`ambiguous`) instead, for accounts where a duplicate is worse than a loss. A 429 or a
//! throttling code (20429, 63017, 63018, …) is always safe to retry: nothing was sent.

use base64::Engine as _;
use serde_json::Value;
use switchboard_sdk::http::Request;
use switchboard_sdk::{
    DeliveryOutcome, Failure, Host, HttpError, HttpRequest, HttpResponse, LogLevel, MessageBody,
    OutboundMessage, Transient, config,
};

use crate::errors::{self, Class};

pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `From`: a number, short code, or `whatsapp:+…`.
    From(String),
    /// `MessagingServiceSid`.
    Service(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub account_sid: String,
    pub auth_token: String,
    pub sender: Sender,
    pub status_callback: Option<String>,
    pub at_most_once: bool,
    pub api_base: String,
}

impl Config {
    pub fn from_host(host: &impl Host) -> Result<Self, Failure> {
        let account_sid = config::require_setting(host, "account_sid")?;
        let auth_token = config::require_secret(host, "auth_token")?;
        let non_empty = |name: &str| host.setting(name).filter(|v| !v.trim().is_empty());
        let sender = match (non_empty("messaging_service_sid"), non_empty("from")) {
            (Some(mg), _) => Sender::Service(mg.trim().to_string()),
            (None, Some(from)) => Sender::From(from.trim().to_string()),
            (None, None) => {
                return Err(Failure::new(
                    "config",
                    "the account has neither a `from` nor a `messaging_service_sid` setting",
                ));
            }
        };
        Ok(Config {
            account_sid: account_sid.trim().to_string(),
            auth_token,
            sender,
            status_callback: non_empty("status_callback"),
            at_most_once: non_empty("at_most_once").is_some_and(|v| v.trim() == "true"),
            api_base: config::setting_or(host, "api_base", DEFAULT_API_BASE),
        })
    }

    pub fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base.trim().trim_end_matches('/'),
            self.account_sid
        )
    }

    /// `Basic base64(account_sid:auth_token)`.
    pub fn authorization(&self) -> String {
        let raw = format!("{}:{}", self.account_sid, self.auth_token);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// The recipient as Twilio wants it: sending from `whatsapp:+…` needs `whatsapp:` on the
    /// recipient too, so a bare number gets the sender's channel prefix.
    pub fn recipient(&self, to: &str) -> String {
        let to = to.trim();
        if let Sender::From(from) = &self.sender
            && let Some((prefix, _)) = from.split_once(':')
            && !to.contains(':')
        {
            return format!("{prefix}:{to}");
        }
        to.to_string()
    }
}

/// The form parameters of a message create.
pub fn form_params(cfg: &Config, msg: &OutboundMessage) -> Result<Vec<(String, String)>, Failure> {
    let mut p: Vec<(String, String)> = vec![("To".into(), cfg.recipient(&msg.to))];
    match &cfg.sender {
        Sender::From(f) => p.push(("From".into(), f.clone())),
        Sender::Service(s) => p.push(("MessagingServiceSid".into(), s.clone())),
    }
    match &msg.body {
        MessageBody::Text(text) => p.push(("Body".into(), text.clone())),
        MessageBody::Media(m) => {
            if let Some(c) = m.caption.as_deref().filter(|c| !c.is_empty()) {
                p.push(("Body".into(), c.to_string()));
            }
            p.push(("MediaUrl".into(), m.url.clone()));
        }
        MessageBody::Template(t) => {
            // Twilio templates are Content API resources: `name` is the Content SID (HX…),
            // `components` the ContentVariables object ({"1":"Ada"}).
            if !t.name.starts_with("HX") {
                return Err(Failure::new(
                    "invalid-template",
                    format!(
                        "Twilio templates are sent by Content SID (HX…); `{}` is not one",
                        t.name
                    ),
                ));
            }
            p.push(("ContentSid".into(), t.name.clone()));
            if let Some(vars) = &t.components {
                let parsed: Value = serde_json::from_str(vars).map_err(|e| {
                    Failure::new("invalid-template", format!("template components are not JSON: {e}"))
                })?;
                if !parsed.is_object() {
                    return Err(Failure::new(
                        "invalid-template",
                        "Twilio ContentVariables must be a JSON object such as {\"1\":\"Ada\"}",
                    ));
                }
                p.push(("ContentVariables".into(), parsed.to_string()));
            }
        }
    }
    if let Some(cb) = &cfg.status_callback {
        p.push(("StatusCallback".into(), cb.clone()));
    }
    Ok(p)
}

pub fn build_request(cfg: &Config, msg: &OutboundMessage) -> Result<HttpRequest, Failure> {
    let params = form_params(cfg, msg)?;
    Ok(Request::post(cfg.messages_url())
        .header("authorization", cfg.authorization())
        .header("accept", "application/json")
        .form(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .build())
}

/// Classifies the result of `http-fetch`.
pub fn classify(result: Result<HttpResponse, HttpError>, at_most_once: bool) -> DeliveryOutcome {
    match result {
        Ok(resp) => classify_response(&resp, at_most_once),
        Err(HttpError::Timeout | HttpError::Transport(_)) if at_most_once => {
            DeliveryOutcome::permanent(
                "ambiguous",
                "no answer from Twilio: the message may have been sent (at_most_once is set, so it is not retried)",
            )
        }
        Err(err) => DeliveryOutcome::from_http_error(&err),
    }
}

/// Classifies a Messages API answer on its `code`, then on the HTTP status.
pub fn classify_response(resp: &HttpResponse, at_most_once: bool) -> DeliveryOutcome {
    let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if resp.is_success() {
        let sid = body
            .as_ref()
            .and_then(|b| b.get("sid"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        return match sid {
            Some(sid) => DeliveryOutcome::Delivered(sid.to_string()),
            // Accepted without a sid: retrying could send twice.
            None => DeliveryOutcome::permanent(
                "no-message-id",
                format!("HTTP {} without a sid: {}", resp.status, snippet(&resp.body)),
            ),
        };
    }
    let code = body.as_ref().and_then(|b| b.get("code")).and_then(|c| match c {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let failure = || {
        let code_s = code.map_or_else(|| format!("http-{}", resp.status), |c| c.to_string());
        let reason = message
            .clone()
            .or_else(|| code.and_then(errors::meaning).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {}: {}", resp.status, snippet(&resp.body)));
        Failure::new(code_s, reason)
    };
    let retry_after = resp.retry_after_ms();
    let ambiguous = |f: Failure| {
        DeliveryOutcome::permanent(
            "ambiguous",
            format!(
                "{} {}: the message may have been sent (at_most_once is set, so it is not retried)",
                f.code, f.reason
            ),
        )
    };
    match code.map_or(Class::Unknown, errors::classify_code) {
        Class::RateLimited => DeliveryOutcome::RateLimited(retry_after.unwrap_or(0)),
        Class::Retryable if at_most_once && resp.status >= 500 => ambiguous(failure()),
        Class::Retryable => DeliveryOutcome::Retry(Transient::from(failure()).after(retry_after)),
        Class::Permanent => DeliveryOutcome::Permanent(failure()),
        Class::Unknown if resp.status == 429 => {
            DeliveryOutcome::RateLimited(retry_after.unwrap_or(0))
        }
        Class::Unknown if resp.status >= 500 && at_most_once => ambiguous(failure()),
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

/// Sends one message through the host.
pub fn deliver(host: &impl Host, msg: &OutboundMessage) -> DeliveryOutcome {
    let prepared = Config::from_host(host).and_then(|cfg| build_request(&cfg, msg).map(|r| (cfg, r)));
    let (cfg, request) = match prepared {
        Ok(p) => p,
        Err(failure) => {
            host.log(
                LogLevel::Error,
                &format!("message {}: {}: {}", msg.id, failure.code, failure.reason),
            );
            return DeliveryOutcome::Permanent(failure);
        }
    };
    let outcome = classify(host.http_fetch(&request), cfg.at_most_once);
    match &outcome {
        DeliveryOutcome::Delivered(_) => {}
        DeliveryOutcome::Permanent(f) => host.log(
            LogLevel::Warn,
            &format!("message {} failed: {} {}", msg.id, f.code, f.reason),
        ),
        DeliveryOutcome::Retry(_) => host.log(
            LogLevel::Warn,
            &format!(
                "message {} attempt {}: retrying; Twilio may already have sent it (not idempotent)",
                msg.id, msg.attempt
            ),
        ),
        other => host.log(
            LogLevel::Info,
            &format!("message {} attempt {}: {other:?}", msg.id, msg.attempt),
        ),
    }
    outcome
}
