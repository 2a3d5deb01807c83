//! What every session backend does, written once against the trait.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::json;
use shared::store::session::{
    AppKey, Event, GetSession, MAX_ID_BYTES, SessionKey, State, StoreError, UserKey,
};

use crate::World;

fn user(app: &str, user: &str) -> UserKey {
    UserKey::new(app, user).unwrap()
}

fn key(app: &str, user: &str, id: &str) -> SessionKey {
    SessionKey::new(app, user, id).unwrap()
}

fn state(pairs: &[(&str, serde_json::Value)]) -> State {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect()
}

fn at(timestamp: f64, text: &str) -> Event {
    Event::text("user", text).at(timestamp)
}

pub async fn create_then_get_returns_the_session_and_its_state(w: &World) {
    let s = w
        .sessions
        .create(
            &user("agent", "alice"),
            state(&[
                ("step", json!(1)),
                ("app:theme", json!("dark")),
                ("temp:x", json!(1)),
            ]),
            Some("s1"),
        )
        .await
        .unwrap();
    assert_eq!(
        (s.app_name.as_str(), s.user_id.as_str(), s.id.as_str()),
        ("agent", "alice", "s1")
    );
    assert_eq!(s.state["step"], 1);
    assert_eq!(s.state["app:theme"], "dark");
    assert!(
        !s.state.contains_key("temp:x"),
        "temp: keys are not stored at create"
    );
    assert_eq!(s.last_seq, 0);
    assert!(s.last_update_time > 1.6e9);

    let got = w
        .sessions
        .get(&key("agent", "alice", "s1"), GetSession::all())
        .await
        .unwrap()
        .expect("the session exists");
    assert_eq!(got.state, s.state);
    assert!(got.events.is_empty());

    let generated = w
        .sessions
        .create(&user("agent", "alice"), State::new(), None)
        .await
        .unwrap();
    assert_eq!(generated.id.len(), 32, "a fresh id is generated");
    assert_ne!(generated.id, "s1");
}

pub async fn create_with_a_taken_id_fails_with_already_exists(w: &World) {
    let u = user("agent", "alice");
    w.sessions
        .create(&u, state(&[("v", json!("first"))]), Some("dup"))
        .await
        .unwrap();
    let err = w
        .sessions
        .create(&u, state(&[("v", json!("second"))]), Some("dup"))
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::AlreadyExists);
    let s = w
        .sessions
        .get(&key("agent", "alice", "dup"), GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state["v"], "first", "the failed create changed nothing");
}

