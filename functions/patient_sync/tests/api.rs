//! `patient_sync` as a process and as a router: the checks every function passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shared::testkit::RedisServer;

shared::conformance_tests!(env!("CARGO_BIN_EXE_patient_sync"), patient_sync::app);

#[tokio::test]
async fn patient_count_reads_redis_through_the_fallback_and_validates_the_practice() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let mut redis = RedisServer::start();
    redis::cmd("HSET")
        .arg("ws:{clinic-1}:patients")
        .arg(&["p1", "h1", "p2", "h2"])
        .exec(&mut redis.admin())
        .unwrap();
    let ctx = shared::AppContext::with_redis(redis.config()).unwrap();
    let app = patient_sync::app(ctx);
    let call = |uri: &str| {
        let app = app.clone();
        let req = axum::http::Request::get(uri).body(Body::empty()).unwrap();
        async move {
            let r = app.oneshot(req).await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let (status, body) = call("/practices/clinic-1/patients/count").await;
    assert_eq!(status, 200);
    assert_eq!(body["patients"], 2);

    let (status, body) = call("/practices/a%3A%2A/patients/count").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_id");
    assert!(body["error"]["message"].as_str().unwrap().contains("A-Z"));

    redis.stop();
    let (status, body) = call("/practices/clinic-1/patients/count").await;
    assert_eq!(status, 200);
    assert_eq!(body["patients"], serde_json::Value::Null);
    assert_eq!(body["degraded"], true);
}
