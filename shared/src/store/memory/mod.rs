//! Agent memory: what was said in past sessions, searchable by word, behind
//! one trait ([`MemoryStore`]) with three backends chosen by `MEMORY_BACKEND`
//! (`redis`, `sql`, `memory`). (Named `memory_store` so that it is not taken
//! for the process's memory.)
//!
//! # Semantics (every backend)
//!
//! - [`MemoryStore::add_events`] remembers every event that has text
//!   content, one entry per event, keyed by (session id, event id): adding
//!   the same events again (a session after more turns) updates their
//!   entries instead of duplicating them, and never removes the others.
//!   [`MemoryStore::add_session`] adds a session's events. An entry keeps the
//!   event's whole `content` (images, roles, function calls) as sent.
//! - [`MemoryStore::search`] returns the entries of one (app, user) that
//!   share at least one term with the query, newest first, at most `limit`.
//!   Terms come from one tokenizer, [`words`] (module `terms`): Unicode
//!   word boundaries (UAX #29) on NFKC text, words lowercased, and the
//!   character bigrams of scripts written without spaces (Han, Hiragana,
//!   Katakana, Hangul, Thai, …), so `太郎` finds `私の名前は太郎です` and
//!   `python` finds `私はPythonでADKを使っています`. An entry is indexed by
//!   its first [`MAX_WORDS_PER_ENTRY`] distinct terms, a query looks up its
//!   first [`MAX_QUERY_WORDS`].
//! - Identities (app, user, session id, event id) compare byte for byte on
//!   every backend: `alice`, `alice ` and `Alice` are three users, and a
//!   composed `é` is not a decomposed one.
//! - [`MemoryStore::delete`] removes the entries of an event id (ADK's
//!   memory id), in every session; deleting an absent one succeeds.
//! - Entries expire `REDIS_MEMORY_TTL_DAYS` after their event's timestamp: a
//!   search never returns an older one. Removing them is bounded work: each
//!   add deletes at most [`CLEANUP_BATCH`] expired entries, so no call pays
//!   for a backlog. An event older than the TTL is not remembered at all
//!   (`added` counts only the others).
//! - Work is bounded: on Redis one add is cut into scripts of at most
//!   [`MAX_SCRIPT_WRITES`] index writes each (each script atomic, the add as
//!   a whole not: a failed add is retried whole, which converges because
//!   entries are keyed).

mod in_memory;
mod redis;
mod sql;
mod terms;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::in_memory::MemoryMemoryStore;
pub use self::redis::RedisMemoryStore;
pub use self::sql::SqlMemoryStore;
pub use self::terms::{is_unspaced, words};
use crate::blocks::keys::KeyedHash;
use crate::config::{Backend, DEV_MEMORY_INDEX_KEY, IndexKey, StoreConfig};
use crate::redis::RedisClient;
pub use crate::store::error::StoreError;
use crate::store::session::{Event, RawJson, Session, UserKey, validate_id};
use crate::store::sql::SqlDatabase;

/// Most expired entries one `add_session` removes (per index).
pub const CLEANUP_BATCH: usize = 100;
/// Largest `limit` of a search.
pub const MAX_LIMIT: usize = 100;
/// Longest indexed word, in bytes; longer runs are not indexed.
pub const MAX_WORD_BYTES: usize = 64;
/// Most distinct words indexed per entry.
pub const MAX_WORDS_PER_ENTRY: usize = 200;
/// Most distinct words of a query that are looked up.
pub const MAX_QUERY_WORDS: usize = 16;
/// Most commands (entry, timeline, word and event members, a TTL and a
/// trim per key) one Redis script of an add runs; a longer add is cut into
/// several scripts.
pub const MAX_SCRIPT_WRITES: usize = 1_000;
/// Most events one add takes (a whole session holds at most
/// `SESSION_MAX_EVENTS`, 10,000 by default).
pub const MAX_EVENTS_PER_ADD: usize = 10_000;

/// One remembered event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// The session it came from.
    pub session_id: String,
    /// The event it came from.
    pub event_id: String,
    /// Who said it.
    pub author: String,
    /// When (seconds since the Unix epoch).
    pub timestamp: f64,
    /// The event's text.
    pub text: String,
    /// The event's whole `content`, as sent (absent in entries remembered
    /// before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<RawJson>,
}

/// A memory store. Object safe: functions hold an `Arc<dyn MemoryStore>`
/// chosen at start by `MEMORY_BACKEND` (see [`open`]).
#[async_trait]
pub trait MemoryStore: Send + Sync + std::fmt::Debug {
    /// `redis`, `sql` or `memory`.
    fn backend(&self) -> &'static str;

    /// Remembers the text events of `session`; returns how many entries it wrote.
    ///
    /// # Errors
    /// `Invalid` ids; an unavailable or failing backend.
    async fn add_session(&self, session: &Session) -> Result<usize, StoreError> {
        let user = UserKey::new(&session.app_name, &session.user_id)?;
        self.add_events(&user, &session.id, &session.events).await
    }

    /// Remembers the text events of `events` as said in session
    /// `session_id` (which need not be stored anywhere); returns how many
    /// entries it wrote.
    ///
    /// # Errors
    /// `Invalid` ids or more than [`MAX_EVENTS_PER_ADD`] events; an
    /// unavailable or failing backend.
    async fn add_events(
        &self,
        user: &UserKey,
        session_id: &str,
        events: &[Event],
    ) -> Result<usize, StoreError>;

