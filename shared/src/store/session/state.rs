//! Scoped state (`app:`, `user:`, session, `temp:` keys): splitting a state
//! or a delta by scope, merging the scopes back for a read, and preparing an
//! event for storage (validated, stamped, `temp:` keys set aside).

use super::{Appended, Event, MAX_ID_BYTES, RawJson, State, StoreError, now, validate_id};
use crate::blocks::token::random_token;

/// Most state keys in one `state` or `state_delta`.
pub const MAX_STATE_KEYS: usize = 1_000;

/// Prefix of app-scoped state keys.
pub const APP_PREFIX: &str = "app:";
/// Prefix of user-scoped state keys.
pub const USER_PREFIX: &str = "user:";
/// Prefix of state keys that are never stored.
pub const TEMP_PREFIX: &str = "temp:";

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
        target.push((bare.to_owned(), value.get().to_owned()));
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
    let decode = |text: String| {
        RawJson::parse(text)
            .map_err(|_| StoreError::failed("store", "a stored state value is not JSON"))
    };
    let mut state = State::new();
    for (k, v) in session {
        state.insert(k, decode(v)?);
    }
    for (k, v) in app {
        state.insert(format!("{APP_PREFIX}{k}"), decode(v)?);
    }
    for (k, v) in user {
        state.insert(format!("{USER_PREFIX}{k}"), decode(v)?);
    }
    Ok(state)
}

/// An event checked and completed for storage: id and timestamp filled in,
/// `temp:` keys taken out of its delta, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEvent {
    pub event: Event,
    pub scoped: ScopedState,
    /// The full delta as the caller's session sees it (`temp:` included).
    pub applied_delta: State,
    /// The event as stored, as JSON without `seq`: `{"timestamp":…, …}`.
    /// A backend prepends `{"seq":N,` (see [`PreparedEvent::with_seq`]).
    pub body: String,
}

impl PreparedEvent {
    /// The stored JSON of the event with sequence number `seq`.
    pub fn with_seq(&self, seq: u64) -> String {
        format!("{{\"seq\":{seq},{}", &self.body[1..])
    }

    /// The event's timestamp (always set once prepared).
    pub fn timestamp(&self) -> f64 {
        self.event.time()
    }
}

/// Validates and completes `event`: an id when it has none, now as its
/// timestamp when it has none (a given one is kept exactly, `0` included),
/// `temp:` keys out of its stored delta, at most `max_bytes` of JSON.
pub(crate) fn prepare_event(
    mut event: Event,
    max_bytes: usize,
) -> Result<PreparedEvent, StoreError> {
    if event.id.is_empty() {
        event.id = random_token();
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
    let timestamp = match event.timestamp {
        None => now(),
        Some(t) if t.is_finite() && (0.0..=MAX_TIMESTAMP).contains(&t) => t,
        Some(_) => {
            return Err(StoreError::invalid(
                "event.timestamp",
                "must be seconds since the Unix epoch, from 0 to 1e11 (absent or null for now)",
            ));
        }
    };
    event.timestamp = Some(timestamp);
    event.seq = 0;
    let scoped = split_state("event.actions.state_delta", &event.actions.state_delta)?;
    let applied_delta = event.actions.state_delta.clone();
    event
        .actions
        .state_delta
        .retain(|k, _| !k.starts_with(TEMP_PREFIX));
    let json = serde_json::to_string(&event)
        .map_err(|_| StoreError::invalid("event", "cannot be encoded as JSON"))?;
    if json.len() > max_bytes {
        return Err(StoreError::TooLarge {
            what: "event",
            limit: max_bytes,
        });
    }
    // `Event` serialises `seq` first: take it out, the store puts its own.
    let body = match json.strip_prefix("{\"seq\":0,") {
        Some(rest) => format!("{{{rest}"),
        None => return Err(StoreError::invalid("event", "cannot be encoded as JSON")),
    };
    Ok(PreparedEvent {
        event,
        scoped,
        applied_delta,
        body,
    })
}

/// The latest timestamp accepted (year 5138): far beyond any clock, small
/// enough that every backend keeps it exactly.
pub const MAX_TIMESTAMP: f64 = 1e11;

/// What a partial event returns: nothing stored, `temp:` and other keys
/// applied to the caller's copy only.
pub(crate) fn partial_outcome(prepared: PreparedEvent, last_update_time: f64) -> Appended {
    Appended {
        seq: None,
        timestamp: last_update_time,
        event: prepared.event,
        state_delta: prepared.applied_delta,
        duplicate: false,
    }
}

/// What a repeated event id returns: the stored event, nothing written.
pub(crate) fn duplicate_outcome(stored: Event) -> Appended {
    Appended {
        seq: Some(stored.seq),
        timestamp: stored.time(),
        event: stored,
        state_delta: State::new(),
        duplicate: true,
    }
}
