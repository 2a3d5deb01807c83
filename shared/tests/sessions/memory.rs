//! What every memory backend does, written once against the trait.

use shared::store::memory::MAX_LIMIT;
use shared::store::session::{Event, GetSession, Session, SessionKey, State, StoreError, UserKey};

use crate::World;

/// A session of `app`/`user` with one event per `(timestamp, text)`.
async fn session_with(
    w: &World,
    app: &str,
    user: &str,
    id: &str,
    turns: &[(f64, &str)],
) -> Session {
    let u = UserKey::new(app, user).unwrap();
    let k = SessionKey::new(app, user, id).unwrap();
    w.sessions.create(&u, State::new(), Some(id)).await.unwrap();
    for (t, text) in turns {
        let e = Event::text("user", text).at(*t);
        w.sessions.append_event(&k, e, None).await.unwrap();
    }
    w.sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub async fn search_finds_word_matches_newest_first(w: &World) {
    let t = now() - 1_000.0;
    let s = session_with(
        w,
        "agent",
        "alice",
        "trip",
        &[
            (t, "Busca tours em Paris"),
            (t + 1.0, "Hotels near the Louvre"),
            (t + 2.0, "PARIS by night: tours!"),
            (t + 3.0, "weather tomorrow"),
        ],
    )
    .await;
    assert_eq!(w.memory.add_session(&s).await.unwrap(), 4);
    let u = UserKey::new("agent", "alice").unwrap();
    let hits = w.memory.search(&u, "paris", 10).await.unwrap();
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(texts, ["PARIS by night: tours!", "Busca tours em Paris"]);
    assert_eq!(hits[0].session_id, "trip");
    assert_eq!(hits[0].author, "user");
    let any_word = w.memory.search(&u, "louvre, weather?", 10).await.unwrap();
    let texts: Vec<&str> = any_word.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(texts, ["weather tomorrow", "Hotels near the Louvre"]);
    let limited = w.memory.search(&u, "tours paris", 1).await.unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].text, "PARIS by night: tours!");
    assert!(
        w.memory.search(&u, "par", 10).await.unwrap().is_empty(),
        "whole words only"
    );
    assert!(w.memory.search(&u, "  ", 10).await.unwrap().is_empty());
}

