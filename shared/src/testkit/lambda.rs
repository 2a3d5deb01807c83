//! An emulator of the AWS Lambda Runtime API and the events AWS delivers.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One answer a function gave the Lambda Runtime API.
#[derive(Debug, Clone)]
pub struct LambdaReply {
    /// The invocation it answers.
    pub request_id: String,
    /// `true` when posted to `/error` instead of `/response`.
    pub is_error: bool,
    /// The posted body (for HTTP events, the API Gateway response).
    pub body: serde_json::Value,
}

#[derive(Default)]
struct RuntimeState {
    queue: VecDeque<(String, serde_json::Value)>,
    waiters: HashMap<String, tokio::sync::oneshot::Sender<LambdaReply>>,
}

/// An emulator of the AWS Lambda Runtime API (`/2018-06-01/runtime/...`):
/// point a function at it with `AWS_LAMBDA_RUNTIME_API=<address>` and the real
/// `lambda_http` loop in the binary polls it for events and posts replies.
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

impl LambdaRuntimeApi {
    /// Starts the emulator on a free port (inside a tokio runtime).
    pub async fn start() -> Self {
        use axum::extract::{Path as AxPath, State};
        use axum::http::{HeaderMap, HeaderValue};
        use axum::routing::{get, post};

        let api = Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            state: Arc::default(),
            notify: Arc::default(),
        };
        async fn next(State(api): State<LambdaRuntimeApi>) -> (HeaderMap, String) {
            loop {
                let notified = api.notify.notified();
                let item = api.state.lock().unwrap().queue.pop_front();
                if let Some((id, event)) = item {
                    let mut headers = HeaderMap::new();
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                        + 30_000;
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
            if let Some(tx) = api.state.lock().unwrap().waiters.remove(&id) {
                let _ = tx.send(LambdaReply {
                    request_id: id,
                    is_error,
                    body,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let api = Self { address, ..api };
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(|| async { "{}" }))
            .with_state(api.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        api
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues `event` for the function and waits (up to 30 s) for its reply.
    pub async fn invoke(&self, event: serde_json::Value) -> LambdaReply {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "req-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.state.lock().unwrap();
            state.waiters.insert(id.clone(), tx);
            state.queue.push_back((id, event));
        }
        self.notify.notify_waiters();
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("the function did not answer the invocation within 30 s")
            .expect("the emulator dropped the invocation")
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

/// Request events as AWS delivers them to a function.
pub mod lambda_events {
    use serde_json::{Value, json};

    /// An HTTP API (API Gateway v2) event.
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

    /// A REST API (API Gateway v1) proxy event.
    pub fn apigw_v1(method: &str, path: &str, body: Option<&str>) -> Value {
        json!({
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Host": "abc123.execute-api.us-east-1.amazonaws.com",
                "User-Agent": "curl/8.5.0"
            },
            "multiValueHeaders": {
                "Accept": ["application/json"],
                "Content-Type": ["application/json"],
                "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
                "User-Agent": ["curl/8.5.0"]
            },
            "queryStringParameters": null,
            "multiValueQueryStringParameters": null,
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
                "path": format!("/prod{path}"),
                "protocol": "HTTP/1.1",
                "requestTimeEpoch": 1_795_459_860_000_u64
            },
            "body": body,
            "isBase64Encoded": false
        })
    }
}
