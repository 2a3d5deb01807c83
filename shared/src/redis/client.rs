//! The Redis client every function shares.
//!
//! A [`RedisClient`] is cheap to create and does not connect: the first
//! operation does. It holds `REDIS_MAX_CONNECTIONS` slots, each a multiplexed
//! connection (or a Redis Cluster connection) that any number of concurrent
//! callers share, spread round-robin; and one more connection of its own for
//! the health probe, so that a probe never waits behind application
//! commands. Clone it freely: clones share everything. Build one per process
//! (the functions do it in `main`) and pass it in.
//!
//! # One deadline per operation
//!
//! [`RedisClient::conn`] hands out a [`RedisConn`] whose deadline is fixed
//! when it is handed out (`REDIS_COMMAND_TIMEOUT_MS` from then). Everything
//! done on it shares that deadline: the wait for a connection, a check of an
//! idle connection, a script's reload, a retry on a new connection.
//!
//! # The faults it survives
//!
//! The client makes and replaces its connections itself (redis-rs's
//! `ConnectionManager` reconnects only on I/O errors and remembers a refused
//! password forever):
//!
//! - **A connection that died unseen** (the server's idle `timeout`, a
//!   `CLIENT KILL`, a restart, a NAT or load balancer that forgot it, a Lambda
//!   environment frozen meanwhile): with RESP3 the connection's death is
//!   noticed as it happens and the next command gets a new connection; and a
//!   connection unused for `REDIS_IDLE_CHECK_MS` is checked with a `PING`
//!   (within a third of the deadline) before a command goes on it, and
//!   replaced if the `PING` fails. The command itself is sent once.
//! - **A failover behind one endpoint**: a `READONLY`, `MASTERDOWN` or
//!   `LOADING` reply means the connection reaches a replica or a server that
//!   cannot serve; it is replaced and the command (refused, so not executed)
//!   is sent once more on the new one, within the same deadline.
//! - **A half-open connection** (a frozen server, a silent network): two
//!   timeouts in a row on the same connection replace it. The count belongs
//!   to the connection: late timeouts of a replaced one do not count against
//!   its successor.
//! - **Changed credentials**: every connection asks the credential provider
//!   (`super::credentials`); a refused password is retried with backoff
//!   (`REDIS_RECONNECT_MAX_DELAY_MS` at most between attempts), never cached.
//! - **Connect failures**: one connection attempt at a time per slot; callers
//!   that come while an attempt failed recently wait for the next attempt if
//!   their deadline allows, and fail fast otherwise.
//! - **Redis Cluster, one sick node**: the cluster connection keeps one
//!   connection per node; a node that stops answering costs timeouts only to
//!   the keys of its slots. The cluster connection is never replaced for
//!   timeouts (a new one would wait for the sick node too), and the circuit
//!   breaker is kept per group of 16 hash slots, so it opens only for the
//!   sick node's tenants.
//! - **A configuration endpoint of a cluster** (one URL, `REDIS_CLUSTER`
//!   unset): the first connection asks `INFO cluster` and the client switches
//!   to the cluster protocol, saying so in one log line.
//!
//! Every round trip is timed and counted in [`ClientMetrics`], and reports to
//! the circuit breaker. The single commands of concurrent callers on one
//! connection are written in batches (`super::batch`).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};
use serde::Serialize;
use tokio::time::Instant;

use super::batch::Batcher;
use super::breaker::{CircuitBreaker, CircuitSnapshot};
use super::connect::{Connector, DeathNotice, is_cluster_enabled};
use super::error::{
    ErrorKind, RedisFailure, circuit_open_error, classify, deadline_error, is_role_change,
    overloaded_error,
};
use super::metrics::{ClientMetrics, MetricsSnapshot};
use crate::blocks::keys::hash_slot;
use crate::config::{ConfigError, RedisConfig, Topology};
use crate::telemetry::{IntervalPolicy, IntervalSource, IntervalSummary};

/// Consecutive timeouts on one connection after which it is presumed
/// half-open and replaced.
const HALF_OPEN_TIMEOUTS: u32 = 2;

