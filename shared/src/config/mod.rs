//! Typed settings read from the environment and validated once, at start-up.
//!
//! Every setting has a documented default (see the README's table). A value
//! that cannot be used fails with a [`ConfigError`] that names the variable and
//! what is allowed, so a misconfigured deployment stops at boot with one clear
//! line instead of failing later on the first request.
//!
//! Secrets (the Redis password, `DATABASE_URL`, `ADMIN_TOKEN`) are held in
//! [`Secret`], whose `Debug` and `Display` print `[redacted]`; the Redis
//! address has a [`RedisConfig::redacted_url`] for logs and responses.
//!
//! # Layout
//!
//! - `env`: [`Env`], the typed environment reader, and [`ConfigError`].
//! - `auth`: [`AuthConfig`], who may call and which tenants they may touch (`AUTH_*`).
//! - `secret`: [`Secret`], a value that is never printed.
//! - `redis`: [`RedisConfig`], how to reach Redis.
//! - `database`: [`database_url`], where the `sql` backends connect (`DATABASE_URL` or `CLOUDSQL_*`).
//! - this file: [`Config`] (everything a function reads), the HTTP and store
//!   settings, and where the process runs ([`on_lambda`]).

mod auth;
mod database;
mod env;
mod redis;
mod secret;

use std::time::Duration;

use serde::Serialize;

pub use auth::{
    ACCEPTED_ALGORITHMS, AuthConfig, AuthMode, DEFAULT_ALGORITHMS, JwtConfig, PrincipalGrant,
    Runtime, TenantGrant,
};
pub use database::database_url;
pub use env::{ConfigError, Env};
pub use redis::{CredentialSource, DEFAULT_MAX_CONNECTIONS, Protocol, RedisConfig, Topology};
pub use secret::Secret;

/// Where the session or memory store keeps its data (`SESSION_BACKEND`,
/// `MEMORY_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Redis: hot data with a TTL (the default).
    Redis,
    /// PostgreSQL or MySQL through `DATABASE_URL` or `CLOUDSQL_*`: the
    /// durable rollback path (`sql`; `cloudsql`, `postgres` and `mysql` are
    /// the same backend).
    Sql,
    /// Process memory: development and tests only, lost on restart.
    Memory,
}

impl Backend {
    /// The name used in configuration and in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Sql => "sql",
            Self::Memory => "memory",
        }
    }
}

/// Log line format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line with the fields Cloud Logging and CloudWatch read.
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Settings of the HTTP side of every function.
#[derive(Debug, Clone, Serialize)]
pub struct HttpConfig {
    /// Port of the plain server (`PORT`, Cloud Run sets it).
    pub port: u16,
    /// Deadline of a whole request; past it the caller gets `503`.
    #[serde(serialize_with = "serialize_ms")]
    pub request_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// `LAMBDA_DEADLINE_MARGIN_MS`: on Lambda, how long before the
    /// invocation's own deadline a request's deadline falls, so that the
    /// function still answers (a `503` with `Retry-After`, its metrics
    /// line) before Lambda ends the invocation. A request's deadline is the
    /// earlier of `request_timeout` and the invocation's deadline minus this.
    #[serde(serialize_with = "serialize_ms")]
    pub lambda_deadline_margin: Duration,
    /// `HEADER_READ_TIMEOUT_MS`: the plain server closes a connection whose
    /// request head (or next request head, on a kept-alive connection) has
    /// not fully arrived in this time (slowloris).
    #[serde(serialize_with = "serialize_ms")]
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections the plain server holds open at once;
    /// past it, new ones wait in the kernel's accept queue. Keep it below the
    /// process's file-descriptor limit minus the Redis connections.
    pub max_connections: usize,
}

