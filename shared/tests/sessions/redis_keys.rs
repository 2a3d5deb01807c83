//! What only the Redis backend can show: the keys themselves (TTLs, hash
//! slots, tenant and user confinement) and the cost of an append.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use shared::blocks::keys::{escape_id, hash_slot};
use shared::store::session::{
    Event, GetSession, RedisSessionStore, SessionKey, SessionStore, State, UserKey,
};
use shared::testkit::TestRedis;

use crate::behaviour::crafted_ids;
use crate::redis_dump;

const TTL: Duration = Duration::from_secs(3_600);

fn keys(server: &TestRedis, pattern: &str) -> Vec<String> {
    let mut k: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.admin())
        .unwrap();
    k.sort();
    k
}

fn pttl(server: &TestRedis, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

fn state(pairs: &[(&str, serde_json::Value)]) -> State {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect()
}

#[tokio::test]
async fn every_key_of_a_session_has_a_ttl_after_create_and_after_each_append() {
    let server = TestRedis::start();
    let store = RedisSessionStore::new(server.client(), TTL);
    let user = UserKey::new("agent", "alice").unwrap();
    let key = SessionKey::new("agent", "alice", "s").unwrap();
    store
        .create(
            &user,
            state(&[
                ("step", json!(0)),
                ("app:a", json!(1)),
                ("user:u", json!(2)),
            ]),
            Some("s"),
        )
        .await
        .unwrap();
    let after_create = keys(&server, "*");
    assert_eq!(
        after_create.len(),
        6,
        "meta, state, index, the app's users, app and user state: {after_create:?}"
    );
    for k in &after_create {
        let ttl = pttl(&server, k);
        assert!(ttl > 3_590_000 && ttl <= 3_600_000, "{k}: {ttl}");
    }
    for i in 0..3 {
        // Let the TTLs run down (as time would), then append.
        for k in keys(&server, "*") {
            redis::cmd("PEXPIRE")
                .arg(&k)
                .arg(5_000)
                .exec(&mut server.admin())
                .unwrap();
        }
        store
            .append_event(
                &key,
                Event::text("user", "hi").with_state("step", json!(i)),
                None,
            )
            .await
            .unwrap();
        let all = keys(&server, "*");
        assert_eq!(
            all.len(),
            9,
            "plus the event and index time lists and the event ids: {all:?}"
        );
        for k in &all {
            let ttl = pttl(&server, k);
            assert!(ttl > 3_590_000, "append {i} refreshed {k}: {ttl}");
        }
    }
}

#[tokio::test]
async fn a_sessions_keys_and_its_shared_state_are_in_one_hash_slot() {
    let server = TestRedis::start();
    let store = RedisSessionStore::new(server.client(), TTL);
    let user = UserKey::new("agent", "{other}:x").unwrap();
    let key = SessionKey::new("agent", "{other}:x", "}{").unwrap();
    store
        .create(&user, state(&[("user:a", json!(1))]), Some("}{"))
        .await
        .unwrap();
    store
        .append_event(
            &key,
            Event::text("user", "hi")
                .with_state("app:x", json!(1))
                .with_state("k", json!(1)),
            None,
        )
        .await
        .unwrap();
    let all = keys(&server, "*");
    assert_eq!(all.len(), 9);
    for k in &all {
        assert_eq!(hash_slot(k.as_bytes()), hash_slot(b"agent"), "{k}");
    }
}

#[tokio::test]
async fn an_append_is_one_round_trip_whatever_the_history_length() {
    let server = TestRedis::start();
    let client = server.client();
    let store = RedisSessionStore::new(client.clone(), TTL);
    let user = UserKey::new("agent", "alice").unwrap();
    let key = SessionKey::new("agent", "alice", "s").unwrap();
    store.create(&user, State::new(), Some("s")).await.unwrap();
    // The first append loads the script (EVALSHA, NOSCRIPT, EVAL).
    store
        .append_event(&key, Event::text("user", "0"), None)
        .await
        .unwrap();
    for history in [1u64, 1_000] {
        while store
            .get(&key, GetSession::recent(0))
            .await
            .unwrap()
            .unwrap()
            .last_seq
            < history
        {
            store
                .append_event(&key, Event::text("user", "x"), None)
                .await
                .unwrap();
        }
        let before = client.metrics().operations;
        let appended = store
            .append_event(
                &key,
                Event::text("user", "one more")
                    .with_state("k", json!(1))
                    .with_state("user:u", json!(1)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            client.metrics().operations - before,
            1,
            "at {history} events"
        );
        assert_eq!(appended.seq, Some(history + 1));
    }
    // Reading the last events is one round trip too.
    let before = client.metrics().operations;
    let s = store
        .get(&key, GetSession::recent(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.metrics().operations - before, 1);
    assert_eq!(s.events.len(), 20);
    assert_eq!(s.events[19].seq, s.last_seq);
}

/// The tail of a key after `ws:{agent}:<kind>:`, split at `:`.
fn segments(key: &str) -> Vec<String> {
    key.split(':').map(str::to_owned).collect()
}

#[tokio::test]
async fn crafted_ids_never_reach_another_apps_or_users_keys() {
    let server = TestRedis::start();
    let store = RedisSessionStore::new(server.client(), TTL);
    // Victims: a user of the same app, and the same user names in another app.
    let victim = UserKey::new("agent", "victim").unwrap();
    store
        .create(&victim, state(&[("user:v", json!("mine"))]), Some("v1"))
        .await
        .unwrap();
    store
        .append_event(
            &SessionKey::new("agent", "victim", "v1").unwrap(),
            Event::text("user", "victim's"),
            None,
        )
        .await
        .unwrap();
    for u in crafted_ids() {
        let other_app = UserKey::new("agent2", &u).unwrap();
        store
            .create(&other_app, state(&[("user:v", json!("agent2"))]), Some("a"))
            .await
            .unwrap();
    }
    let victims = |dump: &str| -> String {
        dump.lines()
            .filter(|l| l.starts_with("ws:{agent2}:") || l.contains(":victim"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = victims(&redis_dump(&server));

    let ids = crafted_ids();
    let mut expected = BTreeSet::new();
    for u in &ids {
        let user = UserKey::new("agent", u).unwrap();
        for id in ids.iter().take(4) {
            store
                .create(
                    &user,
                    state(&[("user:u", json!(u)), ("s", json!(id))]),
                    Some(id),
                )
                .await
                .unwrap();
            let key = SessionKey::new("agent", u, id).unwrap();
            store
                .append_event(
                    &key,
                    Event::text("user", "x")
                        .with_state("user:w", json!(1))
                        .with_state("k", json!(2)),
                    None,
                )
                .await
                .unwrap();
            expected.insert((
                escape_id("u", u).unwrap(),
                Some(escape_id("s", id).unwrap()),
            ));
        }
        expected.insert((escape_id("u", u).unwrap(), None));
        store.list(&user).await.unwrap();
        store
            .delete(&SessionKey::new("agent", u, &ids[0]).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        victims(&redis_dump(&server)),
        before,
        "no victim key changed"
    );

    // Every other key is `ws:{agent}:<kind>:<escaped user>[:<escaped id>]`
    // of a crafted user and one of its sessions.
    let mut seen = BTreeSet::new();
    for k in keys(&server, "ws:{agent}:*") {
        if k == "ws:{agent}:app_state" || k == "ws:{agent}:session_users" || k.contains(":victim") {
            continue;
        }
        let parts = segments(&k);
        assert!(parts.len() == 4 || parts.len() == 5, "{k}");
        assert_eq!(&parts[..2], ["ws", "{agent}"], "{k}");
        let kind = parts[2].as_str();
        let user = parts[3].clone();
        let id = parts.get(4).cloned();
        match kind {
            "session" | "session_state" | "session_events" | "session_times"
            | "session_event_ids" => {
                assert!(id.is_some(), "{k}")
            }
            "sessions" | "user_state" => assert!(id.is_none(), "{k}"),
            other => panic!("unexpected key kind {other} in {k}"),
        }
        assert!(
            expected.contains(&(user.clone(), id.clone())),
            "{k} belongs to no crafted session"
        );
        seen.insert((user, id));
    }
    assert!(
        seen.len() > ids.len() * 3,
        "the crafted sessions' keys were examined"
    );
    assert_eq!(
        keys(&server, "ws:{agent2}:*").len(),
        before
            .lines()
            .filter(|l| l.starts_with("ws:{agent2}:"))
            .count()
    );
}
