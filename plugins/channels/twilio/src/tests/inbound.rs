use serde_json::Value;
use switchboard_sdk::{DeliveryState, EventKind, InboundEvent, ParseError};

use super::fixture;
use crate::inbound::parse;

const OUT_SID: &str = "SMb7e4c1a0d9f8e7d6c5b4a3928170f6e5";

fn one(name: &str) -> InboundEvent {
    let mut events = parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(events.len(), 1, "{name}");
    events.remove(0)
}

fn payload(e: &InboundEvent) -> Value {
    serde_json::from_str(&e.payload).unwrap()
}

#[test]
fn incoming_sms() {
    let e = one("sms_text.form");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.provider_event_id, "SM3f9a1c2b4d5e6f708192a3b4c5d6e7f8");
    assert_eq!(e.conversation, "+14155551234");
    assert_eq!(e.sender.as_deref(), Some("+14155551234"));
    assert_eq!(e.text.as_deref(), Some("Is my order on its way?"));
    assert_eq!(e.status, None);
    let p = payload(&e);
    assert_eq!(p["type"], "text");
    assert_eq!(p["channel"], "sms");
    assert_eq!(p["to"], "+15550001111");
    assert_eq!(p["raw"]["FromCity"], "SAN FRANCISCO");
}

#[test]
fn incoming_whatsapp_image() {
    let e = one("whatsapp_image.form");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.provider_event_id, "MM8c1a4b7e2d3f4a5b6c7d8e9f0a1b2c3d");
    assert_eq!(e.conversation, "whatsapp:+14155551234");
    assert_eq!(e.text.as_deref(), Some("This is how it looks"));
    let p = payload(&e);
    assert_eq!(p["type"], "media");
    assert_eq!(p["channel"], "whatsapp");
    assert_eq!(p["profile_name"], "Sheena Nelson");
    assert_eq!(p["wa_id"], "14155551234");
    assert_eq!(p["media"].as_array().unwrap().len(), 1);
    assert_eq!(p["media"][0]["content_type"], "image/jpeg");
    assert!(p["media"][0]["url"].as_str().unwrap().ends_with("/Media/ME2a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b"));
}

#[test]
fn whatsapp_button_and_location_without_body() {
    let e = parse(b"MessageSid=SM1&From=whatsapp%3A%2B1415&To=whatsapp%3A%2B1555&SmsStatus=received&NumMedia=0&ButtonText=Yes&ButtonPayload=confirm").unwrap().remove(0);
    assert_eq!(e.text.as_deref(), Some("Yes"));
    assert_eq!(payload(&e)["button"]["payload"], "confirm");
    let e = parse(b"MessageSid=SM2&From=whatsapp%3A%2B1415&To=x&NumMedia=0&Latitude=37.77&Longitude=-122.41&Address=Main+St").unwrap().remove(0);
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.text, None);
    assert_eq!(payload(&e)["location"]["latitude"], "37.77");
}

#[test]
fn status_callbacks() {
    for (name, state, label) in [
        ("status_sent.form", DeliveryState::Sent, "sent"),
        ("status_delivered.form", DeliveryState::Delivered, "delivered"),
    ] {
        let e = one(name);
        assert_eq!(e.kind, EventKind::Status);
        assert_eq!(e.provider_event_id, format!("{OUT_SID}:{label}"));
        assert_eq!(e.conversation, "+14155551234");
        let st = e.status.unwrap();
        assert_eq!(st.provider_message_id, OUT_SID);
        assert_eq!(st.state, state);
        assert_eq!(st.error, None);
    }
}

#[test]
fn failed_statuses_carry_the_error_code() {
    let e = one("status_undelivered.form");
    let st = e.status.unwrap();
    assert_eq!(st.state, DeliveryState::Failed);
    assert_eq!(st.error.unwrap().code, "30003");
    let e = one("status_failed_63016.form");
    assert_eq!(e.provider_event_id, "SM52e1c7d3a9b04f6e8d2c1b0a9f8e7d6c:failed");
    assert_eq!(e.conversation, "whatsapp:+14155551234");
    let err = e.status.unwrap().error.unwrap();
    assert_eq!(err.code, "63016");
    assert!(err.reason.contains("template"), "{}", err.reason);
}