/// The settings of the stores that the source documents give several backends.
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    /// `SESSION_BACKEND`: where agent sessions live.
    pub session_backend: Backend,
    /// `MEMORY_BACKEND`: where the searchable memory lives.
    pub memory_backend: Backend,
    /// `REDIS_SESSION_TTL`: sliding lifetime of a session in Redis.
    #[serde(serialize_with = "serialize_secs")]
    pub session_ttl: Duration,
    /// `REDIS_MEMORY_TTL_DAYS`: lifetime of a memory entry.
    pub memory_ttl_days: u32,
    /// `DATABASE_URL`, or the URL built from `CLOUDSQL_*` ([`database_url`]):
    /// PostgreSQL or MySQL for the `sql` backends.
    pub database_url: Option<Secret>,
    /// `MEMORY_INDEX_KEY`: the secret of the keyed hash that turns a word
    /// into its memory-index key name, so key names hold no conversation text.
    pub memory_index_key: IndexKey,
    /// The bounds of one session and of one read of it.
    pub session_limits: SessionLimits,
}

/// The documented bounds of a session store, the same on every backend: a
/// request past one gets a clear `4xx` and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionLimits {
    /// `SESSION_MAX_EVENTS` (default 10,000): events one session holds; the
    /// append after the last is refused (`422 limit_reached`).
    pub max_events: u64,
    /// `SESSION_MAX_EVENT_BYTES` (default 8 MiB): the JSON of one stored
    /// event (`413 payload_too_large` past it).
    pub max_event_bytes: usize,
    /// `SESSION_MAX_RESPONSE_BYTES` (default 32 MiB): the events one read
    /// returns; a read past it is refused (`422 limit_reached`) and should ask
    /// for fewer with `num_recent_events` or `after_timestamp`.
    pub max_response_bytes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_event_bytes: 8 << 20,
            max_response_bytes: 32 << 20,
        }
    }
}

impl SessionLimits {
    /// Reads `SESSION_MAX_EVENTS`, `SESSION_MAX_EVENT_BYTES` and `SESSION_MAX_RESPONSE_BYTES`.
    ///
    /// # Errors
    /// When a value is not an integer in its range.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_events: env.range("SESSION_MAX_EVENTS", d.max_events, 1, 1_000_000)?,
            max_event_bytes: env.range(
                "SESSION_MAX_EVENT_BYTES",
                d.max_event_bytes as u64,
                1_024,
                64 << 20,
            )? as usize,
            max_response_bytes: env.range(
                "SESSION_MAX_RESPONSE_BYTES",
                d.max_response_bytes as u64,
                1_024,
                1 << 30,
            )? as usize,
        })
    }
}

/// The default of `LAMBDA_DEADLINE_MARGIN_MS`: enough to write the `503`,
/// the metrics line and post the answer to the Runtime API (a few
/// milliseconds on the loopback), with room for a scheduling hiccup.
pub const DEFAULT_LAMBDA_DEADLINE_MARGIN_MS: u64 = 100;

/// `DEPLOY_ENVIRONMENT` when it is not set.
pub const UNSET_ENVIRONMENT: &str = "unset";

/// Lambda's application log level (`AWS_LAMBDA_LOG_LEVEL`, set by Lambda's
/// advanced logging controls): with the JSON log format, Lambda drops every
/// line whose `level` is below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LambdaLogLevel {
    /// `TRACE`: every line is kept.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
    /// `FATAL`: only fatal lines are kept.
    Fatal,
}

impl LambdaLogLevel {
    /// Lambda's name of the level (`TRACE` … `FATAL`), as the `level` key
    /// of a JSON line carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
        }
    }

    /// The `LOG_LEVEL` filter that keeps what Lambda keeps (`FATAL` has no
    /// filter of its own: `error`).
    pub fn filter(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error | Self::Fatal => "error",
        }
    }

    /// The level named `value` (any case; `WARNING` for `WARN`), or `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value.to_ascii_uppercase().as_str() {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" | "WARNING" => Self::Warn,
            "ERROR" => Self::Error,
            "FATAL" => Self::Fatal,
            _ => return None,
        })
    }
}
/// The secret of the memory index (`MEMORY_INDEX_KEY`), or why there is none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKey {
    /// Set by the deployment.
    Configured(Secret),
    /// Unset off the clouds: [`DEV_MEMORY_INDEX_KEY`] is used.
    DevDefault,
    /// Unset on Lambda or Cloud Run: the Redis memory store refuses to open.
    Missing,
}

