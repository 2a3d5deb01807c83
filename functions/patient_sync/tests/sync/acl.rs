//! Least privilege: the function connected as an ACL user limited to one
//! practice's keys serves that practice fully and is refused elsewhere.

use serde_json::json;
use shared::testkit::RedisServer;

use crate::{ack, app_for, claim, patient, send, status, sync};

const RULES: &str = "~ws:{clinic-a}:* resetchannels +@all -@dangerous +info";

#[tokio::test]
async fn a_user_limited_to_one_practice_serves_it_and_answers_500_without_detail_elsewhere() {
    let redis = RedisServer::builder()
        .acl_user("clinic-a-sync", "clinic-a-password-123", RULES)
        .start();
    let url = format!(
        "redis://clinic-a-sync:clinic-a-password-123@127.0.0.1:{}",
        redis.port()
    );
    let app = app_for(&url, &[]);

    let report = sync(
        &app,
        "clinic-a",
        json!([patient("p1", "Ada"), patient("p2", "Ben")]),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["queued"], 2);
    let claimed = claim(&app, "clinic-a", 10).await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    let ids: Vec<&str> = claimed.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["claim_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let acked = ack(&app, "clinic-a", &ids).await;
    assert_eq!(acked.body["acknowledged"], 2, "{}", acked.text);
    assert_eq!(status(&app, "clinic-a").await["patients_tracked"], 2);
    let health = send(&app, crate::get("/redis-health")).await;
    assert_eq!(health.status, 200, "{}", health.text);

    let before = redis.all_keys();
    let refused = sync(&app, "clinic-b", json!([patient("p1", "Ada")])).await;
    // NOPERM is a misconfiguration a retry cannot cure: 500, no Retry-After,
    // no detail (issue 13's table).
    refused.assert_error(500, "internal");
    assert!(
        refused.body["error"].get("type").is_none(),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains("clinic-a-password"));
    assert!(!refused.text.contains("NOPERM"));
    assert_eq!(
        redis.all_keys(),
        before,
        "nothing written for another practice"
    );

    // Refusals for another practice do not open the circuit for this one.
    for _ in 0..10 {
        let _ = sync(&app, "clinic-b", json!([patient("p9", "Zed")])).await;
    }
    let again = sync(&app, "clinic-a", json!([patient("p3", "Cy")])).await;
    assert_eq!(again.status, 200, "{}", again.text);
}
