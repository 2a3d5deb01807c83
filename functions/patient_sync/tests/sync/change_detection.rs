//! Change detection by canonical content hash.

use serde_json::json;

use crate::{all_keys, drain, patient, spawn_app, status, sync};

#[tokio::test]
async fn same_records_in_another_field_order_are_unchanged() {
    let t = spawn_app(&[]);
    let first = json!([{"id": "p1", "name": "Jo", "address": {"city": "Lyon", "zip": "69001"}}]);
    let reordered =
        json!([{"address": {"zip": "69001", "city": "Lyon"}, "name": "Jo", "id": "p1"}]);
    let reply = sync(&t.app, "clinic-1", first).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"received": 1, "changed": 1, "unchanged": 0, "queued": 1})
    );
    let reply = sync(&t.app, "clinic-1", reordered).await;
    assert_eq!(
        reply.body,
        json!({"received": 1, "changed": 0, "unchanged": 1, "queued": 0})
    );
    assert_eq!(
        drain(&t.app, "clinic-1").await.len(),
        1,
        "only the first sync queued"
    );
}

#[tokio::test]
async fn one_field_changed_is_one_change_carrying_the_new_record() {
    let t = spawn_app(&[]);
    let batch = json!([
        patient("p1", "Jo"),
        patient("p2", "Al"),
        patient("p3", "Bo")
    ]);
    assert_eq!(sync(&t.app, "c", batch).await.body["changed"], 3);
    drain(&t.app, "c").await;

    let mut edited = patient("p2", "Al");
    edited["phones"] = json!(["555-0199"]);
    let batch = json!([patient("p1", "Jo"), edited.clone(), patient("p3", "Bo")]);
    let reply = sync(&t.app, "c", batch).await;
    assert_eq!(
        reply.body,
        json!({"received": 3, "changed": 1, "unchanged": 2, "queued": 1})
    );
    let changes = drain(&t.app, "c").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["change"]["patient_id"], "p2");
    assert_eq!(changes[0]["change"]["record"], edited);
    assert_eq!(
        changes[0]["change"]["hash"],
        shared::blocks::canonical::content_hash(&edited)
    );
    assert_eq!(status(&t.app, "c").await["patients_tracked"], 3);
}

#[tokio::test]
async fn a_new_patient_in_a_known_batch_is_the_only_change() {
    let t = spawn_app(&[]);
    sync(&t.app, "c", json!([patient("p1", "Jo")])).await;
    let reply = sync(
        &t.app,
        "c",
        json!([patient("p1", "Jo"), patient("p2", "Al")]),
    )
    .await;
    assert_eq!(reply.body["changed"], 1);
    assert_eq!(reply.body["unchanged"], 1);
}

#[tokio::test]
async fn every_key_a_sync_writes_expires() {
    let t = spawn_app(&[("PATIENT_RECORD_TTL_SECS", "120")]);
    let uri = "/practices/c/patients/sync?mode=full";
    let body = json!({"patients": [patient("p1", "Jo")]});
    let reply = crate::send(
        &t.app,
        crate::post(uri, &body, &[("Idempotency-Key", "k1")]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    crate::claim(&t.app, "c", 1).await;
    let keys = all_keys(&t.redis);
    assert!(keys.len() >= 6, "{keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query(&mut t.redis.admin())
            .unwrap();
        assert!(ttl > 0, "{key} has no expiry");
        if key.contains(":patients") || key.contains(":queue:") || key.contains(":sync_state") {
            assert!(ttl <= 120_000, "{key}: {ttl}");
        }
    }
}
