//! Hostile input through the daemon, for every bundled channel plugin: **correctly signed**
//! requests whose bodies are random bytes, truncations of a real delivery, invalid UTF-8, JSON
//! of the wrong shape, forms with broken percent-encoding, or oversized ids, sent with wrong or
//! missing content types and junk headers (invalid UTF-8 values included). Each must get a 4xx
//! (never a 5xx: no plugin trap, no panic) and store nothing; the same bodies unsigned or with
//! garbage signatures get a 401; a huge header gets a 431 (or 400).
//!
//! A 200 is allowed only where the provider's contract wants an ignorable delivery
//! acknowledged (else it retries it for hours or disables the webhook), always storing nothing:
//! * WhatsApp: `{"object":"whatsapp_business_account","entry":[]}` (a delivery with no changes);
//! * Slack: the bot's own message (ignored, or it would answer itself forever) and the signed
//!   `url_verification` POST (answered with its challenge by the plugin's handshake).
//!
//! Some bodies that look hostile are legitimate and are *not* generated here: a generic
//! `webhook` delivery may be any JSON object; a Telegram update is any object with an integer
//! `update_id`; a Twilio form cut after its `From` value is still a complete (shorter) message.
//!
//! Cases are drawn from a fixed seed (48 per plugin; `SWITCHBOARD_HOSTILE_CASES` for more).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sha2::{Digest, Sha256};
use switchboard::clock::ManualClock;
use switchboard_tests::*;

/// How a plugin's account is configured and signed.
struct Channel {
    account: &'static str,
    plugin: &'static str,
    /// The `[accounts.x]` table.
    toml: String,
    /// A real delivery that is stored (the control case at the end).
    fixture: Vec<u8>,
    /// Truncations cut the fixture strictly below this length.
    cut_below: usize,
    /// Valid JSON (or forms) the plugin must refuse.
    wrong_shapes: Vec<&'static str>,
    /// Bodies the provider's contract wants acknowledged with a 200 (nothing stored).
    acknowledged: Vec<&'static str>,
    /// Byte strings that, put in place of any one byte of the fixture, always break it.
    breakers: Vec<&'static [u8]>,
    /// Generated bodies the plugin rightly accepts (skipped): see the module docs.
    legit: fn(&[u8]) -> bool,
    /// Headers (and a query to append to the path) that sign `body` at `now_secs`.
    sign: fn(body: &[u8], now_secs: u64, alt: bool) -> Signed,
}

struct Signed {
    query: String,
    headers: Vec<(&'static str, String)>,
}

/// A control character or a byte that is not UTF-8: invalid anywhere in JSON.
const JSON_BREAKERS: [&[u8]; 3] = [b"\x00", b"\x1f", b"\xff"];

const WA_FIXTURE: &str = "whatsapp-cloud/fixtures/text.json";

fn plugin_fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("plugins/channels").join(path)).unwrap()
}

fn hmac256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The length of `body` without trailing whitespace: a cut at or past it is still complete.
fn trimmed_len(body: &[u8]) -> usize {
    body.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1)
}

