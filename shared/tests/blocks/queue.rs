//! The reliable queue: claim, ack, redelivery, no loss, no double delivery;
//! dead letters after the last delivery, nack with a delay, extended claims.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use shared::blocks::keys::Tenant;
use shared::blocks::queue::{
    MAX_BATCH, MAX_DEAD_LETTER_PAGE, MAX_DELAY, MAX_REASON_BYTES, Queue, QueueError, QueueSettings,
};
use shared::testkit::TestRedis;

use crate::{all_keys, tenant};

fn queue(server: &TestRedis, t: &Tenant, visibility: Duration) -> Queue {
    Queue::new(server.client(), t, "jobs", QueueSettings::new(visibility))
}

fn payloads(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("job-{i}")).collect()
}

#[tokio::test]
async fn claimed_items_come_oldest_first_and_acked_items_are_gone() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(30));
    let ids = q.enqueue(&payloads(5)).await.unwrap();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    let claimed = q.claim(3).await.unwrap();
    let got: Vec<&[u8]> = claimed.iter().map(|c| &c.payload[..]).collect();
    assert_eq!(got, [b"job-0", b"job-1", b"job-2"]);
    assert!(claimed.iter().all(|c| c.delivery == 1));
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.pending, stats.claimed), (2, 3));

    let ids: Vec<&str> = claimed.iter().map(|c| c.claim_id.as_str()).collect();
    let report = q.ack(&ids).await.unwrap();
    assert_eq!(report.acked.len(), 3);
    assert!(report.unknown.is_empty());
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.pending, stats.claimed), (2, 0));
    let rest = q.claim(10).await.unwrap();
    assert_eq!(rest.len(), 2);
    q.ack(&rest.iter().map(|c| c.claim_id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(q.claim(10).await.unwrap().is_empty());
    let items: u64 = redis::cmd("HLEN")
        .arg("ws:{a}:queue:jobs:items")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(items, 0, "acknowledged payloads are deleted");
}

#[tokio::test]
async fn an_unacknowledged_claim_is_redelivered_after_the_visibility_timeout() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_millis(1_000));
    q.enqueue(&["only"]).await.unwrap();
    let first = q.claim(1).await.unwrap();
    assert_eq!(first.len(), 1);
    // Within the timeout nobody else gets it.
    assert!(q.claim(1).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let stats = q.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.claimed),
        (1, 0),
        "expired claims count as pending"
    );
    let second = q.claim(1).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].item_id, first[0].item_id);
    assert_eq!(second[0].payload, b"only");
    assert_eq!(second[0].delivery, 2);
    assert_ne!(second[0].claim_id, first[0].claim_id);
    // The first claimer's late ack does not delete the item the second holds.
    let late = q.ack(&[first[0].claim_id.as_str()]).await.unwrap();
    assert_eq!(late.unknown, [first[0].claim_id.clone()]);
    let now = q.ack(&[second[0].claim_id.as_str()]).await.unwrap();
    assert_eq!(now.acked.len(), 1);
}

#[tokio::test]
async fn an_ack_after_the_deadline_counts_while_nobody_else_has_the_item() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_millis(100));
    q.enqueue(&["x"]).await.unwrap();
    let claim = q.claim(1).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = q.ack(&[claim.claim_id.as_str()]).await.unwrap();
    assert_eq!(report.acked, [claim.claim_id]);
    assert!(q.claim(1).await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_and_repeated_ids_do_not_stop_the_others_from_being_acknowledged() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(30));
    q.enqueue(&payloads(2)).await.unwrap();
    let claimed = q.claim(2).await.unwrap();
    let ids = [
        "nope",
        claimed[0].claim_id.as_str(),
        "",
        "a:*{b}",
        claimed[0].claim_id.as_str(),
        claimed[1].claim_id.as_str(),
    ];
    let report = q.ack(&ids).await.unwrap();
    assert_eq!(
        report.acked,
        [claimed[0].claim_id.clone(), claimed[1].claim_id.clone()]
    );
    assert_eq!(
        report.unknown,
        ["nope", "", "a:*{b}", claimed[0].claim_id.as_str()]
    );
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.pending, stats.claimed), (0, 0));
}

