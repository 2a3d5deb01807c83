//! `tebra_debug` as a process and as a router: the checks every function passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shared::testkit::RedisServer;

shared::conformance_tests!(env!("CARGO_BIN_EXE_tebra_debug"), tebra_debug::app);

#[tokio::test]
async fn status_reads_redis_through_the_fallback() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let mut redis = RedisServer::start();
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .exec(&mut redis.admin())
        .unwrap();
    let ctx = shared::AppContext::with_redis(redis.config()).unwrap();
    let app = tebra_debug::app(ctx);
    let get = || {
        axum::http::Request::get("/status")
            .body(Body::empty())
            .unwrap()
    };
    let body = |r: axum::response::Response| async move {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let ok = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok = body(ok).await;
    assert_eq!(ok["keys"], 1);
    assert_eq!(ok["degraded"], false);

    redis.stop();
    let down = app.oneshot(get()).await.unwrap();
    assert_eq!(down.status(), 200, "a read with a fallback still answers");
    let down = body(down).await;
    assert_eq!(down["keys"], serde_json::Value::Null);
    assert_eq!(down["degraded"], true);
}
