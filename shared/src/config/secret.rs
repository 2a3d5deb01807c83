//! [`Secret`]: a setting that must never be printed (the Redis password,
//! `DATABASE_URL`, `ADMIN_TOKEN`).
//!
//! Built on `secrecy` (the value is zeroed when dropped and reading it takes
//! an explicit [`Secret::expose`]). What `secrecy` leaves out and this adds:
//! `Display` and `Serialize` that write `[redacted]` (`secrecy` serialises
//! the value itself, or not at all), so a whole [`Config`](super::Config)
//! can be shown on `/debug/config` and in logs; and an equality that takes
//! the same time wherever two values first differ (`subtle`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;

/// What every printed form of a [`Secret`] shows.
pub const REDACTED: &str = "[redacted]";

/// A value that must never be printed: `Debug`, `Display` and `Serialize`
/// all write `[redacted]`. Read it with [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself, for the one place that needs it (a connection
    /// handshake, a token comparison). Never log what this returns.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `presented` is this secret, in a time that depends only on
    /// the lengths (not on where the two first differ).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(presented).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose().as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_form_is_redacted() {
        let s = Secret::new("hunter2-hunter2");
        let printed = format!("{s} {s:?} {}", serde_json::to_string(&s).unwrap());
        assert_eq!(printed, "[redacted] [redacted] \"[redacted]\"");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn matches_compares_whole_values() {
        let s = Secret::new("secret-token-123");
        assert!(s.matches(b"secret-token-123"));
        assert!(!s.matches(b"secret-token-124"));
        assert!(!s.matches(b"secret"));
        assert!(!s.matches(b""));
        assert_eq!(s, Secret::new("secret-token-123"));
    }
}
