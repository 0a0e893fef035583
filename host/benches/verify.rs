//! Cost of each webhook verification scheme on a ~1 KiB body, signed the way its provider
//! signs: `cargo bench -p switchboard --bench verify`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard::verify::signing::{NOW_MS, PUBLIC_URL, secret_for, signed};
use switchboard::verify::{Scheme, VerifyInput, verify};

/// What the provider would send: a form post for Twilio, JSON for the others.
fn body(scheme: Scheme) -> Vec<u8> {
    let text = "x".repeat(1000);
    match scheme {
        Scheme::Twilio => format!("AccountSid=AC123&Body={text}&From=%2B15550001111&MessageSid=SM123&To=%2B15550002222"),
        _ => format!(r#"{{"object":"whatsapp_business_account","text":"{text}"}}"#),
    }
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    for scheme in Scheme::ALL.into_iter().filter(|s| *s != Scheme::None) {
        let req = signed(scheme, &body(scheme));
        let secret = secret_for(scheme);
        let input = VerifyInput { secret: Some(&secret), public_url: Some(PUBLIC_URL), now_ms: NOW_MS };
        verify(scheme, &input, &req).expect("the request is signed correctly");
        c.bench_function(&format!("verify/{}/1KiB", scheme.name()), |b| b.iter(|| verify(scheme, &input, black_box(&req)).unwrap()));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
