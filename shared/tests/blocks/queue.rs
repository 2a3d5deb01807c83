//! The reliable queue: claim, ack, redelivery, no loss, no double delivery.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use shared::blocks::keys::Tenant;
use shared::blocks::queue::{MAX_BATCH, Queue, QueueError, QueueSettings};
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
    let q = queue(&server, &tenant("a"), Duration::from_millis(150));
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
