//! Crafted practice and patient ids never reach another practice's keys.

use serde_json::{Value, json};

use crate::{all_keys, dump, patient, post, post_empty, send, spawn_app, sync};

/// Crafted practice ids, percent-encoded for the path.
const CRAFTED_PRACTICES: [&str; 8] = [
    "a%3A%2A", // a:*
    "%7Bb%7D", // {b}
    "b%3Ax",   // b:x
    "..%2Fb",  // ../b
    "%C3%BC",  // ü
    "b%00",    // NUL
    "b%20",    // trailing space
    "%FF",     // not UTF-8
];

#[tokio::test]
async fn crafted_practice_ids_are_refused_on_every_route_and_touch_no_key() {
    let t = spawn_app(&[]);
    // Practice b has data that must stay exactly as it is.
    sync(&t.app, "b", json!([patient("p1", "Jo")])).await;
    let before = dump(&t);
    let long = "x".repeat(65);
    let mut practices: Vec<&str> = CRAFTED_PRACTICES.to_vec();
    practices.push(&long);
    practices.push(""); // empty
    let body = json!({"patients": [patient("p1", "Changed")], "ids": []});
    for practice in practices {
        let routes = [
            send(
                &t.app,
                post(
                    &format!("/practices/{practice}/patients/sync"),
                    &json!({"patients": body["patients"]}),
                    &[],
                ),
            )
            .await,
            send(
                &t.app,
                post_empty(&format!("/practices/{practice}/changes/claim")),
            )
            .await,
            send(
                &t.app,
                post(
                    &format!("/practices/{practice}/changes/ack"),
                    &json!({"ids": ["1.1.x"]}),
                    &[],
                ),
            )
            .await,
            send(
                &t.app,
                crate::get(&format!("/practices/{practice}/sync/status")),
            )
            .await,
            send(
                &t.app,
                crate::get(&format!("/practices/{practice}/patients/count")),
            )
            .await,
        ];
        for reply in routes {
            reply.assert_error(400, "invalid_id");
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("practice_id")
                    && (message.contains("A-Z") || message.contains("UTF-8")),
                "{message}"
            );
        }
    }
    assert_eq!(dump(&t), before, "no key was created or changed");
}

#[tokio::test]
async fn crafted_patient_ids_stay_fields_of_their_own_practice() {
    let t = spawn_app(&[]);
    sync(&t.app, "b", json!([patient("p1", "Jo")])).await;
    let b_before: Vec<(String, Value)> = dump(&t);
    let crafted = [
        "a:*",
        "{b}",
        "b:x",
        "../b",
        "ws:{b}:patients",
        "*",
        "日本語",
        "\u{0}",
        &"x".repeat(512),
    ];
    let batch: Vec<Value> = crafted.iter().map(|id| patient(id, "Jo")).collect();
    let reply = sync(&t.app, "a", Value::Array(batch)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["changed"], crafted.len());
    let keys = all_keys(&t.redis);
    for key in &keys {
        assert!(
            key.starts_with("ws:{a}:") || key.starts_with("ws:{b}:"),
            "{key}"
        );
    }
    let b_after: Vec<(String, Value)> = dump(&t)
        .into_iter()
        .filter(|(k, _)| k.starts_with("ws:{b}:"))
        .collect();
    assert_eq!(b_after, b_before, "practice b is untouched");
    let ids: Vec<String> = redis::cmd("HKEYS")
        .arg("ws:{a}:patients")
        .query(&mut t.redis.admin())
        .unwrap();
    assert_eq!(ids.len(), crafted.len());
    // Practice b's queue did not receive a's changes.
    let claimed = crate::claim(&t.app, "b", 100).await;
    assert_eq!(claimed.body["changes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn empty_and_overlong_patient_ids_are_refused() {
    let t = spawn_app(&[]);
    for id in [String::new(), "x".repeat(513)] {
        let reply = sync(&t.app, "a", json!([patient(&id, "Jo")])).await;
        reply.assert_error(400, "invalid_patient");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("patients[0].id")
        );
    }
    assert!(all_keys(&t.redis).is_empty());
}
