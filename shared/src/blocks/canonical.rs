//! Canonical JSON and content hashes: the same document gives the same hash
//! whatever the order of its object fields.
//!
//! [`canonical_json`] writes a [`serde_json::Value`] with the members of every
//! object sorted by key (byte order), no whitespace, strings and numbers as
//! `serde_json` writes them. It sorts explicitly rather than relying on
//! `serde_json`'s default `BTreeMap`: a crate elsewhere in a build enabling
//! `serde_json/preserve_order` would otherwise silently make hashes depend
//! on field order.
//!
//! [`content_hash`] is the SHA-256 of that text, in lower-case hex.
//!
//! Numbers are written as `serde_json` writes the value it parsed, not as
//! they were spelt: an integer stays an integer and every other number
//! becomes the shortest text that reads back as the same `f64`. So `1` and
//! `1.0` are different documents (an integer and a float), while `1.50`,
//! `1.5` and `15e-1` are the same one, and a float beyond `f64` precision is
//! rounded before it is hashed.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `value` as canonical JSON text (see the module documentation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(key, out);
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => push_string(s, out),
        // Null, booleans and numbers have one spelling each in serde_json.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn push_string(s: &str, out: &mut String) {
    // serde_json's string escaping is deterministic; a `Value::String` never
    // fails to serialize.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// SHA-256 of `bytes`, lower-case hex (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The content hash of a JSON document: SHA-256 of its [`canonical_json`],
/// lower-case hex. Equal for documents that differ only in field order.
pub fn content_hash(value: &Value) -> String {
    sha256_hex(canonical_json(value).as_bytes())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_order_does_not_change_the_text_or_the_hash() {
        let a: Value =
            serde_json::from_str(r#"{"id":"p1","name":{"last":"Doe","first":"Jo"},"tags":[2,1]}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"tags":[2,1],"name":{"first":"Jo","last":"Doe"},"id":"p1"}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"id":"p1","name":{"first":"Jo","last":"Doe"},"tags":[2,1]}"#
        );
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
    }

    #[test]
    fn any_change_of_content_changes_the_hash() {
        let base = json!({"id": "p1", "dob": "1990-01-01", "tags": [1, 2]});
        let variants = [
            json!({"id": "p1", "dob": "1990-01-02", "tags": [1, 2]}),
            json!({"id": "p1", "dob": "1990-01-01", "tags": [2, 1]}),
            json!({"id": "p1", "dob": "1990-01-01", "tags": [1, 2], "x": null}),
            json!({"id": "p1", "dob": "1990-01-01", "tags": [1.0, 2]}),
            json!({"id": "p1", "dob": "1990-01-01", "tags": ["1", 2]}),
        ];
        for v in variants {
            assert_ne!(content_hash(&base), content_hash(&v), "{v}");
        }
    }

    #[test]
    fn numbers_are_written_as_parsed_values_not_as_spelt() {
        let parse = |text: &str| canonical_json(&serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(parse("1.50"), parse("1.5"));
        assert_eq!(parse("15e-1"), parse("1.5"));
        assert_ne!(parse("1"), parse("1.0"));
        assert_eq!(parse("[1, 1.0]"), "[1,1.0]");
    }

    #[test]
    fn strings_are_escaped_so_documents_cannot_collide() {
        let a = json!({"a": "x\",\"b\":\"y"});
        let b = json!({"a": "x", "b": "y"});
        assert_ne!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&json!("é\n")), "\"é\\n\"");
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
