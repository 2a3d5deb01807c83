//! Everything the functions have in common: a Redis client that survives
//! production faults, the HTTP glue that runs one axum `Router` on AWS Lambda
//! or as a plain server, telemetry, and building blocks on Redis.
//!
//! A function is a router plus a few lines of `main`:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn app(ctx: shared::AppContext) -> Router {
//!     let routes = Router::new().route("/hello", get(|| async { "hi" }));
//!     shared::http::finish(routes, &ctx) // adds /redis-health, /healthz, limits, request ids
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     match shared::start("hello") {
//!         Ok(ctx) => shared::serve(app(ctx.clone()), &ctx).await,
//!         Err(code) => code,
//!     }
//! }
//! ```
//!
//! # Layout
//!
//! - [`config`]: typed settings from the environment, validated at start; secrets redacted.
//! - [`error`]: [`RedisFailure`] and its kinds (connect, timeout, auth, other), classified by method.
//! - [`client`]: the lazily connecting, pooled [`RedisClient`] with deadlines and half-open replacement.
//! - [`breaker`]: the circuit breaker that fails fast while Redis is down.
//! - [`cache`]: cache-aside with HIT/MISS reporting and stampede protection (a per-key recompute lock).
//! - [`metrics`]: operation and error counters, rolling latency percentiles.
//! - [`health`]: the `/redis-health` probe.
//! - [`diagnostics`]: server figures from `INFO`, a bounded `PING` probe, a bounded `SCAN` of one tenant's keys.
//! - [`fallback`]: run an operation, return a fallback value on a Redis failure.
//! - [`keys`]: tenant-scoped keys (`ws:{tenant}:…`), id escaping, hash slots.
//! - [`telemetry`]: JSON log lines for Cloud Logging / CloudWatch, text locally.
//!   [`telemetry::names`] is the metric contract the alerts read; [`telemetry::MetricsReporter`]
//!   writes the metrics line (Cloud Logging fields and CloudWatch EMF in one).
//! - [`http`]: `serve` on Lambda or `$PORT`, common routes, [`ApiError`], [`Json`], admin auth.
//! - [`app`]: [`AppContext`] (config + client) and the `start` / `serve` pair `main` calls.
//! - [`canonical`]: canonical JSON (sorted keys), SHA-256 content hashes, hashed ids for logs.
//! - `batch`: write batching of concurrent single commands on one multiplexed connection.
//! - [`ratelimit`]: sliding-window rate limiter, one round trip per check, returns retry-after.
//! - [`queue`]: reliable queue: claim with a visibility timeout, ack, redelivery, no double delivery.
//! - [`lock`]: token lock with a TTL; only the holder releases (compare-and-delete).
//! - [`idempotency`]: idempotency keys: first response stored 24 h, fingerprint mismatch, in-progress marker.
//! - `token`: random tokens for locks, claims and idempotency markers.
//! - [`store`]: [`store::StoreError`], the typed error of the session and memory stores.
//! - [`sql`]: the PostgreSQL / MySQL pool of the `sql` backends and its migrations.
//! - [`session`]: agent sessions (ADK semantics) behind one trait: Redis, SQL and memory backends.
//! - [`memory_store`]: searchable, expiring agent memory behind one trait: Redis, SQL and memory backends.
//! - `testkit` (feature `testkit`, tests only): real `redis-server` processes and their faults.

/// Every binary that links this crate (the functions, the benchmarks, the
/// tests) allocates with mimalloc: under load, glibc's malloc and its arena
/// locks took about 15% of a function's CPU (docs/performance.md). Built
/// without transparent huge pages (feature `no_thp`), which doubled the
/// resident memory of an idle function.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
mod batch;
pub mod breaker;
pub mod cache;
pub mod canonical;
pub mod client;
pub mod config;
pub mod diagnostics;
pub mod error;
pub mod fallback;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod keys;
pub mod lock;
pub mod memory_store;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod session;
pub mod sql;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
mod token;

pub use app::{AppContext, serve, start};
pub use client::{RedisClient, RedisConn};
pub use config::{Config, ConfigError, RedisConfig, Secret};
pub use error::{ErrorKind, RedisFailure};
pub use http::{ApiError, Json};
