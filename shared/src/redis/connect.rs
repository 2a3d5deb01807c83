//! Making connections: the addresses, TLS and TCP settings of the
//! configuration, credentials asked of the provider for every connection,
//! and the one question asked of a new server (is it a cluster?).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{
    AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisError,
};

use super::credentials::{CredentialProvider, Credentials};
use crate::config::{ConfigError, Protocol, RedisConfig};

/// The description of the error a connection attempt fails with when the
/// credential provider itself fails (see [`provider_failure`]).
const NO_CREDENTIALS: &str = "no credentials";

/// Why the credential provider gave nothing, when `err` is that failure:
/// the setting and the cause (`cannot read REDIS_PASSWORD_FILE <path>:
/// NotFound`), never a secret. `None` for every other error, a server's
/// refusal included.
pub(crate) fn provider_failure(err: &RedisError) -> Option<&str> {
    (err.kind() == redis::ErrorKind::AuthenticationFailed
        && err.to_string().contains(NO_CREDENTIALS))
    .then(|| err.detail())
    .flatten()
}

/// Builds connections for one client. Holds no connection itself.
pub(crate) struct Connector {
    /// One per configured URL, without credentials.
    infos: Vec<ConnectionInfo>,
    root_cert: Option<Vec<u8>>,
    credentials: Arc<CredentialProvider>,
    protocol: ProtocolVersion,
    config: RedisConfig,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.config.redacted_url())
            .field("credentials", &self.credentials.kind())
            .finish_non_exhaustive()
    }
}

/// Marks its connection dead when the connection's driver reports that the
/// socket closed (RESP3 only: redis-rs delivers the notice as a push).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeathNotice(Arc<AtomicBool>);

impl DeathNotice {
    pub(crate) fn is_dead(&self) -> bool {
        self.0.load(SeqCst)
    }

    pub(crate) fn mark(&self) {
        self.0.store(true, SeqCst);
    }
}

impl redis::aio::AsyncPushSender for DeathNotice {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        if info.kind == PushKind::Disconnection {
            self.mark();
        }
        Ok(())
    }
}

fn invalid_url(err: &RedisError) -> ConfigError {
    ConfigError::new(
        "REDIS_URL",
        // The category only: the error may describe the URL it was given.
        format!("redis rejected the address ({})", err.category()),
    )
}

pub(crate) fn tcp_settings(config: &RedisConfig) -> TcpSettings {
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(
            TcpKeepalive::new()
                .with_time(config.keepalive)
                .with_interval(Duration::from_secs(5).min(config.keepalive)),
        )
        // Unacknowledged writes older than this kill the socket (a silent network).
        .set_user_timeout((config.command_timeout * 4).max(Duration::from_secs(5)))
}