pub async fn concurrent_creates_of_one_id_have_exactly_one_winner(w: &World) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = w.sessions.clone();
            tokio::spawn(async move {
                store
                    .create(
                        &user("agent", "bob"),
                        state(&[("winner", json!(i))]),
                        Some("race"),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => winners.push(i),
            Err(StoreError::AlreadyExists) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    let s = w
        .sessions
        .get(&key("agent", "bob", "race"), GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state["winner"], json!(winners[0]));
}

pub async fn get_of_an_absent_session_is_none(w: &World) {
    let got = w
        .sessions
        .get(&key("agent", "alice", "nope"), GetSession::all())
        .await
        .unwrap();
    assert!(got.is_none());
}

pub async fn list_returns_only_that_users_sessions(w: &World) {
    for (app, u, id) in [
        ("agent", "alice", "a1"),
        ("agent", "alice", "a2"),
        ("agent", "bob", "b1"),
        ("other", "alice", "o1"),
    ] {
        w.sessions
            .create(&user(app, u), state(&[("id", json!(id))]), Some(id))
            .await
            .unwrap();
    }
    w.sessions
        .append_event(
            &key("agent", "alice", "a1"),
            Event::text("user", "hi"),
            None,
        )
        .await
        .unwrap();
    let mut listed = w.sessions.list(&user("agent", "alice")).await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert!(
        listed.iter().all(|s| s.events.is_empty()),
        "a listing has no events"
    );
    assert_eq!(listed[0].last_seq, 1);
    assert_eq!(listed[1].state["id"], "a2");
    assert!(
        w.sessions
            .list(&user("agent", "carol"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn delete_removes_the_session_and_is_idempotent(w: &World) {
    let k = key("agent", "alice", "gone");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("gone"))
        .await
        .unwrap();
    w.sessions
        .append_event(&k, Event::text("user", "hello"), None)
        .await
        .unwrap();
    w.sessions.delete(&k).await.unwrap();
    assert!(
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.sessions
            .list(&user("agent", "alice"))
            .await
            .unwrap()
            .is_empty()
    );
    w.sessions.delete(&k).await.unwrap();
    w.sessions
        .delete(&key("agent", "nobody", "never"))
        .await
        .unwrap();
    // A new session with the same id starts empty.
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("gone"))
        .await
        .unwrap();
    let fresh = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert!(fresh.events.is_empty());
    assert_eq!(fresh.last_seq, 0);
    if let Some(dump) = w.dump().await {
        assert!(!dump.contains("hello"), "deleted events are gone:\n{dump}");
    }
}

pub async fn appends_get_gapless_sequence_numbers_and_are_read_in_order(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    for i in 1..=5u64 {
        let mut e = Event::text("user", &format!("turn {i}"));
        e.invocation_id = Some(format!("inv-{i}"));
        e.extra.insert("branch".into(), json!("root").into());
        let appended = w.sessions.append_event(&k, e, None).await.unwrap();
        assert_eq!(appended.seq, Some(i));
        assert_eq!(appended.event.seq, i);
    }
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seq, 5);
    let seqs: Vec<u64> = s.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(s.events[2].text_content(), "turn 3");
    assert_eq!(s.events[2].invocation_id.as_deref(), Some("inv-3"));
    assert_eq!(
        s.events[2].extra["branch"], "root",
        "unknown fields are kept"
    );
    assert_eq!(s.last_update_time, s.events[4].time());
}

pub async fn num_recent_events_returns_the_last_n(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    for i in 1..=30 {
        w.sessions
            .append_event(&k, Event::text("user", &format!("m{i}")), None)
            .await
            .unwrap();
    }
    let k = &k;
    let seqs = |n| async move {
        w.sessions
            .get(k, GetSession::recent(n))
            .await
            .unwrap()
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(3).await, [28, 29, 30]);
    assert_eq!(seqs(1).await, [30]);
    assert!(seqs(0).await.is_empty(), "0 means no events");
    assert_eq!(seqs(100).await, (1..=30).collect::<Vec<_>>());
}

pub async fn after_timestamp_returns_events_at_or_after_it(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let base = 1_900_000_000.0;
    for i in 0..10 {
        w.sessions
            .append_event(&k, at(base + f64::from(i), &format!("m{i}")), None)
            .await
            .unwrap();
    }
    let k = &k;
    let get = |q| async move {
        w.sessions
            .get(k, q)
            .await
            .unwrap()
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(get(GetSession::after(base + 7.0, None)).await, [8, 9, 10]);
    assert_eq!(get(GetSession::after(base + 6.5, None)).await, [8, 9, 10]);
    assert_eq!(get(GetSession::after(base + 2.0, Some(2))).await, [9, 10]);
    assert_eq!(get(GetSession::after(base - 1.0, None)).await.len(), 10);
    assert!(get(GetSession::after(base + 100.0, None)).await.is_empty());
}

pub async fn timestamps_are_stored_as_given_and_after_timestamp_reads_index_times(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    // Sub-microsecond digits, as Python's time.time() gives them.
    let base = 1_900_000_000.123_456_7;
    let first = w
        .sessions
        .append_event(&k, at(base, "a"), None)
        .await
        .unwrap();
    assert_eq!(first.timestamp.to_bits(), base.to_bits());
    let older = w
        .sessions
        .append_event(&k, at(base - 50.0, "b"), None)
        .await
        .unwrap();
    assert_eq!(older.timestamp, base - 50.0, "kept as given, not clamped");
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.events[0].time().to_bits(), base.to_bits());
    assert_eq!(s.events[1].time(), base - 50.0);
    assert_eq!(s.last_update_time, base - 50.0, "the last event's, as ADK");
    // The older event's index time is its predecessor's: a suffix still.
    let after = |t: f64| async move {
        w.sessions
            .get(&key("agent", "alice", "s"), GetSession::after(t, None))
            .await
            .unwrap()
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(after(base).await, [1, 2]);
    assert_eq!(after(base - 60.0).await, [1, 2]);
    assert!(after(f64::from_bits(base.to_bits() + 1)).await.is_empty());
    let zero = w
        .sessions
        .append_event(&k, at(0.0, "epoch"), None)
        .await
        .unwrap();
    assert_eq!(zero.timestamp, 0.0, "0 is a timestamp, not now");
}

pub async fn partial_false_and_unknown_fields_are_kept_exactly(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(
            &user("agent", "alice"),
            serde_json::from_str(r#"{"big": 1180591620717411303425, "f": 8954178849140113.0, "app:neg": -36893488147419103233}"#).unwrap(),
            Some("s"),
        )
        .await
        .unwrap();
    let event: Event = serde_json::from_str(
        r#"{"id": "e1", "author": "user", "partial": false, "timestamp": 1790000000.0,
            "custom_metadata": {"big": 1180591620717411303425, "tiny": -3.5233447033367526e-12},
            "avg_logprobs": -0.30000000000000004,
            "actions": {"state_delta": {"user:n": 18446744073709551617}, "escalate": true}}"#,
    )
    .unwrap();
    w.sessions.append_event(&k, event, None).await.unwrap();
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    let e = &s.events[0];
    assert_eq!(e.partial, Some(false), "false is not absent");
    assert_eq!(
        e.extra["custom_metadata"].get(),
        r#"{"big": 1180591620717411303425, "tiny": -3.5233447033367526e-12}"#
    );
    assert_eq!(e.extra["avg_logprobs"].get(), "-0.30000000000000004");
    assert_eq!(e.actions.other["escalate"], true);
    assert_eq!(s.state["big"].get(), "1180591620717411303425");
    assert_eq!(s.state["f"].get(), "8954178849140113.0");
    assert_eq!(s.state["app:neg"].get(), "-36893488147419103233");
    assert_eq!(s.state["user:n"].get(), "18446744073709551617");
    let listed = w.sessions.list(&user("agent", "alice")).await.unwrap();
    assert_eq!(listed[0].state["big"].get(), "1180591620717411303425");
}

pub async fn an_event_id_appended_twice_is_stored_once(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let mut e = Event::text("user", "hello").with_state("count", json!(1));
    e.id = "retry-me".into();
    let first = w
        .sessions
        .append_event(&k, e.clone(), Some(0))
        .await
        .unwrap();
    assert_eq!((first.seq, first.duplicate), (Some(1), false));
    let before = w.dump().await;
    // The retry of an append whose reply was lost: its expected_seq is
    // stale now, and its delta must not be applied twice.
    let mut retry = e.clone().with_state("count", json!(2));
    retry.timestamp = Some(1.0);
    let again = w.sessions.append_event(&k, retry, Some(0)).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, Some(1));
    assert_eq!(again.event.text_content(), "hello");
    assert_eq!(again.timestamp, first.timestamp);
    assert_eq!(w.dump().await, before, "a repeated id writes nothing");
    let other = w
        .sessions
        .append_event(&k, Event::text("user", "next"), Some(1))
        .await
        .unwrap();
    assert_eq!((other.seq, other.duplicate), (Some(2), false));
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.state["count"], 1);
    // The same id in another session is another event.
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s2"))
        .await
        .unwrap();
    let elsewhere = w
        .sessions
        .append_event(&key("agent", "alice", "s2"), e, None)
        .await
        .unwrap();
    assert!(!elsewhere.duplicate);
}

pub async fn list_app_returns_every_users_sessions_oldest_update_first(w: &World) {
    for (u, id) in [("u2", "b"), ("u1", "a"), ("u1", "c")] {
        w.sessions
            .create(&user("agent", u), state(&[("id", json!(id))]), Some(id))
            .await
            .unwrap();
    }
    w.sessions
        .create(&user("other", "u1"), State::new(), Some("x"))
        .await
        .unwrap();
    w.sessions
        .append_event(
            &key("agent", "u2", "b"),
            Event::text("user", "late")
                .at(2_000_000_000.0)
                .with_state("user:home", json!("Porto")),
            None,
        )
        .await
        .unwrap();
    w.sessions
        .append_event(
            &key("agent", "u1", "c"),
            Event::text("user", "early").at(1_000_000_000.0),
            None,
        )
        .await
        .unwrap();
    let app = AppKey::new("agent").unwrap();
    let listed = w.sessions.list_app(&app).await.unwrap();
    let who: Vec<(&str, &str)> = listed
        .iter()
        .map(|s| (s.user_id.as_str(), s.id.as_str()))
        .collect();
    assert_eq!(who, [("u1", "c"), ("u1", "a"), ("u2", "b")]);
    assert!(listed.iter().all(|s| s.events.is_empty()));
    assert_eq!(listed[2].state["user:home"], "Porto");
    assert!(
        !listed[0].state.contains_key("user:home"),
        "each user's own state"
    );
    assert_eq!(listed[1].state["id"], "a");
    let mine = w.sessions.list(&user("agent", "u1")).await.unwrap();
    let ids: Vec<&str> = mine.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["c", "a"], "oldest update first");
    assert!(
        w.sessions
            .list_app(&AppKey::new("nobody").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    w.sessions.delete(&key("agent", "u2", "b")).await.unwrap();
    let listed = w.sessions.list_app(&app).await.unwrap();
    assert_eq!(listed.len(), 2);
}

pub async fn user_state_is_readable_without_a_session(w: &World) {
    let u = user("agent", "alice");
    assert!(w.sessions.user_state(&u).await.unwrap().is_empty());
    w.sessions
        .create(
            &u,
            state(&[("user:name", json!("Alice")), ("step", json!(1))]),
            Some("s"),
        )
        .await
        .unwrap();
    w.sessions
        .append_event(
            &key("agent", "alice", "s"),
            Event::text("user", "x").with_state("user:count", json!(2)),
            None,
        )
        .await
        .unwrap();
    w.sessions
        .delete(&key("agent", "alice", "s"))
        .await
        .unwrap();
    let got = w.sessions.user_state(&u).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got["name"], "Alice");
    assert_eq!(got["count"], 2);
    assert!(
        w.sessions
            .user_state(&user("agent", "bob"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn app_state_is_shared_by_users_and_user_state_by_sessions(w: &World) {
    let alice1 = key("agent", "alice", "a1");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("a1"))
        .await
        .unwrap();
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("a2"))
        .await
        .unwrap();
    w.sessions
        .create(&user("agent", "bob"), State::new(), Some("b1"))
        .await
        .unwrap();
    w.sessions
        .create(&user("other", "bob"), State::new(), Some("o1"))
        .await
        .unwrap();
    let e = Event::text("agent", "noted")
        .with_state("app:greeting", json!("olá"))
        .with_state("user:lang", json!("pt"))
        .with_state("topic", json!("tours"));
    w.sessions.append_event(&alice1, e, None).await.unwrap();

    let get = |k: SessionKey| async move {
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .unwrap()
            .state
    };
    let a1 = get(alice1.clone()).await;
    assert_eq!(a1["app:greeting"], "olá");
    assert_eq!(a1["user:lang"], "pt");
    assert_eq!(a1["topic"], "tours");
    let a2 = get(key("agent", "alice", "a2")).await;
    assert_eq!(
        a2["app:greeting"], "olá",
        "app state reaches the user's other session"
    );
    assert_eq!(
        a2["user:lang"], "pt",
        "user state reaches the user's other session"
    );
    assert!(
        !a2.contains_key("topic"),
        "session state stays in its session"
    );
    let b1 = get(key("agent", "bob", "b1")).await;
    assert_eq!(b1["app:greeting"], "olá", "app state reaches another user");
    assert!(
        !b1.contains_key("user:lang"),
        "user state stays with its user"
    );
    let o1 = get(key("other", "bob", "o1")).await;
    assert!(o1.is_empty(), "nothing crosses to another app: {o1:?}");
    // A session created later sees the shared state too.
    let late = w
        .sessions
        .create(&user("agent", "carol"), State::new(), None)
        .await
        .unwrap();
    assert_eq!(late.state["app:greeting"], "olá");
}

pub async fn temp_state_is_returned_by_the_append_but_never_stored(w: &World) {
    let k = key("agent", "alice", "s");
    let mut session = w
        .sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let e = Event::text("agent", "thinking")
        .with_state("temp:scratchpad", json!("draft-9f2"))
        .with_state("kept", json!("kept-value-7c1"));
    let appended = w.sessions.append_event(&k, e, None).await.unwrap();
    assert_eq!(appended.state_delta["temp:scratchpad"], "draft-9f2");
    assert!(
        !appended
            .event
            .actions
            .state_delta
            .contains_key("temp:scratchpad")
    );
    session.apply(&appended);
    assert_eq!(
        session.state["temp:scratchpad"], "draft-9f2",
        "applied to the caller's session"
    );

    let stored = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.state.contains_key("temp:scratchpad"));
    assert!(
        !stored.events[0]
            .actions
            .state_delta
            .contains_key("temp:scratchpad")
    );
    assert_eq!(stored.state["kept"], "kept-value-7c1");
    if let Some(dump) = w.dump().await {
        assert!(
            dump.contains("kept-value-7c1"),
            "the dump shows stored data:\n{dump}"
        );
        assert!(
            !dump.contains("draft-9f2"),
            "a temp: value was stored:\n{dump}"
        );
        assert!(
            !dump.contains("scratchpad"),
            "a temp: key was stored:\n{dump}"
        );
    }
}

pub async fn partial_events_are_not_stored(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let mut e = Event::text("agent", "stream-fragment-31d").with_state("x", json!(1));
    e.partial = Some(true);
    let appended = w.sessions.append_event(&k, e, None).await.unwrap();
    assert_eq!(appended.seq, None);
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert!(s.events.is_empty());
    assert_eq!(s.last_seq, 0);
    assert!(!s.state.contains_key("x"));
    if let Some(dump) = w.dump().await {
        assert!(!dump.contains("stream-fragment-31d"), "{dump}");
    }
    let mut e = Event::text("agent", "fragment");
    e.partial = Some(true);
    let err = w
        .sessions
        .append_event(&key("agent", "alice", "absent"), e, None)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::NotFound);
}

pub async fn append_to_an_absent_session_fails_and_creates_nothing(w: &World) {
    let before = w.dump().await;
    let k = key("agent", "alice", "never-created");
    let e = Event::text("user", "hello").with_state("app:x", json!(1));
    let err = w.sessions.append_event(&k, e, None).await.unwrap_err();
    assert_eq!(err, StoreError::NotFound);
    assert!(
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.sessions
            .list(&user("agent", "alice"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.dump().await, before, "nothing was written");
}

pub async fn stale_expected_seq_fails_and_writes_nothing(w: &World) {
    let k = key("agent", "alice", "s");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let first = w
        .sessions
        .append_event(&k, Event::text("user", "one"), Some(0))
        .await
        .unwrap();
    assert_eq!(first.seq, Some(1));
    w.sessions
        .append_event(&k, Event::text("user", "two"), Some(1))
        .await
        .unwrap();
    let before = w.dump().await;
    let err = w
        .sessions
        .append_event(
            &k,
            Event::text("user", "late").with_state("k", json!(1)),
            Some(1),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Stale {
            expected: 1,
            current: 2
        }
    );
    assert_eq!(w.dump().await, before, "a stale append writes nothing");
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seq, 2);
    assert!(!s.state.contains_key("k"));
}

pub async fn a_session_is_identified_by_app_user_and_id(w: &World) {
    for (app, u) in [("agent", "alice"), ("agent", "bob"), ("other", "alice")] {
        w.sessions
            .create(
                &user(app, u),
                state(&[("owner", json!(format!("{app}/{u}")))]),
                Some("same"),
            )
            .await
            .unwrap();
    }
    w.sessions
        .append_event(
            &key("agent", "bob", "same"),
            Event::text("user", "bob's turn"),
            None,
        )
        .await
        .unwrap();
    for (app, u, events) in [
        ("agent", "alice", 0),
        ("agent", "bob", 1),
        ("other", "alice", 0),
    ] {
        let s = w
            .sessions
            .get(&key(app, u, "same"), GetSession::all())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.state["owner"], format!("{app}/{u}"));
        assert_eq!(s.events.len(), events, "{app}/{u}");
    }
    w.sessions
        .delete(&key("agent", "alice", "same"))
        .await
        .unwrap();
    assert!(
        w.sessions
            .get(&key("agent", "bob", "same"), GetSession::all())
            .await
            .unwrap()
            .is_some()
    );
}

/// Ids built to collide with each other once naively joined with `:`, to
/// widen a glob, to change a cluster hash tag, or to be long.
pub fn crafted_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "a",
        "a:b",
        "a:b:c",
        "b",
        "*",
        "a*",
        "{agent}",
        "}",
        "{",
        "a}:{b",
        "%3A",
        ":",
        "日本語",
        "ünïcødé",
        "emoji 🦀",
        "..",
        "a b",
        "\\",
        "[x]?",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    ids.push("x".repeat(MAX_ID_BYTES));
    ids.push(format!("{}:", "y".repeat(MAX_ID_BYTES - 1)));
    ids
}

pub async fn crafted_ids_reach_only_their_own_sessions(w: &World) {
    let ids = crafted_ids();
    // Every crafted user gets a session with every... (a subset keeps it quick).
    for u in &ids {
        for id in ids.iter().take(6) {
            let owner = format!("{u}|{id}");
            w.sessions
                .create(
                    &user("agent", u),
                    state(&[("owner", json!(owner)), ("user:who", json!(u))]),
                    Some(id),
                )
                .await
                .unwrap();
            w.sessions
                .append_event(&key("agent", u, id), Event::text("user", &owner), None)
                .await
                .unwrap();
        }
    }
    for u in &ids {
        let mut listed: Vec<String> = w
            .sessions
            .list(&user("agent", u))
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        listed.sort();
        let mut expected: Vec<String> = ids.iter().take(6).cloned().collect();
        expected.sort();
        assert_eq!(listed, expected, "user {u:?} sees exactly its sessions");
        for id in ids.iter().take(6) {
            let s = w
                .sessions
                .get(&key("agent", u, id), GetSession::all())
                .await
                .unwrap()
                .unwrap();
            let owner = format!("{u}|{id}");
            assert_eq!(s.state["owner"], json!(owner));
            assert_eq!(s.state["user:who"], json!(u));
            assert_eq!(s.events.len(), 1);
            assert_eq!(s.events[0].text_content(), owner);
        }
    }
    // The same ids under another app see none of it.
    for u in &ids {
        assert!(
            w.sessions
                .list(&user("agent2", u))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

pub async fn invalid_input_is_rejected_and_writes_nothing(w: &World) {
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("s"))
        .await
        .unwrap();
    let before = w.dump().await;
    for (app, u, id) in [
        ("bad:app", "u", "s"),
        ("{agent}", "u", "s"),
        ("", "u", "s"),
        ("agent", "", "s"),
        ("agent", "u", ""),
        ("agent", "u\n", "s"),
        ("agent", "u", "s\u{0}"),
    ] {
        assert!(
            matches!(SessionKey::new(app, u, id), Err(StoreError::Invalid { .. })),
            "{app:?} {u:?} {id:?}"
        );
    }
    let too_long = "z".repeat(MAX_ID_BYTES + 1);
    assert!(matches!(
        SessionKey::new("agent", "u", &too_long),
        Err(StoreError::Invalid {
            field: "session_id",
            ..
        })
    ));
    assert!(matches!(
        UserKey::new("agent", &too_long),
        Err(StoreError::Invalid {
            field: "user_id",
            ..
        })
    ));

    let u = user("agent", "alice");
    let k = key("agent", "alice", "s");
    let cases: Vec<(&str, Result<(), StoreError>)> = vec![
        (
            "create with a too long id",
            w.sessions
                .create(&u, State::new(), Some(&too_long))
                .await
                .map(drop),
        ),
        (
            "create with an empty app: key",
            w.sessions
                .create(&u, state(&[("app:", json!(1))]), Some("n1"))
                .await
                .map(drop),
        ),
        (
            "create with a control character in a key",
            w.sessions
                .create(&u, state(&[("a\u{7}", json!(1))]), Some("n2"))
                .await
                .map(drop),
        ),
        (
            "append with a negative timestamp",
            w.sessions
                .append_event(&k, at(-5.0, "x"), None)
                .await
                .map(drop),
        ),
        ("append with a too long event id", {
            let mut e = Event::text("user", "x");
            e.id = too_long.clone();
            w.sessions.append_event(&k, e, None).await.map(drop)
        }),
        (
            "append with an empty user: key",
            w.sessions
                .append_event(
                    &k,
                    Event::text("u", "x").with_state("user:", json!(1)),
                    None,
                )
                .await
                .map(drop),
        ),
        (
            "append with a too long state key",
            w.sessions
                .append_event(
                    &k,
                    Event::text("u", "x").with_state(&too_long, json!(1)),
                    None,
                )
                .await
                .map(drop),
        ),
    ];
    for (what, result) in cases {
        assert!(
            matches!(result, Err(StoreError::Invalid { .. })),
            "{what}: {result:?}"
        );
    }
    assert_eq!(w.dump().await, before, "rejected input wrote nothing");
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seq, 0);
}

pub async fn hundred_writers_append_ten_thousand_events_without_gaps(w: &World) {
    const WRITERS: usize = 100;
    const APPENDS: usize = 100;
    let k = key("agent", "alice", "busy");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("busy"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = w.sessions.clone();
            let k = k.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    let mut e = Event::text(&format!("w{writer}"), &i.to_string());
                    e.extra.insert("writer".into(), json!(writer).into());
                    e.extra.insert("n".into(), json!(i).into());
                    store.append_event(&k, e, None).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.events.len(), WRITERS * APPENDS);
    assert_eq!(s.last_seq, (WRITERS * APPENDS) as u64);
    let seqs: Vec<u64> = s.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=(WRITERS * APPENDS) as u64).collect::<Vec<_>>());
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut ids = BTreeSet::new();
    for e in &s.events {
        let writer = e.extra["writer"].value().as_u64().unwrap();
        let n = e.extra["n"].value().as_u64().unwrap();
        let expected = next.entry(writer).or_insert(0);
        assert_eq!(n, *expected, "writer {writer}'s events are in its order");
        *expected += 1;
        assert!(ids.insert(e.id.clone()), "event ids are distinct");
    }
    assert_eq!(next.len(), WRITERS);
    assert!(next.values().all(|n| *n == APPENDS as u64));
    let timestamps: Vec<f64> = s.events.iter().map(Event::time).collect();
    assert!(
        timestamps.iter().all(|t| *t > 1.6e9),
        "every event was stamped with now"
    );
}

