//! The sandbox: a hostile plugin on its own account fails only its own calls, within its
//! deadline, and learns nothing it should not — while WhatsApp on another account keeps
//! delivering through the same daemon.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::accounts::AccountCtx;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::model::{DeliveryOutcome, MessageBody};
use switchboard::runtime::{CallError, Outbound};
use switchboard_tests::*;

const EVIL_TOKEN: &str = "evil-own-token-77";

/// WhatsApp on `wa-main` and the hostile plugin on `evil`, both pointed at `mock`; the operator
/// narrows `evil`'s allowlist to the mock (its manifest also allows `other_base`).
fn config(dir: &Path, plugins: &Path, mock: &str, other: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{data}"
plugins_dir = "{plugins}"
api_tokens = ["{API_TOKEN}"]

[accounts.wa-main]
plugin = "whatsapp-cloud"
secrets = {{ app_secret = "{APP_SECRET}", verify_token = "{VERIFY_TOKEN}", access_token = "{ACCESS_TOKEN}" }}
settings = {{ phone_number_id = "{PHONE_NUMBER_ID}", api_base = "{mock}", api_version = "v21.0" }}

[accounts.evil]
plugin = "hostile"
secrets = {{ app_secret = "evil-app-secret", token = "{EVIL_TOKEN}" }}
settings = {{ api_base = "{mock}", other_base = "{other}" }}
allowed_hosts = ["{mock}"]

# Per-plugin limits: 300 ms rather than the default 100 ms, so that on a loaded 2-core CI box
# the honest-but-big "huge" result is built before the deadline (it must fail on its size).
[plugins.hostile]
call_deadline_ms = 300
memory_mib = 64

[delivery]
poll_interval_ms = 5
"#,
        data = dir.join("data").display(),
        plugins = plugins.display(),
    )
}

struct Sandbox {
    d: TestDaemon,
    mock: MockProvider,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    async fn start(other: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
        install_plugin(&guests_dir(), "hostile", &plugins);
        let mock = MockProvider::start().await;
        let cfg = Config::parse(&config(dir.path(), &plugins, &mock.base_url(), other), "test").unwrap();
        let d = TestDaemon::start_with(cfg, ManualClock::new(T0)).await;
        Self { d, mock, _dir: dir }
    }

