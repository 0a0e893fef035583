//! A mock WhatsApp Graph API for trying Switchboard by hand (README walkthrough):
//! `cargo run -p switchboard-tests --bin mock-provider -- 127.0.0.1:9999`.
//! It prints every message it receives and answers like the Graph API.

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".into());
    let mock = switchboard_tests::MockProvider::start_on(&addr, true).await;
    println!("mock Graph API listening on {}", mock.base_url());
    tokio::signal::ctrl_c().await.ok();
}
