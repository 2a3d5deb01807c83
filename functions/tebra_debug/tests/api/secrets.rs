//! The Redis password (and the admin token) never reach a response or a log
//! line: every route, every error path (wrong token, bad parameters, Redis
//! stopped, paused, or refusing the password), logs captured at debug level.

use std::time::Duration;

use shared::config::LogFormat;
use shared::testkit::{CapturedLogs, FunctionProcess, RedisServer};

use crate::{BIN, Reply, TOKEN, ctx_for, ctx_for_url, get};

const PASSWORD: &str = "pw-Zq8-correct-horse-battery";
const WRONG_PASSWORD: &str = "pw-Xy7-wrong-staple-battery";

/// Every route, with good and bad parameters.
const URIS: [&str; 16] = [
    "/debug/redis",
    "/debug/redis?probe=3",
    "/debug/redis?probe=1000",
    "/admin/redis-metrics",
    "/debug/config",
    "/debug/keys?workspace=acme",
    "/debug/keys?workspace=acme&pattern=patient:*&limit=10",
    "/debug/keys?workspace=a:*",
    "/debug/keys?workspace=acme&limit=0",
    "/debug/keys?nope=1",
    "/debug",
    "/debug/assets/dashboard.js",
    "/redis-health",
    "/healthz",
    "/status",
    "/no-such-route",
];

async fn hit_everything(app: &axum::Router, seen: &mut Vec<Reply>) {
    for token in [Some(TOKEN), None, Some("wrong-token-abcdefghij")] {
        for uri in URIS {
            seen.push(get(app, uri, token).await);
        }
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
    }
    // Not even a recognisable part of it.
    assert!(!text.contains("correct-horse"), "{what}");
    assert!(!text.contains("wrong-staple"), "{what}");
}

#[tokio::test]
async fn the_redis_password_never_appears_in_any_response_or_log_line() {
    let logs = CapturedLogs::default();
    shared::telemetry::init_with_writer("tebra_debug", LogFormat::Json, "debug", logs.clone());
    let mut server = RedisServer::builder().password(PASSWORD).start();
    redis::cmd("SET")
        .arg("ws:{acme}:patient:1")
        .arg("x")
        .exec(&mut server.admin())
        .unwrap();
    let mut seen = Vec::new();

    // A healthy server.
    let app = tebra_debug::app(ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]));
    hit_everything(&app, &mut seen).await;

    // A paused server: deadlines expire.
    let paused_app = tebra_debug::app(ctx_for(
        &server,
        &[("ADMIN_TOKEN", TOKEN), ("REDIS_COMMAND_TIMEOUT_MS", "200")],
    ));
    get(&paused_app, "/healthz", None).await;
    server.pause();
    for uri in [
        "/debug/redis",
        "/debug/keys?workspace=acme",
        "/redis-health",
    ] {
        seen.push(get(&paused_app, uri, Some(TOKEN)).await);
    }
    server.resume();

    // A server that refuses the password.
    let wrong = format!("redis://:{WRONG_PASSWORD}@127.0.0.1:{}", server.port());
    let wrong_app = tebra_debug::app(ctx_for_url(&wrong, &[("ADMIN_TOKEN", TOKEN)]));
    hit_everything(&wrong_app, &mut seen).await;

    // A stopped server.
    server.stop();
    hit_everything(&app, &mut seen).await;

    let statuses: std::collections::BTreeSet<u16> =
        seen.iter().map(|r| r.status.as_u16()).collect();
    for status in [200, 400, 401, 404, 503] {
        assert!(statuses.contains(&status), "no {status} among {statuses:?}");
    }
    for reply in &seen {
        assert_clean("a response", &reply.everything());
    }
    // The target is shown, the password is not.
    let config = seen
        .iter()
        .find(|r| r.text.contains("\"redis_target\""))
        .unwrap();
    assert!(
        config.text.contains("redis://:***@127.0.0.1"),
        "{}",
        config.text
    );
    assert!(
        config.text.contains("\"password\":\"[redacted]\""),
        "{}",
        config.text
    );
    assert!(
        config.text.contains("\"admin_token\":\"[redacted]\""),
        "{}",
        config.text
    );

    let text = logs.text();
    assert_clean("the logs", &text);
    // The capture saw the error paths it claims to cover.
    assert!(text.contains("request rejected"), "{text}");
    assert!(text.contains(r#""error.kind":"auth""#), "{text}");
    assert!(text.contains(r#""error.kind":"connect""#), "{text}");
    assert!(text.contains(r#""error.kind":"timeout""#), "{text}");
    assert!(text.contains("debug keys listed"), "{text}");
}

#[tokio::test]
async fn the_function_process_never_logs_the_password() {
    let mut server = RedisServer::builder().password(PASSWORD).start();
    let url = server.url();
    let mut f = FunctionProcess::spawn(
        BIN,
        &[
            ("REDIS_URL", &url),
            ("ADMIN_TOKEN", TOKEN),
            ("LOG_LEVEL", "debug"),
        ],
    );
    f.wait_ready(Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let mut bodies = String::new();
    let fetch_all = async |bodies: &mut String| {
        for uri in URIS {
            for token in [Some(TOKEN), None] {
                let mut request = http.get(format!("{}{uri}", f.base_url()));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                bodies.push_str(&format!("{:?}", response.headers()));
                bodies.push_str(&response.text().await.unwrap());
            }
        }
    };
    fetch_all(&mut bodies).await;
    server.stop();
    fetch_all(&mut bodies).await;
    assert!(f.is_running());
    let output = f.output();
    assert!(output.contains("tebra_debug starting"), "{output}");
    assert!(output.contains("redis://:***@127.0.0.1"), "{output}");
    assert_clean("the process output", &output);
    assert_clean("the responses", &bodies);
}
