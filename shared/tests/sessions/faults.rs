//! Backends that go away: an operation fails as unavailable (the function
//! answers 503 with Retry-After) within its deadline, and loses nothing it
//! acknowledged.

use std::time::Duration;

use shared::config::{Backend, Config};
use shared::store::session::{self, Event, GetSession, SessionKey, State, StoreError, UserKey};
use shared::store::sql::{SqlDatabase, SqlSettings};

use crate::{Kind, World};

async fn outage_makes_appends_unavailable(kind: Kind) {
    let mut w = World::new(kind).await;
    let user = UserKey::new("agent", "alice").unwrap();
    let key = SessionKey::new("agent", "alice", "s").unwrap();
    w.sessions
        .create(&user, State::new(), Some("s"))
        .await
        .unwrap();
    w.sessions
        .append_event(&key, Event::text("user", "kept"), None)
        .await
        .unwrap();
    match kind {
        Kind::Redis => w.redis.stop(),
        Kind::Postgres => w.postgres.as_mut().unwrap().stop(),
        Kind::MariaDb => w.mariadb.as_mut().unwrap().stop(),
        Kind::Memory => unreachable!(),
    }
    for _ in 0..3 {
        let outcome = tokio::time::timeout(
            Duration::from_secs(20),
            w.sessions
                .append_event(&key, Event::text("user", "lost?"), None),
        )
        .await
        .expect("the append ends within its deadline");
        let err = outcome.unwrap_err();
        assert!(err.is_unavailable(), "{kind:?}: {err:?}");
        assert!(err.retry_after() >= Duration::from_secs(1));
        let message = err.to_string();
        assert!(
            !message.contains("lost?") && !message.contains("postgres://"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_makes_appends_fail_as_unavailable() {
    outage_makes_appends_unavailable(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_makes_appends_fail_as_unavailable() {
    outage_makes_appends_unavailable(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_outage_makes_appends_fail_as_unavailable() {
    outage_makes_appends_unavailable(Kind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_again_without_changing_anything() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let w = World::new(kind).await;
        let user = UserKey::new("agent", "alice").unwrap();
        w.sessions
            .create(&user, State::new(), Some("s"))
            .await
            .unwrap();
        w.db.as_ref().unwrap().migrate().await.unwrap();
        let key = SessionKey::new("agent", "alice", "s").unwrap();
        assert!(
            w.sessions
                .get(&key, GetSession::all())
                .await
                .unwrap()
                .is_some(),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn the_sql_backend_without_a_database_is_a_configuration_error() {
    let config = Config::from_lookup(|name| match name {
        "SESSION_BACKEND" => Some("sql".into()),
        "DATABASE_URL" => Some("postgres://u:hunter2@127.0.0.1:1/db".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.stores.session_backend, Backend::Sql);
    let redis = shared::RedisClient::new(config.redis.clone()).unwrap();
    let err = session::open(&config.stores, &redis, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "DATABASE_URL",
                ..
            }
        ),
        "{err}"
    );
    let url = shared::Secret::new("oracle://u:hunter2@h/db");
    let err = SqlDatabase::connect_lazy(&url, SqlSettings::default()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_migration_as_unavailable_without_the_password() {
    let url = crate::unreachable_database_url();
    let settings = SqlSettings::default().with_acquire_timeout(Duration::from_secs(1));
    let db = SqlDatabase::connect_lazy(&url, settings).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), db.migrate())
        .await
        .expect("migrate gives up within its deadline")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}
