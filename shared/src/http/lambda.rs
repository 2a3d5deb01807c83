//! AWS Lambda: the execution environment's lifecycle and the request events.
//!
//! - **Events.** [`LambdaHandler`] is what [`crate::serve()`] hands to the
//!   Lambda runtime: `lambda_http`'s own adapter (event to `http::Request`,
//!   response to the event's answer shape) around the router, with two
//!   things added. Before the conversion, `prepare` makes every event
//!   `lambda_http` can parse convertible: characters a URI cannot carry
//!   (a raw `"` in a query string) are percent-encoded, a `Host` or
//!   `X-Forwarded-Proto` that is no authority or scheme is dropped, and an
//!   event that still cannot become a request (a body that is not base64,
//!   a URI too long for `http`) is answered `400`/`414` JSON in the
//!   event's shape; `lambda_http` itself would panic, and the runtime
//!   would report an invocation error (a `502` at the API). After it,
//!   [`for_lambda`] routes on the path the caller used (no stage).
//! - **Stages.** `lambda_http` puts a REST API's stage in front of the path
//!   (`/prod/healthz`) unless `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set,
//!   and leaves an HTTP API's named stage in it (its `rawPath` is
//!   `/prod/healthz`). What it offers for this is the raw path
//!   ([`lambda_http::RequestExt::raw_http_path`]): a REST API's `path`
//!   without the stage, an HTTP API's `rawPath`, an ALB's `path`. Routing
//!   uses it, less an HTTP API's named stage (the request context's
//!   `stage`), so the setting is not needed (a process cannot set it for
//!   itself: `set_var` is unsafe code) and does no harm when set.
//! - **Shutdown.** Lambda sends SIGTERM (and waits up to 500 ms before
//!   SIGKILL) only to a runtime that registered an extension.
//!   [`register_extension`] registers an internal one for no events during
//!   init, before the runtime's first `/next`, and keeps its `/next` call
//!   pending as Lambda requires; the metrics reporter's SIGTERM path then
//!   writes the last line ([`crate::telemetry::MetricsReporter::spawn_timer`]).
//!   `lambda_runtime`'s `spawn_graceful_shutdown_handler` (feature
//!   `graceful-shutdown`) does the same registration and was studied first;
//!   it is not used because it panics where no Extensions API answers
//!   (emulators; this must keep serving), writes plain-text lines to
//!   stderr next to our JSON ones, and brings the `lambda-extension` crate
//!   (and chrono) for two HTTP calls. The calls go through
//!   `lambda_runtime_api_client`, the client the runtime itself uses.

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use lambda_http::aws_lambda_events::alb::AlbTargetGroupResponse;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::aws_lambda_events::encodings::Body as EventBody;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Adapter, RequestExt, Service};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;
use tower::util::MapRequest;

/// The name of the internal extension [`register_extension`] registers.
pub const EXTENSION_NAME: &str = "redis-functions-shutdown-flush";

/// The longest a request URI may be (path and query). `http` refuses URIs
/// of 64 KiB and more; API Gateway and ALB refuse far shorter ones.
const MAX_URI_BYTES: usize = 32 * 1024;

/// Bytes a URI query cannot carry raw (RFC 3986 `query`: unreserved,
/// sub-delims, `:`, `@`, `/`, `?`; `%` is left alone, as an escape).
/// Everything above ASCII is encoded too.
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');
/// Bytes a URI path cannot carry raw: the query's, and `?`.
const PATH: &AsciiSet = &QUERY.add(b'?');

/// The router as it runs on Lambda: routed on the path the caller used
/// (see the module documentation), so a function answers at the same paths
/// behind a REST API stage, an HTTP API (`$default` or a named stage), a
/// Function URL or an ALB, and as a server.
pub fn for_lambda(app: Router) -> ForLambda {
    tower::ServiceExt::map_request(app, route_on_raw_path as fn(_) -> _)
}

/// The router of [`for_lambda`].
pub type ForLambda = MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request>;

