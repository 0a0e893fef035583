//! `switchboard-bench`: drives a running Switchboard on 127.0.0.1 and reports throughput and
//! latency percentiles (hdrhistogram). It stops by itself after `--duration` or `--requests`,
//! and refuses any target that is not a loopback address.
//!
//! - `ingest`: signed WhatsApp text webhooks (~1 KiB, unique wamids) to `POST /webhooks/{account}`,
//!   one keep-alive HTTP/1.1 connection per `--connections`.
//! - `dispatch`: `POST /v1/messages` while playing the Graph API itself on `--mock`, measuring
//!   end-to-end time from the POST to the provider receiving the message (queue lag).
//! - `footprint`: queues `--queue` messages (1,000 conversations) behind a provider that
//!   throttles every send for an hour (429, Retry-After: 3600: each conversation's head is
//!   attempted once and waits, the rest wait behind it in order), then reports the daemon's RSS
//!   and its CPU use while it sits idle with that backlog (`--pid`, from /proc).
//! - `drain`: pull consumers emptying the inbox, one per connection: `POST /v1/inbox/claim`
//!   (`--max` events under a lease) then `POST /v1/inbox/ack` of what came, until the run ends
//!   or a claim finds nothing. Reports events acked per second and the claim + ack round trip.
//!   Run it after `ingest` has left a backlog (`bench/run.sh` does).
//! - `floor`: serves `200 OK` to every request on `--url` until killed, reading each body and
//!   doing nothing else. Running `ingest` against it measures what HTTP over loopback alone
//!   costs on the machine (load generator included): the ceiling no daemon can pass there.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[derive(Parser)]
struct Cli {
    /// Daemon base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    url: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Stop after this many seconds…
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// …or after this many requests, whichever comes first.
    #[arg(long, default_value_t = u64::MAX)]
    requests: u64,
    /// The daemon's process id: `ingest` and `dispatch` then also report its CPU time per
    /// request, by thread, and the load generator's own (from /proc), which compare across
    /// machines and runs where req/s alone does not.
    #[arg(long)]
    daemon_pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    Ingest {
        #[arg(long, default_value = "wa-main")]
        account: String,
        #[arg(long)]
        app_secret: String,
        /// Senders the webhooks come from, in turn; 0: every webhook from a new sender, so
        /// each opens a session (the daemon's `max_open_sessions` must allow as many).
        #[arg(long, default_value_t = 1_000)]
        senders: u64,
        /// Wamids in no order, as real ones are (a hash of the sequence number): each dedupe
        /// key then lands on its own B-tree leaf instead of at the end of the index.
        #[arg(long)]
        scattered_ids: bool,
    },
    Dispatch {
        #[arg(long, default_value = "wa-main")]
        account: String,
        #[arg(long)]
        api_token: String,
        /// Address the mock Graph API listens on (the account's api_base must point here).
        #[arg(long, default_value = "127.0.0.1:9999")]
        mock: SocketAddr,
    },
    Footprint {
        #[arg(long, default_value = "wa-main")]
        account: String,
        #[arg(long)]
        api_token: String,
        #[arg(long, default_value = "127.0.0.1:9999")]
        mock: SocketAddr,
        /// The daemon's process id (RSS and CPU time come from /proc/PID).
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 100_000)]
        queue: u64,
        /// How long to watch the idle daemon's CPU time.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
    },
    Drain {
        #[arg(long)]
        api_token: String,
        /// Events per claim (the daemon's `inbox.max_claim` caps it).
        #[arg(long, default_value_t = 32)]
        max: usize,
    },
    /// Serve an empty `200 OK` on `--url` (loopback only) until killed.
    Floor,
}

