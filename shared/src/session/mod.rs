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
//!   tenant rules of [`crate::keys`] (1-64 of `A-Z a-z 0-9 _ -`); user and
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

mod memory;
mod redis;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::memory::MemorySessionStore;
pub use self::redis::RedisSessionStore;
pub use self::sql::SqlSessionStore;
use crate::client::RedisClient;
use crate::config::{Backend, StoreConfig};
use crate::keys::Tenant;
use crate::sql::SqlDatabase;
pub use crate::store::StoreError;

/// Longest user id, session id, event id, author or state key, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most state keys in one `state` or `state_delta`.
pub const MAX_STATE_KEYS: usize = 1_000;

/// Prefix of app-scoped state keys.
pub const APP_PREFIX: &str = "app:";
/// Prefix of user-scoped state keys.
pub const USER_PREFIX: &str = "user:";
/// Prefix of state keys that are never stored.
pub const TEMP_PREFIX: &str = "temp:";

/// A state: string keys to JSON values.
pub type State = Map<String, Value>;

/// The identity of a session, validated: build it with [`SessionKey::new`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    tenant: Tenant,
    user: String,
    id: String,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids may be personal data: the app only.
        f.debug_struct("SessionKey")
            .field("app", &self.tenant.id())
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// Validates the three parts of a session's identity.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming `app`, `user_id` or `session_id`.
    pub fn new(app: &str, user: &str, id: &str) -> Result<Self, StoreError> {
        let user = UserKey::new(app, user)?;
        validate_id("session_id", id)?;
        Ok(Self {
            tenant: user.tenant,
            user: user.user,
            id: id.to_owned(),
        })
    }

    /// The app (the tenant).
    pub fn app(&self) -> &str {
        self.tenant.id()
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

/// An (app, user) pair, validated: what `list` and the memory store take.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    tenant: Tenant,
    user: String,
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKey")
            .field("app", &self.tenant.id())
            .finish_non_exhaustive()
    }
}

impl UserKey {
    /// Validates an app and a user id.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming `app` or `user_id`.
    pub fn new(app: &str, user: &str) -> Result<Self, StoreError> {
        let tenant = Tenant::new("app", app)?;
        validate_id("user_id", user)?;
        Ok(Self {
            tenant,
            user: user.to_owned(),
        })
    }

