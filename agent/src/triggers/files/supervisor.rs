//! Starts and stops the watchers: one task, started by `Agent::open`, that keeps a
//! watcher and a delivery task running for every enabled file-event trigger. It
//! looks again when triggers change (a wake-up) and every few seconds, so a watch
//! that ended (its directory deleted) is started again once the directory is back.

use super::deliver::{Delivery, Target};
use super::record::Sequencer;
use super::state::FilesState;
use super::watch;
use crate::triggers::model::{Trigger, TriggerKind};
use crate::triggers::scheduler::Host;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How often the supervisor looks without a wake-up.
const PERIOD: Duration = Duration::from_secs(3);
/// Batches waiting between a watcher and its delivery task.
const CHANNEL: usize = 256;

/// One running watcher with its delivery task.
struct Running {
    target: Target,
    _watch: watch::WatchHandle,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the supervisor; it stops when the agent is dropped.
pub fn spawn(agent: Weak<dyn Host>, state: Arc<FilesState>) {
    tokio::spawn(async move {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let sequencers: std::sync::Mutex<BTreeMap<String, Arc<Sequencer>>> = Default::default();
        loop {
            if agent.strong_count() == 0 {
                return;
            }
            let a = agent.clone();
            let listed = tokio::task::spawn_blocking(move || {
                a.upgrade().map(|a| a.store().list_triggers(None))
            })
            .await;
            match listed {
                Ok(Some(Ok(all))) => {
                    let seq = |name: &str| {
                        sequencers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(name.to_string())
                            .or_default()
                            .clone()
                    };
                    reconcile(&agent, &state, &mut running, all, seq).await
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "file watchers: registry unreadable; retrying")
                }
                Err(e) => tracing::warn!(error = %e, "file watchers: listing failed"),
            }
            tokio::select! {
                _ = state.woken() => {}
                _ = tokio::time::sleep(PERIOD) => {}
            }
        }
    });
}

fn target(t: &Trigger) -> Option<Target> {
    match &t.kind {
        TriggerKind::Files(spec) if t.enabled => Some(Target {
            name: t.name.clone(),
            function: t.function.clone(),
            spec: spec.clone(),
        }),
        _ => None,
    }
}

async fn reconcile(
    agent: &Weak<dyn Host>,
    state: &Arc<FilesState>,
    running: &mut BTreeMap<String, Running>,
    all: Vec<Trigger>,
    sequencer: impl Fn(&str) -> Arc<Sequencer>,
) {
    let wanted: BTreeMap<String, (Target, &Trigger)> = all
        .iter()
        .filter_map(|t| target(t).map(|x| (t.name.clone(), (x, t))))
        .collect();
    running.retain(|name, r| {
        let keep = !r.task.is_finished() && wanted.get(name).is_some_and(|(t, _)| *t == r.target);
        if !keep {
            tracing::info!(trigger = %name, "file watch stopped");
        }
        keep
    });
    for (name, (target, row)) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        let dir = PathBuf::from(&target.spec.dir);
        let watch = match watch::start(&name, dir, tx) {
            Ok(w) => w,
            Err(e) => {
                let msg = e.to_string();
                let same = row
                    .last_error
                    .as_deref()
                    .is_some_and(|l| l.ends_with(msg.as_str()));
                if !same {
                    tracing::warn!(trigger = %name, error = %msg, "file watch could not start");
                    let (a, n) = (agent.clone(), name.clone());
                    let msg = format!(
                        "{}: {msg}",
                        crate::triggers::store::fmt_time(chrono::Utc::now())
                    );
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(a) = a.upgrade() {
                            let _ = a.store().set_trigger_error(&n, Some(&msg));
                        }
                    })
                    .await;
                }
                continue;
            }
        };
        tracing::info!(trigger = %name, dir = %target.spec.dir, function = %target.function, "file watch started");
        let delivery = Delivery {
            agent: agent.clone(),
            target: target.clone(),
            state: state.clone(),
            sequencer: sequencer(&name),
        };
        let span = tracing::info_span!("files", trigger = %name, function = %target.function);
        let task = tokio::spawn(delivery.run(rx, row.last_fire).instrument(span));
        running.insert(
            name,
            Running {
                target,
                _watch: watch,
                task,
            },
        );
    }
}