fn loopback(url: &str) -> Result<SocketAddr> {
    let u = url::Url::parse(url)?;
    let host = u.host_str().context("url has no host")?;
    let addr: SocketAddr = format!("{host}:{}", u.port_or_known_default().unwrap_or(80)).parse().context("url host must be an IP")?;
    if !addr.ip().is_loopback() {
        bail!("refusing to target {addr}: the load generator only targets loopback addresses");
    }
    Ok(addr)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// [`webhook_body`], written straight from a template: the load generator shares the CPU with
/// the daemon it measures, so it spends as little as it can per request (building the JSON
/// value for each one cost more than signing it).
fn webhook_body_fast(n: u64, senders: u64, scattered: bool, out: &mut Vec<u8>) {
    use std::io::Write;
    static PAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(560));
    // New senders are new across runs too (a block of ten million numbers per run).
    let user = if senders == 0 { (*RUN_ID as u64 % 1_000) * 10_000_000 + n } else { n % senders };
    // Multiplying by an odd constant is a bijection on u64: still unique, in no order.
    let id = if scattered { n.wrapping_mul(0x9E37_79B9_7F4A_7C15) } else { n };
    out.clear();
    write!(
        out,
        concat!(
            r#"{{"entry":[{{"changes":[{{"field":"messages","value":{{"contacts":[{{"profile":{{"name":"Load Test"}},"wa_id":"1650{:07}"}}],"#,
            r#""messages":[{{"from":"1650{:07}","id":"wamid.BENCH{:08x}{:016}","text":{{"body":"load test message {} {}"}},"timestamp":"1749416383","type":"text"}}],"#,
            r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}}}}}}],"id":"102290129340398"}}],"object":"whatsapp_business_account"}}"#
        ),
        user, user, *RUN_ID, id, n, *PAD
    )
    .expect("writing to a Vec");
}

/// Tells this run's webhooks apart from an earlier run's against the same daemon: `bench/run.sh`
/// runs two ingest scenarios on one store, and with the same wamids the second was mostly
/// duplicates (answered 200 without a write), which made it look twice as fast as it is.
static RUN_ID: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
});

#[cfg_attr(not(test), allow(dead_code))]
fn webhook_body(n: u64) -> Vec<u8> {
    // Shaped like a real WhatsApp text webhook, padded to about 1 KiB; 1,000 senders in turn
    // (open sessions stay under the bench config's `max_open_sessions`), every wamid unique.
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Load Test" }, "wa_id": recipient(n) }],
            "messages": [{ "from": recipient(n), "id": format!("wamid.BENCH{:08x}{n:016}", *RUN_ID),
                "timestamp": "1749416383", "type": "text",
                "text": { "body": format!("load test message {n} {}", "x".repeat(560)) } }]
        }}]}]
    });
    body.to_string().into_bytes()
}

/// The user of message `n` (sender inbound, recipient outbound): 1,000 of them in turn.
fn recipient(n: u64) -> String {
    format!("1650{:07}", n % 1_000)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Run {
    next: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    hist: Mutex<Histogram<u64>>,
}

impl Run {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            next: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
        })
    }

    /// The next sequence number, or `None` when the run is over.
    fn take(&self, limit: u64) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < limit).then_some(n)
    }
}

fn report(name: &str, run: &Run, elapsed: Duration, hist: &Histogram<u64>, cpu: Option<serde_json::Value>) {
    let ok = run.ok.load(Ordering::Relaxed);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mut line = serde_json::json!({
        "scenario": name,
        "ok": ok,
        "errors": run.errors.load(Ordering::Relaxed),
        "seconds": elapsed.as_secs_f64(),
        "per_second": ok as f64 / elapsed.as_secs_f64(),
        "p50_ms": us(0.50), "p90_ms": us(0.90), "p99_ms": us(0.99), "max_ms": hist.max() as f64 / 1000.0,
    });
    if let Some(cpu) = cpu {
        line["cpu"] = cpu;
    }
    println!("{line}");
}

/// CPU time spent over a run: the daemon's (by thread name) and the load generator's own.
struct CpuProbe {
    pid: u32,
    daemon: BTreeMap<String, u64>,
    own: u64,
}

impl CpuProbe {
    fn start(pid: Option<u32>) -> Result<Option<Self>> {
        pid.map(|pid| Ok(Self { pid, daemon: thread_ticks(pid)?, own: proc_stats(std::process::id())?.2 })).transpose()
    }

