//! The `memory` session backend: process memory, for development and tests.
//! Lost on restart, not shared between processes. Sessions expire after the
//! same sliding TTL as in Redis (`REDIS_SESSION_TTL`), checked on access.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Appended, Event, GetSession, Session, SessionKey, SessionStore, State, StoreError, UserKey,
    merge_state, new_session_id, now, partial_outcome, prepare_event, split_state,
};

type Values = BTreeMap<String, String>;

#[derive(Debug)]
struct Stored {
    state: Values,
    events: Vec<Event>,
    updated: f64,
    seq: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// (app, user) to session id to session.
    sessions: HashMap<(String, String), HashMap<String, Stored>>,
    app_state: HashMap<String, Values>,
    user_state: HashMap<(String, String), Values>,
}

/// Sessions in process memory. See the module documentation.
#[derive(Debug)]
pub struct MemorySessionStore {
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl MemorySessionStore {
    /// An empty store whose sessions expire `ttl` after their last write.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave a half-applied write: every write
        // below is checked first and applied without failing.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn owner(user: &UserKey) -> (String, String) {
    (user.app().to_owned(), user.user().to_owned())
}

impl Inner {
    /// The live session, removing it when expired.
    fn live(&mut self, key: &SessionKey) -> Option<&mut Stored> {
        let owner = (key.app().to_owned(), key.user().to_owned());
        let sessions = self.sessions.get_mut(&owner)?;
        if sessions
            .get(key.id())
            .is_some_and(|s| s.expires <= Instant::now())
        {
            sessions.remove(key.id());
        }
        sessions.get_mut(key.id())
    }

    fn merged(&self, app: &str, user: &str, state: &Values) -> Result<State, StoreError> {
        let empty = Values::new();
        let app_state = self.app_state.get(app).unwrap_or(&empty);
        let user_state = self
            .user_state
            .get(&(app.to_owned(), user.to_owned()))
            .unwrap_or(&empty);
        merge_state(state.clone(), app_state.clone(), user_state.clone())
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn create(
        &self,
        user: &UserKey,
        state: State,
        id: Option<&str>,
    ) -> Result<Session, StoreError> {
        let id = new_session_id(id)?;
        let key = user.session(&id)?;
        let scoped = split_state("state", &state)?;
        let mut inner = self.lock();
        if inner.live(&key).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let created = now();
        inner
            .app_state
            .entry(user.app().to_owned())
            .or_default()
            .extend(scoped.app);
        inner
            .user_state
            .entry(owner(user))
            .or_default()
            .extend(scoped.user);
        let stored = Stored {
            state: scoped.session.into_iter().collect(),
            events: Vec::new(),
            updated: created,
            seq: 0,
            expires: Instant::now() + self.ttl,
        };
        let state = inner.merged(user.app(), user.user(), &stored.state)?;
        let sessions = inner.sessions.entry(owner(user)).or_default();
        // Expired sessions of this user go when another is created.
        let at = Instant::now();
        sessions.retain(|_, s| s.expires > at);
        sessions.insert(id.clone(), stored);
        Ok(Session {
            app_name: user.app().to_owned(),
            user_id: user.user().to_owned(),
            id,
            state,
            events: Vec::new(),
            last_update_time: created,
            last_seq: 0,
        })
    }

    async fn get(
        &self,
        key: &SessionKey,
        query: GetSession,
    ) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.live(key) else {
            return Ok(None);
        };
        let mut from = 0;
        if let Some(after) = query.after_timestamp {
            from = stored.events.partition_point(|e| e.timestamp < after);
        }
        if let Some(n) = query.num_recent_events {
            from = from.max(stored.events.len().saturating_sub(n as usize));
        }
        let events = stored.events[from..].to_vec();
        let (updated, seq, state) = (stored.updated, stored.seq, stored.state.clone());
        let state = inner.merged(key.app(), key.user(), &state)?;
        Ok(Some(Session {
            app_name: key.app().to_owned(),
            user_id: key.user().to_owned(),
            id: key.id().to_owned(),
            state,
            events,
            last_update_time: updated,
            last_seq: seq,
        }))
    }

    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError> {
        let inner = self.lock();
        let at = Instant::now();
        let Some(sessions) = inner.sessions.get(&owner(user)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (id, s) in sessions.iter().filter(|(_, s)| s.expires > at) {
            out.push(Session {
                app_name: user.app().to_owned(),
                user_id: user.user().to_owned(),
                id: id.clone(),
                state: inner.merged(user.app(), user.user(), &s.state)?,
                events: Vec::new(),
                last_update_time: s.updated,
                last_seq: s.seq,
            });
        }
        Ok(out)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let owner = (key.app().to_owned(), key.user().to_owned());
        if let Some(sessions) = inner.sessions.get_mut(&owner) {
            sessions.remove(key.id());
        }
        Ok(())
    }

    async fn append_event(
        &self,
        key: &SessionKey,
        event: Event,
        expected_seq: Option<u64>,
    ) -> Result<Appended, StoreError> {
        let prepared = prepare_event(event)?;
        let ttl = self.ttl;
        let mut inner = self.lock();
        let Some(stored) = inner.live(key) else {
            return Err(StoreError::NotFound);
        };
        if let Some(expected) = expected_seq
            && expected != stored.seq
        {
            return Err(StoreError::Stale {
                expected,
                current: stored.seq,
            });
        }
        if prepared.event.partial {
            return Ok(partial_outcome(prepared, stored.updated));
        }
        let mut event = prepared.event;
        stored.updated = if stored.seq > 0 {
            stored.updated.max(event.timestamp)
        } else {
            event.timestamp
        };
        stored.seq += 1;
        stored.expires = Instant::now() + ttl;
        event.seq = stored.seq;
        event.timestamp = stored.updated;
        stored.state.extend(prepared.scoped.session);
        stored.events.push(event.clone());
        let (seq, timestamp) = (stored.seq, stored.updated);
        inner
            .app_state
            .entry(key.app().to_owned())
            .or_default()
            .extend(prepared.scoped.app);
        inner
            .user_state
            .entry((key.app().to_owned(), key.user().to_owned()))
            .or_default()
            .extend(prepared.scoped.user);
        Ok(Appended {
            seq: Some(seq),
            timestamp,
            event,
            state_delta: prepared.applied_delta,
        })
    }
}
