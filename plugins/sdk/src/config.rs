//! Required secrets and settings of the account a call is for.
//!
//! A missing value is a configuration problem that no retry will fix, so the error is a
//! [`Failure`] with code `"config"`, ready to return as `DeliveryOutcome::Permanent`.

use crate::{Failure, Host};

/// The `config` failure for a missing secret or setting.
pub fn missing(what: &str, name: &str) -> Failure {
    Failure::new(
        "config",
        format!("the account has no `{name}` {what} configured"),
    )
}

/// A secret that must be present and non-empty.
pub fn require_secret(host: &impl Host, name: &str) -> Result<String, Failure> {
    non_empty(host.secret(name)).ok_or_else(|| missing("secret", name))
}

/// A setting that must be present and non-empty (the host already applied manifest defaults).
pub fn require_setting(host: &impl Host, name: &str) -> Result<String, Failure> {
    non_empty(host.setting(name)).ok_or_else(|| missing("setting", name))
}

/// A setting with a fallback, for hosts that do not apply manifest defaults.
pub fn setting_or(host: &impl Host, name: &str, default: &str) -> String {
    non_empty(host.setting(name)).unwrap_or_else(|| default.to_string())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}
