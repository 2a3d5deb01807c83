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

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use url::Url;

/// A value that must never be printed: `Debug`, `Display` and `Serialize`
/// all write `[redacted]`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (a connection
    /// handshake, a token comparison). Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// A setting that could not be used. The message names the variable and what
/// it accepts; it never repeats the value of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {message}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`; `message` says what is wrong and what is allowed
    /// and must not repeat a secret value.
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// Where the session or memory store keeps its data (`SESSION_BACKEND`,
/// `MEMORY_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// Redis: hot data with a TTL (the default).
    Redis,
    /// PostgreSQL or MySQL through `DATABASE_URL`: the durable rollback path.
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
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line with the fields Cloud Logging and CloudWatch read.
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// How to reach Redis and how hard to try.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URLs, password removed (it is in `password`).
    /// One URL, or several cluster seed nodes.
    #[serde(serialize_with = "serialize_urls")]
    pub urls: Vec<Url>,
    /// Talk the Redis Cluster protocol (`REDIS_CLUSTER`, or several URLs).
    pub cluster: bool,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password (from the URL or `REDIS_PASSWORD`).
    pub password: Option<Secret>,
    /// Multiplexed connections kept per process (`REDIS_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Time allowed to open a connection, handshake included.
    #[serde(serialize_with = "serialize_ms")]
    pub connect_timeout: Duration,
    /// Deadline of every Redis round trip, including the wait for a reconnect.
    #[serde(serialize_with = "serialize_ms")]
    pub command_timeout: Duration,
    /// Deadline of the `/redis-health` probe.
    #[serde(serialize_with = "serialize_ms")]
    pub health_timeout: Duration,
    /// Connection attempts after the first, per reconnect.
    pub reconnect_retries: usize,
    /// Longest pause between two connection attempts.
    #[serde(serialize_with = "serialize_ms")]
    pub reconnect_max_delay: Duration,
    /// Consecutive unavailability failures that open the circuit (0 = never).
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before letting one probe through.
    #[serde(serialize_with = "serialize_ms")]
    pub breaker_cooldown: Duration,
    /// TCP keepalive idle time.
    #[serde(serialize_with = "serialize_secs")]
    pub keepalive: Duration,
    /// Extra CA certificate (PEM) trusted for `rediss://`.
    pub tls_ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification. Only by explicit setting; logged loudly.
    pub tls_insecure: bool,
}