    /// The app (the tenant).
    pub fn app(&self) -> &str {
        self.tenant.id()
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The key of session `id` of this user.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when `id` is not a valid session id.
    pub fn session(&self, id: &str) -> Result<SessionKey, StoreError> {
        validate_id("session_id", id)?;
        Ok(SessionKey {
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            id: id.to_owned(),
        })
    }
}

/// Checks an id-like string: 1 to [`MAX_ID_BYTES`] bytes, no control characters.
pub(crate) fn validate_id(field: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(StoreError::invalid(
            field,
            format!("must be 1 to {MAX_ID_BYTES} bytes long"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// What an event did besides carrying content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventActions {
    /// State changes: `app:`, `user:`, `temp:` or session keys to new values.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub state_delta: State,
    /// Any other action (`transfer_to_agent`, `escalate`, …), kept as given.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One turn of a conversation: a message, a tool call, a state change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Position in the session, assigned by the store (1, 2, …); ignored on input.
    #[serde(default)]
    pub seq: u64,
    /// Seconds since the Unix epoch; `0` on input means "now".
    #[serde(default)]
    pub timestamp: f64,
    /// The event id; generated when empty.
    #[serde(default)]
    pub id: String,
    /// Who produced it (`user`, an agent's name).
    #[serde(default)]
    pub author: String,
    /// The invocation (agent run) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// A streaming fragment: never stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The message (ADK `Content`: `{"role", "parts": [{"text"}…]}`), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// State changes and other actions.
    #[serde(default)]
    pub actions: EventActions,
    /// Any other field, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// An event by `author` with a text message.
    pub fn text(author: &str, text: &str) -> Self {
        Self {
            author: author.to_owned(),
            content: Some(serde_json::json!({"role": author, "parts": [{"text": text}]})),
            ..Self::default()
        }
    }

    /// Adds `key: value` to `actions.state_delta`.
    pub fn with_state(mut self, key: &str, value: Value) -> Self {
        self.actions.state_delta.insert(key.to_owned(), value);
        self
    }

    /// The text parts of `content`, joined by newlines.
    pub fn text_content(&self) -> String {
        let Some(parts) = self
            .content
            .as_ref()
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
        else {
            return String::new();
        };
        parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A session as read: its merged state and (some of) its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// The app.
    pub app_name: String,
    /// The user.
    pub user_id: String,
    /// The session id.
    pub id: String,
    /// Session state merged with the app's (`app:` keys) and the user's (`user:` keys).
    pub state: State,
    /// The events asked for, oldest first (empty in a listing).
    pub events: Vec<Event>,
    /// Timestamp of the last event, or of the creation.
    pub last_update_time: f64,
    /// Sequence number of the last event (0 before the first).
    pub last_seq: u64,
}

impl Session {
    /// Applies what an append returned, as the ADK runner does to the
    /// session object it holds: the event is added and its delta applied,
    /// `temp:` keys included (they live only in this copy). A partial event
    /// (not stored) changes nothing.
    pub fn apply(&mut self, appended: &Appended) {
        let Some(seq) = appended.seq else {
            return;
        };
        for (k, v) in &appended.state_delta {
            self.state.insert(k.clone(), v.clone());
        }
        self.last_seq = seq;
        self.last_update_time = appended.timestamp;
        self.events.push(appended.event.clone());
    }
}

/// Options of [`SessionStore::get`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct GetSession {
    /// Keep only the last N events (after `after_timestamp`); `Some(0)`: none.
    pub num_recent_events: Option<u32>,
    /// Keep only the events whose timestamp is at or after this one.
    pub after_timestamp: Option<f64>,
}

impl GetSession {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// The last `n` events.
    pub fn recent(n: u32) -> Self {
        Self {
            num_recent_events: Some(n),
            after_timestamp: None,
        }
    }

    /// The events at or after `timestamp`, and of those the last `n` if given.
    pub fn after(timestamp: f64, n: Option<u32>) -> Self {
        Self {
            num_recent_events: n,
            after_timestamp: Some(timestamp),
        }
    }
}

/// What [`SessionStore::append_event`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Appended {
    /// The event's sequence number; `None` for a partial event (not stored).
    pub seq: Option<u64>,
    /// The timestamp stored (never earlier than the previous event's).
    pub timestamp: f64,
    /// The event as stored (`temp:` keys removed from its delta).
    pub event: Event,
    /// The delta as applied to the caller's session, `temp:` keys included.
    pub state_delta: State,
}

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
/// (migrated by the caller; see [`crate::sql::SqlDatabase::migrate`]).
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

/// Seconds since the Unix epoch, to the microsecond.
pub(crate) fn now() -> f64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    micros as f64 / 1e6
}

/// A timestamp rounded to the microsecond, the precision every backend keeps.
pub(crate) fn round_micros(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

/// 32 hexadecimal characters, unique in practice (not a secret).
/// The id a new session gets: the caller's, validated, or a random one.
pub(crate) fn new_session_id(id: Option<&str>) -> Result<String, StoreError> {
    match id {
        Some(id) => {
            validate_id("session_id", id)?;
            Ok(id.to_owned())
        }
        None => Ok(random_id()),
    }
}

pub(crate) fn random_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Each RandomState is seeded from the operating system's randomness.
    let a = RandomState::new().hash_one((n, nanos));
    let b = RandomState::new().hash_one((nanos, n, a));
    format!("{a:016x}{b:016x}")
}

/// A state split by scope, values encoded as JSON text, keys sorted (a fixed
/// lock order for the SQL backend).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ScopedState {
    pub session: Vec<(String, String)>,
    pub app: Vec<(String, String)>,
    pub user: Vec<(String, String)>,
    pub temp: State,
}

/// Splits `state` by prefix and checks its keys.
pub(crate) fn split_state(field: &'static str, state: &State) -> Result<ScopedState, StoreError> {
    if state.len() > MAX_STATE_KEYS {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_STATE_KEYS} keys"),
        ));
    }
    let mut scoped = ScopedState::default();
    for (key, value) in state {
        if key.starts_with(TEMP_PREFIX) {
            scoped.temp.insert(key.clone(), value.clone());
            continue;
        }
        let (target, bare) = if let Some(bare) = key.strip_prefix(APP_PREFIX) {
            (&mut scoped.app, bare)
        } else if let Some(bare) = key.strip_prefix(USER_PREFIX) {
            (&mut scoped.user, bare)
        } else {
            (&mut scoped.session, key.as_str())
        };
        validate_id(field, bare).map_err(|_| {
            StoreError::invalid(
                field,
                format!(
                    "keys must be 1 to {MAX_ID_BYTES} bytes after their app:/user: prefix, without control characters"
                ),
            )
        })?;
        let text = serde_json::to_string(value)
            .map_err(|_| StoreError::invalid(field, "a value cannot be encoded as JSON"))?;
        target.push((bare.to_owned(), text));
    }
    scoped.session.sort();
    scoped.app.sort();
    scoped.user.sort();
    Ok(scoped)
}

