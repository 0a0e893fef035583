//! `switchboard plugin new | build | inspect | test`: the plugin author's commands.
//!
//! * `new` writes a plugin crate from the templates embedded in this binary
//!   (`host/templates/{channel,tool}`), with its SDK dependency pointing at a local
//!   `plugins/sdk` (the SDK is not on crates.io; see [`resolve_sdk`]).
//! * `build` runs `cargo build --release --target wasm32-wasip2` and writes `NAME.wasm` +
//!   `NAME.toml` into the output directory, the layout `plugins_dir` expects, then checks the
//!   result loads.
//! * `inspect` prints a component's manifest, imports and exports, and whether the daemon would
//!   load it ([`switchboard::runtime::inspect`], the daemon's own load checks).
//! * `test` builds, then runs the plugin in a real in-process daemon ([`harness`]).

mod harness;
mod mock;
mod sign;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use switchboard::runtime::manifest::Manifest;
use switchboard::runtime::{Described, Inspection};

/// Overrides where `plugin new` finds the guest SDK crate.
pub const SDK_ENV: &str = "SWITCHBOARD_SDK_PATH";
const TARGET: &str = "wasm32-wasip2";

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate that builds and passes `plugin test` as generated.
    New {
        /// Plugin name: a lowercase letter, then up to 63 of a-z, 0-9, '-', '_'.
        name: String,
        #[arg(long, value_enum, default_value_t = Kind::Channel)]
        kind: Kind,
        /// Directory to create (default ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The guest SDK crate (`plugins/sdk` of a Switchboard checkout; it needs `../../wit`).
        /// Default: $SWITCHBOARD_SDK_PATH, then a checkout containing this binary, then the
        /// checkout this binary was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin into a component: OUT/NAME.wasm + OUT/NAME.toml, ready for plugins_dir.
    Build {
        #[command(flatten)]
        dir: DirArg,
        /// Output directory (default DIR/dist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a plugin's manifest (NAME.toml beside it), imports and exports, and whether the
    /// daemon would load it.
    Inspect {
        /// The component (`NAME.wasm`).
        wasm: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build the plugin, then replay its fixtures and plugin-test.toml cases against a real
    /// daemon and a mock provider; exits non-zero if any check fails.
    Test {
        #[command(flatten)]
        dir: DirArg,
        /// Test OUT/NAME.wasm as already built (by `plugin build`) instead of building.
        #[arg(long)]
        no_build: bool,
        /// Where `--no-build` looks (default DIR/dist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct DirArg {
    /// The plugin crate (default: the current directory).
    #[arg(long = "dir", value_name = "DIR")]
    flag: Option<PathBuf>,
    /// Same as --dir.
    #[arg(value_name = "DIR", conflicts_with = "flag")]
    positional: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> PathBuf {
        self.flag.clone().or_else(|| self.positional.clone()).unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A channel adapter (`channel-adapter` world): webhooks in, messages out.
    Channel,
    /// An agent tool (`agent-tool` world): invoked by agents with JSON arguments.
    Tool,
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    let result = match cmd {
        PluginCommand::New { name, kind, dir, sdk } => new(&name, kind, dir, sdk),
        PluginCommand::Build { dir, out } => build_cmd(&dir.path(), out),
        PluginCommand::Inspect { wasm, json } => inspect_cmd(&wasm, json),
        PluginCommand::Test { dir, no_build, out } => test_cmd(&dir.path(), no_build, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tokio() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("tokio runtime: {e}"))
}

// ---------------------------------------------------------------------------------------------
// new

/// (path in the new crate, template text) for each kind.
const CHANNEL_TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/channel/Cargo.toml.tmpl")),
    ("plugin.toml", include_str!("../templates/channel/plugin.toml")),
    ("plugin-test.toml", include_str!("../templates/channel/plugin-test.toml")),
    (".gitignore", include_str!("../templates/channel/.gitignore")),
    ("src/lib.rs", include_str!("../templates/channel/src/lib.rs")),
    ("fixtures/inbound/message.json", include_str!("../templates/channel/fixtures/inbound/message.json")),
    ("fixtures/inbound/message.expect.json", include_str!("../templates/channel/fixtures/inbound/message.expect.json")),
    ("fixtures/inbound/status_delivered.json", include_str!("../templates/channel/fixtures/inbound/status_delivered.json")),
    (
        "fixtures/inbound/status_delivered.expect.json",
        include_str!("../templates/channel/fixtures/inbound/status_delivered.expect.json"),
    ),
    ("fixtures/inbound/unknown_type.json", include_str!("../templates/channel/fixtures/inbound/unknown_type.json")),
    ("fixtures/inbound/unknown_type.expect.json", include_str!("../templates/channel/fixtures/inbound/unknown_type.expect.json")),
    ("fixtures/outbound/send_ok.json", include_str!("../templates/channel/fixtures/outbound/send_ok.json")),
    ("fixtures/outbound/error_chat_not_found.json", include_str!("../templates/channel/fixtures/outbound/error_chat_not_found.json")),
];

const TOOL_TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/tool/Cargo.toml.tmpl")),
    ("plugin.toml", include_str!("../templates/tool/plugin.toml")),
    ("plugin-test.toml", include_str!("../templates/tool/plugin-test.toml")),
    (".gitignore", include_str!("../templates/tool/.gitignore")),
    ("src/lib.rs", include_str!("../templates/tool/src/lib.rs")),
];

/// A plugin name the manifest accepts that is also a valid cargo package name.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(format!("plugin name `{name}`: use a lowercase letter, then up to 63 of a-z, 0-9, '-', '_'")) }
}

/// Where the guest SDK crate is, in this order: `--sdk`, `$SWITCHBOARD_SDK_PATH`, a
/// `plugins/sdk` in a directory containing this binary (a checkout's `target/…/switchboard`),
/// the checkout this binary was built from. The SDK generates its bindings from `../../wit`,
/// so only a checkout's `plugins/sdk` (or a copy with `wit/` two levels up) works.
pub fn resolve_sdk(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let check = |p: &Path| -> Result<PathBuf, String> {
        let manifest = std::fs::read_to_string(p.join("Cargo.toml")).map_err(|e| format!("{}: not the SDK crate ({e})", p.display()))?;
        if !manifest.contains("name = \"switchboard-sdk\"") {
            return Err(format!("{}: Cargo.toml is not the switchboard-sdk crate", p.display()));
        }
        if !p.join("../../wit/switchboard.wit").is_file() {
            return Err(format!("{}: the SDK needs the WIT files at ../../wit/switchboard.wit", p.display()));
        }
        std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(p) = explicit {
        return check(&p).map_err(|e| format!("--sdk {e}"));
    }
    if let Some(p) = std::env::var_os(SDK_ENV).filter(|v| !v.is_empty()) {
        return check(Path::new(&p)).map_err(|e| format!("${SDK_ENV}: {e}"));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|d| d.join("plugins/sdk")));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk"));
    candidates.iter().find_map(|c| check(c).ok()).ok_or_else(|| {
        format!(
            "cannot find the Switchboard guest SDK (plugins/sdk of a Switchboard checkout): pass --sdk PATH or set {SDK_ENV}"
        )
    })
}

fn render(template: &str, name: &str, sdk: &Path) -> String {
    let sdk = sdk.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    template.replace("{{name}}", name).replace("{{sdk_path}}", &sdk)
}

fn new(name: &str, kind: Kind, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<ExitCode, String> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.next().is_some() {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let sdk = resolve_sdk(sdk)?;
    let files = match kind {
        Kind::Channel => CHANNEL_TEMPLATE,
        Kind::Tool => TOOL_TEMPLATE,
    };
    for (path, text) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, render(text, name, &sdk)).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    // Start from the versions the SDK is built and tested with (cargo drops what is unused),
    // so a fresh plugin does not pick up a newer wit-bindgen than the toolchain supports.
    let lock = sdk.join("../Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock")).map_err(|e| format!("{}: {e}", lock.display()))?;
    }
    let what = match kind {
        Kind::Channel => "channel plugin",
        Kind::Tool => "agent tool",
    };
    println!("created {what} `{name}` in {} (SDK: {})", dir.display(), sdk.display());
    println!();
    println!("  cd {}", dir.display());
    println!("  switchboard plugin test     # build, then replay fixtures/ and plugin-test.toml against a real daemon");
    println!("  switchboard plugin build    # -> dist/{name}.wasm + dist/{name}.toml: copy both into plugins_dir");
    println!("  cargo test                  # native unit tests");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// build

/// A built plugin: its manifest and the component cargo produced.
pub struct Built {
    pub manifest: Manifest,
    pub wasm: PathBuf,
}

fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Manifest::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `rustup target add wasm32-wasip2` unless installed. Without rustup, cargo says what is missing.
fn ensure_wasm_target() {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return;
    };
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        return;
    }
    eprintln!("installing the {TARGET} target: rustup target add {TARGET}");
    let _ = Command::new("rustup").args(["target", "add", TARGET]).status();
}