/// Hash slots per circuit breaker in cluster mode: a node serves ranges of
/// thousands of slots, so a group of 16 almost always belongs to one node.
const SLOTS_PER_BREAKER: usize = 16;

/// The first pause after a failed connection attempt; it doubles up to
/// `REDIS_RECONNECT_MAX_DELAY_MS`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// The shared Redis client. See the module documentation.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    connector: Connector,
    /// 0: not known yet, 1: standalone, 2: cluster.
    topology: AtomicU8,
    /// Serialises the first connection while the topology is being asked.
    detecting: tokio::sync::Mutex<()>,
    slots: Box<[Slot]>,
    health: Slot,
    next_slot: AtomicUsize,
    generations: AtomicU64,
    breaker: CircuitBreaker,
    /// Cluster mode: one breaker per [`SLOTS_PER_BREAKER`] hash slots.
    slot_breakers: std::sync::OnceLock<Box<[CircuitBreaker]>>,
    metrics: ClientMetrics,
    flags: ClientFlags,
    origin: Instant,
}

/// What the client has learnt about its server.
#[derive(Debug)]
pub(crate) struct ClientFlags {
    /// Whether `EVALSHA_RO` / `EVAL_RO` may be used (Redis 7 or later).
    pub(crate) scripts_read_only: AtomicBool,
}

const TOPOLOGY_UNKNOWN: u8 = 0;
const TOPOLOGY_STANDALONE: u8 = 1;
const TOPOLOGY_CLUSTER: u8 = 2;

#[derive(Clone)]
enum Handle {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// One connection and what is known about it.
struct Live {
    handle: Handle,
    generation: u64,
    batcher: Arc<Batcher>,
    notice: DeathNotice,
    /// Consecutive timeouts on this connection (never its successor's).
    timeouts: AtomicU32,
    /// When it last answered, in µs since the client's origin.
    last_answer: AtomicU64,
    created: Instant,
}

/// A place for one connection, and its (re)connection state.
#[derive(Default)]
struct Slot {
    live: ArcSwapOption<Live>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// After a failed attempt: the error and when the next attempt may go.
    failure: Mutex<Option<Failure>>,
}

#[derive(Clone)]
struct Failure {
    error: RedisError,
    retry_at: Instant,
    attempts: u32,
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
        let connector = Connector::new(&config)?;
        let topology = match config.topology {
            Topology::Standalone => TOPOLOGY_STANDALONE,
            Topology::Cluster => TOPOLOGY_CLUSTER,
            Topology::Detect => TOPOLOGY_UNKNOWN,
        };
        let slots = (0..config.max_connections)
            .map(|_| Slot::default())
            .collect();
        let breaker = CircuitBreaker::new(
            config.breaker_threshold,
            config.breaker_cooldown,
            config.command_timeout * 2,
        );
        let inner = Inner {
            connector,
            topology: AtomicU8::new(topology),
            detecting: tokio::sync::Mutex::new(()),
            slots,
            health: Slot::default(),
            next_slot: AtomicUsize::new(0),
            generations: AtomicU64::new(0),
            breaker,
            slot_breakers: std::sync::OnceLock::new(),
            metrics: ClientMetrics::default(),
            flags: ClientFlags {
                scripts_read_only: AtomicBool::new(true),
            },
            origin: Instant::now(),
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Which credential provider new connections ask: `static`, `file` or
    /// `elasticache-iam`.
    pub fn credential_provider(&self) -> &'static str {
        self.inner.connector.credential_kind()
    }

    /// Whether the client talks the cluster protocol: `None` until the first
    /// connection has told (topology `detect`).
    pub fn is_cluster(&self) -> Option<bool> {
        match self.inner.topology.load(Relaxed) {
            TOPOLOGY_STANDALONE => Some(false),
            TOPOLOGY_CLUSTER => Some(true),
            _ => None,
        }
    }

    /// A connection for one operation, unless the circuit breaker is open.
    /// Everything done on it shares one deadline, `REDIS_COMMAND_TIMEOUT_MS`
    /// from now.
    ///
    /// # Errors
    /// [`RedisFailure::CircuitOpen`] while the breaker fails fast.
    pub fn conn(&self) -> Result<RedisConn, RedisFailure> {
        if let Err(retry_after) = self.inner.breaker.try_acquire() {
            self.inner.metrics.record_circuit_rejection();
            return Err(RedisFailure::CircuitOpen { retry_after });
        }
        Ok(self.conn_on(Lane::Shared(0), self.inner.config.command_timeout))
    }