/// The memory-index secret of local runs without `MEMORY_INDEX_KEY`. It is
/// public (it is written here), so it protects nothing: a deployment sets
/// its own, and on Lambda and Cloud Run the Redis memory store will not
/// open without one.
pub const DEV_MEMORY_INDEX_KEY: &str = "dev-only-memory-index-key-not-secret";

/// Shortest accepted `MEMORY_INDEX_KEY`, in bytes.
pub const MIN_INDEX_KEY_LEN: usize = 32;

/// `ADMIN_TOKEN` values the documentation shows as examples: a deployment
/// that copied one is refused at start.
pub const EXAMPLE_ADMIN_TOKENS: &[&str] = &["change-me-to-a-long-random-token"];

/// Whether this process runs inside AWS Lambda: the Lambda Runtime API's
/// address is set (`AWS_LAMBDA_RUNTIME_API`), as Lambda sets it for every
/// runtime. Decides how [`crate::serve()`] runs and the metrics interval.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Redis connection and resilience settings.
    pub redis: RedisConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Session and memory store settings.
    pub stores: StoreConfig,
    /// Who may call and which tenants they may touch.
    pub auth: AuthConfig,
    /// Bearer token of the admin endpoints; without it they answer `404`.
    pub admin_token: Option<Secret>,
    /// Log line format; JSON on the clouds, text in a terminal.
    pub log_format: LogFormat,
    /// Default log filter (`LOG_LEVEL`, or `RUST_LOG` for full directives;
    /// without either, Lambda's `AWS_LAMBDA_LOG_LEVEL`; else `info`).
    pub log_level: String,
    /// `AWS_LAMBDA_LOG_LEVEL`: Lambda drops JSON lines below it, so the
    /// metrics line is written at least at this level.
    pub lambda_log_level: Option<LambdaLogLevel>,
    /// `DEPLOY_ENVIRONMENT` (`production`, `staging`, …; default
    /// [`UNSET_ENVIRONMENT`]): on every JSON line, a dimension of every
    /// metric; the alerts of an environment read only its own lines.
    pub environment: String,
    /// What start-up should warn about once logging is set up (a setting
    /// the alerts need is missing, a log format without metrics). Never
    /// carries a secret.
    #[serde(skip)]
    pub notices: Vec<String>,
}

