//! Build orchestration shared by `cargo xtask` and the integration tests' build script:
//! the plugins are a separate cargo workspace for `wasm32-wasip2`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins shipped with the daemon: (crate directory under plugins/, artifact stem, plugin name).
pub const BUNDLED: &[(&str, &str, &str)] = &[
    ("channels/whatsapp-cloud", "whatsapp_cloud", "whatsapp-cloud"),
    ("channels/twilio", "twilio", "twilio"),
    ("channels/telegram", "telegram", "telegram"),
    ("channels/slack", "slack", "slack"),
    ("channels/webhook", "webhook", "webhook"),
    ("tools/http-get", "http_get", "http-get"),
    ("tools/kv-note", "kv_note", "kv-note"),
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repo").to_path_buf()
}

/// `rustup target add wasm32-wasip2`; a no-op when it is already installed.
pub fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(o) = &out
        && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    let status = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status().context("running rustup")?;
    if !status.success() {
        bail!("rustup target add wasm32-wasip2 failed");
    }
    Ok(())
}

/// Builds every bundled plugin (release, wasm32-wasip2) and installs `NAME.wasm` with its
/// manifest `NAME.toml` into `dest`, the layout `plugins_dir` expects.
pub fn build_plugins(dest: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let root = repo_root();
    let plugins = root.join("plugins");
    build_wasm_workspace(&plugins)?;
    std::fs::create_dir_all(dest)?;
    let mut installed = Vec::new();
    for (dir, stem, name) in BUNDLED {
        let wasm = plugins.join("target/wasm32-wasip2/release").join(format!("{stem}.wasm"));
        let target = dest.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &target).with_context(|| format!("copying {}", wasm.display()))?;
        std::fs::copy(plugins.join(dir).join("plugin.toml"), dest.join(format!("{name}.toml")))?;
        installed.push(target);
    }
    Ok(installed)
}

/// Test-only guests under `tests/guests/` (hostile plugins for the sandbox tests): (crate
/// directory, artifact stem, plugin name). Built for the integration tests only, never shipped.
pub const TEST_GUESTS: &[(&str, &str, &str)] = &[("hostile", "hostile", "hostile")];

/// Builds the test-only guests and installs `NAME.wasm` + `NAME.toml` into `dest`. They share
/// `plugins/target` so the SDK and its dependencies are compiled once for both workspaces.
pub fn build_test_guests(dest: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let root = repo_root();
    let guests = root.join("tests/guests");
    build_wasm_workspace(&guests)?;
    std::fs::create_dir_all(dest)?;
    let mut installed = Vec::new();
    for (dir, stem, name) in TEST_GUESTS {
        let wasm = root.join("plugins/target/wasm32-wasip2/release").join(format!("{stem}.wasm"));
        let target = dest.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &target).with_context(|| format!("copying {}", wasm.display()))?;
        std::fs::copy(guests.join(dir).join("plugin.toml"), dest.join(format!("{name}.toml")))?;
        installed.push(target);
    }
    Ok(installed)
}

/// `cargo build --release --target wasm32-wasip2` in the workspace at `dir`, into `plugins/target`.
fn build_wasm_workspace(dir: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(repo_root().join("plugins/target"));
    // When called from a build script, cargo's variables for the outer build must not leak
    // into this one (they would point it at the host target and profile).
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" || k == "RUSTC" {
            cmd.env_remove(&k);
        }
    }
    let status = cmd.status().with_context(|| format!("running cargo in {}", dir.display()))?;
    if !status.success() {
        bail!("building {} failed", dir.display());
    }
    Ok(())
}
