//! Wiring: open the store, load plugins, resolve accounts, bind the listener, start the
//! workers, tell systemd we are ready; reload the config; shut down within the timeout. Used
//! by `switchboard run` and, in-process, by the integration tests.

use crate::accounts::{AccountState, Accounts};
use crate::app::App;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::egress::Egress;
use crate::runtime::{HostServices, Runtime, RuntimeOptions};
use crate::metrics::Metrics;
use crate::reload::ReloadReport;
use crate::store::{Store, StoreError, StoreOptions};
use crate::systemd;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open store at {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("cannot start the plugin runtime: {0}")]
    Runtime(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running daemon.
pub struct Daemon {
    pub addr: SocketAddr,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Pings the watchdog; stopped last, once the store is flushed.
    supervisor: Option<JoinHandle<()>>,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything in flight finished within `shutdown_timeout_ms`.
    pub drained: bool,
    /// Outbox leases released because their deliveries were cut off at the timeout.
    pub released: usize,
    pub took: Duration,
}

impl Daemon {
    pub async fn start(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        systemd::status("starting: opening the store");
        remove_backup_leftovers(&config.data_dir);
        let location = config
            .store_location()
            .map_err(|e| StartError::Store { path: "store.url".into(), source: StoreError::Io(e.to_string()) })?;
        let opts = StoreOptions { dedupe_ttl_ms: config.dedupe_ttl_ms, cache_bytes: config.store_cache_bytes, ..Default::default() };
        let store = Store::connect(&location, clock.clone(), opts)
            .await
            .map_err(|source| StartError::Store { path: location.describe(), source })?;
        let metrics = Arc::new(Metrics::new());
        store.on_commit(metrics.commit_observer());
        let services = HostServices { store: store.clone(), egress: Egress::new(Duration::from_secs(30), 1 << 20), clock: clock.clone() };
        systemd::status("starting: loading plugins");
        let mut runtime = Runtime::with_options(services, RuntimeOptions::from_config(&config)).map_err(|e| StartError::Runtime(e.to_string()))?;
        for e in runtime.load_dir(&config.plugins_dir).await {
            tracing::error!(error = %e, "plugin not loaded");
        }
        let accounts = Accounts::resolve(&config, &runtime.manifests());
        for (id, state) in accounts.iter() {
            match &state {
                AccountState::Ready(ctx) => tracing::info!(account = %id, plugin = %ctx.plugin, verify = ctx.scheme.name(), "account ready"),
                AccountState::Refused { reasons, .. } => {
                    tracing::error!(account = %id, reasons = %reasons.join("; "), "account NOT started; its webhook answers 503")
                }
            }
            if let AccountState::Ready(ctx) = &state
                && ctx.scheme == crate::verify::Scheme::None
            {
                tracing::warn!(account = %id, "account accepts UNSIGNED webhooks (insecure = true)");
            }
        }
        let api_tokens = crate::reload::resolve_tokens(&config);
        if api_tokens.is_empty() {
            tracing::warn!("no api_tokens available: the /v1 API refuses every request");
        }
        if let Some(w) = crate::runtime::delivery_capacity_warning(config.delivery.workers, config.delivery.batch) {
            tracing::warn!("[delivery] {w}");
        }
        systemd::status("starting: binding the listener");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let delivery = crate::outbox::policy::build(&config, &clock);
        let app = Arc::new(App {
            live: ArcSwap::from_pointee(config.clone()),
            config,
            store,
            runtime,
            accounts,
            clock,
            api_tokens: ArcSwap::from_pointee(api_tokens),
            outbox_wake: Notify::new(),
            agent: Default::default(),
            delivery,
            metrics,
            in_flight: Default::default(),
            draining: AtomicBool::new(false),
            cut_off: watch::Sender::new(false),
        });
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let router = crate::api::router(app.clone());
        let mut srx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = srx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "http server stopped");
            }
        }));
        for n in 0..app.config.delivery.workers {
            tasks.push(tokio::spawn(crate::outbox::worker::run(app.clone(), n, rx.clone())));
        }
        tasks.push(tokio::spawn(crate::runtime::watch::run(app.clone(), rx.clone())));
        tasks.extend(crate::poller::spawn_all(&app, rx.clone()));
        tasks.extend(crate::agent::spawn(app.clone(), rx.clone()));
        tasks.push(tokio::spawn(sweep(app.clone(), rx.clone())));
        tracing::info!(%addr, "listening");
        // Store open, plugins loaded, accounts resolved, listener bound (it queues connections
        // from here on, and the server task accepts them): only now tell systemd we are ready.
        let supervisor = if systemd::enabled() {
            systemd::ready(&systemd::status_line(&app, &crate::metrics::StoreGauges::read(&app.store).await));
            Some(tokio::spawn(systemd::supervise(app.clone(), rx)))
        } else {
            None
        };
        Ok(Self { addr, app, shutdown, tasks, supervisor })
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Applies a reloaded config (SIGHUP) or, given the reason it could not be read, keeps
    /// the running one. See [`crate::reload`] for what reloads and what needs a restart.
    pub async fn reload(&self, next: Result<Config, String>) -> Result<ReloadReport, String> {
        systemd::reloading();
        let result = match next {
            Ok(config) => {
                let report = crate::reload::apply(&self.app, config);
                tracing::info!(
                    applied = %report.applied.join(", "),
                    needs_restart = %report.needs_restart.join(", "),
                    "config reloaded"
                );
                if !report.needs_restart.is_empty() {
                    tracing::warn!(settings = %report.needs_restart.join(", "), "changed settings need a restart; running values kept");
                }
                Ok(report)
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; the running config stays");
                Err(e)
            }
        };
        crate::metrics::ConfigReloaded { ok: result.is_ok() }.emit(&self.app.metrics);
        let gauges = crate::metrics::StoreGauges::read(&self.app.store).await;
        let line = match &result {
            Ok(_) => systemd::status_line(&self.app, &gauges),
            Err(_) => format!("{} (last reload FAILED, see the log)", systemd::status_line(&self.app, &gauges)),
        };
        systemd::ready(&line);
        result
    }

    /// Stops accepting (`/readyz` answers 503 at once), lets in-flight deliveries finish for up
    /// to `shutdown_timeout_ms`, then cuts off what is left and releases its leases (those
    /// messages are due again at once, for the next start), then flushes and closes the store.
    pub async fn shutdown(self) -> ShutdownReport {
        let started = std::time::Instant::now();
        let app = self.app.clone();
        app.draining.store(true, Ordering::SeqCst);
        let timeout = Duration::from_millis(app.current_config().shutdown_timeout_ms);
        systemd::stopping(&format!("stopping: draining {} in-flight deliveries", app.in_flight.len()));
        let _ = self.shutdown.send(true);
        // Leave a tenth of the budget (at most 2 s) for releasing leases and closing the store.
        let drain = timeout.saturating_sub((timeout / 10).min(Duration::from_secs(2)));
        let deadline = tokio::time::Instant::now() + drain;
        let mut pending = self.tasks;
        while let Some(t) = pending.last_mut() {
            match tokio::time::timeout_at(deadline, t).await {
                Ok(_) => drop(pending.pop()),
                Err(_) => break,
            }
        }
        let drained = pending.is_empty();
        let mut released = 0;
        if !drained {
            // Workers stop their deliveries and return; anything else still running is aborted.
            let _ = app.cut_off.send(true);
            let grace = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Some(t) = pending.last_mut() {
                match tokio::time::timeout_at(grace, t).await {
                    Ok(_) => drop(pending.pop()),
                    Err(_) => break,
                }
            }
            for t in &pending {
                t.abort();
            }
            for t in pending {
                let _ = t.await;
            }
            released = app.in_flight.release_all(&app).await;
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                released,
                "shutdown timeout reached: cut off the deliveries still running; their messages are due again"
            );
        }
        systemd::status("stopping: flushing the store");
        app.store.close().await;
        if let Some(s) = self.supervisor {
            s.abort();
        }
        let report = ShutdownReport { drained, released, took: started.elapsed() };
        tracing::info!(drained, released, took_ms = report.took.as_millis() as u64, "stopped");
        report
    }
}

/// Removes temporary backup files a daemon that died mid-backup left in `data_dir`.
fn remove_backup_leftovers(data_dir: &std::path::Path) {
    for e in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(crate::api::BACKUP_TMP_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Expired dedupe and idempotency keys are deleted in batches of `SWEEP_BATCH`, each its own
/// short transaction, so sweeping never holds up webhook writes for long.
const SWEEP_BATCH: usize = 1_000;

async fn sweep(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        for (what, store) in [("dedupe", 0), ("idempotency", 1)] {
            loop {
                let r = if store == 0 { app.store.sweep_dedupe(SWEEP_BATCH).await } else { app.store.sweep_idempotency(SWEEP_BATCH).await };
                match r {
                    Ok(n) if n == SWEEP_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, what, "sweep failed");
                        break;
                    }
                }
            }
        }
    }
}