    /// The hostile plugin on two accounts, `evil` and `evil-two`, with `manifest_head`
    /// prepended to its manifest.
    async fn two_accounts(manifest_head: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
        install_plugin(&guests_dir(), "hostile", &plugins);
        let manifest = plugins.join("hostile.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, format!("{manifest_head}{text}")).unwrap();
        let mock = MockProvider::start().await;
        let second = "\n[accounts.evil-two]\nplugin = \"hostile\"\nsecrets = { app_secret = \"s2\", token = \"t2\" }\n";
        let cfg = config(dir.path(), &plugins, &mock.base_url(), "http://127.0.0.1:9")
            + second
            + &format!("settings = {{ api_base = \"{}\" }}\nallowed_hosts = [\"{}\"]\n", mock.base_url(), mock.base_url());
        let d = TestDaemon::start_with(Config::parse(&cfg, "test").unwrap(), ManualClock::new(T0)).await;
        Self { d, mock, _dir: dir }
    }

    /// Calls the hostile plugin's `deliver` directly, with `command` as the message text.
    async fn hostile(&self, command: &str) -> (Result<DeliveryOutcome, CallError>, Duration) {
        self.hostile_on("evil", command).await
    }

    /// [`Self::hostile`] on account `account` (which uses the hostile plugin).
    async fn hostile_on(&self, account: &str, command: &str) -> (Result<DeliveryOutcome, CallError>, Duration) {
        let ctx: Arc<AccountCtx> = self.d.daemon.app().accounts.ready(account).expect("the hostile account starts").clone();
        let body = MessageBody::Text(command.to_string());
        let msg = Outbound {
            id: "m1",
            account,
            to: "someone",
            conversation: "someone",
            body: &body,
            metadata: None,
            attempt: 1,
            idempotency_key: None,
        };
        let t = Instant::now();
        let r = self.d.daemon.app().runtime.deliver(&ctx, msg).await;
        (r, t.elapsed())
    }

    /// What a probe command saw (the plugin reports it as a `permanent` failure `probe`).
    async fn probe(&self, command: &str) -> String {
        self.probe_on("evil", command).await
    }

    async fn probe_on(&self, account: &str, command: &str) -> String {
        match self.hostile_on(account, command).await.0 {
            Ok(DeliveryOutcome::Permanent { code, reason }) if code == "probe" => reason,
            other => panic!("{command}: expected a probe report, got {other:?}"),
        }
    }

    /// Submits `n` WhatsApp messages, one every 10 ms, and returns their ids.
    fn whatsapp_traffic(&self, n: usize) -> tokio::task::JoinHandle<Vec<String>> {
        let (http, base) = (self.d.http.clone(), self.d.base.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let resp = http
                    .post(format!("{base}/v1/messages"))
                    .bearer_auth(API_TOKEN)
                    .json(&json!({ "account": "wa-main", "to": USER, "text": format!("hello {i}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 202);
                let v: serde_json::Value = resp.json().await.unwrap();
                ids.push(v["id"].as_str().unwrap().to_string());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ids
        })
    }

    async fn all_sent_once(&self, ids: &[String]) {
        for id in ids {
            let m = self.d.message_until(id, |m| m["status"] == "sent").await;
            assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "{m:#}");
        }
    }
}

/// Generous bound for "within the deadline" (300 ms of guest time) on a loaded 2-core CI box.
const PROMPTLY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_call_fails_alone_within_its_deadline_while_whatsapp_keeps_delivering() {
    let s = Sandbox::start("http://127.0.0.1:9").await;
    assert_eq!(s.d.signed_webhook(&fixture("text.json")).await.status(), 200, "opens the 24 h window");
    // 8: the manual clock never refills the per-recipient burst (10) of the rate limiter.
    let traffic = s.whatsapp_traffic(8);

    let (r, took) = s.hostile("loop").await;
    assert!(matches!(r, Err(CallError::Deadline(d)) if d == Duration::from_millis(300)), "{r:?}");
    assert!(took < PROMPTLY, "an endless loop is stopped at its deadline, took {took:?}");

    let (r, took) = s.hostile("alloc").await;
    assert!(matches!(r, Err(CallError::OutOfMemory(cap)) if cap == 64 << 20), "{r:?}");
    assert!(took < PROMPTLY, "{took:?}");

    let (r, took) = s.hostile("recurse").await;
    assert!(matches!(r, Err(CallError::StackOverflow)), "{r:?}");
    assert!(took < PROMPTLY, "{took:?}");

    let (r, took) = s.hostile("huge").await;
    assert!(matches!(&r, Err(CallError::OutputTooLarge(m)) if m.contains("provider message id")), "{r:?}");
    assert!(took < PROMPTLY, "{took:?}");

    // After all that the hostile plugin itself still works: nothing was poisoned or leaked.
    let (r, _) = s.hostile("ok").await;
    assert!(matches!(&r, Ok(DeliveryOutcome::Delivered { provider_message_id }) if provider_message_id == "hostile-ok"), "{r:?}");

    let ids = traffic.await.unwrap();
    s.all_sent_once(&ids).await;
    assert_eq!(s.mock.requests().len(), ids.len());

    let stats = s.d.daemon.app().runtime.stats();
    let h = stats["hostile"];
    assert_eq!((h.deadline, h.out_of_memory, h.stack_overflow, h.bad_output, h.trap), (1, 1, 1, 1, 0), "{h:?}");
    assert_eq!(stats["whatsapp-cloud"].failures(), 0, "{stats:?}");
    assert!(stats["whatsapp-cloud"].calls >= ids.len() as u64);
    s.d.stop().await;
}

#[tokio::test]
async fn a_hostile_message_through_the_outbox_fails_only_its_own_delivery() {
    let s = Sandbox::start("http://127.0.0.1:9").await;
    assert_eq!(s.d.signed_webhook(&fixture("text.json")).await.status(), 200);
    let (st, evil) = s.d.api("/v1/messages", json!({ "account": "evil", "to": "someone", "text": "loop" })).await;
    assert_eq!(st, 202, "{evil}");
    let (st, wa) = s.d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "still here" })).await;
    assert_eq!(st, 202, "{wa}");

