//! Metrics at `/metrics` (prometheus-client, OpenMetrics text format) and the typed internal
//! events that move them.
//!
//! As in Vector, each thing worth counting is a small struct whose `emit` writes the log line
//! **and** moves the metric, so an instrumented call site is one line and logs and metrics
//! never disagree. Gauges that describe state (outbox depth and lag, DLQ size, breaker states,
//! plugin call/failure totals from [`crate::runtime::Runtime::stats`]) are read when scraped
//! ([`Metrics::render`]).
//!
//! Labels never carry a phone number, a chat id or a secret: only account ids, plugin names,
//! provider error codes and fixed words. Unknown accounts share one label value, so a flood of
//! webhooks to random URLs cannot grow the label set.

use crate::app::App;
use crate::inbound::{InboundError, Received};
use crate::ratelimit::Scope;
use crate::redact::mask_phone;
use crate::runtime::PluginStats;
use crate::store::{Attempt, OutboxCensus, OutboxRow};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `account` label of webhooks to accounts that do not exist.
pub const UNKNOWN_ACCOUNT: &str = "(unknown)";

/// OpenMetrics text, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabel {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InboundLabels {
    account: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    account: String,
    outcome: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeferLabels {
    account: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    account: String,
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCallLabels {
    plugin: String,
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14)) // 50 ms … ~7 min
}

fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16)) // 0.5 ms … ~16 s
}

/// Every metric of one daemon.
pub struct Metrics {
    registry: Registry,
    inbound: Family<InboundLabels, Counter>,
    events_stored: Family<AccountLabel, Counter>,
    dedupe_hits: Family<AccountLabel, Counter>,
    status_updates: Family<AccountLabel, Counter>,
    messages_queued: Family<AccountLabel, Counter>,
    delivery_latency: Histograms<AccountLabel>,
    attempts: Family<AttemptLabels, Counter>,
    deferrals: Family<DeferLabels, Counter>,
    rate_limit_waits: Family<ScopeLabels, Counter>,
    dead_lettered: Family<AccountLabel, Counter>,
    plugin_call_duration: Histograms<PluginCallLabels>,
    lease_grants: Family<QueueLabel, Counter>,
    lease_steals: Family<QueueLabel, Counter>,
    lease_expiries: Family<QueueLabel, Counter>,
    commit_duration: Histogram,
    commit_batch: Histogram,
    reloads: Family<ResultLabel, Counter>,
    /// State read at scrape time, encoded by [`Scraped`]'s collector.
    scraped: Arc<Mutex<Scraped>>,
    /// One scrape at a time: the snapshot is refreshed and encoded under it.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("switchboard");
        let m = Self {
            inbound: Family::default(),
            events_stored: Family::default(),
            dedupe_hits: Family::default(),
            status_updates: Family::default(),
            messages_queued: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_buckets as fn() -> Histogram),
            attempts: Family::default(),
            deferrals: Family::default(),
            rate_limit_waits: Family::default(),
            dead_lettered: Family::default(),
            plugin_call_duration: Family::new_with_constructor(call_buckets as fn() -> Histogram),
            lease_grants: Family::default(),
            lease_steals: Family::default(),
            lease_expiries: Family::default(),
            commit_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)), // 0.1 ms … ~3 s
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 11)),       // 1 … 1024
            reloads: Family::default(),
            scraped: Arc::new(Mutex::new(Scraped::default())),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        r.register("build", "Version of the running daemon", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        r.register("inbound_requests", "Webhook POSTs by account and result", m.inbound.clone());
        r.register("events_stored", "Inbound events durably stored in the inbox", m.events_stored.clone());
        r.register("dedupe_hits", "Inbound events dropped as duplicates of ones already stored", m.dedupe_hits.clone());
        r.register("status_updates", "Provider status webhooks applied to outbound messages", m.status_updates.clone());
        r.register("messages_queued", "Outbound messages accepted by POST /v1/messages", m.messages_queued.clone());
        r.register(
            "delivery_latency_seconds",
            "From accepting an outbound message to the provider accepting it",
            m.delivery_latency.clone(),
        );
        r.register("delivery_attempts", "Delivery attempts by outcome and provider error code", m.attempts.clone());
        r.register(
            "delivery_deferrals",
            "Deliveries put back without an attempt (rate limit, open circuit, account down)",
            m.deferrals.clone(),
        );
        r.register("rate_limit_waits", "Deliveries that had to wait for a rate limit, by limit", m.rate_limit_waits.clone());
        r.register("dead_lettered", "Outbound messages moved to the dead-letter queue", m.dead_lettered.clone());
        r.register(
            "plugin_call_duration_seconds",
            "Wall time of plugin calls made by the delivery workers",
            m.plugin_call_duration.clone(),
        );
        r.register("lease_grants", "Leases granted (outbox: messages claimed by workers; inbox: events claimed)", m.lease_grants.clone());
        r.register("lease_steals", "Work whose lease was taken over by another holder before it finished", m.lease_steals.clone());
        r.register("lease_expiries", "Claims of work whose previous lease ran out", m.lease_expiries.clone());
        r.register("store_commit_duration_seconds", "Group-commit transaction time (fsync included)", m.commit_duration.clone());
        r.register("store_commit_batch_size", "Write requests per group commit", m.commit_batch.clone());
        r.register("config_reloads", "Config reloads (SIGHUP) by result", m.reloads.clone());
        r.register_collector(Box::new(ScrapedCollector(m.scraped.clone())));
        Self { registry: r, ..m }
    }

    /// For [`crate::store::Store::on_commit`].
    pub fn commit_observer(self: &Arc<Self>) -> crate::store::CommitObserver {
        let m = Arc::downgrade(self);
        Arc::new(move |took: Duration, batch: usize| {
            if let Some(m) = m.upgrade() {
                m.commit_duration.observe(took.as_secs_f64());
                m.commit_batch.observe(batch as f64);
            }
        })
    }

    /// Hook for plugin calls timed outside the delivery workers (e.g. by the runtime itself).
    pub fn plugin_call(&self, plugin: &str, call: &'static str, took: Duration) {
        self.plugin_call_duration.get_or_create(&PluginCallLabels { plugin: plugin.to_string(), call }).observe(took.as_secs_f64());
    }

    /// Encodes every metric, with the store's gauges read just before (see
    /// [`StoreGauges::read`]) and the rest read from `app` now.
    pub fn render(&self, app: &App, store: StoreGauges) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Scraped::read(app, store);
        *self.scraped.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Typed events: one line at the call site, the log line and the metric here.

