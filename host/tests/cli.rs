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
fn check_config_json_output_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, format!("plugins_dir = \"{}\"\n", dir.path().display())).unwrap();
    let out = switchboard().args(["check-config", "--json", "--config"]).arg(&p).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
}
