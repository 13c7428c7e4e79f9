//! Runs one consumer per enabled queue trigger: started by `Agent::open`, it reads
//! the registry every second, starts consumers for new or enabled triggers, stops
//! those of deleted, disabled or changed ones (dropping the connection: the broker
//! redelivers what was not acknowledged), and reconnects a consumer whose session
//! failed with backoff (0.5 s doubling to 30 s).

use super::consumer::{Consumer, Invoker, Settings};
use super::event::source_arn;
use super::rmq::Rmq;
use super::spec::QueueSpec;
use super::stats::{Counters, QueueStats};
use crate::limits::SYNC_PAYLOAD_MAX;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::triggers::model::{Trigger, TriggerKind};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How often the registry is read for trigger changes.
const LOOK_EVERY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Room left in the 6 MB payload for the event's envelope.
const ENVELOPE: usize = 4096;

/// What the supervisor needs from the agent (`host.rs` implements it).
pub trait Host: Send + Sync + 'static {
    type Invoker: Invoker;
    fn metrics(&self) -> &Metrics;
    /// Every trigger in the registry (read off the async workers).
    fn triggers(self: Arc<Self>) -> impl Future<Output = Result<Vec<Trigger>, StoreError>> + Send;
    /// (region, account id) of ARNs.
    fn region_account(&self) -> (String, String);
    /// The invoker of one trigger's function and dead-letter function.
    fn invoker(
        self: &Arc<Self>,
        trigger: String,
        function: String,
        dead_letter: Option<String>,
    ) -> Self::Invoker;
}

/// A running consumer: what it was started with, and its task.
struct Running {
    function: String,
    spec: QueueSpec,
    task: JoinHandle<()>,
}

/// Starts the supervisor; it stops (with every consumer) when the agent is dropped.
pub fn spawn<H: Host>(host: &Arc<H>) {
    let stats = QueueStats::new(host.metrics());
    let weak = Arc::downgrade(host);
    tokio::spawn(async move {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        loop {
            let Some(h) = weak.upgrade() else { break };
            let listed = h.triggers().await;
            match listed {
                Ok(all) => reconcile(&weak, &stats, &mut running, all),
                Err(e) => {
                    tracing::warn!(error = %e, "queue triggers: registry unreadable; retrying")
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
        for (_, r) in running {
            r.task.abort();
        }
    });
}

/// Brings the running consumers in line with the enabled queue triggers.
fn reconcile<H: Host>(
    agent: &Weak<H>,
    stats: &Arc<QueueStats>,
    running: &mut BTreeMap<String, Running>,
    all: Vec<Trigger>,
) {
    let mut wanted: BTreeMap<String, (String, QueueSpec)> = all
        .into_iter()
        .filter(|t| t.enabled)
        .filter_map(|t| match t.kind {
            TriggerKind::Queue(spec) => Some((t.name, (t.function, spec))),
            _ => None,
        })
        .collect();
    running.retain(|name, r| {
        let keep = wanted
            .get(name)
            .is_some_and(|(f, s)| *f == r.function && *s == r.spec)
            && !r.task.is_finished();
        if !keep {
            tracing::info!(trigger = %name, "stopping queue consumer");
            r.task.abort();
            if !wanted.contains_key(name) {
                stats.remove(name);
            }
        }
        keep
    });
    wanted.retain(|name, _| !running.contains_key(name));
    for (name, (function, spec)) in wanted {
        let span = tracing::info_span!("queue_trigger", trigger = %name, function = %function, queue = %spec.queue_name);
        let task = tokio::spawn(
            consume(
                agent.clone(),
                name.clone(),
                function.clone(),
                spec.clone(),
                stats.of(&name),
            )
            .instrument(span),
        );
        running.insert(
            name,
            Running {
                function,
                spec,
                task,
            },
        );
    }
}

/// Consumes for one trigger until aborted: a session, then backoff, then again.
async fn consume<H: Host>(
    agent: Weak<H>,
    trigger: String,
    function: String,
    spec: QueueSpec,
    counters: Arc<Counters>,
) {
    let Some(h) = agent.upgrade() else {
        return;
    };
    let uri = match spec.uri() {
        Ok(u) => u,
        Err(e) => {
            // Checked at create: only a registry edited by hand gets here.
            tracing::warn!(error = %e, "queue trigger not started");
            return;
        }
    };
    let (region, account) = h.region_account();
    let arn = source_arn(&region, &account, &trigger, &uri.authority.host);
    let source = Rmq::new(uri, spec.queue_name.clone(), arn);
    let settings = Settings {
        batch_size: spec.batch_size as usize,
        window: Duration::from_millis(u64::from(spec.batching_window_ms)),
        max_concurrency: spec.max_concurrency,
        retries: spec.retries,
        dead_letter_function: spec.dead_letter.is_some(),
        max_payload: SYNC_PAYLOAD_MAX - ENVELOPE,
    };
    let invoker = h.invoker(trigger, function, spec.dead_letter.clone());
    drop(h);
    let consumer = Consumer::new(source, invoker, settings, counters);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        let e = consumer.run_session().await;
        if started.elapsed() > MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "queue consumer stopped; reconnecting");
        consumer.invoker().failed(&e.to_string());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
