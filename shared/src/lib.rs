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
//! // A tenant's routes go behind `shared::http::bind_tenant(routes, &ctx, "<tenant param>")` first.
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
//! One folder per subsystem; each imports only from the lines above it.
//!
//! - [`config`]: typed settings from the environment, validated at start; secrets redacted.
//! - [`contract`]: the metric contract: every name an alert, a dashboard or a probe reads.
//! - [`telemetry`]: log setup (JSON for Cloud Logging / CloudWatch, text locally), latency histograms, the metrics line.
//! - [`redis`]: the client (connections, deadlines, batching, circuit breaker, error kinds, counters), health and diagnostics.
//! - [`blocks`]: building blocks on Redis: keys, cache, lock, queue, rate limiter, idempotency, fallback, key listing.
//! - [`store`] (feature `store`): agent session and memory stores on Redis, SQL or memory.
//! - [`http`]: `serve` on Lambda or `$PORT`, common routes and layers, [`ApiError`], [`Json`], authentication and tenant binding (`AUTH_MODE`), admin auth, [`AppContext`].
//! - `testkit` (feature `testkit`, tests only): real `redis-server`, PostgreSQL and MariaDB processes and their faults.

/// Every binary that links this crate (the functions, the benchmarks, the
/// tests) allocates with mimalloc: under load, glibc's malloc and its arena
/// locks took about 15% of a function's CPU (docs/performance.md). Built
/// without transparent huge pages (feature `no_thp`), which doubled the
/// resident memory of an idle function.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod blocks;
pub mod config;
pub mod contract;
pub mod http;
pub mod redis;
#[cfg(feature = "store")]
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{Config, ConfigError, RedisConfig, Secret};
pub use http::{ApiError, AppContext, Json, serve, start};
pub use redis::{ErrorKind, RedisClient, RedisConn, RedisFailure};
