//! The `memory` memory backend: process memory, for development and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    CLEANUP_BATCH, MemoryEntry, MemoryStore, StoreError, entries_of, matches, search_words,
};
use crate::store::session::{Event, UserKey, now, validate_id};

/// Entries of one user, ordered by time: (timestamp in µs, session, event).
type Timeline = BTreeMap<(i64, String, String), MemoryEntry>;

/// One user's memory: the timeline and where each (session, event) sits in it.
#[derive(Debug, Default)]
struct UserMemory {
    timeline: Timeline,
    at: HashMap<(String, String), i64>,
}

/// Memory in process memory. See the module documentation.
#[derive(Debug)]
pub struct MemoryMemoryStore {
    ttl: Duration,
    users: Mutex<HashMap<(String, String), UserMemory>>,
}

impl MemoryMemoryStore {
    /// An empty store whose entries expire `ttl` after their timestamp.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn cutoff(&self) -> f64 {
        now() - self.ttl.as_secs_f64()
    }
}

fn micros(t: f64) -> i64 {
    (t * 1e6).round() as i64
}

#[async_trait]
impl MemoryStore for MemoryMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn add_events(
        &self,
        user: &UserKey,
        session_id: &str,
        events: &[Event],
    ) -> Result<usize, StoreError> {
        let entries = entries_of(session_id, events)?;
        let cutoff = micros(self.cutoff());
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let memory = users
            .entry((user.app().to_owned(), user.user().to_owned()))
            .or_default();
        // Bounded cleanup: the oldest expired entries, at most a batch.
        for _ in 0..CLEANUP_BATCH {
            match memory.timeline.first_key_value() {
                Some(((t, _, _), _)) if *t < cutoff => {
                    if let Some(((_, s, e), _)) = memory.timeline.pop_first() {
                        memory.at.remove(&(s, e));
                    }
                }
                _ => break,
            }
        }
        let mut written = 0;
        for entry in entries
            .into_iter()
            .filter(|e| micros(e.timestamp) >= cutoff)
        {
            written += 1;
            // A session added again replaces its entries (same ids).
            let id = (entry.session_id.clone(), entry.event_id.clone());
            if let Some(old) = memory.at.remove(&id) {
                memory.timeline.remove(&(old, id.0.clone(), id.1.clone()));
            }
            let t = micros(entry.timestamp);
            memory.at.insert(id.clone(), t);
            memory.timeline.insert((t, id.0, id.1), entry);
        }
        Ok(written)
    }

    async fn delete(&self, user: &UserKey, event_id: &str) -> Result<usize, StoreError> {
        validate_id("event_id", event_id)?;
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(memory) = users.get_mut(&(user.app().to_owned(), user.user().to_owned())) else {
            return Ok(0);
        };
        let ids: Vec<(String, String)> = memory
            .at
            .keys()
            .filter(|(_, e)| e == event_id)
            .cloned()
            .collect();
        for id in &ids {
            if let Some(t) = memory.at.remove(id) {
                memory.timeline.remove(&(t, id.0.clone(), id.1.clone()));
            }
        }
        Ok(ids.len())
    }

    async fn search(
        &self,
        user: &UserKey,
        query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryEntry>, StoreError> {
        let query_words = search_words(query, limit)?;
        if query_words.is_empty() {
            return Ok(Vec::new());
        }
        let cutoff = micros(self.cutoff());
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(memory) = users.get(&(user.app().to_owned(), user.user().to_owned())) else {
            return Ok(Vec::new());
        };
        Ok(memory
            .timeline
            .iter()
            .rev()
            .take_while(|((t, _, _), _)| *t >= cutoff)
            .map(|(_, e)| e)
            .filter(|e| matches(e, &query_words))
            .take(limit)
            .cloned()
            .collect())
    }
}