pub async fn expired_session_is_gone_and_an_append_does_not_bring_it_back(w: &World) {
    let k = key("agent", "alice", "short");
    w.sessions
        .create(
            &user("agent", "alice"),
            state(&[("app:shared", json!(1))]),
            Some("short"),
        )
        .await
        .unwrap();
    w.sessions
        .append_event(&k, Event::text("user", "hi"), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert!(
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .is_none()
    );
    let err = w
        .sessions
        .append_event(&k, Event::text("user", "anyone there?"), None)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::NotFound);
    assert!(
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.sessions
            .list(&user("agent", "alice"))
            .await
            .unwrap()
            .is_empty()
    );
    // The id can be used again, from scratch.
    let again = w
        .sessions
        .create(&user("agent", "alice"), State::new(), Some("short"))
        .await
        .unwrap();
    assert_eq!(again.last_seq, 0);
}

pub async fn appends_keep_a_session_alive_past_its_first_ttl(w: &World) {
    let k = key("agent", "alice", "sliding");
    w.sessions
        .create(&user("agent", "alice"), State::new(), Some("sliding"))
        .await
        .unwrap();
    // Six appends 400 ms apart: 2.4 s in all, more than twice the 1 s TTL.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        w.sessions
            .append_event(&k, Event::text("user", &i.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("append {i} after {} ms: {e}", 400 * (i + 1)));
    }
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.events.len(), 6);
}

