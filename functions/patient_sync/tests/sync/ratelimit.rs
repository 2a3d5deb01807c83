//! The per-practice rate limit of the sync route, and how it meets
//! idempotent retries (a replay is served before the limiter).

use serde_json::json;

use crate::{all_keys, patient, post, send, spawn_app, status, sync};

#[tokio::test]
async fn with_limit_l_and_m_concurrent_requests_exactly_l_pass_and_the_rest_get_429() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "7")]);
    let requests = (0..30).map(|i| {
        let app = t.app.clone();
        tokio::spawn(async move { sync(&app, "c", json!([patient(&format!("p{i}"), "Jo")])).await })
    });
    let mut passed = 0;
    let mut limited = 0;
    for reply in futures::future::join_all(requests).await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            200 => passed += 1,
            429 => {
                reply.assert_error(429, "rate_limited");
                let after = reply.retry_after().expect("Retry-After");
                assert!((1..=60).contains(&after), "{after}");
                limited += 1;
            }
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert_eq!((passed, limited), (7, 23));
    // The rejected requests wrote nothing: 7 patients, 7 changes.
    let s = status(&t.app, "c").await;
    assert_eq!(s["patients_tracked"], 7);
    assert_eq!(s["changes_pending"], 7);
    assert_eq!(s["rate_limit"]["remaining"], 0);
    assert_eq!(s["rate_limit"]["limit"], 7);
}

#[tokio::test]
async fn the_limit_is_per_practice_and_status_shows_what_remains() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "2")]);
    assert_eq!(status(&t.app, "a").await["rate_limit"]["remaining"], 2);
    for _ in 0..2 {
        assert_eq!(sync(&t.app, "a", json!([])).await.status, 200);
    }
    assert_eq!(status(&t.app, "a").await["rate_limit"]["remaining"], 0);
    sync(&t.app, "a", json!([]))
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(sync(&t.app, "b", json!([])).await.status, 200);
    assert_eq!(status(&t.app, "b").await["rate_limit"]["remaining"], 1);
}

/// The scenario of issue 15 item 5 on `app` (limit 3): a completed
/// idempotent request retried after the budget is spent is replayed, not
/// refused; a new key is still limited.
async fn retry_of_a_completed_request_after_the_budget_is_spent(app: &axum::Router) {
    let body = json!({"patients": [patient("p1", "Jo")]});
    let first = send(app, post(URI, &body, &[("Idempotency-Key", "k1")])).await;
    assert_eq!(first.status, 200, "{}", first.text);
    for i in 2..=3 {
        let other = json!({"patients": [patient(&format!("p{i}"), "Al")]});
        assert_eq!(send(app, post(URI, &other, &[])).await.status, 200);
    }
    // The budget (3) is spent; the retry of k1 is still answered.
    for _ in 0..2 {
        let retry = send(app, post(URI, &body, &[("Idempotency-Key", "k1")])).await;
        assert_eq!(retry.status, 200, "{}", retry.text);
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.headers["idempotent-replayed"], "true");
    }
    // A new key still goes through the limiter.
    let new = json!({"patients": [patient("p9", "Bo")]});
    send(app, post(URI, &new, &[("Idempotency-Key", "k-new")]))
        .await
        .assert_error(429, "rate_limited");
}

const URI: &str = "/practices/c/patients/sync";

#[tokio::test]
async fn a_retry_of_a_completed_idempotent_request_is_replayed_even_when_the_limit_is_spent() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "3")]);
    retry_of_a_completed_request_after_the_budget_is_spent(&t.app).await;
    // The refused new key left no in-progress marker behind: its retry
    // after Retry-After runs instead of answering 409.
    assert!(
        !all_keys(&t.redis).iter().any(|k| k.ends_with(":k-new")),
        "{:?}",
        all_keys(&t.redis)
    );
    assert_eq!(status(&t.app, "c").await["changes_pending"], 3);
}

#[tokio::test]
async fn a_replay_spends_none_of_the_budget() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "3")]);
    let body = json!({"patients": [patient("p1", "Jo")]});
    assert_eq!(
        send(&t.app, post(URI, &body, &[("Idempotency-Key", "k1")]))
            .await
            .status,
        200
    );
    for _ in 0..5 {
        let replay = send(&t.app, post(URI, &body, &[("Idempotency-Key", "k1")])).await;
        assert_eq!(replay.headers["idempotent-replayed"], "true");
    }
    assert_eq!(status(&t.app, "c").await["rate_limit"]["remaining"], 2);
    // Two new requests still fit: had the five replays been counted, both
    // would be 429.
    for key in ["k2", "k3"] {
        let new = json!({"patients": [patient(key, "Al")]});
        let reply = send(&t.app, post(URI, &new, &[("Idempotency-Key", key)])).await;
        assert_eq!(reply.status, 200, "{key}: {}", reply.text);
    }
    let fourth = json!({"patients": [patient("p4", "Bo")]});
    send(&t.app, post(URI, &fourth, &[]))
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn an_in_progress_duplicate_is_409_and_spends_no_budget() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "3")]);
    let body = json!({"patients": [patient("p1", "Jo")]});
    send(&t.app, post(URI, &body, &[("Idempotency-Key", "k1")])).await;
    // Make "k2" look in progress, with the same request's fingerprint, as a
    // concurrent duplicate would see it.
    let done = all_keys(&t.redis)
        .into_iter()
        .find(|k| k.ends_with(":k1"))
        .unwrap();
    let mut admin = t.redis.admin();
    let fp: String = redis::cmd("HGET")
        .arg(&done)
        .arg("fp")
        .query(&mut admin)
        .unwrap();
    let running = format!("{}:k2", done.strip_suffix(":k1").unwrap());
    redis::cmd("HSET")
        .arg(&running)
        .arg(&["state", "pending", "fp", &fp, "token", "someone-else"])
        .exec(&mut admin)
        .unwrap();
    redis::cmd("PEXPIRE")
        .arg(&running)
        .arg(60_000)
        .exec(&mut admin)
        .unwrap();
    for _ in 0..3 {
        let reply = send(&t.app, post(URI, &body, &[("Idempotency-Key", "k2")])).await;
        reply.assert_error(409, "idempotency_in_progress");
        assert!(reply.retry_after().is_some());
    }
    assert_eq!(status(&t.app, "c").await["rate_limit"]["remaining"], 2);
}

#[tokio::test]
async fn on_redis_cluster_a_retry_of_a_completed_idempotent_request_is_replayed() {
    let cluster = shared::testkit::RedisCluster::start(3);
    let app = crate::app_for(&cluster.url(), &[("RATE_LIMIT_PER_MINUTE", "3")]);
    retry_of_a_completed_request_after_the_budget_is_spent(&app).await;
    assert!(
        cluster
            .all_keys()
            .iter()
            .all(|k| k.starts_with("ws:{c}:") && !k.ends_with(":k-new"))
    );
}
