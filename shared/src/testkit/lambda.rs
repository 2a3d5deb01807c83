//! An emulator of the AWS Lambda Runtime API (with the Extensions API and
//! the shutdown phase) and the events AWS delivers.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use super::FunctionProcess;

/// One answer a function gave the Lambda Runtime API.
#[derive(Debug, Clone)]
pub struct LambdaReply {
    /// The invocation it answers.
    pub request_id: String,
    /// `true` when posted to `/error` instead of `/response`.
    pub is_error: bool,
    /// The posted body (for HTTP events, the API Gateway response).
    pub body: serde_json::Value,
    /// How long after the invocation was queued the answer came.
    pub took: Duration,
}

impl LambdaReply {
    /// The answer's `statusCode` (0 when it has none).
    pub fn status(&self) -> u64 {
        self.body["statusCode"].as_u64().unwrap_or(0)
    }

    /// The answer's body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        self.body["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The value of response header `name` (lowercase), from `headers` or
    /// `multiValueHeaders`, whichever the answer's shape uses.
    pub fn header(&self, name: &str) -> Option<String> {
        let single = self.body["headers"][name].as_str();
        let multi = self.body["multiValueHeaders"][name][0].as_str();
        single.or(multi).map(str::to_owned)
    }
}

/// An extension registered with the emulator's Extensions API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredExtension {
    /// Its `Lambda-Extension-Name`.
    pub name: String,
    /// The events it subscribed to (`INVOKE`, `SHUTDOWN`).
    pub events: Vec<String>,
    /// Whether it has called `/event/next` (told Lambda it is ready).
    pub ready: bool,
}

/// How the emulator ended the function at shutdown (see
/// [`LambdaRuntimeApi::shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// SIGTERM, and the process exited within the grace period (its code).
    ExitedAfterSigterm(Option<i32>),
    /// SIGTERM, then SIGKILL when the grace period was over.
    KilledAfterGrace,
    /// No extension was registered: SIGKILL at once, as Lambda does.
    KilledWithoutSigterm,
}

#[derive(Default)]
struct RuntimeState {
    queue: VecDeque<Queued>,
    waiters: HashMap<String, (Instant, tokio::sync::oneshot::Sender<LambdaReply>)>,
    extensions: HashMap<String, RegisteredExtension>,
    /// Whether the runtime has asked for its first event (init is over:
    /// no extension may register after that).
    runtime_started: bool,
}

struct Queued {
    id: String,
    event: serde_json::Value,
    time_left: Duration,
}

/// An emulator of the AWS Lambda Runtime API (`/2018-06-01/runtime/...`)
/// and Extensions API (`/2020-01-01/extension/...`): point a function at it
/// with `AWS_LAMBDA_RUNTIME_API=<address>` and the real `lambda_http` loop in
/// the binary polls it for events and posts replies.
///
/// As Lambda does: every invocation carries its deadline
/// (`Lambda-Runtime-Deadline-Ms`, [`Self::invoke_with_time_left`]); an
/// extension may register only during init, before the runtime's first
/// `/next`; an extension that subscribed to no events waits in `/next`
/// until the end; and at shutdown ([`Self::shutdown`]) the runtime gets
/// SIGTERM only if an extension registered, then SIGKILL after the grace
/// period. [`Self::start_without_extensions`] emulates a Runtime API
/// without the Extensions API (its routes answer 404).
#[derive(Clone)]
pub struct LambdaRuntimeApi {
    address: SocketAddr,
    state: Arc<Mutex<RuntimeState>>,
    notify: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for LambdaRuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaRuntimeApi")
            .field("address", &self.address)
            .finish()
    }
}

/// The default time an invocation has ([`LambdaRuntimeApi::invoke`]).
pub const DEFAULT_TIME_LEFT: Duration = Duration::from_secs(30);

/// Lambda's shutdown grace period when only internal extensions are
/// registered: SIGKILL follows SIGTERM after it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

