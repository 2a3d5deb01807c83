//! The session and memory stores against every backend: one behaviour suite
//! (`behaviour.rs`, `memory.rs`) instantiated unchanged for Redis,
//! PostgreSQL, MariaDB and process memory, each test with servers of its
//! own started by the test kit; then what only one backend can show
//! (`redis_keys.rs`: TTLs, hash slots, round trips, crafted ids against the
//! key space; `faults.rs`: servers that go away).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod behaviour;
mod faults;
mod identity;
mod limits;
mod memory;
mod redis_keys;
mod timestamps;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use shared::config::{Backend, Config};
use shared::store::memory::{self as memory_store, MemoryStore};
use shared::store::session::{self, SessionLimits, SessionStore};
use shared::store::sql::{SqlDatabase, SqlSettings};
use shared::testkit::{MariaDbServer, PostgresServer, TestRedis};
use shared::{Secret, config::StoreConfig};
use sqlx::Row;

/// Which backend a [`World`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Postgres,
    MariaDb,
    Memory,
}

/// The stores of one test, on their own servers, and a way to look at
/// everything they stored.
#[derive(Debug)]
pub struct World {
    pub kind: Kind,
    pub sessions: Arc<dyn SessionStore>,
    pub memory: Arc<dyn MemoryStore>,
    pub redis: TestRedis,
    pub db: Option<SqlDatabase>,
    pub postgres: Option<PostgresServer>,
    pub mariadb: Option<MariaDbServer>,
}

impl World {
    pub async fn new(kind: Kind) -> Self {
        Self::with_ttl(kind, Duration::from_secs(3600)).await
    }

    /// A world whose sessions expire `ttl` after their last write (Redis and memory).
    pub async fn with_ttl(kind: Kind, ttl: Duration) -> Self {
        Self::build(kind, ttl, SessionLimits::default()).await
    }

    /// A world whose session stores have `limits`.
    pub async fn with_limits(kind: Kind, limits: SessionLimits) -> Self {
        Self::build(kind, Duration::from_secs(3600), limits).await
    }

    async fn build(kind: Kind, ttl: Duration, limits: SessionLimits) -> Self {
        let redis = TestRedis::start();
        let (postgres, mariadb, url) = match kind {
            Kind::Postgres => {
                let server = PostgresServer::start();
                let url = server.create_database().await;
                (Some(server), None, Some(url))
            }
            Kind::MariaDb => {
                let server = MariaDbServer::start();
                let url = server.create_database().await;
                (None, Some(server), Some(url))
            }
            Kind::Redis | Kind::Memory => (None, None, None),
        };
        let backend = match kind {
            Kind::Redis => "redis",
            Kind::Postgres | Kind::MariaDb => "sql",
            Kind::Memory => "memory",
        };
        let ttl_secs = ttl.as_secs().max(1).to_string();
        let url_text = url.as_ref().map(|u| u.expose().to_owned());
        let mut config = Config::from_lookup(|name| match name {
            "SESSION_BACKEND" | "MEMORY_BACKEND" => Some(backend.to_owned()),
            "REDIS_SESSION_TTL" => Some(ttl_secs.clone()),
            "DATABASE_URL" => url_text.clone(),
            _ => None,
        })
        .unwrap();
        config.redis = redis.config();
        let stores: &StoreConfig = &config.stores;
        let db = match &url {
            Some(url) => {
                let settings = SqlSettings::default().with_acquire_timeout(Duration::from_secs(2));
                let db = SqlDatabase::connect_lazy(url, settings).unwrap();
                db.migrate().await.unwrap();
                Some(db)
            }
            None => None,
        };
        let client = redis.client();
        let mut stores = stores.clone();
        stores.session_ttl = ttl;
        stores.session_limits = limits;
        let sessions = session::open(&stores, &client, db.as_ref()).unwrap();
        let memory = memory_store::open(&stores, &client, db.as_ref()).unwrap();
        assert_eq!(
            sessions.backend(),
            match stores.session_backend {
                Backend::Redis => "redis",
                Backend::Sql => "sql",
                _ => "memory",
            }
        );
        Self {
            kind,
            sessions,
            memory,
            redis,
            db,
            postgres,
            mariadb,
        }
    }

