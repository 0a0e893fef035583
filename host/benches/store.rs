//! The store's group commit: time to make N concurrent webhook writes durable.
//! `cargo bench -p switchboard --bench store`. Compare the per-request cost at 1 and 64
//! concurrent writers: one fsync is shared by a whole batch. Also the frame log (`store/log`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard::clock::{ManualClock, SystemClock};
use switchboard::model::{EventKind, InboundEvent};
use switchboard::store::{HistoryOptions, IngestOptions, IngestRequest, Ingested, Store, StoreOptions};

fn event(n: u64) -> InboundEvent {
    InboundEvent {
        provider_event_id: format!("wamid.{n}"),
        kind: EventKind::Message,
        conversation: "16505551234".into(),
        sender: Some("16505551234".into()),
        text: Some("x".repeat(200)),
        timestamp_ms: None,
        status: None,
        payload: serde_json::json!({ "type": "text" }).into(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b.redb"), Arc::new(SystemClock), StoreOptions::default()).unwrap();
    let seq = Arc::new(AtomicU64::new(0));
    let mut g = c.benchmark_group("store/ingest");
    for writers in [1u64, 16, 64] {
        g.throughput(Throughput::Elements(writers));
        g.bench_with_input(BenchmarkId::from_parameter(writers), &writers, |b, &writers| {
            b.to_async(&rt).iter(|| {
                let (store, seq) = (store.clone(), seq.clone());
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..writers {
                        let (store, n) = (store.clone(), seq.fetch_add(1, Ordering::Relaxed));
                        set.spawn(async move {
                            store
                                .ingest(IngestRequest { account: "a".into(), correlation_id: "c".into(), events: vec![event(n)] })
                                .await
                                .unwrap()
                        });
                    }
                    set.join_all().await
                }
            })
        });
    }
    g.finish();

    // What the daemon writes per WhatsApp webhook: a ~600-character text in the event and its
    // payload, 1,000 senders, conversation history and session caps on (as `inbound` does).
    let webhook = |n: u64| InboundEvent {
        provider_event_id: format!("wamid.W{n}"),
        conversation: format!("1650{:07}", n % 1_000),
        sender: Some(format!("1650{:07}", n % 1_000)),
        text: Some(format!("load test message {n} {}", "x".repeat(560))),
        payload: serde_json::json!({ "type": "text", "text": format!("load test message {n} {}", "x".repeat(560)) }).into(),
        ..event(n)
    };
    let with_history = IngestOptions { history: Some(HistoryOptions { max_open_sessions: 5_000, ..Default::default() }), ..Default::default() };
    let mut g = c.benchmark_group("store/webhook");
    let writers = 64u64;
    g.throughput(Throughput::Elements(writers));
    for (name, opts) in [("history", with_history), ("no-history", IngestOptions::default())] {
    g.bench_function(BenchmarkId::new(name, writers), |b| {
        b.to_async(&rt).iter(|| {
            let (store, seq, opts) = (store.clone(), seq.clone(), opts.clone());
            async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..writers {
                    let (store, n, opts) = (store.clone(), seq.fetch_add(1, Ordering::Relaxed), opts.clone());
                    let req = IngestRequest { account: "a".into(), correlation_id: "c".into(), events: vec![webhook(n)] };
                    set.spawn(async move { store.ingest_with(req, opts).await.unwrap() });
                }
                set.join_all().await
            }
        })
    });
    }
    g.finish();

    // Webhooks that each open a new conversation's session in an account with `open` sessions
    // open, held there: on a clock of their own, each iteration moves 1 ms on, 64 sessions go
    // quiet and 64 new ones open (session timeout = open / 64 ms). What the session cap costs
    // as an account grows.
    let mut g = c.benchmark_group("store/new-session");
    g.throughput(Throughput::Elements(writers)).sample_size(20);
    for open in [100u64, 10_000] {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), clock.clone(), StoreOptions::default()).unwrap();
        let timeout = open.div_ceil(writers);
        let history = HistoryOptions { session_timeout_ms: timeout, max_open_sessions: 10_000_000, ..Default::default() };
        let opts = IngestOptions { history: Some(history), ..Default::default() };
        let fresh = |n: u64| InboundEvent { conversation: format!("new-{n}"), sender: Some(format!("new-{n}")), ..webhook(n) };
        let seq = Arc::new(AtomicU64::new(0));
        let tick = {
            let (store, seq, opts, clock) = (store.clone(), seq.clone(), opts.clone(), clock.clone());
            move || {
                clock.advance_ms(1);
                let (store, seq, opts) = (store.clone(), seq.clone(), opts.clone());
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..writers {
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let req = IngestRequest { account: "a".into(), correlation_id: "c".into(), events: vec![fresh(n)] };
                        let (store, opts) = (store.clone(), opts.clone());
                        set.spawn(async move { assert!(matches!(store.ingest_with(req, opts).await.unwrap(), Ingested::Stored(..))) });
                    }
                    set.join_all().await
                }
            }
        };
        // Fill the window: `open` sessions, 64 a millisecond.
        rt.block_on(async {
            for _ in 0..timeout {
                tick().await;
            }
        });
        g.bench_function(BenchmarkId::new("open", open), |b| b.to_async(&rt).iter(&tick));
        rt.block_on(store.close());
    }
    g.finish();
}

