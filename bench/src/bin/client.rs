//! The client against its floor: each Redis operation through the project's
//! client (one multiplexed connection, deadlines, metrics, breaker) beside
//! `redis-benchmark` running the same command at the same concurrency
//! without pipelining, against one `redis-server` started here.
//!
//! Cases: `PING`, `GET`, `SET`, `RPUSH`, and the building blocks' operations
//! (session append, rate-limit check, queue claim), whose reference is the
//! exact `EVALSHA` the block sends, captured with `MONITOR`.
//! Latency p50/p99 with one caller; throughput at 1, 16, 64 and 256 callers.
//! Prints a table, writes `bench-results/client.json` and two charts.
//! `BENCH_SECS` (default 0.3) and `BENCH_ROUNDS` (default 5) set the effort;
//! `BENCH_WORKERS` (default 2) the client's runtime threads;
//! `BENCH_PROTOCOL=resp2` runs the client on RESP2.

use std::sync::Arc;
use std::time::Duration;

use bench::chart::{self, Chart, Scale, Series};
use bench::{
    Stats, closed_loop, env_or, median, out, progress, redis_benchmark, redis_benchmark_command,
    table,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use shared::blocks::keys::Tenant;
use shared::blocks::queue::{Queue, QueueSettings};
use shared::blocks::ratelimit::{MAX_LIMIT, RateLimiter};
use shared::config::SessionLimits;
use shared::store::session::{Event, RedisSessionStore, SessionKey, SessionStore, UserKey};
use shared::testkit::RedisServer;
use shared::{RedisClient, RedisFailure};

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

type Op = Arc<dyn Fn(RedisClient) -> BoxFuture<'static, Result<(), RedisFailure>> + Send + Sync>;

/// What `redis-benchmark` runs as the reference for a case.
enum Reference {
    /// A built-in test (`-t`).
    Test(&'static str),
    /// A custom command.
    Command(Vec<String>),
}

struct Case {
    name: &'static str,
    reference: Reference,
    op: Op,
}

#[derive(Serialize)]
struct Target {
    name: String,
    ratio: f64,
    goal: &'static str,
    met: bool,
}

impl Target {
    fn new(name: &str, ratio: f64, goal: &'static str, met: bool) -> Self {
        Self {
            name: name.to_owned(),
            ratio,
            goal,
            met,
        }
    }
}

#[derive(Serialize, Clone)]
struct Row {
    case: &'static str,
    concurrency: usize,
    client: Stats,
    redis_benchmark: Stats,
    throughput_ratio: f64,
    p50_ratio: f64,
}

fn cmd_op(cmd: redis::Cmd) -> Op {
    Arc::new(move |client: RedisClient| {
        let cmd = cmd.clone();
        Box::pin(async move {
            let mut c = client.conn()?;
            cmd.query_async::<redis::Value>(&mut c)
                .await
                .map(drop)
                .map_err(RedisFailure::from)
        })
    })
}

async fn cases(server: &RedisServer, client: &RedisClient) -> Vec<Case> {
    let mut set = redis::cmd("SET");
    set.arg("key:bench").arg("xxx");
    let mut get = redis::cmd("GET");
    get.arg("key:bench");
    let mut rpush = redis::cmd("RPUSH");
    rpush.arg("list:bench").arg("xxx");
    let mut cases = vec![
        Case {
            name: "PING",
            reference: Reference::Test("ping_mbulk"),
            op: cmd_op(redis::cmd("PING")),
        },
        Case {
            name: "GET",
            reference: Reference::Command(vec!["GET".into(), "key:bench".into()]),
            op: cmd_op(get),
        },
        Case {
            name: "SET",
            reference: Reference::Command(vec!["SET".into(), "key:bench".into(), "xxx".into()]),
            op: cmd_op(set),
        },
        Case {
            name: "RPUSH",
            reference: Reference::Command(vec!["RPUSH".into(), "list:bench".into(), "xxx".into()]),
            op: cmd_op(rpush),
        },
    ];

    // The building blocks. Each reference is the exact EVALSHA the block
    // sends, captured with MONITOR and replayed by redis-benchmark.
    let tenant = Tenant::new("workspace", "bench").unwrap_or_else(|e| bench::fail(&e.to_string()));
    // Every append of a run (and of redis-benchmark's replay of it) goes to
    // one session: far past the default SESSION_MAX_EVENTS, whose refusal
    // would be cheaper than an append and so flatter the figures.
    let store = Arc::new(
        RedisSessionStore::new(client.clone(), Duration::from_secs(3_600)).with_limits(
            SessionLimits {
                max_events: 1 << 40,
                ..SessionLimits::default()
            },
        ),
    );
    let user = UserKey::new("bench", "user").unwrap_or_else(|e| bench::fail(&e.to_string()));
    let session = store
        .create(&user, Default::default(), Some("session"))
        .await
        .unwrap_or_else(|e| bench::fail(&e.to_string()));
    let key = SessionKey::new("bench", "user", &session.id)
        .unwrap_or_else(|e| bench::fail(&e.to_string()));
    let append: Op = {
        let (store, key) = (store.clone(), key.clone());
        Arc::new(move |_client: RedisClient| {
            let (store, key) = (store.clone(), key.clone());
            Box::pin(async move {
                store
                    .append_event(&key, Event::text("user", "hello there"), None)
                    .await
                    .map(drop)
                    .map_err(|e| RedisFailure::unexpected(e.to_string()))
            })
        })
    };
    let limiter = Arc::new(
        RateLimiter::new(client.clone(), MAX_LIMIT, Duration::from_secs(1))
            .unwrap_or_else(|e| bench::fail(&e.to_string())),
    );
    let check: Op = {
        let (limiter, tenant) = (limiter.clone(), tenant.clone());
        Arc::new(move |_client: RedisClient| {
            let (limiter, tenant) = (limiter.clone(), tenant.clone());
            Box::pin(async move {
                limiter
                    .check(&tenant, "caller")
                    .await
                    .map(drop)
                    .map_err(|e| RedisFailure::unexpected(e.to_string()))
            })
        })
    };
    let queue = Arc::new(Queue::new(
        client.clone(),
        &tenant,
        "bench",
        QueueSettings::new(Duration::from_secs(600)),
    ));
    let claim: Op = {
        let queue = queue.clone();
        Arc::new(move |_client: RedisClient| {
            let queue = queue.clone();
            Box::pin(async move {
                queue
                    .claim(1)
                    .await
                    .map(drop)
                    .map_err(|e| RedisFailure::unexpected(e.to_string()))
            })
        })
    };
    fill_queue(&queue, QUEUE_ITEMS).await;
    for (name, op) in [
        ("session append", append),
        ("rate-limit check", check),
        ("queue claim", claim),
    ] {
        let mut captured =
            bench::monitor::capture(server.port(), "EVALSHA", || op(client.clone()).map(drop))
                .await;
        if name == "session append" {
            captured = with_fresh_event_ids(captured);
        }
        cases.push(Case {
            name,
            reference: Reference::Command(captured),
            op,
        });
    }
    cases
}

/// The captured append with its event id replaced by redis-benchmark's
/// `__rand_int__` (and `-r` set): every replay is then a new event, as
/// every append of the client is. Replaying one id would measure the
/// script's duplicate path (an event id already stored is answered from
/// the index without a write), which is far cheaper than an append.
///
/// The append's arguments (`EVALSHA sha numkeys keys... ttl expected_seq
/// timestamp event_id ...`) put the id 4th after the keys.
fn with_fresh_event_ids(mut captured: Vec<String>) -> Vec<String> {
    let keys: usize = captured
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| bench::fail("the captured append has no key count"));
    let id = 3 + keys + 3;
    let Some(slot) = captured.get_mut(id) else {
        bench::fail("the captured append has no event id")
    };
    *slot = "bench-__rand_int__".into();
    let mut command = vec!["-r".to_owned(), "1000000000000".to_owned()];
    command.extend(captured);
    command
}

/// Items kept in the benchmark queue so that every claim finds one.
const QUEUE_ITEMS: usize = 400_000;

async fn fill_queue(queue: &Queue, target: usize) {
    let pending = queue.stats().await.map(|s| s.pending as usize).unwrap_or(0);
    let payloads: Vec<String> = (0..1_000).map(|i| format!("{{\"change\":{i}}}")).collect();
    for _ in 0..target.saturating_sub(pending).div_ceil(1_000) {
        if let Err(e) = queue.enqueue(&payloads).await {
            bench::fail(&format!("cannot fill the queue: {e}"));
        }
    }
}

fn main() {
    // BENCH_WORKERS=1 holds the client to one thread: its throughput is then
    // the client's own CPU cost per operation (docs/performance.md).
    let workers: usize = env_or("BENCH_WORKERS", 2);
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => bench::fail(&format!("cannot start the runtime: {e}")),
    }
}

