//! Agent sessions: events appended on every turn and scoped state, with the
//! semantics of the Agent Development Kit's session services, behind one
//! trait ([`SessionStore`]) with three backends chosen by `SESSION_BACKEND`:
//!
//! - [`RedisSessionStore`] (`redis`, the default): hot sessions with a
//!   sliding TTL (`REDIS_SESSION_TTL`); every operation is one atomic round
//!   trip (a Lua script or a `MULTI`), an append is O(1) in the history.
//! - [`SqlSessionStore`] (`sql`): PostgreSQL or MySQL through `DATABASE_URL`,
//!   the durable rollback path; an append inserts one row and updates the
//!   session row, never reading the history. Sessions do not expire.
//! - [`MemorySessionStore`] (`memory`): process memory for development, with
//!   the same sliding TTL as Redis.
//!
//! # Semantics (every backend)
//!
//! - A session is identified by the whole (app, user, id). `app` follows the
//!   tenant rules of [`crate::blocks::keys`] (1-64 of `A-Z a-z 0-9 _ -`); user and
//!   session ids are any text of 1 to [`MAX_ID_BYTES`] bytes without control
//!   characters.
//! - [`SessionStore::create`] fails with [`StoreError::AlreadyExists`] when the
//!   id is taken, atomically (no check-then-insert race).
//! - State keys prefixed `app:` are shared by every user and session of the
//!   app, `user:` by every session of the user; `temp:` keys are applied to
//!   what an append returns but never stored; other keys belong to the
//!   session. A read returns the three merged, prefixes restored.
//! - [`SessionStore::append_event`] assigns the next sequence number (1, 2,
//!   …, without gaps under any concurrency) and stores the event with
//!   `actions.state_delta` applied. Partial events (`partial: true`) are not
//!   stored. An append to an absent or expired session fails with
//!   [`StoreError::NotFound`] and writes nothing (it never resurrects one);
//!   with `expected_seq` set, it fails with [`StoreError::Stale`] unless the
//!   session is still at that sequence number.
//! - Stored timestamps never go backwards: an event older than the previous
//!   event is stored with the previous one's timestamp, so `after_timestamp`
//!   selects a suffix of the history in every backend. `last_update_time` is
//!   the creation time, then the last event's timestamp.
//! - [`GetSession`]: `after_timestamp` keeps the events at or after it, then
//!   `num_recent_events` keeps the last N of those (`0`: none).

mod ids;
mod in_memory;
mod model;
mod redis;
mod sql;
mod state;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use self::ids::{MAX_ID_BYTES, SessionKey, UserKey};
pub(crate) use self::ids::{new_session_id, validate_id};
pub use self::in_memory::MemorySessionStore;
pub use self::model::{Appended, Event, EventActions, GetSession, Session, State};
pub(crate) use self::model::{now, round_micros};
pub use self::redis::RedisSessionStore;
pub use self::sql::SqlSessionStore;
pub use self::state::{APP_PREFIX, MAX_STATE_KEYS, TEMP_PREFIX, USER_PREFIX};
pub(crate) use self::state::{
    PreparedEvent, ScopedState, merge_state, partial_outcome, prepare_event, split_state,
};
use crate::config::{Backend, StoreConfig};
use crate::redis::RedisClient;
pub use crate::store::error::StoreError;
use crate::store::sql::SqlDatabase;

