//! Identities compare byte for byte on every backend: ids that a collation
//! would take for one (a trailing or leading space, another case, a
//! composed against a decomposed accent) are different apps, users,
//! sessions, state keys and memories, through every method that takes one.

use std::collections::BTreeSet;

use serde_json::json;
use shared::store::session::{AppKey, Event, GetSession, SessionKey, State, UserKey};

use crate::World;

/// Ids that are one under a PAD SPACE, case-insensitive or normalising
/// comparison, and different byte strings. `jos\u{e9}` is NFC (U+00E9),
/// `jose\u{301}` NFD (`e` + U+0301).
pub const LOOKALIKES: [&str; 7] = [
    "alice",
    "alice ",
    " alice",
    "Alice",
    "ALICE",
    "jos\u{e9}",
    "jose\u{301}",
];

fn state(pairs: &[(&str, serde_json::Value)]) -> State {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect()
}

fn with_id(mut event: Event, id: &str) -> Event {
    event.id = id.to_owned();
    event
}

pub async fn users_that_differ_in_any_byte_are_different_users(w: &World) {
    for u in LOOKALIKES {
        let user = UserKey::new("agent", u).unwrap();
        let created = w
            .sessions
            .create(
                &user,
                state(&[("owner", json!(u)), ("user:owner", json!(u))]),
                Some("s"),
            )
            .await
            .unwrap_or_else(|e| panic!("create for {u:?}: {e}"));
        assert_eq!(created.user_id, u);
    }
    let alice_space = SessionKey::new("agent", "alice ", "s").unwrap();
    let delta = Event::text("user", "only alice-space")
        .with_state("user:seen", json!(true))
        .with_state("turn", json!(1));
    w.sessions
        .append_event(&alice_space, delta, None)
        .await
        .unwrap();
    for u in LOOKALIKES {
        let key = SessionKey::new("agent", u, "s").unwrap();
        let s = w
            .sessions
            .get(&key, GetSession::all())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{u:?} has no session"));
        assert_eq!(s.user_id, u);
        assert_eq!(s.state["owner"], json!(u), "{u:?}");
        assert_eq!(
            s.state["user:owner"],
            json!(u),
            "{u:?}: user state is per user"
        );
        let mine = u == "alice ";
        assert_eq!(s.events.len(), usize::from(mine), "{u:?}");
        assert_eq!(s.state.contains_key("user:seen"), mine, "{u:?}");
        assert_eq!(s.state.contains_key("turn"), mine, "{u:?}");
        let user = UserKey::new("agent", u).unwrap();
        let listed = w.sessions.list(&user).await.unwrap();
        assert_eq!(listed.len(), 1, "{u:?}: {listed:?}");
        assert_eq!(listed[0].user_id, u);
        assert_eq!(listed[0].state["user:owner"], json!(u));
        let user_state = w.sessions.user_state(&user).await.unwrap();
        assert_eq!(user_state["owner"], json!(u), "{u:?}");
        assert_eq!(user_state.contains_key("seen"), mine, "{u:?}");
    }
    let everyone = w
        .sessions
        .list_app(&AppKey::new("agent").unwrap())
        .await
        .unwrap();
    let users: BTreeSet<&str> = everyone.iter().map(|s| s.user_id.as_str()).collect();
    assert_eq!(users, LOOKALIKES.into_iter().collect());
    for s in &everyone {
        assert_eq!(s.state["user:owner"], json!(s.user_id));
    }
    w.sessions.delete(&alice_space).await.unwrap();
    for u in LOOKALIKES {
        let key = SessionKey::new("agent", u, "s").unwrap();
        let present = w
            .sessions
            .get(&key, GetSession::all())
            .await
            .unwrap()
            .is_some();
        assert_eq!(present, u != "alice ", "{u:?}");
    }
}

