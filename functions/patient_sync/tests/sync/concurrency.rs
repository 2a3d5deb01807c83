//! Concurrent syncs of one practice with overlapping patients.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{drain, patient, spawn_app, sync};

#[tokio::test]
async fn concurrent_overlapping_syncs_queue_every_change_exactly_once_and_lose_no_hash() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "1000")]);
    // 8 requests of 40 patients each, every patient in 2 to 4 requests.
    let requests = (0..8).map(|r| {
        let batch: Vec<Value> = (r * 10..r * 10 + 40)
            .map(|i| patient(&format!("p{}", i % 100), "Same"))
            .collect();
        let app = t.app.clone();
        tokio::spawn(async move { sync(&app, "c", Value::Array(batch)).await })
    });
    let mut changed = 0;
    let mut received = 0;
    for reply in futures::future::join_all(requests).await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        changed += reply.body["changed"].as_u64().unwrap();
        received += reply.body["received"].as_u64().unwrap();
        assert_eq!(reply.body["changed"], reply.body["queued"]);
    }
    let distinct: Vec<String> = (0..110)
        .map(|i| format!("p{}", i % 100))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(received, 320);
    assert_eq!(
        changed,
        distinct.len() as u64,
        "each patient changed once in all"
    );
    let changes = drain(&t.app, "c").await;
    let mut per_patient: HashMap<String, usize> = HashMap::new();
    for change in &changes {
        *per_patient
            .entry(change["change"]["patient_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_patient.len(), distinct.len());
    assert!(per_patient.values().all(|n| *n == 1), "queued exactly once");
    let hashes: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("ws:{c}:patients")
        .query(&mut t.redis.admin())
        .unwrap();
    assert_eq!(hashes.len(), distinct.len(), "no hash lost");
    for id in &distinct {
        assert_eq!(
            hashes[id],
            shared::blocks::canonical::content_hash(&patient(id, "Same"))
        );
    }
}

#[tokio::test]
async fn concurrent_versions_of_one_patient_end_with_a_stored_hash_per_queued_change() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "1000")]);
    let versions = ["A", "B", "A", "B", "C", "A"];
    let requests = versions.iter().map(|v| {
        let app = t.app.clone();
        let batch = json!([patient("p1", v)]);
        tokio::spawn(async move { sync(&app, "c", batch).await })
    });
    let mut changed = 0;
    for reply in futures::future::join_all(requests).await {
        changed += reply.unwrap().body["changed"].as_u64().unwrap();
    }
    let changes = drain(&t.app, "c").await;
    assert_eq!(
        changes.len() as u64,
        changed,
        "one queued change per change counted"
    );
    // The last queued change is the record whose hash is stored.
    let stored: String = redis::cmd("HGET")
        .arg("ws:{c}:patients")
        .arg("p1")
        .query(&mut t.redis.admin())
        .unwrap();
    assert_eq!(changes.last().unwrap()["change"]["hash"], stored);
    // No two consecutive changes carry the same content.
    for pair in changes.windows(2) {
        assert_ne!(pair[0]["change"]["hash"], pair[1]["change"]["hash"]);
    }
}