    let m = s.d.message_until(evil["id"].as_str().unwrap(), |m| !m["attempts"].as_array().unwrap().is_empty()).await;
    assert_ne!(m["status"], "sent", "{m:#}");
    assert!(m.to_string().contains("deadline"), "the attempt names the deadline: {m:#}");
    s.d.message_until(wa["id"].as_str().unwrap(), |m| m["status"] == "sent").await;
    s.d.stop().await;
}

#[tokio::test]
async fn capability_probes_get_errors_and_nothing_leaks() {
    let other = MockProvider::start().await;
    let s = Sandbox::start(&other.base_url()).await;
    let app = s.d.daemon.app();

    // http-fetch: manifest ∩ operator. The mock is in both; `other_base` only in the manifest.
    let seen = s.probe(&format!("fetch {}/x", s.mock.base_url())).await;
    assert!(seen.starts_with("status 200 body "), "{seen}");
    assert_eq!(s.probe(&format!("fetch {}/x", other.base_url())).await, "denied 127.0.0.1");
    assert_eq!(s.probe("fetch https://evil.example/steal").await, "denied evil.example");
    assert!(other.requests().is_empty(), "a denied host sees no request");

    // secret: only the evil account's own, under any spelling of another's.
    let seen = s.probe("secret token access_token wa-main/access_token wa-main.access_token verify_token").await;
    assert_eq!(
        seen,
        format!(
            "token=Some(\"{EVIL_TOKEN}\") access_token=None wa-main/access_token=None wa-main.access_token=None verify_token=None"
        )
    );

    // kv: WhatsApp's namespace is invisible and untouchable.
    app.store.kv_set("whatsapp-cloud", "token", Some(b"wa-private".to_vec())).await.unwrap();
    let seen = s.probe("kv-get token whatsapp-cloud\u{0}token ../whatsapp-cloud/token").await;
    assert_eq!(seen, "token=None whatsapp-cloud\u{0}token=None ../whatsapp-cloud/token=None");
    assert_eq!(s.probe("kv-set token evil-wrote").await, "set");
    assert_eq!(s.probe("kv-get token").await, "token=Some(\"evil-wrote\")");
    assert_eq!(app.store.kv_get("whatsapp-cloud", "token").await.unwrap().as_deref(), Some(&b"wa-private"[..]));

    // WASI: an empty environment; no filesystem and no clocks at all (their imports trap).
    assert_eq!(s.probe("env").await, "[]");
    let (r, _) = s.hostile("fs").await;
    assert!(matches!(&r, Err(CallError::Trap(m)) if m.contains("wasi:filesystem")), "{r:?}");
    let (r, _) = s.hostile("clock").await;
    assert!(matches!(&r, Err(CallError::Trap(m)) if m.contains("wasi:clocks")), "{r:?}");
    s.d.stop().await;
}

