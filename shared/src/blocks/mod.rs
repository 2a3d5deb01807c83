//! Building blocks on Redis that functions compose: tenant-scoped keys, a
//! cache, a lock, a reliable queue, a rate limiter, idempotency keys, a
//! fallback combinator, and the listing of one tenant's keys.
//!
//! Each block has the same shape: a constructor taking the
//! [`RedisClient`](crate::RedisClient), a documented key scheme under the
//! tenant's prefix ([`keys`]), and methods returning a typed error whose
//! Redis failures are [`RedisFailure`](crate::RedisFailure)s. Above `redis`,
//! below `store` and `http`.
//!
//! # Layout
//!
//! - [`keys`]: tenant-scoped keys (`ws:{tenant}:…`), id escaping, hash slots.
//! - [`cache`]: cache-aside with HIT/MISS reporting and stampede protection.
//! - [`lock`]: token lock with a TTL; only the holder releases.
//! - [`queue`]: reliable queue: claim with a visibility timeout, ack, nack with a delay, extension, redelivery, dead letters after max deliveries.
//! - [`ratelimit`]: sliding-window rate limiter, one round trip per check.
//! - [`idempotency`]: idempotency keys: first response stored, fingerprint mismatch, in-progress marker.
//! - [`fallback`]: run an operation, return a fallback value on a Redis failure.
//! - [`keyscan`]: the keys of one tenant with their type and TTL, bounded.
//! - [`canonical`]: canonical JSON (sorted keys) and SHA-256 content hashes.
//! - `token`: random tokens for locks, claims, idempotency markers and ids.

pub mod cache;
pub mod canonical;
pub mod fallback;
pub mod idempotency;
pub mod keys;
pub mod keyscan;
pub mod lock;
pub mod queue;
pub mod ratelimit;
pub(crate) mod token;
