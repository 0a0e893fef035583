//! Running the real `switchboard` binary in tests: start it on a config, find its address in
//! its JSON logs, collect every log line, stop it with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// `cargo test --workspace` builds the daemon binary next to the test executables.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("switchboard");
    assert!(bin.exists(), "{} is missing: run `cargo build -p switchboard` (cargo xtask test does)", bin.display());
    bin
}

pub struct Running {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// A test that fails mid-way must not leave a daemon running (it would eat the CPU of every
/// later test): dropping a `Running` kills the process.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(config: &std::path::Path) -> Running {
    let mut child = Command::new(binary())
        .args(["run", "--log-json", "--config"])
        .arg(config)
        .env("SWITCHBOARD_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let l = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "listening"
            {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_string());
            }
            l.lock().unwrap().push(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let l = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
        panic!("daemon did not start:\n{}", log.lock().unwrap().join("\n"));
    });
    Running { child, base: format!("http://{addr}"), log }
}

pub fn terminate(mut r: Running) -> Vec<String> {
    Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status().unwrap();
    let status = r.child.wait().unwrap();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    r.log.lock().unwrap().clone()
}

/// SIGKILL: no shutdown, no flush: what a crash looks like to the store.
pub fn kill9(mut r: Running) -> Vec<String> {
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    r.log.lock().unwrap().clone()
}
