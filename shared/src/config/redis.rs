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
    /// Standalone, Redis Cluster, or find out on the first connection
    /// (`REDIS_CLUSTER` unset with one URL).
    pub topology: Topology,
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
    /// Where passwords come from on every (re)connect (`REDIS_CREDENTIAL_PROVIDER`).
    pub credentials: CredentialSource,
    /// `REDIS_PROTOCOL`: RESP3 (Redis 6 or later; the client learns at once
    /// when a connection drops) or RESP2 (any Redis).
    pub protocol: Protocol,
    /// `REDIS_IDLE_CHECK_MS`: a connection unused for this long is checked
    /// with a `PING` (and replaced if it died) before a command goes on it;
    /// zero turns the check off.
    #[serde(serialize_with = "serialize_ms")]
    pub idle_check: Duration,
    /// `REDIS_MAX_CONNECTION_AGE_SECS`: connections older than this are
    /// replaced before their next use (zero: never). ElastiCache IAM
    /// connections are cut by the server after 12 hours.
    #[serde(serialize_with = "serialize_secs")]
    pub max_connection_age: Duration,
    /// `REDIS_MAX_QUEUED`: most commands waiting or in flight on one
    /// connection; past it a command fails fast as `overloaded`.
    pub max_queued: usize,
}

/// Whether the client talks the Redis Cluster protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One server (or a primary endpoint in front of a replication group).
    Standalone,
    /// Redis Cluster: keys are routed to the node that serves their slot.
    Cluster,
    /// Asked of the server on the first connection (`INFO cluster`): a
    /// configuration endpoint of a cluster switches to the cluster protocol.
    Detect,
}

/// The Redis protocol version the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// RESP2: every Redis version.
    Resp2,
    /// RESP3 (`HELLO 3`): Redis 6 or later.
    Resp3,
}

/// Where the client gets its credentials, asked again on every (re)connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CredentialSource {
    /// The password of `REDIS_URL` or `REDIS_PASSWORD` (or none).
    Static,
    /// `REDIS_PASSWORD_FILE`, read again on every connection: a secret
    /// mounted as a file and rotated in place (Kubernetes, Cloud Run
    /// secret volumes, a sidecar).
    File {
        /// The file; its content, trimmed of a final newline, is the password.
        path: PathBuf,
    },
    /// ElastiCache IAM authentication: a short-lived token signed with the
    /// function's own AWS credentials (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), for `REDIS_USERNAME`.
    ElasticacheIam {
        /// `REDIS_IAM_CACHE_NAME`: the replication group id or serverless cache name.
        cache_name: String,
        /// `AWS_REGION` (or `REDIS_IAM_REGION`).
        region: String,
        /// `REDIS_IAM_SERVERLESS`: the cache is ElastiCache Serverless.
        serverless: bool,
    },
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
                for part in split_seed_urls(&raw) {
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
        let topology = match env.get("REDIS_CLUSTER") {
            None if urls.len() > 1 => Topology::Cluster,
            None => Topology::Detect,
            Some(_) if env.flag("REDIS_CLUSTER", false)? => Topology::Cluster,
            Some(_) => Topology::Standalone,
        };
        if topology == Topology::Standalone && urls.len() > 1 {
            return Err(ConfigError::new(
                "REDIS_URL",
                "several URLs name Redis Cluster seed nodes; set REDIS_CLUSTER=true or give one URL",
            ));
        }
        let credentials = credential_source(env, username.as_deref(), password.is_some())?;
        let protocol = match env
            .get("REDIS_PROTOCOL")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("resp3" | "3") => Protocol::Resp3,
            Some("resp2" | "2") => Protocol::Resp2,
            Some(_) => {
                return Err(ConfigError::new(
                    "REDIS_PROTOCOL",
                    "expected resp3 (Redis 6 or later) or resp2 (any Redis)",
                ));
            }
        };
        let default_age = match credentials {
            // ElastiCache cuts IAM-authenticated connections after 12 hours.
            CredentialSource::ElasticacheIam { .. } => 11 * 3_600,
            _ => 0,
        };
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
            topology,
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
            credentials,
            protocol,
            idle_check: env.millis("REDIS_IDLE_CHECK_MS", 1_000, 0, 3_600_000)?,
            max_connection_age: Duration::from_secs(env.range(
                "REDIS_MAX_CONNECTION_AGE_SECS",
                default_age,
                0,
                30 * 86_400,
            )?),
            max_queued: env.range("REDIS_MAX_QUEUED", 4_096, 1, 1_000_000)? as usize,
        };
        if matches!(config.credentials, CredentialSource::ElasticacheIam { .. }) && !config.tls() {
            return Err(ConfigError::new(
                "REDIS_CREDENTIAL_PROVIDER",
                "elasticache-iam needs TLS (ElastiCache accepts IAM tokens only over TLS): use a rediss:// URL or REDIS_TLS=true",
            ));
        }
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

