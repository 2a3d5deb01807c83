//! A Redis for a building block's test suite: one `redis-server`, or a local
//! cluster of three primaries when `TEST_REDIS_TOPOLOGY=cluster`. The suites
//! are written once against [`TestRedis`] and `make test` runs them on both,
//! which is how every building block is shown to work on Redis Cluster (each
//! operation's keys share a hash slot).

use crate::config::RedisConfig;
use crate::redis::RedisClient;

use super::{RedisCluster, RedisServer};

/// The environment variable that selects the topology.
pub const TOPOLOGY_VAR: &str = "TEST_REDIS_TOPOLOGY";

/// See the module documentation. Killed when dropped.
#[derive(Debug)]
pub enum TestRedis {
    /// One `redis-server`.
    Standalone(RedisServer),
    /// Three primaries.
    Cluster(RedisCluster),
}

impl TestRedis {
    /// Starts the topology `TEST_REDIS_TOPOLOGY` names (`standalone`, the
    /// default, or `cluster`).
    pub fn start() -> Self {
        match std::env::var(TOPOLOGY_VAR).as_deref() {
            Ok("cluster") => Self::Cluster(RedisCluster::start(3)),
            Ok("standalone") | Ok("") | Err(_) => Self::Standalone(RedisServer::start()),
            Ok(other) => panic!("{TOPOLOGY_VAR}={other:?}: expected standalone or cluster"),
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Client settings for it.
    pub fn config(&self) -> RedisConfig {
        match self {
            Self::Standalone(s) => s.config(),
            Self::Cluster(c) => c.config(),
        }
    }

    /// A [`RedisClient`] for it.
    pub fn client(&self) -> RedisClient {
        match self {
            Self::Standalone(s) => s.client(),
            Self::Cluster(c) => c.client(),
        }
    }

    /// `REDIS_URL` for it (several URLs for a cluster).
    pub fn url(&self) -> String {
        match self {
            Self::Standalone(s) => s.url(),
            Self::Cluster(c) => c.url(),
        }
    }

    /// A synchronous connection for a test's own checks: commands with keys
    /// reach the node that holds them.
    pub fn admin(&self) -> AdminConnection {
        match self {
            Self::Standalone(s) => AdminConnection::Standalone(s.admin()),
            Self::Cluster(c) => AdminConnection::Cluster(Box::new(
                redis::cluster::ClusterClient::new(
                    c.nodes()
                        .iter()
                        .map(|n| format!("redis://127.0.0.1:{}", n.port()))
                        .collect::<Vec<_>>(),
                )
                .and_then(|client| client.get_connection())
                .expect("a cluster connection"),
            )),
        }
    }

    /// A numeric `INFO <section>` field summed over every node (a cluster's
    /// `keyspace_hits`, `total_commands_processed`...).
    pub fn info_sum(&self, section: &str, field: &str) -> u64 {
        let nodes: Vec<&RedisServer> = match self {
            Self::Standalone(s) => vec![s],
            Self::Cluster(c) => c.nodes().iter().collect(),
        };
        nodes
            .iter()
            .map(|node| {
                let info: String = redis::cmd("INFO")
                    .arg(section)
                    .query(&mut node.admin())
                    .expect("INFO");
                crate::redis::info::info_field(&info, field)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("INFO {section} has no numeric {field}"))
            })
            .sum()
    }

    /// Every key on every node, sorted.
    pub fn all_keys(&self) -> Vec<String> {
        match self {
            Self::Standalone(s) => s.all_keys(),
            Self::Cluster(c) => c.all_keys(),
        }
    }

    /// Kills the server (every node of a cluster).
    pub fn stop(&mut self) {
        self.each(RedisServer::stop);
    }

    /// Restarts the server (every node) on the same port(s).
    pub fn restart(&mut self) {
        self.each(RedisServer::restart);
        if let Self::Cluster(c) = self {
            c.wait_ok(std::time::Duration::from_secs(20));
        }
    }

    /// Freezes the server (every node).
    pub fn pause(&mut self) {
        self.each(RedisServer::pause);
    }

    /// Thaws it.
    pub fn resume(&mut self) {
        self.each(RedisServer::resume);
    }

    /// Closes every client connection (on every node); how many were closed.
    pub fn kill_clients(&self) -> usize {
        match self {
            Self::Standalone(s) => s.kill_clients(),
            Self::Cluster(c) => c.nodes().iter().map(RedisServer::kill_clients).sum(),
        }
    }

    fn each(&mut self, f: impl Fn(&mut RedisServer)) {
        match self {
            Self::Standalone(s) => f(s),
            Self::Cluster(c) => {
                for i in 0..c.nodes().len() {
                    f(c.node(i));
                }
            }
        }
    }
}

/// A test's own synchronous connection to a [`TestRedis`].
#[allow(missing_debug_implementations)]
pub enum AdminConnection {
    /// To the one server.
    Standalone(redis::Connection),
    /// To the cluster, routing each command by its keys.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl redis::ConnectionLike for AdminConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            Self::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            Self::Standalone(c) => c.req_command(cmd),
            Self::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Self::Standalone(c) => c.check_connection(),
            Self::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Standalone(c) => c.is_open(),
            Self::Cluster(c) => c.is_open(),
        }
    }
}
