//! The faults managed Redis produces (ElastiCache, Memorystore, Redis
//! Cluster) against real servers: a failover behind one endpoint, idle
//! connections dropped, credentials that change, one sick cluster node, a
//! write pause, and the deadline of an operation that must reload a script.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use shared::blocks::keys::{Tenant, hash_slot};
use shared::config::{CredentialSource, Protocol, Topology};
use shared::redis::{HealthCheck, Script};
use shared::testkit::{Direction, RedisCluster, RedisServer, TcpProxy};
use shared::{ErrorKind, RedisClient, RedisConfig};

use crate::{client_for_url, round_trip};

/// `SET` of a fresh value through `client`.
async fn write(client: &RedisClient, key: &str, value: &str) -> Result<(), shared::RedisFailure> {
    let (key, value) = (key.to_owned(), value.to_owned());
    client
        .run(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .exec_async(&mut c)
                .await
        })
        .await
}

/// A primary and its replica, the client reaching them through one proxy
/// that sends new connections to the primary.
struct Endpoint {
    a: RedisServer,
    b: RedisServer,
    proxy: TcpProxy,
}

impl Endpoint {
    fn start() -> Self {
        let a = RedisServer::start();
        let b = RedisServer::start();
        b.replicate(&a);
        let proxy = TcpProxy::start(a.port());
        Self { a, b, proxy }
    }

    /// The managed "primary endpoint" flips: B is promoted, A follows it,
    /// and new connections go to B (as DNS does); open ones stay on A.
    fn fail_over_by_replicaof(&self) {
        self.b.promote();
        self.a.replicate(&self.b);
        self.proxy.set_upstream(self.b.port());
    }
}

#[tokio::test]
async fn a_failover_behind_one_endpoint_costs_no_write_and_health_follows_it() {
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let endpoint = Endpoint::start();
        let client = client_for_url(&endpoint.proxy.url(), |c| c.protocol = protocol);
        let health = HealthCheck::new(client.clone());
        write(&client, "k", "before").await.unwrap();
        assert!(health.check().await.is_healthy());

        endpoint.fail_over_by_replicaof();
        // The client's connection still reaches A, now a replica: the write
        // meets READONLY, the connection is replaced, the write goes to B.
        let started = Instant::now();
        write(&client, "k", "after").await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "{protocol:?}");
        let on_b: String = redis::cmd("GET")
            .arg("k")
            .query(&mut endpoint.b.admin())
            .unwrap();
        assert_eq!(
            on_b, "after",
            "{protocol:?}: the write reached the new primary"
        );
        let report = health.check().await;
        assert!(report.is_healthy(), "{protocol:?}: {report:?}");
        assert_eq!(report.role.as_deref(), Some("master"));
        assert!(client.metrics().connections_replaced >= 1);
    }
}

#[tokio::test]
async fn health_never_says_healthy_while_it_reaches_a_replica() {
    let endpoint = Endpoint::start();
    let client = client_for_url(&endpoint.proxy.url(), |_| {});
    let health = HealthCheck::new(client.clone());
    assert!(health.check().await.is_healthy());
    // A is demoted but the endpoint still names it (no DNS flip yet): every
    // connection reaches a replica, writes would fail.
    endpoint.b.promote();
    endpoint.a.replicate(&endpoint.b);
    let report = health.check().await;
    assert!(!report.is_healthy(), "{report:?}");
    assert_eq!(report.error_type, Some(ErrorKind::ReadOnly));
    let err = write(&client, "k", "v").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly);
    assert!(err.is_retryable());
    // The endpoint flips: the next probe finds the primary.
    endpoint.proxy.set_upstream(endpoint.b.port());
    let report = health.check().await;
    assert!(report.is_healthy(), "{report:?}");
    write(&client, "k", "v").await.unwrap();
}

