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
//! - [`metrics`]: operation and error counters, rolling latency percentiles.
//! - [`health`]: the `/redis-health` probe.
//! - [`fallback`]: run an operation, return a fallback value on a Redis failure.
//! - [`keys`]: tenant-scoped keys (`ws:{tenant}:…`), id escaping, hash slots.
//! - [`telemetry`]: JSON log lines for Cloud Logging / CloudWatch, text locally.
//!   [`telemetry::names`] is the metric contract the alerts read; [`telemetry::MetricsReporter`]
//!   writes the metrics line (Cloud Logging fields and CloudWatch EMF in one).
//! - [`http`]: `serve` on Lambda or `$PORT`, common routes, [`ApiError`], [`Json`], admin auth.
//! - [`app`]: [`AppContext`] (config + client) and the `start` / `serve` pair `main` calls.
//! - `testkit` (feature `testkit`, tests only): real `redis-server` processes and their faults.

pub mod app;
pub mod breaker;
pub mod client;
pub mod config;
pub mod error;
pub mod fallback;
pub mod health;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use app::{AppContext, serve, start};
pub use client::{RedisClient, RedisConn};
pub use config::{Config, ConfigError, RedisConfig, Secret};
pub use error::{ErrorKind, RedisFailure};
pub use http::{ApiError, Json};