impl Config {
    /// Reads and validates every setting from the process environment.
    ///
    /// # Errors
    /// The first setting that cannot be used, named with what it accepts.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value), so
    /// tests can supply an environment without touching the process one.
    ///
    /// # Errors
    /// The first setting that cannot be used, named with what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let redis = RedisConfig::from_env(&env)?;
        let http = HttpConfig {
            port: env.range("PORT", 8080, 1, 65_535)? as u16,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 10_000, 100, 900_000)?,
            max_body_bytes: env.range("MAX_BODY_BYTES", 1 << 20, 1_024, 64 << 20)? as usize,
            lambda_deadline_margin: env.millis(
                "LAMBDA_DEADLINE_MARGIN_MS",
                DEFAULT_LAMBDA_DEADLINE_MARGIN_MS,
                0,
                60_000,
            )?,
            header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS", 5_000, 100, 60_000)?,
            max_connections: env.range("MAX_CONNECTIONS", 512, 1, 65_536)? as usize,
        };
        if http.request_timeout <= redis.command_timeout {
            return Err(ConfigError::new(
                "REQUEST_TIMEOUT_MS",
                format!(
                    "must be longer than REDIS_COMMAND_TIMEOUT_MS ({} ms) so a Redis failure can still be answered",
                    redis.command_timeout.as_millis()
                ),
            ));
        }
        let runtime = Runtime::detect(&env);
        let memory_index_key = match env.get("MEMORY_INDEX_KEY") {
            Some(key) if key.len() < MIN_INDEX_KEY_LEN => {
                return Err(ConfigError::new(
                    "MEMORY_INDEX_KEY",
                    format!(
                        "must be at least {MIN_INDEX_KEY_LEN} characters (e.g. openssl rand -hex 32)"
                    ),
                ));
            }
            Some(key) if key == DEV_MEMORY_INDEX_KEY => {
                return Err(ConfigError::new(
                    "MEMORY_INDEX_KEY",
                    "is the documented development value; generate one (e.g. openssl rand -hex 32)",
                ));
            }
            Some(key) => IndexKey::Configured(Secret::new(key)),
            None if runtime.is_cloud() => IndexKey::Missing,
            None => IndexKey::DevDefault,
        };
        let stores = StoreConfig {
            session_backend: backend(&env, "SESSION_BACKEND")?,
            memory_backend: backend(&env, "MEMORY_BACKEND")?,
            session_ttl: Duration::from_secs(env.range(
                "REDIS_SESSION_TTL",
                3_600,
                1,
                31_536_000,
            )?),
            memory_ttl_days: env.range("REDIS_MEMORY_TTL_DAYS", 30, 1, 3_650)? as u32,
            database_url: database_url(&env)?,
            memory_index_key,
            session_limits: SessionLimits::from_env(&env)?,
        };
        let sql_needed = [stores.session_backend, stores.memory_backend].contains(&Backend::Sql);
        if sql_needed && stores.database_url.is_none() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "is required when SESSION_BACKEND or MEMORY_BACKEND is sql or cloudsql (postgres://… or \
                 mysql://…); or set CLOUDSQL_HOST or CLOUDSQL_UNIX_SOCKET with CLOUDSQL_DATABASE, \
                 CLOUDSQL_USER, CLOUDSQL_PASSWORD",
            ));
        }
        let admin_token = env.get("ADMIN_TOKEN").map(Secret::new);
        if let Some(token) = &admin_token
            && token.expose().len() < 16
        {
            return Err(ConfigError::new(
                "ADMIN_TOKEN",
                "must be at least 16 characters (or unset to disable the admin endpoints)",
            ));
        }
        if let Some(token) = &admin_token {
            let lowered = token.expose().to_ascii_lowercase();
            if EXAMPLE_ADMIN_TOKENS
                .iter()
                .any(|e| token.matches(e.as_bytes()))
                || lowered.contains("change-me")
                || lowered.contains("changeme")
            {
                return Err(ConfigError::new(
                    "ADMIN_TOKEN",
                    "is the documentation's example value; generate one (e.g. openssl rand -hex 24)",
                ));
            }
        }
        let auth = AuthConfig::from_env(&env, http.request_timeout)?;
        let on_cloud = runtime.is_cloud();
        let mut notices = Vec::new();
        let log_format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("") if on_cloud => {
                if env
                    .get("AWS_LAMBDA_LOG_FORMAT")
                    .is_some_and(|f| f.eq_ignore_ascii_case("text"))
                {
                    notices.push(
                        "AWS_LAMBDA_LOG_FORMAT is Text; writing JSON lines anyway (the metrics and \
                         alerts need them; set LOG_FORMAT=text to insist)"
                            .to_owned(),
                    );
                }
                LogFormat::Json
            }
            None | Some("") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("text") => {
                if on_cloud {
                    notices.push(
                        "LOG_FORMAT=text: no metric is extracted from text lines and every \
                         metric alert stays silent"
                            .to_owned(),
                    );
                }
                LogFormat::Text
            }
            Some(_) => return Err(ConfigError::new("LOG_FORMAT", "expected json or text")),
        };
        let lambda_log_level = match env.get("AWS_LAMBDA_LOG_LEVEL") {
            None => None,
            Some(value) => {
                let level = LambdaLogLevel::parse(&value);
                if level.is_none() {
                    notices.push(format!(
                        "AWS_LAMBDA_LOG_LEVEL={value:?} is not one of TRACE, DEBUG, INFO, WARN, \
                         ERROR, FATAL; ignored"
                    ));
                }
                level
            }
        };
        let log_level = env.get("LOG_LEVEL").unwrap_or_else(|| {
            lambda_log_level
                .map_or("info", LambdaLogLevel::filter)
                .to_owned()
        });
        if !matches!(
            log_level.to_ascii_lowercase().as_str(),
            "error" | "warn" | "info" | "debug" | "trace" | "off"
        ) {
            return Err(ConfigError::new(
                "LOG_LEVEL",
                "expected one of error, warn, info, debug, trace, off (RUST_LOG takes full directives)",
            ));
        }
        let environment = match env.get("DEPLOY_ENVIRONMENT") {
            Some(name) if is_environment_name(&name) => name,
            Some(_) => {
                return Err(ConfigError::new(
                    "DEPLOY_ENVIRONMENT",
                    "expected a lowercase name: a letter, then up to 31 letters, digits or `-` \
                     (production, staging, …)",
                ));
            }
            None => {
                if on_cloud {
                    notices.push(format!(
                        "DEPLOY_ENVIRONMENT is not set: the metrics say environment \
                         {UNSET_ENVIRONMENT:?}, which no environment's alerts read"
                    ));
                }
                UNSET_ENVIRONMENT.to_owned()
            }
        };
        Ok(Self {
            redis,
            http,
            stores,
            auth,
            admin_token,
            log_format,
            log_level,
            lambda_log_level,
            environment,
            notices,
        })
    }
}

