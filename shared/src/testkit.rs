//! Test-only tools (feature `testkit`): real `redis-server` processes and the
//! faults production sees, a TCP listener that never answers, a Lambda
//! Runtime API emulator, and captured log lines.
//!
//! Everything here panics with a clear message when the environment is wrong
//! (that is the right failure in a test), which is why the crate's panic lints
//! are relaxed in this module only.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::client::RedisClient;
use crate::config::{RedisConfig, Secret};

/// How to install `redis-server`, shown when it is missing.
const INSTALL_HINT: &str = "redis-server was not found on PATH and REDIS_SERVER_BIN is not set.\n\
     Install it with `make setup`, or: `sudo apt-get install redis-server` (Debian/Ubuntu), \
     `brew install redis` (macOS); or point REDIS_SERVER_BIN at the binary.";

/// The `redis-server` binary: `REDIS_SERVER_BIN`, else the first on `PATH`.
///
/// # Panics
/// When there is none, with instructions to install it.
pub fn redis_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "REDIS_SERVER_BIN={} is not a file.\n{INSTALL_HINT}",
            bin.display()
        );
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Options of a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    args: Vec<String>,
}

impl RedisServerBuilder {
    /// Requires this password (`requirepass`).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Adds a `redis-server` command-line argument (`--maxmemory`, `1mb`, ...).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it answers.
    pub fn start(self) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redis-testkit-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut last_log = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                bin: redis_server_bin(),
                port: free_port(),
                dir: dir.path().to_owned(),
                _dir: None,
                options: self.clone(),
                child: None,
                paused: false,
            };
            if server.spawn_and_wait() {
                server._dir = Some(dir);
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("redis-server did not start after 5 attempts; its log:\n{last_log}");
    }
}

/// A `redis-server` of its own for one test: a free port, a temporary
/// directory, no persistence (`--save ""`). Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    _dir: Option<TempDir>,
    options: RedisServerBuilder,
    child: Option<Child>,
    paused: bool,
}

impl RedisServer {
    /// Starts a plain server.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A server with options.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    fn spawn_and_wait(&mut self) -> bool {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if let Some(pw) = &self.options.password {
            cmd.args(["--requirepass", pw]);
        }
        cmd.args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{INSTALL_HINT}", self.bin.display()));
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Whether the server answers a `PING` (an auth error counts as an answer).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Client settings for this server, every other setting at its default.
    pub fn config(&self) -> RedisConfig {
        let mut config = RedisConfig::for_url(&format!("redis://127.0.0.1:{}", self.port))
            .expect("a local URL is valid");
        config.password = self.options.password.as_deref().map(Secret::new);
        config
    }

    /// A [`RedisClient`] for this server with default settings.
    pub fn client(&self) -> RedisClient {
        RedisClient::new(self.config()).expect("a local config is valid")
    }

    /// A plain synchronous connection, for a test's own checks and setup.
    pub fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("cannot connect to the test redis-server: {e}"))
    }

    /// Connections from clients other than the asking one (`CLIENT LIST`).
    pub fn client_count(&self) -> usize {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut self.admin())
            .expect("CLIENT LIST");
        list.lines().count().saturating_sub(1)
    }

    /// Closes every client connection (`CLIENT KILL TYPE normal`), as a
    /// server-side timeout or a proxy would. Returns how many were closed.
    pub fn kill_clients(&self) -> usize {
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query(&mut self.admin())
            .expect("CLIENT KILL")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port, with an empty dataset.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn_and_wait() {
                return;
            }
            self.kill();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&mut self) {
        self.signal(Signal::SIGSTOP);
        self.paused = true;
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(Signal::SIGCONT);
        self.paused = false;
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: Signal) {
        let pid = self.pid().expect("the server is not running");
        kill(Pid::from_raw(pid as i32), signal).expect("cannot signal redis-server");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// The server's log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP listener that accepts (the kernel completes the handshake) but never
/// reads or answers: a hung server or a black-holed network path.
#[derive(Debug)]
pub struct BlackHole {
    listener: TcpListener,
}

impl BlackHole {
    /// Binds a free port on 127.0.0.1.
    pub fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a black hole"),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }
}

/// Log output captured in memory: pass it to
/// [`telemetry::init_with_writer`](crate::telemetry::init_with_writer) and
/// read the lines back.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Appends to a [`CapturedLogs`].
#[derive(Debug)]
pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}

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

