//! `?mode=full` and the practice's sync lock.

use std::time::Duration;

use serde_json::json;
use shared::blocks::keys::Tenant;
use shared::blocks::lock::Lock;

use crate::{all_keys, patient, post, send, spawn_app};

const FULL: &str = "/practices/c/patients/sync?mode=full";

#[tokio::test]
async fn a_full_sync_while_another_holds_the_lock_is_409_and_writes_nothing() {
    let t = spawn_app(&[]);
    // Another full sync (another process) holds the lock.
    let lock = Lock::new(
        t.redis.client(),
        &Tenant::new("practice_id", "c").unwrap(),
        "sync",
        Duration::from_secs(30),
    )
    .unwrap();
    let held = lock.acquire().await.unwrap().expect("free");
    let body = json!({"patients": [patient("p1", "Jo")]});
    let reply = send(&t.app, post(FULL, &body, &[])).await;
    reply.assert_error(409, "sync_in_progress");
    assert!(reply.retry_after().is_some());
    assert!(
        all_keys(&t.redis)
            .iter()
            .all(|k| k.contains(":lock:") || k.contains(":ratelimit:"))
    );
    // An incremental sync is not blocked by a full one.
    assert_eq!(
        send(&t.app, post("/practices/c/patients/sync", &body, &[]))
            .await
            .status,
        200
    );
    assert!(lock.release(held).await.unwrap());
    // Once released, a full sync runs and leaves the lock free.
    assert_eq!(send(&t.app, post(FULL, &body, &[])).await.status, 200);
    assert!(!lock.is_held().await.unwrap());
}

#[tokio::test]
async fn the_lock_of_a_full_sync_whose_holder_died_expires() {
    let t = spawn_app(&[("SYNC_LOCK_TTL_MS", "11000")]);
    // A holder that died without releasing: the key with a short remaining life.
    redis::cmd("SET")
        .arg("ws:{c}:lock:sync")
        .arg("dead-holder-token")
        .arg("PX")
        .arg(1_500)
        .exec(&mut t.redis.admin())
        .unwrap();
    let body = json!({"patients": [patient("p1", "Jo")]});
    send(&t.app, post(FULL, &body, &[]))
        .await
        .assert_error(409, "sync_in_progress");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(send(&t.app, post(FULL, &body, &[])).await.status, 200);
}