pub async fn search_is_scoped_to_the_app_and_the_user(w: &World) {
    let t = now() - 100.0;
    for (app, user) in [("agent", "alice"), ("agent", "bob"), ("other", "alice")] {
        let s = session_with(
            w,
            app,
            user,
            "s",
            &[(t, &format!("secret of {app} {user}"))],
        )
        .await;
        w.memory.add_session(&s).await.unwrap();
    }
    for (app, user) in [("agent", "alice"), ("agent", "bob"), ("other", "alice")] {
        let hits = w
            .memory
            .search(&UserKey::new(app, user).unwrap(), "secret", 10)
            .await
            .unwrap();
        assert_eq!(hits.len(), 1, "{app}/{user}");
        assert_eq!(hits[0].text, format!("secret of {app} {user}"));
    }
    let crafted = UserKey::new("agent", "alice:*").unwrap();
    assert!(
        w.memory
            .search(&crafted, "secret", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn adding_a_session_again_does_not_duplicate_entries(w: &World) {
    let t = now() - 100.0;
    let s = session_with(w, "agent", "alice", "s", &[(t, "first visit to Lisbon")]).await;
    w.memory.add_session(&s).await.unwrap();
    let k = SessionKey::new("agent", "alice", "s").unwrap();
    let e = Event::text("user", "second visit to Lisbon").at(t + 1.0);
    w.sessions.append_event(&k, e, None).await.unwrap();
    let s = w
        .sessions
        .get(&k, GetSession::all())
        .await
        .unwrap()
        .unwrap();
    w.memory.add_session(&s).await.unwrap();
    let hits = w
        .memory
        .search(&UserKey::new("agent", "alice").unwrap(), "lisbon", 10)
        .await
        .unwrap();
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(texts, ["second visit to Lisbon", "first visit to Lisbon"]);
}

pub async fn entries_older_than_the_ttl_are_never_returned(w: &World) {
    // The worlds keep memory for the default 30 days.
    let day = 86_400.0;
    let t = now();
    let s = session_with(
        w,
        "agent",
        "alice",
        "old",
        &[
            (t - 31.0 * day, "ancient kyoto trip"),
            (t - 29.0 * day, "recent kyoto trip"),
        ],
    )
    .await;
    w.memory.add_session(&s).await.unwrap();
    let hits = w
        .memory
        .search(&UserKey::new("agent", "alice").unwrap(), "kyoto", 10)
        .await
        .unwrap();
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(texts, ["recent kyoto trip"]);
    if let Some(dump) = w.dump().await {
        // The session keeps its events; the memory must not keep the old one.
        let memory: Vec<&str> = dump.lines().filter(|l| l.contains("memory")).collect();
        assert!(memory.iter().any(|l| l.contains("recent")), "{dump}");
        assert!(
            !memory.iter().any(|l| l.contains("ancient")),
            "an expired entry was kept:\n{dump}"
        );
    }
}

pub async fn search_limit_is_validated(w: &World) {
    let u = UserKey::new("agent", "alice").unwrap();
    for limit in [0, MAX_LIMIT + 1] {
        let err = w.memory.search(&u, "x", limit).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { field: "limit", .. }),
            "{err}"
        );
    }
    assert!(
        w.memory
            .search(&u, "x", MAX_LIMIT)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_memory_keeps_the_events_whole_content(w: &World) {
    let t = now() - 10.0;
    let event: Event = serde_json::from_value(serde_json::json!({
        "id": "e-img", "author": "user", "timestamp": t,
        "content": {"role": "user", "parts": [
            {"text": "this is the floor plan"},
            {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}}
        ]}
    }))
    .unwrap();
    let u = UserKey::new("agent", "alice").unwrap();
    assert_eq!(
        w.memory
            .add_events(&u, "s1", std::slice::from_ref(&event))
            .await
            .unwrap(),
        1
    );
    let hits = w.memory.search(&u, "plan", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event_id, "e-img");
    assert_eq!(hits[0].session_id, "s1");
    assert_eq!(hits[0].content, event.content, "the whole content, as sent");
}

pub async fn events_can_be_remembered_without_a_stored_session(w: &World) {
    let t = now() - 10.0;
    let u = UserKey::new("agent", "alice").unwrap();
    let first = [Event::text("user", "the wifi password is on the fridge").at(t)];
    let mut later = Event::text("model", "noted: fridge").at(t + 1.0);
    later.id = "e2".into();
    assert_eq!(
        w.memory.add_events(&u, "elsewhere", &first).await.unwrap(),
        1
    );
    // An incremental add keeps what was remembered before.
    assert_eq!(
        w.memory
            .add_events(&u, "elsewhere", std::slice::from_ref(&later))
            .await
            .unwrap(),
        1
    );
    let hits = w.memory.search(&u, "fridge", 10).await.unwrap();
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(
        texts,
        ["noted: fridge", "the wifi password is on the fridge"]
    );
    assert!(
        w.sessions
            .get(
                &SessionKey::new("agent", "alice", "elsewhere").unwrap(),
                GetSession::all()
            )
            .await
            .unwrap()
            .is_none(),
        "no session was made"
    );
    // Adding the same event again updates its entry.
    later = Event::text("model", "noted: freezer").at(t + 1.0);
    later.id = "e2".into();
    w.memory
        .add_events(&u, "elsewhere", &[later])
        .await
        .unwrap();
    assert_eq!(w.memory.search(&u, "fridge", 10).await.unwrap().len(), 1);
    assert_eq!(w.memory.search(&u, "freezer", 10).await.unwrap().len(), 1);
    let bad = w
        .memory
        .add_events(&u, "", &[Event::text("user", "x").at(t)])
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Invalid { .. }), "{bad}");
}

pub async fn a_memory_can_be_deleted_by_event_id(w: &World) {
    let t = now() - 10.0;
    let u = UserKey::new("agent", "alice").unwrap();
    let mut keep = Event::text("user", "keep the blue umbrella").at(t);
    keep.id = "keep".into();
    let mut forget = Event::text("user", "forget the red umbrella").at(t + 1.0);
    forget.id = "forget".into();
    w.memory
        .add_events(&u, "s1", &[keep, forget.clone()])
        .await
        .unwrap();
    w.memory.add_events(&u, "s2", &[forget]).await.unwrap();
    let bob = UserKey::new("agent", "bob").unwrap();
    let mut bobs = Event::text("user", "bob's red umbrella").at(t);
    bobs.id = "forget".into();
    w.memory.add_events(&bob, "s1", &[bobs]).await.unwrap();
    assert_eq!(w.memory.search(&u, "umbrella", 10).await.unwrap().len(), 3);
    assert_eq!(
        w.memory.delete(&u, "forget").await.unwrap(),
        2,
        "in every session"
    );
    let hits = w.memory.search(&u, "umbrella red", 10).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(ids, ["keep"]);
    assert_eq!(
        w.memory.delete(&u, "forget").await.unwrap(),
        0,
        "absent: fine"
    );
    assert_eq!(w.memory.delete(&u, "never").await.unwrap(), 0);
    assert_eq!(
        w.memory.search(&bob, "red", 10).await.unwrap().len(),
        1,
        "another user's entry with the same id stays"
    );
    if let Some(dump) = w.dump().await {
        let memory: Vec<&str> = dump.lines().filter(|l| l.contains("memory")).collect();
        assert!(
            !memory.iter().any(|l| l.contains("forget the red")),
            "{memory:#?}"
        );
    }
}