pub async fn session_ids_and_apps_that_differ_in_any_byte_are_apart(w: &World) {
    let user = UserKey::new("agent", "bob").unwrap();
    for id in LOOKALIKES {
        w.sessions
            .create(&user, state(&[("id", json!(id))]), Some(id))
            .await
            .unwrap_or_else(|e| panic!("create {id:?}: {e}"));
        let key = SessionKey::new("agent", "bob", id).unwrap();
        w.sessions
            .append_event(&key, Event::text("user", &format!("in {id}")), None)
            .await
            .unwrap();
    }
    for id in LOOKALIKES {
        let key = SessionKey::new("agent", "bob", id).unwrap();
        let s = w
            .sessions
            .get(&key, GetSession::all())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.state["id"], json!(id));
        assert_eq!(s.events.len(), 1, "{id:?}");
        assert_eq!(s.events[0].text_content(), format!("in {id}"));
    }
    let ids: BTreeSet<String> = w
        .sessions
        .list(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, LOOKALIKES.iter().map(|s| (*s).to_owned()).collect());
    w.sessions
        .delete(&SessionKey::new("agent", "bob", "alice ").unwrap())
        .await
        .unwrap();
    assert_eq!(
        w.sessions.list(&user).await.unwrap().len(),
        LOOKALIKES.len() - 1
    );
    assert!(
        w.sessions
            .get(
                &SessionKey::new("agent", "bob", "alice").unwrap(),
                GetSession::all()
            )
            .await
            .unwrap()
            .is_some()
    );

    // Apps are ASCII; case is the only lookalike they can have.
    for app in ["agent", "Agent", "AGENT"] {
        let user = UserKey::new(app, "carol").unwrap();
        w.sessions
            .create(
                &user,
                state(&[("app:which", json!(app)), ("user:which", json!(app))]),
                Some("s"),
            )
            .await
            .unwrap_or_else(|e| panic!("create in {app}: {e}"));
    }
    for app in ["agent", "Agent", "AGENT"] {
        let s = w
            .sessions
            .get(
                &SessionKey::new(app, "carol", "s").unwrap(),
                GetSession::all(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.state["app:which"], json!(app));
        assert_eq!(s.state["user:which"], json!(app));
        let listed = w
            .sessions
            .list_app(&AppKey::new(app).unwrap())
            .await
            .unwrap();
        assert!(listed.iter().all(|s| s.app_name == app), "{listed:?}");
    }
}

pub async fn state_keys_that_differ_in_any_byte_are_different_keys(w: &World) {
    let mut pairs = Vec::new();
    for (i, k) in LOOKALIKES.iter().enumerate() {
        pairs.push(((*k).to_owned(), json!(i)));
        pairs.push((format!("app:{k}"), json!(i)));
        pairs.push((format!("user:{k}"), json!(i)));
    }
    let initial: State = pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let user = UserKey::new("agent", "dave").unwrap();
    let created = w.sessions.create(&user, initial, Some("s")).await.unwrap();
    assert_eq!(created.state.len(), pairs.len(), "{:?}", created.state);
    let key = SessionKey::new("agent", "dave", "s").unwrap();
    let delta = Event::text("user", "delta")
        .with_state("alice ", json!("changed"))
        .with_state("app:alice ", json!("changed"))
        .with_state("user:jose\u{301}", json!("changed"));
    w.sessions.append_event(&key, delta, None).await.unwrap();
    let s = w
        .sessions
        .get(&key, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state.len(), pairs.len(), "{:?}", s.state);
    for (k, v) in &pairs {
        let changed = ["alice ", "app:alice ", "user:jose\u{301}"].contains(&k.as_str());
        let expected = if changed { json!("changed") } else { v.clone() };
        assert_eq!(s.state[k.as_str()], expected, "{k:?}");
    }
    let user_state = w.sessions.user_state(&user).await.unwrap();
    assert_eq!(user_state.len(), LOOKALIKES.len(), "{user_state:?}");
    assert_eq!(user_state["jose\u{301}"], json!("changed"));
    assert_eq!(user_state["jos\u{e9}"], json!(5));
}

