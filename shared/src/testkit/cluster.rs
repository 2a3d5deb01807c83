//! A local Redis Cluster of real `redis-server` processes: N primaries, no
//! replicas, the 16,384 slots split evenly. Nodes keep their `nodes.conf` in
//! their own directory, so a node restarted on its port rejoins with its
//! slots (and an empty dataset: nothing is persisted).

use std::time::{Duration, Instant};

use crate::config::RedisConfig;
use crate::redis::RedisClient;

use super::RedisServer;

const SLOTS: u16 = 16_384;

/// See the module documentation. Killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` nodes, assigns the slots and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start(primaries: usize) -> Self {
        assert!(primaries >= 1, "a cluster needs a node");
        let nodes: Vec<RedisServer> = (0..primaries)
            .map(|_| RedisServer::builder().cluster_node().start())
            .collect();
        let per_node = SLOTS as usize / primaries;
        for (i, node) in nodes.iter().enumerate() {
            let mut admin = node.admin();
            redis::cmd("CLUSTER")
                .arg("SET-CONFIG-EPOCH")
                .arg(i + 1)
                .exec(&mut admin)
                .expect("CLUSTER SET-CONFIG-EPOCH");
            let first = i * per_node;
            let last = if i + 1 == primaries {
                SLOTS as usize - 1
            } else {
                (i + 1) * per_node - 1
            };
            redis::cmd("CLUSTER")
                .arg("ADDSLOTS")
                .arg((first..=last).collect::<Vec<_>>())
                .exec(&mut admin)
                .expect("CLUSTER ADDSLOTS");
        }
        let mut first = nodes[0].admin();
        for node in &nodes[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .exec(&mut first)
                .expect("CLUSTER MEET");
        }
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(20));
        cluster
    }

    /// Waits until every node answers and reports `cluster_state:ok` with all
    /// nodes known.
    pub fn wait_ok(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|node| {
                let info: Result<String, _> =
                    redis::cmd("CLUSTER").arg("INFO").query(&mut node.admin());
                info.is_ok_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                        && info.contains("cluster_slots_ok:16384")
                })
            });
            if ok {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the cluster did not reach cluster_state:ok within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:<port>` of every node, comma-separated (a `REDIS_URL`).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client settings for the cluster (cluster mode, every node a seed).
    pub fn config(&self) -> RedisConfig {
        RedisConfig::for_url(&self.url()).expect("local cluster URLs are valid")
    }

    /// A [`RedisClient`] in cluster mode.
    pub fn client(&self) -> RedisClient {
        RedisClient::new(self.config()).expect("a local cluster config is valid")
    }

    /// Node `i`, to stop, restart, pause or inspect.
    pub fn node(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Every key on every node (by `SCAN`), for isolation checks.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            let mut admin = node.admin();
            let found: Vec<String> = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter::<String>(&mut admin)
                .expect("SCAN")
                .collect::<Result<_, _>>()
                .expect("SCAN");
            keys.extend(found);
        }
        keys.sort();
        keys
    }

    /// The node serving `slot`.
    pub fn node_for_slot(&self, slot: u16) -> usize {
        let per_node = SLOTS as usize / self.nodes.len();
        (slot as usize / per_node).min(self.nodes.len() - 1)
    }
}