/// A webhook POST was answered.
pub struct WebhookReceived<'a> {
    pub account: &'a str,
    pub result: &'static str,
    pub stored: usize,
    pub duplicates: usize,
    pub status_updates: usize,
}

impl<'a> WebhookReceived<'a> {
    pub fn of(account: &'a str, r: &Result<Received, InboundError>) -> Self {
        let mut ev = Self { account, result: "accepted", stored: 0, duplicates: 0, status_updates: 0 };
        match r {
            Ok(Received::Stored(o)) => {
                (ev.stored, ev.duplicates, ev.status_updates) = (o.stored, o.duplicates, o.status_updates);
                if o.stored == 0 && o.duplicates > 0 {
                    ev.result = "duplicate";
                }
            }
            Ok(Received::Answered(_)) => ev.result = "handshake",
            Err(e) => ev.result = inbound_error_label(e),
        }
        if ev.result == "unknown_account" {
            ev.account = UNKNOWN_ACCOUNT;
        }
        ev
    }

    /// Counts it; the handler writes the log line.
    pub fn emit(self, m: &Metrics) {
        let account = self.account.to_string();
        m.inbound.get_or_create(&InboundLabels { account: account.clone(), result: self.result }).inc();
        let a = AccountLabel { account };
        if self.stored > 0 {
            m.events_stored.get_or_create(&a).inc_by(self.stored as u64);
        }
        if self.duplicates > 0 {
            m.dedupe_hits.get_or_create(&a).inc_by(self.duplicates as u64);
        }
        if self.status_updates > 0 {
            m.status_updates.get_or_create(&a).inc_by(self.status_updates as u64);
        }
    }
}

