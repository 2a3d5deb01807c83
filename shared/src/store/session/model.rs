//! What the stores keep and return: [`Event`] (with [`EventActions`]),
//! [`Session`], the [`GetSession`] filter, the [`Appended`] outcome, the
//! [`RawJson`] every free-form value is kept as, and the clock every backend
//! stamps with.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON value kept as the text it came in.
///
/// Agent state and events are free-form JSON written by another language
/// (ADK is Python): an integer beyond 64 bits or a float must come back
/// exactly as it was sent, which a round trip through [`serde_json::Value`]
/// does not guarantee (integers beyond `u64` become floats). The text is
/// validated JSON; it is stored and answered verbatim, never re-encoded.
///
/// Two `RawJson` are equal when their texts are; comparisons with a
/// [`Value`], a string or a number parse the text first (for tests and
/// callers that look inside).
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text of `value`.
    ///
    /// # Errors
    /// When `value` cannot be encoded as JSON (a map with non-string keys,
    /// a failing `Serialize`).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// Checks that `text` is one JSON value and keeps it as it is.
    ///
    /// # Errors
    /// When `text` is not valid JSON.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed (integers beyond 64 bits become floats here).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// Parses the text as `T`.
    ///
    /// # Errors
    /// When the text does not have `T`'s shape.
    pub fn to<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// Whether the value is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.get().trim() == "null"
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        // A `Value` always encodes: its map keys are strings.
        Self::of(&value).unwrap_or_else(|_| Self(RawValue::NULL.to_owned()))
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        &self.value() == other
    }
}

macro_rules! raw_json_eq {
    ($($t:ty),*) => { $(
        impl PartialEq<$t> for RawJson {
            fn eq(&self, other: &$t) -> bool {
                self.value() == *other
            }
        }
    )* };
}
raw_json_eq!(&str, String, i32, i64, u64, f64, bool);

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

/// A state: string keys to JSON values, kept as sent.
pub type State = BTreeMap<String, RawJson>;

/// Fields of a JSON object, each kept as sent.
pub type Fields = BTreeMap<String, RawJson>;

/// What an event did besides carrying content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventActions {
    /// State changes: `app:`, `user:`, `temp:` or session keys to new values.
    pub state_delta: State,
    /// Any other action (`transfer_to_agent`, `escalate`, …), kept as given.
    pub other: Fields,
}

/// One turn of a conversation: a message, a tool call, a state change.
///
/// Stored and answered as a JSON object: the fields below, then every other
/// field as it was sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// Position in the session, assigned by the store (1, 2, …); ignored on input.
    pub seq: u64,
    /// Seconds since the Unix epoch, stored exactly as given; absent or
    /// `null` on input means "now".
    pub timestamp: Option<f64>,
    /// The event id; generated when empty. An append of an id the session
    /// already holds is a retry: nothing is written.
    pub id: String,
    /// Who produced it (`user`, an agent's name).
    pub author: String,
    /// The invocation (agent run) it belongs to.
    pub invocation_id: Option<String>,
    /// `Some(true)`: a streaming fragment, never stored. Kept as given
    /// (ADK tells `false` from absent).
    pub partial: Option<bool>,
    /// The message (ADK `Content`: `{"role", "parts": [{"text"}…]}`), kept as given.
    pub content: Option<RawJson>,
    /// State changes and other actions.
    pub actions: EventActions,
    /// Any other field, kept as given.
    pub extra: Fields,
}

/// The field names [`Event`] interprets; any other is kept in `extra`.
const EVENT_FIELDS: [&str; 8] = [
    "seq",
    "timestamp",
    "id",
    "author",
    "invocation_id",
    "partial",
    "content",
    "actions",
];

#[derive(Deserialize)]
struct TextParts {
    #[serde(default)]
    parts: Option<Vec<TextPart>>,
}

#[derive(Deserialize)]
struct TextPart {
    #[serde(default)]
    text: Option<String>,
}

impl Event {
    /// An event by `author` with a text message.
    pub fn text(author: &str, text: &str) -> Self {
        Self {
            author: author.to_owned(),
            content: Some(RawJson::from(
                serde_json::json!({"role": author, "parts": [{"text": text}]}),
            )),
            ..Self::default()
        }
    }

    /// Adds `key: value` to `actions.state_delta`.
    pub fn with_state(mut self, key: &str, value: Value) -> Self {
        self.actions
            .state_delta
            .insert(key.to_owned(), RawJson::from(value));
        self
    }