fn whatsapp() -> Channel {
    Channel {
        account: "wa",
        plugin: "whatsapp-cloud",
        toml: format!(
            r#"[accounts.wa]
plugin = "whatsapp-cloud"
secrets = {{ app_secret = "{APP_SECRET}", verify_token = "{VERIFY_TOKEN}", access_token = "{ACCESS_TOKEN}" }}
settings = {{ phone_number_id = "{PHONE_NUMBER_ID}", api_base = "http://127.0.0.1:9" }}
"#
        ),
        fixture: plugin_fixture(WA_FIXTURE),
        cut_below: trimmed_len(&plugin_fixture(WA_FIXTURE)),
        wrong_shapes: vec![
            r#"{"object":"whatsapp_business_account","entry":"nope"}"#,
            r#"{"object":"whatsapp_business_account"}"#,
            r#"{"object":"instagram","entry":[]}"#,
            r#"{"object":1,"entry":[]}"#,
            r#"{"entry":[]}"#,
            r#"[{"object":"whatsapp_business_account"}]"#,
            "null",
            "\"whatsapp_business_account\"",
            "1e999",
        ],
        acknowledged: vec![r#"{"object":"whatsapp_business_account","entry":[]}"#],
        breakers: JSON_BREAKERS.to_vec(),
        legit: |_| false,
        sign: |body, _, _| Signed { query: String::new(), headers: vec![("x-hub-signature-256", meta_signature(APP_SECRET, body))] },
    }
}

const TWILIO_TOKEN: &str = "twilio-auth-token-hostile";
const TWILIO_URL: &str = "https://hooks.example.com/webhooks/sms";

/// `X-Twilio-Signature` over `url` and the body's decoded form parameters (sorted, de-duplicated).
fn twilio_signature(url: &str, body: &[u8], json_mode: bool) -> String {
    let mut params: Vec<(String, String)> =
        if json_mode { Vec::new() } else { form_urlencoded::parse(body).into_owned().collect() };
    params.sort();
    params.dedup();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio() -> Channel {
    let fixture = plugin_fixture("twilio/fixtures/sms_text.form");
    let text = String::from_utf8(fixture.clone()).unwrap();
    Channel {
        account: "sms",
        plugin: "twilio",
        toml: format!(
            r#"[accounts.sms]
plugin = "twilio"
public_url = "{TWILIO_URL}"
secrets = {{ auth_token = "{TWILIO_TOKEN}" }}
settings = {{ account_sid = "AC0123456789abcdef0123456789abcdef", from = "+15550001111", api_base = "http://127.0.0.1:9" }}
"#
        ),
        // `From` is the last parameter the plugin needs; cut after its value starts, the form
        // is a complete, shorter message.
        cut_below: text.find("&From=").unwrap() + "&From=".len() + 1,
        fixture,
        wrong_shapes: vec![
            r#"{"MessageSid":"SM1","From":"+1"}"#,
            "SmsStatus=received&Body=hi",
            "MessageSid=SM1&Body=no+sender",
            "MessageSid=&From=%2B1",
            "MessageSid=SM1&From=%zz",
            "MessageSid=SM1&From=%2B1%",
            "MessageSid=SM1&From=%2B1%F",
            "MessageSid=SM1&From=%FF%FE",
            "MessageSid=SM1&From=%C3%28",
            "MessageSid=SM1%ZZ&From=%2B1",
            "&&&===",
        ],
        acknowledged: vec![],
        // Strict form decoding: a broken escape or bytes that are not UTF-8 anywhere refuse it.
        breakers: vec![b"%z", b"%G0", b"%\xff", b"\xc3"],
        legit: |_| false,
        // Form mode; `alt`: JSON mode, where Twilio puts bodySHA256 in the URL.
        sign: |body, _, json_mode| {
            let query = if json_mode { format!("?bodySHA256={}", hex::encode(Sha256::digest(body))) } else { String::new() };
            let sig = twilio_signature(&format!("{TWILIO_URL}{query}"), body, json_mode);
            Signed { query, headers: vec![("x-twilio-signature", sig)] }
        },
    }
}

const TG_SECRET: &str = "tg-secret-token_hostile";

fn telegram() -> Channel {
    let fixture = plugin_fixture("telegram/fixtures/update_text.json");
    Channel {
        account: "tg",
        plugin: "telegram",
        toml: format!(
            r#"[accounts.tg]
plugin = "telegram"
secrets = {{ bot_token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", secret_token = "{TG_SECRET}" }}
settings = {{ api_base = "http://127.0.0.1:9" }}
"#
        ),
        cut_below: trimmed_len(&fixture),
        fixture,
        wrong_shapes: vec![
            "{}",
            "[]",
            "null",
            r#"{"update_id":"1"}"#,
            r#"{"update_id":1.5}"#,
            r#"{"update_id":1e3}"#,
            r#"{"update_id":18446744073709551615}"#,
            r#"{"message":{"chat":{"id":1},"text":"hi"}}"#,
            r#"[{"update_id":1}]"#,
        ],
        acknowledged: vec![],
        breakers: JSON_BREAKERS.to_vec(),
        legit: |b| serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v["update_id"].is_i64()),
        sign: |_, _, _| Signed { query: String::new(), headers: vec![("x-telegram-bot-api-secret-token", TG_SECRET.to_string())] },
    }
}

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn slack() -> Channel {
    let fixture = plugin_fixture("slack/fixtures/message_im.json");
    Channel {
        account: "slack",
        plugin: "slack",
        toml: format!(
            r#"[accounts.slack]
plugin = "slack"
secrets = {{ signing_secret = "{SLACK_SECRET}", bot_token = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy" }}
settings = {{ bot_user_id = "U0BOTUSER", api_base = "http://127.0.0.1:9" }}
"#
        ),
        cut_below: trimmed_len(&fixture),
        fixture,
        wrong_shapes: vec![
            "{}",
            "[]",
            "null",
            r#"{"type":1}"#,
            r#"{"type":"event_callback"}"#,
            r#"{"type":"event_callback","event_id":"Ev1"}"#,
            r#"{"type":"event_callback","event_id":"Ev1","event":"message"}"#,
            r#"{"type":"event_callback","event_id":5,"event":{"type":"message"}}"#,
            r#"{"type":"url_verification"}"#,
            r#"{"type":"block_actions","actions":[]}"#,
            "payload=%7B%22type%22%3A%22block_actions%22%7D",
        ],
        acknowledged: vec![
            r#"{"type":"event_callback","event_id":"EvBOT","event":{"type":"message","bot_id":"B1","channel":"C1","text":"me"}}"#,
            r#"{"type":"event_callback","event_id":"EvBOT2","event":{"type":"message","user":"U0BOTUSER","channel":"C1","text":"me"}}"#,
            r#"{"type":"url_verification","challenge":"c-1"}"#,
        ],
        breakers: JSON_BREAKERS.to_vec(),
        legit: |_| false,
        sign: |body, now, _| {
            let ts = now.to_string();
            let sig = hmac256_hex(SLACK_SECRET.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
            Signed { query: String::new(), headers: vec![("x-slack-request-timestamp", ts), ("x-slack-signature", format!("v0={sig}"))] }
        },
    }
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn generic_webhook() -> Channel {
    let fixture = plugin_fixture("webhook/fixtures/message.json");
    Channel {
        account: "hooks",
        plugin: "webhook",
        toml: format!(
            r#"[accounts.hooks]
plugin = "webhook"
secrets = {{ webhook_secret = "{WEBHOOK_SECRET}" }}
settings = {{ url = "http://127.0.0.1:9/agent/inbound" }}
"#
        ),
        cut_below: trimmed_len(&fixture),
        fixture,
        // Any JSON object is a message for the generic webhook: only non-objects are wrong.
        wrong_shapes: vec!["[]", "null", "1", "\"text\"", "true", r#"[{"text":"hi"}]"#],
        acknowledged: vec![],
        breakers: JSON_BREAKERS.to_vec(),
        legit: |b| serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v.is_object()),
        // `alt`: an empty webhook-id, which the scheme refuses, so a long random one instead.
        sign: |body, now, alt| {
            let key = base64::engine::general_purpose::STANDARD.decode(WEBHOOK_SECRET.trim_start_matches("whsec_")).unwrap();
            let id = if alt { format!("msg_{}", hex::encode(Sha256::digest(body))) } else { "msg_hostile".to_string() };
            let ts = now.to_string();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body);
            let sig = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
            Signed { query: String::new(), headers: vec![("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)] }
        },
    }
}

/// One hostile case: a body, a content type, a junk header, and the plugin's `alt` signing mode.
#[derive(Debug, Clone)]
struct Case {
    body: Vec<u8>,
    content_type: Option<&'static str>,
    junk: Option<Vec<u8>>,
    alt: bool,
    garbage_sig: Vec<u8>,
}

fn cases(ch: &Channel) -> impl Strategy<Value = Case> + use<> {
    let fixture = ch.fixture.clone();
    let (f1, f2) = (fixture.clone(), fixture.clone());
    let cut_below = ch.cut_below;
    let shapes: Vec<Vec<u8>> = ch.wrong_shapes.iter().map(|s| s.as_bytes().to_vec()).collect();
    let form_piece = prop::sample::select(vec!["Sid=SM1", "From=%2B1", "Body=", "%", "%4", "%zz", "%FF", "%C3%28", "+", "=", "&", "a"]);
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (0..cut_below).prop_map(move |cut| fixture[..cut].to_vec()),
        // Invalid UTF-8: bytes 0x80..=0xFF spliced into the real delivery.
        prop::collection::vec((any::<prop::sample::Index>(), 0x80u8..=0xFF), 1..4).prop_map(move |ins| {
            let mut b = f1.clone();
            for (at, byte) in ins {
                b.insert(at.index(b.len() + 1), byte);
            }
            b
        }),
        // The real delivery with one byte replaced by something that breaks it.
        (any::<prop::sample::Index>(), prop::sample::select(ch.breakers.clone())).prop_map(move |(at, s)| {
            let mut b = f2.clone();
            let i = at.index(b.len());
            b.splice(i..=i, s.iter().copied());
            b
        }),
        prop::sample::select(shapes),
        "[a-z{}\\[\\]\":,0-9 .-]{0,400}".prop_map(String::into_bytes),
        prop::collection::vec(form_piece, 0..16).prop_map(|p| p.concat().into_bytes()),
    ];
    let content_type = prop::option::of(prop::sample::select(vec![
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/json; charset=utf-16",
        "\u{7f}garbage/\u{1}",
    ]));
    let junk = prop::option::of(prop::collection::vec(any::<u8>(), 0..64));
    let garbage_sig = prop::collection::vec(any::<u8>(), 0..80);
    (body, content_type, junk, any::<bool>(), garbage_sig)
        .prop_map(|(body, content_type, junk, alt, garbage_sig)| Case { body, content_type, junk, alt, garbage_sig })
}

/// A header value from arbitrary bytes as a client can send it: visible ASCII, space, tab and
/// obs-text (0x80..=0xFF, which is not UTF-8) are allowed on the wire; other controls are not.
fn header_bytes(raw: &[u8]) -> reqwest::header::HeaderValue {
    let clean: Vec<u8> = raw.iter().map(|b| if *b < 0x20 && *b != b'\t' || *b == 0x7f { b'?' } else { *b }).collect();
    reqwest::header::HeaderValue::from_bytes(&clean).unwrap()
}

struct Harness {
    d: TestDaemon,
    ch: Channel,
}

impl Harness {
    async fn start(ch: Channel) -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        // Only this channel's plugin: compiling the others would be most of the test's time.
        let plugins = dir.path().join("plugins");
        install_plugin(&plugins_dir(), ch.plugin, &plugins);
        let text = format!(
            r#"
listen = "127.0.0.1:0"
data_dir = "{data}"
plugins_dir = "{plugins}"
api_tokens = ["{API_TOKEN}"]

{account}
"#,
            data = dir.path().join("data").display(),
            plugins = plugins.display(),
            account = ch.toml,
        );
        let cfg = switchboard::config::Config::parse(&text, "hostile-input test").expect("valid config");
        let d = TestDaemon::start_with(cfg, ManualClock::new(T0)).await;
        (Self { d, ch }, dir)
    }

    fn now_secs(&self) -> u64 {
        T0 / 1000
    }

    /// POSTs `body` with `headers`; returns (status, body text).
    async fn post(&self, query: &str, headers: Vec<(&str, reqwest::header::HeaderValue)>, body: &[u8]) -> (u16, String) {
        let mut req = self.d.http.post(format!("{}/webhooks/{}{query}", self.d.base, self.ch.account)).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn signed_headers(&self, body: &[u8], alt: bool) -> (String, Vec<(&'static str, reqwest::header::HeaderValue)>) {
        let s = (self.ch.sign)(body, self.now_secs(), alt);
        (s.query, s.headers.into_iter().map(|(k, v)| (k, reqwest::header::HeaderValue::from_str(&v).unwrap())).collect())
    }

    /// The hostile case, signed; then unsigned; then with garbage signatures.
    async fn check(&self, c: &Case) -> Result<(), TestCaseError> {
        prop_assume!(!(self.ch.legit)(&c.body), "a legitimate delivery");
        let shown = String::from_utf8_lossy(&c.body[..c.body.len().min(300)]).into_owned();
        let mut extra = Vec::new();
        if let Some(ct) = c.content_type {
            extra.push(("content-type", header_bytes(ct.as_bytes())));
        }
        if let Some(j) = &c.junk {
            extra.push(("x-junk", header_bytes(j)));
        }
        let (query, mut headers) = self.signed_headers(&c.body, c.alt);
        let names: Vec<&'static str> = headers.iter().map(|(k, _)| *k).collect();
        headers.extend(extra.iter().cloned());
        let (status, text) = self.post(&query, headers, &c.body).await;
        let acknowledged = self.ch.acknowledged.iter().any(|a| a.as_bytes() == c.body.as_slice());
        if acknowledged {
            prop_assert_eq!(status, 200, "{}: acknowledged body {:?}: {}", self.ch.account, shown, text);
            prop_assert!(!text.contains("\"stored\":1"), "{}: stored {:?}: {}", self.ch.account, shown, text);
        } else {
            prop_assert!(
                (400..500).contains(&status) && status != 401,
                "{}: signed hostile body {:?} ({:?}) got {}: {}",
                self.ch.account, shown, c.content_type, status, text
            );
        }

        // Unsigned → 401.
        let (status, _) = self.post(&query, extra.clone(), &c.body).await;
        prop_assert_eq!(status, 401, "{}: unsigned", self.ch.account);
        // Every signature header replaced by garbage (bytes, so possibly not UTF-8) → 401.
        let mut garbage: Vec<_> = names.iter().map(|n| (*n, header_bytes(&c.garbage_sig))).collect();
        garbage.extend(extra.iter().cloned());
        let (status, text) = self.post(&query, garbage, &c.body).await;
        prop_assert_eq!(status, 401, "{}: garbage signature {:?}: {}", self.ch.account, c.garbage_sig, text);
        Ok(())
    }

    async fn inbox_len(&self) -> u64 {
        self.d.daemon.app().store.inbox_len().await.unwrap()
    }
}

async fn hostile_input(ch: Channel, oversized: Vec<Vec<u8>>) {
    let (h, _dir) = Harness::start(ch).await;
    let cases_n = std::env::var("SWITCHBOARD_HOSTILE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let config = Config { cases: cases_n, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let handle = tokio::runtime::Handle::current();
    let strategy = cases(&h.ch);
    runner
        .run(&strategy, |c| tokio::task::block_in_place(|| handle.block_on(h.check(&c))))
        .unwrap_or_else(|e| panic!("{}: {e}", h.ch.account));

    // Every wrong shape and acknowledged body, each exactly once (not left to chance).
    let fixed: Vec<Vec<u8>> = h.ch.wrong_shapes.iter().chain(&h.ch.acknowledged).map(|s| s.as_bytes().to_vec()).collect();
    for body in fixed {
        for alt in [false, true] {
            let c = Case { body: body.clone(), content_type: Some("application/json"), junk: None, alt, garbage_sig: b"v0=00".to_vec() };
            h.check(&c).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // Valid deliveries whose ids are too long for the store: refused, not a 5xx.
    for body in oversized {
        let (query, headers) = h.signed_headers(&body, false);
        let (status, text) = h.post(&query, headers, &body).await;
        assert!((400..500).contains(&status) && status != 401, "{}: oversized id got {status}: {text}", h.ch.account);
    }

    // A huge header: 431 (or 400) before anything is parsed, even on a valid signed delivery.
    let fixture = h.ch.fixture.clone();
    let (query, mut headers) = h.signed_headers(&fixture, false);
    headers.push(("x-huge", reqwest::header::HeaderValue::from_str(&"x".repeat(64 * 1024)).unwrap()));
    let (status, _) = h.post(&query, headers, &fixture).await;
    assert!(status == 431 || status == 400, "{}: huge header got {status}", h.ch.account);
    // A huge signature header: refused as a bad signature (or by the server's limit).
    let (query, mut headers) = h.signed_headers(&fixture, false);
    headers[0].1 = reqwest::header::HeaderValue::from_str(&"f".repeat(60 * 1024)).unwrap();
    let (status, _) = h.post(&query, headers, &fixture).await;
    assert!(matches!(status, 401 | 431 | 400), "{}: huge signature got {status}", h.ch.account);

    assert_eq!(h.inbox_len().await, 0, "{}: a hostile request stored something", h.ch.account);

    // Control: the real delivery, signed the same way, is stored, so the checks above were
    // not vacuous (the signing is right and the inbox is the one being looked at).
    let (query, headers) = h.signed_headers(&fixture, false);
    let (status, text) = h.post(&query, headers, &fixture).await;
    assert_eq!(status, 200, "{}: control delivery: {text}", h.ch.account);
    assert!(h.inbox_len().await >= 1, "{}: control delivery not stored: {text}", h.ch.account);
    h.d.stop().await;
}

fn long_id() -> String {
    "X".repeat(2_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_cloud_hostile_bodies_get_a_4xx_and_store_nothing() {
    let text = String::from_utf8(plugin_fixture(WA_FIXTURE)).unwrap();
    let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
    assert!(text.contains(wamid));
    let oversized = vec![text.replace(wamid, &long_id()).into_bytes(), text.replace(USER, &long_id()).into_bytes()];
    hostile_input(whatsapp(), oversized).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_hostile_bodies_get_a_4xx_and_store_nothing() {
    let text = String::from_utf8(plugin_fixture("twilio/fixtures/sms_text.form")).unwrap();
    let sid = "SM3f9a1c2b4d5e6f708192a3b4c5d6e7f8";
    let oversized = vec![text.replace(sid, &long_id()).into_bytes(), text.replace("%2B14155551234", &long_id()).into_bytes()];
    hostile_input(twilio(), oversized).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_hostile_bodies_get_a_4xx_and_store_nothing() {
    hostile_input(telegram(), Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_hostile_bodies_get_a_4xx_and_store_nothing() {
    let text = String::from_utf8(plugin_fixture("slack/fixtures/message_im.json")).unwrap();
    let oversized = vec![text.replace("Ev0PV52K25", &long_id()).into_bytes(), text.replace("D0PNCRP9N", &long_id()).into_bytes()];
    hostile_input(slack(), oversized).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_webhook_hostile_bodies_get_a_4xx_and_store_nothing() {
    let text = String::from_utf8(plugin_fixture("webhook/fixtures/message.json")).unwrap();
    let oversized = vec![text.replace("ticket-7", &long_id()).into_bytes()];
    hostile_input(generic_webhook(), oversized).await;
}