#[allow(unreachable_patterns)]
fn inbound_error_label(e: &InboundError) -> &'static str {
    match e {
        InboundError::UnknownAccount(_) => "unknown_account",
        InboundError::NotReady { .. } => "account_not_ready",
        InboundError::Verify(_) => "invalid_signature",
        InboundError::HandshakeRejected => "handshake_rejected",
        InboundError::NotHandshake => "not_a_handshake",
        InboundError::Parse(_) => "unparseable",
        InboundError::Plugin(_) => "plugin_error",
        InboundError::Store(_) => "store_error",
        _ => "other",
    }
}

/// `POST /v1/messages` queued a new message.
pub struct MessageQueued<'a>(pub &'a OutboxRow);

impl MessageQueued<'_> {
    pub fn emit(self, m: &Metrics) {
        let row = self.0;
        tracing::info!(message_id = %row.id, account = %row.account, to = %mask_phone(&row.to), correlation_id = %row.correlation_id, "message queued");
        m.messages_queued.get_or_create(&AccountLabel { account: row.account.clone() }).inc();
    }
}

/// A delivery worker claimed messages.
pub struct OutboxClaimed {
    pub claimed: usize,
    pub reclaimed: usize,
}

impl OutboxClaimed {
    pub fn emit(self, m: &Metrics) {
        if self.reclaimed > 0 {
            tracing::info!(reclaimed = self.reclaimed, "messages claimed again after their lease ran out");
        }
        m.lease_grants.get_or_create(&QueueLabel { queue: "outbox" }).inc_by(self.claimed as u64);
        m.lease_expiries.get_or_create(&QueueLabel { queue: "outbox" }).inc_by(self.reclaimed as u64);
    }
}

/// Why a claimed message went back to the queue without an attempt.
#[derive(Debug, Clone, Copy)]
pub enum Deferral {
    RateLimit(Scope),
    CircuitOpen,
    AccountDown,
    /// Every sandbox instance was in use (`CallError::Busy`).
    SandboxBusy,
}

pub struct DeliveryDeferred<'a> {
    pub account: &'a str,
    pub why: Deferral,
    pub wait_ms: u64,
}

impl DeliveryDeferred<'_> {
    pub fn emit(self, m: &Metrics) {
        let account = self.account.to_string();
        let reason = match self.why {
            Deferral::RateLimit(scope) => {
                tracing::debug!(wait_ms = self.wait_ms, ?scope, "rate limited; rescheduled");
                let scope = match scope {
                    Scope::Account => "account",
                    Scope::Recipient => "recipient",
                    Scope::Conversation => "conversation",
                };
                m.rate_limit_waits.get_or_create(&ScopeLabels { account: account.clone(), scope }).inc();
                "rate_limit"
            }
            Deferral::CircuitOpen => {
                tracing::debug!(wait_ms = self.wait_ms, "circuit open; rescheduled");
                "circuit_open"
            }
            Deferral::SandboxBusy => {
                tracing::warn!(account = %self.account, wait_ms = self.wait_ms, "no sandbox instance free; rescheduled");
                "sandbox_busy"
            }
            Deferral::AccountDown => {
                tracing::warn!(account = %self.account, "account is not running; message waits");
                "account_down"
            }
        };
        m.deferrals.get_or_create(&DeferLabels { account, reason }).inc();
    }
}

/// One delivery attempt finished (the plugin call returned or failed).
pub struct DeliveryAttempted<'a> {
    pub row: &'a OutboxRow,
    pub plugin: &'a str,
    pub attempt: &'a Attempt,
    /// Wall time of the plugin's `deliver` call.
    pub call: Duration,
    /// The provider accepted the message.
    pub delivered: bool,
    pub now_ms: u64,
}

impl DeliveryAttempted<'_> {
    pub fn emit(self, m: &Metrics) {
        let (row, a) = (self.row, self.attempt);
        tracing::info!(
            account = %row.account, to = %mask_phone(&row.to), attempt = a.number, outcome = %a.outcome,
            code = a.code.as_deref().unwrap_or(""), "delivery attempt"
        );
        let account = row.account.clone();
        m.attempts
            .get_or_create(&AttemptLabels { account: account.clone(), outcome: a.outcome.clone(), code: a.code.clone().unwrap_or_default() })
            .inc();
        m.plugin_call(self.plugin, "deliver", self.call);
        if self.delivered {
            let secs = self.now_ms.saturating_sub(row.created_at_ms) as f64 / 1_000.0;
            m.delivery_latency.get_or_create(&AccountLabel { account }).observe(secs);
        }
    }
}