fn serialize_urls<S: serde::Serializer>(urls: &[Url], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(Url::as_str))
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The default pool size: one multiplexed connection. `make bench` (the
/// `pool` program) compares it with a round-robin of several and with a
/// checkout pool; see `docs/performance.md` for the numbers behind it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1;

impl RedisConfig {
    /// Settings for a local Redis at `url`, with every other value at its
    /// default. Used by tests and tools; functions use [`Config::from_env`].
    ///
    /// # Errors
    /// When `url` is not a usable `redis://` or `rediss://` URL.
    pub fn for_url(url: &str) -> Result<Self, ConfigError> {
        let mut env = Lookup::new(|_| None);
        env.overrides.push(("REDIS_URL", url.to_owned()));
        Self::from_lookup(&env)
    }

    /// The first URL with any password replaced by `***`: safe to log and return.
    pub fn redacted_url(&self) -> String {
        self.urls
            .iter()
            .map(|u| {
                let mut u = u.clone();
                if self.password.is_some() {
                    // Setting a password on a redis URL cannot fail.
                    let _ = u.set_password(Some("***"));
                }
                if let Some(user) = &self.username {
                    let _ = u.set_username(user);
                }
                u.to_string()
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether the connection is TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.urls.iter().any(|u| u.scheme() == "rediss")
    }

    fn from_lookup(env: &Lookup<'_>) -> Result<Self, ConfigError> {
        let mut username = None;
        let mut password = None;
        let urls = match env.get("REDIS_URL") {
            Some(raw) => {
                let mut urls = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (url, user, pass) = parse_redis_url(part)?;
                    username = username.or(user);
                    password = password.or(pass);
                    urls.push(url);
                }
                if urls.is_empty() {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        "is empty; expected redis://[user:password@]host[:port][/db] or rediss://…",
                    ));
                }
                urls
            }
            None => {
                let host = env.get("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into());
                if host.is_empty()
                    || host
                        .chars()
                        .any(|c| c.is_whitespace() || "/@?#".contains(c))
                {
                    return Err(ConfigError::new(
                        "REDIS_HOST",
                        "expected a host name or IP address, such as 127.0.0.1",
                    ));
                }
                let port: u16 = env.parse("REDIS_PORT", 6379, "a TCP port from 1 to 65535")?;
                if port == 0 {
                    return Err(ConfigError::new(
                        "REDIS_PORT",
                        "expected a TCP port from 1 to 65535",
                    ));
                }
                let tls = env.flag("REDIS_TLS", false)?;
                let db: u32 = env.parse("REDIS_DB", 0, "a database number from 0 to 15")?;
                let scheme = if tls { "rediss" } else { "redis" };
                let host_part = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                let raw = format!("{scheme}://{host_part}:{port}/{db}");
                let (url, _, _) = parse_redis_url(&raw).map_err(|e| ConfigError {
                    var: "REDIS_HOST",
                    ..e
                })?;
                vec![url]
            }
        };
        if let Some(user) = env.get("REDIS_USERNAME") {
            username = Some(user);
        }
        if password.is_none() {
            password = env.get("REDIS_PASSWORD").map(Secret::new);
        }
        let cluster = env.flag("REDIS_CLUSTER", urls.len() > 1)?;
        if !cluster && urls.len() > 1 {
            return Err(ConfigError::new(
                "REDIS_URL",
                "several URLs name Redis Cluster seed nodes; set REDIS_CLUSTER=true or give one URL",
            ));
        }
        let tls_ca_file = env.get("REDIS_TLS_CA_FILE").map(PathBuf::from);
        if let Some(path) = &tls_ca_file
            && !path.is_file()
        {
            return Err(ConfigError::new(
                "REDIS_TLS_CA_FILE",
                format!("{} is not a readable PEM file", path.display()),
            ));
        }
        let config = Self {
            urls,
            cluster,
            username,
            password,
            max_connections: env.range(
                "REDIS_MAX_CONNECTIONS",
                DEFAULT_MAX_CONNECTIONS as u64,
                1,
                64,
            )? as usize,
            connect_timeout: env.millis("REDIS_CONNECT_TIMEOUT_MS", 1_000, 10, 60_000)?,
            command_timeout: env.millis("REDIS_COMMAND_TIMEOUT_MS", 1_000, 10, 60_000)?,
            health_timeout: env.millis("REDIS_HEALTH_TIMEOUT_MS", 500, 10, 60_000)?,
            reconnect_retries: env.range("REDIS_RECONNECT_RETRIES", 2, 0, 10)? as usize,
            reconnect_max_delay: env.millis("REDIS_RECONNECT_MAX_DELAY_MS", 400, 1, 30_000)?,
            breaker_threshold: env.range("REDIS_BREAKER_THRESHOLD", 5, 0, 1_000)? as u32,
            breaker_cooldown: env.millis("REDIS_BREAKER_COOLDOWN_MS", 1_000, 10, 300_000)?,
            keepalive: Duration::from_secs(env.range("REDIS_KEEPALIVE_SECS", 30, 1, 7_200)?),
            tls_ca_file,
            tls_insecure: env.flag("REDIS_TLS_INSECURE", false)?,
        };
        if (config.tls_insecure || config.tls_ca_file.is_some()) && !config.tls() {
            let var = if config.tls_insecure {
                "REDIS_TLS_INSECURE"
            } else {
                "REDIS_TLS_CA_FILE"
            };
            return Err(ConfigError::new(
                var,
                "only applies to TLS connections; use a rediss:// URL or REDIS_TLS=true",
            ));
        }
        Ok(config)
    }
}

/// Parses one Redis URL and takes the credentials out of it.
fn parse_redis_url(raw: &str) -> Result<(Url, Option<String>, Option<Secret>), ConfigError> {
    const WHAT: &str = "expected redis://[user:password@]host[:port][/db] or rediss://…";
    // The message never repeats `raw`: it may hold a password.
    let mut url =
        Url::parse(raw).map_err(|e| ConfigError::new("REDIS_URL", format!("{e}; {WHAT}")))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(ConfigError::new(
            "REDIS_URL",
            format!("unsupported scheme {:?}; {WHAT}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            "REDIS_URL",
            format!("has no host; {WHAT}"),
        ));
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(ConfigError::new(
            "REDIS_URL",
            "the path must be a database number such as /0",
        ));
    }
    if url.port() == Some(0) {
        return Err(ConfigError::new("REDIS_URL", "port 0 is not a valid port"));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = Some(url.username())
        .filter(|u| !u.is_empty() && *u != "default")
        .map(decode);
    let password = url.password().map(|p| Secret::new(decode(p)));
    // Credentials are kept apart from the address so the URL can be logged.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    Ok((url, user, password))
}

/// Settings of the HTTP side of every function.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Port of the plain server (`PORT`, Cloud Run sets it).
    pub port: u16,
    /// Deadline of a whole request; past it the caller gets `503`.
    #[serde(serialize_with = "serialize_ms")]
    pub request_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

/// The settings of the stores that the source documents give several backends.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    /// `DATABASE_URL`: PostgreSQL or MySQL for the `sql` backends.
    pub database_url: Option<Secret>,
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Config {
    /// Redis connection and resilience settings.
    pub redis: RedisConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Session and memory store settings.
    pub stores: StoreConfig,
    /// Bearer token of the admin endpoints; without it they answer `404`.
    pub admin_token: Option<Secret>,
    /// Log line format; JSON on the clouds, text in a terminal.
    pub log_format: LogFormat,
    /// Default log filter (`LOG_LEVEL`, or `RUST_LOG` for full directives).
    pub log_level: String,
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
        let env = Lookup::new(&lookup);
        let redis = RedisConfig::from_lookup(&env)?;
        let http = HttpConfig {
            port: env.range("PORT", 8080, 1, 65_535)? as u16,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 10_000, 100, 900_000)?,
            max_body_bytes: env.range("MAX_BODY_BYTES", 1 << 20, 1_024, 64 << 20)? as usize,
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
        let stores = StoreConfig {
            session_backend: env.backend("SESSION_BACKEND")?,
            memory_backend: env.backend("MEMORY_BACKEND")?,
            session_ttl: Duration::from_secs(env.range(
                "REDIS_SESSION_TTL",
                3_600,
                1,
                31_536_000,
            )?),
            memory_ttl_days: env.range("REDIS_MEMORY_TTL_DAYS", 30, 1, 3_650)? as u32,
            database_url: env.get("DATABASE_URL").map(Secret::new),
        };
        let sql_needed = [stores.session_backend, stores.memory_backend].contains(&Backend::Sql);
        if sql_needed && stores.database_url.is_none() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "is required when SESSION_BACKEND or MEMORY_BACKEND is sql (postgres://… or mysql://…)",
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
        let on_cloud = env.get("AWS_LAMBDA_RUNTIME_API").is_some()
            || env.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || env.get("K_SERVICE").is_some();
        let log_format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("") if on_cloud => LogFormat::Json,
            None | Some("") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(_) => return Err(ConfigError::new("LOG_FORMAT", "expected json or text")),
        };
        let log_level = env.get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if !matches!(
            log_level.to_ascii_lowercase().as_str(),
            "error" | "warn" | "info" | "debug" | "trace" | "off"
        ) {
            return Err(ConfigError::new(
                "LOG_LEVEL",
                "expected one of error, warn, info, debug, trace, off (RUST_LOG takes full directives)",
            ));
        }
        Ok(Self {
            redis,
            http,
            stores,
            admin_token,
            log_format,
            log_level,
        })
    }
}

