//! The fault-injection suite (`make chaos`): each function in server mode
//! under 50 concurrent callers while Redis is killed and restarted, paused
//! for 3 s, has its client connections killed repeatedly, and runs out of
//! memory (`maxmemory` with `noeviction`). A prober polls `/redis-health`.
//!
//! Checked, per function:
//! - no panic and no process exit;
//! - every request finishes within `REQUEST_TIMEOUT_MS` plus a margin;
//! - `/redis-health` turns 503 within 1 s of an outage (kill, pause) and 200
//!   within 2 s of recovery;
//! - every write acknowledged with a 2xx is present afterwards (patient
//!   syncs: their change was handed to the consumer, is still in the queue,
//!   or is a dead letter; session appends: their sequence number is in the
//!   session's events). Redis runs
//!   with `appendfsync always`, so not even a SIGKILL may lose one);
//! - open file descriptors do not grow across restarts; resident memory is
//!   reported over a steady soak at the end.
//!
//! The queue scenario (`patient_sync`): besides the syncing callers, two
//! consumers claim changes all along and acknowledge them, except the
//! poison ones (one sync in ten carries a patient the consumer cannot
//! process), which they nack with a reason; with `CHANGE_MAX_DELIVERIES=2`
//! each poison change must end as a dead letter (listed through the admin
//! route, with its delivery count and last error), whatever the faults did
//! to the nacks (an expired claim counts as a failed delivery too).
//!
//! Prints a table, writes `bench-results/chaos.json`, rewrites the results
//! section of `docs/reliability.md`, and exits 1 if a promise was broken.
//! `CHAOS_PHASE_SECS` (default 3) sets the length of each phase;
//! `CHAOS_FUNCTIONS=patient_sync` (comma-separated) runs some functions
//! only, and then writes neither the results file nor the document.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{env_or, out, progress, table};
use serde::Serialize;
use serde_json::{Value, json};
use shared::testkit::{FunctionProcess, RedisServer};

const WORKERS: usize = 50;
const DEADLINE_MS: u64 = 3_000;
const MARGIN_MS: u64 = 300;
/// Resident memory may grow this much between the end of the warm-up and
/// the end of the run (allocator arenas settling), not per request.
const MAX_RSS_GROWTH_MIB: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Fault {
    KillRestart,
    Pause,
    ClientKills,
    OutOfMemory,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Self::KillRestart,
        Self::Pause,
        Self::ClientKills,
        Self::OutOfMemory,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::KillRestart => "kill + restart",
            Self::Pause => "pause 3 s",
            Self::ClientKills => "client kills",
            Self::OutOfMemory => "out of memory",
        }
    }

    /// Faults that make Redis unreachable, for which health must flip.
    fn is_outage(self) -> bool {
        matches!(self, Self::KillRestart | Self::Pause)
    }
}

/// What the load does against one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// Reads: health and the fallback-backed status.
    Diagnostics,
    /// Idempotent syncs of new patients; each 200 is a write to verify.
    PatientSync,
    /// Appends to one session per worker; each 200 is an event to verify.
    Sessions,
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    by_status: BTreeMap<u16, u64>,
    error_types: BTreeMap<String, u64>,
    transport_errors: u64,
    deadline_misses: u64,
    max_latency_ms: f64,
    acked: Vec<(String, String)>,
    /// 5xx answers by kind, per fault window (index into `Fault::ALL`).
    fault_errors: BTreeMap<usize, BTreeMap<String, u64>>,
    /// (practice, patient) of every change the consumers were handed.
    consumed: BTreeSet<(String, String)>,
    /// Nacks of poison changes answered 200, and how many of their changes
    /// the queue reported dead-lettered.
    nacks: u64,
    nacked_dead: u64,
}

/// What the queue scenario proved (patient_sync only).
#[derive(Debug, Serialize)]
struct QueueOutcome {
    max_deliveries: u32,
    /// Changes the consumers were handed (first deliveries and redeliveries).
    consumed: usize,
    /// Poison syncs acknowledged with a 2xx.
    poison_acknowledged: usize,
    /// Dead letters listed at the end.
    dead_letters: usize,
    /// Acknowledged poison changes missing from the dead letters.
    poison_not_dead_lettered: usize,
    /// Dead letters that are not poison (a healthy change dead-lettered:
    /// faults made it fail every delivery).
    healthy_dead_lettered: usize,
    /// Dead letters whose deliveries or last error are not recorded.
    dead_letters_without_record: usize,
}