    /// Microseconds of CPU per request (`per` requests) since [`Self::start`].
    fn per_request(&self, per: u64) -> Result<serde_json::Value> {
        let now = thread_ticks(self.pid)?;
        let us = |ticks: u64| ticks as f64 * 10_000.0 / per.max(1) as f64; // a tick is 10 ms
        let threads: BTreeMap<&str, f64> = now
            .iter()
            .map(|(name, t)| (name.as_str(), us(t.saturating_sub(self.daemon.get(name).copied().unwrap_or(0)))))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let own = proc_stats(std::process::id())?.2.saturating_sub(self.own);
        Ok(serde_json::json!({
            "daemon_us_per_request": threads.values().sum::<f64>(),
            "daemon_threads_us_per_request": threads,
            "load_generator_us_per_request": us(own),
        }))
    }
}

/// CPU clock ticks (utime + stime) of each live thread of `pid`, summed by thread name.
fn thread_ticks(pid: u32) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        // A thread that ends between the listing and the read is simply not counted.
        let (Ok(name), Ok(stat)) = (std::fs::read_to_string(dir.join("comm")), std::fs::read_to_string(dir.join("stat"))) else { continue };
        *out.entry(name.trim().to_string()).or_default() += stat_ticks(&stat)?;
    }
    Ok(out)
}

/// utime + stime from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Result<u64> {
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

async fn ingest(cli: &Cli, addr: SocketAddr, account: &str, secret: &str, senders: u64, scattered: bool) -> Result<()> {
    let run = Run::new();
    let cpu = CpuProbe::start(cli.daemon_pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.connections {
        let (run, account, secret, limit, host) = (run.clone(), account.to_string(), secret.to_string(), cli.requests, addr.to_string());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (path, mut body) = (format!("/webhooks/{account}"), Vec::with_capacity(1_200));
            while let Some(n) = run.take(limit) {
                webhook_body_fast(n, senders, scattered, &mut body);
                let req = Request::post(path.as_str())
                    .header("host", &host)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sign(&secret, &body))
                    .body(Full::new(Bytes::copy_from_slice(&body)))?;
                let t = Instant::now();
                let ok = send(&mut sender, addr, req).await? == Some(200);
                local.record(t.elapsed().as_micros() as u64)?;
                if ok { &run.ok } else { &run.errors }.fetch_add(1, Ordering::Relaxed);
            }
            run.hist.lock().await.add(&local)?;
            anyhow::Ok(())
        }));
    }
    finish("ingest", &run, tasks, Duration::from_secs(cli.duration), start, cpu).await
}

/// Ends a run after `duration` (or when its tasks do), then reports it with the CPU time per
/// request (`ok`) since `start`.
async fn finish(name: &str, run: &Arc<Run>, tasks: Vec<tokio::task::JoinHandle<Result<()>>>, duration: Duration, start: Instant, cpu: Option<CpuProbe>) -> Result<()> {
    stop_after(run.clone(), duration);
    for t in tasks {
        t.await??;
    }
    let hist = run.hist.lock().await;
    let elapsed = start.elapsed();
    let cpu = cpu.map(|c| c.per_request(run.ok.load(Ordering::Relaxed))).transpose()?;
    report(name, run, elapsed, &hist, cpu);
    Ok(())
}

/// Sends `req` and returns its status; on a broken connection reconnects and returns `None`.
async fn send(sender: &mut Sender, addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Option<u16>> {
    match sender.send_request(req).await {
        Ok(resp) => Ok(Some(drain(resp).await)),
        Err(_) => {
            *sender = connect(addr).await?;
            Ok(None)
        }
    }
}

async fn drain(resp: Response<hyper::body::Incoming>) -> u16 {
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn stop_after(run: Arc<Run>, d: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(d).await;
        run.stop.store(true, Ordering::Relaxed);
    });
}

/// Sends a JSON `POST` and returns its status and body; `None` on a broken connection
/// (reconnected).
async fn post_json(sender: &mut Sender, addr: SocketAddr, host: &str, auth: &str, path: &str, body: String) -> Result<Option<(u16, Bytes)>> {
    let req = Request::post(path)
        .header("host", host)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Ok(Some((status, resp.into_body().collect().await?.to_bytes())))
        }
        Err(_) => {
            *sender = connect(addr).await?;
            Ok(None)
        }
    }
}

