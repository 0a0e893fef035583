//! Disk full: with the redb file on a tiny tmpfs that fills up, webhooks are answered 503 (so
//! the provider retries), nothing that got a 200 is lost, and the daemon takes webhooks again
//! once space returns, without a restart. Needs `mount` (root, as in CI); skipped otherwise.

use std::path::Path;
use std::process::Command;
use switchboard_tests::*;

/// A text webhook with its own wamid.
fn webhook(n: u64) -> Vec<u8> {
    let s = String::from_utf8(fixture("text.json")).unwrap();
    s.replace("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &format!("wamid.FULL{n:08}")).into_bytes()
}

/// A size-limited tmpfs at `at`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status().is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` to the last byte; returns the filler's path.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut size = chunk.len();
    while size > 0 {
        match f.write(&chunk[..size]) {
            Ok(_) => {}
            Err(_) => size /= 2,
        }
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_acknowledged_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&dir.path().join("data"), "8m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run");
        return;
    };
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let status = |r: reqwest::Response| r.status().as_u16();

    // Before: a webhook is stored.
    let mut acked = Vec::new();
    assert_eq!(status(d.signed_webhook(&webhook(0)).await), 200);
    acked.push(0u64);

    // Full: every webhook is refused with 503 until space returns; none is half-stored.
    let filler = fill(&dir.path().join("data"));
    let mut refused = Vec::new();
    for n in 1..=20u64 {
        match status(d.signed_webhook(&webhook(n)).await) {
            200 => acked.push(n),
            503 => refused.push(n),
            other => panic!("webhook {n} on a full disk: {other}"),
        }
    }
    eprintln!("on a full disk: {} acknowledged (free pages left in the file), {} refused", acked.len() - 1, refused.len());
    assert!(!refused.is_empty(), "a full disk must refuse webhooks");
    // An agent's send is refused the same way (and retried with the same key later).
    let send = serde_json::json!({ "account": "wa-main", "to": USER, "text": "while full" });
    let (code, body) = d.api_with_key("/v1/messages", send.clone(), Some("full-1")).await;
    assert_eq!(code, 503, "{body}");
    let (code, ready) = d.get("/readyz").await;
    assert_eq!(code, 503, "readyz while the disk is full: {ready}");

    // Space returns: the provider's retries of the refused webhooks are stored, no restart.
    std::fs::remove_file(&filler).unwrap();
    for &n in &refused {
        let mut tries = 0;
        loop {
            let s = status(d.signed_webhook(&webhook(n)).await);
            if s == 200 {
                acked.push(n);
                break;
            }
            tries += 1;
            assert!(tries < 50, "webhook {n} still refused after space returned: {s}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), acked.len() as u64, "every acknowledged webhook exactly once");
    let (code, first) = d.api_with_key("/v1/messages", send.clone(), Some("full-1")).await;
    assert_eq!(code, 202, "{first}");
    let (_, again) = d.api_with_key("/v1/messages", send, Some("full-1")).await;
    assert_eq!(first["id"], again["id"], "the retried key names one message");
    assert!(d.daemon.app().store.reopens() >= 1, "recovered by reopening, not by a restart");
    let (code, ready) = d.get("/readyz").await;
    assert_eq!(code, 200, "ready again: {ready}");
    d.stop().await;

    // And it all survives a restart.
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), acked.len() as u64);
    d.stop().await;
}
