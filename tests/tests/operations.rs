//! Operations: systemd hears READY only once the daemon serves and then gets watchdog pings;
//! SIGTERM in the middle of a burst of 1,000 messages drains in time and a restart delivers
//! each exactly once; `/metrics` is strict OpenMetrics whose counters move as a scripted
//! scenario expects; SIGHUP/`reload` applies accounts, tokens and limits without dropping a
//! delivery in flight; a shutdown that runs out of time releases its leases; an online backup
//! restores into a working daemon; and a full scenario's logs hold no secret and no phone number.

use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard_tests::*;

// ---------------------------------------------------------------------------------------------
// The real binary.

/// `cargo test --workspace` builds the daemon binary next to the test executables.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("switchboard");
    assert!(bin.exists(), "{} is missing: run `cargo build -p switchboard` (cargo xtask test does)", bin.display());
    bin
}

struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    addr: std::sync::mpsc::Receiver<String>,
    /// The threads reading stdout and stderr; they end at EOF, once the process is gone.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits for the "listening" log line and returns the base URL.
    fn base(&self) -> String {
        let Ok(addr) = self.addr.recv_timeout(Duration::from_secs(60)) else {
            let logs = self.logs();
            panic!("daemon did not start:\n{logs}");
        };
        format!("http://{addr}")
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([&format!("-{sig}"), &self.pid()]).status().unwrap().success());
    }

    fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Polls the logs (5 ms steps, at most 30 s) for a line containing `what`.
    fn wait_log(&self, what: &str) {
        let t = Instant::now();
        while !self.logs().contains(what) {
            assert!(t.elapsed() < Duration::from_secs(30), "no log line with {what:?}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then the exit status, how long the exit took, and the logs.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration, String) {
        let t = Instant::now();
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        let took = t.elapsed();
        // Every line the process wrote is read before the logs are looked at.
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let logs = self.logs();
        (status, took, logs)
    }
}

fn spawn(config: &Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(binary());
    cmd.args(["run", "--log-json", "--config"]).arg(config).env("SWITCHBOARD_LOG", "debug,cranelift_codegen=info,wasmtime=info,wasmtime_internal_cache=info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, addr) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let l = log.clone();
    let out = std::thread::spawn(move || {
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
    let err = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    Running { child, log, addr, readers: vec![out, err] }
}

/// `config_toml` with a plugins dir of its own holding only the WhatsApp plugin (starts fast:
/// one plugin to compile).
fn wa_config(dir: &Path, graph: &str) -> String {
    let plugins = dir.join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    config_toml(dir, graph).replace(&plugins_dir().display().to_string(), &plugins.display().to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.1 GET over a fresh connection: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the listener accepts");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// systemd

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within the read timeout");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// Receives notifications until one has `line`; returns it and those before it.
fn until(sock: &UnixDatagram, line: &str) -> (String, Vec<String>) {
    let mut before = Vec::new();
    loop {
        let m = recv(sock);
        if has_line(&m, line) {
            return (m, before);
        }
        before.push(m);
    }
}

#[test]
fn systemd_hears_ready_only_once_the_listener_serves_then_watchdog_pings_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("switchboard.toml");
    let text = wa_config(dir.path(), "http://127.0.0.1:9").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&cfg, text).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();

    // Pings every 100 ms.
    let d = spawn(&cfg, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")]);
    let (ready, before) = until(&sock, "READY=1");
    // At the moment READY arrives, the listener accepts and the daemon serves, plugins loaded.
    let (status, body) = http_get(port, "/readyz");
    assert_eq!(status, 200, "{body}");
    let readyz: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(readyz["plugins"].as_array().unwrap().iter().any(|p| p == "whatsapp-cloud"), "{body}");
    assert_eq!(readyz["accounts"]["wa-main"]["ready"], true, "{body}");
    assert!(before.iter().any(|m| m.contains("STATUS=starting")), "STATUS lines during startup: {before:?}");
    assert!(!before.iter().any(|m| has_line(m, "WATCHDOG=1")), "no pings before READY: {before:?}");
    assert!(ready.contains("STATUS=ready: 1 account(s) running"), "{ready}");

    let t = Instant::now();
    for _ in 0..3 {
        until(&sock, "WATCHDOG=1");
    }
    assert!(t.elapsed() < Duration::from_secs(10), "pings every WATCHDOG_USEC/2");

    d.signal("HUP");
    let (reloading, _) = until(&sock, "RELOADING=1");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    let (again, _) = until(&sock, "READY=1");
    assert!(again.contains("STATUS=ready"), "{again}");
    d.wait_log("config reloaded");

    let pid = d.pid();
    let waiter = std::thread::spawn(move || d.terminate());
    let (stopping, _) = until(&sock, "STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let (status, _, logs) = waiter.join().unwrap();
    assert!(status.success(), "SIGTERM exits 0 (pid {pid}): {status}\n{logs}");
    assert!(logs.contains("config reloaded"), "{logs}");
}

// ---------------------------------------------------------------------------------------------
// Draining during a burst

const BURST: usize = 1_000;

fn burst_config(dir: &Path, graph: &str) -> String {
    let base = wa_config(dir, graph).replace(
        "poll_interval_ms = 5",
        "poll_interval_ms = 5\nworkers = 4\nbatch = 16\nmax_queued = 5000\n\
         [delivery.rate_limits]\naccount_per_sec = 100000\nrecipient_per_sec = 100000\n\
         recipient_burst = 100000\nconversation_per_sec = 100000",
    );
    format!("shutdown_timeout_ms = 10000\n{base}")
}

/// Submits message `i` of the burst (idempotency key `burst-i`); `Some(id)` on 202.
async fn submit(http: &reqwest::Client, base: &str, i: usize) -> Option<String> {
    let resp = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(API_TOKEN)
        .header("idempotency-key", format!("burst-{i}"))
        .json(&json!({ "account": "wa-main", "to": format!("1650555{:04}", i % 20), "text": format!("burst message {i}") }))
        .send()
        .await
        .ok()?;
    if resp.status() != 202 {
        return None;
    }
    let v: serde_json::Value = resp.json().await.ok()?;
    v["id"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_of_1000_drains_in_time_and_after_restart_each_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(&cfg, burst_config(dir.path(), &mock.base_url())).unwrap();
    let http = reqwest::Client::new();

    let d = spawn(&cfg, &[]);
    let base = d.base();
    let ids: Arc<Mutex<HashMap<usize, String>>> = Default::default();
    let submitters: Vec<_> = (0..8)
        .map(|k| {
            let (http, base, ids) = (http.clone(), base.clone(), ids.clone());
            tokio::spawn(async move {
                for i in (k..BURST).step_by(8) {
                    if let Some(id) = submit(&http, &base, i).await {
                        ids.lock().unwrap().insert(i, id);
                    }
                }
            })
        })
        .collect();
    eventually("the burst is being delivered", || mock.accepted() >= 100).await;
    let (status, took, logs) = tokio::task::spawn_blocking(move || d.terminate()).await.unwrap();
    assert!(status.success(), "SIGTERM exits 0, got {status}\n{logs}");
    assert!(took < Duration::from_secs(12), "exit within shutdown_timeout_ms (10 s): took {took:?}");
    let at_exit = mock.accepted();
    assert!(at_exit < BURST, "SIGTERM came in the middle of the burst ({at_exit} delivered)");
    for s in submitters {
        s.await.unwrap();
    }

    // Restart; the clients retry every message with its key (those that got no answer too).
    let d = spawn(&cfg, &[]);
    let base = d.base();
    for i in 0..BURST {
        let id = submit(&http, &base, i).await.unwrap_or_else(|| panic!("message {i} accepted after restart"));
        if let Some(before) = ids.lock().unwrap().get(&i) {
            assert_eq!(&id, before, "the idempotency key returns the original message");
        }
    }
    let t = Instant::now();
    while mock.accepted() < BURST {
        assert!(t.elapsed() < Duration::from_secs(120), "only {} of {BURST} delivered", mock.accepted());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    loop {
        let sent: serde_json::Value = http
            .get(format!("{base}/v1/outbox?status=sent&limit=5000"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = sent["items"].as_array().unwrap().len();
        if n == BURST {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "every message is `sent`: {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, logs) = tokio::task::spawn_blocking(move || d.terminate()).await.unwrap();
    assert!(status.success(), "{logs}");

    let mut per_text: HashMap<String, usize> = HashMap::new();
    for r in mock.requests() {
        *per_text.entry(r.body["text"]["body"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    assert_eq!(mock.requests().len(), BURST, "no message reached the provider twice");
    for i in 0..BURST {
        assert_eq!(per_text.get(&format!("burst message {i}")), Some(&1), "message {i} delivered exactly once");
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// A strictly checked OpenMetrics exposition.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// The value of the sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|(n, l, _)| n == name && *l == want).map(|(_, _, v)| *v)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':') && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_value(s: &str) -> bool {
    matches!(s, "+Inf" | "-Inf" | "NaN")
        || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) && s.parse::<f64>().is_ok())
}

fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let key = &rest[..eq];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("bad label name {key:?}"));
            }
            rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        _ => return Err("bad escape in label value".into()),
                    },
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &rest[close.ok_or("unterminated label value")? + 1..];
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("labels must be separated by commas".into());
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().unwrap_or("");
    if !valid_value(value) {
        return Err(format!("bad value {value:?}"));
    }
    if let Some(ts) = parts.next()
        && !valid_value(ts)
    {
        return Err(format!("bad timestamp {ts:?}"));
    }
    if parts.next().is_some() {
        return Err("trailing text after the sample".into());
    }
    let v = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap(),
    };
    Ok((name.to_string(), labels, v))
}

/// Checks every line of an OpenMetrics text exposition: descriptors, samples grouped under
/// the family declared before them with a suffix their type allows, `le` on buckets, one
/// `# EOF` at the very end.
fn parse_openmetrics(text: &str) -> Result<Exposition, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("must end with `# EOF` and a newline")?;
    let mut e = Exposition::default();
    let mut current: Option<(String, String)> = None;
    for (n, line) in body.lines().enumerate() {
        let fail = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, arg) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
            if !valid_name(name) {
                return Err(fail("bad family name".into()));
            }
            match kind {
                "TYPE" => {
                    let t = arg.ok_or_else(|| fail("TYPE without a type".into()))?;
                    if !["counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"].contains(&t) {
                        return Err(fail(format!("unknown type {t}")));
                    }
                    if e.types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(fail("family declared twice".into()));
                    }
                    current = Some((name.to_string(), t.to_string()));
                }
                "HELP" | "UNIT" => {}
                _ => return Err(fail("unknown descriptor".into())),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(fail("empty line or stray comment".into()));
        }
        let (name, labels, v) = parse_sample(line).map_err(fail)?;
        let (family, ty) = current.as_ref().ok_or_else(|| fail("sample before any TYPE".into()))?;
        let suffix = name.strip_prefix(family.as_str()).ok_or_else(|| fail(format!("sample outside its family {family}")))?;
        let allowed: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        if !allowed.contains(&suffix) {
            return Err(fail(format!("suffix {suffix:?} not allowed for a {ty}")));
        }
        if suffix == "_bucket" && !labels.contains_key("le") {
            return Err(fail("bucket without `le`".into()));
        }
        e.samples.push((name, labels, v));
    }
    Ok(e)
}

#[test]
fn the_openmetrics_checker_is_strict() {
    let ok = "# HELP a_total x\n# TYPE a counter\na_total{k=\"v\\\"q\"} 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n# EOF\n";
    let e = parse_openmetrics(ok).unwrap();
    assert_eq!(e.value("a_total", &[("k", "v\"q")]), 1.0);
    for bad in [
        "# TYPE a counter\na 1\n# EOF\n",                   // counter sample without _total
        "# TYPE a counter\na_total 1\n",                    // no EOF
        "# TYPE a gauge\na{k=v} 1\n# EOF\n",                // unquoted label
        "# TYPE a gauge\nb 1\n# EOF\n",                     // sample outside its family
        "# TYPE h histogram\nh_bucket 1\n# EOF\n",          // bucket without le
        "# TYPE a gauge\na one\n# EOF\n",                   // not a number
        "# TYPE a gauge\n# TYPE a gauge\na 1\n# EOF\n",     // declared twice
    ] {
        assert!(parse_openmetrics(bad).is_err(), "accepted {bad:?}");
    }
}

async fn scrape(d: &TestDaemon) -> (String, Exposition) {
    let resp = d.http.get(format!("{}/metrics", d.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.unwrap();
    let e = parse_openmetrics(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    (text, e)
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_move_as_a_scripted_scenario_expects() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    // One message per second to a recipient, so the scenario can make a delivery wait.
    let text = format!(
        "{}\n[delivery.rate_limits]\nrecipient_per_sec = 1\nrecipient_burst = 1\n",
        wa_config(dir.path(), &mock.base_url())
    );
    let cfg = Config::parse(&text, "test").unwrap();
    let d = TestDaemon::start_with(cfg.clone(), ManualClock::new(T0)).await;
    const M: &str = "switchboard_";
    let n = |s: &str| format!("{M}{s}");

    let (_, m) = scrape(&d).await;
    assert!(m.get(&n("inbound_requests_total"), &[("account", "wa-main"), ("result", "accepted")]).is_none());

    // Inbound: accepted, duplicate, bad signature, unknown account.
    let body = fixture("text.json");
    assert_eq!(d.signed_webhook(&body).await.status(), 200);
    assert_eq!(d.signed_webhook(&body).await.status(), 200);
    assert_eq!(d.webhook("wa-main", &body, Some("sha256=00")).await.status(), 401);
    assert_eq!(d.webhook("no-such-account", &body, None).await.status(), 404);
    let (_, m) = scrape(&d).await;
    let inbound = |r: &str| m.value(&n("inbound_requests_total"), &[("account", "wa-main"), ("result", r)]);
    assert_eq!((inbound("accepted"), inbound("duplicate"), inbound("invalid_signature")), (1.0, 1.0, 1.0));
    assert_eq!(m.value(&n("inbound_requests_total"), &[("account", "(unknown)"), ("result", "unknown_account")]), 1.0);
    assert_eq!(m.value(&n("events_stored_total"), &[("account", "wa-main")]), 1.0);
    assert_eq!(m.value(&n("dedupe_hits_total"), &[("account", "wa-main")]), 1.0);
    assert_eq!(m.value(&n("inbox_events"), &[]), 1.0);

    // Inbox leases: a grant, an ack under a wrong lease (refused), an ack.
    let claim = d.claim(10, 60_000).await;
    let event_id = claim["events"][0]["id"].clone();
    let (_, r) = d.api("/v1/inbox/ack", json!({ "ids": [event_id], "lease": "999999" })).await;
    assert_eq!(r["rejected"].as_array().unwrap().len(), 1);
    let (_, r) = d.api("/v1/inbox/ack", json!({ "ids": [event_id], "lease": claim["lease"] })).await;
    assert_eq!(r["acked"].as_array().unwrap().len(), 1);
    let (_, m) = scrape(&d).await;
    assert_eq!(m.value(&n("lease_grants_total"), &[("queue", "inbox")]), 1.0);
    assert_eq!(m.value(&n("lease_steals_total"), &[("queue", "inbox")]), 1.0);
    assert_eq!(m.value(&n("inbox_events"), &[]), 0.0);

    // Outbound: one delivered, one that waits for the recipient's rate limit, one permanent
    // failure (dead-lettered).
    let send = |to: &'static str, text: &'static str| {
        let d = &d;
        async move {
            let (s, v) = d.api("/v1/messages", json!({ "account": "wa-main", "to": to, "text": text })).await;
            assert_eq!(s, 202, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let a = send(USER, "first").await;
    d.message_until(&a, |v| v["status"] == "sent").await;
    let b = send(USER, "second, rate limited").await;
    let t = Instant::now();
    loop {
        let (_, m) = scrape(&d).await;
        if m.get(&n("rate_limit_waits_total"), &[("account", "wa-main"), ("scope", "recipient")]).is_some() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the second message never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.clock.advance_ms(1_000);
    d.message_until(&b, |v| v["status"] == "sent").await;
    mock.respond_next(400, String::from_utf8(fixture("error_131026.json")).unwrap());
    let c = send("15550001111", "undeliverable").await;
    d.message_until(&c, |v| v["status"] == "failed").await;

    let (text, m) = scrape(&d).await;
    let wa = [("account", "wa-main")];
    assert_eq!(m.value(&n("messages_queued_total"), &wa), 3.0);
    let attempts = |o: &str, code: &str| m.value(&n("delivery_attempts_total"), &[("account", "wa-main"), ("outcome", o), ("code", code)]);
    assert_eq!(attempts("delivered", ""), 2.0);
    assert_eq!(attempts("permanent", "131026"), 1.0);
    assert_eq!(m.value(&n("delivery_latency_seconds_count"), &wa), 2.0);
    assert_eq!(m.value(&n("delivery_deferrals_total"), &[("account", "wa-main"), ("reason", "rate_limit")]), 1.0);
    assert_eq!(m.value(&n("rate_limit_waits_total"), &[("account", "wa-main"), ("scope", "recipient")]), 1.0);
    assert_eq!(m.value(&n("dead_letters"), &[]), 1.0);
    assert_eq!(m.value(&n("dead_lettered_total"), &wa), 1.0);
    assert_eq!(m.value(&n("lease_grants_total"), &[("queue", "outbox")]), 4.0, "3 messages, one claimed twice");
    assert_eq!(m.value(&n("plugin_call_duration_seconds_count"), &[("plugin", "whatsapp-cloud"), ("call", "deliver")]), 3.0);
    assert!(m.value(&n("plugin_calls_total"), &[("plugin", "whatsapp-cloud")]) >= 5.0, "2 parses + 3 deliveries");
    assert_eq!(m.value(&n("plugin_failures_total"), &[("plugin", "whatsapp-cloud"), ("kind", "trap")]), 0.0);
    for state in ["queued", "sending", "retrying"] {
        assert_eq!(m.value(&n("outbox_messages"), &[("state", state)]), 0.0, "{state}");
    }
    assert_eq!(m.value(&n("outbox_stored_messages"), &[]), 3.0);
    assert_eq!(m.value(&n("outbox_lag_seconds"), &[]), 0.0);
    assert_eq!(m.value(&n("breaker_state"), &wa), 0.0);
    assert_eq!(m.value(&n("accounts"), &[("state", "ready")]), 1.0);
    assert_eq!(m.value(&n("accounts"), &[("state", "refused")]), 0.0);
    let commits = m.value(&n("store_commit_duration_seconds_count"), &[]);
    assert!(commits >= 8.0, "every write is a commit: {commits}");
    assert!(m.value(&n("store_commit_batch_size_sum"), &[]) >= commits);
    assert_eq!(m.value(&n("build_info"), &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    for (family, ty) in [
        ("inbound_requests", "counter"),
        ("delivery_latency_seconds", "histogram"),
        ("outbox_messages", "gauge"),
        ("outbox_lag_seconds", "gauge"),
        ("dead_letters", "gauge"),
        ("plugin_call_duration_seconds", "histogram"),
        ("plugin_failures", "counter"),
        ("rate_limit_waits", "counter"),
        ("breaker_state", "gauge"),
        ("lease_grants", "counter"),
        ("lease_steals", "counter"),
        ("lease_expiries", "counter"),
        ("store_commit_duration_seconds", "histogram"),
        ("store_commit_batch_size", "histogram"),
        ("build", "info"),
    ] {
        assert_eq!(m.types.get(&n(family)).map(String::as_str), Some(ty), "{family}");
    }
    assert!(!text.contains(USER) && !text.contains("15550001111"), "no phone numbers in metrics");
    for secret in [APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN, API_TOKEN] {
        assert!(!text.contains(secret));
    }

    // A message waiting past its due time shows as lag.
    let hold = mock.hold_next(200, String::from_utf8(fixture("send_ok.json")).unwrap());
    let _held = send("15550002222", "held").await;
    eventually("the held delivery reaches the provider", || mock.requests().len() == 4).await;
    let _waiting = send("15550002222", "behind the held one").await;
    d.clock.advance_ms(5_000);
    let (_, m) = scrape(&d).await;
    assert_eq!(m.value(&n("outbox_messages"), &[("state", "sending")]), 1.0);
    assert_eq!(m.value(&n("outbox_messages"), &[("state", "queued")]), 1.0);
    assert_eq!(m.value(&n("outbox_lag_seconds"), &[]), 5.0);
    hold.notify_one();

    d.daemon.reload(Ok(cfg)).await.unwrap();
    d.daemon.reload(Err("broken".into())).await.unwrap_err();
    let (_, m) = scrape(&d).await;
    assert_eq!(m.value(&n("config_reloads_total"), &[("result", "ok")]), 1.0);
    assert_eq!(m.value(&n("config_reloads_total"), &[("result", "error")]), 1.0);
    d.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Reload and shutdown, in process

#[tokio::test]
async fn a_reload_applies_accounts_tokens_and_limits_without_dropping_a_delivery_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let hold = mock.hold_next(200, String::from_utf8(fixture("send_ok.json")).unwrap());
    let original = wa_config(dir.path(), &mock.base_url());
    let d = TestDaemon::start_with(Config::parse(&original, "t").unwrap(), ManualClock::new(T0)).await;
    let (s, v) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "in flight" })).await;
    assert_eq!(s, 202);
    let id = v["id"].as_str().unwrap().to_string();
    eventually("the delivery is in flight", || mock.requests().len() == 1).await;

    const SECOND_SECRET: &str = "second-app-secret-71ce";
    const ROTATED: &str = "rotated-api-token-0b6d";
    let reloaded = original
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"")
        .replace(&format!("api_tokens = [\"{API_TOKEN}\"]"), &format!("api_tokens = [\"{ROTATED}\"]"))
        .replace(
            "[delivery]",
            &format!(
                "[accounts.wa-second]\nplugin = \"whatsapp-cloud\"\n\
                 secrets = {{ app_secret = \"{SECOND_SECRET}\", verify_token = \"v\", access_token = \"a\" }}\n\
                 settings = {{ phone_number_id = \"{PHONE_NUMBER_ID}\", api_base = \"{}\" }}\n\n\
                 [delivery.rate_limits]\naccount_per_sec = 50\n\n[delivery]",
                mock.base_url()
            ),
        );
    let report = d.daemon.reload(Ok(Config::parse(&reloaded, "t").unwrap())).await.unwrap();
    assert_eq!(report.needs_restart, ["listen"]);
    for change in ["accounts.wa-second (added)", "api_tokens", "delivery.rate_limits"] {
        assert!(report.applied.iter().any(|a| a == change), "{change} in {report:?}");
    }

    // The delivery that was in flight during the reload completes.
    hold.notify_one();
    let token_get = |token: &'static str, path: String| {
        let d = &d;
        async move { d.http.get(format!("{}{path}", d.base)).bearer_auth(token).send().await.unwrap() }
    };
    let t = Instant::now();
    loop {
        let v: serde_json::Value = token_get(ROTATED, format!("/v1/messages/{id}")).await.json().await.unwrap();
        if v["status"] == "sent" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(token_get(API_TOKEN, format!("/v1/messages/{id}")).await.status(), 401, "the old token is gone");
    assert_eq!(mock.requests().len(), 1, "delivered once");

    // The added account takes webhooks signed with its own secret; the listener did not move.
    let body = fixture("text.json");
    let r = d.webhook("wa-second", &body, Some(&meta_signature(SECOND_SECRET, &body))).await;
    assert_eq!(r.status(), 200);

    // A reload that would break a running account keeps it running as it was.
    let broken = reloaded.replace(&format!("access_token = \"{ACCESS_TOKEN}\""), "access_token = \"file:/nonexistent/token\"");
    let report = d.daemon.reload(Ok(Config::parse(&broken, "t").unwrap())).await.unwrap();
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert_eq!(report.kept[0].0, "wa-main");
    let image = fixture("image.json");
    assert_eq!(d.signed_webhook(&image).await.status(), 200, "wa-main still runs");
    let ready: serde_json::Value = d.http.get(format!("{}/readyz", d.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    d.stop().await;
}

#[tokio::test]
async fn a_shutdown_that_runs_out_of_time_releases_its_leases_and_the_next_start_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let _never = mock.hold_next(200, "{}"); // the provider never answers this one
    let text = format!("shutdown_timeout_ms = 300\n{}", wa_config(dir.path(), &mock.base_url()));
    let clock = ManualClock::new(T0);
    let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), clock.clone()).await;
    let (_, v) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "cut off" })).await;
    let id = v["id"].as_str().unwrap().to_string();
    eventually("the delivery is in flight", || mock.requests().len() == 1).await;

    let t = Instant::now();
    let report = d.daemon.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!report.drained);
    assert_eq!(report.released, 1);

    // Released, not left to its 30 s lease: the next start delivers it at once, same clock.
    let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), clock).await;
    let v = d.message_until(&id, |v| v["status"] == "sent").await;
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "the cut-off call counted no attempt: {v}");
    assert_eq!(mock.requests().len(), 2);
    d.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A full scenario with the binary: logs, reload by SIGHUP, token rotation, backup and restore.

const ROTATED_ACCESS: &str = "test-access-token-ROTATED-4d1f";
const FILE_TOKEN_1: &str = "ops-file-token-one-3f7a";
const FILE_TOKEN_2: &str = "ops-file-token-two-91be";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_logs_no_secret_and_no_phone_number_and_its_backup_restores() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let (wa_token, api_token_file) = (dir.path().join("wa-token"), dir.path().join("api-token"));
    std::fs::write(&wa_token, format!("{ACCESS_TOKEN}\n")).unwrap();
    std::fs::write(&api_token_file, FILE_TOKEN_1).unwrap();
    let cfg = dir.path().join("switchboard.toml");
    let text = wa_config(dir.path(), &mock.base_url())
        .replace(&format!("access_token = \"{ACCESS_TOKEN}\""), &format!("access_token = \"file:{}\"", wa_token.display()))
        .replace(
            &format!("api_tokens = [\"{API_TOKEN}\"]"),
            &format!("api_tokens = [\"{API_TOKEN}\", \"file:{}\"]", api_token_file.display()),
        )
        .replace("poll_interval_ms = 5", "poll_interval_ms = 20");
    std::fs::write(&cfg, &text).unwrap();
    let http = reqwest::Client::new();
    let d = spawn(&cfg, &[]);
    let base = d.base();
    let post = |path: &str, token: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send()
    };

    // In: a message and a failed-status webhook (both name the user's number).
    for f in ["text.json", "status_failed.json"] {
        let body = fixture(f);
        let r = http
            .post(format!("{base}/webhooks/wa-main"))
            .header("x-hub-signature-256", meta_signature(APP_SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{f}");
    }
    let claim: serde_json::Value = post("/v1/inbox/claim", API_TOKEN, json!({ "max": 10 })).await.unwrap().json().await.unwrap();
    let ids: Vec<_> = claim["events"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    post("/v1/inbox/ack", API_TOKEN, json!({ "ids": ids, "lease": claim["lease"] })).await.unwrap();

    // Out: one delivered; one refused because the provider token expired.
    let send = |text: &'static str| {
        let post = &post;
        async move {
            let v: serde_json::Value = post("/v1/messages", API_TOKEN, json!({ "account": "wa-main", "to": USER, "text": text }))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    };
    let first = send("hello").await;
    eventually("the first reply is delivered", || mock.accepted() == 1).await;
    mock.respond_next(401, String::from_utf8(fixture("error_190.json")).unwrap());
    let expired = send("after the token expired").await;
    let cli = |args: &[&str], token: &str| {
        let out = Command::new(binary()).args(args).args(["--url", &base, "--token", token]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let t = Instant::now();
    while !cli(&["dlq", "list", "--json"], API_TOKEN).contains(&expired) {
        assert!(t.elapsed() < Duration::from_secs(20), "the expired-token failure is dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The runbook: rotate the token file(s), SIGHUP, redrive.
    std::fs::write(&wa_token, ROTATED_ACCESS).unwrap();
    std::fs::write(&api_token_file, FILE_TOKEN_2).unwrap();
    d.signal("HUP");
    d.wait_log("config reloaded");
    assert!(d.logs().contains("accounts.wa-main.secrets (rotated)"), "{}", d.logs());
    let status = |token: &'static str| {
        let http = &http;
        let url = format!("{base}/v1/stats");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(FILE_TOKEN_1).await, 401);
    assert_eq!(status(FILE_TOKEN_2).await, 200);
    assert!(cli(&["dlq", "redrive", "--all"], FILE_TOKEN_2).contains(&expired));
    eventually("the redriven message is delivered", || mock.accepted() == 2).await;
    let t = Instant::now();
    loop {
        let v: serde_json::Value =
            http.get(format!("{base}/v1/messages/{expired}")).bearer_auth(API_TOKEN).send().await.unwrap().json().await.unwrap();
        if v["status"] == "sent" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = mock.requests().last().unwrap().clone();
    assert_eq!(last.authorization.as_deref(), Some(format!("Bearer {ROTATED_ACCESS}").as_str()), "the rotated token is used");
    let mut outputs = vec![cli(&["outbox", "list"], API_TOKEN), cli(&["inbox", "stats"], API_TOKEN), cli(&["dlq", "list"], API_TOKEN)];
    outputs.push(http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap());
    outputs.push(http.get(format!("{base}/readyz")).send().await.unwrap().text().await.unwrap());

    // Online backup while the daemon runs.
    let backup = dir.path().join("backup.redb");
    let out = cli(&["backup", "--out", backup.to_str().unwrap()], API_TOKEN);
    assert!(out.contains("backup written to"), "{out}");
    assert!(out.contains("outbox 2"), "{out}");
    assert!(!dir.path().join("backup.redb.partial").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "the snapshot is not left behind: {leftovers:?}");
    outputs.push(out);

    let (status, _, logs) = tokio::task::spawn_blocking(move || d.terminate()).await.unwrap();
    assert!(status.success(), "{logs}");

    // Restore: a fresh data_dir holding only the backup serves the same messages.
    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(restored.path().join("data")).unwrap();
    std::fs::copy(&backup, restored.path().join("data/switchboard.redb")).unwrap();
    let cfg2 = restored.path().join("switchboard.toml");
    std::fs::write(&cfg2, wa_config(restored.path(), &mock.base_url())).unwrap();
    let d2 = spawn(&cfg2, &[]);
    let base2 = d2.base();
    for id in [&first, &expired] {
        let v: serde_json::Value =
            http.get(format!("{base2}/v1/messages/{id}")).bearer_auth(API_TOKEN).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["status"], "sent", "{v}");
    }
    let body = fixture("text.json");
    let again: serde_json::Value = http
        .post(format!("{base2}/webhooks/wa-main"))
        .header("x-hub-signature-256", meta_signature(APP_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicates"], 1, "the dedupe state came along");
    let (status, _, logs2) = tokio::task::spawn_blocking(move || d2.terminate()).await.unwrap();
    assert!(status.success(), "{logs2}");

    let all = format!("{logs}\n{logs2}\n{}", outputs.join("\n"));
    for secret in [APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN, ROTATED_ACCESS, API_TOKEN, FILE_TOKEN_1, FILE_TOKEN_2] {
        assert!(!all.contains(secret), "a secret leaked into the logs or the operator outputs");
    }
    assert!(!all.contains(USER), "a full phone number leaked:\n{}", all.lines().filter(|l| l.contains(USER)).collect::<Vec<_>>().join("\n"));
    assert!(logs.contains("1650****234"), "masked numbers are logged");
    let lines: HashSet<&str> = logs.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with('{')), "--log-json: every stdout/stderr line is JSON");
}
