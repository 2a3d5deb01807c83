//! The building blocks (rate limiter, queue, lock, idempotency) against real
//! `redis-server` processes started by the test kit, one server per test.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod idempotency;
mod lock;
mod queue;
mod ratelimit;

use shared::blocks::keys::Tenant;
use shared::testkit::TestRedis;

/// A tenant for tests.
pub fn tenant(id: &str) -> Tenant {
    Tenant::new("tenant", id).unwrap()
}

/// Every key on the server, sorted.
pub fn all_keys(server: &TestRedis) -> Vec<String> {
    server.all_keys()
}