/// A function binary running as a child process (server mode on a free
/// `PORT`, or Lambda mode against a [`LambdaRuntimeApi`]), its output kept in
/// a file. Killed when dropped.
#[derive(Debug)]
pub struct FunctionProcess {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl FunctionProcess {
    /// Starts `bin` with `env` added to a clean environment (`PATH` kept) and
    /// `PORT` set to a free port unless `env` sets it. Logs are JSON.
    pub fn spawn(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Self {
        let port = env
            .iter()
            .find(|(k, _)| *k == "PORT")
            .map_or_else(free_port, |(_, v)| v.parse().expect("PORT is a number"));
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut cmd = Command::new(bin.as_ref());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.as_ref().display()));
        Self { child, port, log }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `GET /healthz` answers 200 (server mode).
    pub async fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        let url = format!("{}/healthz", self.base_url());
        while started.elapsed() < limit {
            assert!(
                self.is_running(),
                "the function exited early; its output:\n{}",
                self.output()
            );
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = write!(
                    stream,
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{url} did not answer 200 within {limit:?}; output:\n{}",
            self.output()
        );
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the function did not exit within {limit:?} of SIGTERM");
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the function did not exit within {limit:?}");
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Checks every function binary must pass: the common routes in server mode
/// and in Lambda mode, a bounded `503` when Redis is unreachable, a clear
/// configuration error, a clean exit on SIGTERM. A function's tests call each
/// with `env!("CARGO_BIN_EXE_<name>")`.
pub mod conformance {
    use std::time::{Duration, Instant};

    use axum::Router;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::{
        BlackHole, FunctionProcess, LambdaRuntimeApi, RedisServer, free_port, lambda_env,
        lambda_events,
    };

    async fn get_json(url: &str) -> (u16, Value) {
        let response = reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Server mode against a real Redis: `/redis-health` 200 with the
    /// documented fields, `/healthz` 200.
    pub async fn server_mode(bin: &str) {
        let redis = RedisServer::start();
        let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url())]);
        f.wait_ready(Duration::from_secs(10)).await;
        let (status, body) = get_json(&format!("{}/redis-health", f.base_url())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["ping"], "PONG");
        assert!(
            body["latency_ms"].as_f64().is_some_and(|v| v > 0.0),
            "{body}"
        );
        assert!(
            body["connected_clients"].as_u64().is_some_and(|v| v >= 1),
            "{body}"
        );
        let (status, _) = get_json(&format!("{}/healthz", f.base_url())).await;
        assert_eq!(status, 200);
        assert!(f.is_running());
    }