/// A message's attempts are over: it is in the dead-letter queue.
pub struct DeadLettered<'a> {
    pub account: &'a str,
}

impl DeadLettered<'_> {
    pub fn emit(self, m: &Metrics) {
        tracing::warn!("message dead-lettered");
        m.dead_lettered.get_or_create(&AccountLabel { account: self.account.to_string() }).inc();
    }
}

/// Work this process held was taken over under a newer lease (it stalled past its lease).
pub struct LeaseLost {
    pub queue: &'static str,
    pub message: &'static str,
}

impl LeaseLost {
    pub fn emit(self, m: &Metrics) {
        tracing::warn!("{}", self.message);
        m.lease_steals.get_or_create(&QueueLabel { queue: self.queue }).inc();
    }
}

/// An agent claimed inbox events.
pub struct InboxClaimed {
    pub events: usize,
    pub expired: usize,
}

impl InboxClaimed {
    pub fn emit(self, m: &Metrics) {
        tracing::debug!(events = self.events, expired_leases = self.expired, "inbox claimed");
        m.lease_grants.get_or_create(&QueueLabel { queue: "inbox" }).inc_by(self.events as u64);
        m.lease_expiries.get_or_create(&QueueLabel { queue: "inbox" }).inc_by(self.expired as u64);
    }
}

/// An ack or nack named events its lease no longer holds (the lease ran out and another
/// consumer claimed them).
pub struct InboxSettleRejected {
    pub rejected: usize,
}

impl InboxSettleRejected {
    pub fn emit(self, m: &Metrics) {
        if self.rejected > 0 {
            tracing::info!(rejected = self.rejected, "ack/nack refused for events not held under this lease");
            m.lease_steals.get_or_create(&QueueLabel { queue: "inbox" }).inc_by(self.rejected as u64);
        }
    }
}

/// A SIGHUP reload was applied (`ok`) or refused.
pub struct ConfigReloaded {
    pub ok: bool,
}

impl ConfigReloaded {
    pub fn emit(self, m: &Metrics) {
        m.reloads.get_or_create(&ResultLabel { result: if self.ok { "ok" } else { "error" } }).inc();
    }
}

// ---------------------------------------------------------------------------------------------
// State read at scrape time.

#[derive(Debug, Default)]
struct Scraped {
    outbox: Option<OutboxCensus>,
    now_ms: u64,
    dead_letters: Option<u64>,
    inbox: Option<u64>,
    /// (account, 0 closed / 1 half-open / 2 open)
    breakers: Vec<(String, i64)>,
    accounts_ready: i64,
    accounts_refused: i64,
    plugins: Vec<(String, PluginStats)>,
    plugin_load_errors: i64,
}

/// What `/metrics` and the systemd status line show of the store. Read (async: the store may
/// be a network away) before the synchronous rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreGauges {
    pub outbox: Option<OutboxCensus>,
    pub dead_letters: Option<u64>,
    pub inbox: Option<u64>,
}

impl StoreGauges {
    pub async fn read(store: &crate::store::Store) -> Self {
        Self {
            outbox: store.outbox_census().await.ok(),
            dead_letters: store.dlq_len().await.ok(),
            inbox: store.inbox_len().await.ok(),
        }
    }
}

impl Scraped {
    fn read(app: &App, store: StoreGauges) -> Self {
        let now = app.clock.now_ms();
        let mut s = Scraped {
            outbox: store.outbox,
            now_ms: now,
            dead_letters: store.dead_letters,
            inbox: store.inbox,
            plugins: app.runtime.stats().into_iter().collect(),
            plugin_load_errors: app.runtime.load_errors().len() as i64,
            ..Default::default()
        };
        for (id, state) in app.accounts.iter() {
            match state {
                crate::accounts::AccountState::Ready(_) => s.accounts_ready += 1,
                crate::accounts::AccountState::Refused { .. } => s.accounts_refused += 1,
            }
            if let Some(p) = app.delivery.get(&id) {
                let code = match p.breaker.state(now) {
                    crate::breaker::State::Closed => 0,
                    crate::breaker::State::HalfOpen { .. } => 1,
                    crate::breaker::State::Open { .. } => 2,
                };
                s.breakers.push((id, code));
            }
        }
        s
    }
}

