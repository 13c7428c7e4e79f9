//! The scheduler: one task, started by `Agent::open`, that fires every enabled
//! schedule trigger at its times.
//!
//! At most once per scheduled time, across restarts: a fire is first claimed in the
//! registry (`Store::claim_fire` records it as the last fire, and the next time, in
//! one conditional UPDATE), and only then handed to the function as an asynchronous
//! (Event) invocation. A crash between the two loses that fire; nothing repeats it.
//!
//! Fires missed while flintd was down (the stored next fire is in the past at
//! start-up) follow the trigger's policy: `skip` (the default) moves on to the next
//! time in the future; `run-once` fires once, late, for the latest missed time. While
//! running, a fire found late (the host was suspended) fires once and the schedule
//! resumes from now, without replaying every missed time.

use super::event::scheduled_event;
use super::model::{arn, Missed, Trigger, TriggerKind};
use super::schedule_expr::{ParseOptions, Schedule};
use super::state::TriggerState;
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::Instrument;

/// The longest the scheduler sleeps without looking at the registry again.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How late a fire may be found, while running, before the schedule resumes from now.
const LATE_LIMIT: TimeDelta = TimeDelta::seconds(60);

/// An invocation that could not be started, as its error text.
pub type InvokeResult = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What the scheduler needs from the agent.
pub trait Host: Send + Sync + 'static {
    fn store(&self) -> &Store;
    fn parse_options(&self) -> ParseOptions;
    /// (region, account id) of ARNs and events.
    fn region_account(&self) -> (String, String);
    /// Invokes `function` asynchronously (Event) with `payload`.
    fn invoke_event(self: Arc<Self>, function: String, payload: Vec<u8>) -> InvokeResult;
}

/// Starts the scheduler; it stops when the agent is dropped.
pub fn spawn(host: Weak<dyn Host>, state: Arc<TriggerState>) {
    tokio::spawn(async move {
        let mut starting = true;
        loop {
            let Some(h) = host.upgrade() else { return };
            let wait = match pass(&h, &state, starting).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: registry unreadable; retrying");
                    Duration::from_secs(5)
                }
            };
            starting = false;
            drop(h);
            tokio::select! {
                _ = state.woken() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Runs `f` on a blocking thread (registry access).
async fn blocking<T: Send + 'static>(
    h: &Arc<dyn Host>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let h = h.clone();
    tokio::task::spawn_blocking(move || f(h.store()))
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("scheduler task: {e}"))))
}

/// One look at every trigger: fires what is due; returns how long to sleep.
async fn pass(
    h: &Arc<dyn Host>,
    state: &Arc<TriggerState>,
    starting: bool,
) -> Result<Duration, StoreError> {
    let now = Utc::now();
    let triggers = blocking(h, |s| s.list_triggers(None)).await?;
    let mut soonest = now + TimeDelta::from_std(MAX_SLEEP).unwrap_or(LATE_LIMIT);
    for t in triggers.into_iter().filter(|t| t.enabled) {
        let TriggerKind::Schedule(spec) = &t.kind else {
            continue;
        };
        let sched = match t.schedule(h.parse_options()) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                // A stored expression this flintd refuses (e.g. rate(1 second)
                // without --schedule-seconds): said in the trigger's last error.
                let (name, msg) = (t.name.clone(), e.to_string());
                if t.last_error.as_deref() != Some(msg.as_str()) {
                    blocking(h, move |s| s.set_trigger_error(&name, Some(&msg))).await?;
                }
                continue;
            }
        };
        let Some(due) = t.next_fire.or_else(|| sched.next_after(now)) else {
            continue;
        };
        if due > now {
            soonest = soonest.min(due);
            continue;
        }
        let scheduled = match (starting, spec.missed) {
            (true, Missed::Skip) => {
                let next = sched.next_after(now);
                tracing::info!(trigger = %t.name, missed_from = %due, ?next, "skipping fires missed while flintd was down");
                let name = t.name.clone();
                blocking(h, move |s| s.set_trigger_next(&name, next)).await?;
                if let Some(n) = next {
                    soonest = soonest.min(n);
                }
                continue;
            }
            (true, Missed::RunOnce) => latest_due(&sched, due, now),
            (false, _) => due,
        };
        let mut next = sched.next_after(scheduled);
        if next.is_some_and(|n| n <= now - LATE_LIMIT) {
            next = sched.next_after(now);
        }
        fire(h, state, &t, scheduled, next).await?;
        if let Some(n) = next {
            soonest = soonest.min(n);
        }
    }
    Ok((soonest - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// The latest scheduled time at or before `now`, from `due` on (bounded walk).
fn latest_due(sched: &Schedule, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut t = due;
    for _ in 0..100_000 {
        match sched.next_after(t) {
            Some(n) if n <= now => t = n,
            _ => break,
        }
    }
    t
}

/// Claims the fire of `scheduled`, then hands it to the function (in its own task).
async fn fire(
    h: &Arc<dyn Host>,
    state: &Arc<TriggerState>,
    t: &Trigger,
    scheduled: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let name = t.name.clone();
    if !blocking(h, move |s| s.claim_fire(&name, scheduled, next)).await? {
        return Ok(());
    }
    let (region, account) = h.region_account();
    let id = uuid::Uuid::new_v4();
    let payload = scheduled_event(
        id,
        &account,
        &region,
        &arn(&region, &account, &t.name),
        scheduled,
    );
    let span = tracing::info_span!("trigger", trigger = %t.name, function = %t.function, event_id = %id, scheduled = %scheduled);
    let (h, state, name, function) = (h.clone(), state.clone(), t.name.clone(), t.function.clone());
    let had_error = t.last_error.is_some();
    tokio::spawn(
        async move {
            let late_ms = (Utc::now() - scheduled).num_milliseconds();
            let result = h.clone().invoke_event(function, payload).await;
            state.count(&name, result.is_ok());
            let error = match result {
                Ok(()) => {
                    tracing::info!(late_ms, "fired");
                    if !had_error {
                        return;
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fire could not invoke the function");
                    Some(format!("{}: {e}", super::store::fmt_time(scheduled)))
                }
            };
            let r = blocking(&h, move |s| s.set_trigger_error(&name, error.as_deref())).await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not record the trigger's last error");
            }
        }
        .instrument(span),
    );
    Ok(())
}
