//! The plugin author's path with the real binary: `switchboard plugin new` → `plugin build` →
//! `plugin test` → `plugin inspect`, for the generated channel and tool templates, in temp dirs.
//!
//! The scaffolds build into one shared target dir (`CARGO_TARGET_TMPDIR/plugin-scaffold`), so
//! the SDK and wit-bindgen compile for wasm32-wasip2 once (about a minute), not per test or run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn switchboard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-scaffold"));
    cmd.env_remove("SWITCHBOARD_LOG");
    cmd
}

/// Runs and returns (success, stdout, stderr), echoing both so a failure shows what happened.
fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run switchboard");
    let (out, err) = (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned());
    println!("$ {cmd:?}\n{out}");
    eprintln!("{err}");
    (status.success(), out, err)
}

fn sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn channel_template_new_build_test_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbt-channel");
    let name = "sbt-channel";

    // new: the SDK is found from the binary (no --sdk, no env).
    let (ok, out, _) = run(switchboard().args(["plugin", "new", name, "--dir"]).arg(&dir).env_remove("SWITCHBOARD_SDK_PATH"));
    assert!(ok, "plugin new failed");
    assert!(out.contains("created channel plugin `sbt-channel`"), "{out}");
    for f in ["Cargo.toml", "plugin.toml", "plugin-test.toml", "src/lib.rs", "fixtures/inbound/message.json", "fixtures/inbound/message.expect.json"] {
        assert!(dir.join(f).is_file(), "{f} not generated");
    }
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let sdk_path = std::fs::canonicalize(sdk()).unwrap();
    assert!(cargo_toml.contains(&format!("path = \"{}\"", sdk_path.display())), "{cargo_toml}");
    // A second `new` into the same directory is refused.
    let (ok, _, err) = run(switchboard().args(["plugin", "new", name, "--dir"]).arg(&dir));
    assert!(!ok && err.contains("not empty"), "{err}");

    // build → dist/NAME.wasm (a component) + dist/NAME.toml.
    let (ok, out, _) = run(switchboard().args(["plugin", "build", "--dir"]).arg(&dir));
    assert!(ok, "plugin build failed");
    assert!(out.contains("loads: channel, capabilities [text]"), "{out}");
    let wasm = dir.join("dist").join(format!("{name}.wasm"));
    let bytes = std::fs::read(&wasm).unwrap();
    assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "not a component");
    assert!(dir.join("dist").join(format!("{name}.toml")).is_file());

    // test: every fixture and outbound case passes against the real daemon.
    let (ok, out, _) = run(switchboard().args(["plugin", "test"]).arg(&dir));
    assert!(ok, "plugin test failed:\n{out}");
    for line in [
        "ok    load:",
        "ok    inbound message.json: 200, 1 event(s) [message]",
        "ok    inbound status_delivered.json: 200, 1 event(s) [status]",
        "ok    inbound unknown_type.json: 200, 1 event(s) [unsupported]",
        "ok    inbound: a forged signature is refused: 401, nothing stored",
        "ok    outbound \"text is delivered\": sent after 1 attempt(s) [delivered]",
        "ok    outbound \"a provider outage is retried\": sent after 2 attempt(s) [retry http-503, delivered]",
        "ok    outbound \"an unknown chat fails for good\": failed after 1 attempt(s) [permanent chat_not_found]",
        "plugin test: 9 passed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");

    // inspect: manifest, imports, exports, and the daemon's verdict.
    let (ok, out, _) = run(switchboard().args(["plugin", "inspect"]).arg(&wasm));
    assert!(ok, "plugin inspect failed");
    for part in [
        "world     channel-adapter",
        "verify standard-webhooks",
        "allowed_hosts [{api_base}]",
        "secret   webhook_secret:",
        "switchboard:plugin/host@0.2.0:",
        "switchboard:plugin/channel@0.2.0: describe, handshake, parse-inbound, deliver",
        "loads     yes",
    ] {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }
    let (ok, out, _) = run(switchboard().args(["plugin", "inspect", "--json"]).arg(&wasm));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["loads"].as_bool(), v["world"].as_str()), (Some(true), Some("channel-adapter")));
    assert_eq!(v["manifest"]["name"], name);
    assert_eq!(v["describe"]["capabilities"], serde_json::json!(["text"]));
    assert!(v["imports"].as_array().unwrap().iter().all(|i| {
        let n = i["name"].as_str().unwrap();
        n.starts_with("switchboard:plugin/") || n.starts_with("wasi:")
    }));

    // A wrong expectation fails its check, names the difference, and exits non-zero
    // (`--no-build`: the dist/ component as built above).
    edit(&dir.join("fixtures/inbound/message.expect.json"), "Is my order", "Is my parcel");
    let (ok, out, _) = run(switchboard().args(["plugin", "test", "--no-build", "--dir"]).arg(&dir));
    assert!(!ok, "a failing check must fail the command");
    assert!(out.contains("FAIL  inbound message.json: events[0].text: expected \"Hello! Is my parcel"), "{out}");
    assert!(out.contains("plugin test: 8 passed, 1 FAILED"), "{out}");
    edit(&dir.join("fixtures/inbound/message.expect.json"), "Is my parcel", "Is my order");

    // The same plugin verified with meta-sha256 instead: the fixtures are signed the Meta way.
    edit(&dir.join("plugin.toml"), "verify = \"standard-webhooks\"", "verify = \"meta-sha256\"");
    edit(&dir.join("plugin.toml"), "webhook_secret = ", "app_secret = ");
    edit(&dir.join("src/lib.rs"), "verify_scheme: \"standard-webhooks\"", "verify_scheme: \"meta-sha256\"");
    edit(&dir.join("plugin-test.toml"), "webhook_secret = \"whsec_c3dpdGNoYm9hcmQtcGx1Z2luLXRlc3Qta2V5LTAwMDE=\"", "app_secret = \"meta-app-secret\"");
    let (ok, out, _) = run(switchboard().args(["plugin", "test", "--dir"]).arg(&dir));
    assert!(ok, "plugin test (meta-sha256) failed:\n{out}");
    assert!(out.contains("(channel-adapter, verify meta-sha256)") && out.contains("plugin test: 9 passed"), "{out}");
}