#[tokio::test]
async fn concurrent_claimers_each_get_distinct_items_and_none_is_lost() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(30));
    let all = payloads(300);
    for chunk in all.chunks(100) {
        q.enqueue(chunk).await.unwrap();
    }
    let workers = (0..8).map(|_| {
        let q = q.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = q.claim(7).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                let ids: Vec<String> = batch.iter().map(|c| c.claim_id.clone()).collect();
                assert_eq!(q.ack(&ids).await.unwrap().acked.len(), batch.len());
                mine.extend(batch.into_iter().map(|c| c.payload));
            }
        })
    });
    let mut seen = HashSet::new();
    for worker in futures::future::join_all(workers).await {
        for payload in worker.unwrap() {
            assert!(seen.insert(payload), "an item was delivered twice");
        }
    }
    let expected: HashSet<Vec<u8>> = all.into_iter().map(String::into_bytes).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn with_claimers_dying_every_item_is_still_acknowledged_exactly_once() {
    let server = TestRedis::start();
    // No dead letters here: this is about abandoned claims, however many.
    let q = queue_with(&server, Duration::from_millis(150), 1_000);
    q.enqueue(&payloads(60)).await.unwrap();
    // Half of the claims are abandoned (the claimer "dies"); the rest are acked.
    let workers = (0..6).map(|w| {
        let q = q.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut round = 0u32;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                let stats = q.stats().await.unwrap();
                if stats.pending == 0 && stats.claimed == 0 {
                    break;
                }
                let batch = q.claim(4).await.unwrap();
                round += 1;
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                if (round + w).is_multiple_of(2) {
                    continue; // dies holding the claims
                }
                let ids: Vec<String> = batch.iter().map(|c| c.claim_id.clone()).collect();
                let report = q.ack(&ids).await.unwrap();
                // Only what the queue confirms counts (a claim this worker held
                // past its deadline may have gone to another worker).
                acked.extend(
                    batch
                        .into_iter()
                        .filter(|c| report.acked.contains(&c.claim_id))
                        .map(|c| (c.payload, c.delivery)),
                );
            }
            acked
        })
    });
    let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut redelivered = 0;
    for worker in futures::future::join_all(workers).await {
        for (payload, delivery) in worker.unwrap() {
            *counts.entry(payload).or_default() += 1;
            if delivery > 1 {
                redelivered += 1;
            }
        }
    }
    assert_eq!(counts.len(), 60, "every item acknowledged");
    assert!(counts.values().all(|n| *n == 1), "each exactly once");
    assert!(redelivered > 0, "the abandoned claims were redelivered");
}

#[tokio::test]
async fn queues_of_different_tenants_are_separate_keys() {
    let server = TestRedis::start();
    let a = queue(&server, &tenant("a"), Duration::from_secs(30));
    let b = queue(&server, &tenant("b"), Duration::from_secs(30));
    a.enqueue(&["for-a"]).await.unwrap();
    assert!(b.claim(10).await.unwrap().is_empty());
    let claim = a.claim(1).await.unwrap().remove(0);
    assert_eq!(
        b.ack(&[claim.claim_id.as_str()]).await.unwrap().acked.len(),
        0
    );
    assert!(
        all_keys(&server)
            .iter()
            .all(|k| k.starts_with("ws:{a}:queue:jobs:"))
    );
}

