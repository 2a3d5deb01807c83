//! The `memory` session backend: process memory, for development and tests.
//! Lost on restart, not shared between processes. Sessions expire after the
//! same sliding TTL as in Redis (`REDIS_SESSION_TTL`), checked on access.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    AppKey, Appended, Event, GetSession, Session, SessionKey, SessionLimits, SessionStore, State,
    StoreError, UserKey, duplicate_outcome, merge_state, new_session_id, now, partial_outcome,
    prepare_event, response_too_large, session_full, sort_listing, split_state,
};

type Values = BTreeMap<String, String>;

#[derive(Debug)]
struct Stored {
    state: Values,
    /// The events, the one with seq N at index N-1, with their JSON size.
    events: Vec<(Event, usize)>,
    /// Index times, parallel to `events` (never decreasing).
    index: Vec<f64>,
    /// Event id to seq.
    ids: HashMap<String, u64>,
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
    limits: SessionLimits,
    inner: Mutex<Inner>,
}

impl MemorySessionStore {
    /// An empty store whose sessions expire `ttl` after their last write.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            limits: SessionLimits::default(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// This store with other limits.
    pub fn with_limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
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

    /// The live sessions of one (app, user), without events.
    fn listing(&self, app: &str, user: &str, out: &mut Vec<Session>) -> Result<(), StoreError> {
        let at = Instant::now();
        let Some(sessions) = self.sessions.get(&(app.to_owned(), user.to_owned())) else {
            return Ok(());
        };
        for (id, s) in sessions.iter().filter(|(_, s)| s.expires > at) {
            out.push(Session {
                app_name: app.to_owned(),
                user_id: user.to_owned(),
                id: id.clone(),
                state: self.merged(app, user, &s.state)?,
                events: Vec::new(),
                last_update_time: s.updated,
                last_seq: s.seq,
            });
        }
        Ok(())
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
            index: Vec::new(),
            ids: HashMap::new(),
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
            from = stored.index.partition_point(|t| *t < after);
        }
        if let Some(n) = query.num_recent_events {
            from = from.max(stored.events.len().saturating_sub(n as usize));
        }
        let bytes: usize = stored.events[from..].iter().map(|(_, size)| size).sum();
        if bytes > self.limits.max_response_bytes {
            return Err(response_too_large(self.limits));
        }
        let events = stored.events[from..]
            .iter()
            .map(|(e, _)| e.clone())
            .collect();
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
        let mut out = Vec::new();
        inner.listing(user.app(), user.user(), &mut out)?;
        sort_listing(&mut out);
        Ok(out)
    }

    async fn list_app(&self, app: &AppKey) -> Result<Vec<Session>, StoreError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (a, u) in inner.sessions.keys().filter(|(a, _)| a == app.app()) {
            inner.listing(a, u, &mut out)?;
        }
        sort_listing(&mut out);
        Ok(out)
    }

    async fn user_state(&self, user: &UserKey) -> Result<State, StoreError> {
        let inner = self.lock();
        let values = inner
            .user_state
            .get(&owner(user))
            .cloned()
            .unwrap_or_default();
        merge_state(values, [], [])
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
        let prepared = prepare_event(event, self.limits.max_event_bytes)?;
        let ttl = self.ttl;
        let max_events = self.limits.max_events;
        let mut inner = self.lock();
        let Some(stored) = inner.live(key) else {
            return Err(StoreError::NotFound);
        };
        if let Some(seq) = stored.ids.get(&prepared.event.id) {
            let (event, _) = &stored.events[(*seq - 1) as usize];
            return Ok(duplicate_outcome(event.clone()));
        }
        if let Some(expected) = expected_seq
            && expected != stored.seq
        {
            return Err(StoreError::Stale {
                expected,
                current: stored.seq,
            });
        }
        if prepared.event.is_partial() {
            return Ok(partial_outcome(prepared, stored.updated));
        }
        if stored.seq >= max_events {
            return Err(session_full(max_events));
        }
        let timestamp = prepared.timestamp();
        let size = prepared.body.len() + 16;
        let mut event = prepared.event;
        let index = stored.index.last().map_or(timestamp, |t| t.max(timestamp));
        stored.updated = timestamp;
        stored.seq += 1;
        stored.expires = Instant::now() + ttl;
        event.seq = stored.seq;
        stored.state.extend(prepared.scoped.session);
        stored.ids.insert(event.id.clone(), stored.seq);
        stored.events.push((event.clone(), size));
        stored.index.push(index);
        let seq = stored.seq;
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
            duplicate: false,
        })
    }
}
