//! The Redis client every function shares.
//!
//! A [`RedisClient`] is cheap to create and does not connect: the first
//! operation does. It holds `REDIS_MAX_CONNECTIONS` slots, each a multiplexed
//! connection (redis-rs `ConnectionManager`, or a `ClusterConnection` in
//! cluster mode) that any number of concurrent callers share; callers are
//! spread over the slots round-robin. Clone it freely: clones share
//! everything. Build one per process (the functions do it in `main`) and pass
//! it in; tests build their own against their own `redis-server`.
//!
//! The single commands of concurrent callers on one connection are written
//! in batches (`super::batch`): one system call for many commands, where
//! redis-rs alone wrote one per command.
//!
//! Every round trip made through a [`RedisConn`] runs under a deadline that
//! also bounds the wait for a reconnect, is timed and counted in
//! [`ClientMetrics`], and reports to the circuit breaker. A connection that
//! times out twice in a row is dropped and replaced on next use: redis-rs
//! reconnects on I/O errors, but a half-open connection (a frozen server, a
//! silent network) produces only timeouts and would otherwise be kept.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{
    Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use serde::Serialize;

use super::batch::Batcher;
use super::breaker::{CircuitBreaker, CircuitSnapshot};
use super::error::{ErrorKind, RedisFailure, classify, deadline_error};
use super::metrics::{ClientMetrics, MetricsSnapshot};
use crate::config::{ConfigError, RedisConfig};
use crate::telemetry::{IntervalPolicy, IntervalSource, IntervalSummary};

/// Consecutive timeouts on one connection after which it is presumed
/// half-open and replaced.
const HALF_OPEN_TIMEOUTS: u32 = 2;

/// The shared Redis client. See the module documentation.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    connector: Connector,
    slots: Box<[Slot]>,
    next_slot: AtomicUsize,
    generations: AtomicU64,
    breaker: CircuitBreaker,
    metrics: ClientMetrics,
}

/// How a fresh connection handle is made. Neither variant connects when the
/// handle is made; the first command does.
enum Connector {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
    },
}

#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

struct Live {
    handle: Handle,
    generation: u64,
    batcher: Arc<Batcher>,
}

