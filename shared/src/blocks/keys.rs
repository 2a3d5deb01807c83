//! Tenant-scoped Redis keys.
//!
//! Every key of a tenant (a workspace, a practice, an app) has the layout
//!
//! ```text
//! ws:{<tenant>}:<kind>[:<id>[:<id>…]]
//! ```
//!
//! - `ws:{<tenant>}:` is the tenant prefix. The braces make the tenant id the
//!   Redis Cluster hash tag, so every key of a tenant lives in one hash slot
//!   and multi-key operations (Lua scripts, `MULTI`) work on a cluster.
//! - Tenant ids are validated: 1 to 64 characters from `A-Z a-z 0-9 _ -`.
//!   None of those characters is a key separator, a brace or a glob
//!   metacharacter, so a tenant id can neither reach another tenant's keys
//!   nor change the hash tag nor widen a `SCAN` pattern.
//! - Ids inside a tenant (a patient id, a session id) are arbitrary text from
//!   callers. They are escaped, not rejected: every byte outside
//!   `A-Z a-z 0-9 . _ -` becomes `%XX`. The escape is injective (two ids never
//!   share a key) and its output contains no `:`, `{`, `}`, `*`, `?`, `[`, `]`
//!   or `\`.
//! - Caller data that must not be readable in a key name at all (the words
//!   of a conversation, indexed for search) goes through a [`KeyedHash`]:
//!   an HMAC-SHA256 under a per-deployment secret, so that the key names
//!   `SCAN` or `/debug/keys` show, or a leaked key listing, reveal nothing,
//!   and the words cannot be recovered by hashing a dictionary without the
//!   secret.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Longest tenant id.
pub const MAX_TENANT_LEN: usize = 64;
/// Longest id inside a tenant, in bytes before escaping.
pub const MAX_ID_LEN: usize = 512;

/// An id that cannot be used in a key. The message says what is allowed and
/// never repeats the id (it may be patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct KeyError {
    /// The request field or path segment at fault.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// A validated tenant and the prefix of all its keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    id: String,
    prefix: String,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tenant").field(&self.id).finish()
    }
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_plain_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl Tenant {
    /// Validates `id` as a tenant id; `field` names it in the error
    /// (`practice_id`, `app`, `workspace`).
    ///
    /// # Errors
    /// When `id` is empty, longer than 64 characters, or has a character
    /// outside `A-Z a-z 0-9 _ -`.
    pub fn new(field: &'static str, id: &str) -> Result<Self, KeyError> {
        if id.is_empty() || id.len() > MAX_TENANT_LEN || !id.chars().all(is_tenant_char) {
            return Err(KeyError {
                field,
                reason: format!(
                    "must be 1 to {MAX_TENANT_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"
                ),
            });
        }
        Ok(Self {
            id: id.to_owned(),
            prefix: format!("ws:{{{id}}}:"),
        })
    }

    /// The tenant id as given.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `ws:{<tenant>}:`, the start of every key of this tenant.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `ws:{<tenant>}:<kind>`. `kind` is a fixed name chosen by the code.
    pub fn key(&self, kind: &str) -> String {
        debug_assert!(
            kind.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b':')
        );
        let mut key = String::with_capacity(self.prefix.len() + kind.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key
    }

    /// `ws:{<tenant>}:<kind>:<escaped id>…`, each id checked and escaped.
    ///
    /// # Errors
    /// When an id is empty or longer than [`MAX_ID_LEN`] bytes; `field` names it.
    pub fn key_with(
        &self,
        kind: &str,
        field: &'static str,
        ids: &[&str],
    ) -> Result<String, KeyError> {
        let mut key = self.key(kind);
        for id in ids {
            key.push(':');
            push_escaped(&mut key, field, id)?;
        }
        Ok(key)
    }

    /// Whether `key` belongs to this tenant.
    pub fn owns(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// A `SCAN MATCH` pattern confined to this tenant: the tenant prefix
    /// followed by `glob`. Whatever `glob` holds, a match starts with the
    /// prefix, which has no glob metacharacters.
    pub fn scan_pattern(&self, glob: &str) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + glob.len().max(1));
        pattern.push_str(&self.prefix);
        pattern.push_str(if glob.is_empty() { "*" } else { glob });
        pattern
    }
}

/// Escapes an id for use inside a key (see the module documentation).
///
/// # Errors
/// When `id` is empty or longer than [`MAX_ID_LEN`] bytes; `field` names it.
pub fn escape_id(field: &'static str, id: &str) -> Result<String, KeyError> {
    let mut out = String::with_capacity(id.len());
    push_escaped(&mut out, field, id)?;
    Ok(out)
}

