//! `rediss://` against a TLS redis-server with certificates generated per
//! test: verification on by default, a custom CA from configuration, and
//! skipping verification only when explicitly set (and logged).

use std::sync::Arc;

use shared::testkit::{RedisServer, TlsFiles};
use shared::{AppContext, Config, ErrorKind, RedisClient};

use crate::round_trip;

fn tls_server() -> RedisServer {
    RedisServer::builder()
        .tls(Arc::new(TlsFiles::generate()))
        .start()
}

#[tokio::test]
async fn tls_with_the_ca_from_configuration_is_healthy() {
    let server = tls_server();
    let ca = server.config().tls_ca_file.unwrap();
    let env = [
        ("REDIS_URL", server.url()),
        ("REDIS_TLS_CA_FILE", ca.display().to_string()),
    ];
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
            .unwrap();
    assert!(config.redis.tls());
    let ctx = AppContext::new(config).unwrap();
    let report = shared::redis::HealthCheck::new(ctx.redis.clone())
        .check()
        .await;
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(round_trip(&ctx.redis, "k").await.unwrap(), "v");
    // The client's TLS connections: the probe's own and the pool's.
    assert_eq!(server.client_count(), 2);
}

#[tokio::test]
async fn certificates_are_verified_by_default() {
    let server = tls_server();
    let mut config = server.config();
    config.tls_ca_file = None; // the system roots do not know the test CA
    let client = RedisClient::new(config).unwrap();
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        !shared::redis::HealthCheck::new(client.clone())
            .check()
            .await
            .is_healthy()
    );
}

#[tokio::test]
async fn skipping_verification_works_only_when_set_and_is_logged() {
    let logs = shared::testkit::CapturedLogs::default();
    shared::telemetry::init_with_writer(
        "test",
        shared::config::LogFormat::Json,
        "info",
        logs.clone(),
    );
    let server = tls_server();
    let mut config = server.config();
    config.tls_ca_file = None;
    config.tls_insecure = true;
    let client = RedisClient::new(config).unwrap();
    assert_eq!(round_trip(&client, "k").await.unwrap(), "v");
    let text = logs.text();
    let warning = text
        .lines()
        .find(|l| l.contains("REDIS_TLS_INSECURE"))
        .unwrap_or_else(|| panic!("no warning about skipped verification in:\n{text}"));
    assert!(warning.contains("\"severity\":\"WARNING\""), "{warning}");
}
