//! [`RedisConfig`]: how to reach Redis and how hard to try, from `REDIS_URL`
//! or `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD` / `REDIS_TLS` and the
//! `REDIS_*` resilience settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use super::env::{ConfigError, Env};
use super::secret::Secret;
use super::{serialize_ms, serialize_secs};

/// How to reach Redis and how hard to try.
#[derive(Debug, Clone, Serialize)]
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

/// The default pool size: one multiplexed connection. `make bench` (the
/// `pool` program) compares it with a round-robin of several and with a
/// checkout pool; see `docs/performance.md` for the numbers behind it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1;

impl RedisConfig {
    /// Settings for a local Redis at `url`, with every other value at its
    /// default. Used by tests and tools; functions use [`Config::from_env`](super::Config::from_env).
    ///
    /// # Errors
    /// When `url` is not a usable `redis://` or `rediss://` URL.
    pub fn for_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_env(&Env::new(|_| None).with_override("REDIS_URL", url.to_owned()))
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

    pub(crate) fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
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
