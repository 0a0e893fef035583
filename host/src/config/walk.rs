//! A small typed walker over a TOML table that records problems instead of stopping at the
//! first one. Each accessor returns `None` on a problem and files a [`ConfigIssue`].

use super::{ConfigIssue, SecretRef};

#[derive(Default)]
pub(super) struct Walker {
    pub(super) issues: Vec<ConfigIssue>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl Walker {
    pub(super) fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue { path: path.to_string(), message: message.into() });
    }

    pub(super) fn unknown_keys(&mut self, parent: &str, t: &toml::Table, known: &[&str]) {
        for key in t.keys().filter(|k| !known.contains(&k.as_str())) {
            let hint = known
                .iter()
                .map(|k| (strsim::levenshtein(k, key), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| format!("; known keys: {}", known.join(", ")));
            self.issue(&join(parent, key), format!("unknown key{hint}"));
        }
    }

    fn typed<'a, T>(
        &mut self,
        t: &'a toml::Table,
        parent: &str,
        key: &str,
        what: &str,
        get: impl FnOnce(&'a toml::Value) -> Option<T>,
    ) -> Option<T> {
        let v = t.get(key)?;
        let out = get(v);
        if out.is_none() {
            self.issue(&join(parent, key), format!("must be {what}, found {}", v.type_str()));
        }
        out
    }

    pub(super) fn string(&mut self, t: &toml::Table, parent: &str, key: &str) -> Option<String> {
        self.typed(t, parent, key, "a string", |v| v.as_str().map(str::to_string))
    }

    pub(super) fn bool(&mut self, t: &toml::Table, parent: &str, key: &str) -> Option<bool> {
        self.typed(t, parent, key, "a boolean", toml::Value::as_bool)
    }

    pub(super) fn table<'a>(&mut self, t: &'a toml::Table, parent: &str, key: &str) -> Option<&'a toml::Table> {
        self.typed(t, parent, key, "a table", toml::Value::as_table)
    }

    pub(super) fn string_list(&mut self, t: &toml::Table, parent: &str, key: &str) -> Vec<String> {
        self.typed(t, parent, key, "a list of strings", |v| {
            v.as_array()?.iter().map(|x| x.as_str().map(str::to_string)).collect()
        })
        .unwrap_or_default()
    }

    /// An integer in `min..=max`.
    pub(super) fn int(&mut self, t: &toml::Table, parent: &str, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = self.typed(t, parent, key, "an integer", toml::Value::as_integer)?;
        if v < min as i64 || v > max as i64 {
            self.issue(&join(parent, key), format!("must be between {min} and {max}, found {v}"));
            return None;
        }
        Some(v as u64)
    }

    pub(super) fn secret_ref(&mut self, path: &str, raw: &str) -> Option<SecretRef> {
        SecretRef::parse(raw).map_err(|m| self.issue(path, m)).ok()
    }
}
