//! Idempotency keys: replay, mismatch, concurrent duplicates, abandon, expiry.

use std::time::Duration;

use shared::blocks::idempotency::{
    Begin, Idempotency, IdempotencyError, IdempotencySettings, StoredResponse,
};
use shared::testkit::TestRedis;

use crate::{all_keys, tenant};

fn store(server: &TestRedis, settings: IdempotencySettings) -> Idempotency {
    Idempotency::new(server.client(), &tenant("a"), "sync", settings)
}

fn started(begin: Begin) -> shared::blocks::idempotency::Pending {
    match begin {
        Begin::Started(p) => p,
        other => panic!("expected Started, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repeat_gets_the_first_response_back() {
    let server = TestRedis::start();
    let idem = store(&server, IdempotencySettings::default());
    let pending = started(idem.begin("key-1", "fp-1").await.unwrap());
    let response = StoredResponse::new(200, br#"{"n":1}"#.to_vec());
    assert!(idem.complete(&pending, &response).await.unwrap());
    for _ in 0..3 {
        assert_eq!(
            idem.begin("key-1", "fp-1").await.unwrap(),
            Begin::Replay(response.clone())
        );
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg("ws:{a}:idempotency:sync:key-1")
        .query(&mut server.admin())
        .unwrap();
    assert!(
        ttl > 23 * 3600 * 1000 && ttl <= 24 * 3600 * 1000,
        "kept 24 h: {ttl}"
    );
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_mismatch_before_and_after_completion() {
    let server = TestRedis::start();
    let idem = store(&server, IdempotencySettings::default());
    let pending = started(idem.begin("k", "fp-1").await.unwrap());
    assert_eq!(
        idem.begin("k", "fp-2").await.unwrap_err(),
        IdempotencyError::Mismatch
    );
    idem.complete(&pending, &StoredResponse::new(200, "x"))
        .await
        .unwrap();
    assert_eq!(
        idem.begin("k", "fp-2").await.unwrap_err(),
        IdempotencyError::Mismatch
    );
}

#[tokio::test]
async fn of_concurrent_duplicates_one_runs_and_the_others_are_told_it_is_in_progress() {
    let server = TestRedis::start();
    let idem = store(
        &server,
        IdempotencySettings::new(Duration::from_secs(60), Duration::from_secs(5)),
    );
    let tries = (0..16).map(|_| {
        let idem = idem.clone();
        tokio::spawn(async move { idem.begin("k", "fp").await })
    });
    let mut started_count = 0;
    for result in futures::future::join_all(tries).await {
        match result.unwrap() {
            Ok(Begin::Started(_)) => started_count += 1,
            Err(IdempotencyError::InProgress { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(started_count, 1);
}

#[tokio::test]
async fn an_abandoned_key_can_be_used_again() {
    let server = TestRedis::start();
    let idem = store(&server, IdempotencySettings::default());
    let pending = started(idem.begin("k", "fp").await.unwrap());
    idem.abandon(pending).await.unwrap();
    assert!(all_keys(&server).is_empty());
    let _pending = started(idem.begin("k", "fp").await.unwrap());
}

#[tokio::test]
async fn a_marker_left_by_a_dead_request_expires_and_its_late_completion_is_refused() {
    let server = TestRedis::start();
    let idem = store(
        &server,
        IdempotencySettings::new(Duration::from_secs(60), Duration::from_millis(150)),
    );
    let dead = started(idem.begin("k", "fp").await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let retry = started(idem.begin("k", "fp").await.unwrap());
    assert!(
        !idem
            .complete(&dead, &StoredResponse::new(200, "stale"))
            .await
            .unwrap()
    );
    assert!(
        idem.complete(&retry, &StoredResponse::new(200, "fresh"))
            .await
            .unwrap()
    );
    assert_eq!(
        idem.begin("k", "fp").await.unwrap(),
        Begin::Replay(StoredResponse::new(200, "fresh"))
    );
}

#[tokio::test]
async fn crafted_keys_are_escaped_inside_the_tenant_and_bad_keys_are_refused() {
    let server = TestRedis::start();
    let idem = store(&server, IdempotencySettings::default());
    let _pending = started(idem.begin("a:*{b}/../x", "fp").await.unwrap());
    assert_eq!(
        all_keys(&server),
        ["ws:{a}:idempotency:sync:a%3A%2A%7Bb%7D%2F..%2Fx"]
    );
    for bad in ["", "é", "line\nbreak", &"k".repeat(256)] {
        match idem.begin(bad, "fp").await.unwrap_err() {
            IdempotencyError::InvalidKey(e) => {
                assert!(e.to_string().contains("printable ASCII"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn completed_responses_expire_after_their_ttl() {
    let server = TestRedis::start();
    let idem = store(
        &server,
        IdempotencySettings::new(Duration::from_millis(200), Duration::from_secs(5)),
    );
    let pending = started(idem.begin("k", "fp").await.unwrap());
    idem.complete(&pending, &StoredResponse::new(200, "x"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _pending = started(idem.begin("k", "fp-other").await.unwrap());
}