#[derive(Default)]
struct Slot {
    live: ArcSwapOption<Live>,
    consecutive_timeouts: AtomicU32,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connection info: it holds the password.
        f.debug_struct("RedisClient")
            .field("target", &self.inner.config.redacted_url())
            .field("pool", &self.pool())
            .finish_non_exhaustive()
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RedisClient {
    /// Builds a client for `config`. Nothing is connected yet.
    ///
    /// # Errors
    /// When the configuration cannot make a client (an unreadable CA file, an
    /// address redis-rs rejects).
    pub fn new(config: RedisConfig) -> Result<Self, ConfigError> {
        if config.tls() {
            install_crypto_provider();
        }
        if config.tls_insecure {
            tracing::warn!(
                setting = "REDIS_TLS_INSECURE",
                "TLS certificate verification of the Redis server is DISABLED; anyone on the network path can impersonate it"
            );
        }
        let root_cert = match &config.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| ConfigError {
                var: "REDIS_TLS_CA_FILE",
                message: format!("cannot read {}: {}", path.display(), e.kind()),
            })?),
            None => None,
        };
        let mut infos = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let mut url = url.clone();
            if config.tls_insecure {
                url.set_fragment(Some("insecure"));
            }
            let info = url.into_connection_info().map_err(|e| invalid_url(&e))?;
            let mut redis_info = info.redis_settings().clone();
            if let Some(user) = &config.username {
                redis_info = redis_info.set_username(user);
            }
            if let Some(password) = &config.password {
                redis_info = redis_info.set_password(password.expose());
            }
            infos.push(
                info.set_redis_settings(redis_info)
                    .set_tcp_settings(tcp_settings(&config)),
            );
        }
        let connector = if config.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(config.reconnect_retries as u32)
                .max_retry_wait(config.reconnect_max_delay.as_millis() as u64)
                .tcp_settings(tcp_settings(&config));
            if let Some(user) = &config.username {
                builder = builder.username(user);
            }
            if let Some(password) = &config.password {
                builder = builder.password(password.expose());
            }
            if config.tls() {
                builder = builder.tls(if config.tls_insecure {
                    redis::cluster::TlsMode::Insecure
                } else {
                    redis::cluster::TlsMode::Secure
                });
            }
            if let Some(root) = root_cert {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                });
            }
            Connector::Cluster {
                client: builder.build().map_err(|e| invalid_url(&e))?,
            }
        } else {
            let info = infos.into_iter().next().ok_or_else(|| ConfigError {
                var: "REDIS_URL",
                message: "no Redis address configured".into(),
            })?;
            let client = match root_cert {
                Some(root) => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    },
                ),
                None => redis::Client::open(info),
            }
            .map_err(|e| invalid_url(&e))?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                // The deadline is enforced around every call (see RedisConn),
                // where it also covers the wait for a reconnect.
                .set_response_timeout(None)
                .set_number_of_retries(config.reconnect_retries)
                .set_min_delay(Duration::from_millis(50).min(config.reconnect_max_delay))
                .set_max_delay(config.reconnect_max_delay)
                .set_exponent_base(2.0);
            Connector::Single {
                client,
                config: manager_config,
            }
        };
        let slots = (0..config.max_connections)
            .map(|_| Slot::default())
            .collect();
        let breaker = CircuitBreaker::new(
            config.breaker_threshold,
            config.breaker_cooldown,
            config.command_timeout * 2,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                connector,
                slots,
                next_slot: AtomicUsize::new(0),
                generations: AtomicU64::new(0),
                breaker,
                metrics: ClientMetrics::default(),
            }),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// A connection for one operation, unless the circuit breaker is open.
    /// Every round trip on it is bounded by `REDIS_COMMAND_TIMEOUT_MS`.
    ///
    /// # Errors
    /// [`RedisFailure::CircuitOpen`] while the breaker fails fast.
    pub fn conn(&self) -> Result<RedisConn, RedisFailure> {
        if let Err(retry_after) = self.inner.breaker.try_acquire() {
            self.inner.metrics.record_circuit_rejection();
            return Err(RedisFailure::CircuitOpen { retry_after });
        }
        self.conn_with_deadline(self.inner.config.command_timeout)
    }

    /// A connection whose round trips have `deadline`, bypassing the circuit
    /// breaker (the health probe must see the real server). Outcomes still
    /// count, so a healthy probe closes an open circuit.
    ///
    /// # Errors
    /// Only if redis-rs refuses to create a connection handle.
    pub fn conn_with_deadline(&self, deadline: Duration) -> Result<RedisConn, RedisFailure> {
        let n = self.inner.slots.len();
        let index = if n == 1 {
            0
        } else {
            self.inner.next_slot.fetch_add(1, Relaxed) % n
        };
        let live = self.inner.live(index)?;
        Ok(RedisConn {
            client: self.clone(),
            slot: index,
            generation: live.generation,
            handle: live.handle.clone(),
            batcher: live.batcher.clone(),
            deadline,
        })
    }

    /// Runs `op` on a connection and classifies its error.
    ///
    /// ```no_run
    /// # async fn demo(redis: &shared::RedisClient) -> Result<(), shared::RedisFailure> {
    /// let visits: u64 = redis
    ///     .run(|mut c| async move { redis::cmd("INCR").arg("ws:{demo}:visits").query_async(&mut c).await })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The classified failure of `op`, or an open circuit.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(RedisConn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn()?;
        op(conn).await.map_err(RedisFailure::from)
    }

    /// Pool state for health and metrics.
    pub fn pool(&self) -> PoolSnapshot {
        PoolSnapshot {
            kind: match self.inner.connector {
                Connector::Single { .. } => "multiplexed",
                Connector::Cluster { .. } => "cluster",
            },
            size: self.inner.slots.len(),
            open: self
                .inner
                .slots
                .iter()
                .filter(|s| s.live.load().is_some())
                .count(),
        }
    }

    /// Circuit-breaker state.
    pub fn circuit(&self) -> CircuitSnapshot {
        self.inner.breaker.snapshot()
    }

    /// Operation counters and latency.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    pub(crate) fn record_fallback(&self) {
        self.inner.metrics.record_fallback();
    }
}

fn invalid_url(err: &RedisError) -> ConfigError {
    ConfigError {
        var: "REDIS_URL",
        // The category only: the error may describe the URL it was given.
        message: format!("redis rejected the address ({})", err.category()),
    }
}

