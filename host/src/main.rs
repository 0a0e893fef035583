//! `switchboard`: the daemon and its operator commands.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use switchboard::accounts::{AccountState, Accounts};
use switchboard::clock::SystemClock;
use switchboard::config::{Config, ConfigError};
use switchboard::daemon::Daemon;
use switchboard::runtime::manifest::Manifest;

mod plugin_cli;

const DEFAULT_CONFIG: &str = "./switchboard.toml";

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Durable, sandboxed gateway between messaging providers and AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write, build, inspect and test plugins (channel adapters and agent tools).
    Plugin {
        #[command(subcommand)]
        command: plugin_cli::PluginCommand,
    },
    /// Run the daemon. Without a config file it runs on embedded defaults.
    Run {
        /// Config file (default ./switchboard.toml; absent → embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a config file and the accounts it defines; list every problem.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The dead-letter queue of a running daemon.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Outbound messages of a running daemon.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Inbox and queue statistics of a running daemon.
    Inbox {
        #[command(subcommand)]
        command: InboxCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Online backup: a consistent snapshot of a running daemon's store, written to FILE.
    Backup {
        /// Where to write the backup (a redb file; restore by putting it in data_dir as
        /// switchboard.redb while the daemon is stopped).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Move a store between engines: export a (stopped) redb store, import into PostgreSQL.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Write the systemd unit (Type=notify, watchdog, hardening) with this machine's paths.
    InstallService {
        /// The config the service runs with (made absolute).
        #[arg(long, default_value = "/etc/switchboard/switchboard.toml")]
        config: PathBuf,
        /// The binary the service runs (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Run as this existing user instead of a systemd DynamicUser.
        #[arg(long)]
        user: Option<String>,
        /// Where to write the unit; `-` prints it.
        #[arg(long, default_value = "/etc/systemd/system/switchboard.service")]
        output: PathBuf,
        /// Replace an existing unit file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
struct RemoteArgs {
    /// Config file to find the daemon's address and API token in.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Daemon base URL (default: http://<listen> from the config).
    #[arg(long, global = true)]
    url: Option<String>,
    /// API token (default: $SWITCHBOARD_API_TOKEN, then the config's api_tokens).
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter with its message or event.
    Show { id: String },
    /// Put dead letters back in their queues (same id, same idempotency key).
    Redrive {
        #[arg(long)]
        all: bool,
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    Show { id: String },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write every record of the config's redb store (daemon stopped) as JSON lines.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Read an export into the config's (postgres) store. Idempotent: safe to run again.
    Import {
        #[arg(long)]
        from: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum InboxCommand {
    Stats,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin { command } => plugin_cli::run(command),
        Command::Run { config, log_json } => {
            init_tracing(log_json);
            run(config)
        }
        Command::CheckConfig { config, json } => check_config(&config, json),
        Command::Dlq { command, remote } => admin(remote, |r, json| async move {
            match command {
                DlqCommand::List { limit } => {
                    let v = r.get(&format!("/v1/dlq?limit={limit}")).await?;
                    Ok(if json { v.to_string() } else { switchboard::admin_cli::dlq_table(&v["items"]) })
                }
                DlqCommand::Show { id } => Ok(pretty(r.get(&format!("/v1/dlq/{id}")).await?)),
                DlqCommand::Redrive { all, ids } => {
                    if all == !ids.is_empty() {
                        return Err(switchboard::admin_cli::AdminError::Config("give IDs or --all (not both)".into()));
                    }
                    let body = if all { serde_json::json!({ "all": true }) } else { serde_json::json!({ "ids": ids }) };
                    let v = r.post("/v1/dlq/redrive", body).await?;
                    Ok(if json {
                        v.to_string()
                    } else {
                        format!("redriven: {}\nnot found: {}", v["redriven"], v["not_found"])
                    })
                }
            }
        }),
        Command::Outbox { command, remote } => admin(remote, |r, json| async move {
            match command {
                OutboxCommand::List { status, limit } => {
                    let q = status.map_or(String::new(), |s| format!("&status={s}"));
                    let v = r.get(&format!("/v1/outbox?limit={limit}{q}")).await?;
                    Ok(if json { v.to_string() } else { switchboard::admin_cli::messages_table(&v["items"]) })
                }
                OutboxCommand::Show { id } => Ok(pretty(r.get(&format!("/v1/messages/{id}")).await?)),
            }
        }),
        Command::Inbox { command: InboxCommand::Stats, remote } => {
            admin(remote, |r, _| async move { Ok(pretty(r.get("/v1/stats").await?)) })
        }
        Command::Backup { out, remote } => admin(remote, |r, json| async move {
            let summary = r.backup(&out).await?;
            Ok(if json {
                serde_json::json!({ "out": out.display().to_string(), "bytes": summary.bytes, "tables": summary.tables }).to_string()
            } else {
                let rows: Vec<String> = ["inbox", "outbox", "dead_letters", "dedupe"]
                    .iter()
                    .map(|t| format!("{t} {}", summary.tables.get(*t).copied().unwrap_or(0)))
                    .collect();
                format!("backup written to {} ({} bytes; {})", out.display(), summary.bytes, rows.join(", "))
            })
        }),
        Command::Store { command } => store_command(command),
        Command::InstallService { config, binary, user, output, force } => install_service(config, binary, user, output, force),
    }
}

fn store_command(command: StoreCommand) -> ExitCode {
    let (config_path, run): (PathBuf, Box<dyn FnOnce(Config) -> Result<String, switchboard::store_cli::TransferError>>) = match command {
        StoreCommand::Export { out, config } => (
            config,
            Box::new(move |cfg| {
                let s = switchboard::store_cli::export(&cfg, &out)?;
                Ok(format!("exported {} record(s) to {}: {:?}", s.records.values().sum::<u64>(), out.display(), s.records))
            }),
        ),
        StoreCommand::Import { from, config } => (
            config,
            Box::new(move |cfg| {
                let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
                let s = rt.block_on(switchboard::store_cli::import(&cfg, &from))?;
                Ok(format!("imported {} record(s) from {} ({} new): {:?}", s.records.values().sum::<u64>(), from.display(), s.written, s.records))
            }),
        ),
    };
    let cfg = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(cfg) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn install_service(config: PathBuf, binary: Option<PathBuf>, user: Option<String>, output: PathBuf, force: bool) -> ExitCode {
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let binary = match binary.map_or_else(std::env::current_exe, Ok) {
        Ok(b) => abs(b),
        Err(e) => {
            eprintln!("error: cannot find this binary: {e}; pass --binary");
            return ExitCode::FAILURE;
        }
    };
    let config = abs(config);
    let mut params = switchboard::systemd::UnitParams {
        binary: binary.display().to_string(),
        config: config.display().to_string(),
        user,
        ..Default::default()
    };
    match Config::load(&config) {
        Ok(cfg) => {
            let data_dir = abs(cfg.data_dir.clone());
            params.data_dir = data_dir.display().to_string();
            params.state_directory = data_dir
                .strip_prefix("/var/lib")
                .ok()
                .filter(|rest| rest.components().count() == 1)
                .map(|rest| rest.display().to_string());
            // systemd must wait longer than the daemon's own drain.
            params.timeout_stop_sec = params.timeout_stop_sec.max((cfg.shutdown_timeout_ms / 1000) as u32 + 10);
            if params.state_directory.is_none() {
                eprintln!("note: data_dir {} is not /var/lib/NAME; the unit grants ReadWritePaths= on it", data_dir.display());
            }
        }
        Err(e) => eprintln!("note: {e}\n      the unit assumes data_dir = /var/lib/switchboard"),
    }
    let unit = switchboard::systemd::unit_file(&params);
    if output.as_os_str() == "-" {
        print!("{unit}");
        return ExitCode::SUCCESS;
    }
    if output.exists() && !force {
        eprintln!("error: {} exists; pass --force to replace it (or --output - to print)", output.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&output, unit) {
        eprintln!("error: cannot write {}: {e} (run as root, or --output - to print)", output.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}\nnext: systemctl daemon-reload && systemctl enable --now switchboard", output.display());
    ExitCode::SUCCESS
}

fn pretty(v: serde_json::Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Runs one admin call against the daemon and prints its output.
fn admin<F, Fut>(args: RemoteArgs, f: F) -> ExitCode
where
    F: FnOnce(switchboard::admin_cli::Remote, bool) -> Fut,
    Fut: std::future::Future<Output = Result<String, switchboard::admin_cli::AdminError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(async {
        let remote = switchboard::admin_cli::Remote::resolve(&args.config, args.url, args.token)?;
        f(remote, args.json).await
    });
    match result {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Every line goes through the phone scrubber: call sites mask what they log, this catches
    // numbers in free text from providers and plugins.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| switchboard::redact::Scrubbed(std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_config(explicit: Option<PathBuf>) -> Result<(Config, String), ConfigError> {
    match explicit {
        Some(p) => Ok((Config::load(&p)?, p.display().to_string())),
        None if Path::new(DEFAULT_CONFIG).exists() => Ok((Config::load(Path::new(DEFAULT_CONFIG))?, DEFAULT_CONFIG.into())),
        None => Ok((Config::default(), "none (embedded defaults)".into())),
    }
}

fn run(config_path: Option<PathBuf>) -> ExitCode {
    // SIGHUP re-reads the file the daemon started from (none: embedded defaults, no reload).
    let reload_from = config_path.clone().or_else(|| Path::new(DEFAULT_CONFIG).exists().then(|| PathBuf::from(DEFAULT_CONFIG)));
    let (config, origin) = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        config = %origin,
        listen = %config.listen,
        store = %config.store_location().map(|l| l.describe()).unwrap_or_else(|e| e.to_string()),
        plugins_dir = %config.plugins_dir.display(),
        accounts = config.accounts.len(),
        "switchboard {} starting", env!("CARGO_PKG_VERSION")
    );
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        // Handlers first: a SIGTERM during startup then means "stop once started", cleanly.
        let mut signals = Signals::new();
        let daemon = match Daemon::start(config, Arc::new(SystemClock)).await {
            Ok(d) => d,
            Err(e) => {
                switchboard::systemd::status(&format!("startup failed: {e}"));
                tracing::error!(error = %e, "startup failed");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match signals.next().await {
                Signal::Reload => {
                    tracing::info!(signal = "SIGHUP", "reloading config");
                    let next = match &reload_from {
                        Some(p) => Config::load(p).map_err(|e| e.to_string()),
                        None => Err("started on embedded defaults (no config file): nothing to reload".into()),
                    };
                    let _ = daemon.reload(next).await;
                }
                Signal::Stop(name) => {
                    tracing::info!(signal = name, "shutting down");
                    break;
                }
            }
        }
        tokio::select! {
            _ = daemon.shutdown() => ExitCode::SUCCESS,
            name = signals.next_stop() => {
                tracing::error!(signal = name, "second stop signal: exiting now, without draining");
                ExitCode::from(130)
            }
        }
    })
}

enum Signal {
    Reload,
    Stop(&'static str),
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
        }
    }

    async fn next_stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Reads manifests only (no compilation), so checking a config is fast and side-effect free.
fn read_manifests(dir: &Path) -> (std::collections::HashMap<String, Manifest>, Vec<String>) {
    let mut found = std::collections::HashMap::new();
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        problems.push(format!("plugins_dir: cannot read {}", dir.display()));
        return (found, problems);
    };
    for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.extension().is_some_and(|x| x == "wasm") {
            let mp = p.with_extension("toml");
            match std::fs::read_to_string(&mp).map_err(|e| e.to_string()).and_then(|t| Manifest::parse(&t)) {
                Ok(m) => {
                    found.insert(m.name.clone(), m);
                }
                Err(e) => problems.push(format!("plugins_dir: {}: {e}", mp.display())),
            }
        }
    }
    (found, problems)
}

fn check_config(path: &Path, json: bool) -> ExitCode {
    let mut problems: Vec<(String, String)> = Vec::new();
    // Settings that work but that an operator likely wants to change: reported, not failed.
    let mut warnings: Vec<(String, String)> = Vec::new();
    match Config::load(path) {
        Err(ConfigError::Invalid(issues)) => problems.extend(issues.into_iter().map(|i| (i.path, i.message))),
        Err(e) => problems.push(("".into(), e.to_string())),
        Ok(cfg) => {
            let (manifests, dir_problems) = read_manifests(&cfg.plugins_dir);
            problems.extend(dir_problems.into_iter().map(|p| ("plugins_dir".into(), p)));
            for (id, state) in Accounts::resolve(&cfg, &manifests).iter() {
                if let AccountState::Refused { reasons, .. } = state {
                    problems.extend(reasons.iter().map(|r| (format!("accounts.{id}"), r.clone())));
                }
            }
            for (i, t) in cfg.api_tokens.iter().enumerate() {
                if let Err(e) = t.resolve() {
                    problems.push((format!("api_tokens[{i}]"), e.to_string()));
                }
            }
            if let Some(w) = switchboard::runtime::delivery_capacity_warning(cfg.delivery.workers, cfg.delivery.batch) {
                warnings.push(("delivery".into(), w));
            }
        }
    }
    let listed = |l: &[(String, String)]| -> Vec<_> { l.iter().map(|(p, m)| serde_json::json!({ "path": p, "message": m })).collect() };
    if json {
        println!("{}", serde_json::json!({ "ok": problems.is_empty(), "errors": listed(&problems), "warnings": listed(&warnings) }));
    } else {
        if problems.is_empty() {
            println!("{}: ok", path.display());
        } else {
            eprintln!("{}: {} error(s)", path.display(), problems.len());
            for (p, m) in &problems {
                eprintln!("  - {p}: {m}");
            }
        }
        for (p, m) in &warnings {
            eprintln!("  warning: {p}: {m}");
        }
    }
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