/// The path to route on: the raw path, less an HTTP API's named stage.
fn routing_path(req: &lambda_http::Request) -> &str {
    let raw = req.raw_http_path();
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(stage) = ctx.stage.as_deref()
        && stage != "$default"
        && let Some(rest) = raw.strip_prefix('/').and_then(|r| r.strip_prefix(stage))
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return if rest.is_empty() { "/" } else { rest };
    }
    raw
}

fn route_on_raw_path(mut req: lambda_http::Request) -> lambda_http::Request {
    let path = routing_path(&req);
    if path.is_empty() || path == req.uri().path() {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse::<axum::http::uri::PathAndQuery>() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// What [`LambdaHandler`] answers: the router's answer in the event's shape
/// (`lambda_http`'s own), or the rejection of an event that could not
/// become a request.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LambdaAnswer<R> {
    /// The router's response, as `lambda_http` shapes it.
    Routed(R),
    /// A REST API's answer to an event refused before routing.
    RejectedV1(ApiGatewayProxyResponse),
    /// An HTTP API's or Function URL's answer to an event refused before routing.
    RejectedV2(ApiGatewayV2httpResponse),
    /// An ALB's answer to an event refused before routing.
    RejectedAlb(AlbTargetGroupResponse),
}

type Routed =
    <Adapter<'static, Response, ForLambda> as Service<LambdaEvent<LambdaRequest>>>::Response;

/// The Lambda handler [`crate::serve()`] runs (see the module
/// documentation): takes the event as the runtime parsed it, returns the
/// answer it posts. Never fails and never panics on an event's content.
#[derive(Clone)]
pub struct LambdaHandler {
    adapter: Adapter<'static, Response, ForLambda>,
}

impl std::fmt::Debug for LambdaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaHandler").finish_non_exhaustive()
    }
}

impl LambdaHandler {
    /// The handler for `app` (a function's finished router).
    pub fn new(app: Router) -> Self {
        Self {
            adapter: Adapter::from(for_lambda(app)),
        }
    }
}

impl Service<LambdaEvent<LambdaRequest>> for LambdaHandler {
    type Response = LambdaAnswer<Routed>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.adapter.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        let LambdaEvent {
            mut payload,
            context,
        } = event;
        match prepare(&mut payload) {
            Ok(()) => {
                let routed = self.adapter.call(LambdaEvent::new(payload, context));
                Box::pin(async move { routed.await.map(LambdaAnswer::Routed) })
            }
            Err(rejection) => {
                tracing::info!(
                    status = rejection.status,
                    error.code = rejection.code,
                    request_id = %context.request_id,
                    "request rejected"
                );
                Box::pin(std::future::ready(Ok(rejection.answer(&payload))))
            }
        }
    }
}

/// Why an event cannot become a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rejection {
    status: u16,
    code: &'static str,
    message: &'static str,
}

const BAD_BASE64: Rejection = Rejection {
    status: 400,
    code: "invalid_body",
    message: "the request body is marked base64 but is not valid base64",
};

const URI_TOO_LONG: Rejection = Rejection {
    status: 414,
    code: "uri_too_long",
    message: "the request's path and query are too long",
};