fn tcp_settings(config: &RedisConfig) -> TcpSettings {
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

impl Inner {
    /// The live handle of a slot, creating it on first use.
    fn live(&self, index: usize) -> Result<Arc<Live>, RedisFailure> {
        let slot = &self.slots[index];
        if let Some(live) = slot.live.load_full() {
            return Ok(live);
        }
        let fresh = Arc::new(Live {
            handle: self.connect()?,
            generation: self.generations.fetch_add(1, Relaxed) + 1,
            batcher: Arc::default(),
        });
        let previous = slot
            .live
            .compare_and_swap(&None::<Arc<Live>>, Some(fresh.clone()));
        Ok(match &*previous {
            // Another caller installed one first; use theirs and drop ours.
            Some(theirs) => theirs.clone(),
            None => fresh,
        })
    }

    fn connect(&self) -> Result<Handle, RedisFailure> {
        Ok(match &self.connector {
            Connector::Single { client, config } => Handle::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            ),
            Connector::Cluster { client } => Handle::Cluster(
                client.get_pending_async_connection_with_config(
                    redis::cluster::ClusterConfig::new()
                        .set_connection_timeout(self.config.connect_timeout)
                        .set_response_timeout(self.config.command_timeout),
                ),
            ),
        })
    }

    /// Counts the outcome of one round trip and acts on it.
    fn observe(
        &self,
        slot: usize,
        generation: u64,
        started: Instant,
        elapsed: Duration,
        error: Option<&RedisError>,
    ) {
        let slot_state = &self.slots[slot];
        let Some(err) = error else {
            self.metrics.record(elapsed, Ok(()));
            self.breaker.record_success();
            if slot_state.consecutive_timeouts.load(Relaxed) != 0 {
                slot_state.consecutive_timeouts.store(0, Relaxed);
            }
            return;
        };
        let kind = classify(err);
        self.metrics.record(elapsed, Err(kind));
        // An ACL refusing one command (NOPERM) says nothing about Redis being
        // usable: one tenant's refused requests must not open the circuit for all.
        if kind.is_unavailable() && !is_permission_denied(err) {
            self.breaker.record_failure(started);
        } else {
            self.breaker.record_success();
        }
        if kind != ErrorKind::Timeout {
            slot_state.consecutive_timeouts.store(0, Relaxed);
            return;
        }
        let timeouts = slot_state.consecutive_timeouts.fetch_add(1, Relaxed) + 1;
        if timeouts >= HALF_OPEN_TIMEOUTS {
            let current = slot_state.live.load();
            if let Some(live) = &*current
                && live.generation == generation
            {
                let previous = slot_state
                    .live
                    .compare_and_swap(&current, None::<Arc<Live>>);
                if previous
                    .as_ref()
                    .is_some_and(|p| p.generation == generation)
                {
                    slot_state.consecutive_timeouts.store(0, Relaxed);
                    self.metrics.record_connection_replaced();
                    tracing::warn!(
                        slot,
                        consecutive_timeouts = timeouts,
                        "redis connection keeps timing out (half-open?); replacing it"
                    );
                }
            }
        }
    }
}

/// Pool state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSnapshot {
    /// `multiplexed` (standalone) or `cluster`.
    pub kind: &'static str,
    /// Configured number of connections (`REDIS_MAX_CONNECTIONS`).
    pub size: usize,
    /// Connections created so far (each is created on first use).
    pub open: usize,
}

/// One operation's connection: a handle on a shared multiplexed connection.
/// Implements redis-rs [`ConnectionLike`], so commands, pipelines and scripts
/// run on it as usual; each round trip is bounded, timed and counted.
#[derive(Clone)]
pub struct RedisConn {
    client: RedisClient,
    slot: usize,
    generation: u64,
    handle: Handle,
    batcher: Arc<Batcher>,
    deadline: Duration,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn")
            .field("slot", &self.slot)
            .field("generation", &self.generation)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The first error reply in `values`: redis-rs hands a server's error reply
/// back as a value (turned into an error only when the caller parses it), and
/// the round trip's outcome must count it as the failure it is.
///
/// `NOSCRIPT` is not counted: it is redis-rs's normal first exchange for a
/// script the server has not cached yet (it loads the script and retries).
fn error_reply<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<RedisError> {
    values.into_iter().find_map(|v| match v {
        Value::ServerError(e) if e.kind() != Some(ServerErrorKind::NoScript) => {
            Some(RedisError::from(e.clone()))
        }
        _ => None,
    })
}

/// Whether Redis refused this one command for lack of ACL permission.
fn is_permission_denied(err: &RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(ServerErrorKind::NoPerm) || err.code() == Some("NOPERM")
}

impl RedisConn {
    async fn bounded<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
        error_reply_of: impl FnOnce(&T) -> Option<RedisError>,
    ) -> RedisResult<T> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(deadline_error()),
        };
        let elapsed = started.elapsed();
        let replied = result.as_ref().ok().and_then(error_reply_of);
        self.client.inner.observe(
            self.slot,
            self.generation,
            started,
            elapsed,
            result.as_ref().err().or(replied.as_ref()),
        );
        result
    }

    /// The deadline of each round trip on this connection.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut handle = self.handle.clone();
            let (batcher, deadline) = (self.batcher.clone(), self.deadline);
            self.bounded(
                async move {
                    match &mut handle {
                        // Single commands of concurrent callers share writes.
                        Handle::Single(m) => batcher.send(m, cmd, deadline).await,
                        Handle::Cluster(c) => c.req_packed_command(cmd).await,
                    }
                },
                |value| error_reply(std::iter::once(value)),
            )
            .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut handle = self.handle.clone();
            self.bounded(
                async move {
                    match &mut handle {
                        Handle::Single(m) => m.send_packed_commands(pipeline, offset, count).await,
                        Handle::Cluster(c) => c.req_packed_commands(pipeline, offset, count).await,
                    }
                },
                |values| error_reply(values),
            )
            .await
        })
    }

    fn get_db(&self) -> i64 {
        match &self.handle {
            Handle::Single(m) => m.get_db(),
            Handle::Cluster(_) => 0,
        }
    }
}

/// The client's counters feed the metrics line: `MetricsReporter::new(client.clone(), …)`.
impl IntervalSource for RedisClient {
    fn take_interval(&self, policy: Option<IntervalPolicy>) -> Option<IntervalSummary> {
        IntervalSource::take_interval(&self.inner.metrics, policy)
    }
}