    /// Sets the timestamp.
    pub fn at(mut self, timestamp: f64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Whether this is a streaming fragment (`partial: true`), never stored.
    pub fn is_partial(&self) -> bool {
        self.partial == Some(true)
    }

    /// The timestamp, `0` when none was given.
    pub fn time(&self) -> f64 {
        self.timestamp.unwrap_or_default()
    }

    /// The text parts of `content`, joined by newlines.
    pub fn text_content(&self) -> String {
        let Some(parts) = self
            .content
            .as_ref()
            .and_then(|c| c.to::<TextParts>().ok())
            .and_then(|c| c.parts)
        else {
            return String::new();
        };
        parts
            .into_iter()
            .filter_map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Takes field `name` out of `fields` and parses it; JSON `null` is `None`.
fn take<T: DeserializeOwned, E: serde::de::Error>(
    fields: &mut Fields,
    prefix: &str,
    name: &str,
) -> Result<Option<T>, E> {
    match fields.remove(name) {
        None => Ok(None),
        Some(raw) if raw.is_null() => Ok(None),
        // serde_json's message may quote the value: name the field only.
        Some(raw) => raw
            .to()
            .map(Some)
            .map_err(|_| E::custom(format!("`{prefix}{name}` has the wrong type"))),
    }
}

impl<'de> Deserialize<'de> for EventActions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut other = Fields::deserialize(d)?;
        let state_delta = take(&mut other, "actions.", "state_delta")?.unwrap_or_default();
        Ok(Self { state_delta, other })
    }
}

impl Serialize for EventActions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if !self.state_delta.is_empty() {
            map.serialize_entry("state_delta", &self.state_delta)?;
        }
        for (k, v) in self.other.iter().filter(|(k, _)| *k != "state_delta") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut extra = Fields::deserialize(d)?;
        let e = &mut extra;
        let actions = match e.remove("actions") {
            Some(raw) if !raw.is_null() => raw
                .to()
                .map_err(|_| D::Error::custom("`actions` has the wrong shape"))?,
            _ => EventActions::default(),
        };
        let timestamp = take(e, "", "timestamp")?;
        Ok(Self {
            seq: take(e, "", "seq")?.unwrap_or_default(),
            timestamp,
            id: take(e, "", "id")?.unwrap_or_default(),
            author: take(e, "", "author")?.unwrap_or_default(),
            invocation_id: take(e, "", "invocation_id")?,
            partial: take(e, "", "partial")?,
            content: e.remove("content").filter(|c| !c.is_null()),
            actions,
            extra,
        })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("seq", &self.seq)?;
        if let Some(t) = self.timestamp {
            map.serialize_entry("timestamp", &t)?;
        }
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("author", &self.author)?;
        if let Some(i) = &self.invocation_id {
            map.serialize_entry("invocation_id", i)?;
        }
        if let Some(p) = self.partial {
            map.serialize_entry("partial", &p)?;
        }
        if let Some(c) = &self.content {
            map.serialize_entry("content", c)?;
        }
        map.serialize_entry("actions", &self.actions)?;
        for (k, v) in &self.extra {
            if !EVENT_FIELDS.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
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
    /// The last stored event's timestamp as given, or the creation time
    /// before the first event.
    pub last_update_time: f64,
    /// Sequence number of the last event (0 before the first).
    pub last_seq: u64,
}

impl Session {
    /// Applies what an append returned, as the ADK runner does to the
    /// session object it holds: the event is added and its delta applied,
    /// `temp:` keys included (they live only in this copy). A partial event
    /// (not stored) and a repeated one change nothing.
    pub fn apply(&mut self, appended: &Appended) {
        let Some(seq) = appended.seq else {
            return;
        };
        if appended.duplicate {
            return;
        }
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
    /// Keep only the events whose index time is at or after this one (see
    /// the module documentation).
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
    /// The event's timestamp as stored (as given, or now).
    pub timestamp: f64,
    /// The event as stored (`temp:` keys removed from its delta). For a
    /// repeated id, the event stored first.
    pub event: Event,
    /// The delta as applied to the caller's session, `temp:` keys included
    /// (empty for a repeated id).
    pub state_delta: State,
    /// The session already held an event with this id (a retried append):
    /// nothing was written, and `seq` is the stored event's.
    pub duplicate: bool,
}

/// Seconds since the Unix epoch, to the microsecond.
pub(crate) fn now() -> f64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    micros as f64 / 1e6
}

/// The decimal text of a float that reads back as the same float (Rust's
/// shortest round-trip form), for Redis scripts and SQL text.
pub(crate) fn exact(t: f64) -> String {
    format!("{t:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_keep_unknown_fields_big_integers_and_floats_as_sent() {
        let text = r#"{"id":"e1","author":"user","timestamp":1790000000.1234567,"partial":false,
            "custom_metadata":{"big":1180591620717411303425,"f":-3.5233447033367526e-12},
            "actions":{"state_delta":{"n":18446744073709551617},"escalate":true}}"#;
        let e: Event = serde_json::from_str(text).unwrap();
        assert_eq!(e.partial, Some(false));
        assert_eq!(e.timestamp, Some(1_790_000_000.123_456_7));
        assert_eq!(
            e.extra["custom_metadata"].get(),
            r#"{"big":1180591620717411303425,"f":-3.5233447033367526e-12}"#
        );
        assert_eq!(e.actions.state_delta["n"].get(), "18446744073709551617");
        assert_eq!(e.actions.other["escalate"], true);
        let back = serde_json::to_string(&e).unwrap();
        assert!(back.contains("1180591620717411303425"), "{back}");
        assert!(back.contains("\"partial\":false"), "{back}");
        assert!(back.contains("1790000000.1234567"), "{back}");
        let again: Event = serde_json::from_str(&back).unwrap();
        assert_eq!(again, e);
        let bad = serde_json::from_str::<Event>(r#"{"timestamp":"secret-value"}"#).unwrap_err();
        assert!(!bad.to_string().contains("secret-value"), "{bad}");
        assert_eq!(
            Event::text("u", "a")
                .with_state("k", json!(1))
                .text_content(),
            "a"
        );
    }
}