/// Consumers claiming and acking until the run ends or the inbox is empty (see the module
/// docs). `ok` counts events acked, `errors` failed requests; latency is per claim + ack.
async fn drain_inbox(cli: &Cli, addr: SocketAddr, token: &str, max: usize) -> Result<()> {
    let run = Run::new();
    let cpu = CpuProbe::start(cli.daemon_pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cli.connections {
        let (run, host, auth, limit) = (run.clone(), addr.to_string(), format!("Bearer {token}"), cli.requests);
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let claim = format!(r#"{{"max":{max},"consumer":"bench-{i}","lease_ms":60000}}"#);
            while run.take(limit).is_some() {
                let t = Instant::now();
                let Some((200, body)) = post_json(&mut sender, addr, &host, &auth, "/v1/inbox/claim", claim.clone()).await? else {
                    run.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let ids: Vec<&str> = v["events"].as_array().map(|a| a.iter().filter_map(|e| e["id"].as_str()).collect()).unwrap_or_default();
                if ids.is_empty() {
                    break;
                }
                let ack = serde_json::json!({ "ids": ids, "lease": v["lease"] }).to_string();
                match post_json(&mut sender, addr, &host, &auth, "/v1/inbox/ack", ack).await? {
                    Some((200, _)) => {
                        local.record(t.elapsed().as_micros() as u64)?;
                        run.ok.fetch_add(ids.len() as u64, Ordering::Relaxed);
                    }
                    _ => {
                        run.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            run.hist.lock().await.add(&local)?;
            anyhow::Ok(())
        }));
    }
    finish("drain", &run, tasks, Duration::from_secs(cli.duration), start, cpu).await
}

/// Plays the Graph API: records when each message (its text carries the send time) arrives.
/// With `throttle`, every send is refused with 429 and Retry-After: 3600 (Graph error 130429).
async fn mock_graph(addr: SocketAddr, epoch: Instant, lag: Arc<Mutex<Histogram<u64>>>, received: Arc<AtomicU64>, throttle: bool) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind mock on {addr}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (lag, received) = (lag.clone(), received.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (lag, received) = (lag.clone(), received.clone());
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if let Some(sent_us) = sent_at(&body) {
                            let now_us = epoch.elapsed().as_micros() as u64;
                            let _ = lag.lock().await.record(now_us.saturating_sub(sent_us).max(1));
                        }
                        let n = received.fetch_add(1, Ordering::Relaxed);
                        if throttle {
                            let body = r#"{"error":{"code":130429,"message":"Rate limit hit"}}"#;
                            let resp = Response::builder().status(429).header("retry-after", "3600").body(Full::new(Bytes::from(body)));
                            return Ok::<_, std::convert::Infallible>(resp.expect("static response"));
                        }
                        let ok = format!(r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.B{n}"}}]}}"#);
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(ok))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(())
}

/// The send time a dispatch message carries (its text is `t=<µs>`), found in the provider
/// request without parsing it: the mock shares the CPU with the daemon it measures.
fn sent_at(body: &[u8]) -> Option<u64> {
    let at = body.windows(4).position(|w| w.starts_with(br#""t="#) && w[3].is_ascii_digit())? + 3;
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits]).ok()?.parse().ok()
}

async fn dispatch(cli: &Cli, addr: SocketAddr, account: &str, token: &str, mock: SocketAddr) -> Result<()> {
    if !mock.ip().is_loopback() {
        bail!("the mock must listen on loopback");
    }
    let epoch = Instant::now();
    let lag = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let received = Arc::new(AtomicU64::new(0));
    mock_graph(mock, epoch, lag.clone(), received.clone(), false).await?;
    let run = Run::new();
    let cpu = CpuProbe::start(cli.daemon_pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.connections {
        let (run, account, token, limit, host) = (run.clone(), account.to_string(), token.to_string(), cli.requests, addr.to_string());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (auth, pid) = (format!("Bearer {token}"), std::process::id());
            while let Some(n) = run.take(limit) {
                let sent_us = epoch.elapsed().as_micros() as u64;
                // 1,000 recipients in turn: per-recipient limits and conversation order don't
                // serialise the run, and the open sessions stay under the bench config's cap.
                // Written directly (the account and token are plain ASCII): see `webhook_body_fast`.
                let body = format!(r#"{{"account":"{account}","to":"{}","text":"t={sent_us}"}}"#, recipient(n));
                let req = Request::post("/v1/messages")
                    .header("host", &host)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("bench-{pid}-{n}"))
                    .body(Full::new(Bytes::from(body)))?;
                let t = Instant::now();
                let ok = send(&mut sender, addr, req).await? == Some(202);
                local.record(t.elapsed().as_micros() as u64)?;
                if ok { &run.ok } else { &run.errors }.fetch_add(1, Ordering::Relaxed);
            }
            run.hist.lock().await.add(&local)?;
            anyhow::Ok(())
        }));
    }
    stop_after(run.clone(), Duration::from_secs(cli.duration));
    for t in tasks {
        t.await??;
    }
    let accepted = run.ok.load(Ordering::Relaxed);
    // Wait (bounded) for the queue to drain to the mock.
    let drain_deadline = Instant::now() + Duration::from_secs(cli.duration.max(10) * 3);
    while received.load(Ordering::Relaxed) < accepted && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    let hist = run.hist.lock().await;
    report("dispatch_accept", &run, elapsed, &hist, None);
    let lag = lag.lock().await;
    let got = received.load(Ordering::Relaxed);
    // Over the whole run (accepting and delivering), per delivered message; the mock provider
    // runs in the load generator's process, so its share is counted there.
    let cpu = cpu.map(|c| c.per_request(got)).transpose()?;
    println!(
        "{}",
        serde_json::json!({
            "scenario": "dispatch_end_to_end",
            "delivered": got,
            "accepted": accepted,
            "seconds": elapsed.as_secs_f64(),
            "per_second": got as f64 / elapsed.as_secs_f64(),
            "lag_p50_ms": lag.value_at_quantile(0.5) as f64 / 1000.0,
            "lag_p99_ms": lag.value_at_quantile(0.99) as f64 / 1000.0,
            "lag_max_ms": lag.max() as f64 / 1000.0,
            "cpu": cpu,
        })
    );
    Ok(())
}

/// Resident and peak memory (KiB) and CPU time (clock ticks) of process `pid`.
fn proc_stats(pid: u32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    let ticks = stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)?;
    Ok((kib("VmRSS:"), kib("VmHWM:"), ticks))
}