fn push_escaped(out: &mut String, field: &'static str, id: &str) -> Result<(), KeyError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(KeyError {
            field,
            reason: format!("must be 1 to {MAX_ID_LEN} bytes long"),
        });
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in id.bytes() {
        if is_plain_id_byte(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xF) as usize] as char);
        }
    }
    Ok(())
}

/// A keyed hash of caller data for key names (see the module documentation):
/// 32 hex digits (128 bits) of an HMAC-SHA256 under a secret. Equal inputs
/// give equal names, so an index still finds what it stored.
#[derive(Clone)]
pub struct KeyedHash {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHash([redacted])")
    }
}

impl KeyedHash {
    /// A hash under `secret` (any length; the deployment's secret setting).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            // HMAC takes a key of any length; this cannot fail.
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length")),
        }
    }

    /// The name of `data`: 32 lowercase hex digits, free of every key
    /// separator, brace and glob character.
    pub fn name(&self, data: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(data.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest
            .iter()
            .take(16)
            .fold(String::with_capacity(32), |mut out, b| {
                out.push_str(&format!("{b:02x}"));
                out
            })
    }
}

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of the hash tag, or of
/// the whole key when it has none), as the server computes it.
pub fn hash_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|len| *len > 0)
                .map(|len| &rest[..len])
        })
        .unwrap_or(key);
    // CRC16-CCITT (XMODEM), as the cluster specification says; the same
    // crate redis-rs computes slots with (it does not export its function).
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16_384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated_and_make_a_hash_tag() {
        let t = Tenant::new("practice_id", "clinic-42_a").unwrap();
        assert_eq!(t.prefix(), "ws:{clinic-42_a}:");
        assert_eq!(t.key("patients"), "ws:{clinic-42_a}:patients");
        for bad in ["", "a:*", "{b}", "b:x", "../b", "ü", "a b", &"x".repeat(65)] {
            let err = Tenant::new("practice_id", bad).unwrap_err();
            assert_eq!(err.field, "practice_id");
            assert!(err.reason.contains("A-Z"), "{err}");
        }
    }

    #[test]
    fn ids_are_escaped_injectively_and_safely() {
        let t = Tenant::new("ws", "a").unwrap();
        let crafted = [
            "a:*", "{b}", "b:x", "../b", "日本", "%41", "A", "x y", "\\", "[a]?",
        ];
        let mut seen = std::collections::HashSet::new();
        for id in crafted {
            let key = t.key_with("patient", "patient_id", &[id]).unwrap();
            let tail = key.strip_prefix("ws:{a}:patient:").unwrap();
            assert!(
                !tail.contains([':', '{', '}', '*', '?', '[', ']', '\\']),
                "{id} -> {key}"
            );
            assert!(seen.insert(key), "{id} collides");
        }
        assert_eq!(escape_id("id", "%41").unwrap(), "%2541");
        assert!(escape_id("id", "").is_err());
        assert!(escape_id("id", &"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn keyed_names_are_stable_depend_on_the_secret_and_hide_the_data() {
        let a = KeyedHash::new(b"secret-a");
        let b = KeyedHash::new(b"secret-b");
        let name = a.name("4111");
        assert_eq!(name, a.name("4111"));
        assert_ne!(name, a.name("4112"));
        assert_ne!(name, b.name("4111"));
        assert_eq!(name.len(), 32);
        assert!(name.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!name.contains("4111"));
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn scan_patterns_stay_inside_the_tenant() {
        let t = Tenant::new("workspace", "acme").unwrap();
        assert_eq!(t.scan_pattern(""), "ws:{acme}:*");
        assert_eq!(t.scan_pattern("*"), "ws:{acme}:*");
        assert!(t.scan_pattern("../*").starts_with("ws:{acme}:"));
        assert!(t.owns("ws:{acme}:x"));
        assert!(!t.owns("ws:{acme2}:x"));
    }

    #[test]
    fn all_keys_of_a_tenant_share_one_cluster_slot() {
        let t = Tenant::new("app", "agent").unwrap();
        let slot = hash_slot(t.key("a").as_bytes());
        assert_eq!(slot, hash_slot(b"agent"));
        for id in ["x", "{y}", "z}", "{"] {
            let key = t.key_with("session", "id", &[id]).unwrap();
            assert_eq!(hash_slot(key.as_bytes()), slot, "{key}");
        }
    }

    #[test]
    fn hash_slot_matches_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(hash_slot(b"123456789"), 0x31C3);
        assert_eq!(hash_slot(b"foo"), 12_182);
        assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
        // An empty first tag: the whole key is hashed, not `bar`.
        assert_eq!(hash_slot(b"foo{}{bar}"), 8_363);
        assert_ne!(hash_slot(b"foo{}{bar}"), hash_slot(b"bar"));
        assert_eq!(hash_slot(b"foo{{bar}}zap"), hash_slot(b"{bar"));
    }
}
