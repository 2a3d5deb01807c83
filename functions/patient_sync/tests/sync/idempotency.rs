//! The `Idempotency-Key` header.

use serde_json::{Value, json};

use crate::{all_keys, dump, patient, post, send, spawn_app, status};

const URI: &str = "/practices/c/patients/sync";

#[tokio::test]
async fn a_repeat_with_the_same_key_returns_the_first_response_without_processing_again() {
    let t = spawn_app(&[]);
    let body = json!({"patients": [patient("p1", "Jo"), patient("p2", "Al")]});
    let first = send(&t.app, post(URI, &body, &[("Idempotency-Key", "batch-1")])).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["changed"], 2);
    for _ in 0..3 {
        let again = send(&t.app, post(URI, &body, &[("Idempotency-Key", "batch-1")])).await;
        assert_eq!(again.status, 200);
        // Processing again would have answered changed 0, unchanged 2.
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    let s = status(&t.app, "c").await;
    assert_eq!(s["changes_pending"], 2, "queued once");
    // Without the key, the same body is processed (and is unchanged now).
    let plain = send(&t.app, post(URI, &body, &[])).await;
    assert_eq!(plain.body["unchanged"], 2);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_and_writes_nothing() {
    let t = spawn_app(&[]);
    let body = json!({"patients": [patient("p1", "Jo")]});
    send(&t.app, post(URI, &body, &[("Idempotency-Key", "k")])).await;
    let before = dump(&t);
    let other = json!({"patients": [patient("p1", "Changed")]});
    let reply = send(&t.app, post(URI, &other, &[("Idempotency-Key", "k")])).await;
    reply.assert_error(422, "idempotency_key_reused");
    assert!(!reply.text.contains("Changed"));
    // Nothing was written (the key is checked before the rate limiter,
    // which does not count it either).
    let data = |d: Vec<(String, Value)>| -> Vec<(String, Value)> {
        d.into_iter()
            .filter(|(k, _)| !k.contains(":ratelimit:"))
            .collect()
    };
    assert_eq!(data(before), data(dump(&t)));
    // Another mode is another request too.
    let full = send(
        &t.app,
        post(
            &format!("{URI}?mode=full"),
            &body,
            &[("Idempotency-Key", "k")],
        ),
    )
    .await;
    full.assert_error(422, "idempotency_key_reused");
}

#[tokio::test]
async fn the_same_records_in_another_field_order_replay_under_the_same_key() {
    let t = spawn_app(&[]);
    let a = json!({"patients": [{"id": "p1", "a": 1, "b": 2}]});
    let b = json!({"patients": [{"b": 2, "a": 1, "id": "p1"}]});
    let first = send(&t.app, post(URI, &a, &[("Idempotency-Key", "k")])).await;
    let second = send(&t.app, post(URI, &b, &[("Idempotency-Key", "k")])).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
}

#[tokio::test]
async fn concurrent_duplicates_are_processed_once() {
    let t = spawn_app(&[]);
    let body = json!({"patients": [patient("p1", "Jo"), patient("p2", "Al")]});
    let tries = (0..10).map(|_| {
        let app = t.app.clone();
        let body = body.clone();
        tokio::spawn(
            async move { send(&app, post(URI, &body, &[("Idempotency-Key", "dup")])).await },
        )
    });
    let mut ok = 0;
    for reply in futures::future::join_all(tries).await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            200 => {
                assert_eq!(reply.body["changed"], 2, "{}", reply.text);
                ok += 1;
            }
            409 => {
                reply.assert_error(409, "idempotency_in_progress");
                assert!(reply.retry_after().is_some());
            }
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert!(ok >= 1);
    assert_eq!(status(&t.app, "c").await["changes_pending"], 2);
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_400_and_writes_nothing() {
    let t = spawn_app(&[]);
    let body = json!({"patients": [patient("p1", "Jo")]});
    let long = "k".repeat(300);
    for key in ["", long.as_str()] {
        let reply = send(&t.app, post(URI, &body, &[("Idempotency-Key", key)])).await;
        reply.assert_error(400, "invalid_idempotency_key");
    }
    assert!(all_keys(&t.redis).is_empty());
}
