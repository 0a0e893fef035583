//! What the sandbox costs per call. `cargo bench -p switchboard --bench plugin` (builds the
//! bundled plugins and the test guest first, into a temp dir).
//!
//! - `fresh/*`: a new `Store` + instance from the plugin's `InstancePre` and one `describe`:
//!   the price of a call that finds no instance its account parked (`runtime/warm.rs`).
//! - `warm/describe`: the same call on an instance kept alive: the call alone, with the lifting
//!   of `describe`'s record (four strings and a list).
//! - `warm/handshake/{0B,1024B}`: `handshake` of a webhook POST on a live instance (the plugin
//!   answers none): the webhook path's call, with the request lowered into guest memory.
//! - `warm/parse-inbound/whatsapp-1KiB`: `parse-inbound` of `bench`'s 1 KiB WhatsApp text
//!   webhook on a live instance, with the host's checks and event conversion: the guest's
//!   JSON work per webhook.
//! - `warm/empty-poll`: `poll` with no cursor on the hostile test guest, which answers an empty
//!   batch: nothing lowered, nothing allocated on either side, no guest work to speak of. The
//!   sandbox's own price of one call on a live instance through the daemon's call path (the
//!   wall-clock cap, the result checks); `warm/empty-poll-bare` is the same call straight
//!   through the bindings, wasmtime's part alone. The `warm/describe`, `handshake` and
//!   `parse-inbound` rows are this plus what their arguments and results cost to copy.
//! - `import/now-ms/{0,1000}`: one `deliver` whose guest calls the `now-ms` host import N
//!   times; (t(1000) - t(0)) / 1000 is the price of one host import.
//! - `epochs/{on,off}/spin`: a guest loop of 10^6 iterations with and without epoch
//!   interruption: the cost of the guest deadline.
//! - `compile/cached`: loading the WhatsApp plugin through the compiled-plugin cache when its
//!   artifact is on disk (mapped, not recompiled): what a restart pays per plugin.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchboard::runtime::bench::PluginBench;

/// Times `iters` runs of `$call` inside one `block_on`, so the executor's own entry cost is
/// not counted per call.
macro_rules! timed {
    ($rt:expr, $iters:expr, $call:expr) => {
        $rt.block_on(async {
            let t = std::time::Instant::now();
            for _ in 0..$iters {
                $call;
            }
            t.elapsed()
        })
    };
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    xtask::build_plugins(dir.path()).expect("build plugins");
    xtask::build_test_guests(dir.path()).expect("build test guests");
    let whatsapp = rt.block_on(PluginBench::new(dir.path(), "whatsapp-cloud", true)).unwrap();
    let hostile = rt.block_on(PluginBench::new(dir.path(), "hostile", true)).unwrap();
    let hostile_no_epochs = rt.block_on(PluginBench::new(dir.path(), "hostile", false)).unwrap();

    let mut g = c.benchmark_group("plugin");
    g.bench_function("fresh/whatsapp-cloud", |b| b.to_async(&rt).iter(|| whatsapp.fresh_describe()));
    g.bench_function("fresh/hostile", |b| b.to_async(&rt).iter(|| hostile.fresh_describe()));

    // The whole timed loop runs inside one `block_on`, so the executor's own entry cost is
    // not counted per call.
    let mut warm = rt.block_on(whatsapp.warm());
    g.bench_function("warm/describe", |b| {
        b.iter_custom(|iters| timed!(rt, iters, warm.describe().await))
    });
    for bytes in [0usize, 1024] {
        let req = switchboard::runtime::bench::Webhook::post(bytes);
        g.bench_with_input(BenchmarkId::new("warm/handshake", format!("{bytes}B")), &req, |b, req| {
            b.iter_custom(|iters| timed!(rt, iters, warm.handshake(req).await))
        });
    }
    let req = switchboard::runtime::bench::Webhook::with_body(whatsapp_webhook());
    g.bench_function("warm/parse-inbound/whatsapp-1KiB", |b| {
        b.iter_custom(|iters| timed!(rt, iters, assert_eq!(warm.parse_inbound(&req).await, 1)))
    });
    drop(warm);
    let mut empty = rt.block_on(hostile.warm());
    g.bench_function("warm/empty-poll", |b| {
        b.iter_custom(|iters| timed!(rt, iters, empty.poll_empty().await))
    });
    g.bench_function("warm/empty-poll-bare", |b| {
        b.iter_custom(|iters| timed!(rt, iters, empty.poll_empty_bare().await))
    });
    drop(empty);

    for n in [0u32, 1000] {
        let cmd = format!("now-ms {n}");
        g.bench_with_input(BenchmarkId::new("import/now-ms", n), &cmd, |b, cmd| {
            b.to_async(&rt).iter(|| hostile.deliver(cmd))
        });
    }
    let spin = "spin 1000000";
    g.bench_function("epochs/on/spin", |b| b.to_async(&rt).iter(|| hostile.deliver(spin)));
    g.bench_function("epochs/off/spin", |b| b.to_async(&rt).iter(|| hostile_no_epochs.deliver(spin)));

    let wasm = std::fs::read(dir.path().join("whatsapp-cloud.wasm")).unwrap();
    whatsapp.compile(&wasm);
    g.bench_function("compile/cached", |b| b.iter(|| whatsapp.compile(&wasm)));
    g.finish();

    rt.block_on(async {
        whatsapp.close().await;
        hostile.close().await;
        hostile_no_epochs.close().await;
    });
}

/// The load generator's webhook (`bench/src/main.rs`): one text message, ~1 KiB.
fn whatsapp_webhook() -> Vec<u8> {
    let text = format!("load test message 7 {}", "x".repeat(560));
    format!(
        concat!(
            r#"{{"entry":[{{"changes":[{{"field":"messages","value":{{"contacts":[{{"profile":{{"name":"Load Test"}},"wa_id":"16500000007"}}],"#,
            r#""messages":[{{"from":"16500000007","id":"wamid.BENCH0000000000000007","text":{{"body":"{}"}},"timestamp":"1749416383","type":"text"}}],"#,
            r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}}}}}}],"id":"102290129340398"}}],"object":"whatsapp_business_account"}}"#
        ),
        text
    )
    .into_bytes()
}

criterion_group!(benches, bench);
criterion_main!(benches);