    /// Everything stored, as text: every Redis key with its contents, or
    /// every row of every table. `None` for process memory.
    pub async fn dump(&self) -> Option<String> {
        match self.kind {
            Kind::Memory => None,
            Kind::Redis => Some(redis_dump(&self.redis)),
            Kind::Postgres | Kind::MariaDb => Some(sql_dump(self.db.as_ref().unwrap()).await),
        }
    }
}

/// Every key of a server with its type and contents, sorted.
pub fn redis_dump(server: &TestRedis) -> String {
    let mut conn = server.admin();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.sort();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let value: redis::Value = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            _ => redis::cmd("GET")
                .arg(&key)
                .query(&mut conn)
                .unwrap_or(redis::Value::Nil),
        };
        out.push_str(&format!("{key} {kind} {value:?}\n"));
    }
    out
}

/// Every row of the stores' tables, as text.
pub async fn sql_dump(db: &SqlDatabase) -> String {
    let tables = [
        (
            "adk_sessions",
            "app_name, user_id, id, state, CAST(seq AS CHAR(20)) AS seq",
        ),
        ("adk_events", "app_name, user_id, session_id, event"),
        ("adk_app_states", "app_name, state_key, value"),
        ("adk_user_states", "app_name, user_id, state_key, value"),
        ("memory_entries", "app_name, user_id, session_id, text"),
        ("memory_words", "app_name, user_id, word"),
    ];
    let mut out = String::new();
    for (table, columns) in tables {
        let columns = if db.dialect() == shared::store::sql::Dialect::Postgres {
            columns.replace("CHAR(20)", "TEXT")
        } else {
            columns.to_owned()
        };
        let sql = format!("SELECT {columns} FROM {table} ORDER BY 1, 2, 3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(db.pool())
            .await
            .unwrap();
        let mut lines: Vec<String> = rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| column_text(r, i))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        lines.sort();
        for line in lines {
            out.push_str(&format!("{table}: {line}\n"));
        }
    }
    out
}

/// A column as text: identity columns are VARBINARY on MariaDB (they
/// compare byte for byte), text elsewhere.
pub fn column_text(row: &sqlx::any::AnyRow, i: usize) -> String {
    use sqlx::{Column, TypeInfo};
    if row.column(i).type_info().name() == "BLOB" {
        String::from_utf8(row.try_get::<Vec<u8>, _>(i).unwrap()).unwrap()
    } else {
        row.try_get::<String, _>(i).unwrap()
    }
}

/// A database URL that nothing answers at, for configuration tests.
pub fn unreachable_database_url() -> Secret {
    Secret::new(format!(
        "postgres://postgres@127.0.0.1:{}/none",
        shared::testkit::free_port()
    ))
}

/// Instantiates every behaviour test for every backend: `redis::<test>`,
/// `postgres::<test>`, `mariadb::<test>`, `memory::<test>`.
macro_rules! for_every_backend {
    ($module:ident: $($test:ident),* $(,)?) => {
        mod redis { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let world = crate::World::new(crate::Kind::Redis).await;
                crate::$module::$test(&world).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let world = crate::World::new(crate::Kind::Postgres).await;
                crate::$module::$test(&world).await;
            }
        )* }
        mod mariadb { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let world = crate::World::new(crate::Kind::MariaDb).await;
                crate::$module::$test(&world).await;
            }
        )* }
        mod memory { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let world = crate::World::new(crate::Kind::Memory).await;
                crate::$module::$test(&world).await;
            }
        )* }
    };
}
pub(crate) use for_every_backend;

mod sessions_on {
    crate::for_every_backend!(behaviour:
        create_then_get_returns_the_session_and_its_state,
        create_with_a_taken_id_fails_with_already_exists,
        concurrent_creates_of_one_id_have_exactly_one_winner,
        get_of_an_absent_session_is_none,
        list_returns_only_that_users_sessions,
        delete_removes_the_session_and_is_idempotent,
        appends_get_gapless_sequence_numbers_and_are_read_in_order,
        num_recent_events_returns_the_last_n,
        after_timestamp_returns_events_at_or_after_it,
        timestamps_are_stored_as_given_and_after_timestamp_reads_index_times,
        partial_false_and_unknown_fields_are_kept_exactly,
        an_event_id_appended_twice_is_stored_once,
        list_app_returns_every_users_sessions_oldest_update_first,
        user_state_is_readable_without_a_session,
        app_state_is_shared_by_users_and_user_state_by_sessions,
        temp_state_is_returned_by_the_append_but_never_stored,
        partial_events_are_not_stored,
        append_to_an_absent_session_fails_and_creates_nothing,
        stale_expected_seq_fails_and_writes_nothing,
        a_session_is_identified_by_app_user_and_id,
        crafted_ids_reach_only_their_own_sessions,
        invalid_input_is_rejected_and_writes_nothing,
        hundred_writers_append_ten_thousand_events_without_gaps,
        concurrent_appends_updating_shared_state_all_succeed,
    );
}

