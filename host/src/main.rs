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

const DEFAULT_CONFIG: &str = "./switchboard.toml";

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Durable, sandboxed gateway between messaging providers and AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, log_json } => {
            init_tracing(log_json);
            run(config)
        }
        Command::CheckConfig { config, json } => check_config(&config, json),
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
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
        store = %config.redb_path().display(),
        plugins_dir = %config.plugins_dir.display(),
        accounts = config.accounts.len(),
        "switchboard {} starting", env!("CARGO_PKG_VERSION")
    );
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let daemon = match Daemon::start(config, Arc::new(SystemClock)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "startup failed");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        daemon.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
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
        }
    }
    if json {
        let list: Vec<_> = problems.iter().map(|(p, m)| serde_json::json!({ "path": p, "message": m })).collect();
        println!("{}", serde_json::json!({ "ok": problems.is_empty(), "errors": list }));
    } else if problems.is_empty() {
        println!("{}: ok", path.display());
    } else {
        eprintln!("{}: {} error(s)", path.display(), problems.len());
        for (p, m) in &problems {
            eprintln!("  - {p}: {m}");
        }
    }
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
