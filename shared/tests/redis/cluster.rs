//! The client against a local Redis Cluster of three primaries.

use std::time::{Duration, Instant};

use shared::blocks::keys::{Tenant, hash_slot};
use shared::testkit::RedisCluster;

use crate::round_trip;

#[tokio::test]
async fn the_client_works_against_a_cluster_on_every_node() {
    let cluster = RedisCluster::start(3);
    let client = cluster.client();
    assert_eq!(client.pool().kind, "cluster");
    let report = shared::redis::HealthCheck::new(client.clone())
        .check()
        .await;
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.redis_mode.as_deref(), Some("cluster"));

    // Keys spread over every node.
    let mut nodes_used = std::collections::HashSet::new();
    for i in 0..60 {
        let tenant = Tenant::new("workspace", &format!("t{i}")).unwrap();
        let key = tenant.key("k");
        nodes_used.insert(cluster.node_for_slot(hash_slot(key.as_bytes())));
        assert_eq!(round_trip(&client, &key).await.unwrap(), "v");
    }
    assert_eq!(nodes_used.len(), 3, "the keys covered every node");
    assert_eq!(cluster.all_keys().len(), 60);
}

#[tokio::test]
async fn a_script_over_several_keys_of_one_tenant_runs_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    let client = cluster.client();
    let tenant = Tenant::new("workspace", "acme").unwrap();
    let (a, b) = (tenant.key("a"), tenant.key("b"));
    let script = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('MGET', KEYS[1], KEYS[2])",
    );
    let values: Vec<String> = client
        .run(|mut c| async move { script.key(&a).key(&b).arg("x").invoke_async(&mut c).await })
        .await
        .unwrap();
    assert_eq!(values, ["x", "x"]);
}

#[tokio::test]
async fn a_primary_restarted_mid_test_is_survived() {
    let mut cluster = RedisCluster::start(3);
    let client = cluster.client();
    let keys: Vec<String> = (0..30)
        .map(|i| Tenant::new("workspace", &format!("t{i}")).unwrap().key("k"))
        .collect();
    for key in &keys {
        round_trip(&client, key).await.unwrap();
    }
    let victim = 1;
    cluster.node(victim).restart();
    // Every key works again, on the restarted node too, with the same client.
    let started = Instant::now();
    let mut pending: Vec<&String> = keys.iter().collect();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{} keys still failing 15 s after the restart",
            pending.len()
        );
        let mut still = Vec::new();
        for key in pending {
            if round_trip(&client, key).await.is_err() {
                still.push(key);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shared::redis::HealthCheck::new(client.clone())
            .check()
            .await
            .is_healthy()
    );
}
