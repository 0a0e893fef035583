//! A channel plugin that misbehaves on request, for the sandbox tests.
//!
//! `deliver` reads the message text as a command. Failures the host must contain (`loop`,
//! `alloc`, `recurse`, `huge`, `fs`, `clock`) fail the call; probes (`fetch URL`,
//! `secret NAME...`, `kv-get KEY...`, `kv-set KEY VALUE`, `env`) report what the plugin saw as
//! a `permanent` failure with code `probe`, so the test can read it from the outcome.
//! `calls` reports how many `deliver` calls this instance has served (whether the host reused
//! it). `spin N` and `now-ms N` do N units of guest work or host-import calls and succeed (for
//! `host/benches/plugin.rs`). `poll` with no cursor answers an empty batch: the cheapest export
//! there is (nothing lowered into the guest, nothing allocated on either side), which the
//! benchmark uses to price the sandbox's own cost per call.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, Failure, HttpError, HttpRequest, HttpResponse, InboundEvent, MessageBody,
    OutboundMessage, ParseError, PollBatch, imports,
};

struct Hostile;

/// `deliver` calls this instance has served: state a reused instance keeps.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

fn probe(seen: String) -> DeliveryOutcome {
    DeliveryOutcome::Permanent(Failure::new("probe", seen))
}

/// Deep, non-tail recursion the optimiser cannot turn into a loop.
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 1;
    }
    (recurse(n - 1).wrapping_mul(n)) ^ n
}

impl Channel for Hostile {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            verify_scheme: "meta-sha256".into(),
            capabilities: vec!["text".into()],
        }
    }

    fn handshake(_request: HttpRequest) -> Option<HttpResponse> {
        None
    }

    fn parse_inbound(_request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        Ok(Vec::new())
    }

    fn poll(cursor: Option<String>) -> Result<PollBatch, String> {
        match cursor {
            None => Ok(PollBatch { events: Vec::new(), cursor: None }),
            Some(_) => Err("hostile does not poll".to_string()),
        }
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        let served = DELIVERIES.fetch_add(1, Ordering::Relaxed) + 1;
        let MessageBody::Text(text) = &message.body else {
            return DeliveryOutcome::Delivered("hostile-ok".into());
        };
        let mut words = text.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        match cmd {
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "alloc" => {
                let v = vec![1u8; 1 << 30];
                DeliveryOutcome::Delivered(format!("allocated {}", black_box(v).len()))
            }
            "recurse" => {
                let f: fn(u64) -> u64 = black_box(recurse);
                DeliveryOutcome::Delivered(format!("{}", f(black_box(u64::MAX))))
            }
            "spin" => {
                let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let mut acc: u64 = 0;
                for i in 0..n {
                    acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
                }
                DeliveryOutcome::Delivered(format!("spin {acc}"))
            }
            "now-ms" => {
                let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let mut last = 0;
                for _ in 0..n {
                    last = black_box(imports::now_ms());
                }
                DeliveryOutcome::Delivered(format!("now {last}"))
            }
            "huge" => DeliveryOutcome::Delivered("x".repeat(16 << 20)),
            "fs" => match std::fs::read("/etc/passwd") {
                Ok(b) => probe(format!("read {} bytes", b.len())),
                Err(e) => probe(format!("fs error: {e}")),
            },
            "calls" => probe(format!("calls {served}")),
            "clock" => probe(format!("{:?}", std::time::SystemTime::now())),
            "env" => probe(format!("{:?}", std::env::vars().collect::<Vec<_>>())),
            "fetch" => {
                let req = HttpRequest {
                    method: "GET".into(),
                    url: args.first().copied().unwrap_or("").into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    // `fetch URL [timeout-ms]`
                    timeout_ms: Some(args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2_000)),
                };
                match imports::http_fetch(&req) {
                    Ok(r) => probe(format!("status {} body {} bytes", r.status, r.body.len())),
                    Err(HttpError::Denied(h)) => probe(format!("denied {h}")),
                    Err(HttpError::TooLarge) => probe("too-large".into()),
                    Err(e) => probe(format!("error {e:?}")),
                }
            }
            "secret" => {
                let seen: Vec<String> = args.iter().map(|n| format!("{n}={:?}", imports::secret(n))).collect();
                probe(seen.join(" "))
            }
            "kv-get" => {
                let seen: Vec<String> = args
                    .iter()
                    .map(|k| format!("{k}={:?}", imports::kv_get(k).map(|v| String::from_utf8_lossy(&v).into_owned())))
                    .collect();
                probe(seen.join(" "))
            }
            "kv-set" => {
                imports::kv_set(args.first().copied().unwrap_or("k"), Some(args.get(1).copied().unwrap_or("").as_bytes()));
                probe("set".into())
            }
            _ => DeliveryOutcome::Delivered("hostile-ok".into()),
        }
    }
}

switchboard_sdk::export!(Hostile);