#[tokio::test]
async fn with_a_retention_the_queue_expires_whole_after_its_last_write() {
    let server = TestRedis::start();
    let settings =
        QueueSettings::new(Duration::from_secs(30)).with_retention(Duration::from_millis(300));
    let q = Queue::new(server.client(), &tenant("a"), "jobs", settings);
    q.enqueue(&payloads(3)).await.unwrap();
    q.claim(1).await.unwrap();
    for key in all_keys(&server) {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query(&mut server.admin())
            .unwrap();
        assert!(ttl > 0 && ttl <= 300, "{key}: {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(all_keys(&server).is_empty());
}

#[tokio::test]
async fn batches_outside_the_limits_are_refused_without_touching_redis() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(1));
    assert_eq!(q.claim(0).await.unwrap_err(), QueueError::InvalidBatch);
    assert_eq!(
        q.claim(MAX_BATCH + 1).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    let too_many = payloads(MAX_BATCH + 1);
    assert_eq!(
        q.enqueue(&too_many).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    assert!(all_keys(&server).is_empty());
}

#[tokio::test]
async fn redis_down_fails_the_operation_as_unavailable() {
    let mut server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(1));
    server.stop();
    assert!(q.enqueue(&["x"]).await.unwrap_err().is_unavailable());
    assert!(q.claim(1).await.unwrap_err().is_unavailable());
}

// ---------------------------------------------------------------------------
// Dead letters, nack, extend (issue 15 #6).

fn queue_with(server: &TestRedis, visibility: Duration, max_deliveries: u32) -> Queue {
    Queue::new(
        server.client(),
        &tenant("a"),
        "jobs",
        QueueSettings::new(visibility).with_max_deliveries(max_deliveries),
    )
}

#[tokio::test]
async fn a_poison_item_is_dead_lettered_after_max_deliveries_and_the_next_item_is_delivered() {
    let server = TestRedis::start();
    let q = queue_with(&server, Duration::from_millis(100), 5);
    q.enqueue(&["bad", "good"]).await.unwrap();
    // The consumer claims one item at a time; it crashes on "bad" (never
    // acknowledges it) and processes "good".
    let mut delivered: Vec<(Vec<u8>, u32)> = Vec::new();
    for _ in 0..15 {
        for c in q.claim(1).await.unwrap() {
            if c.payload == b"good" {
                q.ack(&[c.claim_id.as_str()]).await.unwrap();
            }
            delivered.push((c.payload, c.delivery));
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let bad = delivered.iter().filter(|(p, _)| p == b"bad").count();
    assert_eq!(
        bad, 5,
        "bad is handed out max_deliveries times: {delivered:?}"
    );
    assert!(
        delivered.iter().any(|(p, _)| p == b"good"),
        "good is delivered: {delivered:?}"
    );
    // The expired bad item went behind good: good came before bad's 2nd delivery.
    let good_at = delivered.iter().position(|(p, _)| p == b"good").unwrap();
    assert_eq!(good_at, 1, "{delivered:?}");
    let page = q.dead_letters(0, 10).await.unwrap();
    assert_eq!(page.total, 1);
    let dead = &page.items[0];
    assert_eq!(dead.payload, b"bad");
    assert_eq!(dead.deliveries, 5);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("claim expired")
    );
    assert!(dead.dead_lettered_at_ms > 1_700_000_000_000);
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.dead_letters, 1);
    // Dead letters are never handed out again.
    for _ in 0..3 {
        assert!(
            q.claim(10)
                .await
                .unwrap()
                .iter()
                .all(|c| c.payload != b"bad")
        );
    }
}

#[tokio::test]
async fn a_nack_records_its_reason_and_the_last_failed_delivery_dead_letters() {
    let server = TestRedis::start();
    let q = queue_with(&server, Duration::from_secs(30), 2);
    q.enqueue(&["x"]).await.unwrap();
    let first = q.claim(1).await.unwrap().remove(0);
    let report = q
        .nack(
            &[first.claim_id.as_str(), "nope"],
            Duration::ZERO,
            Some("boom: 1"),
        )
        .await
        .unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&first.claim_id));
    assert_eq!(report.unknown, ["nope"]);
    // The released claim id no longer acknowledges.
    assert_eq!(
        q.ack(&[first.claim_id.as_str()]).await.unwrap().acked.len(),
        0
    );
    let second = q.claim(1).await.unwrap().remove(0);
    assert_eq!(second.delivery, 2);
    let report = q
        .nack(&[second.claim_id.as_str()], Duration::ZERO, Some("boom: 2"))
        .await
        .unwrap();
    assert_eq!(report.dead_lettered, std::slice::from_ref(&second.claim_id));
    assert!(q.claim(1).await.unwrap().is_empty());
    let page = q.dead_letters(0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].deliveries, 2);
    assert_eq!(page.items[0].last_error.as_deref(), Some("boom: 2"));
    // Debug output carries neither the payload nor the error.
    let debug = format!("{:?}", page.items[0]);
    assert!(
        !debug.contains("boom") && !debug.contains("\"x\""),
        "{debug}"
    );
}

#[tokio::test]
async fn a_nacked_item_with_a_delay_is_not_claimable_before_it_and_is_after() {
    let server = TestRedis::start();
    let q = queue_with(&server, Duration::from_secs(30), 5);
    q.enqueue(&["later", "now"]).await.unwrap();
    let claimed = q.claim(1).await.unwrap().remove(0);
    assert_eq!(claimed.payload, b"later");
    q.nack(
        &[claimed.claim_id.as_str()],
        Duration::from_millis(1_500),
        None,
    )
    .await
    .unwrap();
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delayed), (1, 1));
    // Before the delay: only "now".
    let early = q.claim(10).await.unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].payload, b"now");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(q.claim(10).await.unwrap().is_empty(), "still delayed");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let late = q.claim(10).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].payload, b"later");
    assert_eq!(late[0].delivery, 2);
}

