//! How fast is `append_event` on each session backend, and does it depend on
//! the history? Measures, against servers started here (`redis-server`,
//! PostgreSQL, MariaDB):
//!
//! - `append_event` latency (p50 / p95 / p99) and throughput for the `redis`,
//!   `sql` (PostgreSQL and MariaDB) and `memory` stores, with 1 and 64
//!   concurrent writers (each on its own sessions), at 10, 100 and 1,000
//!   events already in the session;
//! - the same for the "read every event, then write" SQL append that the
//!   source documents describe as the slow baseline (a transaction that
//!   locks the session, reads and decodes its whole history, then inserts
//!   the event and updates the session), on the same tables;
//! - `get` of the last 20 events of a 1,000-event session (and of all of
//!   them, for contrast);
//! - `redis-benchmark -t rpush` in the same run: the floor.
//!
//! Each writer appends round-robin over sessions of its own, each session
//! receiving at most a quarter of its prior length, so the history stays
//! within 25% of the stated length during a measurement.
//!
//! Prints a table, writes `bench-results/sessions.json` and draws
//! `bench-results/sessions-latency.svg` (p50 against history length).
//!
//! Knobs: `SESSIONS_BENCH_SAMPLES` (appends timed per configuration with one
//! writer, default 200; 64 writers time `max(SAMPLES / 16, 4)` each),
//! `SESSIONS_BENCH_PRIORS` (default `10,100,1000`),
//! `SESSIONS_BENCH_BACKENDS` (default `redis,postgres,mariadb,memory`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{env_or, out, progress, redis_benchmark, table, write_results};
use serde::Serialize;
use shared::store::session::{
    Event, GetSession, MemorySessionStore, RedisSessionStore, SessionKey, SessionStore,
    SqlSessionStore, State, UserKey,
};
use shared::store::sql::{Dialect, SqlDatabase, SqlSettings};
use shared::testkit::{MariaDbServer, PostgresServer, RedisServer};
use sqlx::Row;

const WRITERS: [usize; 2] = [1, 64];

