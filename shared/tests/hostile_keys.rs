//! Hostile input against the key builder, with many generated cases: no
//! panic, no id that maps outside its tenant's prefix, changes the hash tag,
//! collides with another id, or widens a SCAN pattern past the tenant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use shared::blocks::keys::{MAX_ID_LEN, Tenant, escape_id, hash_slot};

fn hostile() -> impl Strategy<Value = String> {
    shared::testkit::hostile::text()
}

fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tenant_ids_are_accepted_only_when_safe(id in hostile()) {
        match Tenant::new("workspace", &id) {
            Ok(t) => {
                prop_assert!(!id.is_empty() && id.len() <= 64);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                prop_assert_eq!(t.prefix(), format!("ws:{{{id}}}:"));
            }
            Err(e) => prop_assert_eq!(e.field, "workspace"),
        }
    }

    #[test]
    fn ids_stay_inside_their_tenant_and_hash_slot(tenant in "[A-Za-z0-9_-]{1,64}", id in hostile()) {
        let t = Tenant::new("workspace", &tenant).unwrap();
        match t.key_with("record", "id", &[&id]) {
            Ok(key) => {
                prop_assert!(key.starts_with(t.prefix()));
                let tail = &key[t.prefix().len()..];
                prop_assert!(!tail.contains(['{', '}', '*', '?', '[', ']', '\\']), "{}", key);
                prop_assert_eq!(hash_slot(key.as_bytes()), hash_slot(tenant.as_bytes()));
                let escaped = tail.strip_prefix("record:").unwrap();
                prop_assert!(!escaped.contains(':'));
                prop_assert_eq!(unescape(escaped), id.as_bytes().to_vec(), "the escape is reversible, so injective");
            }
            Err(e) => {
                prop_assert!(id.is_empty() || id.len() > MAX_ID_LEN);
                prop_assert_eq!(e.field, "id");
            }
        }
    }

    #[test]
    fn distinct_ids_never_share_a_key(a in hostile(), b in hostile()) {
        prop_assume!(a != b);
        if let (Ok(x), Ok(y)) = (escape_id("id", &a), escape_id("id", &b)) {
            prop_assert_ne!(x, y);
        }
    }

    #[test]
    fn scan_patterns_never_leave_the_tenant(tenant in "[A-Za-z0-9_-]{1,64}", glob in hostile()) {
        let t = Tenant::new("workspace", &tenant).unwrap();
        let pattern = t.scan_pattern(&glob);
        prop_assert!(pattern.starts_with(t.prefix()));
        // The prefix itself holds no glob metacharacter, so every match starts with it.
        prop_assert!(!t.prefix().contains(['*', '?', '[', ']', '\\']));
    }
}
