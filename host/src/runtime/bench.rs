//! Hooks for `benches/plugin.rs`: the sandbox's per-call costs measured on the daemon's own
//! engine configuration (pooling allocator, epochs, compile cache). Not an API: the daemon never
//! calls this, and it exists here only because nothing outside `runtime/` may touch wasmtime.

use super::{Call, HostServices, Instance, LoadError, Runtime, RuntimeOptions};
use crate::accounts::AccountCtx;
use crate::clock::{SharedClock, SystemClock};
use crate::egress::Egress;
use crate::model::{DeliveryOutcome, MessageBody};
use crate::store::{Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A runtime with one plugin loaded, and an account to call it for.
pub struct PluginBench {
    runtime: Runtime,
    account: Arc<AccountCtx>,
    store: Store,
    _tmp: tempfile::TempDir,
}

impl PluginBench {
    /// Loads `dir/NAME.wasm` into a runtime with the daemon's engine settings (`epochs = false`
    /// turns off epoch interruption, to price it). Compiles through a fresh compile cache.
    pub async fn new(dir: &Path, name: &str, epochs: bool) -> Result<Self, LoadError> {
        let tmp = tempfile::tempdir().expect("temp dir");
        let clock: SharedClock = Arc::new(SystemClock);
        let store = Store::open(&tmp.path().join("bench.redb"), clock.clone(), StoreOptions::default()).expect("store");
        let services = HostServices { store: store.clone(), egress: Egress::new(Duration::from_secs(5), 1 << 20), clock };
        let options = RuntimeOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
        let runtime = Runtime::with_engine(services, options, epochs)?;
        runtime.load(&dir.join(format!("{name}.wasm"))).await?;
        Ok(Self { runtime, account: Arc::new(AccountCtx::for_inspection(name)), store, _tmp: tmp })
    }

    /// A fresh store and instance from the plugin's `InstancePre`, and one `describe` call:
    /// what every daemon call pays before the plugin does its work.
    pub async fn fresh_describe(&self) {
        let mut call = self.runtime.begin(&self.account).await.expect("instantiate");
        describe(&mut call).await;
    }

    /// One instance kept for repeated calls: the call itself apart from instantiation (what a
    /// webhook pays on an instance its account parked, `runtime/warm.rs`).
    pub async fn warm(&self) -> Warm {
        Warm(self.runtime.begin(&self.account).await.expect("instantiate"))
    }

    /// `deliver` of a text message (the hostile guest reads it as a command).
    pub async fn deliver(&self, text: &str) -> DeliveryOutcome {
        let body = MessageBody::Text(text.to_string());
        let msg = super::Outbound {
            id: "m",
            account: "bench",
            to: "someone",
            conversation: "someone",
            body: &body,
            metadata: None,
            attempt: 1,
            idempotency_key: None,
        };
        self.runtime.deliver(&self.account, msg).await.expect("deliver")
    }

    /// Compiles `wasm` with this runtime's engine; after the first time, a compile-cache hit
    /// (what a restart pays per plugin).
    pub fn compile(&self, wasm: &[u8]) {
        super::compile(&self.runtime.engine, self.runtime.cache.as_deref(), wasm).expect("compile");
    }

    pub async fn close(self) {
        drop(self.runtime);
        self.store.close().await;
    }
}

/// A live instance for [`PluginBench::warm`].
pub struct Warm(Call);

/// A webhook POST as the webhook path hands it to `handshake`, converted once up front.
pub struct Webhook(super::bindings::wit::HttpRequest);

impl Webhook {
    /// A signed-looking JSON POST with a `body_bytes`-byte body.
    pub fn post(body_bytes: usize) -> Self {
        Self::with_body(vec![b'x'; body_bytes])
    }

    /// A signed-looking JSON POST of `body`.
    pub fn with_body(body: Vec<u8>) -> Self {
        let headers = [("content-type", "application/json"), ("x-hub-signature-256", "sha256=00"), ("user-agent", "facebookexternalua")];
        Self(super::convert::request_to_wit(crate::model::HttpRequest {
            method: "POST".into(),
            url: "/webhooks/bench".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body,
            timeout_ms: None,
        }))
    }
}

impl Warm {
    /// `handshake` of a webhook POST (the plugin answers none): the first of the two calls the
    /// webhook path makes on each instance, with the request's lowering into guest memory.
    pub async fn handshake(&mut self, req: &Webhook) {
        self.0.rearm();
        let Some(Instance::Channel(i)) = &self.0.inst else { unreachable!("a channel plugin") };
        let answer = i.switchboard_plugin_channel().call_handshake(&mut self.0.store, &req.0).await.expect("handshake");
        assert!(answer.is_none(), "a POST is no handshake");
    }

    /// `parse-inbound` of a webhook with the host's checks and conversion of the events: the
    /// webhook path's second call. Returns the number of events.
    pub async fn parse_inbound(&mut self, req: &Webhook) -> usize {
        self.0.rearm();
        self.0.parse_inbound(&req.0).await.expect("call").expect("parses").len()
    }

    /// `poll` with no cursor on a plugin that answers it with an empty batch (the hostile test
    /// guest): nothing is lowered into the guest and nothing allocated on either side, so this
    /// is the sandbox's own price of one call on a live instance, through the daemon's call
    /// path (the wall-clock cap of [`Call::run`], the result checks).
    pub async fn poll_empty(&mut self) {
        self.0.rearm();
        let r = self.0.run(|s, c| c.call_poll(s, None)).await;
        let batch = self.0.finish(r).expect("call").expect("an empty batch");
        assert!(batch.events.is_empty() && batch.cursor.is_none());
    }

    /// [`Warm::poll_empty`] without the wall-clock cap: wasmtime's part alone.
    pub async fn poll_empty_bare(&mut self) {
        self.0.rearm();
        let Some(Instance::Channel(i)) = &self.0.inst else { unreachable!("a channel plugin") };
        let batch = i.switchboard_plugin_channel().call_poll(&mut self.0.store, None).await.expect("poll").expect("an empty batch");
        assert!(batch.events.is_empty());
    }

    /// One call with a fresh guest-time budget (as [`super::Runtime::receive`] gives its
    /// second call): without it the instance's single budget runs out over many calls.
    pub async fn describe(&mut self) {
        self.0.rearm();
        describe(&mut self.0).await;
    }
}

async fn describe(call: &mut Call) {
    match &call.inst {
        Some(Instance::Channel(i)) => {
            i.switchboard_plugin_channel().call_describe(&mut call.store).await.expect("describe");
        }
        Some(Instance::Tool(i)) => {
            i.switchboard_plugin_tool().call_describe(&mut call.store).await.expect("describe");
        }
        None => unreachable!("begin returns an instance"),
    }
}