/// Two accounts on the hostile plugin: they share its kv namespace by default, and each gets its
/// own when the manifest says `kv_scope = "account"` (neither can read or overwrite the other's).
#[tokio::test]
async fn kv_is_per_account_when_the_plugin_asks() {
    for scope in ["plugin", "account"] {
        let s = Sandbox::two_accounts(&format!("kv_scope = \"{scope}\"\n")).await;

        assert_eq!(s.probe_on("evil", "kv-set cursor from-evil").await, "set");
        let seen_by_two = s.probe_on("evil-two", "kv-get cursor").await;
        if scope == "plugin" {
            assert_eq!(seen_by_two, "cursor=Some(\"from-evil\")", "one namespace for the plugin");
        } else {
            assert_eq!(seen_by_two, "cursor=None", "another account's key is invisible");
            // Spellings that would alias the other account's namespace find nothing either.
            let seen = s.probe_on("evil-two", "kv-get hostile@evil\u{0}cursor @evil\u{0}cursor ../evil/cursor").await;
            assert!(!seen.contains("from-evil"), "{seen}");
            assert_eq!(s.probe_on("evil-two", "kv-set cursor from-two").await, "set");
            assert_eq!(s.probe_on("evil", "kv-get cursor").await, "cursor=Some(\"from-evil\")", "not overwritten");
            assert_eq!(s.probe_on("evil-two", "kv-get cursor").await, "cursor=Some(\"from-two\")");
            // …and the plugin-wide namespace is not where they went.
            assert_eq!(s.d.daemon.app().store.kv_get("hostile", "cursor").await.unwrap(), None);
        }
        s.d.stop().await;
    }
}

/// An instance whose call ended cleanly serves its own account's next call (warm reuse), and
/// nothing else: another account gets its own, any failure drops it, a reload drops them all.
#[tokio::test]
async fn a_warm_instance_serves_only_its_own_account_and_never_after_a_failure() {
    let s = Sandbox::two_accounts("").await;

    assert_eq!(s.probe_on("evil", "calls").await, "calls 1");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 2", "the account's next call reuses the instance");
    assert_eq!(s.probe_on("evil-two", "calls").await, "calls 1", "another account never gets it");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 3");
    let app = s.d.daemon.app();
    let (running, parked) = app.runtime.instance_counts();
    assert!(parked >= 2, "one per account: {parked}");
    assert_eq!(running, 0, "a parked instance does not keep the epoch ticker awake");

    // A failed call drops its instance: the next one starts fresh, and works.
    let (r, _) = s.hostile("recurse").await;
    assert!(matches!(r, Err(CallError::StackOverflow)), "{r:?}");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 1", "nothing carries over from a trap");
    let (r, _) = s.hostile("huge").await;
    assert!(matches!(&r, Err(CallError::OutputTooLarge(_))), "{r:?}");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 1", "nor from a refused result");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 2");

    // A reload of the plugin (new bytes) discards parked instances of the old version.
    let wasm = s._dir.path().join("plugins/hostile.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(b"\x00\x0a\x06reload\x00\x00\x00"); // a custom section: same code, new digest
    std::fs::write(&wasm, bytes).unwrap();
    app.runtime.reload(&wasm).await.expect("reloads");
    assert_eq!(s.probe_on("evil", "calls").await, "calls 1", "the new version starts fresh");
    s.d.stop().await;
}

