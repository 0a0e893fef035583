//! systemd integration: `sd_notify` readiness, reload and stop notifications, `STATUS=` lines,
//! the watchdog, and the unit file `switchboard install-service` writes.
//!
//! Everything here is a no-op when `NOTIFY_SOCKET` is not set (not run by systemd, tests).
//! READY=1 is sent only once the store is open, the plugins are loaded, the accounts are
//! resolved and the listener is bound ([`crate::daemon::Daemon::start`]). WATCHDOG=1 is sent
//! from the daemon's event loop after a round trip through the store writer, so a wedged
//! runtime or a stuck disk stops the pings and systemd restarts the service.

use crate::app::App;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub fn ready(line: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(line)]);
}

/// Before a config reload (systemd wants the monotonic time with it, for `Type=notify-reload`).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading config")]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading config")]),
    }
}

pub fn stopping(line: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(line)]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, if systemd enabled it for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2).filter(|d| !d.is_zero())
}

/// How often the STATUS line is refreshed while running.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The one-line state shown by `systemctl status`.
pub fn status_line(app: &App, store: &crate::metrics::StoreGauges) -> String {
    let (mut ready, mut refused) = (0, 0);
    for (_, s) in app.accounts.iter() {
        match s {
            crate::accounts::AccountState::Ready(_) => ready += 1,
            crate::accounts::AccountState::Refused { .. } => refused += 1,
        }
    }
    let mut line = format!("ready: {ready} account(s) running");
    if refused > 0 {
        line.push_str(&format!(", {refused} refused (see /readyz)"));
    }
    if let Some(c) = store.outbox {
        line.push_str(&format!("; outbox {} queued, {} sending, {} retrying", c.queued, c.sending, c.retrying));
    }
    if let Some(n) = store.dead_letters
        && n > 0
    {
        line.push_str(&format!("; {n} dead letter(s)"));
    }
    line
}

/// Pings the watchdog (when enabled) and refreshes the STATUS line until shutdown. Runs as a
/// task on the daemon's runtime: the pings stop if the runtime or the store writer stalls.
pub async fn supervise(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let watchdog = watchdog_interval();
    let tick = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    let mut last_status = tokio::time::Instant::now();
    if let Some(w) = watchdog {
        tracing::info!(every_ms = w.as_millis() as u64, "systemd watchdog enabled");
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if watchdog.is_some() {
            match tokio::time::timeout(tick, app.store.ping()).await {
                Ok(Ok(())) => send(&[NotifyState::Watchdog]),
                Ok(Err(e)) => tracing::error!(error = %e, "store writer failed; watchdog not pinged"),
                Err(_) => tracing::error!("store writer did not answer in time; watchdog not pinged"),
            }
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = tokio::time::Instant::now();
            let gauges = crate::metrics::StoreGauges::read(&app.store).await;
            status(&status_line(&app, &gauges));
        }
    }
}

/// What `switchboard install-service` puts in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitParams {
    /// Absolute path of the `switchboard` binary.
    pub binary: String,
    /// Absolute path of `switchboard.toml`.
    pub config: String,
    /// `None`: `DynamicUser=yes` (systemd allocates a user); `Some(name)`: run as that user.
    pub user: Option<String>,
    /// Name under `/var/lib` for `StateDirectory=` (the config's `data_dir` should be
    /// `/var/lib/<this>`), or `None` to grant `ReadWritePaths=` on `data_dir` instead.
    pub state_directory: Option<String>,
    /// `data_dir` when it is not under `/var/lib`.
    pub data_dir: String,
    pub watchdog_sec: u32,
    /// Must exceed the config's `shutdown_timeout_ms`.
    pub timeout_stop_sec: u32,
}

impl Default for UnitParams {
    fn default() -> Self {
        Self {
            binary: "/usr/local/bin/switchboard".into(),
            config: "/etc/switchboard/switchboard.toml".into(),
            user: None,
            state_directory: Some("switchboard".into()),
            data_dir: "/var/lib/switchboard".into(),
            watchdog_sec: 30,
            timeout_stop_sec: 30,
        }
    }
}

/// The systemd unit. `examples/switchboard.service` is this with the defaults.
pub fn unit_file(p: &UnitParams) -> String {
    let user = match &p.user {
        None => "DynamicUser=yes".to_string(),
        Some(u) => format!("User={u}\nGroup={u}"),
    };
    let state = match &p.state_directory {
        Some(d) => format!("StateDirectory={d}\nStateDirectoryMode=0700"),
        None => format!("ReadWritePaths={}", p.data_dir),
    };
    format!(
        r#"# Switchboard as a systemd service. Written by `switchboard install-service`; see
# docs/operations.md. Reload the config without dropping traffic: systemctl reload switchboard
[Unit]
Description=Switchboard messaging gateway
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={binary} run --log-json --config {config}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# The daemon pings the watchdog every WatchdogSec/2 after a round trip through its store writer.
WatchdogSec={watchdog}s
# Plugins are compiled at start (cached afterwards).
TimeoutStartSec=120s
# Must exceed shutdown_timeout_ms (default 20 s): SIGTERM drains, then the store is closed.
TimeoutStopSec={stop}s
KillMode=mixed
Environment=SWITCHBOARD_LOG=info
# Secrets as env:VAR references go here (mode 0600, owned by root).
EnvironmentFile=-/etc/switchboard/env

{user}
{state}
ConfigurationDirectory=switchboard
UMask=0077

# Hardening. wasmtime compiles plugins to native code at run time, so
# MemoryDenyWriteExecute= must stay off.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"#,
        binary = p.binary,
        config = p.config,
        watchdog = p.watchdog_sec,
        stop = p.timeout_stop_sec,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_unit_is_the_default_rendering() {
        let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/switchboard.service")).unwrap();
        assert_eq!(example, unit_file(&UnitParams::default()), "regenerate with `switchboard install-service --output -`");
    }

    #[test]
    fn the_unit_is_notify_with_watchdog_restart_and_hardening() {
        let u = unit_file(&UnitParams { user: Some("sb".into()), state_directory: None, data_dir: "/srv/sb".into(), ..Default::default() });
        for line in [
            "Type=notify",
            "WatchdogSec=30s",
            "Restart=on-failure",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "User=sb",
            "ReadWritePaths=/srv/sb",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ] {
            assert!(u.lines().any(|l| l == line), "missing {line}:\n{u}");
        }
        assert!(!u.contains("DynamicUser"));
        assert!(!u.lines().any(|l| l.starts_with("MemoryDenyWriteExecute=")), "the JIT needs W^X off");
    }
}