    /// A connection whose operation has `budget` (from now), bypassing the
    /// circuit breaker: for callers that bound their own work (a probe, a
    /// key scan). Outcomes still count.
    pub fn conn_with_deadline(&self, budget: Duration) -> RedisConn {
        self.conn_on(Lane::Shared(0), budget)
    }

    /// The health probe's own connection, with `budget`: never batched,
    /// never behind application commands, bypassing the circuit breaker (the
    /// probe must see the real server; its success closes an open circuit).
    pub(crate) fn health_conn(&self, budget: Duration) -> RedisConn {
        self.conn_on(Lane::Health, budget)
    }

    fn conn_on(&self, lane: Lane, budget: Duration) -> RedisConn {
        let mut deadline = Instant::now() + budget;
        if let Some(request) = request_deadline() {
            // No operation outlives the request it serves.
            deadline = deadline.min(request);
        }
        let lane = match lane {
            // The connection is chosen once per operation: its round trips
            // stay in order on one connection.
            Lane::Shared(_) => {
                let n = self.inner.slots.len();
                Lane::Shared(if n == 1 {
                    0
                } else {
                    self.inner.next_slot.fetch_add(1, Relaxed) % n
                })
            }
            Lane::Health => Lane::Health,
        };
        RedisConn {
            client: self.clone(),
            lane,
            deadline,
        }
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

    /// Replaces every connection before its next use: for a caller that
    /// learnt the server behind them changed (the health probe saw a
    /// replica).
    pub(crate) fn replace_all(&self) {
        for slot in self
            .inner
            .slots
            .iter()
            .chain(std::iter::once(&self.inner.health))
        {
            if let Some(live) = slot.live.load_full() {
                self.inner
                    .retire(slot, &live, "the server became a replica");
            }
        }
    }

    /// Pool state for health and metrics.
    pub fn pool(&self) -> PoolSnapshot {
        PoolSnapshot {
            kind: match self.is_cluster() {
                Some(true) => "cluster",
                _ => "multiplexed",
            },
            size: self.inner.slots.len(),
            open: self
                .inner
                .slots
                .iter()
                .filter(|s| s.live.load().is_some())
                .count(),
            queued: self
                .inner
                .slots
                .iter()
                .filter_map(|s| s.live.load_full())
                .map(|l| l.batcher.in_flight())
                .sum(),
            credentials: self.credential_provider(),
        }
    }

    /// Circuit-breaker state (the whole client's; in cluster mode, keyless
    /// commands'). `open_slot_groups` counts cluster slot groups failing fast.
    pub fn circuit(&self) -> CircuitSnapshot {
        let mut snapshot = self.inner.breaker.snapshot();
        if let Some(groups) = self.inner.slot_breakers.get() {
            snapshot.open_slot_groups = groups.iter().filter(|b| b.is_open()).count();
        }
        snapshot
    }

    /// Operation counters and latency.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Whether the client talks the cluster protocol, asking the server on
    /// the first connection if the configuration left it open.
    ///
    /// # Errors
    /// When no connection can be made to ask.
    pub async fn cluster_mode(&self) -> Result<bool, RedisFailure> {
        if let Some(known) = self.is_cluster() {
            return Ok(known);
        }
        let conn = self.conn_with_deadline(self.inner.config.connect_timeout);
        self.inner
            .live(self.inner.slot_of(conn.lane), conn.deadline, Instant::now())
            .await?;
        Ok(self.is_cluster() == Some(true))
    }

    pub(crate) fn record_fallback(&self) {
        self.inner.metrics.record_fallback();
    }

    /// Notes a queue's figures for the metrics line (see
    /// [`ClientMetrics::record_queue`]).
    pub(crate) fn record_queue(&self, seen: super::metrics::QueueObservation) {
        self.inner.metrics.record_queue(seen);
    }
}

tokio::task_local! {
    /// The deadline of the request the current task serves, if any.
    static REQUEST_DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the latest any Redis operation it starts
/// may end: every [`RedisConn`] handed out inside it gets the earlier of its
/// own deadline and this one. The HTTP layer sets it per request (on Lambda,
/// from the invocation's own deadline), so a Redis stall is answered as a
/// Redis failure before the request, or the invocation, runs out of time.
pub async fn with_request_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    REQUEST_DEADLINE.scope(deadline, work).await
}

/// The deadline set by [`with_request_deadline`] for the current task.
pub fn request_deadline() -> Option<Instant> {
    REQUEST_DEADLINE.try_with(|d| *d).ok()
}

/// Which connection a [`RedisConn`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// One of the `REDIS_MAX_CONNECTIONS` (its index), taken round-robin.
    Shared(usize),
    /// The health probe's own.
    Health,
}

/// Pool state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSnapshot {
    /// `multiplexed` (standalone) or `cluster`.
    pub kind: &'static str,
    /// Configured number of connections (`REDIS_MAX_CONNECTIONS`).
    pub size: usize,
    /// Connections open now (each is made on first use).
    pub open: usize,
    /// Commands waiting or in flight on them.
    pub queued: usize,
    /// The credential provider new connections ask.
    pub credentials: &'static str,
}