#[allow(clippy::too_many_arguments)]
async fn footprint(cli: &Cli, addr: SocketAddr, account: &str, token: &str, mock: SocketAddr, pid: u32, queue: u64, idle: u64) -> Result<()> {
    if !mock.ip().is_loopback() {
        bail!("the mock must listen on loopback");
    }
    let received = Arc::new(AtomicU64::new(0));
    let lag = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    mock_graph(mock, Instant::now(), lag, received.clone(), true).await?;
    let run = Run::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.connections {
        let (run, account, token, host) = (run.clone(), account.to_string(), token.to_string(), addr.to_string());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            while let Some(n) = run.take(queue) {
                let body = serde_json::json!({ "account": account, "to": recipient(n), "text": format!("backlog {n}") });
                let req = Request::post("/v1/messages")
                    .header("host", &host)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))?;
                let status = send(&mut sender, addr, req).await?;
                if let Some(refused) = status.filter(|s| *s != 202)
                    && run.errors.load(Ordering::Relaxed) == 0
                {
                    eprintln!("footprint: first refused send answered {refused}");
                }
                let ok = status == Some(202);
                if ok { &run.ok } else { &run.errors }.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let queued = run.ok.load(Ordering::Relaxed);
    // Wait until the daemon has done all it will: each conversation's head attempted and told
    // to wait an hour (the rest queue behind it, in order). Quiet for 3 s = done; bounded.
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut last, mut quiet_since) = (u64::MAX, Instant::now());
    while Instant::now() < deadline {
        let now = received.load(Ordering::Relaxed);
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        } else if quiet_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let filled = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, _, t0) = proc_stats(pid)?;
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (rss, hwm, t1) = proc_stats(pid)?;
    // Clock ticks are 1/100 s on Linux.
    let idle_cpu = (t1 - t0) as f64 / (idle as f64 * 100.0) * 100.0;
    println!(
        "{}",
        serde_json::json!({
            "scenario": "footprint",
            "queued": queued,
            "errors": run.errors.load(Ordering::Relaxed),
            "attempted": received.load(Ordering::Relaxed),
            "fill_seconds": filled.as_secs_f64(),
            "rss_mib": rss as f64 / 1024.0,
            "peak_rss_mib": hwm as f64 / 1024.0,
            "idle_cpu_percent": idle_cpu,
            "idle_seconds": idle,
        })
    );
    Ok(())
}