#[tokio::test]
async fn an_extended_claim_is_not_redelivered_while_extended() {
    let server = TestRedis::start();
    let q = queue_with(&server, Duration::from_millis(800), 5);
    q.enqueue(&["slow"]).await.unwrap();
    let claim = q.claim(1).await.unwrap().remove(0);
    // A heartbeat every 300 ms for 1.8 s: over two visibility timeouts.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = q
            .extend(
                &[claim.claim_id.as_str(), "nope"],
                Duration::from_millis(800),
            )
            .await
            .unwrap();
        assert_eq!(report.extended, std::slice::from_ref(&claim.claim_id));
        assert_eq!(report.unknown, ["nope"]);
        assert!(report.deadline_ms > 1_700_000_000_000);
        assert!(
            q.claim(1).await.unwrap().is_empty(),
            "redelivered while extended"
        );
    }
    assert_eq!(
        q.ack(&[claim.claim_id.as_str()]).await.unwrap().acked.len(),
        1
    );
    // Without a heartbeat the claim expires as before.
    q.enqueue(&["again"]).await.unwrap();
    let claim = q.claim(1).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = q.claim(1).await.unwrap();
    assert_eq!(again[0].item_id, claim.item_id);
    // An expired claim that was handed out again cannot be extended.
    let stale = q
        .extend(&[claim.claim_id.as_str()], Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(stale.unknown, [claim.claim_id]);
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_with_a_fresh_count_and_dropped() {
    let server = TestRedis::start();
    let q = queue_with(&server, Duration::from_secs(30), 1);
    q.enqueue(&["a", "b", "c"]).await.unwrap();
    let claimed = q.claim(3).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.claim_id.as_str()).collect();
    let report = q.nack(&ids, Duration::ZERO, Some("bad")).await.unwrap();
    assert_eq!(report.dead_lettered.len(), 3);
    // Paging, oldest dead-lettered first.
    let first = q.dead_letters(0, 2).await.unwrap();
    assert_eq!(first.total, 3);
    assert_eq!(first.items.len(), 2);
    let second = q.dead_letters(2, 2).await.unwrap();
    assert_eq!(second.items.len(), 1);
    let items: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|d| d.item_id.clone())
        .collect();
    assert_eq!(items, ["1", "2", "3"]);

    // Replay 1 (and an unknown id): back in the queue, count reset.
    let replayed = q.replay_dead_letters(&["1", "99"]).await.unwrap();
    assert_eq!(
        (replayed.done, replayed.unknown),
        (vec!["1".to_owned()], vec!["99".to_owned()])
    );
    let again = q.claim(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].payload.as_slice(), again[0].delivery),
        (&b"a"[..], 1)
    );
    q.ack(&[again[0].claim_id.as_str()]).await.unwrap();

    // Drop 2: gone, payload included; replaying it now is unknown.
    let dropped = q.drop_dead_letters(&["2"]).await.unwrap();
    assert_eq!(dropped.done, ["2"]);
    assert_eq!(q.replay_dead_letters(&["2"]).await.unwrap().unknown, ["2"]);
    let page = q.dead_letters(0, 10).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].item_id, "3");
    let items: Vec<String> = redis::cmd("HKEYS")
        .arg("ws:{a}:queue:jobs:items")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(
        items,
        ["3"],
        "only the remaining dead letter's payload is kept"
    );

    // Ids that are not a queue's are refused before Redis.
    for bad in ["", "x", "1 ", "-1", "123456789012345678901"] {
        assert!(matches!(
            q.replay_dead_letters(&[bad]).await.unwrap_err(),
            QueueError::Invalid(_)
        ));
        assert!(matches!(
            q.drop_dead_letters(&[bad]).await.unwrap_err(),
            QueueError::Invalid(_)
        ));
    }
}

