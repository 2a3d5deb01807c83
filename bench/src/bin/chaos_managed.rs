//! The faults of managed Redis under load (`make chaos`, after `chaos`):
//! `patient_sync` in server mode under 50 concurrent callers syncing new
//! patients, while
//!
//! - a replica is promoted behind one endpoint (a TCP proxy whose *new*
//!   connections switch to the new primary, as a managed primary endpoint's
//!   DNS does), by `REPLICAOF` and by Redis's own `FAILOVER`;
//! - the server closes idle connections (`timeout 1`) between bursts;
//! - the ACL user's password is rotated (a password file the function reads
//!   on every connection; `ACL SETUSER`, then `CLIENT KILL USER`);
//! - one primary of a three-node cluster is frozen (SIGSTOP) for 5 s.
//!
//! For each: requests by outcome, deadline misses (must be 0),
//! acknowledged writes lost (must be 0), the time from the fault to the
//! first successful write, and for the cluster the errors of tenants on
//! healthy nodes (must be 0).
//!
//! What is promised about writes: a write acknowledged with a 2xx is in
//! Redis afterwards. A `REPLICAOF` promotion of an asynchronous replica can
//! lose what the old primary acknowledged but had not yet sent; so the
//! scenario does what a managed failover does first (pause writes on the
//! old primary, wait until the replica has every write), and the count
//! covers every acknowledged write. `FAILOVER` does the same by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{env_or, out, progress, table};
use serde::Serialize;
use serde_json::{Value, json};
use shared::blocks::keys::hash_slot;
use shared::testkit::{FunctionProcess, RedisCluster, RedisServer, TcpProxy};

const WORKERS: usize = 50;
const DEADLINE_MS: u64 = 3_000;
const MARGIN_MS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    FailoverReplicaof,
    FailoverCommand,
    IdleClose,
    PasswordRotation,
    ClusterPrimaryFrozen,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Self::FailoverReplicaof,
        Self::FailoverCommand,
        Self::IdleClose,
        Self::PasswordRotation,
        Self::ClusterPrimaryFrozen,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::FailoverReplicaof => "failover (REPLICAOF, endpoint flip)",
            Self::FailoverCommand => "failover (FAILOVER, endpoint flip)",
            Self::IdleClose => "idle close between bursts",
            Self::PasswordRotation => "ACL password rotation",
            Self::ClusterPrimaryFrozen => "cluster primary frozen 5 s",
        }
    }
}

/// One answer.
#[derive(Debug, Clone)]
struct Outcome {
    sent_ms: f64,
    status: Option<u16>,
    kind: String,
    latency_ms: f64,
    practice: String,
    patient: String,
}

struct Load {
    base: String,
    http: reqwest::Client,
    started: Instant,
    stop: AtomicBool,
    outcomes: Mutex<Vec<Outcome>>,
    practices: Vec<String>,
    /// Idle close: work in bursts of `burst`, then pause `gap`.
    bursts: Option<(Duration, Duration)>,
}

impl Load {
    fn ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }
}

async fn worker(load: Arc<Load>, w: usize) {
    let practice = load.practices[w % load.practices.len()].clone();
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        if let Some((burst, gap)) = load.bursts {
            let cycle = (burst + gap).as_millis() as u64;
            let at = load.started.elapsed().as_millis() as u64 % cycle;
            if at >= burst.as_millis() as u64 {
                tokio::time::sleep(Duration::from_millis(cycle - at)).await;
                continue;
            }
        }
        i += 1;
        let patient = format!("w{w}-{i}");
        let body = json!({ "patients": [{ "id": patient, "seq": i }] });
        let sent_ms = load.ms();
        let t = Instant::now();
        let result = load
            .http
            .post(format!("{}/practices/{practice}/patients/sync", load.base))
            .header("idempotency-key", &patient)
            .json(&body)
            .send()
            .await;
        let status = result.as_ref().map(|r| r.status().as_u16()).ok();
        let body: Value = match result {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let kind = match status {
            Some(s) if s >= 500 => body["error"]["type"]
                .as_str()
                .or(body["error"]["code"].as_str())
                .unwrap_or("unknown")
                .to_owned(),
            Some(s) if (200..300).contains(&s) && body["changed"] != 1 => "not_acked".to_owned(),
            _ => String::new(),
        };
        load.outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Outcome {
                sent_ms,
                status,
                kind,
                latency_ms: t.elapsed().as_secs_f64() * 1e3,
                practice: practice.clone(),
                patient,
            });
    }
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    requests: usize,
    ok: usize,
    errors: BTreeMap<String, usize>,
    no_answer: usize,
    deadline_misses: usize,
    max_latency_ms: f64,
    writes_acknowledged: usize,
    writes_lost: usize,
    fault_at_ms: f64,
    first_write_after_fault_ms: Option<f64>,
    /// Cluster: 5xx of tenants whose node stayed healthy.
    healthy_tenant_errors: Option<usize>,
    passed: bool,
}