/// Merges stored state (JSON text values) into one state, prefixes restored.
pub(crate) fn merge_state(
    session: impl IntoIterator<Item = (String, String)>,
    app: impl IntoIterator<Item = (String, String)>,
    user: impl IntoIterator<Item = (String, String)>,
) -> Result<State, StoreError> {
    let decode = |text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|_| StoreError::failed("store", "a stored state value is not JSON"))
    };
    let mut state = State::new();
    for (k, v) in session {
        state.insert(k, decode(&v)?);
    }
    for (k, v) in app {
        state.insert(format!("{APP_PREFIX}{k}"), decode(&v)?);
    }
    for (k, v) in user {
        state.insert(format!("{USER_PREFIX}{k}"), decode(&v)?);
    }
    Ok(state)
}

/// An event checked and completed for storage: id and timestamp filled in,
/// `temp:` keys taken out of its delta.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEvent {
    pub event: Event,
    pub scoped: ScopedState,
    /// The full delta as the caller's session sees it (`temp:` included).
    pub applied_delta: State,
}

/// Validates and completes `event`.
pub(crate) fn prepare_event(mut event: Event) -> Result<PreparedEvent, StoreError> {
    if event.id.is_empty() {
        event.id = random_id();
    }
    validate_id("event.id", &event.id)?;
    if event.author.len() > MAX_ID_BYTES {
        return Err(StoreError::invalid(
            "event.author",
            format!("at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if event
        .invocation_id
        .as_ref()
        .is_some_and(|i| i.len() > MAX_ID_BYTES)
    {
        return Err(StoreError::invalid(
            "event.invocation_id",
            format!("at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if !event.timestamp.is_finite() || event.timestamp < 0.0 || event.timestamp > 1e11 {
        return Err(StoreError::invalid(
            "event.timestamp",
            "must be seconds since the Unix epoch (0 for now)",
        ));
    }
    event.timestamp = if event.timestamp == 0.0 {
        now()
    } else {
        round_micros(event.timestamp)
    };
    event.seq = 0;
    let scoped = split_state("event.actions.state_delta", &event.actions.state_delta)?;
    let applied_delta = event.actions.state_delta.clone();
    event
        .actions
        .state_delta
        .retain(|k, _| !k.starts_with(TEMP_PREFIX));
    Ok(PreparedEvent {
        event,
        scoped,
        applied_delta,
    })
}

/// What a partial event returns: nothing stored, `temp:` and other keys
/// applied to the caller's copy only.
pub(crate) fn partial_outcome(prepared: PreparedEvent, last_update_time: f64) -> Appended {
    Appended {
        seq: None,
        timestamp: last_update_time,
        event: prepared.event,
        state_delta: prepared.applied_delta,
    }
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
        assert_ne!(random_id(), random_id());
    }
}