#[test]
fn tool_template_new_build_test_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tool");
    let (ok, out, _) = run(switchboard().args(["plugin", "new", "sbt-tool", "--kind", "tool", "--dir"]).arg(&dir).env("SWITCHBOARD_SDK_PATH", sdk()));
    assert!(ok, "plugin new --kind tool failed");
    assert!(out.contains("created agent tool `sbt-tool`"), "{out}");

    let (ok, out, _) = run(switchboard().args(["plugin", "test", "--dir"]).arg(&dir));
    assert!(ok, "plugin test failed:\n{out}");
    assert!(out.contains("ok    invoke \"counts words\": succeeded"), "{out}");
    assert!(out.contains("ok    invoke \"refuses text over max_words\": failed"), "{out}");
    assert!(out.contains("plugin test: 4 passed"), "{out}");

    let (ok, _, _) = run(switchboard().args(["plugin", "build", "--dir"]).arg(&dir).arg("--out").arg(tmp.path().join("plugins")));
    assert!(ok, "plugin build failed");
    let (ok, out, _) = run(switchboard().args(["plugin", "inspect"]).arg(tmp.path().join("plugins/sbt-tool.wasm")));
    assert!(ok, "plugin inspect failed");
    assert!(out.contains("world     agent-tool") && out.contains("switchboard:plugin/tool@0.2.0: describe, invoke"), "{out}");
    assert!(out.contains("loads     yes"), "{out}");
}

#[test]
fn inspect_refuses_what_is_not_a_component_and_new_checks_names() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\x00\x00\x00").unwrap();
    let (ok, _, err) = run(switchboard().args(["plugin", "inspect"]).arg(&bogus));
    assert!(!ok && err.contains("error:"), "{err}");

    let (ok, _, err) = run(switchboard().args(["plugin", "new", "Bad Name", "--dir"]).arg(tmp.path().join("x")));
    assert!(!ok && err.contains("plugin name"), "{err}");
    let (ok, _, err) = run(switchboard().args(["plugin", "new", "ok-name", "--sdk", "/nonexistent", "--dir"]).arg(tmp.path().join("y")));
    assert!(!ok && err.contains("--sdk"), "{err}");
}
