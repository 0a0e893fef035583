//! What may appear in logs and errors: phone numbers and chat ids are masked, secrets never
//! appear at all (see [`Secret`]).

use std::fmt;

/// Masks a phone number or chat id for logs: `+250788123456` → `+2507****456`.
///
/// Keeps the country-code prefix (first four digits) and the last three digits, which is
/// enough to tell numbers apart in an incident without exposing the subscriber.
pub fn mask_phone(raw: &str) -> String {
    let (plus, digits) = match raw.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", raw),
    };
    let chars: Vec<char> = digits.chars().collect();
    if chars.len() < 8 {
        let tail: String = chars.iter().rev().take(2).rev().collect();
        return format!("{plus}****{tail}");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{plus}{head}****{tail}")
}

/// A secret value. Its `Debug` and `Display` never print the value, so a secret that slips
/// into a log line or an error message shows as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to read the value; grep for it to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Masks what looks like a phone number in free text: `+` and 8 to 15 digits, or a bare run
/// of 10 to 15 digits standing alone (not part of an id like `wamid.123…` or `msg_0197…`).
/// Numbers that are the value of a time field (`…_ms`, `…_at`, `timestamp`) are left alone.
///
/// A safety net under the daemon's log output (see [`Scrubbed`]): call sites mask the numbers
/// they log, but free text from providers and plugins (error reasons, plugin log lines) is
/// scrubbed here before it is written.
pub fn scrub_phones(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-' || c == b'+';
    let mut out: Option<String> = None;
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        let sign = b[i] == b'+' || b[i] == b'-';
        let start = if sign { i + 1 } else { i };
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - start;
        let free_before = i == 0 || !word(b[i - 1]);
        // A sentence may end right after the number.
        let free_after = end == b.len() || !word(b[end]) || (b[end] == b'.' && (end + 1 == b.len() || !word(b[end + 1])));
        let long_enough = if b[i] == b'+' { (8..=15).contains(&digits) } else { (10..=15).contains(&digits) };
        if digits > 0 && free_before && free_after && long_enough && !time_field(&text[..i]) {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[copied..i]);
            o.push_str(&mask_phone(&text[i..end]));
            copied = end;
            i = end;
            continue;
        }
        let in_word = digits > 0 || word(b[i]);
        i = if digits > 0 { end } else { i + 1 };
        // Skip the rest of a word, so digits inside ids (`msg_0197…`) are never looked at.
        while in_word && i < b.len() && word(b[i]) && b[i] != b'+' && b[i] != b'-' {
            i += 1;
        }
        while i < b.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

/// Whether `before` ends with a time field's key and its separator (`at_ms=`, `"expires_at_ms":`).
fn time_field(before: &str) -> bool {
    let key = before.trim_end_matches([' ', '"', ':', '=', '\\']);
    let key = key.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
    key.len() < before.len()
        && ["_ms", "_at", "timestamp", "_secs", "bytes"].iter().any(|suffix| key.ends_with(suffix))
}

/// A log writer that scrubs phone numbers ([`scrub_phones`]) from everything written through
/// it. The tracing formatter writes each event with one `write`, so a number is never split.
pub struct Scrubbed<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(scrub_phones(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_phone_numbers_are_scrubbed_and_ids_and_times_are_not() {
        let line = r#"{"message":"message msg_0197123456789 failed: recipient +250788123456 (16505551234) unknown","at_ms":1749416400000,"wamid":"wamid.HBgLMTY1MDU1NTEyMzQVAgAR","id":"106540352242922"}"#;
        let s = scrub_phones(line);
        assert!(s.contains("+2507****456"), "{s}");
        assert!(s.contains("(1650****234)"), "{s}");
        assert!(s.contains("msg_0197123456789"), "ids stay: {s}");
        assert!(s.contains("\"at_ms\":1749416400000"), "times stay: {s}");
        assert!(!s.contains("16505551234") && !s.contains("250788123456"), "{s}");
        assert_eq!(scrub_phones("at_ms=1749416400000 n=42 wait_ms=1000"), "at_ms=1749416400000 n=42 wait_ms=1000");
        assert_eq!(scrub_phones("to=+2507****456"), "to=+2507****456", "already masked");
        assert_eq!(scrub_phones("sent 1650555123412 ✓ done"), "sent 1650****412 ✓ done");
        assert_eq!(scrub_phones("chat -1001234567890 left. Call 16505551234."), "chat -100****890 left. Call 1650****234.");
    }

    #[test]
    fn masks_international_numbers_like_the_spec_example() {
        assert_eq!(mask_phone("+250788123456"), "+2507****456");
        assert_eq!(mask_phone("16505551234"), "1650****234");
    }

    #[test]
    fn short_ids_keep_only_two_digits() {
        assert_eq!(mask_phone("12345"), "****45");
        assert_eq!(mask_phone("-1001"), "****01");
    }

    #[test]
    fn secrets_never_format_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
