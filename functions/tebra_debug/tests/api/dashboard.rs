//! The dashboard in a real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver`), against the function running as a server and a
//! real `redis-server` under live traffic: the token is typed into the page,
//! the four charts fill with the function's live data, and a screenshot is
//! saved as an artifact (`target/artifacts/dashboard.png`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use shared::testkit::{Browser, FunctionProcess, RedisServer};

use crate::{BIN, TOKEN};

const PASSWORD: &str = "pw-dashboard-Kp4-secret";

/// Where test artifacts go: `$CARGO_TARGET_DIR/artifacts`, else the
/// workspace's `target/artifacts`.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("artifacts")
}

/// Reads from Redis until stopped: three hits for every miss, about 400
/// reads a second, through a client of the test's own.
fn traffic(server: &RedisServer, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let client = server.client();
    tokio::spawn(async move {
        client
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg("ws:{acme}:hot")
                    .arg(vec![b'x'; 256 * 1024])
                    .exec_async(&mut c)
                    .await
            })
            .await
            .unwrap();
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            for key in [
                "ws:{acme}:hot",
                "ws:{acme}:hot",
                "ws:{acme}:hot",
                "ws:{acme}:cold",
            ] {
                let _ = client
                    .run(|mut c| async move {
                        redis::cmd("STRLEN")
                            .arg(key)
                            .query_async::<u64>(&mut c)
                            .await
                    })
                    .await;
                reads += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reads
    })
}

/// The page's state as the test reads it: the main element's data
/// attributes and each chart's point count and last value.
const READ_STATE: &str = r#"
    const main = document.getElementById('dashboard');
    const charts = {};
    for (const f of document.querySelectorAll('figure[data-chart]')) {
        charts[f.dataset.chart] = {
            points: Number(f.dataset.points),
            last: f.dataset.last === '' ? null : Number(f.dataset.last),
            lines: f.querySelectorAll('polyline').length,
        };
    }
    return {
        state: main.dataset.state,
        samples: Number(main.dataset.samples),
        version: main.dataset.redisVersion || null,
        lastError: main.dataset.lastError || null,
        loginError: document.getElementById('login-error').textContent,
        charts,
    };
"#;

#[tokio::test]
async fn the_dashboard_shows_live_charts_in_a_headless_browser() {
    let server = RedisServer::builder().password(PASSWORD).start();
    let version = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut server.admin())
            .unwrap();
        shared::redis::info::info_field(&info, "redis_version")
            .unwrap()
            .to_owned()
    };
    let url = server.url();
    let mut function = FunctionProcess::spawn(BIN, &[("REDIS_URL", &url), ("ADMIN_TOKEN", TOKEN)]);
    function.wait_ready(Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(&server, stop.clone());

    let browser = Browser::start().await;
    let b = &browser;
    let page = format!("{}/debug?interval_ms=500", function.base_url());
    browser.goto(&page).await;
    let state = browser.execute(READ_STATE, vec![]).await;
    assert_eq!(state["state"], "login", "{state}");

    // A wrong token is refused and the page asks again.
    let input = browser.find("#token").await;
    browser.send_keys(&input, "not-the-admin-token-000").await;
    browser.click(&browser.find("#connect").await).await;
    browser
        .wait_for(
            "the wrong token to be refused",
            Duration::from_secs(20),
            || async move {
                let state = b.execute(READ_STATE, vec![]).await;
                let refused = state["state"] == "login"
                    && state["loginError"].as_str().unwrap_or("").contains("401");
                if refused {
                    Ok(())
                } else {
                    Err(state.to_string())
                }
            },
        )
        .await;

    // The right one: the charts fill with live data.
    let input = browser.find("#token").await;
    browser.send_keys(&input, TOKEN).await;
    browser.click(&browser.find("#connect").await).await;
    let state: Value = browser
        .wait_for(
            "four charts with live data",
            Duration::from_secs(60),
            || async move {
                let state = b.execute(READ_STATE, vec![]).await;
                let charts = &state["charts"];
                let filled = ["latency", "ops", "hit_rate", "memory"].iter().all(|c| {
                    charts[c]["points"].as_u64().unwrap_or(0) >= 16
                        && charts[c]["lines"].as_u64().unwrap_or(0) >= 1
                });
                if state["state"] == "live" && filled {
                    Ok(state)
                } else {
                    Err(state.to_string())
                }
            },
        )
        .await;
    assert_eq!(state["version"], version.as_str(), "{state}");
    let charts = &state["charts"];
    let last = |chart: &str| charts[chart]["last"].as_f64().unwrap_or(-1.0);
    assert!(last("latency") > 0.0, "probe p50 in ms: {state}");
    assert!(last("ops") > 0.0, "server ops/s under traffic: {state}");
    assert!(
        last("memory") > 0.25,
        "MiB used, a 256 KiB value included: {state}"
    );
    // The traffic reads three hits for every miss; the dashboard's own
    // polls read no keys. So the interval hit rate is close to 75 %.
    let hit_rate = last("hit_rate");
    assert!(
        (60.0..=90.0).contains(&hit_rate),
        "hit rate {hit_rate}: {state}"
    );

    // The token is nowhere but in the script's memory.
    let current = browser.url().await;
    assert!(!current.contains(TOKEN), "{current}");
    let exposed = browser
        .execute(
            "return [location.href, document.cookie, JSON.stringify(localStorage), \
             JSON.stringify(sessionStorage), document.documentElement.outerHTML].join('\\n');",
            vec![],
        )
        .await;
    assert!(
        !exposed.as_str().unwrap().contains(TOKEN),
        "the token leaked into the page"
    );

    let path = artifacts_dir().join("dashboard.png");
    let size = browser.save_screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(size > 10_000, "a blank page would be smaller: {size} bytes");

    browser.quit().await;
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 0);
    assert!(function.is_running());
    let output = function.output();
    assert!(
        !output.contains(PASSWORD) && !output.contains(TOKEN),
        "{output}"
    );
}
