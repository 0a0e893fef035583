//! Property-test helpers for a plugin's hostile-input tests (feature `proptest`): arbitrary
//! JSON shaped by the provider's own field names, bodies with invalid UTF-8 spliced in, and the
//! check every parse result must pass. Shared so each channel's tests say only what is
//! particular to its provider.

use crate::InboundEvent;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

/// Arbitrary JSON whose keys (and some string values) come from `words`, so nested shapes
/// reach the parser's branches; other strings are arbitrary Unicode.
pub fn arb_json(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let word = prop::sample::select(words.to_vec()).prop_map(String::from);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        prop_oneof![3 => word.clone(), 1 => any::<String>()].prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every event's payload is JSON; ids and conversations are what the host can store.
pub fn well_formed(events: &[InboundEvent]) -> Result<(), TestCaseError> {
    for e in events {
        prop_assert!(serde_json::from_str::<Value>(&e.payload).is_ok(), "{:?}", e.payload);
    }
    Ok(())
}

/// Bytes 0x80..=0xFF spliced into `body` (ASCII fixtures), kept only where the result is not
/// UTF-8.
pub fn with_invalid_utf8(body: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), 0x80u8..=0xFF), 1..4)
        .prop_map(move |ins| {
            let mut b = body.clone();
            for (at, byte) in ins {
                b.insert(at.index(b.len() + 1), byte);
            }
            b
        })
        // Two insertions side by side can spell a valid character (`C2 80` is U+0080).
        .prop_filter("still invalid UTF-8", |b| std::str::from_utf8(b).is_err())
}

/// The length of `body` without its trailing whitespace (where a truncation still parses).
pub fn trimmed(body: &[u8]) -> usize {
    body.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1)
}