/// Issue 15 #4: words inside scripts written without spaces are found
/// (character bigrams), Latin inside them is a word of its own, and case
/// and width fold; the same answers on every backend.
pub async fn words_are_found_in_scripts_without_spaces(w: &World) {
    let t = now() - 1_000.0;
    let texts = [
        "私の名前は太郎です",
        "私はPythonでADKを使っています",
        "我喜欢学习中文和北京烤鸭",
        "ผมชอบกินข้าวผัดมาก",
        "파이썬을 배우고 있어요",
        "ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ text",
        "Ünïcödé STRASSE Café",
    ];
    let turns: Vec<(f64, &str)> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| (t + i as f64, *text))
        .collect();
    let s = session_with(w, "agent", "yuki", "cjk", &turns).await;
    assert_eq!(w.memory.add_session(&s).await.unwrap(), texts.len());
    let u = UserKey::new("agent", "yuki").unwrap();
    let u = &u;
    let found = |query: &'static str| async move {
        w.memory
            .search(u, query, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.text)
            .collect::<Vec<_>>()
    };
    for (query, expected) in [
        ("太郎", vec![texts[0]]),
        ("名前", vec![texts[0]]),
        ("python", vec![texts[1]]),
        ("PYTHON", vec![texts[1]]),
        ("adk", vec![texts[1]]),
        ("Ｐｙｔｈｏｎ", vec![texts[1]]),
        ("中文", vec![texts[2]]),
        ("北京", vec![texts[2]]),
        ("烤鸭", vec![texts[2]]),
        ("ข้าวผัด", vec![texts[3]]),
        ("파이썬", vec![texts[4]]),
        ("fullwidth", vec![texts[5]]),
        ("カタカナ", vec![texts[5]]),
        ("ünïcödé", vec![texts[6]]),
        ("cafe\u{301}", vec![texts[6]]),
        ("strasse", vec![texts[6]]),
        ("私", vec![]),
        ("東京", vec![]),
        ("pyth", vec![]),
    ] {
        assert_eq!(found(query).await, expected, "query {query:?}");
    }
    // A query of several runs and words finds any of them, newest first.
    assert_eq!(
        found("太郎 中文, Python").await,
        vec![texts[2], texts[1], texts[0]]
    );
}

/// A long unspaced text is indexed by its first terms only, and every
/// backend agrees on which: the bound holds with bigrams.
pub async fn a_long_unspaced_text_is_indexed_within_the_bounds(w: &World) {
    use shared::store::memory::{MAX_WORDS_PER_ENTRY, words};
    let t = now() - 100.0;
    // 5,000 distinct ideographs: far more bigrams than an entry indexes.
    let long: String = (0x4E00u32..0x4E00 + 5_000)
        .filter_map(char::from_u32)
        .collect();
    let s = session_with(w, "agent", "li", "long", &[(t, &long)]).await;
    assert_eq!(w.memory.add_session(&s).await.unwrap(), 1);
    let terms = words(&long, usize::MAX);
    assert!(terms.len() > MAX_WORDS_PER_ENTRY);
    let u = UserKey::new("agent", "li").unwrap();
    let first = &terms[0];
    let last_indexed = &terms[MAX_WORDS_PER_ENTRY - 1];
    let beyond = &terms[MAX_WORDS_PER_ENTRY];
    assert_eq!(w.memory.search(&u, first, 10).await.unwrap().len(), 1);
    assert_eq!(
        w.memory.search(&u, last_indexed, 10).await.unwrap().len(),
        1
    );
    assert!(
        w.memory.search(&u, beyond, 10).await.unwrap().is_empty(),
        "terms past the bound are not indexed on any backend"
    );
}
