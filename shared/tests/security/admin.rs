//! The admin token: failed attempts throttled per source and logged as
//! warnings; the documentation's example token refused at start.

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use shared::config::LogFormat;
use shared::testkit::{CapturedLogs, RedisMonitor, RedisServer};
use shared::{Secret, telemetry};

const TOKEN: &str = "the-admin-token-0123456789";

/// An admin route that reads Redis, served by the plain server on loopback.
async fn serve(redis: &RedisServer) -> (String, tokio::sync::oneshot::Sender<()>) {
    let client = redis.client();
    let routes = Router::new().route(
        "/admin/dbsize",
        get(move || {
            let client = client.clone();
            async move {
                let mut conn = client.conn().unwrap();
                let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
                n.to_string()
            }
        }),
    );
    let routes = shared::http::admin_only(routes, Some(Secret::new(TOKEN)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shared::http::serve_on(listener, routes, async {
        let _ = stopped.await;
    }));
    (base, stop)
}

#[tokio::test]
async fn wrong_admin_tokens_lock_their_source_out_and_each_is_a_warning() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(telemetry::subscriber(
        "admin_test",
        LogFormat::Json,
        "info",
        logs.clone(),
    ));
    let redis = RedisServer::start();
    let monitor = RedisMonitor::start(&redis);
    let (base, _stop) = serve(&redis).await;
    let http = reqwest::Client::new();
    let attempt = |token: String| {
        let http = http.clone();
        let url = format!("{base}/admin/dbsize");
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.headers().get("retry-after").cloned())
        }
    };
    // Four wrong tokens, then the right one: served, and the count starts afresh.
    for round in 0..2 {
        for i in 0..4 {
            assert_eq!(attempt(format!("guess-{round}{i}-0123456789")).await.0, 401);
        }
        assert_eq!(attempt(TOKEN.into()).await.0, 200);
    }
    let mut statuses = Vec::new();
    for i in 0..200 {
        statuses.push(attempt(format!("guess-{i:04}-0123456789")).await.0);
    }
    assert_eq!(
        statuses[..5],
        [401; 5],
        "five wrong tokens are answered 401"
    );
    assert!(
        statuses[5..].iter().all(|s| *s == 429),
        "then the source is locked out"
    );
    // Locked out, even the right token is not compared.
    let (status, retry_after) = attempt(TOKEN.into()).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    let served = monitor.take();
    let reads = served.iter().filter(|c| c.contains("DBSIZE")).count();
    assert_eq!(
        reads, 2,
        "only the two right tokens reached Redis: {served:?}"
    );

    let lines: Vec<Value> = logs
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["severity"] == "WARNING"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("admin token"))
        })
        .collect();
    assert_eq!(
        warnings.len(),
        8 + 5,
        "one warning per failure up to the lockout: {}",
        logs.text()
    );
    assert_eq!(warnings[12]["source"], "127.0.0.1");
    assert!(
        warnings[12]["message"]
            .as_str()
            .unwrap()
            .contains("locked out")
    );
    assert!(
        !logs.text().contains("guess-"),
        "a presented token reached the logs"
    );
}

#[test]
fn the_documented_example_token_is_refused_at_start() {
    let err = shared::Config::from_lookup(|n| {
        (n == "ADMIN_TOKEN").then(|| "change-me-to-a-long-random-token".to_owned())
    })
    .unwrap_err();
    assert_eq!(err.var, "ADMIN_TOKEN");
    assert!(!err.to_string().contains("change-me-to"), "{err}");
}