#[tokio::test]
async fn a_failover_by_the_failover_command_is_survived() {
    let endpoint = Endpoint::start();
    let client = client_for_url(&endpoint.proxy.url(), |_| {});
    write(&client, "k", "before").await.unwrap();
    // Redis's own coordinated failover: pauses writes, waits for the
    // replica to catch up, swaps the roles.
    redis::cmd("FAILOVER")
        .exec(&mut endpoint.a.admin())
        .unwrap();
    let started = Instant::now();
    while endpoint.b.role() != "master" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "FAILOVER did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    endpoint.proxy.set_upstream(endpoint.b.port());
    write(&client, "k", "after").await.unwrap();
    let on_b: String = redis::cmd("GET")
        .arg("k")
        .query(&mut endpoint.b.admin())
        .unwrap();
    assert_eq!(on_b, "after");
}

#[tokio::test]
async fn the_first_request_after_the_servers_idle_timeout_succeeds() {
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let server = RedisServer::start();
        let client = client_for_url(&server.url(), |c| c.protocol = protocol);
        let health = HealthCheck::new(client.clone());
        round_trip(&client, "k").await.unwrap();
        assert!(health.check().await.is_healthy());
        redis::cmd("CONFIG")
            .arg(&["SET", "timeout", "1"])
            .exec(&mut server.admin())
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            server.client_count(),
            0,
            "the server closed the idle connections"
        );
        let report = health.check().await;
        assert!(report.is_healthy(), "{protocol:?}: {report:?}");
        round_trip(&client, "k").await.unwrap();
        assert_eq!(client.metrics().errors.total(), 0, "{protocol:?}");
    }
}

#[tokio::test]
async fn the_first_request_after_an_unseen_client_kill_or_restart_succeeds() {
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let mut server = RedisServer::start();
        let client = client_for_url(&server.url(), |c| {
            c.protocol = protocol;
            // RESP2 learns of a dead connection only by the idle check.
            c.idle_check = Duration::from_millis(200);
        });
        let health = HealthCheck::new(client.clone());
        round_trip(&client, "k").await.unwrap();
        assert!(health.check().await.is_healthy());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            server.kill_clients() >= 2,
            "the pool's and the probe's connections"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        round_trip(&client, "k").await.unwrap();
        assert!(health.check().await.is_healthy(), "{protocol:?}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart();
        tokio::time::sleep(Duration::from_millis(300)).await;
        round_trip(&client, "k").await.unwrap();
        assert!(health.check().await.is_healthy(), "{protocol:?}");
        assert_eq!(client.metrics().errors.total(), 0, "{protocol:?}");
    }
}

#[tokio::test]
async fn a_connection_silently_forgotten_by_a_nat_is_replaced_within_the_deadline() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port());
    let client = client_for_url(&proxy.url(), |c| {
        c.command_timeout = Duration::from_millis(900);
    });
    round_trip(&client, "k").await.unwrap();
    // The NAT forgets connections idle for 500 ms: no FIN, no RST.
    proxy.drop_idle_after(Some(Duration::from_millis(500)));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let started = Instant::now();
    round_trip(&client, "k").await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(
        proxy.accepted(),
        2,
        "the forgotten connection was replaced once"
    );
}