impl Rejection {
    /// The JSON error body ([`crate::ApiError`]'s shape) in the event's
    /// shape (no body for a `HEAD`).
    fn answer<R>(self, event: &LambdaRequest) -> LambdaAnswer<R> {
        let head = match event {
            LambdaRequest::ApiGatewayV1(ag) => ag.http_method == Method::HEAD,
            LambdaRequest::ApiGatewayV2(ag) => ag.request_context.http.method == Method::HEAD,
            LambdaRequest::Alb(alb) => alb.http_method == Method::HEAD,
            _ => false,
        };
        let body = (!head).then(|| {
            EventBody::Text(
                serde_json::json!({
                    "error": { "code": self.code, "message": self.message }
                })
                .to_string(),
            )
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let status = i64::from(self.status);
        match event {
            LambdaRequest::ApiGatewayV2(_) => {
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = body;
                LambdaAnswer::RejectedV2(r)
            }
            LambdaRequest::Alb(_) => {
                let mut r = AlbTargetGroupResponse::default();
                r.status_code = status;
                r.status_description = Some(format!(
                    "{} {}",
                    self.status,
                    if self.status == 414 {
                        "URI Too Long"
                    } else {
                        "Bad Request"
                    }
                ));
                r.headers = headers.clone();
                r.multi_value_headers = headers;
                r.body = body;
                LambdaAnswer::RejectedAlb(r)
            }
            // A REST API event, and any shape this build does not parse.
            _ => {
                let mut r = ApiGatewayProxyResponse::default();
                r.status_code = status;
                r.multi_value_headers = headers;
                r.body = body;
                LambdaAnswer::RejectedV1(r)
            }
        }
    }
}

/// Makes `event` convertible by `lambda_http` without a panic (see the
/// module documentation), or says why it cannot be.
fn prepare(event: &mut LambdaRequest) -> Result<(), Rejection> {
    match event {
        LambdaRequest::ApiGatewayV1(ag) => {
            let path = uri_path(ag.path.as_deref());
            let query = query_len(
                &ag.multi_value_query_string_parameters,
                &ag.query_string_parameters,
            );
            check_length(&path, query)?;
            ag.path = Some(path);
            keep_plain_stage(&mut ag.request_context.stage);
            keep_plain_authority(&mut ag.headers, &mut ag.request_context.domain_name);
            check_body(ag.is_base64_encoded, ag.body.as_deref())
        }
        LambdaRequest::ApiGatewayV2(ag) => {
            let path = uri_path(ag.raw_path.as_deref());
            let query = ag
                .raw_query_string
                .as_deref()
                .map(|q| utf8_percent_encode(q, QUERY).to_string());
            check_length(&path, query.as_ref().map_or(0, String::len))?;
            ag.raw_path = Some(path);
            ag.raw_query_string = query;
            keep_plain_stage(&mut ag.request_context.stage);
            keep_plain_authority(&mut ag.headers, &mut ag.request_context.domain_name);
            check_body(ag.is_base64_encoded, ag.body.as_deref())
        }
        LambdaRequest::Alb(alb) => {
            let path = uri_path(alb.path.as_deref());
            let query = query_len(
                &alb.multi_value_query_string_parameters,
                &alb.query_string_parameters,
            );
            check_length(&path, query)?;
            alb.path = Some(path);
            keep_plain_authority(&mut alb.headers, &mut None);
            check_body(alb.is_base64_encoded, alb.body.as_deref())
        }
        // Shapes this build of lambda_http does not parse (features off).
        _ => Ok(()),
    }
}

/// A path that starts with `/` and carries no character a URI path cannot.
fn uri_path(path: Option<&str>) -> String {
    let path = path.unwrap_or_default();
    let encoded = utf8_percent_encode(path, PATH).to_string();
    if encoded.starts_with('/') {
        encoded
    } else {
        format!("/{encoded}")
    }
}

/// An upper bound of the query `lambda_http` builds from decoded
/// parameters (encoding at most triples a byte).
fn query_len(multi: &QueryMap, single: &QueryMap) -> usize {
    let used = if multi.is_empty() { single } else { multi };
    used.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum()
}

fn check_length(path: &str, query: usize) -> Result<(), Rejection> {
    if path.len() + query > MAX_URI_BYTES {
        Err(URI_TOO_LONG)
    } else {
        Ok(())
    }
}

fn check_body(base64: bool, body: Option<&str>) -> Result<(), Rejection> {
    use base64::Engine;
    match body {
        Some(body) if base64 => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|_| ())
            .map_err(|_| BAD_BASE64),
        _ => Ok(()),
    }
}

/// A stage name as API Gateway allows them (letters, digits, `-`, `_`,
/// and `$default`); anything else is dropped, so it cannot reshape the URI.
fn keep_plain_stage(stage: &mut Option<String>) {
    if stage.as_deref().is_some_and(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_$".contains(&b))
    }) {
        *stage = None;
    }
}

/// Drops a `Host` (or domain name) that is no plain authority and an
/// `X-Forwarded-Proto` that is neither `http` nor `https`: `lambda_http`
/// builds the request URI from them and panics when that fails. The router
/// does not read either.
fn keep_plain_authority(headers: &mut HeaderMap, domain: &mut Option<String>) {
    if headers
        .get("x-forwarded-proto")
        .is_some_and(|v| !(v == "http" || v == "https"))
    {
        headers.remove("x-forwarded-proto");
    }
    if headers
        .get(header::HOST)
        .is_some_and(|v| !v.to_str().is_ok_and(is_plain_authority))
    {
        headers.remove(header::HOST);
    }
    if domain.as_deref().is_some_and(|d| !is_plain_authority(d)) {
        *domain = None;
    }
}