/// `^[a-z][a-z0-9-]{0,31}$`: a name that is safe as a label and a dimension.
fn is_environment_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn backend(env: &Env<'_>, name: &'static str) -> Result<Backend, ConfigError> {
    match env.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("redis") => Ok(Backend::Redis),
        // The names the source project used are accepted too.
        Some("sql" | "cloudsql" | "postgres" | "mysql") => Ok(Backend::Sql),
        Some("memory" | "inmemory") => Ok(Backend::Memory),
        Some(other) => Err(ConfigError::new(
            name,
            format!("{other:?} is not a backend; expected redis, sql or memory"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_point_at_local_redis() {
        let c = from(&[]).unwrap();
        assert_eq!(c.redis.urls[0].as_str(), "redis://127.0.0.1:6379/0");
        assert_eq!(c.redis.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.http.port, 8080);
        assert_eq!(c.stores.session_backend, Backend::Redis);
        assert_eq!(c.stores.session_ttl, Duration::from_secs(3600));
        assert_eq!(c.stores.memory_ttl_days, 30);
        assert_eq!(c.redis.topology, Topology::Detect);
        assert!(c.admin_token.is_none());
        assert_eq!(c.auth.mode, AuthMode::Platform);
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.http.max_connections, 512);
        assert!(matches!(c.stores.memory_index_key, IndexKey::DevDefault));
    }

    #[test]
    fn the_memory_index_key_is_missing_on_the_clouds_and_never_printed() {
        let c = from(&[("K_SERVICE", "sessions")]).unwrap();
        assert!(matches!(c.stores.memory_index_key, IndexKey::Missing));
        let key = "0123456789abcdef0123456789abcdef-index";
        let c = from(&[("MEMORY_INDEX_KEY", key)]).unwrap();
        assert!(matches!(&c.stores.memory_index_key, IndexKey::Configured(k) if k.expose() == key));
        let printed = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!printed.contains(key), "{printed}");
    }

    #[test]
    fn password_is_taken_out_of_the_url_and_never_printed() {
        let c = from(&[("REDIS_URL", "redis://app:s3cr%40t@cache.internal:6380/2")]).unwrap();
        assert_eq!(c.redis.password.as_ref().unwrap().expose(), "s3cr@t");
        assert_eq!(c.redis.username.as_deref(), Some("app"));
        assert_eq!(c.redis.urls[0].as_str(), "redis://cache.internal:6380/2");
        let printed = format!(
            "{c:?} {} {}",
            c.redis.redacted_url(),
            serde_json::to_string(&c).unwrap()
        );
        assert!(!printed.contains("s3cr"), "{printed}");
        assert!(
            c.redis
                .redacted_url()
                .contains("app:***@cache.internal:6380")
        );
    }

    #[test]
    fn host_port_password_variables_build_the_url() {
        let c = from(&[
            ("REDIS_HOST", "10.0.0.5"),
            ("REDIS_PORT", "6390"),
            ("REDIS_PASSWORD", "pw-from-secret-manager"),
            ("REDIS_TLS", "true"),
        ])
        .unwrap();
        assert_eq!(c.redis.urls[0].as_str(), "rediss://10.0.0.5:6390/0");
        assert!(c.redis.tls());
        assert_eq!(c.redis.password.unwrap().expose(), "pw-from-secret-manager");
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_is_allowed() {
        let cases = [
            ("REDIS_MAX_CONNECTIONS", "0", "from 1 to 64"),
            ("REDIS_MAX_CONNECTIONS", "many", "integer from 1 to 64"),
            ("REDIS_COMMAND_TIMEOUT_MS", "-5", "integer"),
            ("REDIS_URL", "http://example.com", "unsupported scheme"),
            ("REDIS_URL", "redis://", "host"),
            ("REDIS_TLS", "maybe", "true or false"),
            ("SESSION_BACKEND", "mongo", "redis, sql or memory"),
            ("LOG_FORMAT", "xml", "json or text"),
            ("ADMIN_TOKEN", "short", "at least 16"),
            (
                "ADMIN_TOKEN",
                "change-me-to-a-long-random-token",
                "example value",
            ),
            ("ADMIN_TOKEN", "please-CHANGEME-0123456789", "example value"),
            ("MEMORY_INDEX_KEY", "too-short", "at least 32"),
            (
                "MEMORY_INDEX_KEY",
                DEV_MEMORY_INDEX_KEY,
                "development value",
            ),
            ("HEADER_READ_TIMEOUT_MS", "10", "from 100 to 60000"),
            ("MAX_CONNECTIONS", "0", "from 1 to 65536"),
            ("AUTH_MODE", "open", "jwt, platform or none"),
            ("PORT", "70000", "from 1 to 65535"),
        ];
        for (var, value, expect) in cases {
            let err = from(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().contains(expect), "{var}={value}: {err}");
        }
    }

    #[test]
    fn url_errors_never_echo_the_password() {
        let err = from(&[("REDIS_URL", "redis://u:hunter2hunter2@host:99999")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn sql_backend_requires_a_database_url() {
        let err = from(&[("SESSION_BACKEND", "cloudsql")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        let ok = from(&[
            ("SESSION_BACKEND", "cloudsql"),
            ("DATABASE_URL", "postgres://x"),
        ])
        .unwrap();
        assert_eq!(ok.stores.session_backend, Backend::Sql);
        assert!(!format!("{ok:?}").contains("postgres://x"));
    }

    #[test]
    fn cloudsql_variables_stand_in_for_database_url_and_hide_the_password() {
        let c = from(&[
            ("SESSION_BACKEND", "cloudsql"),
            ("MEMORY_BACKEND", "cloudsql"),
            ("CLOUDSQL_UNIX_SOCKET", "/cloudsql/proj:region:db"),
            ("CLOUDSQL_PORT", "5432"),
            ("CLOUDSQL_DATABASE", "sessions"),
            ("CLOUDSQL_USER", "agent"),
            ("CLOUDSQL_PASSWORD", "hunter2-hunter2"),
        ])
        .unwrap();
        assert_eq!(c.stores.session_backend, Backend::Sql);
        assert_eq!(c.stores.memory_backend, Backend::Sql);
        let url = c.stores.database_url.as_ref().unwrap().expose().to_owned();
        assert!(
            url.starts_with("postgres://agent:hunter2-hunter2@"),
            "{url}"
        );
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        let err = from(&[
            ("SESSION_BACKEND", "cloudsql"),
            ("CLOUDSQL_HOST", "10.1.2.3"),
            ("CLOUDSQL_PORT", "3306"),
            ("CLOUDSQL_USER", "agent"),
            ("CLOUDSQL_PASSWORD", "hunter2-hunter2"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "CLOUDSQL_DATABASE");
        assert!(!err.to_string().contains("hunter2"));
        let err = from(&[("SESSION_BACKEND", "cloudsql")]).unwrap_err();
        assert!(err.to_string().contains("CLOUDSQL_HOST"), "{err}");
    }

    #[test]
    fn a_comma_in_a_password_is_not_a_seed_separator() {
        let c = from(&[("REDIS_URL", "redis://:Xy7,kP9q@cache.internal:6380")]).unwrap();
        assert_eq!(c.redis.urls.len(), 1);
        assert_eq!(c.redis.password.as_ref().unwrap().expose(), "Xy7,kP9q");
        assert_eq!(c.redis.urls[0].as_str(), "redis://cache.internal:6380");
        let seeds = from(&[("REDIS_URL", "redis://u:p,w@a:7000, rediss://u:p,w@b:7001")]).unwrap();
        assert_eq!(seeds.redis.urls.len(), 2);
        assert_eq!(seeds.redis.topology, Topology::Cluster);
        assert_eq!(seeds.redis.password.unwrap().expose(), "p,w");
    }

    #[test]
    fn credential_providers_are_chosen_and_checked() {
        let file = tempfile_path();
        let c = from(&[("REDIS_PASSWORD_FILE", file.as_str())]).unwrap();
        assert!(matches!(c.redis.credentials, CredentialSource::File { .. }));
        let err = from(&[
            ("REDIS_PASSWORD_FILE", file.as_str()),
            ("REDIS_PASSWORD", "also"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "REDIS_PASSWORD_FILE");
        let iam = [
            ("REDIS_CREDENTIAL_PROVIDER", "elasticache-iam"),
            (
                "REDIS_URL",
                "rediss://app-user@my-group.cache.amazonaws.com:6379",
            ),
            ("REDIS_IAM_CACHE_NAME", "my-group"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let c = from(&iam).unwrap();
        assert_eq!(
            c.redis.credentials,
            CredentialSource::ElasticacheIam {
                cache_name: "my-group".into(),
                region: "eu-west-1".into(),
                serverless: false
            }
        );
        assert_eq!(c.redis.max_connection_age, Duration::from_secs(11 * 3_600));
        let plain = [
            ("REDIS_CREDENTIAL_PROVIDER", "elasticache-iam"),
            ("REDIS_URL", "redis://app-user@my-group:6379"),
            ("REDIS_IAM_CACHE_NAME", "my-group"),
            ("AWS_REGION", "eu-west-1"),
        ];
        assert_eq!(from(&plain).unwrap_err().var, "REDIS_CREDENTIAL_PROVIDER");
        let err = from(&[("REDIS_CREDENTIAL_PROVIDER", "vault")]).unwrap_err();
        assert!(
            err.to_string().contains("static, file or elasticache-iam"),
            "{err}"
        );
    }

    fn tempfile_path() -> String {
        let path = std::env::temp_dir().join(format!("redis-password-{}", std::process::id()));
        std::fs::write(&path, "secret\n").unwrap();
        path.display().to_string()
    }

    #[test]
    fn several_urls_mean_cluster() {
        let c = from(&[("REDIS_URL", "redis://a:7000,redis://b:7001")]).unwrap();
        assert_eq!(c.redis.topology, Topology::Cluster);
        assert_eq!(c.redis.urls.len(), 2);
        let err = from(&[
            ("REDIS_URL", "redis://a:7000,redis://b:7001"),
            ("REDIS_CLUSTER", "false"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }

    #[test]
    fn tls_settings_require_tls() {
        let err = from(&[("REDIS_TLS_INSECURE", "true")]).unwrap_err();
        assert_eq!(err.var, "REDIS_TLS_INSECURE");
    }

    #[test]
    fn request_deadline_must_outlast_the_redis_deadline() {
        let err = from(&[
            ("REQUEST_TIMEOUT_MS", "500"),
            ("REDIS_COMMAND_TIMEOUT_MS", "800"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "REQUEST_TIMEOUT_MS");
    }

    #[test]
    fn deploy_environment_is_validated_and_its_absence_noticed_on_the_clouds() {
        let c = from(&[("DEPLOY_ENVIRONMENT", "staging-eu")]).unwrap();
        assert_eq!(c.environment, "staging-eu");
        for bad in [
            "Production",
            "1prod",
            "prod env",
            "a-very-long-environment-name-over-32",
        ] {
            let err = from(&[("DEPLOY_ENVIRONMENT", bad)]).unwrap_err();
            assert_eq!(err.var, "DEPLOY_ENVIRONMENT", "{bad}");
        }
        let local = from(&[]).unwrap();
        assert_eq!(local.environment, UNSET_ENVIRONMENT);
        assert!(local.notices.is_empty(), "{:?}", local.notices);
        let lambda = from(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]).unwrap();
        assert!(
            lambda
                .notices
                .iter()
                .any(|n| n.contains("DEPLOY_ENVIRONMENT")),
            "{:?}",
            lambda.notices
        );
    }

    #[test]
    fn lambdas_advanced_logging_controls_are_honoured() {
        let c = from(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]).unwrap();
        assert_eq!(c.lambda_log_level, Some(LambdaLogLevel::Warn));
        assert_eq!(
            c.log_level, "warn",
            "the default filter follows Lambda's level"
        );
        let c = from(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("LOG_LEVEL", "debug")]).unwrap();
        assert_eq!(c.log_level, "debug", "LOG_LEVEL wins");
        assert_eq!(c.lambda_log_level, Some(LambdaLogLevel::Fatal));
        let c = from(&[("AWS_LAMBDA_LOG_LEVEL", "loud")]).unwrap();
        assert_eq!(c.lambda_log_level, None);
        assert!(c.notices.iter().any(|n| n.contains("AWS_LAMBDA_LOG_LEVEL")));

        let lambda = [
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ];
        let c = from(&lambda).unwrap();
        assert_eq!(c.log_format, LogFormat::Json, "the metrics need JSON lines");
        assert!(
            c.notices
                .iter()
                .any(|n| n.contains("AWS_LAMBDA_LOG_FORMAT"))
        );
        let c = from(&[lambda[0], lambda[1], ("LOG_FORMAT", "text")]).unwrap();
        assert_eq!(c.log_format, LogFormat::Text, "an explicit LOG_FORMAT wins");
        assert!(c.notices.iter().any(|n| n.contains("no metric")));
    }

    #[test]
    fn the_lambda_deadline_margin_has_a_default_and_a_range() {
        assert_eq!(
            from(&[]).unwrap().http.lambda_deadline_margin,
            Duration::from_millis(DEFAULT_LAMBDA_DEADLINE_MARGIN_MS)
        );
        let c = from(&[("LAMBDA_DEADLINE_MARGIN_MS", "250")]).unwrap();
        assert_eq!(c.http.lambda_deadline_margin, Duration::from_millis(250));
        let err = from(&[("LAMBDA_DEADLINE_MARGIN_MS", "61000")]).unwrap_err();
        assert_eq!(err.var, "LAMBDA_DEADLINE_MARGIN_MS");
    }
}