async fn run() {
    let secs: f64 = env_or("BENCH_SECS", 0.3);
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let server = RedisServer::start();
    // BENCH_PROTOCOL=resp2 measures the client on RESP2 (the default is
    // the client's own default, RESP3).
    let mut config = server.config();
    if std::env::var("BENCH_PROTOCOL").as_deref() == Ok("resp2") {
        config.protocol = shared::config::Protocol::Resp2;
    }
    let client = RedisClient::new(config).unwrap_or_else(|e| bench::fail(&e.to_string()));
    let all_cases = cases(&server, &client).await;
    let queue = Queue::new(
        client.clone(),
        &Tenant::new("workspace", "bench").unwrap_or_else(|e| bench::fail(&e.to_string())),
        "bench",
        QueueSettings::new(Duration::from_secs(600)),
    );
    let mut rows = Vec::new();
    for case in all_cases {
        for concurrency in CONCURRENCY {
            if case.name == "queue claim" {
                fill_queue(&queue, QUEUE_ITEMS).await;
            }
            progress(&format!("{} at {concurrency} callers", case.name));
            let reference = median(
                (0..rounds)
                    .map(|_| {
                        let n = bench::reference_requests(secs, concurrency);
                        match &case.reference {
                            Reference::Test(t) => redis_benchmark(server.port(), t, concurrency, n),
                            Reference::Command(c) => {
                                redis_benchmark_command(server.port(), c, concurrency, n)
                            }
                        }
                    })
                    .collect(),
            );
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let op = case.op.clone();
                let client = client.clone();
                samples.push(
                    closed_loop(concurrency, Duration::from_secs_f64(secs), move || {
                        op(client.clone())
                    })
                    .await,
                );
            }
            let ours = median(samples);
            rows.push(Row {
                case: case.name,
                concurrency,
                throughput_ratio: ours.ops_per_sec / reference.ops_per_sec.max(1.0),
                p50_ratio: ours.p50_ms / reference.p50_ms.max(1e-6),
                client: ours,
                redis_benchmark: reference,
            });
        }
    }
    let printable: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.case.to_owned(),
                r.concurrency.to_string(),
                format!("{:.0}", r.client.ops_per_sec),
                format!("{:.0}", r.redis_benchmark.ops_per_sec),
                format!("{:.2}x", r.throughput_ratio),
                format!("{:.3}", r.client.p50_ms),
                format!("{:.3}", r.redis_benchmark.p50_ms),
                format!("{:.2}x", r.p50_ratio),
                format!("{:.3}", r.client.p99_ms),
                format!("{:.3}", r.redis_benchmark.p99_ms),
            ]
        })
        .collect();
    let mut report = bench::Report::default();
    report.say(&format!(
        "Client vs redis-benchmark (no pipelining), median of {rounds} rounds of {secs} s"
    ));
    report.say(&table(
        &[
            "case",
            "callers",
            "client ops/s",
            "r-b ops/s",
            "throughput",
            "client p50",
            "r-b p50",
            "p50 ratio",
            "client p99",
            "r-b p99",
        ],
        &printable,
    ));
    let by_case = |ours: &dyn Fn(&Row) -> f64, floor: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        let mut names: Vec<&str> = rows.iter().map(|r| r.case).collect();
        names.dedup();
        let mut series = Vec::new();
        for name in names {
            let of = |f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
                rows.iter()
                    .filter(|r| r.case == name)
                    .map(|r| (r.concurrency as f64, f(r)))
                    .collect()
            };
            series.push(Series {
                name: format!("{name} (client)"),
                points: of(ours),
            });
            series.push(Series {
                name: format!("{name} (redis-benchmark)"),
                points: of(floor),
            });
        }
        series
    };
    let throughput = chart::write(
        "client-throughput",
        &Chart {
            title: "Throughput against concurrency",
            x_label: "concurrent callers",
            y_label: "operations per second",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
        },
        &by_case(&|r: &Row| r.client.ops_per_sec, &|r: &Row| {
            r.redis_benchmark.ops_per_sec
        }),
    );
    let latency = chart::write(
        "client-latency",
        &Chart {
            title: "p50 latency against concurrency",
            x_label: "concurrent callers",
            y_label: "p50 latency (ms)",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
        },
        &by_case(&|r: &Row| r.client.p50_ms, &|r: &Row| {
            r.redis_benchmark.p50_ms
        }),
    );
    let find = |case: &str, c: usize| {
        rows.iter()
            .find(|r| r.case == case && r.concurrency == c)
            .cloned()
    };
    let mut targets = Vec::new();
    if let Some(ping) = find("PING", 1) {
        targets.push(Target::new(
            "PING p50, 1 caller, vs redis-benchmark -c 1",
            ping.p50_ratio,
            "<= 1.25x",
            ping.p50_ratio <= 1.25,
        ));
    }
    for case in ["PING", "GET"] {
        if let Some(r) = find(case, 64) {
            targets.push(Target::new(
                &format!("{case} throughput, 64 callers, vs redis-benchmark -c 64"),
                r.throughput_ratio,
                ">= 3x",
                r.throughput_ratio >= 3.0,
            ));
        }
    }
    if let (Some(append), Some(rpush)) = (find("session append", 1), find("RPUSH", 1)) {
        let ratio = append.client.p50_ms / rpush.redis_benchmark.p50_ms.max(1e-6);
        targets.push(Target::new(
            "session append p50 vs redis-benchmark RPUSH p50, 1 caller",
            ratio,
            "<= 1.5x",
            ratio <= 1.5,
        ));
    }
    if let Some(append) = find("session append", 1) {
        // The floor under the previous target: Redis running the script.
        targets.push(Target::new(
            "session append p50 vs redis-benchmark of its EVALSHA, 1 caller",
            append.p50_ratio,
            "<= 1.25x",
            append.p50_ratio <= 1.25,
        ));
    }
    report.say("");
    report.say(&table(
        &["target", "measured", "goal", "met"],
        &targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    format!("{:.2}x", t.ratio),
                    t.goal.to_owned(),
                    if t.met { "yes".into() } else { "no".into() },
                ]
            })
            .collect::<Vec<_>>(),
    ));
    let path = bench::write_results(
        "client",
        &serde_json::json!({ "seconds": secs, "rounds": rounds, "rows": rows, "targets": targets }),
    );
    report.into_doc("client");
    out(&format!(
        "results: {} {} {}",
        path.display(),
        throughput.display(),
        latency.display()
    ));
}
