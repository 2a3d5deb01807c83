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
//!   session. A read returns the three merged, prefixes restored. Values are
//!   kept as the JSON text they were sent as ([`RawJson`]): integers beyond
//!   64 bits and floats come back exactly.
//! - [`SessionStore::append_event`] assigns the next sequence number (1, 2,
//!   …, without gaps under any concurrency) and stores the event with
//!   `actions.state_delta` applied. Partial events (`partial: true`) are not
//!   stored. An append to an absent or expired session fails with
//!   [`StoreError::NotFound`] and writes nothing (it never resurrects one);
//!   an event id the session already holds is a retry: nothing is written
//!   and the stored event is returned ([`Appended::duplicate`]), whatever
//!   `expected_seq` says; otherwise, with `expected_seq` set, it fails with
//!   [`StoreError::Stale`] unless the session is still at that sequence number.
//! - **Timestamps.** An event's `timestamp` is stored exactly as given (any
//!   float from 0 to [`MAX_TIMESTAMP`]; absent: now), and
//!   `last_update_time` is the last event's `timestamp` (the creation time
//!   before the first event), as in ADK. Each event also gets an **index
//!   time**, `max(its timestamp, the previous event's index time)`: never
//!   decreasing, and equal to the timestamp whenever timestamps do not go
//!   backwards (every ADK runner).
//! - **`after_timestamp`** ([`GetSession`]): the events whose index time is
//!   `>= after_timestamp`, compared as exact binary64 floats (no rounding,
//!   on every backend): always a suffix of the history. Then
//!   `num_recent_events` keeps the last N of those (`0`: none).
//! - Listings ([`SessionStore::list`], [`SessionStore::list_app`]) carry no
//!   events and are ordered by `last_update_time`, then user id, then
//!   session id (ADK's order: the last is the most recently active).
//! - **Limits** ([`SessionLimits`], settings `SESSION_MAX_*`): at most
//!   `max_events` events per session (the next append is
//!   [`StoreError::LimitReached`]), at most `max_event_bytes` of JSON per
//!   event ([`StoreError::TooLarge`]), at most `max_response_bytes` of events
//!   per read ([`StoreError::LimitReached`]: ask for fewer). Every Redis
//!   script does bounded work: a read of many events is fetched in chunks.

mod ids;
mod in_memory;
mod model;
mod redis;
mod sql;
mod state;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use self::ids::{AppKey, MAX_ID_BYTES, SessionKey, UserKey};
pub(crate) use self::ids::{new_session_id, validate_id};
pub use self::in_memory::MemorySessionStore;
pub use self::model::{Appended, Event, EventActions, Fields, GetSession, RawJson, Session, State};
pub(crate) use self::model::{exact, now};
pub use self::redis::RedisSessionStore;
pub use self::sql::SqlSessionStore;
pub use self::state::{APP_PREFIX, MAX_STATE_KEYS, MAX_TIMESTAMP, TEMP_PREFIX, USER_PREFIX};
pub(crate) use self::state::{
    PreparedEvent, ScopedState, duplicate_outcome, merge_state, partial_outcome, prepare_event,
    split_state,
};
pub use crate::config::SessionLimits;
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
    /// [`StoreError::LimitReached`] when the events asked for are more than
    /// `max_response_bytes`; an unavailable or failing backend.
    async fn get(&self, key: &SessionKey, query: GetSession)
    -> Result<Option<Session>, StoreError>;

    /// The user's sessions, without events, oldest update first (see the
    /// module documentation).
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError>;

    /// Every user's sessions of the app, without events, each with its own
    /// user's state merged, in the order of [`SessionStore::list`].
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn list_app(&self, app: &AppKey) -> Result<Vec<Session>, StoreError>;

    /// The user's state (`user:` keys, without the prefix); empty when there
    /// is none. Readable without any session.
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn user_state(&self, user: &UserKey) -> Result<State, StoreError>;

    /// Deletes a session and its events; deleting an absent one succeeds.
    ///
    /// # Errors
    /// An unavailable or failing backend.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;

    /// Appends an event (see the module documentation).
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Stale`], `Invalid` input,
    /// [`StoreError::TooLarge`], [`StoreError::LimitReached`] (the session is
    /// full), an unavailable backend. Nothing is written when it fails.
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
            Some(db) => {
                Arc::new(SqlSessionStore::new(db.clone()).with_limits(config.session_limits))
            }
            None => {
                return Err(StoreError::invalid(
                    "DATABASE_URL",
                    "is required when SESSION_BACKEND is sql",
                ));
            }
        },
        Backend::Memory => {
            Arc::new(MemorySessionStore::new(config.session_ttl).with_limits(config.session_limits))
        }
        Backend::Redis => Arc::new(
            RedisSessionStore::new(redis.clone(), config.session_ttl)
                .with_limits(config.session_limits),
        ),
    })
}

/// The append past the last event a session may hold.
pub(crate) fn session_full(max_events: u64) -> StoreError {
    StoreError::LimitReached {
        what: "events per session",
        limit: max_events,
        hint: "start a new session (SESSION_MAX_EVENTS)",
    }
}

/// A read whose events are more than a response may carry.
pub(crate) fn response_too_large(limits: SessionLimits) -> StoreError {
    StoreError::LimitReached {
        what: "bytes of events per response",
        limit: limits.max_response_bytes as u64,
        hint: "ask for fewer events with num_recent_events or after_timestamp",
    }
}

/// Puts a listing in its documented order: `last_update_time`, user id, id.
pub(crate) fn sort_listing(sessions: &mut [Session]) {
    sessions.sort_by(|a, b| {
        a.last_update_time
            .total_cmp(&b.last_update_time)
            .then_with(|| a.user_id.cmp(&b.user_id))
            .then_with(|| a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_is_split_by_prefix_and_temp_is_set_aside() {
        let mut state = State::new();
        state.insert("app:theme".into(), json!("dark").into());
        state.insert("user:lang".into(), json!("pt").into());
        state.insert("temp:scratch".into(), json!(1).into());
        state.insert("step".into(), json!(2).into());
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
        let limit = SessionLimits::default().max_event_bytes;
        let p = prepare_event(e, limit).unwrap();
        assert_eq!(p.event.id.len(), 32);
        assert!(p.timestamp() > 1.6e9);
        assert!(!p.event.actions.state_delta.contains_key("temp:x"));
        assert!(p.applied_delta.contains_key("temp:x"));
        assert!(p.body.starts_with("{\"timestamp\":"), "{}", p.body);
        assert!(p.with_seq(7).starts_with("{\"seq\":7,\"timestamp\":"));
        let zero = prepare_event(Event::default().at(0.0), limit).unwrap();
        assert_eq!(zero.timestamp(), 0.0, "a given 0 is kept");
        let bad = Event::default().at(-1.0);
        assert!(matches!(
            prepare_event(bad, limit),
            Err(StoreError::Invalid {
                field: "event.timestamp",
                ..
            })
        ));
        let big = Event::text("u", &"x".repeat(2_000));
        assert!(matches!(
            prepare_event(big, 1_024),
            Err(StoreError::TooLarge { what: "event", .. })
        ));
    }
}