/// A host name or address with an optional port, as both `url` and `http`
/// accept it.
fn is_plain_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && host.parse::<axum::http::uri::Authority>().is_ok()
        && url::Url::parse(&format!("https://{host}/")).is_ok()
}

/// Registers the internal extension (see the module documentation) with
/// the Extensions API at `runtime_api` (`AWS_LAMBDA_RUNTIME_API`), and
/// keeps its `/next` call pending on a task. Call during init, before the
/// runtime's first `/next`. Returns whether Lambda will now send SIGTERM
/// before it ends the environment; `false` (logged) where no Extensions
/// API answers within 2 s, which leaves serving unaffected.
pub async fn register_extension(runtime_api: &str) -> bool {
    use lambda_runtime_api_client::body::Body;

    // Lambda sets `host:port`; some emulators a full URL with a base path
    // (`cargo lambda watch`: `http://127.0.0.1:9000/.rt/<function>`).
    let base = if runtime_api.contains("://") {
        runtime_api.to_owned()
    } else {
        format!("http://{runtime_api}")
    };
    let Ok(endpoint) = base.parse::<axum::http::Uri>() else {
        return false;
    };
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(endpoint)
        .build();
    let request = axum::http::Request::post("/2020-01-01/extension/register")
        .header("Lambda-Extension-Name", EXTENSION_NAME)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"events":[]}"#));
    let Ok(request) = request else {
        return false;
    };
    let registered = tokio::time::timeout(Duration::from_secs(2), client.call(request)).await;
    let id = match registered {
        Ok(Ok(response)) if response.status().is_success() => response
            .headers()
            .get("Lambda-Extension-Identifier")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        Ok(Ok(response)) => {
            tracing::info!(
                status = response.status().as_u16(),
                "no Lambda Extensions API here; the metrics line is written per interval and on errors only"
            );
            None
        }
        Ok(Err(_)) | Err(_) => {
            tracing::info!(
                "the Lambda Extensions API did not answer; the metrics line is written per interval and on errors only"
            );
            None
        }
    };
    let Some(id) = id else {
        return false;
    };
    tracing::debug!(extension = EXTENSION_NAME, "Lambda extension registered");
    tokio::spawn(async move {
        // Registered for no events: the call stays pending until the
        // environment ends. Lambda's init waits for it to be made.
        loop {
            let next = axum::http::Request::get("/2020-01-01/extension/event/next")
                .header("Lambda-Extension-Identifier", id.as_str())
                .body(Body::empty());
            let Ok(next) = next else { return };
            match client.call(next).await {
                Ok(response) if response.status().is_success() => {
                    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                }
                _ => return,
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_lose_only_what_a_uri_cannot_carry() {
        assert_eq!(uri_path(Some("/a/b-c_d.e~f")), "/a/b-c_d.e~f");
        assert_eq!(uri_path(Some("a b")), "/a%20b");
        assert_eq!(uri_path(Some("/x?y#z")), "/x%3Fy%23z");
        assert_eq!(uri_path(None), "/");
        assert_eq!(uri_path(Some("/%41")), "/%41", "escapes stay escapes");
        let query = utf8_percent_encode(r#"query="paris"&q=<é>"#, QUERY).to_string();
        assert_eq!(query, "query=%22paris%22&q=%3C%C3%A9%3E");
        assert!(format!("/x?{query}").parse::<axum::http::Uri>().is_ok());
    }

    #[test]
    fn only_plain_authorities_are_kept() {
        for ok in ["example.com", "a.b-c.example:8443", "127.0.0.1", "[::1]:80"] {
            assert!(is_plain_authority(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "x@y", "a:99999", "exa\"mple", "ü.example"] {
            assert!(!is_plain_authority(bad), "{bad}");
        }
    }
}