/// The frame log of the proposed log-structured webhook path (`store::log`): a batch of 64
/// webhook-sized frames appended (framing, CRC, one `write`), and appended and synced (what a
/// group commit on the log would wait for). Old segments are dropped as the run goes.
fn log(c: &mut Criterion) {
    use switchboard::store::log::FrameLog;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = FrameLog::open(dir.path(), 64 << 20).unwrap();
    let frames: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 1200]).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut g = c.benchmark_group("store/log");
    g.throughput(Throughput::Elements(refs.len() as u64));
    for sync in [false, true] {
        let name = if sync { "append-sync" } else { "append" };
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new(name, refs.len()), |b| {
            b.iter(|| {
                log.append(&refs).unwrap();
                if sync {
                    log.sync().unwrap();
                }
                n += 1;
                if n.is_multiple_of(512) {
                    log.drop_before(log.current_segment()).unwrap();
                }
            })
        });
    }
    g.finish();
}

/// The webhook dedupe keys (`store::dedupe_runs`) as a store holds them after ~500k webhooks:
/// two runs of 256k keys (each merged from four flushed memtables) and a memtable. A lookup
/// of a new key (the common case: memtable miss, one Bloom filter probe per run), of a key in
/// a run (filter, then one block read), and opening the runs (the filters are rebuilt by
/// reading every run: the start-up cost).
fn dedupe(c: &mut Criterion) {
    use switchboard::store::dedupe_runs::Dedupe;
    use switchboard::store::log::Position;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Dedupe::open(dir.path()).unwrap();
    let key = |i: u64| format!("wa-main\0wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTdGNj{i:012}");
    let per = switchboard::store::dedupe_runs::MEMTABLE_KEYS as u64;
    for r in 0..8u64 {
        for i in r * per..(r + 1) * per {
            d.insert(&key(i), u64::MAX);
        }
        d.maintain(0, Position { segment: r + 1, offset: 8 }, r + 1, true).unwrap();
    }
    for i in 8 * per..8 * per + 1000 {
        d.insert(&key(i), u64::MAX);
    }
    let mut g = c.benchmark_group("store/dedupe");
    let mut n = 1u64 << 40;
    g.bench_function("lookup-new-key", |b| {
        b.iter(|| {
            n += 1;
            assert!(d.get(&key(n)).unwrap().is_none());
        })
    });
    let mut i = 0u64;
    g.bench_function("lookup-key-in-a-run", |b| {
        b.iter(|| {
            i = (i + 7919) % (8 * per);
            assert!(d.get(&key(i)).unwrap().is_some());
        })
    });
    g.sample_size(10);
    g.bench_function("open-512k-keys", |b| b.iter(|| Dedupe::open(dir.path()).unwrap()));
    g.finish();
}

criterion_group!(benches, bench, log, dedupe);
criterion_main!(benches);
