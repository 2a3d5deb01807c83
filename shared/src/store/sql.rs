//! The SQL database of the `sql` store backends: PostgreSQL or MySQL /
//! MariaDB, chosen by the scheme of `DATABASE_URL` (`postgres://`,
//! `postgresql://`, `mysql://`, `mariadb://`).
//!
//! One `sqlx` `AnyPool` serves both; the few statements whose syntax differs
//! (placeholders `$1` against `?`, upserts) are written once per
//! [`Dialect`]. Queries are built at run time: nothing needs a live database
//! at build time.
//!
//! The schema is created by migrations shipped in the binary
//! (`shared/migrations/<dialect>/NNNN_*.sql`) and run by [`SqlDatabase::migrate`]
//! when a function starts; sqlx records them in `_sqlx_migrations` and takes
//! a database lock, so concurrent starts are safe. Tables: `adk_sessions`,
//! `adk_events`, `adk_app_states`, `adk_user_states` (sessions) and
//! `memory_entries`, `memory_words` (memory).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::config::{ConfigError, Env, Secret};
use crate::store::error::StoreError;

/// Which SQL dialect the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `$1` placeholders, `ON CONFLICT` upserts.
    Postgres,
    /// MySQL or MariaDB: `?` placeholders, `ON DUPLICATE KEY` upserts.
    MySql,
}

impl Dialect {
    /// The dialect of a `DATABASE_URL`, from its scheme.
    ///
    /// # Errors
    /// When the scheme is neither PostgreSQL nor MySQL / MariaDB. The
    /// message never repeats the URL (it holds a password).
    pub fn of_url(url: &str) -> Result<Self, ConfigError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            _ => Err(ConfigError::new(
                "DATABASE_URL",
                "expected postgres://user:password@host/db or mysql://user:password@host/db",
            )),
        }
    }

    /// The dialect's name: `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }

    /// The `n`-th (1-based) bind placeholder.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".to_owned(),
        }
    }

    /// `count` placeholders separated by commas, numbered from `first`.
    pub(crate) fn placeholders(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.placeholder(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Picks the statement written for this dialect.
    pub(crate) fn pick(self, postgres: &'static str, mysql: &'static str) -> &'static str {
        match self {
            Self::Postgres => postgres,
            Self::MySql => mysql,
        }
    }

    fn migrations(self) -> Vec<Migration> {
        let files: [(i64, &str, &'static str); 3] = match self {
            Self::Postgres => [
                (
                    1,
                    "sessions",
                    include_str!("../../migrations/postgres/0001_sessions.sql"),
                ),
                (
                    2,
                    "memory",
                    include_str!("../../migrations/postgres/0002_memory.sql"),
                ),
                (
                    3,
                    "adk_fidelity",
                    include_str!("../../migrations/postgres/0003_adk_fidelity.sql"),
                ),
            ],
            Self::MySql => [
                (
                    1,
                    "sessions",
                    include_str!("../../migrations/mysql/0001_sessions.sql"),
                ),
                (
                    2,
                    "memory",
                    include_str!("../../migrations/mysql/0002_memory.sql"),
                ),
                (
                    3,
                    "adk_fidelity",
                    include_str!("../../migrations/mysql/0003_adk_fidelity.sql"),
                ),
            ],
        };
        files
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect()
    }
}

/// Pool settings of the SQL backends, read from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlSettings {
    /// `DATABASE_MAX_CONNECTIONS` (default 10): connections kept per process.
    pub max_connections: u32,
    /// `DATABASE_TIMEOUT_MS` (default 5000): the wait for a connection
    /// (connecting included) before the operation fails as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for SqlSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl SqlSettings {
    /// These settings with another connection wait.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Reads `DATABASE_MAX_CONNECTIONS` and `DATABASE_TIMEOUT_MS`.
    ///
    /// # Errors
    /// When a value is not an integer in its range.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections: env.range("DATABASE_MAX_CONNECTIONS", 10, 1, 1_000)? as u32,
            acquire_timeout: env.millis("DATABASE_TIMEOUT_MS", 5_000, 10, 300_000)?,
        })
    }
}

/// A pool of connections to PostgreSQL or MySQL. Cheap to clone (clones
/// share the pool); connects lazily, on first use.
#[derive(Clone)]
pub struct SqlDatabase {
    pool: AnyPool,
    dialect: Dialect,
}

impl fmt::Debug for SqlDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it holds the password.
        f.debug_struct("SqlDatabase")
            .field("dialect", &self.dialect)
            .field("size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl SqlDatabase {
    /// A pool for `url`. Nothing is connected until first use.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] (field `DATABASE_URL`) when the URL is not a
    /// PostgreSQL or MySQL URL sqlx accepts; the message never repeats it.
    pub fn connect_lazy(url: &Secret, settings: SqlSettings) -> Result<Self, StoreError> {
        let dialect = Dialect::of_url(url.expose())
            .map_err(|e| StoreError::invalid("DATABASE_URL", e.message))?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy(url.expose())
            .map_err(|_| {
                StoreError::invalid(
                    "DATABASE_URL",
                    "not a usable postgres:// or mysql:// URL (user, password, host, database)",
                )
            })?;
        Ok(Self { pool, dialect })
    }

    /// Brings the schema up to date (see the module documentation).
    ///
    /// # Errors
    /// When the database is unreachable ([`StoreError::Unavailable`]) or a
    /// migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::with_migrations(self.dialect.migrations());
        migrator.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            _ => StoreError::failed("sql", "the schema migration failed"),
        })
    }

    /// The dialect the database speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A statement whose text was built here from constant fragments and
/// generated placeholders, never from input.
pub(crate) fn built(sql: String) -> sqlx::SqlStr {
    AssertSqlSafe(sql).into_sql_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_comes_from_the_scheme_and_errors_hide_the_url() {
        assert_eq!(
            Dialect::of_url("postgres://u:p@h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(
            Dialect::of_url("mariadb://u:p@h/db").unwrap(),
            Dialect::MySql
        );
        let err = Dialect::of_url("oracle://u:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(Dialect::Postgres.placeholders(3, 2), "$3, $4");
        assert_eq!(Dialect::MySql.placeholders(3, 2), "?, ?");
    }
}
