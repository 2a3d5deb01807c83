//! One `after_timestamp` rule on every backend (issue 15, #3): an event's
//! index time is `max(its timestamp, the previous index time)`; a read with
//! `after_timestamp = t` returns the events whose index time is `>= t`,
//! compared as exact doubles, then `num_recent_events` keeps the last N.
//! Checked against that model over generated timestamps (sub-microsecond
//! steps, repeats, one-ulp steps, steps backwards) and generated filters
//! (each timestamp and its neighbouring doubles).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shared::store::session::{Event, GetSession, SessionKey, State, UserKey};

use crate::World;

#[derive(Debug, Clone)]
enum Step {
    Same,
    Ulps(u8),
    Micro(f64),
    Seconds(f64),
    Back(f64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Same),
        (1u8..4).prop_map(Step::Ulps),
        (0.0..2e-6).prop_map(Step::Micro),
        (0.0..5.0).prop_map(Step::Seconds),
        (0.0..50.0).prop_map(Step::Back),
    ]
}

fn timestamps(start: f64, steps: &[Step]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut t = start;
    for s in steps {
        t = match s {
            Step::Same => t,
            Step::Ulps(n) => (0..*n).fold(t, |t, _| t.next_up()),
            Step::Micro(d) | Step::Seconds(d) => t + d,
            Step::Back(d) => t - d,
        };
        out.push(t);
    }
    out
}

/// The model: the seqs a read returns.
fn expected(ts: &[f64], after: f64, recent: Option<u32>) -> Vec<u64> {
    let mut index = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        index = index.max(*t);
        if index >= after {
            out.push(i as u64 + 1);
        }
    }
    if let Some(n) = recent {
        let skip = out.len().saturating_sub(n as usize);
        out.drain(..skip);
    }
    out
}

pub async fn after_timestamp_follows_one_rule_for_generated_timestamps_and_filters(w: &World) {
    let cases = (
        prop_oneof![Just(1_796_000_000.0), 1.0e9..2.0e9],
        prop::collection::vec(step(), 1..10),
        prop::option::of(0u32..6),
    );
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[15; 32]),
    );
    let user = UserKey::new("agent", "alice").unwrap();
    let mut checked = 0;
    for case in 0..25 {
        let (start, steps, recent) = cases.new_tree(&mut runner).unwrap().current();
        let ts = timestamps(start, &steps);
        let id = format!("case{case}");
        let k = SessionKey::new("agent", "alice", &id).unwrap();
        w.sessions
            .create(&user, State::new(), Some(&id))
            .await
            .unwrap();
        for t in &ts {
            let appended = w
                .sessions
                .append_event(&k, Event::text("user", "x").at(*t), None)
                .await
                .unwrap();
            assert_eq!(appended.timestamp.to_bits(), t.to_bits(), "stored as given");
        }
        let stored = w
            .sessions
            .get(&k, GetSession::all())
            .await
            .unwrap()
            .unwrap();
        let back: Vec<u64> = stored.events.iter().map(|e| e.time().to_bits()).collect();
        assert_eq!(back, ts.iter().map(|t| t.to_bits()).collect::<Vec<_>>());
        let mut filters: Vec<f64> = ts
            .iter()
            .flat_map(|t| [*t, t.next_up(), t.next_down(), t + 5e-7])
            .collect();
        filters.extend([start - 100.0, start + 1_000.0, 1_796_000_000.000_000_5]);
        for after in filters {
            let got: Vec<u64> = w
                .sessions
                .get(&k, GetSession::after(after, recent))
                .await
                .unwrap()
                .unwrap()
                .events
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(
                got,
                expected(&ts, after, recent),
                "timestamps {ts:?}, after_timestamp {after:?}, num_recent_events {recent:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 200);
}
