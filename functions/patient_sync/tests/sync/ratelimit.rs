//! The per-practice rate limit of the sync route.

use serde_json::json;

use crate::{patient, spawn_app, status, sync};

#[tokio::test]
async fn with_limit_l_and_m_concurrent_requests_exactly_l_pass_and_the_rest_get_429() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "7")]);
    let requests = (0..30).map(|i| {
        let app = t.app.clone();
        tokio::spawn(async move { sync(&app, "c", json!([patient(&format!("p{i}"), "Jo")])).await })
    });
    let mut passed = 0;
    let mut limited = 0;
    for reply in futures::future::join_all(requests).await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            200 => passed += 1,
            429 => {
                reply.assert_error(429, "rate_limited");
                let after = reply.retry_after().expect("Retry-After");
                assert!((1..=60).contains(&after), "{after}");
                limited += 1;
            }
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert_eq!((passed, limited), (7, 23));
    // The rejected requests wrote nothing: 7 patients, 7 changes.
    let s = status(&t.app, "c").await;
    assert_eq!(s["patients_tracked"], 7);
    assert_eq!(s["changes_pending"], 7);
    assert_eq!(s["rate_limit"]["remaining"], 0);
    assert_eq!(s["rate_limit"]["limit"], 7);
}

#[tokio::test]
async fn the_limit_is_per_practice_and_status_shows_what_remains() {
    let t = spawn_app(&[("RATE_LIMIT_PER_MINUTE", "2")]);
    assert_eq!(status(&t.app, "a").await["rate_limit"]["remaining"], 2);
    for _ in 0..2 {
        assert_eq!(sync(&t.app, "a", json!([])).await.status, 200);
    }
    assert_eq!(status(&t.app, "a").await["rate_limit"]["remaining"], 0);
    sync(&t.app, "a", json!([]))
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(sync(&t.app, "b", json!([])).await.status, 200);
    assert_eq!(status(&t.app, "b").await["rate_limit"]["remaining"], 1);
}
