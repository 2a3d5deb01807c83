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
//! - `topology`: [`TestRedis`], a server or a cluster (`TEST_REDIS_TOPOLOGY`) for the building blocks' suites.
//! - `lambda`: [`LambdaRuntimeApi`], the Runtime and Extensions API emulator (deadlines, shutdown), and [`lambda_events`] (with the identity shapes of each authorizer).
//! - `idp`: [`TestIdp`], a token issuer serving its JWKS on loopback, its keys ([`TestKey`]) and forged credentials.
//! - `monitor`: [`RedisMonitor`], the commands a server received (`MONITOR`).
//! - [`access`]: the access checks of every tenant route: every bad credential is `401`, another tenant `403`, and Redis sees nothing.
//! - `process`: [`FunctionProcess`], a function binary as a child process.
//! - `proxy`: [`TcpProxy`], a TCP proxy that switches upstream, drops idle connections silently, black-holes, delays.
//! - `logs`: [`CapturedLogs`], log lines kept in memory.
//! - `tls`: [`TlsFiles`], a CA and a server certificate generated per test.
//! - `browser`: [`Browser`], a headless Chromium driven through chromedriver (WebDriver).
//! - `postgres`: [`PostgresServer`], a PostgreSQL server of the test's own (run as `postgres` under root; plain or TCP over TLS only; its Unix socket directory).
//! - `mariadb`: [`MariaDbServer`], a MariaDB / MySQL server of the test's own (plain or `require_secure_transport`; its Unix socket).
//! - [`hostile`]: hostile strings and JSON for property tests, and the key-confinement check.
//! - [`conformance`]: the checks every function binary passes.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod access;
mod browser;
mod cluster;
pub mod conformance;
pub mod hostile;
mod idp;
mod lambda;
mod logs;
mod mariadb;
mod monitor;
mod postgres;
mod process;
mod proxy;
mod redis;
mod tls;
mod topology;

pub use browser::Browser;
pub use cluster::RedisCluster;
pub use idp::{BadCredential, TEST_AUDIENCE, TestIdp, TestKey, now_secs};
pub use lambda::{
    DEFAULT_TIME_LEFT, LambdaReply, LambdaRuntimeApi, RegisteredExtension, SHUTDOWN_GRACE,
    ShutdownOutcome, lambda_env, lambda_events,
};
pub use logs::{CapturedLogs, CapturedWriter};
pub use mariadb::{MariaDbServer, mariadb_bins};
pub use monitor::RedisMonitor;
pub use postgres::{PostgresServer, postgres_bin_dir};
pub use process::FunctionProcess;
pub use proxy::{Direction, TcpProxy};
pub use redis::{BlackHole, RedisServer, RedisServerBuilder, free_port, redis_server_bin};
pub use tls::TlsFiles;
pub use topology::{AdminConnection, TOPOLOGY_VAR, TestRedis};

/// Starts a server with `try_start` (which picks a fresh port each time),
/// retrying: a port free when chosen can be taken before the server binds it
/// when many servers start in parallel. Panics with the last log after five
/// failures.
fn start_on_a_free_port<T>(name: &str, mut try_start: impl FnMut() -> Result<T, String>) -> T {
    let mut last_log = String::new();
    for _ in 0..5 {
        match try_start() {
            Ok(server) => return server,
            Err(log) => last_log = log,
        }
    }
    panic!("{name} did not start after 5 attempts; its last log:\n{last_log}");
}

/// A database name no other test uses: `t_<pid>_<counter>`.
pub fn fresh_database_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t_{}_{}", std::process::id(), NEXT.fetch_add(1, Relaxed))
}

/// Runs one statement on `url` (a test's own setup: `CREATE DATABASE`).
pub async fn run_sql(url: &crate::config::Secret, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url.expose())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test database server: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}
