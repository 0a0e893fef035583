//! Wiring: open the store, load plugins, resolve accounts, bind the listener, start the
//! workers. Used by `switchboard run` and, in-process, by the integration tests.

use crate::accounts::{AccountState, Accounts};
use crate::app::App;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::egress::Egress;
use crate::runtime::{HostServices, Runtime, RuntimeOptions};
use crate::store::{Store, StoreError, StoreOptions};
use std::net::SocketAddr;
use std::sync::Arc;
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
}

impl Daemon {
    pub async fn start(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let db_path = config.redb_path();
        let store = Store::open(&db_path, clock.clone(), StoreOptions { dedupe_ttl_ms: config.dedupe_ttl_ms, ..Default::default() })
            .map_err(|source| StartError::Store { path: db_path.display().to_string(), source })?;
        let services = HostServices { store: store.clone(), egress: Egress::new(Duration::from_secs(30), 1 << 20), clock: clock.clone() };
        let mut runtime = Runtime::with_options(services, RuntimeOptions::from_config(&config)).map_err(|e| StartError::Runtime(e.to_string()))?;
        for e in runtime.load_dir(&config.plugins_dir).await {
            tracing::error!(error = %e, "plugin not loaded");
        }
        let accounts = Accounts::resolve(&config, &runtime.manifests());
        for (id, state) in accounts.iter() {
            match state {
                AccountState::Ready(ctx) => tracing::info!(account = %id, plugin = %ctx.plugin, verify = ctx.scheme.name(), "account ready"),
                AccountState::Refused { reasons, .. } => {
                    tracing::error!(account = %id, reasons = %reasons.join("; "), "account NOT started; its webhook answers 503")
                }
            }
            if let AccountState::Ready(ctx) = state
                && ctx.scheme == crate::verify::Scheme::None
            {
                tracing::warn!(account = %id, "account accepts UNSIGNED webhooks (insecure = true)");
            }
        }
        let mut api_tokens = Vec::new();
        for (i, t) in config.api_tokens.iter().enumerate() {
            match t.resolve() {
                Ok(s) => api_tokens.push(s),
                Err(e) => tracing::error!(index = i, error = %e, "api token not available; it will not be accepted"),
            }
        }
        if api_tokens.is_empty() {
            tracing::warn!("no api_tokens available: the /v1 API refuses every request");
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let delivery = crate::outbox::policy::build(&config, &clock);
        let app = Arc::new(App { config, store, runtime, accounts, clock, api_tokens, outbox_wake: Notify::new(), delivery });
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
        tasks.push(tokio::spawn(sweep(app.clone(), rx)));
        tracing::info!(%addr, "listening");
        Ok(Self { addr, app, shutdown, tasks })
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, lets in-flight work finish, then flushes and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.app.store.close().await;
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
