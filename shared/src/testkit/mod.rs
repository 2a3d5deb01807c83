//! Test-only tools (feature `testkit`): real `redis-server` processes and the
//! faults production sees, a TCP listener that never answers, a Lambda
//! Runtime API emulator, function binaries run as processes, and captured log
//! lines.
//!
//! Everything here panics with a clear message when the environment is wrong
//! (that is the right failure in a test), which is why the crate's panic lints
//! are relaxed in this module only.
//!
//! # Layout
//!
//! - `redis`: [`RedisServer`] (start, stop, restart, pause, kill clients; TLS, ACL users) and [`BlackHole`].
//! - `cluster`: [`RedisCluster`], a local Redis Cluster of N primaries.
//! - `lambda`: [`LambdaRuntimeApi`], the Runtime API emulator, and [`lambda_events`].
//! - `process`: [`FunctionProcess`], a function binary as a child process.
//! - `logs`: [`CapturedLogs`], log lines kept in memory.
//! - `tls`: [`TlsFiles`], a CA and a server certificate generated per test.
//! - `browser`: [`Browser`], a headless Chromium driven through chromedriver (WebDriver).
//! - [`conformance`]: the checks every function binary passes.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod browser;
mod cluster;
pub mod conformance;
mod lambda;
mod logs;
mod process;
mod redis;
mod tls;

pub use browser::Browser;
pub use cluster::RedisCluster;
pub use lambda::{LambdaReply, LambdaRuntimeApi, lambda_env, lambda_events};
pub use logs::{CapturedLogs, CapturedWriter};
pub use process::FunctionProcess;
pub use redis::{BlackHole, RedisServer, RedisServerBuilder, free_port, redis_server_bin};
pub use tls::TlsFiles;
