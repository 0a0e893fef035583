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

#[cfg(test)]
mod tests {
    use super::*;

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