/// The URLs of `REDIS_URL`: one, or cluster seed nodes separated by commas.
/// A comma splits only where the next URL begins (`,redis://` or
/// `,rediss://`), so a password with a comma in it stays whole.
fn split_seed_urls(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in raw.match_indices(',') {
        let rest = raw[i + 1..].trim_start();
        if rest.starts_with("redis://") || rest.starts_with("rediss://") {
            parts.push(raw[start..i].trim());
            start = i + 1;
        }
    }
    parts.push(raw[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `REDIS_CREDENTIAL_PROVIDER` and the settings of the provider it names.
fn credential_source(
    env: &Env<'_>,
    username: Option<&str>,
    has_password: bool,
) -> Result<CredentialSource, ConfigError> {
    let file = env.get("REDIS_PASSWORD_FILE").map(PathBuf::from);
    let named = env
        .get("REDIS_CREDENTIAL_PROVIDER")
        .map(|v| v.to_ascii_lowercase());
    let kind = named
        .as_deref()
        .unwrap_or(if file.is_some() { "file" } else { "static" });
    match kind {
        "static" => Ok(CredentialSource::Static),
        "file" => {
            let path = file.ok_or_else(|| {
                ConfigError::new(
                    "REDIS_PASSWORD_FILE",
                    "is required when REDIS_CREDENTIAL_PROVIDER is file (the path of the password file)",
                )
            })?;
            if has_password {
                return Err(ConfigError::new(
                    "REDIS_PASSWORD_FILE",
                    "is set together with a password in REDIS_URL or REDIS_PASSWORD; keep one",
                ));
            }
            if !path.is_file() {
                return Err(ConfigError::new(
                    "REDIS_PASSWORD_FILE",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            Ok(CredentialSource::File { path })
        }
        "elasticache-iam" | "iam" => {
            if username.is_none() {
                return Err(ConfigError::new(
                    "REDIS_USERNAME",
                    "is required with elasticache-iam: the IAM-enabled ElastiCache user id",
                ));
            }
            if has_password {
                return Err(ConfigError::new(
                    "REDIS_PASSWORD",
                    "must not be set with elasticache-iam (the token replaces the password)",
                ));
            }
            let cache_name = env.get("REDIS_IAM_CACHE_NAME").ok_or_else(|| {
                ConfigError::new(
                    "REDIS_IAM_CACHE_NAME",
                    "is required with elasticache-iam: the replication group id or serverless cache name",
                )
            })?;
            let region = env
                .get("REDIS_IAM_REGION")
                .or_else(|| env.get("AWS_REGION"))
                .ok_or_else(|| {
                    ConfigError::new(
                        "AWS_REGION",
                        "is required with elasticache-iam (Lambda sets it; elsewhere set AWS_REGION or REDIS_IAM_REGION)",
                    )
                })?;
            Ok(CredentialSource::ElasticacheIam {
                cache_name,
                region,
                serverless: env.flag("REDIS_IAM_SERVERLESS", false)?,
            })
        }
        _ => Err(ConfigError::new(
            "REDIS_CREDENTIAL_PROVIDER",
            "expected static, file or elasticache-iam",
        )),
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
