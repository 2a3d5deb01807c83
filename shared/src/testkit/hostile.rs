//! Hostile input for property tests: strings rich in what attacks keys and
//! parsers, arbitrary JSON built from them, and the check that every key a
//! run left behind sits inside the tenant that was asked for.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;

use crate::blocks::keys::{MAX_ID_LEN, Tenant};

/// Strings full of separators, braces, globs, escapes, percent signs,
/// control characters, unicode, JSON and path tricks, sometimes very long.
pub fn text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        ":",
        "{",
        "}",
        "*",
        "?",
        "[",
        "]",
        "\\",
        "%",
        "%41",
        "%2F",
        "../",
        "./",
        "/",
        "ws:",
        "{b}",
        "a:*",
        "b:x",
        "\u{0}",
        "\n",
        "\r\n",
        " ",
        "\t",
        "é",
        "日本",
        "🦀",
        "\u{202e}",
        "ws:{other}:",
        "}{",
        "",
        "app:",
        "user:",
        "temp:",
        "\"",
        "'",
        "<script>",
        "null",
        "-1",
        "1e309",
        "NaN",
        "\u{feff}",
    ]);
    prop_oneof![
        8 => prop::collection::vec(pieces, 0..10).prop_map(|v| v.concat()),
        3 => any::<String>(),
        2 => "[A-Za-z0-9_-]{1,12}",
        1 => (1usize..3).prop_map(|n| "x".repeat(MAX_ID_LEN * n + 1)),
    ]
}

/// Arbitrary JSON whose strings and object keys are [`text`].
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `s` percent-encoded as one URL path segment or query value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether `id` is a tenant id the functions accept.
pub fn is_tenant(id: &str) -> bool {
    Tenant::new("tenant", id).is_ok()
}

/// Panics unless every key is `ws:{t}:<rest>` with `t` one of `tenants`
/// and `<rest>` free of braces (so no id moved the hash tag).
pub fn assert_keys_confined(keys: &[String], tenants: &BTreeSet<String>) {
    for key in keys {
        let inside = tenants.iter().any(|t| {
            key.strip_prefix(&format!("ws:{{{t}}}:"))
                .is_some_and(|rest| !rest.contains(['{', '}']))
        });
        assert!(
            inside,
            "key {key:?} is outside the tenants asked for ({} of them)",
            tenants.len()
        );
    }
}
