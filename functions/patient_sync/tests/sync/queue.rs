//! Claiming and acknowledging changes over HTTP.

use std::collections::HashSet;
use std::time::Duration;

use crate::{ack, claim, claim_ids, patients, spawn_app, status, sync};

#[tokio::test]
async fn claim_ack_and_redelivery_after_the_visibility_timeout() {
    let t = spawn_app(&[("CHANGE_VISIBILITY_TIMEOUT_MS", "1000")]);
    sync(&t.app, "c", patients(3)).await;
    let first = claim(&t.app, "c", 2).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["visibility_timeout_ms"], 1000);
    let changes = first.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["change"]["patient_id"], "p0");
    assert_eq!(changes[0]["delivery"], 1);
    let second = claim(&t.app, "c", 10).await;
    assert_eq!(
        claim_ids(&second).len(),
        1,
        "p2 only: p0 and p1 are claimed"
    );
    let s = status(&t.app, "c").await;
    assert_eq!(
        (s["changes_pending"].as_u64(), s["changes_claimed"].as_u64()),
        (Some(0), Some(3))
    );

    // Acknowledge p0, p1 and an unknown id: the unknown one does not stop the others.
    let ids = claim_ids(&first);
    let reply = ack(&t.app, "c", &[&ids[0], "no-such-claim", &ids[1]]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["acknowledged"], 2);
    assert_eq!(reply.body["unknown"], serde_json::json!(["no-such-claim"]));

    // p2 was never acknowledged: it comes back after the visibility timeout.
    assert!(claim_ids(&claim(&t.app, "c", 10).await).is_empty());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = claim(&t.app, "c", 10).await;
    let changes = again.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["change"]["patient_id"], "p2");
    assert_eq!(changes[0]["delivery"], 2);
    // The stale claim id no longer acknowledges it; the new one does.
    let stale = claim_ids(&second);
    assert_eq!(ack(&t.app, "c", &[&stale[0]]).await.body["acknowledged"], 0);
    let fresh = claim_ids(&again);
    assert_eq!(ack(&t.app, "c", &[&fresh[0]]).await.body["acknowledged"], 1);
    let s = status(&t.app, "c").await;
    assert_eq!(
        (s["changes_pending"].as_u64(), s["changes_claimed"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn concurrent_claimers_never_receive_the_same_change() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "1000")]);
    sync(&t.app, "c", patients(120)).await;
    let claimers = (0..6).map(|_| {
        let app = t.app.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let reply = claim(&app, "c", 5).await;
                let ids = claim_ids(&reply);
                if ids.is_empty() {
                    return mine;
                }
                for change in reply.body["changes"].as_array().unwrap() {
                    mine.push(change["change"]["patient_id"].as_str().unwrap().to_owned());
                }
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                assert_eq!(ack(&app, "c", &ids).await.body["acknowledged"], ids.len());
            }
        })
    });
    let mut seen = HashSet::new();
    for claimer in futures::future::join_all(claimers).await {
        for id in claimer.unwrap() {
            assert!(seen.insert(id), "a change went to two claimers");
        }
    }
    assert_eq!(seen.len(), 120, "no change lost");
}

#[tokio::test]
async fn claim_and_ack_inputs_are_validated() {
    let t = spawn_app(&[]);
    for q in ["max=0", "max=1001", "max=abc", "max=-1", "max=1&max=2"] {
        let reply = crate::send(
            &t.app,
            crate::post_empty(&format!("/practices/c/changes/claim?{q}")),
        )
        .await;
        reply.assert_error(400, "invalid_query");
    }
    let uri = "/practices/c/changes/ack";
    for body in [
        serde_json::json!({"ids": [1]}),
        serde_json::json!({}),
        serde_json::json!({"ids": "x"}),
    ] {
        crate::send(&t.app, crate::post(uri, &body, &[]))
            .await
            .assert_error(400, "invalid_body");
    }
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let reply = crate::send(
        &t.app,
        crate::post(uri, &serde_json::json!({"ids": many}), &[]),
    )
    .await;
    reply.assert_error(413, "payload_too_large");
    assert!(crate::all_keys(&t.redis).is_empty());
}
