//! Bad requests: 4xx with the JSON error shape, and nothing written.

use axum::body::Body;
use axum::http::{Request, header};
use serde_json::{Value, json};

use crate::{all_keys, patient, send, spawn_app};

const URI: &str = "/practices/c/patients/sync";

fn raw(body: &str) -> Request<Body> {
    Request::post(URI)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn malformed_bodies_are_400_and_write_nothing() {
    let t = spawn_app(&[]);
    let cases: [(&str, &str); 12] = [
        ("{", "invalid_json"),
        ("", "invalid_json"),
        ("[]", "invalid_body"),
        ("{}", "invalid_body"),
        (r#"{"patients": {}}"#, "invalid_body"),
        (r#"{"patients": [], "extra": 1}"#, "invalid_body"),
        (r#"{"patients": [1]}"#, "invalid_patient"),
        (
            r#"{"patients": [{"name": "SECRET-NAME"}]}"#,
            "invalid_patient",
        ),
        (
            r#"{"patients": [{"id": 7, "name": "SECRET-NAME"}]}"#,
            "invalid_patient",
        ),
        (r#"{"patients": [{"id": null}]}"#, "invalid_patient"),
        (
            r#"{"patients": [{"id": "p1"}, {"id": "p2"}, {"id": "p1", "ssn": "SECRET-SSN"}]}"#,
            "duplicate_patient_id",
        ),
        (r#"{"patients": [{"id": "p1"}]} trailing"#, "invalid_json"),
    ];
    for (body, code) in cases {
        let reply = send(&t.app, raw(body)).await;
        reply.assert_error(400, code);
        assert!(!reply.text.contains("SECRET"), "{}", reply.text);
        assert!(
            !reply.text.contains("p1\""),
            "no patient id in errors: {}",
            reply.text
        );
    }
    let dup = send(
        &t.app,
        raw(r#"{"patients": [{"id": "p1"}, {"id": "p2"}, {"id": "p1"}]}"#),
    )
    .await;
    assert!(
        dup.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("patients[2]")
    );
    assert!(all_keys(&t.redis).is_empty(), "{:?}", all_keys(&t.redis));
}

#[tokio::test]
async fn more_than_1000_patients_or_a_body_over_the_limit_is_413() {
    let t = spawn_app(&[]);
    let many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("p{i}")})).collect();
    let reply = send(&t.app, crate::post(URI, &json!({"patients": many}), &[])).await;
    reply.assert_error(413, "payload_too_large");
    let exactly: Vec<Value> = (0..1000).map(|i| json!({"id": format!("p{i}")})).collect();
    let ok = send(&t.app, crate::post(URI, &json!({"patients": exactly}), &[])).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["changed"], 1000);

    let t = spawn_app(&[("MAX_BODY_BYTES", "2048")]);
    let big = json!({"patients": [{"id": "p1", "notes": "n".repeat(4096)}]});
    let reply = send(&t.app, crate::post(URI, &big, &[])).await;
    reply.assert_error(413, "payload_too_large");
    assert!(all_keys(&t.redis).is_empty());
}

#[tokio::test]
async fn a_wrong_content_type_is_415_and_an_unknown_mode_is_400() {
    let t = spawn_app(&[]);
    let req = Request::post(URI)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"patients": []}"#))
        .unwrap();
    send(&t.app, req)
        .await
        .assert_error(415, "unsupported_media_type");
    let body = json!({"patients": [patient("p1", "Jo")]});
    for q in ["mode=partial", "mode=full&mode=full"] {
        let reply = send(&t.app, crate::post(&format!("{URI}?{q}"), &body, &[])).await;
        reply.assert_error(400, "invalid_query");
    }
    let reply = send(&t.app, crate::get(URI)).await;
    reply.assert_error(405, "method_not_allowed");
    assert!(all_keys(&t.redis).is_empty());
}
