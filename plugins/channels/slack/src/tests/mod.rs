//! Native unit tests against recorded Slack Events API bodies and Web API answers.

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
    assert_eq!((info.name.as_str(), info.verify_scheme.as_str()), ("slack", "slack-v0"));
}
