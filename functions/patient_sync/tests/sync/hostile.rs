//! Hostile input through the whole router against a real Redis, with many
//! generated cases: crafted practice ids, patient ids, fields, query values,
//! bodies and credentials. Nothing answers 5xx (Redis is healthy), nothing
//! panics, and every key left in Redis is inside a practice a request named.
//! Authentication is on (`AUTH_MODE=jwt`): requests carry a token for
//! `clinic-a`, `clinic-b` and `clinic-c`, or a hostile credential.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use shared::testkit::hostile::{self, encode};

use crate::{send, spawn_app};

/// The `Authorization` a generated request carries.
#[derive(Debug, Clone)]
enum Credential {
    /// A valid token for clinic-a, clinic-b and clinic-c.
    Valid,
    /// Hostile text as the header.
    Hostile(String),
    /// `Bearer` and three hostile dot-separated parts.
    Forged(String, String, String),
}

fn credential() -> impl Strategy<Value = Credential> {
    prop_oneof![
        8 => Just(Credential::Valid),
        1 => hostile::text().prop_map(Credential::Hostile),
        1 => (hostile::text(), hostile::text(), hostile::text())
            .prop_map(|(a, b, c)| Credential::Forged(a, b, c)),
    ]
}

#[derive(Debug, Clone)]
enum Call {
    Sync { ids: Vec<String>, fields: Value },
    SyncRaw(Value),
    Claim(String),
    Ack(Value),
    Status,
    Count,
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (prop::collection::vec(hostile::text(), 0..6), hostile::json())
            .prop_map(|(ids, fields)| Call::Sync { ids, fields }),
        2 => hostile::json().prop_map(Call::SyncRaw),
        1 => hostile::text().prop_map(Call::Claim),
        1 => hostile::json().prop_map(Call::Ack),
        1 => Just(Call::Status),
        1 => Just(Call::Count),
    ]
}

fn practice() -> impl Strategy<Value = String> {
    prop_oneof![3 => "clinic-[a-c]", 2 => hostile::text()]
}

#[test]
fn hostile_requests_get_4xx_never_5xx_and_stay_in_their_practice() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let idp = rt.block_on(shared::testkit::TestIdp::start());
    let mut env: Vec<(&str, String)> = idp.env();
    env.push(("RATE_LIMIT_PER_MINUTE", "100000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let test = spawn_app(&env);
    let valid = idp.bearer(&["clinic-a", "clinic-b", "clinic-c"]);
    // A practice no generated request can name, whose keys must not change.
    let as_victim = shared::testkit::access::with_authorization(
        test.app.clone(),
        &idp.bearer(&["victim-practice-0"]),
    );
    let victim = rt.block_on(crate::sync(
        &as_victim,
        "victim-practice-0",
        json!([crate::patient("v1", "Vic")]),
    ));
    assert_eq!(victim.status, 200);
    let victim_keys: Vec<String> = test.redis.all_keys();
    let dump = |keys: &[String]| -> Vec<Vec<u8>> {
        keys.iter()
            .map(|k| {
                redis::cmd("DUMP")
                    .arg(k)
                    .query(&mut test.redis.admin())
                    .unwrap()
            })
            .collect()
    };
    let victim_dump = dump(&victim_keys);

    let named = std::cell::RefCell::new(BTreeSet::from(["victim-practice-0".to_owned()]));
    let (ok, rejected) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    // 2,000 cases: with authentication on, a valid practice id other than
    // clinic-a..c is 403 and a hostile credential 401, so fewer requests
    // than before reach Redis.
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(practice(), call(), credential()),
        |(practice, call, credential)| {
            if hostile::is_tenant(&practice) {
                named.borrow_mut().insert(practice.clone());
            }
            let base = format!("/practices/{}", encode(&practice));
            let json_post = |uri: String, body: &Value| {
                Request::post(uri)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap()
            };
            let req = match &call {
                Call::Sync { ids, fields } => {
                    let patients: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({ "id": id, "data": fields }))
                        .collect();
                    json_post(
                        format!("{base}/patients/sync"),
                        &json!({ "patients": patients }),
                    )
                }
                Call::SyncRaw(body) => json_post(format!("{base}/patients/sync?mode=full"), body),
                Call::Claim(max) => {
                    Request::post(format!("{base}/changes/claim?max={}", encode(max)))
                        .body(Body::empty())
                        .unwrap()
                }
                Call::Ack(body) => json_post(format!("{base}/changes/ack"), body),
                Call::Status => Request::get(format!("{base}/sync/status"))
                    .body(Body::empty())
                    .unwrap(),
                Call::Count => Request::get(format!("{base}/patients/count"))
                    .body(Body::empty())
                    .unwrap(),
            };
            let mut req = req;
            let authorization = match &credential {
                Credential::Valid => Some(valid.clone()),
                Credential::Hostile(text) => Some(text.clone()),
                Credential::Forged(a, b, c) => Some(format!("Bearer {a}.{b}.{c}")),
            };
            if let Some(value) =
                authorization.and_then(|a| axum::http::HeaderValue::from_str(&a).ok())
            {
                req.headers_mut()
                    .insert(axum::http::header::AUTHORIZATION, value);
            }
            let reply = rt.block_on(send(&test.app, req));
            if !matches!(credential, Credential::Valid) {
                prop_assert_eq!(
                    reply.status.as_u16(),
                    401,
                    "{:?}: {}",
                    credential,
                    reply.text
                );
            }
            prop_assert!(
                reply.status.as_u16() < 500,
                "{call:?} on {practice:?}: {}",
                reply.text
            );
            if reply.status.is_client_error() {
                rejected.set(rejected.get() + 1);
                prop_assert!(reply.body["error"]["code"].is_string(), "{}", reply.text);
            } else {
                ok.set(ok.get() + 1);
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must reach Redis, not only the validators.
    assert!(
        ok.get() >= 300 && rejected.get() >= 300,
        "{} accepted, {} rejected",
        ok.get(),
        rejected.get()
    );
    hostile::assert_keys_confined(&test.redis.all_keys(), &named.borrow());
    assert_eq!(
        dump(&victim_keys),
        victim_dump,
        "the victim practice's keys changed"
    );
}
