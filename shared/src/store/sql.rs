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
//!
//! # Identity
//!
//! Identity columns (app, user, session id, state key, event id, memory
//! word) compare byte for byte: `VARBINARY` on MySQL / MariaDB (migration
//! 0004; the `utf8mb4_bin` collation before it is PAD SPACE, so `alice `
//! equalled `alice`); PostgreSQL's `VARCHAR` under a deterministic
//! collation (every database default is one) compares bytes already, and
//! its 0004 only records that (a collation change would break the cached
//! plans of a revision still running during a rolling deploy). No
//! statement uses `LIKE` or a prefix match on an id.
//!
//! # TLS
//!
//! rustls (ring, the system's roots). The URL chooses the verification:
//! `sslmode=disable|prefer|require|verify-ca|verify-full` with
//! `sslrootcert=<CA file>` (PostgreSQL), `ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY`
//! with `ssl-ca=<CA file>` (MySQL); sqlx parses them. A connection that
//! cannot be made is reported by [`SqlDatabase::migrate`] at start with
//! what refused it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow, AnyTypeInfoKind};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Column, Row};
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
        let files: [(i64, &str, &'static str); 4] = match self {
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
                (
                    4,
                    "identity_bytes",
                    include_str!("../../migrations/postgres/0004_identity_bytes.sql"),
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
                (
                    4,
                    "identity_bytes",
                    include_str!("../../migrations/mysql/0004_identity_bytes.sql"),
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

/// A pool of connections to PostgreSQL or MySQL (over TCP, TLS or a Unix
/// socket, as the URL says). Cheap to clone (clones share the pool);
/// connects lazily, on first use.
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

    /// Connects, then brings the schema up to date (see the module
    /// documentation). Called at start, so its errors are the start-up
    /// message: they say what refused the connection (the TLS handshake, a
    /// server that requires TLS, the login) and never quote the URL.
    ///
    /// # Errors
    /// When the database is unreachable or the TLS handshake fails
    /// ([`StoreError::Unavailable`]), refuses the connection or a migration
    /// fails ([`StoreError::Failed`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // One connection first, so that a refusal is reported for what it
        // is (TLS, authentication) before the migrator's own error.
        drop(self.pool.acquire().await.map_err(connect_error)?);
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

/// The start-up error of a connection that could not be made: what refused
/// it and which setting to look at, never the URL or the server's text
/// (which may quote the user or database).
fn connect_error(err: sqlx::Error) -> StoreError {
    const TLS_HINT: &str = "set sslmode=require or verify-full (PostgreSQL), ssl-mode=REQUIRED or \
                            VERIFY_IDENTITY (MySQL) in DATABASE_URL";
    if let Some(why) = tls_failure(&err) {
        return StoreError::Unavailable {
            backend: "sql",
            detail: format!(
                "the TLS handshake with the database failed ({why}); check sslmode / ssl-mode, \
                 the CA (sslrootcert / ssl-ca) and the host name the certificate is for"
            ),
            retry_after: Duration::from_secs(1),
            kind: None,
        };
    }
    match &err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            StoreError::Unavailable {
                backend: "sql",
                detail:
                    "a file the connection needs does not exist (the Unix socket, or the CA in \
                     sslrootcert / ssl-ca)"
                        .into(),
                retry_after: Duration::from_secs(1),
                kind: None,
            }
        }
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Read to classify, never quoted: PostgreSQL's pg_hba refusal of
            // an unencrypted connection ends "no encryption".
            let insecure = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|e| INSECURE_TRANSPORT.contains(&e.number()))
                || (code == "28000" && db.message().ends_with("no encryption"));
            if insecure {
                StoreError::failed(
                    "sql",
                    format!(
                        "the database requires TLS and the connection is not encrypted: {TLS_HINT}"
                    ),
                )
            } else if code == "28000" || code == "28P01" {
                StoreError::failed(
                    "sql",
                    format!(
                        "the database refused the connection (SQLSTATE {code}): wrong user, password \
                         or database, or the server admits TLS connections only ({TLS_HINT})"
                    ),
                )
            } else {
                StoreError::from(err)
            }
        }
        _ => StoreError::from(err),
    }
}

/// What failed in a TLS handshake: sqlx reports its own TLS errors as
/// `Tls` and the handshake's (a certificate that does not verify) as an I/O
/// error carrying rustls's. Both describe the certificate, not a secret.
fn tls_failure(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Tls(inner) => Some(inner.to_string()),
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        _ => None,
    }
}

/// MySQL 8's error number for a connection refused because it is not
/// encrypted (`require_secure_transport=ON`). MariaDB refuses it as a
/// failed login (1045, SQLSTATE 28000), whose message names TLS too.
const INSECURE_TRANSPORT: [u16; 1] = [3159];

/// Column `index` of `row` as text. Identity columns are binary on MySQL /
/// MariaDB (`VARBINARY`, so that they compare byte for byte: migration
/// 0004) and text on PostgreSQL; both hold UTF-8.
///
/// # Errors
/// When the column is missing, of another type, or not UTF-8.
pub(crate) fn text(row: &AnyRow, index: usize) -> Result<String, sqlx::Error> {
    if row.column(index).type_info().kind() == AnyTypeInfoKind::Blob {
        let bytes: Vec<u8> = row.try_get(index)?;
        String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
            index: index.to_string(),
            source: Box::new(e),
        })
    } else {
        row.try_get(index)
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