/// The HTTP floor: hyper on a multi-threaded runtime, as in the daemon, answering `200 OK`
/// after reading the body.
async fn floor(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind floor on {addr}"))?;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let addr = loopback(&cli.url)?;
    match &cli.scenario {
        Scenario::Ingest { account, app_secret, senders, scattered_ids } => ingest(&cli, addr, account, app_secret, *senders, *scattered_ids).await,
        Scenario::Dispatch { account, api_token, mock } => dispatch(&cli, addr, account, api_token, *mock).await,
        Scenario::Footprint { account, api_token, mock, pid, queue, idle_seconds } => {
            footprint(&cli, addr, account, api_token, *mock, *pid, *queue, *idle_seconds).await
        }
        Scenario::Drain { api_token, max } => drain_inbox(&cli, addr, api_token, *max).await,
        Scenario::Floor => floor(addr).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback("http://127.0.0.1:8787").is_ok());
        assert!(loopback("http://[::1]:8787").is_ok());
        assert!(loopback("http://10.0.0.1:8787").is_err());
        assert!(loopback("http://192.168.1.2").is_err());
    }

    /// The template writes the same JSON document as the `json!` form.
    #[test]
    fn the_fast_body_is_the_same_document() {
        let mut fast = Vec::new();
        for n in [0, 7, 1_234, 999_999] {
            webhook_body_fast(n, 1_000, false, &mut fast);
            let a: serde_json::Value = serde_json::from_slice(&fast).unwrap();
            let b: serde_json::Value = serde_json::from_slice(&webhook_body(n)).unwrap();
            assert_eq!(a, b);
        }
    }

    /// `--scattered-ids`: every wamid still unique, but not in increasing order.
    #[test]
    fn scattered_ids_are_unique_and_unordered() {
        let mut body = Vec::new();
        let ids: Vec<String> = (0..1_000)
            .map(|n| {
                webhook_body_fast(n, 1_000, true, &mut body);
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                v["entry"][0]["changes"][0]["value"]["messages"][0]["id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), ids.len());
        assert!(ids.windows(2).any(|w| w[0] > w[1]), "not increasing");
    }

    #[test]
    fn the_mock_reads_the_send_time_from_a_graph_request() {
        let body = serde_json::json!({ "messaging_product": "whatsapp", "to": "1650", "type": "text", "text": { "body": "t=123456" } });
        assert_eq!(sent_at(body.to_string().as_bytes()), Some(123_456));
        assert_eq!(sent_at(br#"{"text":{"body":"hello"}}"#), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name_whatever_it_holds() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
        let stat = "4242 (store (x) writer) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1";
        assert_eq!(stat_ticks(stat).unwrap(), 300);
        assert!(stat_ticks("no parenthesis").is_err());
        let mine = thread_ticks(std::process::id()).unwrap();
        assert!(!mine.is_empty(), "this test's own threads are listed");
    }

    #[test]
    fn webhook_bodies_are_about_a_kibibyte_and_unique() {
        let (a, b) = (webhook_body(1), webhook_body(2));
        assert!((900..1300).contains(&a.len()), "{}", a.len());
        assert_ne!(a, b);
    }
}
