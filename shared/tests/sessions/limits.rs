//! The documented limits of a session (events, bytes per event, bytes per
//! read): a clear error, nothing written.

use shared::store::session::{
    Event, GetSession, SessionKey, SessionLimits, State, StoreError, UserKey,
};

use crate::World;

pub fn small() -> SessionLimits {
    SessionLimits {
        max_events: 5,
        max_event_bytes: 4_096,
        max_response_bytes: 3_000,
    }
}

fn sized(i: usize) -> Event {
    let mut e = Event::text("user", &format!("{i}:{}", "x".repeat(700)));
    e.id = format!("e{i}");
    e
}

pub async fn a_full_session_refuses_appends_and_big_reads_are_refused(w: &World) {
    let k = SessionKey::new("agent", "alice", "s").unwrap();
    w.sessions
        .create(
            &UserKey::new("agent", "alice").unwrap(),
            State::new(),
            Some("s"),
        )
        .await
        .unwrap();
    let before = w.dump().await;
    let big = Event::text("user", &"y".repeat(5_000));
    let err = w.sessions.append_event(&k, big, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                what: "event",
                limit: 4_096
            }
        ),
        "{err}"
    );
    assert_eq!(w.dump().await, before, "a refused event writes nothing");
    for i in 1..=3 {
        w.sessions.append_event(&k, sized(i), None).await.unwrap();
    }
    assert_eq!(
        w.sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .unwrap()
            .events
            .len(),
        3,
        "about 2,400 bytes: under the response limit"
    );
    w.sessions.append_event(&k, sized(4), None).await.unwrap();
    let err = w.sessions.get(&k, GetSession::all()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { what, .. } if what.contains("response")),
        "{err}"
    );
    assert!(err.to_string().contains("num_recent_events"), "{err}");
    let recent = w
        .sessions
        .get(&k, GetSession::recent(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recent.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    w.sessions.append_event(&k, sized(5), None).await.unwrap();
    let before = w.dump().await;
    let err = w
        .sessions
        .append_event(&k, sized(6), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LimitReached {
                what: "events per session",
                limit: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(w.dump().await, before, "a full session takes nothing");
    // A retry of a stored event still answers, full or not.
    let again = w.sessions.append_event(&k, sized(5), None).await.unwrap();
    assert!(again.duplicate);
    let s = w
        .sessions
        .get(&k, GetSession::recent(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seq, 5);
}