#[test]
fn intermediate_statuses_are_kept_as_unsupported() {
    let e = one("status_queued.form");
    assert_eq!(e.kind, EventKind::Unsupported);
    assert_eq!(e.provider_event_id, format!("{OUT_SID}:queued"));
    assert_eq!(e.status, None);
    assert_eq!(payload(&e)["status"], "queued");
}

#[test]
fn not_a_messaging_webhook() {
    assert!(matches!(parse(b"CallSid=CA1&CallStatus=ringing"), Err(ParseError::Unexpected(_))));
    assert!(matches!(parse(br#"{"MessageSid":"SM1"}"#), Err(ParseError::Unexpected(_))));
    assert!(matches!(parse(b"MessageSid=SM1&Body=hi"), Err(ParseError::Malformed(_))));
}

// ---- Hostile input: never a panic, refused unless it is a delivery ----

mod hostile {
use proptest::prelude::*;
use switchboard_sdk::hostile::{well_formed, with_invalid_utf8};
use switchboard_sdk::ParseError;

use super::super::fixture;
use crate::inbound::parse;




/// Found through the daemon (tests/tests/hostile_input.rs): a signed form with a byte that is
/// not UTF-8 in front was stored, the byte read as U+FFFD. Now refused, as are broken escapes.
#[test]
fn invalid_utf8_and_broken_escapes_are_malformed() {
    let mut body = vec![0x80];
    body.extend(fixture("sms_text.form"));
    assert!(matches!(parse(&body), Err(ParseError::Malformed(_))));
    for bad in [&b"MessageSid=SM1&From=%zz"[..], b"MessageSid=SM1&From=%2B1%", b"MessageSid=SM1&From=%FF", b"MessageSid=SM1%ZZ&From=%2B1", b"MessageSid=SM1&From=%C3%28"] {
        assert!(matches!(parse(bad), Err(ParseError::Malformed(_))), "{:?}", String::from_utf8_lossy(bad));
    }
    assert!(parse(b"MessageSid=SM1&From=%2B1&Body=caf%C3%A9").is_ok());
}

const FIXTURES: &[&str] = &["sms_text.form", "whatsapp_image.form", "status_delivered.form", "status_failed_63016.form", "status_queued.form"];

fn form_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "MessageSid=", "SmsSid=", "From=", "To=", "Body=", "MessageStatus=", "NumMedia=",
            "MediaUrl0=", "MediaContentType0=", "ErrorCode=", "ErrorMessage=", "ButtonText=",
            "Latitude=", "Longitude=", "whatsapp:", "%2B1", "&", "=", "+", "%", "%zz", "%FF",
            "delivered", "failed", "received", "99999999999999999999", "-1", "63016",
        ]).prop_map(String::from),
        "[A-Za-z0-9]{0,6}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(events) = parse(&body) {
            well_formed(&events)?;
        }
    }

    #[test]
    fn arbitrary_forms_never_panic(pieces in prop::collection::vec(form_piece(), 0..24)) {
        if let Ok(events) = parse(pieces.concat().as_bytes()) {
            well_formed(&events)?;
            prop_assert_eq!(events.len(), 1);
        }
    }

    #[test]
    fn truncated_deliveries_never_panic_and_invalid_utf8_is_malformed(
        name in prop::sample::select(FIXTURES),
        cut in any::<prop::sample::Index>(),
        bytes in with_invalid_utf8(fixture("sms_text.form")),
    ) {
        // A cut form is still a form: refused, or a shorter message (see the module docs).
        let f = fixture(name);
        if let Ok(events) = parse(&f[..cut.index(f.len() + 1)]) {
            well_formed(&events)?;
        }
        prop_assert!(matches!(parse(&bytes), Err(ParseError::Malformed(_))));
    }
}
}
