//! Schedule triggers on the fake backend: the scheduler fires a `rate(1 second)`
//! trigger as Event invocations (hidden `--schedule-seconds`), disabling stops it, and
//! agents starting on a registry whose triggers missed fires apply each trigger's
//! policy (skip, run-once), the run-once fire claimed by exactly one of them.

use super::backend::FakeBackend;
use super::guest::Script;
use super::harness::{until, Harness};
use crate::core::Agent;
use crate::triggers::manage::NewTrigger;
use crate::triggers::model::{Missed, ScheduleSpec, Trigger, TriggerKind};
use chrono::{SubsecRound, TimeDelta, Utc};

fn schedule(expr: &str, missed: Missed) -> TriggerKind {
    TriggerKind::Schedule(ScheduleSpec {
        expression: expr.into(),
        timezone: None,
        missed,
    })
}

fn fires(agent: &Agent, trigger: &str) -> u64 {
    agent
        .trigger_state()
        .snapshot()
        .get(trigger)
        .map_or(0, |c| c.fires)
}

#[tokio::test]
async fn a_one_second_rate_fires_event_invocations_until_disabled() {
    let h = Harness::open(Script::echo(), &["--schedule-seconds"]);
    h.create("f", "v1");
    let t = h
        .agent
        .create_trigger(NewTrigger {
            name: "tick".into(),
            function: "f".into(),
            kind: schedule("rate(1 second)", Missed::Skip),
            enabled: true,
        })
        .unwrap();
    assert_eq!(t.next_fire, Some(t.created + TimeDelta::seconds(1)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while h.recorder.records.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no fires within 4 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let row = h.agent.get_trigger("tick").unwrap();
    let last = row.last_fire.expect("last fire recorded");
    assert_eq!(
        (last - t.created).num_milliseconds() % 1000,
        0,
        "on the grid"
    );
    assert!(row.next_fire > Some(last));
    assert!(fires(&h.agent, "tick") >= 2);
    assert!(h
        .agent
        .metrics()
        .render()
        .contains("flint_trigger_fires_total{trigger=\"tick\"}"));

    let off = h.agent.set_trigger_enabled("tick", false).unwrap();
    assert_eq!(off.next_fire, None);
    let n = fires(&h.agent, "tick");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(fires(&h.agent, "tick"), n, "fired while disabled");
    assert!(h.agent.get_trigger("tick").unwrap().last_fire <= Some(Utc::now()));
}

#[tokio::test]
async fn fires_missed_while_down_follow_the_policy_at_start_up() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    // Created 10.5 minutes ago, every minute; its stored next fire (5 minutes after
    // creation) passed while "flintd was down".
    let now = Utc::now().trunc_subsecs(0);
    let created = now - TimeDelta::seconds(630);
    for (name, missed) in [("skip", Missed::Skip), ("once", Missed::RunOnce)] {
        h.agent
            .store()
            .insert_trigger(&Trigger {
                name: name.into(),
                function: "f".into(),
                kind: schedule("rate(1 minute)", missed),
                enabled: true,
                created,
                last_fire: None,
                last_error: None,
                next_fire: Some(created + TimeDelta::minutes(5)),
            })
            .unwrap();
    }
    // A second agent on the same registry. Both schedulers' first passes (start-ups)
    // run at the next await and race for the missed fire: the registry's claim lets
    // exactly one of them fire it.
    let b = Agent::open_with(h.agent.config().clone(), FakeBackend::new(Script::echo())).unwrap();
    let both = |t: &str| fires(&h.agent, t) + fires(&b, t);
    until("the run-once fire", || both("once") == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(both("once"), 1, "fired by both agents");
    let once = b.get_trigger("once").unwrap();
    assert_eq!(
        once.last_fire,
        Some(created + TimeDelta::minutes(10)),
        "the latest missed time, once"
    );
    assert_eq!(once.next_fire, Some(created + TimeDelta::minutes(11)));
    let skip = b.get_trigger("skip").unwrap();
    assert_eq!(skip.last_fire, None, "skip fires nothing late");
    assert_eq!(skip.next_fire, Some(created + TimeDelta::minutes(11)));
    assert_eq!(both("skip"), 0);
}
