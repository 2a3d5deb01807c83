//! TLS to the SQL backends (issue 15 #8): servers that admit TCP over TLS
//! only (PostgreSQL `ssl=on` with a `hostssl`-only `pg_hba.conf`, MariaDB
//! `require_secure_transport=ON`), certificates generated per test. A
//! verified connection stores a session; an unencrypted one and one that
//! trusts another CA are refused at start with a message that says why and
//! shows no password.

use std::time::Duration;

use shared::Secret;
use shared::store::StoreError;
use shared::store::session::{
    GetSession, SessionKey, SessionStore, SqlSessionStore, State, UserKey,
};
use shared::store::sql::{SqlDatabase, SqlSettings};
use shared::testkit::{MariaDbServer, PostgresServer, TlsFiles};

const PASSWORD: &str = "pw-7f3a-secret";

fn settings() -> SqlSettings {
    SqlSettings::default().with_acquire_timeout(Duration::from_secs(5))
}

/// Starts with `url`: connects and migrates, as a function does at start.
async fn start(url: &str) -> Result<SqlDatabase, StoreError> {
    let db = SqlDatabase::connect_lazy(&Secret::new(url), settings())?;
    db.migrate().await?;
    Ok(db)
}

async fn stores_a_session(db: SqlDatabase) {
    let store = SqlSessionStore::new(db);
    let user = UserKey::new("agent", "alice").unwrap();
    store
        .create(&user, State::new(), Some("over-tls"))
        .await
        .unwrap();
    let key = SessionKey::new("agent", "alice", "over-tls").unwrap();
    assert!(store.get(&key, GetSession::all()).await.unwrap().is_some());
}

fn assert_refused(result: Result<SqlDatabase, StoreError>, what: &str, says: &[&str]) {
    let err = result.expect_err(what);
    let message = err.to_string();
    assert!(!message.contains(PASSWORD), "{what}: {message}");
    assert!(
        says.iter().any(|s| message.contains(s)),
        "{what}: {message:?} says none of {says:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_verified_tls_works_and_plain_or_wrongly_trusted_connections_are_refused() {
    let tls = TlsFiles::generate();
    let other = TlsFiles::generate();
    let server = PostgresServer::start_tls(&tls);
    let db = server.create_database().await;
    let base = db
        .expose()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let ca = tls.ca_file().display().to_string();

    let verified = start(&format!("{base}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap();
    stores_a_session(verified).await;
    let by_name = base.replace("127.0.0.1", "localhost");
    start(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap();
    start(&format!("{base}?sslmode=verify-ca&sslrootcert={ca}"))
        .await
        .unwrap();
    start(&format!("{base}?sslmode=require")).await.unwrap();

    assert_refused(
        start(&format!("{base}?sslmode=disable")).await,
        "an unencrypted connection",
        &["requires TLS and the connection is not encrypted"],
    );
    let wrong_ca = other.ca_file().display().to_string();
    assert_refused(
        start(&format!(
            "{base}?sslmode=verify-full&sslrootcert={wrong_ca}"
        ))
        .await,
        "a server certificate from another CA",
        &["TLS handshake"],
    );
    assert_refused(
        start(&format!("{base}?sslmode=verify-ca&sslrootcert={wrong_ca}")).await,
        "verify-ca with another CA",
        &["TLS handshake"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_over_verified_tls_works_and_plain_or_wrongly_trusted_connections_are_refused() {
    let tls = TlsFiles::generate();
    let other = TlsFiles::generate();
    let server = MariaDbServer::start_tls(&tls);
    let db = server.create_database().await;
    server.create_user("agent", PASSWORD).await;
    let base = db.expose().replace("root@", &format!("agent:{PASSWORD}@"));
    let ca = tls.ca_file().display().to_string();

    let verified = start(&format!("{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"))
        .await
        .unwrap();
    stores_a_session(verified).await;
    start(&format!("{base}?ssl-mode=VERIFY_CA&ssl-ca={ca}"))
        .await
        .unwrap();
    start(&format!("{base}?ssl-mode=REQUIRED")).await.unwrap();

    assert_refused(
        start(&format!("{base}?ssl-mode=DISABLED")).await,
        "an unencrypted connection",
        // MySQL 8 says the transport is insecure; MariaDB refuses the login.
        &["requires TLS", "admits TLS connections only"],
    );
    let wrong_ca = other.ca_file().display().to_string();
    assert_refused(
        start(&format!(
            "{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={wrong_ca}"
        ))
        .await,
        "a server certificate from another CA",
        &["TLS handshake"],
    );
}