/// A provider that holds every request until the test opens its gate: calls that fetch from
/// it keep their instances for as long as the test wants. Counts the requests that arrived.
struct Gate {
    url: String,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (open, rx) = tokio::sync::watch::channel(false);
        let count = arrived.clone();
        let app = axum::Router::new().fallback(move || {
            let (count, mut rx) = (count.clone(), rx.clone());
            async move {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = rx.wait_for(|open| *open).await;
                "ok"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { url, arrived, open }
    }

    async fn wait_for_arrivals(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.arrived.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "only {} of {n} requests arrived", self.arrived.load(std::sync::atomic::Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `n` concurrent `fetch` calls of the hostile plugin on `account`, each held at the gate.
fn held_calls(app: &Arc<switchboard::app::App>, account: &str, url: &str, n: usize) -> tokio::task::JoinSet<Result<DeliveryOutcome, CallError>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (app, account, command) = (app.clone(), account.to_string(), format!("fetch {url}/held 30000"));
        set.spawn(async move {
            let ctx = app.accounts.ready(&account).expect("the hostile account starts").clone();
            let body = MessageBody::Text(command);
            let msg = Outbound { id: "m1", account: &account, to: "someone", conversation: "someone", body: &body, metadata: None, attempt: 1, idempotency_key: None };
            app.runtime.deliver(&ctx, msg).await
        });
    }
    set
}

/// Parked instances never cost a call its slot: with the allocator's pool full of parked and
/// running instances, a new call drops the parked ones and gets a fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_drops_the_parked_instances_rather_than_fail_a_call() {
    let gate = Gate::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    install_plugin(&guests_dir(), "hostile", &plugins);
    let second = format!(
        "\n[accounts.evil-two]\nplugin = \"hostile\"\nsecrets = {{ app_secret = \"s2\", token = \"t2\" }}\nsettings = {{ api_base = \"{0}\" }}\nallowed_hosts = [\"{0}\"]\n",
        gate.url
    );
    let cfg = config(dir.path(), &plugins, &gate.url, "http://127.0.0.1:9") + &second;
    let d = TestDaemon::start_with(Config::parse(&cfg, "test").unwrap(), ManualClock::new(T0)).await;
    let app = d.daemon.app().clone();
    // The pool holds 256 instances; at most half of them park.
    const PARKABLE: usize = 128;

    // 128 calls at once on `evil`: 128 instances, all parked once their calls end.
    let mut first = held_calls(&app, "evil", &gate.url, PARKABLE);
    gate.wait_for_arrivals(PARKABLE).await;
    gate.open.send_replace(true);
    while let Some(r) = first.join_next().await {
        assert!(matches!(r.unwrap(), Ok(DeliveryOutcome::Permanent { ref reason, .. }) if reason.starts_with("status 200")));
    }
    assert_eq!(app.runtime.instance_counts(), (0, PARKABLE));

    // 128 more held on `evil-two` (which cannot use `evil`'s): the pool is full now.
    gate.open.send_replace(false);
    let mut second = held_calls(&app, "evil-two", &gate.url, PARKABLE);
    gate.wait_for_arrivals(2 * PARKABLE).await;
    assert_eq!(app.runtime.instance_counts(), (PARKABLE, PARKABLE));

    // One more call still runs: the parked instances gave way.
    let ctx = app.accounts.ready("evil-two").unwrap().clone();
    let body = MessageBody::Text("calls".into());
    let msg = Outbound { id: "m2", account: "evil-two", to: "someone", conversation: "someone", body: &body, metadata: None, attempt: 1, idempotency_key: None };
    let r = app.runtime.deliver(&ctx, msg).await;
    assert!(matches!(&r, Ok(DeliveryOutcome::Permanent { reason, .. }) if reason == "calls 1"), "{r:?}");
    assert_eq!(app.runtime.instance_counts().1, 1, "the parked instances were dropped; this call's took their place");

    // With every slot running a call and nothing parked, a call is refused as busy (the
    // host's capacity, not a plugin failure) and a webhook is answered 503 with Retry-After,
    // so the provider sends it again; once calls end, both work.
    let mut third = held_calls(&app, "evil", &gate.url, PARKABLE);
    gate.wait_for_arrivals(3 * PARKABLE).await;
    assert_eq!(app.runtime.instance_counts(), (2 * PARKABLE, 0));
    let failed_before = metric(&d, "switchboard_plugin_failures_total").await;
    let msg = Outbound { id: "m3", account: "evil-two", to: "someone", conversation: "someone", body: &body, metadata: None, attempt: 1, idempotency_key: None };
    let r = app.runtime.deliver(&ctx, msg).await;
    assert!(matches!(&r, Err(CallError::Busy(_))), "{r:?}");
    let hook = String::from_utf8(fixture("text.json")).unwrap();
    let resp = d.signed_webhook(hook.as_bytes()).await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).as_deref(), Some("1"));
    assert!(resp.text().await.unwrap().contains("sandbox_busy"));
    assert_eq!(metric(&d, "switchboard_plugin_failures_total").await, failed_before, "busy is no plugin failure");