    /// With `REDIS_URL` at a closed port, and at a listener that never
    /// answers: `/redis-health` is `503` JSON within 1.5 s, every time, and
    /// the process stays up.
    pub async fn unreachable_redis(bin: &str) {
        let closed = format!("redis://127.0.0.1:{}", free_port());
        let hole = BlackHole::bind();
        for (url, kind) in [(closed, "connect"), (hole.url(), "timeout")] {
            let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &url)]);
            f.wait_ready(Duration::from_secs(10)).await;
            for _ in 0..3 {
                let started = Instant::now();
                let (status, body) = get_json(&format!("{}/redis-health", f.base_url())).await;
                let took = started.elapsed();
                assert_eq!(status, 503, "{body}");
                assert_eq!(body["status"], "unhealthy");
                assert_eq!(body["type"], kind, "{body}");
                assert!(body["error"].is_string());
                assert!(
                    took < Duration::from_millis(1_500),
                    "{url}: answered after {took:?}"
                );
            }
            assert!(
                f.is_running(),
                "the process must stay up; output:\n{}",
                f.output()
            );
        }
    }

    /// Lambda mode: the real binary polls a Runtime API emulator and answers
    /// API Gateway v1, v2 and Function URL events with the same JSON.
    pub async fn lambda_mode(bin: &str) {
        let redis = RedisServer::start();
        let api = LambdaRuntimeApi::start().await;
        let mut env = lambda_env(&api);
        env.push(("REDIS_URL", redis.url()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut f = FunctionProcess::spawn(bin, &env);
        let events = [
            (
                "v2",
                lambda_events::apigw_v2("GET", "/redis-health", "", None),
            ),
            (
                "function url",
                lambda_events::function_url("GET", "/redis-health", "", None),
            ),
            ("v1", lambda_events::apigw_v1("GET", "/redis-health", None)),
        ];
        for (name, event) in events {
            let reply = api.invoke(event).await;
            assert!(!reply.is_error, "{name}: {:?}\n{}", reply.body, f.output());
            assert_eq!(reply.body["statusCode"], 200, "{name}: {}", reply.body);
            let body: Value =
                serde_json::from_str(reply.body["body"].as_str().unwrap_or("null")).unwrap();
            assert_eq!(body["status"], "healthy", "{name}: {body}");
            assert_eq!(body["ping"], "PONG");
            assert!(body["connected_clients"].as_u64().is_some());
        }
        // Invocations share the client: one connection to Redis for all three.
        assert_eq!(redis.client_count(), 1);
        let reply = api
            .invoke(lambda_events::apigw_v2("GET", "/nope", "", None))
            .await;
        assert_eq!(reply.body["statusCode"], 404, "{}", reply.body);
        assert!(f.is_running());
    }

    /// The router, as [`crate::http::serve`] runs it on Lambda, answers
    /// `lambda_http` request fixtures (as `lambda_http::request::from_str`
    /// parses them) with the same JSON as a plain request.
    pub async fn lambda_fixtures(app: Router) {
        let app = crate::http::for_lambda(app);
        for event in [
            lambda_events::apigw_v2("GET", "/redis-health", "", None),
            lambda_events::function_url("GET", "/redis-health", "", None),
            lambda_events::apigw_v1("GET", "/redis-health", None),
        ] {
            let request =
                lambda_http::request::from_str(&event.to_string()).expect("a valid event");
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), 200);
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let body: Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(body["status"], "healthy", "{body}");
            assert_eq!(body["ping"], "PONG");
        }
    }

    /// An invalid setting stops the process at start with exit code 2 and
    /// one line naming the variable.
    pub fn config_error(bin: &str) {
        let mut f = FunctionProcess::spawn(bin, &[("REDIS_MAX_CONNECTIONS", "zero")]);
        assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2));
        let output = f.output();
        assert!(output.contains("REDIS_MAX_CONNECTIONS"), "{output}");
        assert!(output.contains("from 1 to 64"), "{output}");
        let mut f = FunctionProcess::spawn(
            bin,
            &[("REDIS_URL", "redis://user:hunter2-secret@host:notaport")],
        );
        assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(2));
        assert!(!f.output().contains("hunter2-secret"), "{}", f.output());
    }

    /// SIGTERM ends the server with exit code 0.
    pub async fn graceful_shutdown(bin: &str) {
        let redis = RedisServer::start();
        let mut f = FunctionProcess::spawn(bin, &[("REDIS_URL", &redis.url())]);
        f.wait_ready(Duration::from_secs(10)).await;
        let _ = get_json(&format!("{}/redis-health", f.base_url())).await;
        assert_eq!(
            f.terminate(Duration::from_secs(10)),
            Some(0),
            "{}",
            f.output()
        );
    }
}