pub async fn concurrent_appends_updating_shared_state_all_succeed(w: &World) {
    // Twenty sessions of one app (two per user) whose appends all write the
    // same app: and user: keys: they contend on shared rows or keys, never
    // on a session, and every append must still succeed exactly once.
    let mut keys = Vec::new();
    for n in 0..20 {
        let u = format!("u{}", n / 2);
        let id = format!("s{n}");
        w.sessions
            .create(&user("agent", &u), State::new(), Some(&id))
            .await
            .unwrap();
        keys.push(key("agent", &u, &id));
    }
    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, k)| {
            let store = w.sessions.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let e = Event::text("agent", "tick")
                        .with_state("app:last_writer", json!(n))
                        .with_state("app:z_other", json!(i))
                        .with_state("user:last", json!(i))
                        .with_state("mine", json!(i));
                    store.append_event(&k, e, None).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for k in &keys {
        let s = w.sessions.get(k, GetSession::all()).await.unwrap().unwrap();
        assert_eq!(s.last_seq, 20);
        assert_eq!(s.state["mine"], 19);
        assert_eq!(s.state["user:last"], 19);
        assert_eq!(s.state["app:z_other"], 19);
        assert!(s.state["app:last_writer"].value().as_u64().unwrap() < 20);
    }
}