pub async fn memories_of_users_and_event_ids_that_differ_in_any_byte_are_apart(w: &World) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for (i, u) in LOOKALIKES.iter().enumerate() {
        let user = UserKey::new("agent", u).unwrap();
        let event = with_id(
            Event::text("user", &format!("secret number{i}")).at(now - 10.0 + i as f64),
            "e",
        );
        assert_eq!(
            w.memory.add_events(&user, "s", &[event]).await.unwrap(),
            1,
            "{u:?}"
        );
    }
    for (i, u) in LOOKALIKES.iter().enumerate() {
        let user = UserKey::new("agent", u).unwrap();
        let hits = w.memory.search(&user, "secret", 10).await.unwrap();
        let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(texts, [format!("secret number{i}")], "{u:?}");
    }
    assert_eq!(
        w.memory
            .delete(&UserKey::new("agent", "alice ").unwrap(), "e")
            .await
            .unwrap(),
        1
    );
    for u in LOOKALIKES {
        let user = UserKey::new("agent", u).unwrap();
        let left = w.memory.search(&user, "secret", 10).await.unwrap().len();
        assert_eq!(left, usize::from(u != "alice "), "{u:?}");
    }

    // One user: event ids and session ids that differ in a byte are
    // different entries; deleting one event id leaves the others.
    let erin = UserKey::new("agent", "erin").unwrap();
    let events: Vec<Event> = LOOKALIKES
        .iter()
        .enumerate()
        .map(|(i, id)| {
            with_id(
                Event::text("user", &format!("memo{i}")).at(now - 10.0 + i as f64),
                id,
            )
        })
        .collect();
    for session in ["s", "s ", "S"] {
        assert_eq!(
            w.memory.add_events(&erin, session, &events).await.unwrap(),
            LOOKALIKES.len()
        );
    }
    let all = LOOKALIKES
        .iter()
        .enumerate()
        .map(|(i, _)| format!("memo{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let hits = w.memory.search(&erin, &all, 100).await.unwrap();
    assert_eq!(hits.len(), 3 * LOOKALIKES.len(), "{hits:?}");
    let sessions: BTreeSet<&str> = hits.iter().map(|h| h.session_id.as_str()).collect();
    assert_eq!(sessions, ["S", "s", "s "].into_iter().collect());
    let ids: BTreeSet<&str> = hits.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(ids, LOOKALIKES.into_iter().collect());
    assert_eq!(w.memory.delete(&erin, "jose\u{301}").await.unwrap(), 3);
    let hits = w.memory.search(&erin, &all, 100).await.unwrap();
    assert_eq!(hits.len(), 3 * (LOOKALIKES.len() - 1));
    assert!(hits.iter().all(|h| h.event_id != "jose\u{301}"));
    assert!(hits.iter().any(|h| h.event_id == "jos\u{e9}"));
}

/// A database migrated before 0004, with rows in it, is brought to
/// byte-for-byte identities by the migration, its rows intact: the
/// upgrade path of a deployment that already holds sessions.
pub async fn migration_0004_keeps_existing_rows_and_tells_lookalikes_apart(
    url: &shared::Secret,
    mysql: bool,
) {
    use std::borrow::Cow;

    use shared::store::memory::{MemoryStore, SqlMemoryStore};
    use shared::store::session::{SessionStore, SqlSessionStore};
    use shared::store::sql::{SqlDatabase, SqlSettings};
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};

    let files: [(i64, &str, &'static str); 3] = if mysql {
        [
            (
                1,
                "sessions",
                include_str!("../../migrations/mysql/0001_sessions.sql"),
            ),
            (
                2,
                "memory",
                include_str!("../../migrations/mysql/0002_memory.sql"),
            ),
            (
                3,
                "adk_fidelity",
                include_str!("../../migrations/mysql/0003_adk_fidelity.sql"),
            ),
        ]
    } else {
        [
            (
                1,
                "sessions",
                include_str!("../../migrations/postgres/0001_sessions.sql"),
            ),
            (
                2,
                "memory",
                include_str!("../../migrations/postgres/0002_memory.sql"),
            ),
            (
                3,
                "adk_fidelity",
                include_str!("../../migrations/postgres/0003_adk_fidelity.sql"),
            ),
        ]
    };
    let old = Migrator::with_migrations(
        files
            .into_iter()
            .map(|(v, name, sql)| {
                Migration::new(
                    v,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
    let db = SqlDatabase::connect_lazy(url, SqlSettings::default()).unwrap();
    old.run(db.pool()).await.unwrap();
    // Rows written by the old schema: alice's session, state and memory.
    let sessions = SqlSessionStore::new(db.clone());
    let alice = UserKey::new("agent", "alice").unwrap();
    sessions
        .create(&alice, state(&[("user:lang", json!("pt"))]), Some("s"))
        .await
        .unwrap();
    let key = SessionKey::new("agent", "alice", "s").unwrap();
    sessions
        .append_event(&key, Event::text("user", "hello from before"), None)
        .await
        .unwrap();
    let memory = SqlMemoryStore::new(db.clone(), std::time::Duration::from_secs(86_400));
    let before = sessions
        .get(&key, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    memory.add_session(&before).await.unwrap();

    db.migrate().await.unwrap();
    let after = sessions
        .get(&key, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.events.len(), 1);
    assert_eq!(after.state["user:lang"], json!("pt"));
    assert_eq!(memory.search(&alice, "hello", 10).await.unwrap().len(), 1);
    let spaced = UserKey::new("agent", "alice ").unwrap();
    assert!(
        sessions
            .get(
                &SessionKey::new("agent", "alice ", "s").unwrap(),
                GetSession::all()
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        memory
            .search(&spaced, "hello", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(sessions.user_state(&spaced).await.unwrap().is_empty());
    sessions
        .create(&spaced, State::new(), Some("s"))
        .await
        .expect("alice-space is a user of her own after 0004");
    assert_eq!(sessions.list(&alice).await.unwrap().len(), 1);
}