impl Inner {
    fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    /// `at` in µs since the client's origin.
    fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64
    }

    fn is_cluster(&self) -> bool {
        self.topology.load(Relaxed) == TOPOLOGY_CLUSTER
    }

    fn slot_of(&self, lane: Lane) -> &Slot {
        match lane {
            Lane::Shared(index) => &self.slots[index % self.slots.len()],
            Lane::Health if !self.is_cluster() => &self.health,
            // A cluster's health is asked through the cluster connection
            // (its per-node connections do not queue behind one another).
            Lane::Health => &self.slots[0],
        }
    }

    fn slot_breakers(&self) -> &[CircuitBreaker] {
        self.slot_breakers.get_or_init(|| {
            (0..16_384 / SLOTS_PER_BREAKER)
                .map(|_| {
                    CircuitBreaker::new(
                        self.config.breaker_threshold,
                        self.config.breaker_cooldown,
                        self.config.command_timeout * 2,
                    )
                })
                .collect()
        })
    }

    /// Whether `live` may take a command at `now` (not dead, not too old).
    fn usable(&self, live: &Live, now: Instant) -> bool {
        if live.notice.is_dead() {
            return false;
        }
        let age = self.config.max_connection_age;
        age.is_zero() || now.saturating_duration_since(live.created) < age
    }

    /// Takes `live` out of `slot` (if it is still there) so the next caller
    /// connects anew.
    fn retire(&self, slot: &Slot, live: &Arc<Live>, why: &'static str) {
        live.notice.mark();
        let current = slot.live.load();
        if let Some(installed) = &*current
            && Arc::ptr_eq(installed, live)
        {
            let previous = slot.live.compare_and_swap(&current, None::<Arc<Live>>);
            if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, live)) {
                self.metrics.record_connection_replaced();
                tracing::warn!(
                    generation = live.generation,
                    reason = why,
                    "redis connection replaced"
                );
            }
        }
    }

    /// The slot's connection, made (or remade) if needed, before `deadline`.
    /// `now` is the caller's reading of the clock (one per operation).
    async fn live(
        &self,
        slot: &Slot,
        deadline: Instant,
        now: Instant,
    ) -> Result<Arc<Live>, RedisError> {
        if let Some(live) = slot.live.load_full()
            && self.usable(&live, now)
        {
            return Ok(live);
        }
        let _one_at_a_time = tokio::time::timeout_at(deadline, slot.connecting.lock())
            .await
            .map_err(|_| deadline_error())?;
        loop {
            if let Some(live) = slot.live.load_full() {
                if self.usable(&live, Instant::now()) {
                    return Ok(live);
                }
                slot.live.store(None);
            }
            let waited = {
                let failure = slot.failure.lock().unwrap_or_else(|e| e.into_inner());
                failure.clone()
            };
            if let Some(failure) = waited
                && Instant::now() < failure.retry_at
            {
                if failure.retry_at >= deadline {
                    // The next attempt is not due before this caller's
                    // deadline: fail fast with what the last one found.
                    return Err(failure.error);
                }
                tokio::time::sleep_until(failure.retry_at).await;
            }
            let attempt = deadline.saturating_duration_since(Instant::now());
            if attempt.is_zero() {
                return Err(deadline_error());
            }
            let cut_short = attempt < self.config.connect_timeout;
            match self.connect(attempt.min(self.config.connect_timeout)).await {
                // This caller's own deadline cut the attempt short: that says
                // nothing about the server, so nobody else waits for it.
                Err(error) if cut_short && error.is_timeout() => return Err(error),
                Ok(live) => {
                    *slot.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let live = Arc::new(live);
                    slot.live.store(Some(live.clone()));
                    return Ok(live);
                }
                Err(error) => {
                    let mut failure = slot.failure.lock().unwrap_or_else(|e| e.into_inner());
                    let attempts = failure.as_ref().map_or(0, |f| f.attempts) + 1;
                    let pause = FIRST_RETRY_DELAY
                        .saturating_mul(1 << attempts.min(10).saturating_sub(1))
                        .min(self.config.reconnect_max_delay);
                    *failure = Some(Failure {
                        error: error.clone(),
                        retry_at: Instant::now() + pause,
                        attempts,
                    });
                    if let Some(why) = super::connect::provider_failure(&error) {
                        // The provider had nothing to give (an unreadable
                        // password file, missing AWS credentials): say so,
                        // it is not the server refusing. `why` names the
                        // setting and the cause, never a secret.
                        tracing::warn!(
                            credentials = self.connector.credential_kind(),
                            attempts,
                            "{why}; asking the provider again on the next attempt"
                        );
                    } else if classify(&error) == ErrorKind::Auth {
                        tracing::warn!(
                            credentials = self.connector.credential_kind(),
                            attempts,
                            "redis refused the credentials; asking the provider again on the next attempt"
                        );
                    }
                    let retries_left = (attempts as usize) <= self.config.reconnect_retries;
                    if !retries_left || Instant::now() + pause >= deadline {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// One connection attempt, within `timeout`.
    async fn connect(&self, timeout: Duration) -> Result<Live, RedisError> {
        let started = Instant::now();
        let handle = match self.topology.load(Relaxed) {
            TOPOLOGY_CLUSTER => Handle::Cluster(self.connector.cluster(timeout).await?),
            TOPOLOGY_UNKNOWN => {
                let _asking = self.detecting.lock().await;
                if self.topology.load(Relaxed) == TOPOLOGY_UNKNOWN {
                    return Box::pin(self.detect_and_connect(timeout)).await;
                }
                drop(_asking);
                return Box::pin(self.connect(timeout.saturating_sub(started.elapsed()))).await;
            }
            _ => {
                let notice = DeathNotice::default();
                let conn = self.connector.standalone(timeout, &notice).await?;
                return Ok(self.fresh(Handle::Single(conn), notice));
            }
        };
        Ok(self.fresh(handle, DeathNotice::default()))
    }

    /// The first connection when the configuration left the topology open:
    /// connect as to one server and ask it whether it is a cluster node.
    async fn detect_and_connect(&self, timeout: Duration) -> Result<Live, RedisError> {
        let deadline = Instant::now() + timeout;
        let notice = DeathNotice::default();
        let mut conn = self.connector.standalone(timeout, &notice).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if is_cluster_enabled(&mut conn, left).await? {
            self.topology.store(TOPOLOGY_CLUSTER, Relaxed);
            tracing::info!(
                redis = %self.config.redacted_url(),
                "the Redis server is a cluster node (INFO cluster: cluster_enabled:1); using the Redis Cluster protocol"
            );
            let left = deadline.saturating_duration_since(Instant::now());
            return Ok(self.fresh(
                Handle::Cluster(self.connector.cluster(left).await?),
                DeathNotice::default(),
            ));
        }
        self.topology.store(TOPOLOGY_STANDALONE, Relaxed);
        Ok(self.fresh(Handle::Single(conn), notice))
    }

    fn fresh(&self, handle: Handle, notice: DeathNotice) -> Live {
        Live {
            handle,
            generation: self.generations.fetch_add(1, Relaxed) + 1,
            batcher: Arc::new(Batcher::new(self.config.max_queued)),
            notice,
            timeouts: AtomicU32::new(0),
            last_answer: AtomicU64::new(self.now_us()),
            created: Instant::now(),
        }
    }

    /// The breaker that guards `cmd`: in cluster mode, that of the command's
    /// slot group (keyless commands: the client's).
    fn breaker_for(&self, slot: Option<u16>) -> &CircuitBreaker {
        match slot {
            Some(slot) if self.is_cluster() => {
                &self.slot_breakers()[usize::from(slot) / SLOTS_PER_BREAKER]
            }
            _ => &self.breaker,
        }
    }

    /// Counts the outcome of one round trip on `live` and acts on it.
    fn observe(
        &self,
        slot: &Slot,
        live: &Arc<Live>,
        breaker: &CircuitBreaker,
        started: Instant,
        error: Option<&RedisError>,
    ) {
        // One clock reading for everything below.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        let Some(err) = error else {
            self.metrics.record_at(elapsed, Ok(()), now.into_std());
            breaker.record_success();
            let now_us = self.us_at(now);
            // A store only when it moves by a millisecond: the idle check
            // needs no finer, and a write per command would move the cache
            // line between the threads that share the connection.
            if now_us.saturating_sub(live.last_answer.load(Relaxed)) >= 1_000 {
                live.last_answer.store(now_us, Relaxed);
            }
            if live.timeouts.load(Relaxed) != 0 {
                live.timeouts.store(0, Relaxed);
            }
            return;
        };
        let kind = classify(err);
        self.metrics.record_at(elapsed, Err(kind), now.into_std());
        let dropped = kind == ErrorKind::Connect && err.is_connection_dropped();
        if dropped {
            // A connection that died (a kill, an idle close, a restart) says
            // nothing yet about Redis: the reconnect that follows does, and
            // its failures count. So does everything in flight on it, once.
        } else if kind.is_unavailable() {
            breaker.record_failure(started.into_std());
        } else {
            // The server answered: it is reachable, whatever it said.
            breaker.record_success();
            live.last_answer.store(self.now_us(), Relaxed);
        }
        let single = matches!(live.handle, Handle::Single(_));
        match kind {
            ErrorKind::Timeout if single => {
                let timeouts = live.timeouts.fetch_add(1, Relaxed) + 1;
                if timeouts >= HALF_OPEN_TIMEOUTS {
                    self.retire(slot, live, "it keeps timing out (half-open?)");
                }
            }
            ErrorKind::Connect if single && dropped => {
                self.retire(slot, live, "the connection was lost");
            }
            // A refused password is asked of the provider again on a new
            // connection (cluster too: its node connections reuse it).
            ErrorKind::Auth => self.retire(slot, live, "the server refused the credentials"),
            _ if kind != ErrorKind::Timeout => {
                live.timeouts.store(0, Relaxed);
            }
            _ => {}
        }
    }
}

/// One operation's connection: a handle on a shared multiplexed connection,
/// with the operation's deadline. Implements redis-rs [`ConnectionLike`], so
/// commands, pipelines and scripts run on it as usual; each round trip is
/// bounded by what is left of the deadline, timed and counted.
pub struct RedisConn {
    client: RedisClient,
    lane: Lane,
    deadline: Instant,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn")
            .field("lane", &self.lane)
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

/// The first error reply in `values`: redis-rs hands a server's error reply
/// back as a value (turned into an error only when the caller parses it), and
/// the round trip's outcome must count it as the failure it is.
///
/// `NOSCRIPT` is not counted: it is the normal first exchange for a script
/// the server has not cached yet (the body is sent next).
fn error_reply<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<RedisError> {
    values.into_iter().find_map(|v| match v {
        Value::ServerError(e) if e.kind() != Some(ServerErrorKind::NoScript) => {
            Some(RedisError::from(e.clone()))
        }
        _ => None,
    })
}

/// The hash slot of a command's first key, for the cluster's per-slot
/// breakers: the key of a script call is its fourth word, of a keyed
/// command its second. Keyless commands have none.
fn command_slot(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?;
    let upper = name.to_ascii_uppercase();
    let key = match upper.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let _script = args.next()?;
            let numkeys = args.next()?;
            if numkeys == b"0" {
                return None;
            }
            args.next()?
        }
        b"PING" | b"INFO" | b"SCAN" | b"ROLE" | b"CLIENT" | b"CONFIG" | b"DBSIZE" | b"SCRIPT"
        | b"ECHO" | b"TIME" | b"CLUSTER" | b"HELLO" | b"AUTH" | b"SELECT" | b"MULTI" | b"EXEC"
        | b"WAIT" => return None,
        _ => args.next()?,
    };
    Some(hash_slot(key))
}

/// What a round trip sends.
enum Request<'a> {
    One(&'a Cmd),
    Many(&'a Pipeline, usize, usize),
}

impl Request<'_> {
    fn slot(&self) -> Option<u16> {
        match self {
            Self::One(cmd) => command_slot(cmd),
            Self::Many(pipe, ..) => pipe.cmd_iter().find_map(command_slot),
        }
    }
}

enum Reply {
    One(Value),
    Many(Vec<Value>),
}

impl Reply {
    fn error(&self) -> Option<RedisError> {
        match self {
            Self::One(v) => error_reply(std::iter::once(v)),
            Self::Many(vs) => error_reply(vs),
        }
    }
}

impl RedisConn {
    /// What is left of this operation's deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The operation's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn scripts_read_only_supported(&self) -> bool {
        self.client.inner.flags.scripts_read_only.load(Relaxed)
    }

    pub(crate) fn client_flags(&self) -> &ClientFlags {
        &self.client.inner.flags
    }

    /// One request, with the faults of the module documentation handled.
    async fn round_trip(&self, request: Request<'_>) -> RedisResult<Reply> {
        let inner = &self.client.inner;
        let slot = inner.slot_of(self.lane);
        let breaker = match self.lane {
            Lane::Shared(_) if inner.is_cluster() => {
                let breaker = inner.breaker_for(request.slot());
                if let Err(retry_after) = breaker.try_acquire() {
                    inner.metrics.record_circuit_rejection();
                    return Err(circuit_open_error(retry_after));
                }
                breaker
            }
            _ => &inner.breaker,
        };
        for attempt in 0..2 {
            // One clock reading per attempt: the connection's age, its idle
            // time and the attempt's latency (which so includes an idle
            // check's PING: the operation waited for it) all start here.
            let started = Instant::now();
            let live = match inner.live(slot, self.deadline, started).await {
                Ok(live) => live,
                Err(err) => {
                    // No connection: one failed operation, whatever the
                    // attempts to connect were.
                    let kind = classify(&err);
                    inner.metrics.record(started.elapsed(), Err(kind));
                    if kind.is_unavailable() {
                        breaker.record_failure(started.into_std());
                    }
                    return Err(err);
                }
            };
            let live = match self.checked(slot, live, started).await {
                Some(live) => live,
                None => continue,
            };
            let result = self.send(&live, &request, started).await;
            let failure = match &result {
                Ok(reply) => reply.error(),
                Err(err) => Some(err.clone()),
            };
            inner.observe(slot, &live, breaker, started, failure.as_ref());
            match failure {
                Some(err) if attempt == 0 && is_role_change(&err) && !inner.is_cluster() => {
                    // Refused, so not executed: the same request goes once
                    // more on a new connection (a failover moved the primary).
                    inner.retire(slot, &live, "a replica answered (failover)");
                }
                _ => return result,
            }
        }
        Err(deadline_error())
    }

    /// `live`, checked first with a `PING` if it has not answered for
    /// `REDIS_IDLE_CHECK_MS`; `None` when the check found it dead (it was
    /// retired; the caller takes a new one).
    async fn checked(&self, slot: &Slot, live: Arc<Live>, now: Instant) -> Option<Arc<Live>> {
        let inner = &self.client.inner;
        let threshold = inner.config.idle_check;
        let Handle::Single(conn) = &live.handle else {
            return Some(live);
        };
        let idle_us = inner
            .us_at(now)
            .saturating_sub(live.last_answer.load(Relaxed));
        // Commands in flight without an answer are a slow server, not an
        // idle connection: the timeouts' half-open rule covers that case.
        if threshold.is_zero()
            || idle_us < threshold.as_micros() as u64
            || live.batcher.in_flight() > 0
        {
            return Some(live);
        }
        let budget = self.remaining() / 3;
        let mut conn = conn.clone();
        let ping = redis::cmd("PING");
        let answer = tokio::time::timeout(budget, conn.send_packed_command(&ping)).await;
        match answer {
            Ok(Ok(_)) => {
                live.last_answer.store(inner.now_us(), Relaxed);
                Some(live)
            }
            Ok(Err(err)) if !err.is_connection_dropped() && !err.is_io_error() => Some(live),
            _ => {
                inner.retire(slot, &live, "it died while idle");
                None
            }
        }
    }

    async fn send(
        &self,
        live: &Live,
        request: &Request<'_>,
        started: Instant,
    ) -> RedisResult<Reply> {
        let deadline = self.deadline;
        let inner = &self.client.inner;
        match (&live.handle, request) {
            (Handle::Single(conn), Request::One(cmd)) if self.lane != Lane::Health => {
                match live.batcher.send(conn, cmd, started, deadline).await {
                    Ok(reply) => reply.map(Reply::One),
                    Err(overloaded) => {
                        inner.metrics.record_overload_rejection();
                        Err(overloaded_error(overloaded.queued))
                    }
                }
            }
            (Handle::Single(conn), Request::One(cmd)) => {
                let mut conn = conn.clone();
                bounded(deadline, conn.send_packed_command(cmd))
                    .await
                    .map(Reply::One)
            }
            (Handle::Single(conn), Request::Many(pipe, offset, count)) => {
                let mut conn = conn.clone();
                bounded(deadline, conn.send_packed_commands(pipe, *offset, *count))
                    .await
                    .map(Reply::Many)
            }
            (Handle::Cluster(conn), Request::One(cmd)) => {
                let mut conn = conn.clone();
                bounded(deadline, conn.req_packed_command(cmd))
                    .await
                    .map(Reply::One)
            }
            (Handle::Cluster(conn), Request::Many(pipe, offset, count)) => {
                let mut conn = conn.clone();
                bounded(deadline, conn.req_packed_commands(pipe, *offset, *count))
                    .await
                    .map(Reply::Many)
            }
        }
    }
}

async fn bounded<T>(
    deadline: Instant,
    call: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| Err(deadline_error()))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.round_trip(Request::One(cmd)).await? {
                Reply::One(value) => Ok(value),
                Reply::Many(_) => Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "a single command got several replies",
                ))),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self
                .round_trip(Request::Many(pipeline, offset, count))
                .await?
            {
                Reply::Many(values) => Ok(values),
                Reply::One(_) => Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "a pipeline got a single reply",
                ))),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.client
            .inner
            .config
            .urls
            .first()
            .and_then(|u| u.path().trim_start_matches('/').parse().ok())
            .unwrap_or(0)
    }
}

/// The client's counters feed the metrics line: `MetricsReporter::new(client.clone(), …)`.
impl IntervalSource for RedisClient {
    fn take_interval(&self, policy: Option<IntervalPolicy>) -> Option<IntervalSummary> {
        IntervalSource::take_interval(&self.inner.metrics, policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_of_a_command_is_that_of_its_first_key() {
        let mut get = redis::cmd("GET");
        get.arg("ws:{clinic-2}:x");
        assert_eq!(command_slot(&get), Some(hash_slot(b"clinic-2")));
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("ws:{clinic-4}:a")
            .arg("ws:{clinic-4}:b")
            .arg("x");
        assert_eq!(command_slot(&eval), Some(hash_slot(b"clinic-4")));
        let mut keyless = redis::cmd("EVAL");
        keyless.arg("return 1").arg(0);
        assert_eq!(command_slot(&keyless), None);
        assert_eq!(command_slot(&redis::cmd("PING")), None);
    }
}