impl Connector {
    /// A connector for `config`. Connects nothing.
    ///
    /// # Errors
    /// An unreadable CA file, an address redis-rs rejects.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        let root_cert = match &config.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                ConfigError::new(
                    "REDIS_TLS_CA_FILE",
                    format!("cannot read {}: {}", path.display(), e.kind()),
                )
            })?),
            None => None,
        };
        let protocol = match config.protocol {
            Protocol::Resp2 => ProtocolVersion::RESP2,
            Protocol::Resp3 => ProtocolVersion::RESP3,
        };
        let mut infos = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let mut url = url.clone();
            if config.tls_insecure {
                url.set_fragment(Some("insecure"));
            }
            let info = url.into_connection_info().map_err(|e| invalid_url(&e))?;
            let redis_info = info.redis_settings().clone().set_protocol(protocol);
            infos.push(
                info.set_redis_settings(redis_info)
                    .set_tcp_settings(tcp_settings(config)),
            );
        }
        if infos.is_empty() {
            return Err(ConfigError::new("REDIS_URL", "no Redis address configured"));
        }
        Ok(Self {
            infos,
            root_cert,
            credentials: Arc::new(CredentialProvider::new(config)),
            protocol,
            config: config.clone(),
        })
    }

    /// Which credential provider connections ask.
    pub(crate) fn credential_kind(&self) -> &'static str {
        self.credentials.kind()
    }

    fn credentials(&self) -> Result<Credentials, RedisError> {
        self.credentials.credentials().map_err(|err| {
            RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                NO_CREDENTIALS,
                err.to_string(),
            ))
        })
    }

    fn with_credentials(&self, info: &ConnectionInfo, creds: &Credentials) -> ConnectionInfo {
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &creds.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &creds.password {
            settings = settings.set_password(password.expose());
        }
        info.clone().set_redis_settings(settings)
    }

    /// A new multiplexed connection to the first address, authenticated with
    /// the provider's current credentials, within `timeout`. `notice` learns
    /// when it dies (RESP3).
    pub(crate) async fn standalone(
        &self,
        timeout: Duration,
        notice: &DeathNotice,
    ) -> Result<MultiplexedConnection, RedisError> {
        let creds = self.credentials()?;
        let info = self.with_credentials(&self.infos[0], &creds);
        let client = match &self.root_cert {
            Some(root) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                },
            ),
            None => redis::Client::open(info),
        }?;
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            // Deadlines are enforced around every call (see RedisConn).
            .set_response_timeout(None)
            // Room for every send the batcher lets in (at most one per
            // command), so handing a batch to the driver never waits for
            // room and batches keep their order (batch.rs).
            .set_pipeline_buffer_size(self.config.max_queued.saturating_add(64));
        if self.protocol == ProtocolVersion::RESP3 {
            config = config.set_push_sender(notice.clone());
        }
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// A new cluster connection from the seed addresses, its initial
    /// topology read, within `timeout`.
    pub(crate) async fn cluster(&self, timeout: Duration) -> Result<ClusterConnection, RedisError> {
        let creds = self.credentials()?;
        let config = &self.config;
        let mut builder = redis::cluster::ClusterClientBuilder::new(self.infos.clone())
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .retries(config.reconnect_retries as u32)
            .max_retry_wait(config.reconnect_max_delay.as_millis() as u64)
            .tcp_settings(tcp_settings(config))
            .use_protocol(self.protocol);
        if self.credentials.is_static() {
            if let Some(user) = &creds.username {
                builder = builder.username(user);
            }
            if let Some(password) = &creds.password {
                builder = builder.password(password.expose());
            }
        } else {
            // Every node connection asks the provider, and re-authenticates
            // when it yields fresh credentials.
            builder = builder.set_credentials_provider(NodeCredentials(self.credentials.clone()));
        }
        if config.tls() {
            builder = builder.tls(if config.tls_insecure {
                redis::cluster::TlsMode::Insecure
            } else {
                redis::cluster::TlsMode::Secure
            });
        }
        if let Some(root) = &self.root_cert {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            });
        }
        let client: ClusterClient = builder.build()?;
        let connect = client.get_async_connection_with_config(
            redis::cluster::ClusterConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.command_timeout),
        );
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(super::error::deadline_error()),
        }
    }
}

/// The credential provider as redis-rs's cluster connections ask it: each
/// node connection subscribes, authenticates with the first credentials, and
/// re-authenticates (`AUTH`) with each later item, one every
/// [`NODE_CREDENTIALS_REFRESH`].
struct NodeCredentials(Arc<CredentialProvider>);

/// How often node connections of a cluster are re-authenticated with fresh
/// credentials (a rotated password file, a new IAM token).
const NODE_CREDENTIALS_REFRESH: Duration = Duration::from_secs(5 * 60);

impl redis::StreamingCredentialsProvider for NodeCredentials {
    fn subscribe(
        &self,
    ) -> std::pin::Pin<
        Box<dyn futures::Stream<Item = redis::RedisResult<redis::BasicAuth>> + Send + 'static>,
    > {
        let provider = self.0.clone();
        Box::pin(futures::stream::unfold(true, move |first| {
            let provider = provider.clone();
            async move {
                if !first {
                    tokio::time::sleep(NODE_CREDENTIALS_REFRESH).await;
                }
                let item = provider
                    .credentials()
                    .map(|c| {
                        redis::BasicAuth::new(
                            c.username.unwrap_or_else(|| "default".to_owned()),
                            c.password
                                .map(|p| p.expose().to_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .map_err(|e| {
                        RedisError::from((
                            redis::ErrorKind::AuthenticationFailed,
                            "no credentials",
                            e.to_string(),
                        ))
                    });
                Some((item, false))
            }
        }))
    }
}

/// Whether the server behind `conn` runs in cluster mode (`INFO cluster`:
/// `cluster_enabled:1`), asked once of the first connection when the
/// configuration leaves the topology open.
pub(crate) async fn is_cluster_enabled(
    conn: &mut MultiplexedConnection,
    timeout: Duration,
) -> Result<bool, RedisError> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("cluster");
    match tokio::time::timeout(timeout, cmd.query_async::<String>(conn)).await {
        Ok(info) => Ok(super::info::info_field(&info?, "cluster_enabled") == Some("1")),
        Err(_) => Err(super::error::deadline_error()),
    }
}

#[cfg(test)]
mod provider_failure_tests {
    use super::*;

    #[test]
    fn only_the_providers_own_failure_is_reported_as_one() {
        let own = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            NO_CREDENTIALS,
            "no redis credentials: cannot read REDIS_PASSWORD_FILE /run/pw: NotFound".to_owned(),
        ));
        assert_eq!(
            provider_failure(&own),
            Some("no redis credentials: cannot read REDIS_PASSWORD_FILE /run/pw: NotFound")
        );
        let refused = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(provider_failure(&refused), None);
    }
}
