//! The `switchboard` binary's operator commands.

use std::process::Command;

fn switchboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

fn check(config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("switchboard.toml");
    std::fs::write(&p, config).unwrap();
    let out = switchboard().args(["check-config", "--config"]).arg(&p).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_config_reports_all_three_mistakes_at_once() {
    let (ok, _, err) = check(
        r#"
listen = "localhost"
[accounts.wa-main]
plugin = "whatsapp-cloud"
secrets = { app_secret = "env:" }
[delivery]
workers = 0
"#,
    );
    assert!(!ok);
    assert!(err.contains("3 error(s)"), "{err}");
    for path in ["listen:", "accounts.wa-main.secrets.app_secret:", "delivery.workers:"] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }
}

#[test]
fn check_config_suggests_the_key_that_was_meant() {
    let (ok, _, err) = check("plugins_dri = \"/x\"\n");
    assert!(!ok);
    assert!(err.contains("did you mean `plugins_dir`"), "{err}");
}

#[test]
fn check_config_names_accounts_that_would_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "plugins_dir = \"{}\"\n[accounts.wa]\nplugin = \"whatsapp-cloud\"\nsecrets = {{ app_secret = \"env:SWITCHBOARD_SURELY_UNSET\" }}\n",
        dir.path().display()
    );
    let (ok, _, err) = check(&cfg);
    assert!(!ok);
    assert!(err.contains("accounts.wa: plugin `whatsapp-cloud` is not loaded"), "{err}");
}

#[test]
fn check_config_warns_when_deliveries_could_take_every_sandbox_slot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |batch: u32| format!("plugins_dir = \"{}\"\n[delivery]\nworkers = 4\nbatch = {batch}\n", dir.path().display());
    let (ok, _, err) = check(&cfg(64));
    assert!(ok, "a warning, not an error: {err}");
    assert!(err.contains("warning: delivery: workers × batch = 256") && err.contains("sandbox_busy"), "{err}");
    let (ok, _, err) = check(&cfg(48));
    assert!(ok && !err.contains("warning"), "192 of 256 leaves room for webhooks: {err}");
}

#[test]
fn check_config_json_output_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, format!("plugins_dir = \"{}\"\n", dir.path().display())).unwrap();
    let out = switchboard().args(["check-config", "--json", "--config"]).arg(&p).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["warnings"], serde_json::json!([]));
}