impl LambdaRuntimeApi {
    /// Starts the emulator, with the Extensions API, on a free port
    /// (inside a tokio runtime).
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// Starts the emulator without the Extensions API (its routes answer
    /// 404, as an older emulator's would).
    pub async fn start_without_extensions() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(extensions_api: bool) -> Self {
        use axum::extract::{Path as AxPath, State};
        use axum::http::{HeaderMap, HeaderValue, StatusCode};
        use axum::routing::{get, post};

        let api = Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            state: Arc::default(),
            notify: Arc::default(),
        };
        async fn next(State(api): State<LambdaRuntimeApi>) -> (HeaderMap, String) {
            loop {
                let notified = api.notify.notified();
                let item = {
                    let mut state = api.state.lock().unwrap();
                    state.runtime_started = true;
                    state.queue.pop_front()
                };
                if let Some(Queued {
                    id,
                    event,
                    time_left,
                }) = item
                {
                    let mut headers = HeaderMap::new();
                    let deadline = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .saturating_add(time_left)
                        .as_millis();
                    headers.insert(
                        "lambda-runtime-aws-request-id",
                        HeaderValue::from_str(&id).unwrap(),
                    );
                    headers.insert(
                        "lambda-runtime-deadline-ms",
                        HeaderValue::from(deadline as u64),
                    );
                    headers.insert(
                        "lambda-runtime-invoked-function-arn",
                        HeaderValue::from_static(
                            "arn:aws:lambda:us-east-1:123456789012:function:test",
                        ),
                    );
                    headers.insert(
                        "lambda-runtime-trace-id",
                        HeaderValue::from_static(
                            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                        ),
                    );
                    return (headers, event.to_string());
                }
                notified.await;
            }
        }
        fn reply(api: &LambdaRuntimeApi, id: String, is_error: bool, body: &str) {
            let body =
                serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned()));
            if let Some((queued, tx)) = api.state.lock().unwrap().waiters.remove(&id) {
                let _ = tx.send(LambdaReply {
                    request_id: id,
                    is_error,
                    body,
                    took: queued.elapsed(),
                });
            }
        }
        async fn response(
            State(api): State<LambdaRuntimeApi>,
            AxPath(id): AxPath<String>,
            body: String,
        ) -> &'static str {
            reply(&api, id, false, &body);
            "{}"
        }
        async fn error(
            State(api): State<LambdaRuntimeApi>,
            AxPath(id): AxPath<String>,
            body: String,
        ) -> &'static str {
            reply(&api, id, true, &body);
            "{}"
        }
        async fn register(
            State(api): State<LambdaRuntimeApi>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, HeaderMap, String) {
            let name = headers
                .get("lambda-extension-name")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let events: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| {
                    b["events"].as_array().map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default();
            let mut state = api.state.lock().unwrap();
            let refuse = |message: &str| {
                (
                    StatusCode::FORBIDDEN,
                    HeaderMap::new(),
                    serde_json::json!({"errorType": "Extension.InvalidRegistration", "errorMessage": message}).to_string(),
                )
            };
            if name.is_empty() {
                return refuse("Lambda-Extension-Name is required");
            }
            if state.runtime_started {
                return refuse("extensions register during init, before the runtime's first /next");
            }
            if state.extensions.values().any(|e| e.name == name) {
                return refuse("an extension of this name is registered already");
            }
            let id = format!("ext-{}", state.extensions.len() + 1);
            state.extensions.insert(
                id.clone(),
                RegisteredExtension {
                    name,
                    events,
                    ready: false,
                },
            );
            let mut out = HeaderMap::new();
            out.insert(
                "lambda-extension-identifier",
                HeaderValue::from_str(&id).unwrap(),
            );
            let body = serde_json::json!({
                "functionName": "test-function",
                "functionVersion": "$LATEST",
                "handler": "bootstrap"
            });
            (StatusCode::OK, out, body.to_string())
        }
        async fn extension_next(
            State(api): State<LambdaRuntimeApi>,
            headers: HeaderMap,
        ) -> StatusCode {
            let id = headers
                .get("lambda-extension-identifier")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            match api.state.lock().unwrap().extensions.get_mut(&id) {
                Some(extension) => extension.ready = true,
                None => return StatusCode::FORBIDDEN,
            }
            // No event is ever delivered to an extension here (this emulator
            // sends no INVOKE or SHUTDOWN events): the call waits until the
            // environment ends, as it does on Lambda for an extension that
            // subscribed to none.
            std::future::pending::<()>().await;
            StatusCode::OK
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let api = Self { address, ..api };
        let mut app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(|| async { "{}" }));
        if extensions_api {
            app = app
                .route("/2020-01-01/extension/register", post(register))
                .route("/2020-01-01/extension/event/next", get(extension_next))
                .route("/2020-01-01/extension/init/error", post(|| async { "{}" }))
                .route("/2020-01-01/extension/exit/error", post(|| async { "{}" }));
        }
        let app = app.with_state(api.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        api
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The extensions registered so far.
    pub fn extensions(&self) -> Vec<RegisteredExtension> {
        let mut all: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .extensions
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Queues `event` for the function with [`DEFAULT_TIME_LEFT`] and waits
    /// for its reply.
    pub async fn invoke(&self, event: serde_json::Value) -> LambdaReply {
        self.invoke_with_time_left(event, DEFAULT_TIME_LEFT).await
    }

    /// Queues `event` with `time_left` until its deadline
    /// (`Lambda-Runtime-Deadline-Ms`, counted from when the function takes
    /// it) and waits for the reply: up to `time_left` plus 5 s, then panics
    /// (a real Lambda would have ended the invocation with a timeout).
    pub async fn invoke_with_time_left(
        &self,
        event: serde_json::Value,
        time_left: Duration,
    ) -> LambdaReply {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "req-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.state.lock().unwrap();
            state.waiters.insert(id.clone(), (Instant::now(), tx));
            state.queue.push_back(Queued {
                id,
                event,
                time_left,
            });
        }
        self.notify.notify_waiters();
        tokio::time::timeout(time_left + Duration::from_secs(5), rx)
            .await
            .expect("the function did not answer the invocation in time")
            .expect("the emulator dropped the invocation")
    }

    /// The shutdown phase, as Lambda runs it when it reclaims an idle
    /// environment: SIGTERM to `function` if an extension registered, then
    /// SIGKILL if it has not exited after `grace` ([`SHUTDOWN_GRACE`] for
    /// internal extensions); without an extension, SIGKILL at once.
    pub fn shutdown(&self, function: &mut FunctionProcess, grace: Duration) -> ShutdownOutcome {
        let any_extension = !self.state.lock().unwrap().extensions.is_empty();
        if !any_extension {
            function.signal(Signal::SIGKILL);
            let _ = function.exited_within(Duration::from_secs(5));
            return ShutdownOutcome::KilledWithoutSigterm;
        }
        function.signal(Signal::SIGTERM);
        if let Some(code) = function.exited_within(grace) {
            return ShutdownOutcome::ExitedAfterSigterm(code);
        }
        function.signal(Signal::SIGKILL);
        let _ = function.exited_within(Duration::from_secs(5));
        ShutdownOutcome::KilledAfterGrace
    }
}

/// The environment the Lambda runtime expects, pointing at `api`.
pub fn lambda_env(api: &LambdaRuntimeApi) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", "test-function".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/23/[$LATEST]0123456789".into(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/test-function".into(),
        ),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// Request events as AWS delivers them to a function, in the shapes AWS
/// documents (compare the `aws_lambda_events` crate's fixtures): API Gateway
/// REST (v1, with a stage), HTTP API (v2, `$default` or a named stage),
/// Function URL and ALB (single- or multi-value headers).
pub mod lambda_events {
    use serde_json::{Map, Value, json};

    /// An HTTP API (API Gateway v2) event on the `$default` stage.
    pub fn apigw_v2(method: &str, path: &str, query: &str, body: Option<&str>) -> Value {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {
                "accept": "application/json",
                "content-type": "application/json",
                "host": "abc123.execute-api.us-east-1.amazonaws.com",
                "user-agent": "curl/8.5.0",
                "x-forwarded-proto": "https"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "curl/8.5.0"
                },
                "requestId": "apigw-v2-request",
                "routeKey": "$default",
                "stage": "$default",
                "time": "23/Nov/2026:18:51:00 +0000",
                "timeEpoch": 1_795_459_860_000_u64
            },
            "body": body,
            "isBase64Encoded": false
        })
    }

    /// An HTTP API (v2) event on the named stage `stage`: its `rawPath`
    /// (and `requestContext.http.path`) start with `/<stage>`, as AWS sends
    /// them; the route key is a greedy proxy route.
    pub fn apigw_v2_named_stage(
        stage: &str,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&str>,
    ) -> Value {
        let staged = format!("/{stage}{path}");
        let mut event = apigw_v2(method, &staged, query, body);
        event["routeKey"] = json!("ANY /{proxy+}");
        event["pathParameters"] = json!({ "proxy": path.trim_start_matches('/') });
        event["requestContext"]["routeKey"] = json!("ANY /{proxy+}");
        event["requestContext"]["stage"] = json!(stage);
        event
    }

    /// A Lambda Function URL event (the v2 payload, on a lambda-url domain).
    pub fn function_url(method: &str, path: &str, query: &str, body: Option<&str>) -> Value {
        let mut event = apigw_v2(method, path, query, body);
        event["headers"]["host"] = json!("xyz789.lambda-url.us-east-1.on.aws");
        event["requestContext"]["domainName"] = json!("xyz789.lambda-url.us-east-1.on.aws");
        event["requestContext"]["domainPrefix"] = json!("xyz789");
        event["requestContext"]["apiId"] = json!("xyz789");
        event["requestContext"]["requestId"] = json!("function-url-request");
        event
    }

    /// `event` (HTTP API or Function URL) as API Gateway's JWT authorizer
    /// passes it: the verified claims under `authorizer.jwt.claims`, every
    /// value a string (an array claim as `[a b]`, as API Gateway renders it).
    pub fn with_jwt_authorizer(mut event: Value, claims: &Value) -> Value {
        let strings: serde_json::Map<String, Value> = claims
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Array(items) => format!(
                                "[{}]",
                                items
                                    .iter()
                                    .map(|i| i
                                        .as_str()
                                        .map_or_else(|| i.to_string(), str::to_owned))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ),
                            other => other.to_string(),
                        };
                        (k.clone(), Value::String(text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        event["requestContext"]["authorizer"] =
            json!({ "jwt": { "claims": strings, "scopes": null } });
        event
    }

    /// `event` (HTTP API or Function URL) signed with SigV4 and checked by
    /// IAM: the caller under `authorizer.iam`.
    pub fn with_iam(mut event: Value, user_arn: &str) -> Value {
        event["requestContext"]["authorizer"] = json!({
            "iam": {
                "accessKey": "ASIAXXXXXXXXXXXXXXXX",
                "accountId": "123456789012",
                "callerId": "AROAXXXXXXXXXXXXXXXXX:session",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": user_arn,
                "userId": "AROAXXXXXXXXXXXXXXXXX:session"
            }
        });
        event
    }

    /// `event` (HTTP API) with a Lambda authorizer's context under
    /// `authorizer.lambda`.
    pub fn with_lambda_authorizer(mut event: Value, context: &Value) -> Value {
        event["requestContext"]["authorizer"] = json!({ "lambda": context });
        event
    }

    /// `event` (REST API) with a Cognito user-pool authorizer's claims under
    /// `authorizer.claims`.
    pub fn with_cognito_claims(mut event: Value, claims: &Value) -> Value {
        event["requestContext"]["authorizer"] = json!({ "claims": claims });
        event
    }

    /// `event` (REST API) with a Lambda authorizer's principal and context.
    pub fn with_rest_lambda_authorizer(
        mut event: Value,
        principal: &str,
        context: &Value,
    ) -> Value {
        let mut authorizer = context.clone();
        authorizer["principalId"] = json!(principal);
        event["requestContext"]["authorizer"] = authorizer;
        event
    }

    /// `event` (REST API) with IAM authorization: the caller in `identity`.
    pub fn with_rest_iam(mut event: Value, user_arn: &str) -> Value {
        let identity = &mut event["requestContext"]["identity"];
        identity["userArn"] = json!(user_arn);
        identity["caller"] = json!("AROAXXXXXXXXXXXXXXXXX:session");
        identity["accessKey"] = json!("ASIAXXXXXXXXXXXXXXXX");
        identity["accountId"] = json!("123456789012");
        event
    }

    /// A REST API (API Gateway v1) proxy event on stage `prod`.
    pub fn apigw_v1(method: &str, path: &str, body: Option<&str>) -> Value {
        apigw_v1_query(method, path, &[], body)
    }

    /// A REST API (v1) proxy event on stage `prod` with the query
    /// parameters `query` (decoded, as API Gateway sends them; a name given
    /// twice is multi-valued).
    pub fn apigw_v1_query(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> Value {
        let (single, multi) = query_maps(query);
        json!({
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Host": "abc123.execute-api.us-east-1.amazonaws.com",
                "User-Agent": "curl/8.5.0",
                "X-Forwarded-Proto": "https"
            },
            "multiValueHeaders": {
                "Accept": ["application/json"],
                "Content-Type": ["application/json"],
                "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
                "User-Agent": ["curl/8.5.0"],
                "X-Forwarded-Proto": ["https"]
            },
            "queryStringParameters": single,
            "multiValueQueryStringParameters": multi,
            "pathParameters": { "proxy": path.trim_start_matches('/') },
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "resourceId": "res123",
                "stage": "prod",
                "requestId": "apigw-v1-request",
                "identity": { "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0" },
                "resourcePath": "/{proxy+}",
                "httpMethod": method,
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "path": format!("/prod{path}"),
                "protocol": "HTTP/1.1",
                "requestTimeEpoch": 1_795_459_860_000_u64
            },
            "body": body,
            "isBase64Encoded": false
        })
    }

    /// An ALB target group event with single-value headers (the target
    /// group's default). `query` is as the client sent it (ALB does not
    /// decode it).
    pub fn alb(method: &str, path: &str, query: &[(&str, &str)], body: Option<&str>) -> Value {
        let (single, _) = query_maps(query);
        json!({
            "requestContext": {
                "elb": {
                    "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lambda-target/abcdefgh"
                }
            },
            "httpMethod": method,
            "path": path,
            "queryStringParameters": single.unwrap_or_else(|| json!({})),
            "headers": {
                "accept": "application/json",
                "content-type": "application/json",
                "host": "lambda-test-alb-1234567.us-east-1.elb.amazonaws.com",
                "user-agent": "curl/8.5.0",
                "x-amzn-trace-id": "Root=1-5c34e93e-4dea0086f9763ac0667b115a",
                "x-forwarded-for": "203.0.113.7",
                "x-forwarded-port": "443",
                "x-forwarded-proto": "https"
            },
            "body": body.unwrap_or_default(),
            "isBase64Encoded": false
        })
    }

    /// An ALB event from a target group with multi-value headers on:
    /// `multiValueHeaders` and `multiValueQueryStringParameters` instead of
    /// the single-value members.
    pub fn alb_multi_value(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> Value {
        let mut event = alb(method, path, query, body);
        let object = event.as_object_mut().expect("an object");
        let headers = object.remove("headers").unwrap_or_default();
        object.remove("queryStringParameters");
        let mut multi_headers = Map::new();
        for (name, value) in headers.as_object().into_iter().flatten() {
            multi_headers.insert(name.clone(), json!([value]));
        }
        object.insert("multiValueHeaders".into(), Value::Object(multi_headers));
        let (_, multi) = query_maps(query);
        object.insert(
            "multiValueQueryStringParameters".into(),
            multi.unwrap_or_else(|| json!({})),
        );
        event
    }

    /// `event` with `bytes` as its body, base64-encoded as AWS sends a
    /// binary body (`isBase64Encoded: true`).
    pub fn with_base64_body(mut event: Value, bytes: &[u8]) -> Value {
        use base64::Engine;
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        event["isBase64Encoded"] = json!(true);
        event
    }

    /// `event` with header `name` set to `value` in whichever header
    /// members it has.
    pub fn with_header(mut event: Value, name: &str, value: &str) -> Value {
        if event["headers"].is_object() {
            event["headers"][name] = json!(value);
        }
        if event["multiValueHeaders"].is_object() {
            event["multiValueHeaders"][name] = json!([value]);
        }
        event
    }

    /// The single- and multi-value query maps of `query` (`None` when empty).
    fn query_maps(query: &[(&str, &str)]) -> (Option<Value>, Option<Value>) {
        if query.is_empty() {
            return (None, None);
        }
        let mut single = Map::new();
        let mut multi = Map::new();
        for (name, value) in query {
            single.insert((*name).to_owned(), json!(value));
            multi
                .entry((*name).to_owned())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("an array")
                .push(json!(value));
        }
        (Some(Value::Object(single)), Some(Value::Object(multi)))
    }
}
