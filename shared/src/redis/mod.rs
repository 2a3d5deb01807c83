//! The Redis client and what watches it: the lazily connecting, multiplexed
//! [`RedisClient`] with one deadline per round trip, write batching, the
//! circuit breaker, error classification, the client's counters, the
//! `/redis-health` probe and diagnostics.
//!
//! Above `config` and `telemetry`, below `blocks`, `store` and `http`.
//!
//! # Layout
//!
//! - [`client`]: [`RedisClient`] and [`RedisConn`]: connections, deadlines, half-open replacement.
//! - `connect`: making connections (addresses, TLS, credentials, cluster detection).
//! - [`credentials`]: credential providers: static, password file, ElastiCache IAM tokens.
//! - `batch`: write batching of concurrent single commands on one multiplexed connection.
//! - [`script`]: Lua scripts with one deadline, read-only scripts declared read-only.
//! - [`breaker`]: the circuit breaker that fails fast while Redis is down.
//! - [`error`]: [`RedisFailure`] and its kinds, classified by method.
//! - [`metrics`]: operation and error counters, rolling latency percentiles.
//! - [`health`]: [`HealthCheck`], the `/redis-health` probe.
//! - [`info`]: `INFO` parsing and the server's figures.
//! - [`probe`]: a bounded live `PING` probe.
//! - [`diagnostics`]: [`diagnostics::RedisReport`], figures, client state and probe in one report.

mod batch;
pub mod breaker;
pub mod client;
mod connect;
pub mod credentials;
pub mod diagnostics;
pub mod error;
pub mod health;
pub mod info;
pub mod metrics;
pub mod probe;
pub mod script;

pub use breaker::{CircuitSnapshot, CircuitState};
pub use client::{PoolSnapshot, RedisClient, RedisConn, request_deadline, with_request_deadline};
pub use error::{ErrorKind, RedisFailure};
pub use health::{HealthCheck, HealthReport};
pub use script::Script;
