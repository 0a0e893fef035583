//! Cost of each webhook verification scheme on a ~1 KiB body: `cargo bench -p switchboard --bench verify`.

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::hint::black_box;
use switchboard::model::HttpRequest;
use switchboard::redact::Secret;
use switchboard::verify::{Scheme, VerifyInput, verify};

fn body() -> Vec<u8> {
    format!(r#"{{"object":"whatsapp_business_account","text":"{}"}}"#, "x".repeat(1000)).into_bytes()
}

fn meta_request(secret: &str) -> HttpRequest {
    let body = body();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    HttpRequest {
        method: "POST".into(),
        url: "/webhooks/wa".into(),
        headers: vec![("x-hub-signature-256".into(), format!("sha256={}", hex::encode(mac.finalize().into_bytes())))],
        body,
        timeout_ms: None,
    }
}

fn bench(c: &mut Criterion) {
    let secret = Secret::new("bench-secret");
    let req = meta_request("bench-secret");
    c.bench_function("verify/meta-sha256/1KiB", |b| {
        b.iter(|| verify(Scheme::MetaSha256, &VerifyInput { secret: Some(&secret), public_url: None, now_ms: 0 }, black_box(&req)).unwrap())
    });
    let mut gh = req.clone();
    gh.headers[0].0 = "x-hub-signature-256".into();
    c.bench_function("verify/github-sha256/1KiB", |b| {
        b.iter(|| verify(Scheme::GithubSha256, &VerifyInput { secret: Some(&secret), public_url: None, now_ms: 0 }, black_box(&gh)).unwrap())
    });
    let tg = HttpRequest { headers: vec![("x-telegram-bot-api-secret-token".into(), "bench-secret".into())], ..req.clone() };
    c.bench_function("verify/telegram-secret-token", |b| {
        b.iter(|| verify(Scheme::TelegramSecretToken, &VerifyInput { secret: Some(&secret), public_url: None, now_ms: 0 }, black_box(&tg)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
