//! The `sql` memory backend (PostgreSQL or MySQL / MariaDB).
//!
//! # Schema (`shared/migrations/<dialect>/0002_memory.sql`)
//!
//! ```text
//! memory_entries  id PK; app_name, user_id, session_id, event_id, author, ts, text, content
//!                 indexes (app_name, user_id, session_id), (app_name, user_id, ts), (app_name, user_id, event_id)
//! memory_words    (app_name, user_id, word, entry_id) PK; ts; entry_id -> memory_entries ON DELETE CASCADE
//! ```
//!
//! An add is one transaction: delete at most [`CLEANUP_BATCH`] expired
//! entries of the user (their words go by cascade), delete the previous
//! entries of the same (session, event) ids, insert the entries and their
//! words. A delete removes an event id's entries (words by cascade). A search
//! joins the query words to their entries, newer than the cutoff, newest
//! first, limited.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::{
    CLEANUP_BATCH, MAX_WORDS_PER_ENTRY, MemoryEntry, MemoryStore, StoreError, entries_of,
    search_words, words,
};
use crate::store::session::{Event, RawJson, UserKey, now, validate_id};
use crate::store::sql::{Dialect, SqlDatabase, built, text};

/// Memory in PostgreSQL or MySQL. See the module documentation.
#[derive(Debug, Clone)]
pub struct SqlMemoryStore {
    db: SqlDatabase,
    ttl: Duration,
}

impl SqlMemoryStore {
    /// A store on `db` (migrated) whose entries expire `ttl` after their timestamp.
    pub fn new(db: SqlDatabase, ttl: Duration) -> Self {
        Self { db, ttl }
    }

    fn cutoff(&self) -> f64 {
        now() - self.ttl.as_secs_f64()
    }
}

#[async_trait]
impl MemoryStore for SqlMemoryStore {
    fn backend(&self) -> &'static str {
        "sql"
    }

    async fn add_events(
        &self,
        user: &UserKey,
        session_id: &str,
        events: &[Event],
    ) -> Result<usize, StoreError> {
        let entries = entries_of(session_id, events)?;
        let d = self.db.dialect();
        let cutoff = self.cutoff();
        let mut tx = self.db.pool().begin().await?;
        let cleanup = match d {
            Dialect::Postgres => format!(
                "DELETE FROM memory_entries WHERE id IN (SELECT id FROM memory_entries \
                 WHERE app_name = $1 AND user_id = $2 AND ts < $3 ORDER BY ts LIMIT {CLEANUP_BATCH})"
            ),
            Dialect::MySql => format!(
                "DELETE FROM memory_entries WHERE app_name = ? AND user_id = ? AND ts < ? \
                 ORDER BY ts LIMIT {CLEANUP_BATCH}"
            ),
        };
        sqlx::query(built(cleanup))
            .bind(user.app())
            .bind(user.user())
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let mut written = 0;
        for entry in entries.iter().filter(|e| e.timestamp >= cutoff) {
            sqlx::query(d.pick(
                "DELETE FROM memory_entries WHERE app_name = $1 AND user_id = $2 \
                 AND event_id = $3 AND session_id = $4",
                "DELETE FROM memory_entries WHERE app_name = ? AND user_id = ? \
                 AND event_id = ? AND session_id = ?",
            ))
            .bind(user.app())
            .bind(user.user())
            .bind(&entry.event_id)
            .bind(&entry.session_id)
            .execute(&mut *tx)
            .await?;
            let insert = sqlx::query(d.pick(
                "INSERT INTO memory_entries (app_name, user_id, session_id, event_id, author, ts, text, content) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                "INSERT INTO memory_entries (app_name, user_id, session_id, event_id, author, ts, text, content) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(user.app())
            .bind(user.user())
            .bind(&entry.session_id)
            .bind(&entry.event_id)
            .bind(&entry.author)
            .bind(entry.timestamp)
            .bind(&entry.text)
            .bind(entry.content.as_ref().map(|c| c.get().to_owned()));
            let id: i64 = match d {
                Dialect::Postgres => insert.fetch_one(&mut *tx).await?.try_get(0)?,
                Dialect::MySql => {
                    let done = insert.execute(&mut *tx).await?;
                    done.last_insert_id().ok_or_else(|| {
                        StoreError::failed("sql", "the database gave no id for a memory entry")
                    })?
                }
            };
            let entry_words = words(&entry.text, MAX_WORDS_PER_ENTRY);
            if !entry_words.is_empty() {
                let rows = (0..entry_words.len())
                    .map(|i| format!("({})", d.placeholders(5 * i + 1, 5)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut q = sqlx::query(built(format!(
                    "INSERT INTO memory_words (app_name, user_id, word, ts, entry_id) VALUES {rows}"
                )));
                for w in &entry_words {
                    q = q
                        .bind(user.app())
                        .bind(user.user())
                        .bind(w)
                        .bind(entry.timestamp)
                        .bind(id);
                }
                q.execute(&mut *tx).await?;
            }
            written += 1;
        }
        tx.commit().await?;
        Ok(written)
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
        let d = self.db.dialect();
        let sql = format!(
            "SELECT e.session_id, e.event_id, e.author, e.ts, e.text, e.content FROM memory_entries e \
             WHERE e.id IN (SELECT w.entry_id FROM memory_words w \
             WHERE w.app_name = {} AND w.user_id = {} AND w.ts >= {} AND w.word IN ({})) \
             ORDER BY e.ts DESC, e.id DESC LIMIT {limit}",
            d.placeholder(1),
            d.placeholder(2),
            d.placeholder(3),
            d.placeholders(4, query_words.len()),
        );
        let mut q = sqlx::query(built(sql))
            .bind(user.app())
            .bind(user.user())
            .bind(self.cutoff());
        for w in &query_words {
            q = q.bind(w);
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(MemoryEntry {
                    session_id: text(r, 0)?,
                    event_id: text(r, 1)?,
                    author: r.try_get(2)?,
                    timestamp: r.try_get(3)?,
                    text: r.try_get(4)?,
                    content: r
                        .try_get::<Option<String>, _>(5)?
                        .and_then(|c| RawJson::parse(c).ok()),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn delete(&self, user: &UserKey, event_id: &str) -> Result<usize, StoreError> {
        validate_id("event_id", event_id)?;
        let done = sqlx::query(self.db.dialect().pick(
            "DELETE FROM memory_entries WHERE app_name = $1 AND user_id = $2 AND event_id = $3",
            "DELETE FROM memory_entries WHERE app_name = ? AND user_id = ? AND event_id = ?",
        ))
        .bind(user.app())
        .bind(user.user())
        .bind(event_id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() as usize)
    }
}