#[derive(Debug, Serialize)]
struct FaultResult {
    fault: Fault,
    errors_during: BTreeMap<String, u64>,
    health_503_after_ms: Option<f64>,
    health_200_after_recovery_ms: Option<f64>,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    function: String,
    faults: Vec<FaultResult>,
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    error_types: BTreeMap<String, u64>,
    transport_errors: u64,
    deadline_misses: u64,
    max_latency_ms: f64,
    writes_acknowledged: usize,
    writes_lost: usize,
    queue: Option<QueueOutcome>,
    process_alive: bool,
    panics_logged: usize,
    fds_before: usize,
    fds_after: usize,
    rss_after_warmup_mib: f64,
    soak_rss_mib: Vec<f64>,
    passed: bool,
}

struct Run {
    base: String,
    http: reqwest::Client,
    tally: Mutex<Tally>,
    stop: AtomicBool,
    started: Instant,
    /// The fault being injected, as 1 + its index in `Fault::ALL`; 0 between faults.
    fault: std::sync::atomic::AtomicUsize,
    /// (ms since start, status; 0 when no answer)
    health: Mutex<Vec<(f64, u16)>>,
}

impl Run {
    fn ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }
}

async fn send(run: &Run, req: reqwest::RequestBuilder, write: Option<(String, String)>) {
    let t = Instant::now();
    let result = req.send().await;
    let status = result.as_ref().map(|r| r.status().as_u16()).ok();
    let body: Value = match result {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let latency = t.elapsed().as_secs_f64() * 1e3;
    let mut tally = run
        .tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tally.sent += 1;
    tally.max_latency_ms = tally.max_latency_ms.max(latency);
    if latency > (DEADLINE_MS + MARGIN_MS) as f64 {
        tally.deadline_misses += 1;
    }
    match status {
        None => tally.transport_errors += 1,
        Some(s) => {
            *tally.by_status.entry(s).or_default() += 1;
            if s >= 500 {
                let kind = body["error"]["type"]
                    .as_str()
                    .or(body["type"].as_str())
                    .or(body["error"]["code"].as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                *tally.error_types.entry(kind.clone()).or_default() += 1;
                let fault = run.fault.load(Ordering::Relaxed);
                if fault > 0 {
                    *tally
                        .fault_errors
                        .entry(fault - 1)
                        .or_default()
                        .entry(kind)
                        .or_default() += 1;
                }
            }
            if (200..300).contains(&s)
                && let Some((scope, id)) = write
            {
                // A sync is acknowledged with its change count, an append
                // with the sequence number it was given.
                if body["changed"] == 1 {
                    tally.acked.push((scope, id));
                } else if let Some(seq) = body["seq"].as_u64() {
                    tally.acked.push((scope, seq.to_string()));
                }
            }
        }
    }
}

async fn worker(run: Arc<Run>, workload: Workload, w: usize) {
    let mut i = 0u64;
    while !run.stop.load(Ordering::Relaxed) {
        i += 1;
        match workload {
            Workload::Diagnostics => {
                let path = if i.is_multiple_of(2) {
                    "/redis-health"
                } else {
                    "/status"
                };
                send(&run, run.http.get(format!("{}{path}", run.base)), None).await;
            }
            Workload::PatientSync => {
                let practice = format!("chaos-{}", w % 5);
                // One sync in ten carries a patient the consumer cannot process.
                let id = if i.is_multiple_of(10) {
                    format!("w{w}-{i}-{POISON}")
                } else {
                    format!("w{w}-{i}")
                };
                let body = json!({ "patients": [{ "id": id, "seq": i, "note": "chaos" }] });
                let req = run
                    .http
                    .post(format!("{}/practices/{practice}/patients/sync", run.base))
                    .header("idempotency-key", &id)
                    .json(&body);
                send(&run, req, Some((practice, id))).await;
            }
            Workload::Sessions => {
                let session = format!("{}/apps/chaos/users/u{w}/sessions/s{w}", run.base);
                if i == 1 {
                    // Create the worker's session, retrying through faults.
                    loop {
                        let created = run
                            .http
                            .post(format!("{}/apps/chaos/users/u{w}/sessions", run.base))
                            .json(&json!({ "session_id": format!("s{w}") }))
                            .send()
                            .await
                            .map(|r| r.status().as_u16());
                        if matches!(created, Ok(201 | 409)) || run.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                let event = json!({ "event": {
                    "author": "user",
                    "content": { "parts": [{ "text": format!("w{w} turn {i}") }] },
                    "actions": { "state_delta": { "turn": i } }
                }});
                let req = run.http.post(format!("{session}/events")).json(&event);
                send(&run, req, Some((format!("s{w}"), String::new()))).await;
            }
        }
    }
}

/// Marks a poison patient id: the consumer nacks its change.
const POISON: &str = "poison";
/// Deliveries before a change is dead-lettered in the queue scenario.
const MAX_DELIVERIES: u32 = 2;
/// The admin token of the queue scenario (dead-letter routes).
const ADMIN_TOKEN: &str = "chaos-admin-token-7f3a9c2e51";

/// Claims changes of one practice (up to 50) and settles them: poison ones
/// nacked with a reason, the others acknowledged. Returns whether anything
/// was claimed; a failed call (a fault) returns false.
async fn consume_once(run: &Run, practice: &str) -> bool {
    let reply = run
        .http
        .post(format!(
            "{}/practices/{practice}/changes/claim?max=50",
            run.base
        ))
        .send()
        .await;
    let claimed: Value = match reply {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        _ => return false,
    };
    let changes = claimed["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        return false;
    }
    let (mut poison, mut healthy) = (Vec::new(), Vec::new());
    {
        let mut tally = run
            .tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in &changes {
            let patient = c["change"]["patient_id"].as_str().unwrap_or_default();
            tally
                .consumed
                .insert((practice.to_owned(), patient.to_owned()));
            if patient.ends_with(POISON) {
                poison.push(c["claim_id"].clone());
            } else {
                healthy.push(c["claim_id"].clone());
            }
        }
    }
    if !healthy.is_empty() {
        let _ = run
            .http
            .post(format!("{}/practices/{practice}/changes/ack", run.base))
            .json(&json!({ "ids": healthy }))
            .send()
            .await;
    }
    if !poison.is_empty() {
        let nacked = run
            .http
            .post(format!("{}/practices/{practice}/changes/nack", run.base))
            .json(&json!({ "ids": poison, "error": "chaos: the consumer cannot process this change" }))
            .send()
            .await;
        if let Ok(r) = nacked
            && r.status().is_success()
        {
            let body: Value = r.json().await.unwrap_or_default();
            let mut tally = run
                .tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tally.nacks += 1;
            tally.nacked_dead += body["dead_lettered"].as_u64().unwrap_or(0);
        }
    }
    true
}

/// A downstream consumer of the practices' change queues during the run.
async fn consumer(run: Arc<Run>, c: usize) {
    let mut k = c;
    while !run.stop.load(Ordering::Relaxed) {
        let practice = format!("chaos-{}", k % 5);
        k += 1;
        if !consume_once(&run, &practice).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn prober(run: Arc<Run>) {
    while !run.stop.load(Ordering::Relaxed) {
        let status = run
            .http
            .get(format!("{}/redis-health", run.base))
            .timeout(Duration::from_millis(1_500))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        let at = run.ms();
        run.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((at, status));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs a blocking test-kit call on the Redis server off the async workers.
async fn with_redis<T: Send + 'static>(
    redis: &Arc<Mutex<RedisServer>>,
    f: impl FnOnce(&mut RedisServer) -> T + Send + 'static,
) -> T {
    let redis = redis.clone();
    match tokio::task::spawn_blocking(move || {
        f(&mut redis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    })
    .await
    {
        Ok(v) => v,
        Err(e) => bench::fail(&format!("fault injection failed: {e}")),
    }
}

fn used_memory(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut redis.admin())
        .unwrap_or_default();
    shared::redis::info::info_field(&info, "used_memory")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Injects `fault` for `secs`; returns (fault start, recovery start) in ms since the run started.
async fn inject(run: &Run, redis: &Arc<Mutex<RedisServer>>, fault: Fault, secs: f64) -> (f64, f64) {
    let hold = Duration::from_secs_f64(secs);
    let start = run.ms();
    match fault {
        Fault::KillRestart => {
            with_redis(redis, RedisServer::stop).await;
            tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
            with_redis(redis, RedisServer::restart).await;
        }
        Fault::Pause => {
            with_redis(redis, RedisServer::pause).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            with_redis(redis, RedisServer::resume).await;
        }
        Fault::ClientKills => {
            let until = Instant::now() + hold;
            while Instant::now() < until {
                with_redis(redis, |r| r.kill_clients()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Fault::OutOfMemory => {
            with_redis(redis, |r| {
                let limit = used_memory(r) + 256 * 1024;
                let mut admin = r.admin();
                let _ = redis::cmd("CONFIG")
                    .arg(&["SET", "maxmemory-policy", "noeviction"])
                    .exec(&mut admin);
                let _ = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("maxmemory")
                    .arg(limit)
                    .exec(&mut admin);
            })
            .await;
            tokio::time::sleep(hold).await;
            with_redis(redis, |r| {
                let _ = redis::cmd("CONFIG")
                    .arg(&["SET", "maxmemory", "0"])
                    .exec(&mut r.admin());
            })
            .await;
        }
    }
    (start, run.ms())
}

fn judge(
    fault: Fault,
    health: &[(f64, u16)],
    start: f64,
    recovered: f64,
    errors_during: BTreeMap<String, u64>,
) -> FaultResult {
    let first_bad = health
        .iter()
        .find(|(t, s)| *t >= start && *s != 200)
        .map(|(t, _)| t - start);
    let first_good = health
        .iter()
        .find(|(t, s)| *t >= recovered && *s == 200)
        .map(|(t, _)| t - recovered);
    let ok = !fault.is_outage()
        || (first_bad.is_some_and(|ms| ms <= 1_000.0)
            && first_good.is_some_and(|ms| ms <= 2_000.0));
    FaultResult {
        fault,
        errors_during,
        health_503_after_ms: first_bad,
        health_200_after_recovery_ms: first_good,
        ok,
    }
}

/// Acknowledged writes that are not in Redis afterwards.
async fn lost_writes(run: &Run, workload: Workload, acked: &[(String, String)]) -> usize {
    match workload {
        Workload::Diagnostics => 0,
        Workload::Sessions => {
            let sessions: BTreeSet<&String> = acked.iter().map(|(s, _)| s).collect();
            let mut seen = BTreeSet::new();
            for session in sessions {
                let user = session.replacen('s', "u", 1);
                let got: Value = match run
                    .http
                    .get(format!(
                        "{}/apps/chaos/users/{user}/sessions/{session}",
                        run.base
                    ))
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(e) => bench::fail(&format!("reading a session after the run failed: {e}")),
                };
                for event in got["events"].as_array().into_iter().flatten() {
                    if let Some(seq) = event["seq"].as_u64() {
                        seen.insert((session.clone(), seq.to_string()));
                    }
                }
            }
            acked.iter().filter(|w| !seen.contains(*w)).count()
        }
        Workload::PatientSync => {
            // Every change was handed to a consumer, during the run or by
            // the drain below (which waits for claims that expired to come
            // back), or is a dead letter.
            let mut seen = drain_queues(run).await;
            let dead = dead_letters(run).await;
            seen.extend(dead.iter().map(|d| (d.practice.clone(), d.patient.clone())));
            acked.iter().filter(|w| !seen.contains(*w)).count()
        }
    }
}

/// One dead letter as the admin route lists it.
#[derive(Debug)]
struct DeadLetter {
    practice: String,
    patient: String,
    deliveries: u64,
    has_error: bool,
}

/// Consumes every practice's queue until nothing is pending, claimed or
/// delayed (poison changes are nacked into the dead letters); returns what
/// the consumers were handed over the whole run.
async fn drain_queues(run: &Run) -> BTreeSet<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in 0..5 {
        let practice = format!("chaos-{p}");
        loop {
            if Instant::now() > deadline {
                bench::fail("draining the change queues after the run took over 60 s");
            }
            if consume_once(run, &practice).await {
                continue;
            }
            let status: Value = match run
                .http
                .get(format!("{}/practices/{practice}/sync/status", run.base))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
                _ => Value::Null,
            };
            let left = ["changes_pending", "changes_claimed", "changes_delayed"]
                .iter()
                .map(|k| status[k].as_u64().unwrap_or(1))
                .sum::<u64>();
            if left == 0 {
                break;
            }
            // Claims a consumer lost in a fault expire, then come back.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    run.tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .consumed
        .clone()
}

/// Every practice's dead letters, through the admin route.
async fn dead_letters(run: &Run) -> Vec<DeadLetter> {
    let mut out = Vec::new();
    for p in 0..5 {
        let practice = format!("chaos-{p}");
        let mut offset = 0;
        loop {
            let page: Value = match run
                .http
                .get(format!(
                    "{}/admin/practices/{practice}/changes/dead-letters?limit=100&offset={offset}",
                    run.base
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
                Ok(r) => bench::fail(&format!("listing dead letters: HTTP {}", r.status())),
                Err(e) => bench::fail(&format!("listing dead letters: {e}")),
            };
            let items = page["dead_letters"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            offset += items.len();
            for d in items {
                out.push(DeadLetter {
                    practice: practice.clone(),
                    patient: d["change"]["patient_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    deliveries: d["deliveries"].as_u64().unwrap_or(0),
                    has_error: d["last_error"].is_string(),
                });
            }
        }
    }
    out
}

/// The dead-letter path of the queue scenario, checked after the drain.
async fn queue_outcome(run: &Run, acked: &[(String, String)]) -> QueueOutcome {
    let dead = dead_letters(run).await;
    let listed: BTreeSet<(String, String)> = dead
        .iter()
        .map(|d| (d.practice.clone(), d.patient.clone()))
        .collect();
    let poison: Vec<&(String, String)> =
        acked.iter().filter(|(_, p)| p.ends_with(POISON)).collect();
    let consumed = run
        .tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .consumed
        .len();
    QueueOutcome {
        max_deliveries: MAX_DELIVERIES,
        consumed,
        poison_acknowledged: poison.len(),
        dead_letters: dead.len(),
        poison_not_dead_lettered: poison.iter().filter(|w| !listed.contains(**w)).count(),
        healthy_dead_lettered: dead.iter().filter(|d| !d.patient.ends_with(POISON)).count(),
        dead_letters_without_record: dead
            .iter()
            .filter(|d| d.deliveries != u64::from(MAX_DELIVERIES) || !d.has_error)
            .count(),
    }
}

async fn chaos(name: &str, bin: &std::path::Path, workload: Workload, phase: f64) -> Report {
    let redis = RedisServer::builder()
        .arg("--appendonly")
        .arg("yes")
        .arg("--appendfsync")
        .arg("always")
        .start();
    let port = redis.port();
    let redis = Arc::new(Mutex::new(redis));
    let url = format!("redis://127.0.0.1:{port}");
    let mut f = FunctionProcess::spawn(
        bin,
        &[
            ("REDIS_URL", url.as_str()),
            ("REQUEST_TIMEOUT_MS", &DEADLINE_MS.to_string()),
            ("RATE_LIMIT_PER_MINUTE", "100000"),
            ("LOG_LEVEL", "warn"),
            // The load is anonymous: without this the default (platform)
            // answers every tenant route 401 and no write is ever made.
            ("AUTH_MODE", "none"),
            // The queue scenario (patient_sync): few deliveries, claims a
            // consumer lost in a fault come back within the drain.
            ("CHANGE_MAX_DELIVERIES", &MAX_DELIVERIES.to_string()),
            ("CHANGE_VISIBILITY_TIMEOUT_MS", "2000"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            // The sessions workload appends to one session per caller for
            // the whole run: more than the default 10,000 events.
            ("SESSION_MAX_EVENTS", "1000000"),
        ],
    );
    f.wait_ready(Duration::from_secs(10)).await;
    let run = Arc::new(Run {
        base: f.base_url(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(DEADLINE_MS + 5_000))
            .pool_max_idle_per_host(WORKERS + 4)
            .build()
            .unwrap_or_else(|e| bench::fail(&e.to_string())),
        tally: Mutex::default(),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        fault: std::sync::atomic::AtomicUsize::new(0),
        health: Mutex::default(),
    });
    let mut tasks: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(run.clone(), workload, w)))
        .collect();
    tasks.push(tokio::spawn(prober(run.clone())));
    if workload == Workload::PatientSync {
        for c in 0..2 {
            tasks.push(tokio::spawn(consumer(run.clone(), c)));
        }
    }

    let steady = Duration::from_secs_f64(phase);
    tokio::time::sleep(steady).await;
    let fds_before = bench::proc::open_fds(f.pid()).unwrap_or(0);
    let rss_after_warmup = bench::proc::rss_kib(f.pid()).unwrap_or(0) as f64 / 1024.0;
    let mut windows = Vec::new();
    for (i, fault) in Fault::ALL.into_iter().enumerate() {
        progress(&format!("{name}: {}", fault.name()));
        run.fault.store(i + 1, Ordering::Relaxed);
        let window = inject(&run, &redis, fault, phase).await;
        // The recovery second belongs to the fault too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.fault.store(0, Ordering::Relaxed);
        windows.push((fault, window));
        tokio::time::sleep(steady).await;
    }
    progress(&format!("{name}: soak"));
    let mut soak_rss = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(steady / 2).await;
        soak_rss.push(bench::proc::rss_kib(f.pid()).unwrap_or(0) as f64 / 1024.0);
    }
    run.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let fds_after = bench::proc::open_fds(f.pid()).unwrap_or(0);
    let health = run
        .health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut tally = std::mem::take(
        &mut *run
            .tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    // What the consumers were handed during the run stays with the run:
    // the drain adds to it, and the check reads it.
    run.tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .consumed = std::mem::take(&mut tally.consumed);
    let faults: Vec<FaultResult> = windows
        .iter()
        .enumerate()
        .map(|(i, (fault, (s, r)))| {
            let errors = tally.fault_errors.remove(&i).unwrap_or_default();
            judge(*fault, &health, *s, *r, errors)
        })
        .collect();
    progress(&format!(
        "{name}: checking {} acknowledged writes",
        tally.acked.len()
    ));
    let writes_lost = lost_writes(&run, workload, &tally.acked).await;
    let queue = match workload {
        Workload::PatientSync => Some(queue_outcome(&run, &tally.acked).await),
        _ => None,
    };
    let queue_ok = queue.as_ref().is_none_or(|q| {
        q.poison_acknowledged > 0
            && q.poison_not_dead_lettered == 0
            && q.dead_letters_without_record == 0
    });
    let process_alive = f.is_running();
    let panics_logged = f.output().matches("panicked").count();
    // A writing workload must have written: 0 lost of 0 proves nothing.
    let wrote = workload == Workload::Diagnostics || !tally.acked.is_empty();
    let passed = process_alive
        && wrote
        && panics_logged == 0
        && tally.deadline_misses == 0
        && tally.transport_errors == 0
        && writes_lost == 0
        && queue_ok
        && faults.iter().all(|r| r.ok)
        && fds_after <= fds_before + 4
        && soak_rss
            .last()
            .is_some_and(|end| end - rss_after_warmup <= MAX_RSS_GROWTH_MIB);
    Report {
        function: name.to_owned(),
        faults,
        requests: tally.sent,
        by_status: tally.by_status,
        error_types: tally.error_types,
        transport_errors: tally.transport_errors,
        deadline_misses: tally.deadline_misses,
        max_latency_ms: tally.max_latency_ms,
        writes_acknowledged: tally.acked.len(),
        writes_lost,
        queue,
        process_alive,
        panics_logged,
        fds_before,
        fds_after,
        rss_after_warmup_mib: rss_after_warmup,
        soak_rss_mib: soak_rss,
        passed,
    }
}

fn render(reports: &[Report], phase: f64) -> String {
    let fmt_ms = |v: Option<f64>| v.map_or("never".to_owned(), |ms| format!("{ms:.0} ms"));
    let mut lines = vec![format!(
        "{} concurrent callers per function; phases of {phase} s; REQUEST_TIMEOUT_MS={DEADLINE_MS} (+{MARGIN_MS} ms margin)",
        WORKERS
    )];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let count = |lo: u16, hi: u16| {
                r.by_status
                    .iter()
                    .filter(|(s, _)| (lo..hi).contains(*s))
                    .map(|(_, n)| n)
                    .sum::<u64>()
            };
            vec![
                r.function.clone(),
                r.requests.to_string(),
                count(200, 300).to_string(),
                count(400, 500).to_string(),
                count(500, 600).to_string(),
                r.error_types
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                r.transport_errors.to_string(),
                r.deadline_misses.to_string(),
                format!("{:.0}", r.max_latency_ms),
                r.writes_acknowledged.to_string(),
                r.writes_lost.to_string(),
                format!("{}→{}", r.fds_before, r.fds_after),
                format!(
                    "{:.1} → {}",
                    r.rss_after_warmup_mib,
                    r.soak_rss_mib
                        .iter()
                        .map(|v| format!("{v:.1}"))
                        .collect::<Vec<_>>()
                        .join("/")
                ),
                if r.passed {
                    "PASS".into()
                } else {
                    "FAIL".into()
                },
            ]
        })
        .collect();
    lines.push(table(
        &[
            "function",
            "requests",
            "2xx",
            "4xx",
            "5xx",
            "5xx by kind",
            "no answer",
            "deadline misses",
            "max ms",
            "writes acked",
            "writes lost",
            "fds",
            "RSS MiB (warm → soak)",
            "result",
        ],
        &rows,
    ));
    let fault_rows: Vec<Vec<String>> = reports
        .iter()
        .flat_map(|r| {
            r.faults.iter().map(|f| {
                vec![
                    r.function.clone(),
                    f.fault.name().to_owned(),
                    f.errors_during
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    fmt_ms(f.health_503_after_ms),
                    fmt_ms(f.health_200_after_recovery_ms),
                    if f.fault.is_outage() {
                        (if f.ok { "ok" } else { "FAIL" }).to_owned()
                    } else {
                        "n/a (Redis reachable)".to_owned()
                    },
                ]
            })
        })
        .collect();
    for r in reports {
        if let Some(q) = &r.queue {
            lines.push(format!(
                "{} queue: {} changes handed to the consumers; {} poison syncs acknowledged, {} dead letters after CHANGE_MAX_DELIVERIES={} ({} poison not dead-lettered, {} healthy dead-lettered, {} without delivery count or last error); acknowledged writes lost: {}",
                r.function,
                q.consumed,
                q.poison_acknowledged,
                q.dead_letters,
                q.max_deliveries,
                q.poison_not_dead_lettered,
                q.healthy_dead_lettered,
                q.dead_letters_without_record,
                r.writes_lost,
            ));
        }
    }
    lines.push(String::new());
    lines.push(table(
        &[
            "function",
            "fault",
            "5xx by kind (fault + 1 s)",
            "health 503 after",
            "health 200 after recovery",
            "≤1 s / ≤2 s",
        ],
        &fault_rows,
    ));
    lines.join("\n")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let phase: f64 = env_or("CHAOS_PHASE_SECS", 3.0);
    let only: Option<Vec<String>> = std::env::var("CHAOS_FUNCTIONS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|f| f.trim().to_owned()).collect());
    let targets: Vec<(&str, Workload)> = vec![
        ("tebra_debug", Workload::Diagnostics),
        ("patient_sync", Workload::PatientSync),
        ("sessions", Workload::Sessions),
    ]
    .into_iter()
    .filter(|(name, _)| only.as_ref().is_none_or(|o| o.iter().any(|f| f == name)))
    .collect();
    if targets.is_empty() {
        bench::fail("CHAOS_FUNCTIONS names none of tebra_debug, patient_sync, sessions");
    }
    let mut reports = Vec::new();
    for (name, workload) in targets {
        let bin = std::path::Path::new("target/release").join(name);
        if !bin.is_file() {
            bench::fail(&format!(
                "{} is missing: run `cargo build --release` (make chaos does)",
                bin.display()
            ));
        }
        reports.push(chaos(name, &bin, workload, phase).await);
    }
    let text = render(&reports, phase);
    out(&text);
    if only.is_none() {
        let path =
            bench::write_results("chaos", &json!({ "phase_secs": phase, "reports": reports }));
        bench::update_doc("docs/reliability.md", "chaos", &text);
        out(&format!(
            "results: {} (and docs/reliability.md)",
            path.display()
        ));
    } else {
        out("CHAOS_FUNCTIONS is set: results file and docs/reliability.md left as they were");
    }
    if reports.iter().any(|r| !r.passed) {
        bench::fail("a promise was broken (see FAIL above)");
    }
}