/// Cargo's per-crate variables leak into a nested cargo when `switchboard` itself runs under
/// cargo (`cargo run`, tests, build scripts); keep only the user's cargo configuration.
fn scrub_cargo_env(cmd: &mut Command) {
    const KEEP: &[&str] = &[
        "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "CARGO_INCREMENTAL", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_", "CARGO_TERM_", "CARGO_PROFILE_",
    ];
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && !KEEP.iter().any(|keep| k.starts_with(keep)) {
            cmd.env_remove(k.as_ref());
        }
    }
}

/// `cargo build --release --target wasm32-wasip2` in `dir`; cargo's progress and errors go
/// to stderr, the component's path comes from its JSON messages.
pub fn build(dir: &Path) -> Result<Built, String> {
    let manifest = read_manifest(dir)?;
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        return Err(format!("{}: no Cargo.toml", dir.display()));
    }
    ensure_wasm_target();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&cargo_toml)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    scrub_cargo_env(&mut cmd);
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build failed in {}", dir.display()));
    }
    let wasm = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or("cargo built no .wasm: is the crate a `cdylib` (crate-type = [\"cdylib\", \"rlib\"])?")?;
    Ok(Built { manifest, wasm })
}

fn build_cmd(dir: &Path, out: Option<PathBuf>) -> Result<ExitCode, String> {
    let built = build(dir)?;
    let out = out.unwrap_or_else(|| dir.join("dist"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let name = &built.manifest.name;
    let wasm = out.join(format!("{name}.wasm"));
    std::fs::copy(&built.wasm, &wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    std::fs::copy(dir.join("plugin.toml"), out.join(format!("{name}.toml"))).map_err(|e| e.to_string())?;
    let inspection = tokio()?.block_on(switchboard::runtime::inspect(&wasm)).map_err(|e| e.to_string())?;
    println!("built {} ({} KiB) + {name}.toml", wasm.display(), inspection.size.div_ceil(1024));
    match &inspection.verdict {
        Ok(d) => {
            println!("loads: {}", describe_line(d));
            println!("install: copy both files into the daemon's plugins_dir");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("error: the daemon would refuse it: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// inspect

pub(crate) fn describe_line(d: &Described) -> String {
    match d {
        Described::Channel { capabilities } => format!("channel, capabilities [{}]", capabilities.join(", ")),
        Described::Tool(t) => format!("tool, \"{}\"{}", t.description, if t.requires_approval { ", requires approval" } else { "" }),
    }
}

fn inspect_cmd(wasm: &Path, json: bool) -> Result<ExitCode, String> {
    let i = tokio()?.block_on(switchboard::runtime::inspect(wasm)).map_err(|e| e.to_string())?;
    if json {
        println!("{}", inspection_json(&i));
    } else {
        print!("{}", inspection_text(&i));
    }
    Ok(if i.verdict.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn inspection_json(i: &Inspection) -> serde_json::Value {
    use serde_json::json;
    let items = |v: &[switchboard::runtime::Item]| -> Vec<serde_json::Value> {
        v.iter().map(|it| json!({ "name": it.name, "functions": it.functions })).collect()
    };
    let manifest = match &i.manifest {
        Ok(m) => json!({
            "name": m.name, "version": m.version, "world": m.world, "verify": m.verify,
            "allowed_hosts": m.allowed_hosts, "requires_approval": m.requires_approval,
            "secrets": m.secrets,
            "settings": m.settings.iter().map(|(k, s)| (k.clone(), json!({
                "description": s.description, "required": s.required, "default": s.default,
            }))).collect::<serde_json::Map<_, _>>(),
        }),
        Err(e) => json!({ "error": e }),
    };
    let (loads, describe, error) = match &i.verdict {
        Ok(Described::Channel { capabilities }) => (true, json!({ "capabilities": capabilities }), None),
        Ok(Described::Tool(t)) => (true, serde_json::to_value(t).unwrap_or_default(), None),
        Err(e) => (false, serde_json::Value::Null, Some(e.clone())),
    };
    json!({
        "wasm": i.wasm.display().to_string(), "size": i.size, "sha256": i.sha256,
        "manifest_path": i.manifest_path.display().to_string(), "manifest": manifest,
        "world": i.world, "imports": items(&i.imports), "exports": items(&i.exports),
        "loads": loads, "describe": describe, "error": error,
    })
}

fn inspection_text(i: &Inspection) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{}  {} bytes  sha256:{}", i.wasm.display(), i.size, i.sha256);
    let _ = writeln!(s, "world     {}", i.world.unwrap_or("(none: exports neither switchboard:plugin/channel nor /tool)"));
    match &i.manifest {
        Ok(m) => {
            let _ = writeln!(s, "manifest  {}", i.manifest_path.display());
            let _ = writeln!(s, "  name {}  version {}  world {}", m.name, m.version, m.world);
            if !m.verify.is_empty() {
                let _ = writeln!(s, "  verify {}", m.verify);
            }
            if m.requires_approval {
                let _ = writeln!(s, "  requires_approval true");
            }
            let _ = writeln!(s, "  allowed_hosts [{}]", m.allowed_hosts.join(", "));
            for (k, d) in &m.secrets {
                let _ = writeln!(s, "  secret   {k}: {d}");
            }
            for (k, spec) in &m.settings {
                let mut extra = Vec::new();
                if spec.required {
                    extra.push("required".to_string());
                }
                if let Some(d) = &spec.default {
                    extra.push(format!("default {d:?}"));
                }
                let extra = if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) };
                let _ = writeln!(s, "  setting  {k}: {}{extra}", spec.description);
            }
        }
        Err(e) => {
            let _ = writeln!(s, "manifest  {}: {e}", i.manifest_path.display());
        }
    }
    for (title, items) in [("imports", &i.imports), ("exports", &i.exports)] {
        let _ = writeln!(s, "{title}");
        for it in items {
            if it.functions.is_empty() {
                let _ = writeln!(s, "  {}", it.name);
            } else {
                let _ = writeln!(s, "  {}: {}", it.name, it.functions.join(", "));
            }
        }
    }
    match &i.verdict {
        Ok(d) => {
            let _ = writeln!(s, "describe  {}", describe_line(d));
            let _ = writeln!(s, "loads     yes: manifest, imports, world and describe() pass the daemon's checks");
        }
        Err(e) => {
            let _ = writeln!(s, "loads     NO: {e}");
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// test

fn test_cmd(dir: &Path, no_build: bool, out: Option<PathBuf>) -> Result<ExitCode, String> {
    let built = if no_build {
        let manifest = read_manifest(dir)?;
        let wasm = out.unwrap_or_else(|| dir.join("dist")).join(format!("{}.wasm", manifest.name));
        if !wasm.is_file() {
            return Err(format!("{}: not built (run `switchboard plugin build`)", wasm.display()));
        }
        Built { manifest, wasm }
    } else {
        build(dir)?
    };
    init_logging();
    let m = &built.manifest;
    println!("plugin `{}` {} ({}{}): {}", m.name, m.version, m.world, if m.verify.is_empty() { String::new() } else { format!(", verify {}", m.verify) }, built.wasm.display());
    let report = tokio()?.block_on(harness::run(dir, m, &built.wasm))?;
    println!();
    if report.failed == 0 {
        println!("plugin test: {} passed", report.passed);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("plugin test: {} passed, {} FAILED", report.passed, report.failed);
        Ok(ExitCode::FAILURE)
    }
}

/// On stderr: the daemon's errors, and the runtime's warnings (a plugin trap or deadline, the
/// plugin's own warn/error lines), not the rejections the checks provoke on purpose.
/// `SWITCHBOARD_LOG=info` shows everything, the plugin's info lines included.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,switchboard::runtime=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_manifest_and_cargo_safe() {
        for ok in ["acme", "acme-chat", "a1_b2", "x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "1acme", "-acme", "acme chat", "acme/chat", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_template_manifest_is_valid_once_rendered() {
        for files in [CHANNEL_TEMPLATE, TOOL_TEMPLATE] {
            let text = files.iter().find(|(p, _)| *p == "plugin.toml").map(|(_, t)| render(t, "acme-chat", Path::new("/sdk"))).unwrap();
            let m = Manifest::parse(&text).unwrap();
            assert_eq!(m.name, "acme-chat");
            let cargo = files.iter().find(|(p, _)| *p == "Cargo.toml").map(|(_, t)| render(t, "acme-chat", Path::new("/s\"dk"))).unwrap();
            let parsed: toml::Table = toml::from_str(&cargo).unwrap();
            assert_eq!(parsed["package"]["name"].as_str(), Some("acme-chat"));
            assert_eq!(parsed["dependencies"]["switchboard-sdk"]["path"].as_str(), Some("/s\"dk"));
        }
    }

    #[test]
    fn every_template_file_is_embedded() {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                    out.push(rel.strip_suffix(".tmpl").map_or(rel.clone(), str::to_string));
                }
            }
        }
        for (kind, files) in [("channel", CHANNEL_TEMPLATE), ("tool", TOOL_TEMPLATE)] {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates").join(kind);
            let mut on_disk = Vec::new();
            walk(&root, &root, &mut on_disk);
            on_disk.sort();
            let mut embedded: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
            embedded.sort();
            assert_eq!(embedded, on_disk, "host/templates/{kind} and the embedded list differ");
        }
    }

    #[test]
    fn the_sdk_of_this_checkout_is_found() {
        let sdk = resolve_sdk(Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk"))).unwrap();
        assert!(sdk.join("src/lib.rs").is_file());
        assert!(resolve_sdk(Some(PathBuf::from("/nonexistent"))).is_err());
    }
}
