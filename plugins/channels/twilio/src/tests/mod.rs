//! Native unit tests against recorded Twilio webhooks and API answers in `fixtures/`.

mod inbound;
mod outbound;

use std::path::PathBuf;

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn describe_names_the_scheme() {
    let info = crate::channel_info();
    assert_eq!(info.name, "twilio");
    assert_eq!(info.verify_scheme, "twilio");
    let manifest = String::from_utf8(fixture("../plugin.toml")).unwrap();
    assert!(manifest.contains("verify = \"twilio\""));
    assert!(manifest.contains("auth_token"));
}
