//! The access checks of every tenant route, shared by the functions' tests:
//! with `AUTH_MODE=jwt` against a [`TestIdp`], every bad credential is
//! `401` with `WWW-Authenticate`, a valid token for another tenant is `403`,
//! Redis receives no command for any of them ([`RedisMonitor`]), and a
//! valid token for the route's tenant is `2xx` with `Cache-Control:
//! no-store` and `X-Content-Type-Options: nosniff`.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{RedisMonitor, TestIdp};

/// One request to a tenant route.
#[derive(Debug, Clone)]
pub struct RouteCall {
    /// The method.
    pub method: Method,
    /// The path and query, naming the tenant.
    pub path: String,
    /// A JSON body, if any.
    pub body: Option<Value>,
    /// Whether the valid request must reach Redis (it proves the monitor
    /// would have seen a refused one that did).
    pub touches_redis: bool,
}

impl RouteCall {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path, Some(body))
    }

    /// `POST path` without a body.
    pub fn post_empty(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path, None)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, None)
    }

    fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            path: path.into(),
            body,
            touches_redis: true,
        }
    }

    /// This request, authorized by `authorization` (if any).
    pub fn request(&self, authorization: Option<&str>) -> Request<Body> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.path);
        if let Some(auth) = authorization {
            req = req.header(header::AUTHORIZATION, auth);
        }
        match &self.body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        }
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: axum::http::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// Sends `req` to `app`.
pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Panics unless `answer` is a `2xx` that no cache may keep or sniff.
pub fn assert_private_success(answer: &Answer, what: &str) {
    assert!(
        answer.status.is_success(),
        "{what}: {} {}",
        answer.status,
        answer.text
    );
    assert_eq!(
        answer
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{what}: Cache-Control"
    );
    assert_eq!(
        answer
            .headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what}: X-Content-Type-Options"
    );
}

/// Runs the access checks of the module documentation on each call in
/// order (so a call may rely on the ones before it having succeeded).
/// `tenant` is the tenant the calls name; `other` one they do not.
pub async fn assert_tenant_routes_guarded(
    app: &Router,
    monitor: &RedisMonitor,
    idp: &TestIdp,
    tenant: &str,
    other: &str,
    calls: &[RouteCall],
) {
    let bad = idp.bad_credentials(tenant);
    let other_tenant = idp.bearer(&[other]);
    let no_tenant = idp.bearer(&[]);
    let valid = idp.bearer(&[tenant]);
    // The function connects to Redis on its first use: let that happen,
    // so that a refused request reaching Redis would show as commands.
    let _ = monitor.take();
    for call in calls {
        let what = format!("{} {}", call.method, call.path);
        for credential in &bad {
            let answer = send(app, call.request(credential.authorization.as_deref())).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{what} with {}: {}",
                credential.name,
                answer.text
            );
            let challenge = answer
                .headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{what} with {}: WWW-Authenticate {challenge:?}",
                credential.name
            );
            assert_eq!(answer.json()["error"]["code"], "unauthorized", "{what}");
            if let Some(auth) = &credential.authorization {
                let token = auth.rsplit(' ').next().unwrap_or_default();
                assert!(
                    token.len() < 8 || !answer.text.contains(token),
                    "{what}: the answer quotes the credential"
                );
            }
        }
        for (name, auth) in [
            ("another tenant's token", &other_tenant),
            ("a token without tenants", &no_tenant),
        ] {
            let answer = send(app, call.request(Some(auth))).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{what} with {name}: {}",
                answer.text
            );
            assert_eq!(answer.json()["error"]["code"], "forbidden", "{what}");
            assert!(
                !answer.text.contains(tenant),
                "{what}: the 403 names the tenant"
            );
        }
        monitor.assert_nothing(&format!("{what}, refused"));
        let answer = send(app, call.request(Some(&valid))).await;
        assert_private_success(&answer, &what);
        if call.touches_redis {
            assert!(
                !monitor.take().is_empty(),
                "{what}: the valid request did not reach Redis; the monitor proves nothing"
            );
        }
    }
}

/// `app` with `Authorization: authorization` added to every request that
/// has none: a test's calls carry a credential without each building the
/// header. The header reaches the authentication layer like any other.
pub fn with_authorization(app: Router, authorization: &str) -> Router {
    let value = axum::http::HeaderValue::from_str(authorization).expect("a header value");
    app.layer(axum::middleware::map_request(
        move |mut req: Request<Body>| {
            let value = value.clone();
            async move {
                req.headers_mut()
                    .entry(header::AUTHORIZATION)
                    .or_insert(value);
                req
            }
        },
    ))
}