/// The documented limits, with small values, on every backend.
mod limits_on {
    macro_rules! on {
        ($($kind:ident: $name:ident),*) => { $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_full_session_refuses_appends_and_big_reads_are_refused() {
                    let world =
                        crate::World::with_limits(crate::Kind::$kind, crate::limits::small()).await;
                    crate::limits::a_full_session_refuses_appends_and_big_reads_are_refused(&world)
                        .await;
                }
            }
        )* };
    }
    on!(Redis: redis, Postgres: postgres, MariaDb: mariadb, Memory: memory);
}

mod timestamps_on {
    crate::for_every_backend!(timestamps:
        after_timestamp_follows_one_rule_for_generated_timestamps_and_filters,
    );
}

/// Expiry: the backends with a TTL (the SQL one is durable by design).
mod expiry_on {
    mod redis {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_session_is_gone_and_an_append_does_not_bring_it_back() {
            let world =
                crate::World::with_ttl(crate::Kind::Redis, std::time::Duration::from_secs(1)).await;
            crate::behaviour::expired_session_is_gone_and_an_append_does_not_bring_it_back(&world)
                .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn appends_keep_a_session_alive_past_its_first_ttl() {
            let world =
                crate::World::with_ttl(crate::Kind::Redis, std::time::Duration::from_secs(1)).await;
            crate::behaviour::appends_keep_a_session_alive_past_its_first_ttl(&world).await;
        }
    }
    mod memory {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_session_is_gone_and_an_append_does_not_bring_it_back() {
            let world =
                crate::World::with_ttl(crate::Kind::Memory, std::time::Duration::from_secs(1))
                    .await;
            crate::behaviour::expired_session_is_gone_and_an_append_does_not_bring_it_back(&world)
                .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn appends_keep_a_session_alive_past_its_first_ttl() {
            let world =
                crate::World::with_ttl(crate::Kind::Memory, std::time::Duration::from_secs(1))
                    .await;
            crate::behaviour::appends_keep_a_session_alive_past_its_first_ttl(&world).await;
        }
    }
}

/// Issue 15 #1: ids compare byte for byte on every backend.
mod identity_on {
    crate::for_every_backend!(identity:
        users_that_differ_in_any_byte_are_different_users,
        session_ids_and_apps_that_differ_in_any_byte_are_apart,
        state_keys_that_differ_in_any_byte_are_different_keys,
        memories_of_users_and_event_ids_that_differ_in_any_byte_are_apart,
    );
}

/// Migration 0004 on a database that already holds rows.
mod identity_upgrade {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let server = shared::testkit::PostgresServer::start();
        let url = server.create_database().await;
        crate::identity::migration_0004_keeps_existing_rows_and_tells_lookalikes_apart(&url, false)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        let server = shared::testkit::MariaDbServer::start();
        let url = server.create_database().await;
        crate::identity::migration_0004_keeps_existing_rows_and_tells_lookalikes_apart(&url, true)
            .await;
    }
}

mod memory_on {
    crate::for_every_backend!(memory:
        search_finds_word_matches_newest_first,
        search_is_scoped_to_the_app_and_the_user,
        adding_a_session_again_does_not_duplicate_entries,
        entries_older_than_the_ttl_are_never_returned,
        search_limit_is_validated,
        a_memory_keeps_the_events_whole_content,
        events_can_be_remembered_without_a_stored_session,
        a_memory_can_be_deleted_by_event_id,
        words_are_found_in_scripts_without_spaces,
        a_long_unspaced_text_is_indexed_within_the_bounds,
    );
}