#[derive(Debug)]
struct ScrapedCollector(Arc<Mutex<Scraped>>);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn gauges(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, samples: &[(Labels<'_>, i64)]) -> std::fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(me.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) -> std::fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(me.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for ScrapedCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &s.outbox {
            gauges(&mut enc, "outbox_messages", "Unfinished outbound messages by state", &[
                (vec![("state", "queued")], c.queued as i64),
                (vec![("state", "sending")], c.sending as i64),
                (vec![("state", "retrying")], c.retrying as i64),
            ])?;
            gauges(&mut enc, "outbox_stored_messages", "Outbound messages in the store, finished ones included", &[(vec![], c.stored as i64)])?;
            let lag = c.oldest_due_ms.map_or(0.0, |due| s.now_ms.saturating_sub(due) as f64 / 1_000.0);
            let g = ConstGauge::new(lag);
            g.encode(enc.encode_descriptor("outbox_lag_seconds", "How long the oldest due outbound message has waited", None, g.metric_type())?)?;
        }
        if let Some(n) = s.dead_letters {
            gauges(&mut enc, "dead_letters", "Entries in the dead-letter queue", &[(vec![], n as i64)])?;
        }
        if let Some(n) = s.inbox {
            gauges(&mut enc, "inbox_events", "Inbound events not yet acknowledged", &[(vec![], n as i64)])?;
        }
        let breakers: Vec<_> = s.breakers.iter().map(|(a, v)| (vec![("account", a.as_str())], *v)).collect();
        gauges(&mut enc, "breaker_state", "Circuit breaker per account: 0 closed, 1 half-open, 2 open", &breakers)?;
        gauges(&mut enc, "accounts", "Configured accounts by state", &[
            (vec![("state", "ready")], s.accounts_ready),
            (vec![("state", "refused")], s.accounts_refused),
        ])?;
        let calls: Vec<_> = s.plugins.iter().map(|(p, st)| (vec![("plugin", p.as_str())], st.calls)).collect();
        counters(&mut enc, "plugin_calls", "Plugin calls started", &calls)?;
        let mut failures = Vec::new();
        let mut reloads = Vec::new();
        for (p, st) in &s.plugins {
            for (kind, n) in [
                ("deadline", st.deadline),
                ("out_of_memory", st.out_of_memory),
                ("stack_overflow", st.stack_overflow),
                ("trap", st.trap),
                ("bad_output", st.bad_output),
            ] {
                failures.push((vec![("plugin", p.as_str()), ("kind", kind)], n));
            }
            reloads.push((vec![("plugin", p.as_str()), ("result", "ok")], st.reloads));
            reloads.push((vec![("plugin", p.as_str()), ("result", "error")], st.reload_failures));
        }
        counters(&mut enc, "plugin_failures", "Plugin calls that failed: traps, deadlines, memory, bad output", &failures)?;
        counters(&mut enc, "plugin_reloads", "Plugin hot reloads by result", &reloads)?;
        gauges(&mut enc, "plugin_load_errors", "Plugin files whose latest version failed to load", &[(vec![], s.plugin_load_errors)])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_move_their_counters_and_the_text_ends_with_eof() {
        let m = Metrics::new();
        OutboxClaimed { claimed: 3, reclaimed: 1 }.emit(&m);
        InboxSettleRejected { rejected: 2 }.emit(&m);
        ConfigReloaded { ok: true }.emit(&m);
        m.commit_duration.observe(0.001);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(out.contains("switchboard_lease_grants_total{queue=\"outbox\"} 3"), "{out}");
        assert!(out.contains("switchboard_lease_expiries_total{queue=\"outbox\"} 1"), "{out}");
        assert!(out.contains("switchboard_lease_steals_total{queue=\"inbox\"} 2"), "{out}");
        assert!(out.contains("switchboard_config_reloads_total{result=\"ok\"} 1"), "{out}");
        assert!(out.contains("switchboard_store_commit_duration_seconds_count 1"), "{out}");
        assert!(out.contains("switchboard_build_info{version="), "{out}");
        assert!(out.contains("switchboard_breaker_state"), "collector output is prefixed: {out}");
        assert!(out.ends_with("# EOF\n"));
    }
}