    /// Forgets the entries of event `event_id` (in every session of the
    /// user); returns how many it removed.
    ///
    /// # Errors
    /// `Invalid` id; an unavailable or failing backend.
    async fn delete(&self, user: &UserKey, event_id: &str) -> Result<usize, StoreError>;

    /// The newest entries of `user` matching a word of `query` (at most `limit`).
    ///
    /// # Errors
    /// `Invalid` when `limit` is 0 or over [`MAX_LIMIT`]; an unavailable or
    /// failing backend.
    async fn search(
        &self,
        user: &UserKey,
        query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryEntry>, StoreError>;
}

/// The memory store `config.memory_backend` names. `sql` needs `database`
/// (migrated by the caller).
///
/// # Errors
/// [`StoreError::Invalid`] (field `DATABASE_URL`) when the backend is `sql`
/// and no database is given.
pub fn open(
    config: &StoreConfig,
    redis: &RedisClient,
    database: Option<&SqlDatabase>,
) -> Result<Arc<dyn MemoryStore>, StoreError> {
    let ttl = Duration::from_secs(u64::from(config.memory_ttl_days) * 86_400);
    Ok(match config.memory_backend {
        Backend::Sql => match database {
            Some(db) => Arc::new(SqlMemoryStore::new(db.clone(), ttl)),
            None => {
                return Err(StoreError::invalid(
                    "DATABASE_URL",
                    "is required when MEMORY_BACKEND is sql",
                ));
            }
        },
        Backend::Memory => Arc::new(MemoryMemoryStore::new(ttl)),
        Backend::Redis => Arc::new(RedisMemoryStore::new(
            redis.clone(),
            ttl,
            index_hash(&config.memory_index_key)?,
        )),
    })
}

/// The keyed hash that names the Redis memory index's keys, from
/// `MEMORY_INDEX_KEY` (its development default off the clouds).
///
/// # Errors
/// `Invalid` when it is unset on Lambda or Cloud Run.
fn index_hash(key: &IndexKey) -> Result<KeyedHash, StoreError> {
    match key {
        IndexKey::Configured(secret) => Ok(KeyedHash::new(secret.expose().as_bytes())),
        IndexKey::DevDefault => {
            tracing::warn!(
                "MEMORY_INDEX_KEY is unset: the memory index uses the public development key; set one in any deployment"
            );
            Ok(KeyedHash::new(DEV_MEMORY_INDEX_KEY.as_bytes()))
        }
        IndexKey::Missing => Err(StoreError::invalid(
            "MEMORY_INDEX_KEY",
            "is required on Lambda and Cloud Run with MEMORY_BACKEND=redis: the secret that hashes \
             indexed words into key names (e.g. openssl rand -hex 32)",
        )),
    }
}

/// The entries `events` of session `session_id` contribute: those with
/// text, each checked. A repeated event id keeps its last event.
pub(crate) fn entries_of(
    session_id: &str,
    events: &[Event],
) -> Result<Vec<MemoryEntry>, StoreError> {
    validate_id("session_id", session_id)?;
    if events.len() > MAX_EVENTS_PER_ADD {
        return Err(StoreError::invalid(
            "events",
            format!("at most {MAX_EVENTS_PER_ADD} events per add"),
        ));
    }
    let mut entries: Vec<MemoryEntry> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for event in events {
        let text = event.text_content();
        if text.trim().is_empty() || event.is_partial() {
            continue;
        }
        // ADK's events always have an id; one without gets a fresh one.
        let event_id = if event.id.is_empty() {
            crate::blocks::token::random_token()
        } else {
            event.id.clone()
        };
        validate_id("event.id", &event_id)?;
        if event.author.len() > crate::store::session::MAX_ID_BYTES {
            return Err(StoreError::invalid("event.author", "too long"));
        }
        let timestamp = event.timestamp.unwrap_or_else(crate::store::session::now);
        if !timestamp.is_finite()
            || !(0.0..=crate::store::session::MAX_TIMESTAMP).contains(&timestamp)
        {
            return Err(StoreError::invalid(
                "event.timestamp",
                "must be seconds since the Unix epoch",
            ));
        }
        let entry = MemoryEntry {
            session_id: session_id.to_owned(),
            event_id: event_id.clone(),
            author: event.author.clone(),
            timestamp,
            text,
            content: event.content.clone(),
        };
        match at.get(&event_id) {
            Some(i) => entries[*i] = entry,
            None => {
                at.insert(event_id, entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// The words a search looks for, after checking its limit; empty when the
/// query has none (the search then finds nothing).
pub(crate) fn search_words(query: &str, limit: usize) -> Result<Vec<String>, StoreError> {
    check_limit(limit)?;
    Ok(words(query, MAX_QUERY_WORDS))
}

pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(StoreError::invalid(
            "limit",
            format!("must be from 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(())
}

/// Whether `entry` holds one of `query_words` among the terms it is
/// indexed by (the first [`MAX_WORDS_PER_ENTRY`]), so that every backend
/// finds the same entries.
pub(crate) fn matches(entry: &MemoryEntry, query_words: &[String]) -> bool {
    let entry_words = words(&entry.text, MAX_WORDS_PER_ENTRY);
    query_words.iter().any(|w| entry_words.contains(w))
}
