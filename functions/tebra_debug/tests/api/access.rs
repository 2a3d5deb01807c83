//! Admin access: a bearer token on every data route, `401` without the right
//! one, `404` for everything (dashboard included) when `ADMIN_TOKEN` is unset.

use shared::testkit::RedisServer;

use crate::{TOKEN, assert_error, ctx_for, get, get_from};

const DATA_ROUTES: [&str; 4] = [
    "/debug/redis",
    "/admin/redis-metrics",
    "/debug/config",
    "/debug/keys?workspace=acme",
];
const PAGE_ROUTES: [&str; 3] = [
    "/debug",
    "/debug/assets/dashboard.js",
    "/debug/assets/dashboard.css",
];

#[tokio::test]
async fn data_routes_answer_401_without_the_right_bearer_token() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    let wrong = [
        None,
        Some("wrong-token-0123456789"),
        Some(&TOKEN[..TOKEN.len() - 1]),
        Some("test-admin-token-01234567890"),
        Some(""),
    ];
    for uri in DATA_ROUTES {
        for token in wrong {
            let reply = get(&app, uri, token).await;
            assert_error(&reply, 401, "unauthorized");
            assert_eq!(reply.headers["www-authenticate"], "Bearer", "{uri}");
        }
        // Another scheme, or the token without a scheme.
        for (i, header) in [format!("Basic {TOKEN}"), TOKEN.to_owned()]
            .into_iter()
            .enumerate()
        {
            let source = std::net::SocketAddr::from(([192, 0, 2, uri.len() as u8], i as u16));
            let request = axum::http::Request::get(uri)
                .extension(axum::extract::ConnectInfo(source))
                .header("authorization", header)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = tower::ServiceExt::oneshot(app.clone(), request)
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{uri}");
        }
        let reply = get(&app, uri, Some(TOKEN)).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.text);
    }
}

#[tokio::test]
async fn wrong_tokens_from_one_address_lock_it_out_and_reach_nothing() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    let attacker = std::net::SocketAddr::from(([203, 0, 113, 7], 50_000));
    let mut statuses = Vec::new();
    for i in 0..50 {
        let uri = DATA_ROUTES[i % DATA_ROUTES.len()];
        let reply = get_from(
            &app,
            uri,
            Some(&format!("guess-{i:03}-abcdefghij")),
            attacker,
        )
        .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let locked = get_from(&app, "/debug/config", Some(TOKEN), attacker).await;
    assert_error(&locked, 429, "rate_limited");
    assert!(locked.headers.contains_key("retry-after"));
    assert_eq!(ctx.redis.metrics().operations, 0, "nothing reached Redis");
    // Another address is not locked out.
    let reply = get(&app, "/debug/config", Some(TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn every_route_answers_404_when_the_token_is_unset() {
    let server = RedisServer::start();
    let ctx = ctx_for(&server, &[]);
    assert!(ctx.config.admin_token.is_none());
    let app = tebra_debug::app(ctx.clone());
    for uri in DATA_ROUTES.iter().chain(PAGE_ROUTES.iter()) {
        for token in [None, Some(TOKEN), Some("")] {
            let reply = get(&app, uri, token).await;
            assert_error(&reply, 404, "not_found");
        }
    }
    assert_eq!(ctx.redis.metrics().operations, 0, "nothing reached Redis");
}

#[tokio::test]
async fn the_dashboard_shell_holds_no_data_and_only_loads_its_own_files() {
    let server = RedisServer::builder()
        .password("pw-dashboard-shell-5")
        .start();
    let ctx = ctx_for(&server, &[("ADMIN_TOKEN", TOKEN)]);
    let app = tebra_debug::app(ctx.clone());
    for (uri, content_type) in [
        ("/debug", "text/html; charset=utf-8"),
        (
            "/debug/assets/dashboard.js",
            "text/javascript; charset=utf-8",
        ),
        ("/debug/assets/dashboard.css", "text/css; charset=utf-8"),
    ] {
        // A browser navigating to the page sends no bearer header.
        let reply = get(&app, uri, None).await;
        assert_eq!(reply.status, 200, "{uri}");
        assert_eq!(reply.headers["content-type"], content_type);
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        let everything = reply.everything();
        for secret in [TOKEN, "pw-dashboard-shell-5", &server.port().to_string()] {
            assert!(!everything.contains(secret), "{uri} holds {secret}");
        }
        // No external script, style, font or image: the page works offline.
        // (The one URL in the script is the SVG namespace, an identifier.)
        let urls = reply
            .text
            .replace("http://www.w3.org/2000/svg", "")
            .matches("http")
            .count();
        assert_eq!(urls, 0, "{uri} refers to another origin");
    }
    let page = get(&app, "/debug", None).await.text;
    assert!(page.contains("src=\"debug/assets/dashboard.js\""));
    assert!(page.contains("href=\"debug/assets/dashboard.css\""));
    let script = get(&app, "/debug/assets/dashboard.js", None).await.text;
    assert!(!script.contains("localStorage") && !script.contains("sessionStorage"));
    assert!(!script.contains("document.cookie"));
    assert_eq!(ctx.redis.metrics().operations, 0, "the shell reads no data");
}

/// With users authenticated by JWT (`AUTH_MODE=jwt`), a user's token, valid
/// or forged, opens no admin route; the open routes (`/status`, the probes,
/// the dashboard's shell) answer anyone and say nothing about any tenant;
/// every `2xx` is `no-store` and `nosniff`.
#[tokio::test]
async fn user_tokens_open_no_admin_route_and_the_open_routes_reveal_no_tenant() {
    let server = RedisServer::start();
    redis::cmd("HSET")
        .arg("ws:{clinic-1}:patients")
        .arg(&["p1", "h1"])
        .exec(&mut server.admin())
        .unwrap();
    let idp = shared::testkit::TestIdp::start().await;
    let mut vars: Vec<(&str, String)> = idp.env();
    vars.push(("ADMIN_TOKEN", TOKEN.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = tebra_debug::app(ctx_for(&server, &vars));
    let mut credentials: Vec<Option<String>> = idp
        .bad_credentials("clinic-1")
        .into_iter()
        .map(|c| c.authorization)
        .collect();
    credentials.push(Some(idp.bearer(&["clinic-1"])));
    credentials.push(Some(idp.bearer(&["*"])));
    for uri in DATA_ROUTES {
        for credential in &credentials {
            let source = std::net::SocketAddr::from(([198, 51, 100, 1], 1));
            let mut request =
                axum::http::Request::get(uri).extension(axum::extract::ConnectInfo(source));
            if let Some(value) = credential {
                request = request.header("authorization", value);
            }
            // A fresh router per attempt: the throttle is not what refuses here.
            let app = tebra_debug::app(ctx_for(&server, &vars));
            let response =
                tower::ServiceExt::oneshot(app, request.body(axum::body::Body::empty()).unwrap())
                    .await
                    .unwrap();
            assert_eq!(response.status(), 401, "{uri} with {credential:?}");
        }
    }
    for uri in ["/status", "/healthz", "/redis-health"]
        .into_iter()
        .chain(PAGE_ROUTES)
    {
        for credential in [None, Some(idp.token(&["clinic-1"]))] {
            let reply = get(&app, uri, credential.as_deref()).await;
            assert_eq!(reply.status, 200, "{uri}: {}", reply.text);
            assert_eq!(reply.headers["cache-control"], "no-store", "{uri}");
            assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{uri}");
            assert!(
                !reply.text.contains("clinic-1") && !reply.text.contains("patients"),
                "{uri}: {}",
                reply.text
            );
        }
    }
}
