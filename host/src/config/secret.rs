//! Secret references in config: `env:VAR`, `file:/path`, or a literal value.

use crate::redact::Secret;
use std::path::PathBuf;

/// Where a secret comes from. Parsed at config load, resolved at account start so that a
/// missing secret stops one account (fail closed), not the whole daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Literal(Secret),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("secret is empty")]
    Empty,
}

impl SecretRef {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(var) = raw.strip_prefix("env:") {
            if var.is_empty() {
                return Err("`env:` needs a variable name, e.g. env:WA_APP_SECRET".into());
            }
            Ok(SecretRef::Env(var.to_string()))
        } else if let Some(path) = raw.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path, e.g. file:/etc/switchboard/token".into());
            }
            Ok(SecretRef::File(PathBuf::from(path)))
        } else if raw.is_empty() {
            Err("secret is empty; use env:VAR, file:/path or a literal value".into())
        } else {
            Ok(SecretRef::Literal(Secret::new(raw)))
        }
    }

    /// Reads the value now. A file's trailing newline is dropped (editors add one).
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::EnvMissing(var.clone()))?
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            SecretRef::Literal(s) => return Ok(s.clone()),
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(SecretRef::parse("env:X").unwrap(), SecretRef::Env("X".into()));
        assert_eq!(SecretRef::parse("file:/a").unwrap(), SecretRef::File("/a".into()));
        assert_eq!(
            SecretRef::parse("abc").unwrap(),
            SecretRef::Literal(Secret::new("abc"))
        );
        assert!(SecretRef::parse("env:").is_err());
        assert!(SecretRef::parse("").is_err());
    }

    #[test]
    fn file_secrets_drop_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "s3cret\n").unwrap();
        let r = SecretRef::File(p).resolve().unwrap();
        assert_eq!(r.expose(), "s3cret");
    }

    #[test]
    fn missing_env_var_is_an_error_naming_the_variable() {
        let err = SecretRef::Env("SWITCHBOARD_TEST_SURELY_UNSET".into()).resolve().unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_TEST_SURELY_UNSET"));
    }
}
