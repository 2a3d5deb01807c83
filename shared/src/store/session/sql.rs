//! The `sql` session backend: PostgreSQL or MySQL / MariaDB through
//! [`SqlDatabase`], the durable rollback path. Sessions do not expire here.
//!
//! # Schema (`shared/migrations/<dialect>/0001_sessions.sql`, `0003_adk_fidelity.sql`)
//!
//! Identity columns compare byte for byte (`VARBINARY` on MySQL since
//! migration 0004; PostgreSQL's `VARCHAR` does by itself), so the primary
//! keys tell `alice` from `alice `.
//!
//! ```text
//! adk_sessions     (app_name, user_id, id) PK; state (JSON object), seq, create_time,
//!                  update_time (the last event's timestamp), index_time (its index time)
//! adk_events       (app_name, user_id, session_id, seq) PK; ts (the index time), event_id,
//!                  event (JSON as stored); indexes (…, ts), (…, event_id)
//! adk_app_states   (app_name, state_key) PK; value (JSON)
//! adk_user_states  (app_name, user_id, state_key) PK; value (JSON)
//! ```
//!
//! `create` is one `INSERT` whose primary key makes a taken id fail
//! atomically. An append is one transaction: lock the session row
//! (`SELECT … FOR UPDATE`: absent means not found, and concurrent appends to
//! one session queue here, so sequence numbers have no gaps), look the event
//! id up (a retry returns the stored event), insert one event row, update
//! the session row, upsert the app and user state in key order. It never
//! reads the history. A deadlock or serialization failure runs the
//! transaction again (a few times). A read streams the events it returns and
//! stops at `max_response_bytes`.

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    AppKey, Appended, Event, GetSession, PreparedEvent, RawJson, ScopedState, Session, SessionKey,
    SessionLimits, SessionStore, State, StoreError, UserKey, duplicate_outcome, merge_state,
    new_session_id, now, partial_outcome, prepare_event, response_too_large, session_full,
    sort_listing, split_state,
};
use crate::store::error::is_retryable;
use crate::store::sql::{Dialect, SqlDatabase, built, text};

/// Attempts of a transaction that keeps hitting deadlocks.
const ATTEMPTS: usize = 5;

/// Sessions in PostgreSQL or MySQL. See the module documentation.
#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    db: SqlDatabase,
    limits: SessionLimits,
}

impl SqlSessionStore {
    /// A store on `db`, whose schema [`SqlDatabase::migrate`] has created.
    pub fn new(db: SqlDatabase) -> Self {
        Self {
            db,
            limits: SessionLimits::default(),
        }
    }