/// A source of environment variables: a name to its value.
type VarSource<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads environment variables with typed parsing and errors that name the
/// variable and what it accepts. [`Config`] is built with it; a function
/// reads its own settings the same way, at start-up:
///
/// ```
/// use shared::config::Env;
/// let env = Env::from_fn(|name| (name == "RATE_LIMIT_PER_MINUTE").then(|| "120".to_owned()));
/// assert_eq!(env.range("RATE_LIMIT_PER_MINUTE", 60, 1, 100_000).unwrap(), 120);
/// assert!(env.range("RATE_LIMIT_PER_MINUTE", 60, 1, 100).is_err());
/// ```
pub struct Env<'a> {
    lookup: VarSource<'a>,
    overrides: Vec<(&'static str, String)>,
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// The private name used inside this module.
type Lookup<'a> = Env<'a>;

impl Env<'static> {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    /// Variables from `lookup` (a name to its value), e.g. a test's map.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self::new(lookup)
    }

    fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
            overrides: Vec::new(),
        }
    }

    /// The value, trimmed; an empty variable counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (self.lookup)(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value parsed as `T`, or `default` when unset.
    ///
    /// # Errors
    /// When the value does not parse; the message says it is not `allowed`.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        allowed: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::new(name, format!("{raw:?} is not {allowed}"))),
        }
    }

    /// An integer from `min` to `max`, or `default` when unset.
    ///
    /// # Errors
    /// When the value is not an integer in the range.
    pub fn range(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let allowed = format!("an integer from {min} to {max}");
        let value = self.parse(name, default, &allowed)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("{value} is out of range; expected {allowed}"),
            ))
        }
    }

    /// A duration in milliseconds from `min` to `max`, or `default` when unset.
    ///
    /// # Errors
    /// When the value is not an integer in the range.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.range(name, default, min, max)
            .map(Duration::from_millis)
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), or `default`.
    ///
    /// # Errors
    /// When the value is none of those.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(
                name,
                format!("{other:?} is not a boolean; expected true or false"),
            )),
        }
    }

    fn backend(&self, name: &'static str) -> Result<Backend, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
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
        assert!(!c.redis.cluster);
        assert!(c.admin_token.is_none());
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
    fn several_urls_mean_cluster() {
        let c = from(&[("REDIS_URL", "redis://a:7000,redis://b:7001")]).unwrap();
        assert!(c.redis.cluster);
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
}