#[tokio::test]
async fn a_password_refused_once_is_asked_again_and_accepted_when_restored() {
    let server = RedisServer::builder().password("first-password").start();
    let url = format!("redis://:first-password@127.0.0.1:{}", server.port());
    let client = client_for_url(&url, |_| {});
    round_trip(&client, "k").await.unwrap();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "other-password"])
        .exec(&mut admin)
        .unwrap();
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .exec(&mut admin)
        .unwrap();
    let err = round_trip(&client, "k").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Auth | ErrorKind::Connect),
        "{err}"
    );
    let err = round_trip(&client, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("first-password"));
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "first-password"])
        .exec(&mut admin)
        .unwrap();
    // Asked again (with backoff, never cached): accepted well within a second.
    let started = Instant::now();
    while round_trip(&client, "k").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(2), "still refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rotating_an_acl_users_password_under_load_costs_only_the_requests_in_flight() {
    const RULES: &str = "~* +@all";
    let server = RedisServer::builder()
        .acl_user("app", "old-password-123", RULES)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "old-password-123\n").unwrap();
    let mut config =
        RedisConfig::for_url(&format!("redis://app@127.0.0.1:{}", server.port())).unwrap();
    config.credentials = CredentialSource::File { path: file.clone() };
    let client = RedisClient::new(config).unwrap();
    round_trip(&client, "warm").await.unwrap();

    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..20)
        .map(|w| {
            let (client, failures, done) = (client.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !done.load(SeqCst) {
                    if write(&client, &format!("w{w}:{i}"), "v").await.is_err() {
                        failures.fetch_add(1, SeqCst);
                        // A caller backs off before it retries (and a failure
                        // answered at once must not starve the runtime).
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The rotation: the secret is rotated in place, the user gets the new
    // password only, and its connections are cut.
    std::fs::write(&file, "new-password-456\n").unwrap();
    let mut admin = server.admin();
    redis::cmd("ACL")
        .arg(&["SETUSER", "app", "resetpass", ">new-password-456"])
        .exec(&mut admin)
        .unwrap();
    redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "app"])
        .exec(&mut admin)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failures.load(SeqCst);
    assert!(
        failed <= 20,
        "{failed} requests failed; at most the 20 in flight may"
    );
    round_trip(&client, "after").await.unwrap();
}

#[tokio::test]
async fn a_missing_password_file_is_a_retryable_auth_failure_until_it_is_back() {
    // A mounted secret (Kubernetes, Cloud Run secret volumes) disappears for
    // a moment while it is replaced: the connection attempts in that moment
    // fail as `auth` (503, retryable) without the secret (the log line
    // names the file and the cause), and an attempt after the file is back
    // connects.
    let server = RedisServer::builder().password("mounted-secret-1").start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "mounted-secret-1\r\n").unwrap();
    let mut config = RedisConfig::for_url(&format!("redis://127.0.0.1:{}", server.port())).unwrap();
    config.credentials = CredentialSource::File { path: file.clone() };
    let client = RedisClient::new(config).unwrap();
    round_trip(&client, "k").await.unwrap();

    std::fs::remove_file(&file).unwrap();
    let mut admin = server.admin();
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .exec(&mut admin)
        .unwrap();
    let started = Instant::now();
    let err = loop {
        // The first call may meet the killed connection (`connect`); the
        // reconnect is what asks the provider.
        match round_trip(&client, "k").await {
            Err(err) if err.kind() == ErrorKind::Auth => break err,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no auth failure"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("credential provider"), "{text}");
    assert!(!text.contains("mounted-secret"), "{text}");

    std::fs::write(&file, "mounted-secret-1\n").unwrap();
    let started = Instant::now();
    while round_trip(&client, "k").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(2), "still refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_comma_in_the_password_is_part_of_the_password() {
    let server = RedisServer::builder().password("Xy7,kP9q").start();
    let config = shared::Config::from_lookup(|name| {
        (name == "REDIS_URL").then(|| format!("redis://:Xy7,kP9q@127.0.0.1:{}", server.port()))
    })
    .unwrap();
    let client = RedisClient::new(config.redis).unwrap();
    round_trip(&client, "k").await.unwrap();
}

/// The tenant whose keys live on `node`, from `clinic-1`, `clinic-2`, ...
fn tenant_on(cluster: &RedisCluster, node: usize, not: &[&str]) -> String {
    (1..1_000)
        .map(|i| format!("clinic-{i}"))
        .find(|t| {
            !not.contains(&t.as_str()) && cluster.node_for_slot(hash_slot(t.as_bytes())) == node
        })
        .unwrap()
}

#[tokio::test]
async fn one_frozen_cluster_primary_costs_only_its_own_tenants() {
    let mut cluster = RedisCluster::start(3);
    let client = cluster.client();
    let sick = tenant_on(&cluster, 1, &[]);
    let healthy: Vec<String> = [0, 2]
        .iter()
        .map(|n| tenant_on(&cluster, *n, &[]))
        .collect();
    let key = |t: &str| Tenant::new("practice_id", t).unwrap().key("k");
    for t in healthy.iter().chain([&sick]) {
        round_trip(&client, &key(t)).await.unwrap();
    }
    cluster.node(1).pause();
    // Load on the sick tenant opens its slot group's breaker only.
    for _ in 0..12 {
        let err = round_trip(&client, &key(&sick)).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Timeout | ErrorKind::CircuitOpen),
            "{err}"
        );
    }
    assert!(client.circuit().open_slot_groups >= 1);
    // Tenants on healthy nodes answer, fast, every time.
    for round in 0..20 {
        for t in &healthy {
            let started = Instant::now();
            round_trip(&client, &key(t))
                .await
                .unwrap_or_else(|e| panic!("round {round}, {t}: {e}"));
            assert!(started.elapsed() < Duration::from_millis(300));
        }
    }
    cluster.node(1).resume();
    let started = Instant::now();
    while round_trip(&client, &key(&sick)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sick tenant never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_url_to_a_cluster_node_switches_to_the_cluster_protocol() {
    let cluster = RedisCluster::start(3);
    let url = format!("redis://127.0.0.1:{}", cluster.nodes()[0].port());
    let client = client_for_url(&url, |c| assert_eq!(c.topology, Topology::Detect));
    assert_eq!(client.is_cluster(), None);
    for i in 0..30 {
        let key = Tenant::new("practice_id", &format!("clinic-{i}"))
            .unwrap()
            .key("k");
        round_trip(&client, &key).await.unwrap();
    }
    assert_eq!(client.is_cluster(), Some(true));
    let report = HealthCheck::new(client.clone()).check().await;
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.redis_mode.as_deref(), Some("cluster"));
}

#[tokio::test]
async fn read_only_scripts_run_as_ordinary_ones_where_the_server_has_no_evalsha_ro() {
    // Redis before 7 (and a server whose operator renamed the commands
    // away) answers `ERR unknown command` to EVALSHA_RO / EVAL_RO: the read
    // is run again as EVALSHA / EVAL, in the same call, and the client
    // stops trying the read-only form.
    let server = RedisServer::builder()
        .arg("--rename-command")
        .arg("EVALSHA_RO")
        .arg("")
        .arg("--rename-command")
        .arg("EVAL_RO")
        .arg("")
        .start();
    let refused = redis::cmd("EVAL_RO")
        .arg("return 1")
        .arg(0)
        .query::<i64>(&mut server.admin())
        .unwrap_err();
    assert!(refused.to_string().contains("unknown command"), "{refused}");
    let client = server.client();
    write(&client, "k", "v").await.unwrap();
    for _ in 0..3 {
        let read = Script::read_only("return redis.call('GET', KEYS[1])");
        let value: String = client
            .run(|mut c| async move { read.prepare_invoke().key("k").invoke_async(&mut c).await })
            .await
            .unwrap();
        assert_eq!(value, "v");
    }
}

#[tokio::test]
async fn reads_and_health_answer_during_a_write_pause() {
    let server = RedisServer::start();
    let client = server.client();
    let health = HealthCheck::new(client.clone());
    write(&client, "k", "v").await.unwrap();
    assert!(health.check().await.is_healthy());
    let read = Script::read_only("return redis.call('GET', KEYS[1])");
    let write_script = Script::new("return redis.call('SET', KEYS[1], ARGV[1])");
    // Loads both scripts' bodies before the pause.
    let _: String = client
        .run(|mut c| async move { read.prepare_invoke().key("k").invoke_async(&mut c).await })
        .await
        .unwrap();
    redis::cmd("CLIENT")
        .arg(&["PAUSE", "3000", "WRITE"])
        .exec(&mut server.admin())
        .unwrap();
    let started = Instant::now();
    let read = Script::read_only("return redis.call('GET', KEYS[1])");
    let value: String = client
        .run(|mut c| async move { read.prepare_invoke().key("k").invoke_async(&mut c).await })
        .await
        .unwrap();
    assert_eq!(value, "v");
    assert!(health.check().await.is_healthy());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // A write waits out the pause (here: past its deadline).
    let err = client
        .run(|mut c| async move {
            write_script
                .prepare_invoke()
                .key("k")
                .arg("w")
                .invoke_async::<()>(&mut c)
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The probe's own connection is not behind the held write.
    assert!(health.check().await.is_healthy());
}

#[tokio::test]
async fn a_script_reload_fits_in_the_operations_one_deadline() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port());
    let deadline = Duration::from_millis(300);
    let client = client_for_url(&proxy.url(), |c| c.command_timeout = deadline);
    let script = Script::new("return ARGV[1]");
    let run = |client: RedisClient, script: Script| async move {
        client
            .run(|mut c| async move {
                script
                    .prepare_invoke()
                    .arg("x")
                    .invoke_async::<String>(&mut c)
                    .await
            })
            .await
    };
    assert_eq!(run(client.clone(), script.clone()).await.unwrap(), "x");
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.admin())
        .unwrap();
    // Each reply now takes 200 ms: EVALSHA (NOSCRIPT) then EVAL is 400 ms,
    // each round trip under 300 ms; the operation must end at 300 ms.
    proxy.set_delay(Duration::from_millis(200));
    let started = Instant::now();
    let err = run(client.clone(), script.clone()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(took < deadline + Duration::from_millis(60), "took {took:?}");
    // Without the delay the reload works, within one operation.
    proxy.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.admin())
        .unwrap();
    assert_eq!(run(client, script).await.unwrap(), "x");
}

#[tokio::test]
async fn late_timeouts_of_a_replaced_connection_do_not_count_against_its_successor() {
    let mut server = RedisServer::start();
    let client = client_for_url(&server.url(), |c| {
        c.command_timeout = Duration::from_millis(150);
        c.breaker_threshold = 0;
    });
    round_trip(&client, "k").await.unwrap();
    server.pause();
    // Three operations time out on the first connection: the second timeout
    // replaces it; the third belongs to it, not to its successor.
    let ops: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { round_trip(&client, &format!("p{i}")).await })
        })
        .collect();
    for op in ops {
        assert_eq!(op.await.unwrap().unwrap_err().kind(), ErrorKind::Timeout);
    }
    assert_eq!(client.metrics().connections_replaced, 1);
    server.resume();
    round_trip(&client, "k").await.unwrap();
    // One timeout on the new connection is one, not a second in a row.
    let proxy_pause = Instant::now();
    server.pause();
    let _ = round_trip(&client, "slow").await;
    server.resume();
    assert!(proxy_pause.elapsed() >= Duration::from_millis(150));
    assert_eq!(client.metrics().connections_replaced, 1);
    round_trip(&client, "k").await.unwrap();
}