#[tokio::test]
async fn retention_renews_every_key_dead_letters_and_delays_included() {
    let server = TestRedis::start();
    let settings = QueueSettings::new(Duration::from_secs(30))
        .with_retention(Duration::from_millis(600))
        .with_max_deliveries(1);
    let q = Queue::new(server.client(), &tenant("a"), "jobs", settings);
    q.enqueue(&payloads(4)).await.unwrap();
    let claimed = q.claim(3).await.unwrap();
    q.nack(&[claimed[0].claim_id.as_str()], Duration::ZERO, Some("x"))
        .await
        .unwrap();
    let settings_two = QueueSettings::new(Duration::from_secs(30))
        .with_retention(Duration::from_millis(600))
        .with_max_deliveries(5);
    let q2 = Queue::new(server.client(), &tenant("a"), "jobs", settings_two);
    q2.nack(
        &[claimed[1].claim_id.as_str()],
        Duration::from_secs(20),
        Some("y"),
    )
    .await
    .unwrap();
    let keys = all_keys(&server);
    for part in [
        "seq",
        "items",
        "ready",
        "claims",
        "deadlines",
        "deliveries",
        "delayed",
        "enqueued",
        "errors",
        "dead",
    ] {
        let key = format!("ws:{{a}}:queue:jobs:{part}");
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query(&mut server.admin())
            .unwrap();
        assert!(ttl > 0 && ttl <= 600, "{key}: {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(all_keys(&server).is_empty(), "the queue expired whole");
}

#[tokio::test]
async fn nack_extend_and_dead_letter_bounds_are_refused_without_touching_redis() {
    let server = TestRedis::start();
    let q = queue(&server, &tenant("a"), Duration::from_secs(1));
    let too_many: Vec<String> = (0..=MAX_BATCH).map(|i| i.to_string()).collect();
    assert_eq!(
        q.nack(&too_many, Duration::ZERO, None).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    assert_eq!(
        q.extend(&too_many, Duration::from_secs(1))
            .await
            .unwrap_err(),
        QueueError::InvalidBatch
    );
    assert_eq!(
        q.replay_dead_letters(&too_many).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    assert_eq!(
        q.drop_dead_letters(&too_many).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    assert_eq!(
        q.ack(&too_many).await.unwrap_err(),
        QueueError::InvalidBatch
    );
    for limit in [0, MAX_DEAD_LETTER_PAGE + 1] {
        assert_eq!(
            q.dead_letters(0, limit).await.unwrap_err(),
            QueueError::InvalidBatch
        );
    }
    let long = "e".repeat(MAX_REASON_BYTES + 1);
    assert!(matches!(
        q.nack(&["1.1.x"], Duration::ZERO, Some(&long))
            .await
            .unwrap_err(),
        QueueError::Invalid(_)
    ));
    assert!(matches!(
        q.nack(&["1.1.x"], MAX_DELAY + Duration::from_millis(1), None)
            .await
            .unwrap_err(),
        QueueError::Invalid(_)
    ));
    for visibility in [Duration::ZERO, MAX_DELAY + Duration::from_millis(1)] {
        assert!(matches!(
            q.extend(&["1.1.x"], visibility).await.unwrap_err(),
            QueueError::Invalid(_)
        ));
    }
    assert!(all_keys(&server).is_empty());
}

#[tokio::test]
async fn a_claim_processes_a_bounded_number_of_expired_claims() {
    let server = TestRedis::start();
    // Long enough for both claims below to finish on a loaded machine
    // before the first one's claims expire.
    let q = queue_with(&server, Duration::from_millis(1_000), 5);
    let n = MAX_BATCH + 200;
    for chunk in payloads(n).chunks(MAX_BATCH) {
        q.enqueue(chunk).await.unwrap();
    }
    assert_eq!(q.claim(MAX_BATCH).await.unwrap().len(), MAX_BATCH);
    assert_eq!(q.claim(MAX_BATCH).await.unwrap().len(), 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // 1,200 expired claims: one claim call takes back at most MAX_BATCH.
    let after = q.claim(1).await.unwrap();
    assert_eq!(after.len(), 1);
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.claimed, 1);
    assert_eq!(
        stats.pending,
        (n - 1) as u64,
        "the rest still count as pending"
    );
    let expired_left: u64 = redis::cmd("ZCARD")
        .arg("ws:{a}:queue:jobs:deadlines")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(
        expired_left, 201,
        "200 left for the next call, plus the live claim"
    );
}

#[tokio::test]
async fn the_metrics_line_carries_the_queue_gauges() {
    use shared::telemetry::IntervalSource;
    let server = TestRedis::start();
    let client = server.client();
    let q = Queue::new(
        client.clone(),
        &tenant("a"),
        "jobs",
        QueueSettings::new(Duration::from_secs(30)).with_max_deliveries(1),
    );
    q.enqueue(&payloads(3)).await.unwrap();
    let first = q.claim(1).await.unwrap().remove(0);
    q.nack(&[first.claim_id.as_str()], Duration::ZERO, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _ = client.take_interval(None);
    // No queue read in this interval: no gauges.
    let quiet = client.take_interval(None).unwrap();
    assert!(
        quiet
            .fields
            .iter()
            .all(|(name, _)| !shared::contract::QUEUE_GAUGES.contains(name))
    );
    q.stats().await.unwrap();
    let line = client.take_interval(None).unwrap();
    let field = |name: &str| {
        line.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_u64().unwrap())
    };
    assert_eq!(field(shared::contract::QUEUE_BACKLOG), Some(2));
    assert_eq!(field(shared::contract::QUEUE_DEAD_LETTERS), Some(1));
    assert!(field(shared::contract::QUEUE_OLDEST_AGE_MS).unwrap() >= 30);
}
