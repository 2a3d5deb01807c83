//! The shared crate against real `redis-server` processes started by the
//! test kit, including their faults: stopped, restarted, paused, client
//! connections killed, a listener that never answers, a wrong password.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod acl;
mod batch;
mod breaker;
mod client;
mod cluster;
mod health;
mod http;
mod managed;
mod tls;

use std::time::{Duration, Instant};

use shared::testkit::RedisServer;
use shared::{RedisClient, RedisConfig};

/// A client for `server` with settings adjusted by `tweak`.
pub fn client_with(server: &RedisServer, tweak: impl FnOnce(&mut RedisConfig)) -> RedisClient {
    let mut config = server.config();
    tweak(&mut config);
    RedisClient::new(config).unwrap()
}

/// A client for a URL, with settings adjusted by `tweak`.
pub fn client_for_url(url: &str, tweak: impl FnOnce(&mut RedisConfig)) -> RedisClient {
    let mut config = RedisConfig::for_url(url).unwrap();
    tweak(&mut config);
    RedisClient::new(config).unwrap()
}

/// `SET` then `GET` of a fresh key through `client`.
pub async fn round_trip(client: &RedisClient, key: &str) -> Result<String, shared::RedisFailure> {
    let key = key.to_owned();
    client
        .run(|mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg("v")
                .exec_async(&mut c)
                .await?;
            redis::cmd("GET").arg(&key).query_async(&mut c).await
        })
        .await
}

/// Polls `op` until it succeeds or `limit` passes; returns how long it took.
pub async fn time_until_ok<F, Fut, T, E>(limit: Duration, mut op: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if op().await.is_ok() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `total_connections_received` from `INFO stats`.
pub fn connections_received(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.admin())
        .unwrap();
    shared::redis::info::info_field(&info, "total_connections_received")
        .unwrap()
        .parse()
        .unwrap()
}