#[derive(Debug, Clone, Serialize)]
struct Measured {
    backend: String,
    operation: &'static str,
    prior_events: usize,
    writers: usize,
    samples: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn event(i: usize) -> Event {
    Event::text(
        "user",
        &format!("turn {i}: what tours are there in Paris tomorrow?"),
    )
    .with_state("turns", serde_json::json!(i))
}

/// An append to one session: the store's, or the baseline's.
#[derive(Debug, Clone)]
enum Appender {
    Store(Arc<dyn SessionStore>),
    ReadAllThenWrite(SqlDatabase),
}

impl Appender {
    async fn append(&self, key: &SessionKey, i: usize) {
        match self {
            Self::Store(store) => {
                if let Err(e) = store.append_event(key, event(i), None).await {
                    bench::fail(&format!("append failed: {e}"));
                }
            }
            Self::ReadAllThenWrite(db) => {
                if let Err(e) = read_all_then_write(db, key, i).await {
                    bench::fail(&format!("baseline append failed: {e}"));
                }
            }
        }
    }
}

/// The slow baseline: lock the session, read and decode every event, then
/// insert the new one and update the session.
async fn read_all_then_write(
    db: &SqlDatabase,
    key: &SessionKey,
    i: usize,
) -> Result<(), sqlx::Error> {
    let pg = db.dialect() == Dialect::Postgres;
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query(if pg {
        "SELECT seq, state FROM adk_sessions WHERE app_name = $1 AND user_id = $2 AND id = $3 FOR UPDATE"
    } else {
        "SELECT seq, state FROM adk_sessions WHERE app_name = ? AND user_id = ? AND id = ? FOR UPDATE"
    })
    .bind(key.app())
    .bind(key.user())
    .bind(key.id())
    .fetch_one(&mut *tx)
    .await?;
    let seq: i64 = row.try_get(0)?;
    let rows = sqlx::query(if pg {
        "SELECT event FROM adk_events WHERE app_name = $1 AND user_id = $2 AND session_id = $3 ORDER BY seq"
    } else {
        "SELECT event FROM adk_events WHERE app_name = ? AND user_id = ? AND session_id = ? ORDER BY seq"
    })
    .bind(key.app())
    .bind(key.user())
    .bind(key.id())
    .fetch_all(&mut *tx)
    .await?;
    let mut history = Vec::with_capacity(rows.len());
    for r in &rows {
        let text: String = r.try_get(0)?;
        history.push(serde_json::from_str::<Event>(&text).unwrap_or_default());
    }
    let mut e = event(i);
    e.seq = seq as u64 + 1;
    e.timestamp = Some(history.last().map_or(1.9e9, Event::time));
    let json = serde_json::to_string(&e).unwrap_or_default();
    sqlx::query(if pg {
        "INSERT INTO adk_events (app_name, user_id, session_id, seq, ts, event) VALUES ($1, $2, $3, $4, $5, $6)"
    } else {
        "INSERT INTO adk_events (app_name, user_id, session_id, seq, ts, event) VALUES (?, ?, ?, ?, ?, ?)"
    })
    .bind(key.app())
    .bind(key.user())
    .bind(key.id())
    .bind(seq + 1)
    .bind(e.time())
    .bind(json)
    .execute(&mut *tx)
    .await?;
    sqlx::query(if pg {
        "UPDATE adk_sessions SET seq = $1, update_time = $2 WHERE app_name = $3 AND user_id = $4 AND id = $5"
    } else {
        "UPDATE adk_sessions SET seq = ?, update_time = ? WHERE app_name = ? AND user_id = ? AND id = ?"
    })
    .bind(seq + 1)
    .bind(e.time())
    .bind(key.app())
    .bind(key.user())
    .bind(key.id())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Creates `count` sessions named `tag-<n>` for `user`, each with `prior` events.
async fn prepare(
    store: &Arc<dyn SessionStore>,
    user: &str,
    tag: &str,
    count: usize,
    prior: usize,
) -> Vec<SessionKey> {
    let u = UserKey::new("bench", user).unwrap_or_else(|e| bench::fail(&e.to_string()));
    let mut keys = Vec::with_capacity(count);
    for n in 0..count {
        let id = format!("{tag}-{n}");
        if let Err(e) = store.create(&u, State::new(), Some(&id)).await {
            bench::fail(&format!("create failed: {e}"));
        }
        keys.push(
            u.session(&id)
                .unwrap_or_else(|e| bench::fail(&e.to_string())),
        );
    }
    // Fill them concurrently (32 at a time).
    let jobs: Vec<(SessionKey, usize)> = keys
        .iter()
        .flat_map(|k| (0..prior).map(move |i| (k.clone(), i)))
        .collect();
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let jobs = jobs.clone();
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let next = jobs.lock().ok().and_then(|mut j| j.pop());
                    let Some((key, i)) = next else { break };
                    if let Err(e) = store.append_event(&key, event(i), None).await {
                        bench::fail(&format!("prefill failed: {e}"));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    keys
}

/// `writers` tasks, each timing `per_writer` appends round-robin over its sessions.
async fn measure(
    appender: &Appender,
    sessions: &[Vec<SessionKey>],
    per_writer: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|mine| {
            let appender = appender.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let key = &mine[i % mine.len()];
                    let t = Instant::now();
                    appender.append(key, i).await;
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.extend(s),
            Err(e) => bench::fail(&format!("writer failed: {e}")),
        }
    }
    (all, started.elapsed())
}

fn row(
    backend: &str,
    operation: &'static str,
    prior: usize,
    writers: usize,
    samples: Vec<Duration>,
    elapsed: Duration,
) -> Measured {
    let stats = bench::Stats::from_samples(samples, elapsed);
    Measured {
        backend: backend.to_owned(),
        operation,
        prior_events: prior,
        writers,
        samples: stats.ops as usize,
        ops_per_sec: stats.ops_per_sec,
        p50_ms: stats.p50_ms,
        p95_ms: stats.p95_ms,
        p99_ms: stats.p99_ms,
    }
}

struct Target {
    name: String,
    store: Arc<dyn SessionStore>,
    baseline: Option<Appender>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples: usize = env_or("SESSIONS_BENCH_SAMPLES", 200);
    let priors: Vec<usize> = env_list("SESSIONS_BENCH_PRIORS", "10,100,1000")
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let backends = env_list("SESSIONS_BENCH_BACKENDS", "redis,postgres,mariadb,memory");
    let ttl = Duration::from_secs(3_600);
    let redis = RedisServer::start();
    let mut _servers: (Option<PostgresServer>, Option<MariaDbServer>) = (None, None);
    let mut targets = Vec::new();
    for name in &backends {
        progress(&format!("starting {name}"));
        let (store, baseline): (Arc<dyn SessionStore>, Option<Appender>) = match name.as_str() {
            "redis" => (Arc::new(RedisSessionStore::new(redis.client(), ttl)), None),
            "memory" => (Arc::new(MemorySessionStore::new(ttl)), None),
            "postgres" | "mariadb" => {
                let url = if name == "postgres" {
                    let server = PostgresServer::start();
                    let url = server.create_database().await;
                    _servers.0 = Some(server);
                    url
                } else {
                    let server = MariaDbServer::start();
                    let url = server.create_database().await;
                    _servers.1 = Some(server);
                    url
                };
                let db = SqlDatabase::connect_lazy(&url, SqlSettings::default())
                    .unwrap_or_else(|e| bench::fail(&e.to_string()));
                if let Err(e) = db.migrate().await {
                    bench::fail(&format!("migration failed: {e}"));
                }
                (
                    Arc::new(SqlSessionStore::new(db.clone())),
                    Some(Appender::ReadAllThenWrite(db)),
                )
            }
            other => bench::fail(&format!("unknown backend {other}")),
        };
        targets.push(Target {
            name: name.clone(),
            store: store.clone(),
            baseline: None,
        });
        if baseline.is_some() {
            // Sessions are made and filled through the store, appended to by the baseline.
            targets.push(Target {
                name: format!("{name} read-all-then-write"),
                store,
                baseline,
            });
        }
    }

    let mut rows = Vec::new();
    for target in &targets {
        let appender = target
            .baseline
            .clone()
            .unwrap_or_else(|| Appender::Store(target.store.clone()));
        for &prior in &priors {
            for writers in WRITERS {
                let per_writer = if writers == 1 {
                    samples
                } else {
                    (samples / 16).max(4)
                };
                let per_session = (prior / 4).max(1);
                let sessions_per_writer = per_writer.div_ceil(per_session);
                progress(&format!(
                    "{}: {writers} writer(s) at {prior} events ({} sessions to fill)",
                    target.name,
                    writers * sessions_per_writer
                ));
                let tag = format!("p{prior}-w{writers}");
                let mut sessions = Vec::new();
                for w in 0..writers {
                    let user = format!("{}-{w}", target.name.replace(' ', "_"));
                    sessions.push(
                        prepare(&target.store, &user, &tag, sessions_per_writer, prior).await,
                    );
                }
                let (s, elapsed) = measure(&appender, &sessions, per_writer).await;
                rows.push(row(
                    &target.name,
                    "append_event",
                    prior,
                    writers,
                    s,
                    elapsed,
                ));
            }
        }
        if target.baseline.is_none() {
            progress(&format!(
                "{}: get of the last 20 of 1,000 events",
                target.name
            ));
            let keys = prepare(&target.store, "reader", "get", 1, 1_000).await;
            for (operation, query) in [
                ("get last 20", GetSession::recent(20)),
                ("get all", GetSession::all()),
            ] {
                let n = samples.max(20);
                let mut s = Vec::with_capacity(n);
                let started = Instant::now();
                for _ in 0..n {
                    let t = Instant::now();
                    match target.store.get(&keys[0], query).await {
                        Ok(Some(_)) => {}
                        other => bench::fail(&format!("get failed: {other:?}")),
                    }
                    s.push(t.elapsed());
                }
                rows.push(row(&target.name, operation, 1_000, 1, s, started.elapsed()));
            }
        }
    }

    progress("redis-benchmark -t rpush");
    let mut floor = Vec::new();
    for writers in WRITERS {
        let f = redis_benchmark(redis.port(), "rpush", writers, 20_000);
        floor.push(Measured {
            backend: "redis-benchmark RPUSH (floor)".into(),
            operation: "rpush",
            prior_events: 0,
            writers,
            samples: f.ops as usize,
            ops_per_sec: f.ops_per_sec,
            p50_ms: f.p50_ms,
            p95_ms: f.p95_ms,
            p99_ms: f.p99_ms,
        });
    }
    // Each row against the floor at the same number of concurrent clients.
    let floor_p50 = |writers: usize| {
        floor
            .iter()
            .find(|f| f.writers == writers)
            .map_or(0.0, |f| f.p50_ms)
            .max(1e-6)
    };

    let printable: Vec<Vec<String>> = floor
        .iter()
        .chain(rows.iter())
        .map(|r| {
            vec![
                r.backend.clone(),
                r.operation.to_owned(),
                r.prior_events.to_string(),
                r.writers.to_string(),
                format!("{:.0}", r.ops_per_sec),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p95_ms),
                format!("{:.3}", r.p99_ms),
                format!("{:.1}x", r.p50_ms / floor_p50(r.writers)),
            ]
        })
        .collect();
    let mut report = bench::Report::default();
    report.say(&format!(
        "Session append and read latency by backend ({samples} timed appends per configuration with 1 writer)"
    ));
    report.say(&table(
        &[
            "backend",
            "operation",
            "prior",
            "writers",
            "ops/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p50 vs RPUSH (same clients)",
        ],
        &printable,
    ));

    // The source documents' claim: the read-all SQL append against the Redis append.
    let p50 = |backend: &str, prior: usize, writers: usize| {
        rows.iter()
            .find(|r| {
                r.backend == backend
                    && r.operation == "append_event"
                    && r.prior_events == prior
                    && r.writers == writers
            })
            .map(|r| r.p50_ms)
    };
    let mut ratios = Vec::new();
    for &prior in &priors {
        for baseline in [
            "postgres read-all-then-write",
            "mariadb read-all-then-write",
            "postgres",
            "mariadb",
        ] {
            if let (Some(slow), Some(fast)) = (p50(baseline, prior, 1), p50("redis", prior, 1)) {
                ratios.push(serde_json::json!({
                    "prior_events": prior, "sql": baseline, "sql_p50_ms": slow,
                    "redis_p50_ms": fast, "ratio": slow / fast,
                }));
                report.say(&format!(
                    "{prior:>5} prior events: {baseline} p50 {slow:.3} ms = {:.1}x redis append_event p50 {fast:.3} ms",
                    slow / fast
                ));
            }
        }
    }

    let svg = chart(&rows, &floor, &priors);
    let svg_path = std::path::Path::new("bench-results").join("sessions-latency.svg");
    let _ = std::fs::create_dir_all("bench-results");
    if let Err(e) = std::fs::write(&svg_path, svg) {
        bench::fail(&format!("cannot write {}: {e}", svg_path.display()));
    }
    let path = write_results(
        "sessions",
        &serde_json::json!({
            "samples": samples,
            "priors": priors,
            "floor": floor,
            "rows": rows,
            "sql_vs_redis": ratios,
        }),
    );
    report.into_doc("sessions");
    out(&format!(
        "results: {}  chart: {}",
        path.display(),
        svg_path.display()
    ));
}

/// p50 append latency against history length, one line per backend (one
/// writer), log-log, with the RPUSH floor as a dashed line.
fn chart(rows: &[Measured], floor: &[Measured], priors: &[usize]) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (70.0, 250.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let series: Vec<(String, Vec<(f64, f64)>)> = {
        let mut names: Vec<String> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.operation == "append_event" && r.writers == 1)
        {
            if !names.contains(&r.backend) {
                names.push(r.backend.clone());
            }
        }
        names
            .into_iter()
            .map(|n| {
                let pts = rows
                    .iter()
                    .filter(|r| r.backend == n && r.operation == "append_event" && r.writers == 1)
                    .map(|r| (r.prior_events as f64, r.p50_ms))
                    .collect();
                (n, pts)
            })
            .collect()
    };
    let floor_ms = floor.first().map_or(0.01, |f| f.p50_ms.max(0.001));
    let all_y: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .chain([floor_ms])
        .filter(|y| *y > 0.0)
        .collect();
    let ymin = all_y
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .log10()
        .floor();
    let ymax = all_y
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .log10()
        .ceil()
        .max(ymin + 1.0);
    let xmin = (priors.iter().copied().min().unwrap_or(10) as f64).log10();
    let xmax = (priors.iter().copied().max().unwrap_or(1000) as f64)
        .log10()
        .max(xmin + 1.0);
    let x = |v: f64| left + (v.log10() - xmin) / (xmax - xmin) * pw;
    let y = |v: f64| top + ph - (v.max(1e-6).log10() - ymin) / (ymax - ymin) * ph;
    let colors = [
        "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">append_event p50 latency vs history length (1 writer, log-log)</text>\n"
    );
    let mut decade = ymin;
    while decade <= ymax {
        let v = 10f64.powf(decade);
        let yy = y(v);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>\n",
            left + pw,
            left - 6.0,
            yy + 4.0,
            format_ms(v)
        ));
        decade += 1.0;
    }
    for p in priors {
        let xx = x(*p as f64);
        svg.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{p}</text>\n",
            top + ph,
            top + ph + 18.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">events already in the session</text>\n\
         <rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>\n",
        left + pw / 2.0,
        h - 18.0
    ));
    let fy = y(floor_ms);
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{fy:.1}\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n",
        left + pw
    ));
    let legend_x = left + pw + 16.0;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        svg.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            path.join(" ")
        ));
        for (px, py) in pts {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                x(*px),
                y(*py)
            ));
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        svg.push_str(&format!(
            "<line x1=\"{legend_x:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            legend_x + 20.0,
            legend_x + 26.0,
            ly + 4.0,
            name
        ));
    }
    let ly = top + 10.0 + 20.0 * series.len() as f64;
    svg.push_str(&format!(
        "<line x1=\"{legend_x:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">redis-benchmark RPUSH p50</text>\n</svg>\n",
        legend_x + 20.0,
        legend_x + 26.0,
        ly + 4.0
    ));
    svg
}

fn format_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}