#[tokio::test]
async fn a_black_holed_reply_path_is_a_timeout_then_a_new_connection() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port());
    let client = client_for_url(&proxy.url(), |c| {
        c.command_timeout = Duration::from_millis(200);
        c.breaker_threshold = 0;
    });
    round_trip(&client, "k").await.unwrap();
    proxy.black_hole(Direction::ToClient);
    for _ in 0..2 {
        assert_eq!(
            round_trip(&client, "k").await.unwrap_err().kind(),
            ErrorKind::Timeout
        );
    }
    // Half-open: replaced; new connections through the proxy work.
    round_trip(&client, "k").await.unwrap();
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn cluster_nodes_ask_the_credential_provider_when_they_reconnect() {
    let cluster = RedisCluster::start(3);
    let node_admin = |port: u16, password: &str| {
        redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap()
    };
    for node in cluster.nodes() {
        redis::cmd("CONFIG")
            .arg(&["SET", "requirepass", "first-cluster-pw"])
            .exec(&mut node.admin())
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "first-cluster-pw\n").unwrap();
    let mut config = cluster.config();
    config.credentials = CredentialSource::File { path: file.clone() };
    let client = RedisClient::new(config).unwrap();
    let keys: Vec<String> = (0..12)
        .map(|i| {
            Tenant::new("practice_id", &format!("clinic-{i}"))
                .unwrap()
                .key("k")
        })
        .collect();
    for key in &keys {
        round_trip(&client, key).await.unwrap();
    }
    // Rotated on every node, the secret file updated, connections cut.
    std::fs::write(&file, "second-cluster-pw\n").unwrap();
    for node in cluster.nodes() {
        let mut admin = node_admin(node.port(), "first-cluster-pw");
        redis::cmd("CONFIG")
            .arg(&["SET", "requirepass", "second-cluster-pw"])
            .exec(&mut admin)
            .unwrap();
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .exec(&mut admin)
            .unwrap();
    }
    let started = Instant::now();
    for key in &keys {
        while round_trip(&client, key).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{key} still failing after the rotation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
