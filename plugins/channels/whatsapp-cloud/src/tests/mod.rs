//! Native tests on the recorded fixtures in `fixtures/` (the host's integration tests read the
//! same files).

mod inbound;
mod outbound;

use serde_json::Value;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn describe_matches_manifest() {
    let info = crate::channel_info();
    assert_eq!(info.name, "whatsapp-cloud");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.verify_scheme, "meta-sha256");
    assert_eq!(
        info.capabilities,
        ["text", "media", "template", "window-24h"]
    );

    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml")).unwrap();
    assert!(manifest.contains(&format!("name = \"{}\"", info.name)));
    assert!(manifest.contains(&format!("version = \"{}\"", info.version)));
    assert!(manifest.contains(&format!("verify = \"{}\"", info.verify_scheme)));
    assert!(manifest.contains("world = \"channel-adapter\""));
    assert!(manifest.contains(&format!(
        "default = \"{}\"",
        crate::outbound::DEFAULT_API_BASE
    )));
    assert!(manifest.contains(&format!(
        "default = \"{}\"",
        crate::outbound::DEFAULT_API_VERSION
    )));
}

#[test]
fn handshake_is_left_to_the_host() {
    use switchboard_sdk::Channel;
    let req = switchboard_sdk::http::Request::get(
        "/webhooks/wa-main?hub.mode=subscribe&hub.verify_token=t&hub.challenge=1158201444",
    )
    .build();
    assert_eq!(crate::WhatsAppCloud::handshake(req), None);
}

#[test]
fn all_fixtures_are_json() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 17, "expected the 17 documented fixtures, found {n}");
}
