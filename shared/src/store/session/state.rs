//! Scoped state (`app:`, `user:`, session, `temp:` keys): splitting a state
//! or a delta by scope, merging the scopes back for a read, and preparing an
//! event for storage (validated, stamped, `temp:` keys set aside).

use serde_json::Value;

use super::{Appended, Event, MAX_ID_BYTES, State, StoreError, now, round_micros, validate_id};
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
