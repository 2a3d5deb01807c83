//! ACL users: a user limited to one tenant's keys works for that tenant and
//! is refused elsewhere (`NOPERM`: `other`, which a retry cannot cure); a
//! wrong password is `auth` and never shown.

use shared::ErrorKind;
use shared::blocks::keys::Tenant;
use shared::testkit::RedisServer;

const RULES: &str = "~ws:{acme}:* resetchannels +@all -@dangerous +info";

async fn set(client: &shared::RedisClient, key: String) -> Result<(), shared::RedisFailure> {
    client
        .run(|mut c| async move { redis::cmd("SET").arg(key).arg("1").exec_async(&mut c).await })
        .await
}

#[tokio::test]
async fn a_tenant_scoped_user_works_for_its_tenant_and_is_refused_elsewhere() {
    let server = RedisServer::builder()
        .acl_user("acme-app", "acme-secret-123456", RULES)
        .start();
    let client =
        shared::RedisClient::new(server.config_as("acme-app", "acme-secret-123456")).unwrap();
    let acme = Tenant::new("workspace", "acme").unwrap();
    let other = Tenant::new("workspace", "globex").unwrap();

    set(&client, acme.key("counter")).await.unwrap();
    let report = shared::redis::HealthCheck::new(client.clone())
        .check()
        .await;
    assert!(
        report.is_healthy(),
        "health needs only PING and INFO: {report:?}"
    );

    let err = set(&client, other.key("counter")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    assert!(!err.is_unavailable() && !err.is_retryable());
    let exists: bool = redis::cmd("EXISTS")
        .arg(other.key("counter"))
        .query(&mut server.admin())
        .unwrap();
    assert!(!exists, "nothing was written for the other tenant");
    // The refusal did not break the connection for the allowed tenant.
    set(&client, acme.key("counter")).await.unwrap();
}

#[tokio::test]
async fn a_wrong_acl_password_is_an_auth_failure_that_never_shows_the_password() {
    let server = RedisServer::builder()
        .acl_user("acme-app", "acme-secret-123456", RULES)
        .start();
    let client =
        shared::RedisClient::new(server.config_as("acme-app", "not-the-password-987")).unwrap();
    let report = shared::redis::HealthCheck::new(client.clone())
        .check()
        .await;
    assert_eq!(report.error_type, Some(ErrorKind::Auth), "{report:?}");
    let shown = serde_json::to_string(&report).unwrap();
    assert!(
        !shown.contains("not-the-password-987") && !shown.contains("acme-secret"),
        "{shown}"
    );
}
