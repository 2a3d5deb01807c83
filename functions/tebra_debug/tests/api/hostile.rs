//! Hostile query values on the admin endpoints, with many generated cases:
//! nothing answers 5xx, every listed key belongs to the workspace asked for,
//! and nothing is written.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shared::testkit::RedisServer;
use shared::testkit::hostile::{self, encode};

use crate::{TOKEN, ctx_for, get};

#[test]
fn hostile_admin_queries_get_4xx_never_5xx_and_list_only_their_workspace() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = RedisServer::start();
    let mut admin = redis.admin();
    for ws in ["acme", "acme2", "globex"] {
        for i in 0..20 {
            redis::cmd("SET")
                .arg(format!("ws:{{{ws}}}:item:{i}"))
                .arg(i)
                .exec(&mut admin)
                .unwrap();
        }
    }
    redis::cmd("SET")
        .arg("acme:outside")
        .arg(1)
        .exec(&mut admin)
        .unwrap();
    let before = redis.all_keys();
    let app = tebra_debug::app(ctx_for(&redis, &[("ADMIN_TOKEN", TOKEN)]));

    let value = || prop_oneof![2 => "acme|acme2|globex", 1 => "[0-9]{1,4}", 2 => hostile::text()];
    let calls = (0..3u8, value(), value(), value());
    let mut runner = TestRunner::new(Config {
        cases: 800,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&calls, |(route, a, b, c)| {
        let uri = match route {
            0 => format!(
                "/debug/keys?workspace={}&pattern={}&limit={}",
                encode(&a),
                encode(&b),
                encode(&c)
            ),
            1 => format!("/debug/redis?probe={}", encode(&a)),
            _ => format!("/admin/redis-metrics?probe={}&x={}", encode(&b), encode(&c)),
        };
        let reply = rt.block_on(get(&app, &uri, Some(TOKEN)));
        prop_assert!(reply.status.as_u16() < 500, "{uri}: {}", reply.text);
        let body = reply.json();
        if reply.status.is_client_error() {
            prop_assert!(body["error"]["code"].is_string(), "{}", reply.text);
        } else if route == 0 {
            let prefix = format!("ws:{{{a}}}:");
            for key in body["keys"].as_array().into_iter().flatten() {
                let key = key["key"].as_str().unwrap_or_default();
                prop_assert!(key.starts_with(&prefix), "{key} listed for workspace {a:?}");
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(
        redis.all_keys(),
        before,
        "the admin endpoints wrote nothing"
    );
}