/// Blocking test-kit work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => bench::fail(&format!("fault injection failed: {e}")),
    }
}

fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.admin())
        .ok()?;
    shared::redis::info::info_field(&info, field).map(str::to_owned)
}

/// What a managed failover does: pause writes on the primary, wait until
/// the replica has every write, promote it, make the old primary follow
/// it, point the endpoint at it.
fn coordinated_promotion(a: &RedisServer, b: &RedisServer, proxy: &TcpProxy) {
    let _ = redis::cmd("CLIENT")
        .arg(&["PAUSE", "10000", "WRITE"])
        .exec(&mut a.admin());
    let started = Instant::now();
    loop {
        let primary = info_field(a, "replication", "master_repl_offset");
        let replica = info_field(b, "replication", "slave_repl_offset");
        if primary.is_some() && primary == replica {
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            bench::fail("the replica never caught up with the primary");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    b.promote();
    proxy.set_upstream(b.port());
    a.replicate(b);
    let _ = redis::cmd("CLIENT").arg("UNPAUSE").exec(&mut a.admin());
}

async fn run_scenario(scenario: Scenario, bin: &std::path::Path, phase: Duration) -> Report {
    // Set-ups: what the function connects to, and the fault.
    let mut servers: Vec<RedisServer> = Vec::new();
    let mut cluster: Option<RedisCluster> = None;
    let mut proxy: Option<TcpProxy> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut practices: Vec<String> = (0..5).map(|i| format!("chaos-{i}")).collect();
    let mut bursts = None;
    let password_dir = tempfile::tempdir().unwrap_or_else(|e| bench::fail(&e.to_string()));
    let password_file = password_dir.path().join("redis-password");
    let mut frozen_practices = BTreeSet::new();
    match scenario {
        Scenario::FailoverReplicaof | Scenario::FailoverCommand => {
            let a = RedisServer::start();
            let b = RedisServer::start();
            b.replicate(&a);
            let p = TcpProxy::start(a.port());
            env.push(("REDIS_URL".into(), p.url()));
            servers.extend([a, b]);
            proxy = Some(p);
        }
        Scenario::IdleClose => {
            let s = RedisServer::start();
            let _ = redis::cmd("CONFIG")
                .arg(&["SET", "timeout", "1"])
                .exec(&mut s.admin());
            env.push(("REDIS_URL".into(), s.url()));
            servers.push(s);
            // Bursts of 0.8 s, then 1.6 s of quiet: the server closes every
            // connection in each quiet period.
            bursts = Some((Duration::from_millis(800), Duration::from_millis(1_600)));
        }
        Scenario::PasswordRotation => {
            let s = RedisServer::builder()
                .acl_user("app", "old-password-123", "~* +@all")
                .start();
            std::fs::write(&password_file, "old-password-123\n")
                .unwrap_or_else(|e| bench::fail(&e.to_string()));
            env.push((
                "REDIS_URL".into(),
                format!("redis://app@127.0.0.1:{}", s.port()),
            ));
            env.push((
                "REDIS_PASSWORD_FILE".into(),
                password_file.display().to_string(),
            ));
            servers.push(s);
        }
        Scenario::ClusterPrimaryFrozen => {
            let c = RedisCluster::start(3);
            env.push(("REDIS_URL".into(), c.url()));
            env.push(("REDIS_CLUSTER".into(), "true".into()));
            // Two practices on every node.
            practices = (0..200).map(|i| format!("clinic-{i}")).fold(
                Vec::new(),
                |mut chosen: Vec<String>, p| {
                    let node = c.node_for_slot(hash_slot(p.as_bytes()));
                    let on_node = chosen
                        .iter()
                        .filter(|q| c.node_for_slot(hash_slot(q.as_bytes())) == node)
                        .count();
                    if on_node < 2 {
                        chosen.push(p);
                    }
                    chosen
                },
            );
            frozen_practices = practices
                .iter()
                .filter(|p| c.node_for_slot(hash_slot(p.as_bytes())) == 1)
                .cloned()
                .collect();
            cluster = Some(c);
        }
    }
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let deadline = DEADLINE_MS.to_string();
    vars.extend([
        ("REQUEST_TIMEOUT_MS", deadline.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("LOG_LEVEL", "warn"),
        // The load is anonymous: without this the default (platform)
        // answers every tenant route 401 and no write is ever made.
        ("AUTH_MODE", "none"),
    ]);
    let mut f = FunctionProcess::spawn(bin, &vars);
    f.wait_ready(Duration::from_secs(10)).await;
    let load = Arc::new(Load {
        base: f.base_url(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(DEADLINE_MS + 5_000))
            .pool_max_idle_per_host(WORKERS + 4)
            .build()
            .unwrap_or_else(|e| bench::fail(&e.to_string())),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        outcomes: Mutex::default(),
        practices: practices.clone(),
        bursts,
    });
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(load.clone(), w)))
        .collect();
    tokio::time::sleep(phase).await;

    let fault_at_ms = load.ms();
    let servers = Arc::new(servers);
    let proxy = Arc::new(proxy);
    let cluster = Arc::new(Mutex::new(cluster));
    match scenario {
        Scenario::FailoverReplicaof => {
            let (servers, proxy) = (servers.clone(), proxy.clone());
            blocking(move || {
                if let Some(p) = proxy.as_ref() {
                    coordinated_promotion(&servers[0], &servers[1], p);
                }
            })
            .await;
        }
        Scenario::FailoverCommand => {
            let (servers, proxy) = (servers.clone(), proxy.clone());
            blocking(move || {
                let _ = redis::cmd("FAILOVER").exec(&mut servers[0].admin());
                let started = Instant::now();
                while servers[1].role() != "master" {
                    if started.elapsed() > Duration::from_secs(10) {
                        bench::fail("FAILOVER never finished");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if let Some(p) = proxy.as_ref() {
                    p.set_upstream(servers[1].port());
                }
            })
            .await;
        }
        Scenario::IdleClose => {}
        Scenario::PasswordRotation => {
            let servers = servers.clone();
            let file = password_file.clone();
            blocking(move || {
                let _ = std::fs::write(&file, "new-password-456\n");
                let mut admin = servers[0].admin();
                let _ = redis::cmd("ACL")
                    .arg(&["SETUSER", "app", "resetpass", ">new-password-456"])
                    .exec(&mut admin);
                let _ = redis::cmd("CLIENT")
                    .arg(&["KILL", "USER", "app"])
                    .exec(&mut admin);
            })
            .await;
        }
        Scenario::ClusterPrimaryFrozen => {
            let c = cluster.clone();
            blocking(move || {
                if let Some(c) = c
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_mut()
                {
                    c.node(1).pause();
                }
            })
            .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            let c = cluster.clone();
            blocking(move || {
                if let Some(c) = c
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_mut()
                {
                    c.node(1).resume();
                }
            })
            .await;
        }
    }
    tokio::time::sleep(phase * 2).await;
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let outcomes = std::mem::take(
        &mut *load
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    progress(&format!(
        "{}: checking acknowledged writes",
        scenario.name()
    ));
    let acked: Vec<(String, String)> = outcomes
        .iter()
        .filter(|o| o.status.is_some_and(|s| (200..300).contains(&s)) && o.kind.is_empty())
        .map(|o| (o.practice.clone(), o.patient.clone()))
        .collect();
    let seen = claimed_changes(&load, &practices).await;
    let writes_lost = acked.iter().filter(|w| !seen.contains(*w)).count();
    let mut errors = BTreeMap::new();
    for o in outcomes
        .iter()
        .filter(|o| o.status.is_some_and(|s| s >= 500))
    {
        *errors.entry(o.kind.clone()).or_default() += 1;
    }
    let deadline_misses = outcomes
        .iter()
        .filter(|o| o.latency_ms > (DEADLINE_MS + MARGIN_MS) as f64)
        .count();
    let no_answer = outcomes.iter().filter(|o| o.status.is_none()).count();
    let first_write_after_fault_ms = outcomes
        .iter()
        .filter(|o| {
            o.sent_ms >= fault_at_ms
                && o.status.is_some_and(|s| (200..300).contains(&s))
                && !frozen_practices.contains(&o.practice)
        })
        .map(|o| o.sent_ms + o.latency_ms - fault_at_ms)
        .reduce(f64::min);
    let healthy_tenant_errors = (scenario == Scenario::ClusterPrimaryFrozen).then(|| {
        outcomes
            .iter()
            .filter(|o| !frozen_practices.contains(&o.practice))
            .filter(|o| o.status.is_none_or(|s| s >= 500))
            .count()
    });
    // 0 lost of 0 acknowledged proves nothing.
    let passed = !acked.is_empty()
        && deadline_misses == 0
        && writes_lost == 0
        && no_answer == 0
        && healthy_tenant_errors.unwrap_or(0) == 0
        && f.is_running();
    Report {
        scenario,
        requests: outcomes.len(),
        ok: outcomes
            .iter()
            .filter(|o| o.status.is_some_and(|s| (200..300).contains(&s)))
            .count(),
        errors,
        no_answer,
        deadline_misses,
        max_latency_ms: outcomes.iter().map(|o| o.latency_ms).fold(0.0, f64::max),
        writes_acknowledged: acked.len(),
        writes_lost,
        fault_at_ms,
        first_write_after_fault_ms,
        healthy_tenant_errors,
        passed,
    }
}

/// Every (practice, patient) whose change is in a practice's queue.
async fn claimed_changes(load: &Load, practices: &[String]) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    for practice in practices {
        for patient in bench::drain_changes(&load.http, &load.base, practice).await {
            seen.insert((practice.clone(), patient));
        }
    }
    seen
}

fn render(reports: &[Report], phase: Duration) -> String {
    let ms = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.scenario.name().to_owned(),
                r.requests.to_string(),
                r.ok.to_string(),
                if r.errors.is_empty() {
                    "-".to_owned()
                } else {
                    r.errors
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
                r.deadline_misses.to_string(),
                format!("{:.0}", r.max_latency_ms),
                r.writes_acknowledged.to_string(),
                r.writes_lost.to_string(),
                ms(r.first_write_after_fault_ms),
                r.healthy_tenant_errors
                    .map_or("n/a".to_owned(), |n| n.to_string()),
                if r.passed { "PASS" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    format!(
        "patient_sync, {WORKERS} concurrent callers syncing new patients; {:.0} s before each fault, {:.0} s after; REQUEST_TIMEOUT_MS={DEADLINE_MS} (+{MARGIN_MS} ms margin)\n{}",
        phase.as_secs_f64(),
        (phase * 2).as_secs_f64(),
        table(
            &[
                "scenario",
                "requests",
                "2xx",
                "5xx by kind",
                "deadline misses",
                "max ms",
                "writes acked",
                "writes lost",
                "first write after the fault",
                "healthy-tenant errors",
                "result",
            ],
            &rows,
        )
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let phase = Duration::from_secs_f64(env_or("CHAOS_PHASE_SECS", 3.0));
    let bin = std::path::Path::new("target/release/patient_sync");
    if !bin.is_file() {
        bench::fail(&format!(
            "{} is missing: run `cargo build --release` (make chaos does)",
            bin.display()
        ));
    }
    let mut reports = Vec::new();
    for scenario in Scenario::ALL {
        progress(scenario.name());
        reports.push(run_scenario(scenario, bin, phase).await);
    }
    let text = render(&reports, phase);
    out(&text);
    let path = bench::write_results("chaos_managed", &json!({ "reports": reports }));
    bench::update_doc("docs/reliability.md", "chaos-managed", &text);
    out(&format!(
        "results: {} (and docs/reliability.md)",
        path.display()
    ));
    if reports.iter().any(|r| !r.passed) {
        bench::fail("a promise was broken (see FAIL above)");
    }
}
