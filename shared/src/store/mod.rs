//! Agent session and memory stores, each behind one trait with Redis, SQL
//! (PostgreSQL, MySQL / MariaDB) and process-memory backends, selected by
//! configuration (`SESSION_BACKEND`, `MEMORY_BACKEND`).
//!
//! Behind the cargo feature `store`: only the functions that keep sessions
//! enable it, so the others do not link the SQL drivers. Above `redis` and
//! `blocks`, below `http`.
//!
//! # Layout
//!
//! - [`error`]: [`StoreError`], the one error of every backend.
//! - [`sql`]: the PostgreSQL / MySQL pool of the `sql` backends and its migrations.
//! - [`session`]: agent sessions (ADK semantics): [`session::SessionStore`] and its backends.
//! - [`memory`]: searchable, expiring agent memory: [`memory::MemoryStore`] and its backends.

pub mod error;
pub mod memory;
pub mod session;
pub mod sql;

pub use error::StoreError;