    gate.open.send_replace(true);
    for set in [&mut second, &mut third] {
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap().is_ok());
        }
    }
    assert_eq!(d.signed_webhook(hook.as_bytes()).await.status().as_u16(), 200, "the provider's retry is taken");
    d.stop().await;
}

/// The sum of a counter's samples in `/metrics` (0 when it has none yet).
async fn metric(d: &TestDaemon, name: &str) -> f64 {
    let text = d.http.get(format!("{}/metrics", d.base)).bearer_auth(API_TOKEN).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test]
async fn a_response_body_over_the_limit_reaches_the_plugin_as_too_large() {
    // A provider answering 2 MiB; the host caps bodies at 1 MiB.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { vec![b'x'; 2 << 20] });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let s = Sandbox::start(&format!("http://{addr}")).await;
    // Reachable only if the operator allows it: here it does not, so first a denial…
    assert_eq!(s.probe(&format!("fetch http://{addr}/big")).await, "denied 127.0.0.1");
    s.d.stop().await;

    // …and with the operator allowing it, the body is refused, not buffered.
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    install_plugin(&guests_dir(), "hostile", &plugins);
    let mock = MockProvider::start().await;
    let text = config(dir.path(), &plugins, &mock.base_url(), &format!("http://{addr}"))
        .replace(&format!("allowed_hosts = [\"{}\"]", mock.base_url()), &format!("allowed_hosts = [\"http://{addr}\"]"));
    let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), ManualClock::new(T0)).await;
    let s = Sandbox { d, mock, _dir: dir };
    assert_eq!(s.probe(&format!("fetch http://{addr}/big")).await, "too-large");
    s.d.stop().await;
}

#[tokio::test]
async fn a_plugin_whose_describe_disagrees_with_its_manifest_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guests_dir().join("hostile.wasm"), plugins.join("impostor.wasm")).unwrap();
    let manifest = std::fs::read_to_string(guests_dir().join("hostile.toml")).unwrap().replace("name = \"hostile\"", "name = \"impostor\"");
    std::fs::write(plugins.join("impostor.toml"), manifest).unwrap();
    let d = TestDaemon::start_with(Config::parse(&config(dir.path(), &plugins, "http://127.0.0.1:9", "http://127.0.0.1:9"), "t").unwrap(), ManualClock::new(T0)).await;
    let app = d.daemon.app();
    assert!(app.runtime.plugin_names().is_empty());
    let errors = app.runtime.load_errors();
    let e = &errors[&plugins.join("impostor.wasm").display().to_string()];
    assert!(e.contains("describe() says name `hostile`"), "{e}");
    let (status, ready) = d.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(ready["plugin_errors"].to_string().contains("impostor"), "{ready}");
    d.stop().await;
}

#[tokio::test]
async fn a_restart_loads_compiled_plugins_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let plugins: PathBuf = dir.path().join("plugins");
    install_plugin(&plugins_dir(), "whatsapp-cloud", &plugins);
    install_plugin(&guests_dir(), "hostile", &plugins);
    let text = config(dir.path(), &plugins, "http://127.0.0.1:9", "http://127.0.0.1:9");
    let mut took = Vec::new();
    let mut cache = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let d = TestDaemon::start_with(Config::parse(&text, "t").unwrap(), ManualClock::new(T0)).await;
        took.push(t.elapsed());
        cache.push(d.daemon.app().runtime.cache_stats().expect("the daemon caches compiled plugins"));
        d.stop().await;
    }
    eprintln!("daemon start with 2 plugins: cold {:?}, from cache {:?}", took[0], took[1]);
    assert_eq!(cache[0], (0, 2), "first start compiles both (hits, misses)");
    assert_eq!(cache[1], (2, 0), "the restart compiles nothing");
}
