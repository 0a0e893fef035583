//! Config reload (SIGHUP) without dropping traffic.
//!
//! What reloads: accounts (added, removed, changed; every `env:`/`file:` secret is read
//! again, so a rotated provider token takes effect), `api_tokens`, the delivery limits
//! (`[delivery]` batch, lease, retry, poll interval, ordering, queue cap, idempotency TTL,
//! rate limits, breaker; per-account overrides), `[inbox]` and `shutdown_timeout_ms`.
//!
//! What needs a restart (a changed value is reported and the running one stays): `listen`,
//! `data_dir`, `plugins_dir`, `max_body_bytes`, `dedupe_ttl_hours`, `[delivery] workers` and
//! `[plugins.*]` (plugin limits; the plugin *files* hot-reload on their own).
//!
//! Nothing is torn down: each piece is swapped atomically (`ArcSwap`), a request or delivery
//! in flight keeps the account and policy it started with, and an account that runs now but
//! whose new config is refused keeps running as it is.

use crate::app::App;
use crate::config::Config;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Settings that changed and apply now.
    pub applied: Vec<String>,
    /// Settings that changed but need a restart; the running values stay.
    pub needs_restart: Vec<String>,
    /// Running accounts whose new config was refused, with why; they keep running as before.
    pub kept: Vec<(String, Vec<String>)>,
    /// New or changed accounts that do not run (their webhooks answer 503), with why.
    pub refused: Vec<(String, Vec<String>)>,
}

impl ReloadReport {
    pub fn summary(&self) -> String {
        let list = |v: &[String]| if v.is_empty() { "nothing".to_string() } else { v.join(", ") };
        let mut s = format!("applied: {}", list(&self.applied));
        if !self.needs_restart.is_empty() {
            s.push_str(&format!("; needs a restart (not applied): {}", self.needs_restart.join(", ")));
        }
        if !self.kept.is_empty() {
            let ids: Vec<_> = self.kept.iter().map(|(id, _)| id.clone()).collect();
            s.push_str(&format!("; kept the running version of: {}", ids.join(", ")));
        }
        s
    }
}

/// Applies `next` to the running daemon and says what changed.
pub fn apply(app: &App, mut next: Config) -> ReloadReport {
    let running = app.current_config();
    let mut report = ReloadReport::default();
    restart_only(&running, &mut next, &mut report.needs_restart);

    let (accounts, kept) = app.accounts.resolve_for_reload(&next, &app.runtime.manifests());
    for (id, reasons) in &kept {
        // The account keeps running as configured before, policies included.
        match running.accounts.get(id) {
            Some(old) => next.accounts.insert(id.clone(), old.clone()),
            None => next.accounts.remove(id),
        };
        tracing::error!(account = %id, reasons = %reasons.join("; "), "reloaded config of account refused; it keeps running as before");
    }
    report.kept = kept;
    for (id, state) in accounts.iter() {
        let changed = running.accounts.get(&id) != next.accounts.get(&id);
        if let crate::accounts::AccountState::Refused { reasons, .. } = state
            && changed
        {
            tracing::error!(account = %id, reasons = %reasons.join("; "), "account NOT started; its webhook answers 503");
            report.refused.push((id, reasons));
        }
    }
    diff_accounts(&running, &next, &mut report.applied);
    for (id, state) in accounts.iter() {
        if let (crate::accounts::AccountState::Ready(new), Some(old)) = (&state, app.accounts.ready(&id))
            && !new.same_secrets(&old)
            && running.accounts.get(&id) == next.accounts.get(&id)
        {
            report.applied.push(format!("accounts.{id}.secrets (rotated)"));
        }
    }

    let tokens = resolve_tokens(&next);
    let tokens = if tokens.is_empty() && !next.api_tokens.is_empty() {
        tracing::error!("no api token of the reloaded config is available; keeping the running tokens");
        report.kept.push(("api_tokens".into(), vec!["no token could be resolved".into()]));
        app.api_tokens.load_full()
    } else {
        Arc::new(tokens)
    };
    if *tokens != **app.api_tokens.load() {
        report.applied.push("api_tokens".into());
    }
    diff_limits(&running, &next, &mut report.applied);

    // Policies before accounts: a worker that sees a new account must find its policy.
    let next = Arc::new(next);
    app.live.store(next.clone());
    app.api_tokens.store(tokens);
    app.delivery.rebuild(&next, &app.clock);
    app.accounts.replace(accounts);
    // New limits or accounts may let waiting work go now.
    app.outbox_wake.notify_waiters();
    report
}

/// Resolves the API tokens, logging (never printing) the ones that are not available.
pub fn resolve_tokens(config: &Config) -> Vec<crate::redact::Secret> {
    let mut out = Vec::new();
    for (i, t) in config.api_tokens.iter().enumerate() {
        match t.resolve() {
            Ok(s) => out.push(s),
            Err(e) => tracing::error!(index = i, error = %e, "api token not available; it will not be accepted"),
        }
    }
    out
}

fn restart_only(running: &Config, next: &mut Config, out: &mut Vec<String>) {
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if next.$($field).+ != running.$($field).+ {
                out.push($name.to_string());
                next.$($field).+ = running.$($field).+.clone();
            }
        };
    }
    keep!(listen, "listen");
    keep!(data_dir, "data_dir");
    keep!(plugins_dir, "plugins_dir");
    keep!(max_body_bytes, "max_body_bytes");
    keep!(dedupe_ttl_ms, "dedupe_ttl_hours");
    keep!(delivery.workers, "delivery.workers");
    keep!(plugins, "plugins");
}

fn diff_accounts(running: &Config, next: &Config, out: &mut Vec<String>) {
    for (id, a) in &next.accounts {
        match running.accounts.get(id) {
            None => out.push(format!("accounts.{id} (added)")),
            Some(old) if old != a => out.push(format!("accounts.{id}")),
            Some(_) => {}
        }
    }
    for id in running.accounts.keys().filter(|id| !next.accounts.contains_key(*id)) {
        out.push(format!("accounts.{id} (removed)"));
    }
}

fn diff_limits(running: &Config, next: &Config, out: &mut Vec<String>) {
    let (r, n) = (&running.delivery, &next.delivery);
    let fields = [
        ("delivery.batch", r.batch != n.batch),
        ("delivery.lease_ms", r.lease_ms != n.lease_ms),
        ("delivery.retry", r.retry != n.retry),
        ("delivery.poll_interval_ms", r.poll_interval_ms != n.poll_interval_ms),
        ("delivery.ordered", r.ordered != n.ordered),
        ("delivery.max_queued", r.max_queued != n.max_queued),
        ("delivery.idempotency_ttl_hours", r.idempotency_ttl_ms != n.idempotency_ttl_ms),
        ("delivery.rate_limits", r.rate_limits != n.rate_limits),
        ("delivery.breaker", r.breaker != n.breaker),
        ("inbox", running.inbox != next.inbox),
        ("shutdown_timeout_ms", running.shutdown_timeout_ms != next.shutdown_timeout_ms),
    ];
    out.extend(fields.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name.to_string()));
}