    /// This store with other limits.
    pub fn with_limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    async fn upsert_scoped(
        &self,
        tx: &mut Transaction<'static, Any>,
        app: &str,
        user: &str,
        scoped: &ScopedState,
    ) -> Result<(), sqlx::Error> {
        let d = self.dialect();
        let app_sql = d.pick(
            "INSERT INTO adk_app_states (app_name, state_key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (app_name, state_key) DO UPDATE SET value = EXCLUDED.value",
            "INSERT INTO adk_app_states (app_name, state_key, value) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
        );
        for (k, v) in &scoped.app {
            sqlx::query(app_sql)
                .bind(app)
                .bind(k)
                .bind(v)
                .execute(&mut **tx)
                .await?;
        }
        let user_sql = d.pick(
            "INSERT INTO adk_user_states (app_name, user_id, state_key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_name, user_id, state_key) DO UPDATE SET value = EXCLUDED.value",
            "INSERT INTO adk_user_states (app_name, user_id, state_key, value) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
        );
        for (k, v) in &scoped.user {
            sqlx::query(user_sql)
                .bind(app)
                .bind(user)
                .bind(k)
                .bind(v)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The app's state, as (key, JSON text) pairs.
    async fn app_state(
        &self,
        conn: &mut AnyConnection,
        app: &str,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(self.dialect().pick(
            "SELECT state_key, value FROM adk_app_states WHERE app_name = $1",
            "SELECT state_key, value FROM adk_app_states WHERE app_name = ?",
        ))
        .bind(app)
        .fetch_all(&mut *conn)
        .await?;
        pairs(&rows)
    }

    /// The user's state, as (key, JSON text) pairs.
    async fn user_pairs(
        &self,
        conn: &mut AnyConnection,
        app: &str,
        user: &str,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(self.dialect().pick(
            "SELECT state_key, value FROM adk_user_states WHERE app_name = $1 AND user_id = $2",
            "SELECT state_key, value FROM adk_user_states WHERE app_name = ? AND user_id = ?",
        ))
        .bind(app)
        .bind(user)
        .fetch_all(&mut *conn)
        .await?;
        pairs(&rows)
    }

    /// The app's and the user's state, as (key, JSON text) pairs.
    async fn shared_state(
        &self,
        conn: &mut AnyConnection,
        app: &str,
        user: &str,
    ) -> Result<(Vec<(String, String)>, Vec<(String, String)>), sqlx::Error> {
        let app_pairs = self.app_state(conn, app).await?;
        Ok((app_pairs, self.user_pairs(conn, app, user).await?))
    }

    async fn try_append(
        &self,
        key: &SessionKey,
        prepared: &PreparedEvent,
        expected_seq: Option<u64>,
    ) -> Result<Result<Appended, StoreError>, sqlx::Error> {
        let d = self.dialect();
        let mut tx = self.db.pool().begin().await?;
        let row = sqlx::query(d.pick(
            "SELECT seq, update_time, state, index_time FROM adk_sessions \
             WHERE app_name = $1 AND user_id = $2 AND id = $3 FOR UPDATE",
            "SELECT seq, update_time, state, index_time FROM adk_sessions \
             WHERE app_name = ? AND user_id = ? AND id = ? FOR UPDATE",
        ))
        .bind(key.app())
        .bind(key.user())
        .bind(key.id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Err(StoreError::NotFound));
        };
        let seq = row.try_get::<i64, _>(0)? as u64;
        let updated: f64 = row.try_get(1)?;
        let last_index: Option<f64> = row.try_get(3)?;
        if !prepared.event.is_partial() {
            let stored = sqlx::query(d.pick(
                "SELECT event FROM adk_events WHERE app_name = $1 AND user_id = $2 \
                 AND session_id = $3 AND event_id = $4",
                "SELECT event FROM adk_events WHERE app_name = ? AND user_id = ? \
                 AND session_id = ? AND event_id = ?",
            ))
            .bind(key.app())
            .bind(key.user())
            .bind(key.id())
            .bind(&prepared.event.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(stored) = stored {
                tx.rollback().await?;
                return Ok(decode_event(&stored.try_get::<String, _>(0)?).map(duplicate_outcome));
            }
        }
        if let Some(expected) = expected_seq
            && expected != seq
        {
            tx.rollback().await?;
            return Ok(Err(StoreError::Stale {
                expected,
                current: seq,
            }));
        }
        if prepared.event.is_partial() {
            tx.rollback().await?;
            return Ok(Ok(partial_outcome(prepared.clone(), updated)));
        }
        if seq >= self.limits.max_events {
            tx.rollback().await?;
            return Ok(Err(session_full(self.limits.max_events)));
        }
        let timestamp = prepared.timestamp();
        // Sessions written before index_time existed: update_time was it.
        let previous = last_index.or((seq > 0).then_some(updated));
        let index = previous.map_or(timestamp, |p| p.max(timestamp));
        let seq = seq + 1;
        sqlx::query(d.pick(
            "INSERT INTO adk_events (app_name, user_id, session_id, seq, ts, event_id, event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            "INSERT INTO adk_events (app_name, user_id, session_id, seq, ts, event_id, event) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(key.app())
        .bind(key.user())
        .bind(key.id())
        .bind(seq as i64)
        .bind(index)
        .bind(&prepared.event.id)
        .bind(prepared.with_seq(seq))
        .execute(&mut *tx)
        .await?;
        let state_json = if prepared.scoped.session.is_empty() {
            None
        } else {
            let text: String = row.try_get(2)?;
            let mut state: State = serde_json::from_str(&text).unwrap_or_default();
            for (k, v) in &prepared.scoped.session {
                if let Ok(value) = RawJson::parse(v.clone()) {
                    state.insert(k.clone(), value);
                }
            }
            Some(serde_json::to_string(&state).unwrap_or_else(|_| "{}".into()))
        };
        let update = match &state_json {
            Some(_) => d.pick(
                "UPDATE adk_sessions SET seq = $1, update_time = $2, index_time = $3, state = $4 \
                 WHERE app_name = $5 AND user_id = $6 AND id = $7",
                "UPDATE adk_sessions SET seq = ?, update_time = ?, index_time = ?, state = ? \
                 WHERE app_name = ? AND user_id = ? AND id = ?",
            ),
            None => d.pick(
                "UPDATE adk_sessions SET seq = $1, update_time = $2, index_time = $3 \
                 WHERE app_name = $4 AND user_id = $5 AND id = $6",
                "UPDATE adk_sessions SET seq = ?, update_time = ?, index_time = ? \
                 WHERE app_name = ? AND user_id = ? AND id = ?",
            ),
        };
        let mut q = sqlx::query(update)
            .bind(seq as i64)
            .bind(timestamp)
            .bind(index);
        if let Some(state) = state_json {
            q = q.bind(state);
        }
        q.bind(key.app())
            .bind(key.user())
            .bind(key.id())
            .execute(&mut *tx)
            .await?;
        self.upsert_scoped(&mut tx, key.app(), key.user(), &prepared.scoped)
            .await?;
        tx.commit().await?;
        let mut event = prepared.event.clone();
        event.seq = seq;
        Ok(Ok(Appended {
            seq: Some(seq),
            timestamp,
            event,
            state_delta: prepared.applied_delta.clone(),
            duplicate: false,
        }))
    }
}

fn pairs(rows: &[AnyRow]) -> Result<Vec<(String, String)>, sqlx::Error> {
    rows.iter()
        .map(|r| Ok((text(r, 0)?, r.try_get::<String, _>(1)?)))
        .collect()
}

fn decode_event(text: &str) -> Result<Event, StoreError> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::failed("sql", "a stored event is not valid JSON"))
}

/// A stored session state (a JSON object) as (key, JSON text) pairs.
fn state_pairs(json: &str) -> Result<Vec<(String, String)>, StoreError> {
    let state: State = serde_json::from_str(json)
        .map_err(|_| StoreError::failed("sql", "a stored session state is not a JSON object"))?;
    Ok(state
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect())
}

/// A listed session from a row of (id, state, seq, update_time).
fn listed(
    app: &str,
    user: &str,
    row: &AnyRow,
    app_pairs: &[(String, String)],
    user_pairs: &[(String, String)],
) -> Result<Session, StoreError> {
    let state: String = row.try_get(1)?;
    Ok(Session {
        app_name: app.to_owned(),
        user_id: user.to_owned(),
        id: text(row, 0)?,
        state: merge_state(
            state_pairs(&state)?,
            app_pairs.to_vec(),
            user_pairs.to_vec(),
        )?,
        events: Vec::new(),
        last_update_time: row.try_get(3)?,
        last_seq: row.try_get::<i64, _>(2)? as u64,
    })
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    fn backend(&self) -> &'static str {
        "sql"
    }

    async fn create(
        &self,
        user: &UserKey,
        state: State,
        id: Option<&str>,
    ) -> Result<Session, StoreError> {
        let id = new_session_id(id)?;
        let scoped = split_state("state", &state)?;
        let mut session_state = State::new();
        for (k, v) in &scoped.session {
            if let Ok(value) = RawJson::parse(v.clone()) {
                session_state.insert(k.clone(), value);
            }
        }
        let state_json = serde_json::to_string(&session_state)
            .map_err(|_| StoreError::invalid("state", "cannot be encoded as JSON"))?;
        let created = now();
        let d = self.dialect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.db.pool().begin().await?;
            let inserted = sqlx::query(d.pick(
                "INSERT INTO adk_sessions (app_name, user_id, id, state, seq, create_time, update_time) \
                 VALUES ($1, $2, $3, $4, 0, $5, $5)",
                "INSERT INTO adk_sessions (app_name, user_id, id, state, seq, create_time, update_time) \
                 VALUES (?, ?, ?, ?, 0, ?, ?)",
            ))
            .bind(user.app())
            .bind(user.user())
            .bind(&id)
            .bind(&state_json)
            .bind(created);
            let inserted = if d == Dialect::MySql {
                inserted.bind(created)
            } else {
                inserted
            };
            let result = async {
                inserted.execute(&mut *tx).await?;
                self.upsert_scoped(&mut tx, user.app(), user.user(), &scoped)
                    .await?;
                self.shared_state(&mut tx, user.app(), user.user()).await
            };
            match result.await {
                Ok((app, user_state)) => {
                    tx.commit().await?;
                    return Ok(Session {
                        app_name: user.app().to_owned(),
                        user_id: user.user().to_owned(),
                        id,
                        state: merge_state(scoped.session, app, user_state)?,
                        events: Vec::new(),
                        last_update_time: created,
                        last_seq: 0,
                    });
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StoreError::AlreadyExists);
                }
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn get(
        &self,
        key: &SessionKey,
        query: GetSession,
    ) -> Result<Option<Session>, StoreError> {
        let d = self.dialect();
        let mut conn = self.db.pool().acquire().await?;
        let row = sqlx::query(d.pick(
            "SELECT state, seq, update_time FROM adk_sessions \
             WHERE app_name = $1 AND user_id = $2 AND id = $3",
            "SELECT state, seq, update_time FROM adk_sessions \
             WHERE app_name = ? AND user_id = ? AND id = ?",
        ))
        .bind(key.app())
        .bind(key.user())
        .bind(key.id())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.try_get(0)?;
        let seq = row.try_get::<i64, _>(1)? as u64;
        let updated: f64 = row.try_get(2)?;
        let mut events = Vec::new();
        if query.num_recent_events != Some(0) {
            let mut sql = format!(
                "SELECT event FROM adk_events WHERE app_name = {} AND user_id = {} AND session_id = {}",
                d.placeholder(1),
                d.placeholder(2),
                d.placeholder(3)
            );
            if query.after_timestamp.is_some() {
                sql.push_str(&format!(" AND ts >= {}", d.placeholder(4)));
            }
            match query.num_recent_events {
                Some(n) => sql.push_str(&format!(" ORDER BY seq DESC LIMIT {n}")),
                None => sql.push_str(" ORDER BY seq"),
            }
            let mut q = sqlx::query(built(sql))
                .bind(key.app())
                .bind(key.user())
                .bind(key.id());
            if let Some(after) = query.after_timestamp {
                q = q.bind(after);
            }
            let mut bytes = 0;
            let mut rows = q.fetch(&mut *conn);
            while let Some(r) = rows.try_next().await? {
                let text: String = r.try_get(0)?;
                bytes += text.len();
                if bytes > self.limits.max_response_bytes {
                    return Err(response_too_large(self.limits));
                }
                events.push(decode_event(&text)?);
            }
            drop(rows);
            if query.num_recent_events.is_some() {
                events.reverse();
            }
        }
        let (app, user_state) = self.shared_state(&mut conn, key.app(), key.user()).await?;
        Ok(Some(Session {
            app_name: key.app().to_owned(),
            user_id: key.user().to_owned(),
            id: key.id().to_owned(),
            state: merge_state(state_pairs(&state)?, app, user_state)?,
            events,
            last_update_time: updated,
            last_seq: seq,
        }))
    }

    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError> {
        let d = self.dialect();
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(d.pick(
            "SELECT id, state, seq, update_time FROM adk_sessions WHERE app_name = $1 AND user_id = $2",
            "SELECT id, state, seq, update_time FROM adk_sessions WHERE app_name = ? AND user_id = ?",
        ))
        .bind(user.app())
        .bind(user.user())
        .fetch_all(&mut *conn)
        .await?;
        let (app, user_state) = self
            .shared_state(&mut conn, user.app(), user.user())
            .await?;
        let mut sessions = rows
            .iter()
            .map(|r| listed(user.app(), user.user(), r, &app, &user_state))
            .collect::<Result<Vec<_>, _>>()?;
        sort_listing(&mut sessions);
        Ok(sessions)
    }

    async fn list_app(&self, app: &AppKey) -> Result<Vec<Session>, StoreError> {
        let d = self.dialect();
        let mut conn = self.db.pool().acquire().await?;
        let rows = sqlx::query(d.pick(
            "SELECT id, state, seq, update_time, user_id FROM adk_sessions WHERE app_name = $1",
            "SELECT id, state, seq, update_time, user_id FROM adk_sessions WHERE app_name = ?",
        ))
        .bind(app.app())
        .fetch_all(&mut *conn)
        .await?;
        let app_pairs = self.app_state(&mut conn, app.app()).await?;
        let user_rows = sqlx::query(d.pick(
            "SELECT user_id, state_key, value FROM adk_user_states WHERE app_name = $1",
            "SELECT user_id, state_key, value FROM adk_user_states WHERE app_name = ?",
        ))
        .bind(app.app())
        .fetch_all(&mut *conn)
        .await?;
        let mut by_user: std::collections::HashMap<String, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for r in &user_rows {
            by_user
                .entry(text(r, 0)?)
                .or_default()
                .push((text(r, 1)?, r.try_get(2)?));
        }
        let none = Vec::new();
        let mut sessions = Vec::with_capacity(rows.len());
        for r in &rows {
            let user = text(r, 4)?;
            let user_pairs = by_user.get(&user).unwrap_or(&none);
            sessions.push(listed(app.app(), &user, r, &app_pairs, user_pairs)?);
        }
        sort_listing(&mut sessions);
        Ok(sessions)
    }

    async fn user_state(&self, user: &UserKey) -> Result<State, StoreError> {
        let mut conn = self.db.pool().acquire().await?;
        let values = self.user_pairs(&mut conn, user.app(), user.user()).await?;
        merge_state(values, [], [])
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let d = self.dialect();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(d.pick(
            "DELETE FROM adk_events WHERE app_name = $1 AND user_id = $2 AND session_id = $3",
            "DELETE FROM adk_events WHERE app_name = ? AND user_id = ? AND session_id = ?",
        ))
        .bind(key.app())
        .bind(key.user())
        .bind(key.id())
        .execute(&mut *tx)
        .await?;
        sqlx::query(d.pick(
            "DELETE FROM adk_sessions WHERE app_name = $1 AND user_id = $2 AND id = $3",
            "DELETE FROM adk_sessions WHERE app_name = ? AND user_id = ? AND id = ?",
        ))
        .bind(key.app())
        .bind(key.user())
        .bind(key.id())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_event(
        &self,
        key: &SessionKey,
        event: Event,
        expected_seq: Option<u64>,
    ) -> Result<Appended, StoreError> {
        let prepared = prepare_event(event, self.limits.max_event_bytes)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_append(key, &prepared, expected_seq).await {
                Ok(outcome) => return outcome,
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