/// A session store. Object safe: functions hold an `Arc<dyn SessionStore>`
/// chosen at start by `SESSION_BACKEND` (see [`open`]). The module
/// documentation states the semantics every backend has.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// `redis`, `sql` or `memory`.
    fn backend(&self) -> &'static str;

    /// Creates a session with `state` (scoped by prefix; `temp:` keys are
    /// dropped) and the id given, or a fresh one.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when the id is taken; `Invalid` input;
    /// an unavailable backend.
    async fn create(
        &self,
        user: &UserKey,
        state: State,
        id: Option<&str>,
    ) -> Result<Session, StoreError>;

    /// Reads a session, or `None` when it is absent or expired.
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn get(&self, key: &SessionKey, query: GetSession)
    -> Result<Option<Session>, StoreError>;

    /// The user's sessions, without events, in no particular order.
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError>;

    /// Deletes a session and its events; deleting an absent one succeeds.
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;

    /// Appends an event (see the module documentation).
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Stale`], `Invalid` input, an
    /// unavailable backend. Nothing is written when it fails.
    async fn append_event(
        &self,
        key: &SessionKey,
        event: Event,
        expected_seq: Option<u64>,
    ) -> Result<Appended, StoreError>;
}

/// The session store `config.session_backend` names. `sql` needs `database`
/// (migrated by the caller; see [`crate::store::sql::SqlDatabase::migrate`]).
///
/// # Errors
/// [`StoreError::Invalid`] (field `DATABASE_URL`) when the backend is `sql`
/// and no database is given.
pub fn open(
    config: &StoreConfig,
    redis: &RedisClient,
    database: Option<&SqlDatabase>,
) -> Result<Arc<dyn SessionStore>, StoreError> {
    Ok(match config.session_backend {
        Backend::Sql => match database {
            Some(db) => Arc::new(SqlSessionStore::new(db.clone())),
            None => {
                return Err(StoreError::invalid(
                    "DATABASE_URL",
                    "is required when SESSION_BACKEND is sql",
                ));
            }
        },
        Backend::Memory => Arc::new(MemorySessionStore::new(config.session_ttl)),
        Backend::Redis => Arc::new(RedisSessionStore::new(redis.clone(), config.session_ttl)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_is_split_by_prefix_and_temp_is_set_aside() {
        let mut state = State::new();
        state.insert("app:theme".into(), json!("dark"));
        state.insert("user:lang".into(), json!("pt"));
        state.insert("temp:scratch".into(), json!(1));
        state.insert("step".into(), json!(2));
        let s = split_state("state", &state).unwrap();
        assert_eq!(s.app, vec![("theme".into(), "\"dark\"".into())]);
        assert_eq!(s.user, vec![("lang".into(), "\"pt\"".into())]);
        assert_eq!(s.session, vec![("step".into(), "2".into())]);
        assert_eq!(s.temp.len(), 1);
        let merged = merge_state(s.session, s.app, s.user).unwrap();
        assert_eq!(merged["app:theme"], "dark");
        assert_eq!(merged["user:lang"], "pt");
        assert!(!merged.contains_key("temp:scratch"));
    }

    #[test]
    fn ids_are_checked_without_repeating_them() {
        assert!(SessionKey::new("agent", "u", "s").is_ok());
        for (app, user, id, field) in [
            ("a:b", "u", "s", "app"),
            ("a", "", "s", "user_id"),
            ("a", "u", "", "session_id"),
            ("a", "u\u{0}x", "s", "user_id"),
            ("a", "u", &"x".repeat(MAX_ID_BYTES + 1), "session_id"),
        ] {
            match SessionKey::new(app, user, id) {
                Err(StoreError::Invalid { field: f, reason }) => {
                    assert_eq!(f, field);
                    assert!(!reason.contains('\u{0}'));
                }
                other => panic!("{app}/{user}: {other:?}"),
            }
        }
        assert!(SessionKey::new("a", "ü:*{x}", &"é".repeat(MAX_ID_BYTES / 2)).is_ok());
    }

    #[test]
    fn events_get_an_id_a_timestamp_and_lose_temp_keys() {
        let e = Event::text("user", "hi")
            .with_state("temp:x", json!(1))
            .with_state("k", json!(2));
        let p = prepare_event(e).unwrap();
        assert_eq!(p.event.id.len(), 32);
        assert!(p.event.timestamp > 1.6e9);
        assert!(!p.event.actions.state_delta.contains_key("temp:x"));
        assert!(p.applied_delta.contains_key("temp:x"));
        let bad = Event {
            timestamp: -1.0,
            ..Event::default()
        };
        assert!(matches!(
            prepare_event(bad),
            Err(StoreError::Invalid {
                field: "event.timestamp",
                ..
            })
        ));
    }
}
