//! Poison changes, nack, extend and the admin dead-letter routes (issue 15 #6).

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::{
    Reply, all_keys, claim, claim_ids, dump, patient, post, send, spawn_app, status, sync,
};

const TOKEN: &str = "dead-letter-admin-token-2f9c41";
const LIST: &str = "/admin/practices/c/changes/dead-letters";

fn admin_get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn admin_post(uri: &str, body: &Value, token: Option<&str>) -> Request<Body> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    post(uri, body, &headers)
}

async fn nack(app: &axum::Router, body: &Value) -> Reply {
    send(app, post("/practices/c/changes/nack", body, &[])).await
}

/// The scenario: `bad` and `good` synced, `claim?max=1` called
/// again and again, nothing ever acknowledged.
#[tokio::test]
async fn a_poison_change_is_dead_lettered_after_max_deliveries_and_does_not_starve_the_queue() {
    let t = spawn_app(&[
        ("CHANGE_VISIBILITY_TIMEOUT_MS", "400"),
        ("ADMIN_TOKEN", TOKEN),
    ]);
    sync(&t.app, "c", json!([patient("bad", "Jo")])).await;
    sync(&t.app, "c", json!([patient("good", "Al")])).await;
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..15 {
        let reply = claim(&t.app, "c", 1).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for change in reply.body["changes"].as_array().unwrap() {
            delivered.push(change["change"]["patient_id"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(420)).await;
    }
    let count = |id: &str| delivered.iter().filter(|d| *d == id).count();
    assert_eq!(
        count("bad"),
        5,
        "CHANGE_MAX_DELIVERIES=5 by default: {delivered:?}"
    );
    assert!(count("good") >= 1, "good is delivered: {delivered:?}");
    assert_eq!(
        delivered[1], "good",
        "the expired bad went behind good: {delivered:?}"
    );

    let list = send(&t.app, admin_get(LIST, Some(TOKEN))).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let dead = list.body["dead_letters"].as_array().unwrap();
    let bad = dead
        .iter()
        .find(|d| d["change"]["patient_id"] == "bad")
        .expect("bad is a dead letter");
    assert_eq!(bad["deliveries"], 5);
    assert!(
        bad["last_error"]
            .as_str()
            .unwrap()
            .contains("claim expired")
    );
    assert!(bad["dead_lettered_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(bad["change"]["record"]["name"], "Jo");
    let s = status(&t.app, "c").await;
    assert_eq!(s["changes_dead_lettered"], list.body["total"]);
}

#[tokio::test]
async fn nack_with_a_delay_and_a_reason_then_the_last_failed_delivery_dead_letters() {
    let t = spawn_app(&[("CHANGE_MAX_DELIVERIES", "2"), ("ADMIN_TOKEN", TOKEN)]);
    sync(
        &t.app,
        "c",
        json!([patient("p1", "Jo"), patient("p2", "Al")]),
    )
    .await;
    let first = claim(&t.app, "c", 1).await;
    let ids = claim_ids(&first);
    let reply = nack(
        &t.app,
        &json!({"ids": [ids[0], "nope"], "delay_ms": 1500, "error": "downstream said 500"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"requeued": 1, "dead_lettered": 0, "unknown": ["nope"]})
    );
    let s = status(&t.app, "c").await;
    assert_eq!(
        (s["changes_pending"].as_u64(), s["changes_delayed"].as_u64()),
        (Some(1), Some(1))
    );
    // Before the delay only p2 comes out; after it, p1 again.
    let early = claim(&t.app, "c", 10).await;
    assert_eq!(early.body["changes"][0]["change"]["patient_id"], "p2");
    assert_eq!(early.body["changes"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let late = claim(&t.app, "c", 10).await;
    assert_eq!(late.body["changes"][0]["change"]["patient_id"], "p1");
    assert_eq!(late.body["changes"][0]["delivery"], 2);
    let reply = nack(
        &t.app,
        &json!({"ids": claim_ids(&late), "error": "still failing"}),
    )
    .await;
    assert_eq!(reply.body["dead_lettered"], 1);
    let list = send(&t.app, admin_get(LIST, Some(TOKEN))).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["dead_letters"][0]["last_error"], "still failing");
    assert_eq!(list.body["dead_letters"][0]["deliveries"], 2);
}

#[tokio::test]
async fn an_extended_claim_is_not_handed_out_again() {
    let t = spawn_app(&[("CHANGE_VISIBILITY_TIMEOUT_MS", "800")]);
    sync(&t.app, "c", json!([patient("p1", "Jo")])).await;
    let first = claim(&t.app, "c", 1).await;
    let ids = claim_ids(&first);
    // A heartbeat every 300 ms for 1.2 s: past the visibility timeout.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = send(
            &t.app,
            post(
                "/practices/c/changes/extend",
                &json!({"ids": [ids[0], "x"]}),
                &[],
            ),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["extended"], 1);
        assert_eq!(reply.body["unknown"], json!(["x"]));
        assert_eq!(reply.body["visibility_timeout_ms"], 800);
        assert!(claim_ids(&claim(&t.app, "c", 1).await).is_empty());
    }
    let longer = send(
        &t.app,
        post(
            "/practices/c/changes/extend",
            &json!({"ids": ids, "visibility_timeout_ms": 5000}),
            &[],
        ),
    )
    .await;
    assert_eq!(longer.body["visibility_timeout_ms"], 5000);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(claim_ids(&claim(&t.app, "c", 1).await).is_empty());
    assert_eq!(
        crate::ack(&t.app, "c", &[&ids[0]]).await.body["acknowledged"],
        1
    );
}

/// Three changes dead-lettered at once (one delivery allowed).
async fn three_dead_letters(app: &axum::Router) {
    sync(
        app,
        "c",
        json!([
            patient("p1", "Jo"),
            patient("p2", "Al"),
            patient("p3", "Bo")
        ]),
    )
    .await;
    let ids = claim_ids(&claim(app, "c", 3).await);
    assert_eq!(
        nack(app, &json!({"ids": ids})).await.body["dead_lettered"],
        3
    );
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_and_dropped_by_an_admin() {
    let t = spawn_app(&[("CHANGE_MAX_DELIVERIES", "1"), ("ADMIN_TOKEN", TOKEN)]);
    three_dead_letters(&t.app).await;
    let page = send(&t.app, admin_get(&format!("{LIST}?limit=2"), Some(TOKEN))).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["offset"], 0);
    let ids: Vec<&str> = page.body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["change_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    let rest = send(
        &t.app,
        admin_get(&format!("{LIST}?limit=2&offset=2"), Some(TOKEN)),
    )
    .await;
    assert_eq!(rest.body["dead_letters"][0]["change_id"], "3");
    assert_eq!(rest.body["dead_letters"][0]["last_error"], Value::Null);

    let replay = send(
        &t.app,
        admin_post(
            &format!("{LIST}/replay"),
            &json!({"ids": ["1", "42"]}),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.body, json!({"replayed": 1, "unknown": ["42"]}));
    let again = claim(&t.app, "c", 10).await;
    assert_eq!(again.body["changes"][0]["change"]["patient_id"], "p1");
    assert_eq!(again.body["changes"][0]["delivery"], 1, "count reset");

    let dropped = send(
        &t.app,
        admin_post(&format!("{LIST}/drop"), &json!({"ids": ["2"]}), Some(TOKEN)),
    )
    .await;
    assert_eq!(dropped.body, json!({"dropped": 1, "unknown": []}));
    let s = status(&t.app, "c").await;
    assert_eq!(s["changes_dead_lettered"], 1);
    let left = send(&t.app, admin_get(LIST, Some(TOKEN))).await;
    assert_eq!(left.body["total"], 1);
    assert_eq!(left.body["dead_letters"][0]["change_id"], "3");
}

#[tokio::test]
async fn the_dead_letter_routes_need_the_admin_token_and_touch_nothing_without_it() {
    let t = spawn_app(&[("CHANGE_MAX_DELIVERIES", "1"), ("ADMIN_TOKEN", TOKEN)]);
    three_dead_letters(&t.app).await;
    let before = dump(&t);
    let body = json!({"ids": ["1"]});
    for token in [None, Some("wrong-token-but-long-enough")] {
        for reply in [
            send(&t.app, admin_get(LIST, token)).await,
            send(&t.app, admin_post(&format!("{LIST}/replay"), &body, token)).await,
        ] {
            reply.assert_error(401, "unauthorized");
            assert!(!reply.text.contains("Jo"), "{}", reply.text);
        }
    }
    assert_eq!(before, dump(&t), "nothing read or written changed");
    // Without ADMIN_TOKEN configured the routes do not exist.
    let closed = spawn_app(&[]);
    for reply in [
        send(&closed.app, admin_get(LIST, Some(TOKEN))).await,
        send(
            &closed.app,
            admin_post(&format!("{LIST}/drop"), &body, Some(TOKEN)),
        )
        .await,
    ] {
        assert_eq!(reply.status, 404, "{}", reply.text);
    }
    assert!(all_keys(&closed.redis).is_empty());
}

#[tokio::test]
async fn bad_input_to_nack_extend_and_the_dead_letter_routes_is_4xx_and_writes_nothing() {
    let t = spawn_app(&[("CHANGE_MAX_DELIVERIES", "1"), ("ADMIN_TOKEN", TOKEN)]);
    three_dead_letters(&t.app).await;
    sync(&t.app, "c", json!([patient("p4", "Di")])).await;
    let live = claim_ids(&claim(&t.app, "c", 1).await);
    let before = dump(&t);
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let long = "e".repeat(513);
    for (body, status, code) in [
        (
            json!({"ids": [live[0]], "delay_ms": 43_200_001u64}),
            400,
            "invalid_body",
        ),
        (
            json!({"ids": [live[0]], "delay_ms": -1}),
            400,
            "invalid_body",
        ),
        (
            json!({"ids": [live[0]], "error": long}),
            400,
            "invalid_body",
        ),
        (json!({"ids": [live[0]], "error": 5}), 400, "invalid_body"),
        (json!({"ids": "x"}), 400, "invalid_body"),
        (json!({"ids": [live[0]], "other": 1}), 400, "invalid_body"),
        (json!({"ids": many}), 413, "payload_too_large"),
    ] {
        nack(&t.app, &body).await.assert_error(status, code);
    }
    for (body, status, code) in [
        (
            json!({"ids": [live[0]], "visibility_timeout_ms": 0}),
            400,
            "invalid_body",
        ),
        (
            json!({"ids": [live[0]], "visibility_timeout_ms": 43_200_001u64}),
            400,
            "invalid_body",
        ),
        (json!({"ids": [1]}), 400, "invalid_body"),
        (json!({"ids": many}), 413, "payload_too_large"),
    ] {
        send(&t.app, post("/practices/c/changes/extend", &body, &[]))
            .await
            .assert_error(status, code);
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "offset=-1",
        "limit=1&limit=2",
    ] {
        send(&t.app, admin_get(&format!("{LIST}?{query}"), Some(TOKEN)))
            .await
            .assert_error(400, "invalid_query");
    }
    for route in ["replay", "drop"] {
        let uri = format!("{LIST}/{route}");
        for (body, status, code) in [
            (json!({"ids": ["1", "x"]}), 400, "invalid_body"),
            (json!({"ids": [""]}), 400, "invalid_body"),
            (json!({"ids": [1]}), 400, "invalid_body"),
            (json!({}), 400, "invalid_body"),
            (json!({"ids": many}), 413, "payload_too_large"),
        ] {
            let reply = send(&t.app, admin_post(&uri, &body, Some(TOKEN))).await;
            reply.assert_error(status, code);
        }
        send(
            &t.app,
            admin_get("/admin/practices/a:*/changes/dead-letters", Some(TOKEN)),
        )
        .await
        .assert_error(400, "invalid_id");
    }
    assert_eq!(before, dump(&t), "no rejected request wrote anything");
}

#[tokio::test]
async fn neither_a_record_nor_a_nack_reason_reaches_a_log_line() {
    let logs = shared::testkit::CapturedLogs::default();
    shared::telemetry::init_with_writer(
        "patient_sync",
        shared::config::LogFormat::Json,
        "trace",
        logs.clone(),
    );
    let t = spawn_app(&[("CHANGE_MAX_DELIVERIES", "1"), ("ADMIN_TOKEN", TOKEN)]);
    let secret = json!({"id": "ID-SECRET-9", "name": "NAME-SECRET"});
    sync(&t.app, "c", json!([secret])).await;
    let ids = claim_ids(&claim(&t.app, "c", 1).await);
    let reply = nack(&t.app, &json!({"ids": ids, "error": "REASON-SECRET"})).await;
    assert_eq!(reply.body["dead_lettered"], 1);
    let list = send(&t.app, admin_get(LIST, Some(TOKEN))).await;
    assert_eq!(list.body["dead_letters"][0]["last_error"], "REASON-SECRET");
    let replay = send(
        &t.app,
        admin_post(
            &format!("{LIST}/replay"),
            &json!({"ids": ["1"]}),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(replay.body["replayed"], 1);
    let ids = claim_ids(&claim(&t.app, "c", 1).await);
    send(
        &t.app,
        post("/practices/c/changes/extend", &json!({"ids": ids}), &[]),
    )
    .await;
    nack(&t.app, &json!({"ids": ids, "error": "REASON-SECRET"})).await;
    send(
        &t.app,
        admin_post(&format!("{LIST}/drop"), &json!({"ids": ["1"]}), Some(TOKEN)),
    )
    .await;
    let logged = logs.text();
    for message in [
        "changes released",
        "dead letters listed",
        "dead letters replayed",
        "claims extended",
        "dead letters dropped",
    ] {
        assert!(logged.contains(message), "{message} not in {logged}");
    }
    for marker in ["ID-SECRET", "NAME-SECRET", "REASON-SECRET", TOKEN] {
        assert!(!logged.contains(marker), "{marker} in: {logged}");
    }
}
