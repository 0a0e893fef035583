//! `cargo xtask run`  — build everything (plugins included) and run the daemon on the example config.
//! `cargo xtask test` — build everything and run every test (host, integration, plugins).
//! `cargo xtask plugins [DIR]` — build the bundled plugins into DIR (default target/plugins).

use anyhow::{Result, bail};
use std::process::Command;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    let status = cmd.status()?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = xtask::repo_root();
    match args.first().map(String::as_str) {
        Some("run") => {
            xtask::build_plugins(&root.join("target/plugins"))?;
            let mut cmd = cargo();
            cmd.current_dir(&root)
                .args(["run", "-p", "switchboard", "--", "run", "--config", "examples/switchboard.toml"])
                .args(&args[1..]);
            run(cmd)
        }
        Some("test") => {
            xtask::build_plugins(&root.join("target/plugins"))?;
            // Plugin logic is tested natively; the components themselves are exercised by the
            // end-to-end tests in tests/.
            for dir in ["plugins", "examples/minimal-channel"] {
                let mut plugins = cargo();
                plugins.current_dir(root.join(dir)).args(["test", "--workspace"]);
                run(plugins)?;
            }
            // The benchmark-only `ceiling` feature is in no test build: compile it here so
            // that `bench/ceiling.sh` keeps building (only the host library is rebuilt).
            let mut ceiling = cargo();
            ceiling.current_dir(&root).args(["build", "-p", "switchboard", "--lib", "--features", "ceiling"]);
            run(ceiling)?;
            let mut host = cargo();
            host.current_dir(&root).args(["test", "--workspace"]).args(&args[1..]);
            run(host)
        }
        Some("plugins") => {
            let dest = args.get(1).map_or_else(|| root.join("target/plugins"), Into::into);
            for p in xtask::build_plugins(&dest)? {
                println!("{}", p.display());
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask run|test|plugins [DIR]"),
    }
}
