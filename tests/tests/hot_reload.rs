//! Hot reload: replacing a plugin file under load swaps versions with no failed delivery, and a
//! broken file keeps the old version serving, with the error in `/readyz`.

use serde_json::json;
use std::path::Path;
use std::time::Duration;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard_tests::*;

/// `wasm` with a custom section appended: a different file (and digest) with the same code.
fn with_custom_section(wasm: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"switchboard-test";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Installs version `version` of whatsapp-cloud into `plugins`: the manifest first, then the
/// wasm, each replaced atomically (a rename), as a deploy tool would.
fn deploy(plugins: &Path, version: &str, wasm: &[u8]) {
    let manifest = std::fs::read_to_string(plugins_dir().join("whatsapp-cloud.toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    let tmp = plugins.join(".incoming");
    std::fs::write(&tmp, manifest).unwrap();
    std::fs::rename(&tmp, plugins.join("whatsapp-cloud.toml")).unwrap();
    std::fs::write(&tmp, wasm).unwrap();
    std::fs::rename(&tmp, plugins.join("whatsapp-cloud.wasm")).unwrap();
}

async fn version_becomes(d: &TestDaemon, version: &str) {
    for _ in 0..1_000 {
        if d.daemon.app().runtime.plugin("whatsapp-cloud").is_some_and(|p| p.manifest.version == version) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("whatsapp-cloud never became version {version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_plugin_under_load_swaps_versions_and_a_broken_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    let mock = MockProvider::start().await;
    let text = config_toml(dir.path(), &mock.base_url()).replace(
        &format!("plugins_dir = \"{}\"", plugins_dir().display()),
        &format!("plugins_dir = \"{}\"", plugins.display()),
    );
    let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), ManualClock::new(T0)).await;
    assert_eq!(d.signed_webhook(&fixture("text.json")).await.status(), 200);
    let original = std::fs::read(plugins_dir().join("whatsapp-cloud.wasm")).unwrap();

    // Load: a message every 25 ms while versions change under it. (At most 10 in all: the
    // manual clock never refills the per-recipient burst of the rate limiter.)
    let (http, base) = (d.http.clone(), d.base.clone());
    let traffic = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..9 {
            let resp = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(API_TOKEN)
                .json(&json!({ "account": "wa-main", "to": USER, "text": format!("during reload {i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 202);
            ids.push(resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ids
    });

    deploy(&plugins, "0.1.1", &with_custom_section(&original, "v1"));
    version_becomes(&d, "0.1.1").await;
    deploy(&plugins, "0.1.2", &with_custom_section(&original, "v2"));
    version_becomes(&d, "0.1.2").await;

    // A broken file: the error shows, version 0.1.2 keeps serving.
    std::fs::write(plugins.join("whatsapp-cloud.wasm"), b"\0asm not really").unwrap();
    let key = plugins.join("whatsapp-cloud.wasm").display().to_string();
    let mut shown = false;
    for _ in 0..1_000 {
        if d.daemon.app().runtime.load_errors().contains_key(&key) {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(shown, "the broken file is reported");
    let (_, ready) = d.get("/readyz").await;
    assert!(ready["plugin_errors"][&key].as_str().unwrap().contains("compile"), "{ready:#}");
    assert_eq!(d.daemon.app().runtime.plugin("whatsapp-cloud").unwrap().manifest.version, "0.1.2");

    let ids = traffic.await.unwrap();
    for id in &ids {
        let m = d.message_until(id, |m| m["status"] == "sent").await;
        assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "no delivery failed: {m:#}");
    }
    let (s, m) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "after the broken file" })).await;
    assert_eq!(s, 202, "{m}");
    d.message_until(m["id"].as_str().unwrap(), |m| m["status"] == "sent").await;

    // A good file again clears the error.
    deploy(&plugins, "0.1.3", &with_custom_section(&original, "v3"));
    version_becomes(&d, "0.1.3").await;
    assert!(d.daemon.app().runtime.load_errors().is_empty());
    let stats = d.daemon.app().runtime.stats()["whatsapp-cloud"];
    assert_eq!(stats.failures(), 0, "{stats:?}");
    assert!(stats.reloads >= 3 && stats.reload_failures >= 1, "{stats:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_manifest_that_widens_the_allowlist_is_not_hot_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    let text = config_toml(dir.path(), "http://127.0.0.1:9").replace(
        &format!("plugins_dir = \"{}\"", plugins_dir().display()),
        &format!("plugins_dir = \"{}\"", plugins.display()),
    );
    let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), ManualClock::new(T0)).await;
    let manifest = std::fs::read_to_string(plugins.join("whatsapp-cloud.toml"))
        .unwrap()
        .replace("allowed_hosts = [", "allowed_hosts = [\"evil.example\", ");
    std::fs::write(plugins.join("whatsapp-cloud.toml"), manifest).unwrap();
    let key = plugins.join("whatsapp-cloud.wasm").display().to_string();
    eventually("the refusal is reported", || d.daemon.app().runtime.load_errors().contains_key(&key)).await;
    assert!(d.daemon.app().runtime.load_errors()[&key].contains("restart the daemon"));
    let serving = d.daemon.app().runtime.manifests();
    assert!(!serving["whatsapp-cloud"].allowed_hosts.iter().any(|h| h == "evil.example"));
    d.stop().await;
}
