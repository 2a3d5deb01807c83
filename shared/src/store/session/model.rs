//! What the stores keep and return: [`Event`] (with [`EventActions`]),
//! [`Session`], the [`GetSession`] filter, the [`Appended`] outcome, and the
//! clock every backend stamps with.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A state: string keys to JSON values.
pub type State = Map<String, Value>;

/// What an event did besides carrying content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// Options of [`SessionStore::get`](super::SessionStore::get).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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

/// What [`SessionStore::append_event`](super::SessionStore::append_event) did.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
