//! The dispatcher: one task that leases due events from the queue and runs each in
//! its own task through a [`Runner`], at most `workers` at once; then applies
//! [`policy::decide`], dead-letters what exhausted its retries or its age, and queues
//! destination records: as an event for a function destination, as a durable
//! delivery for a webhook ([`webhook::sender`]). Nothing is leased while the node drains, so a drain waits
//! for the running attempts and leaves the rest queued.

use super::counters::{EventCounters, Kind, Outcome};
use super::persist::until_stored;
use super::policy::{self, AttemptResult, Backoff, Condition, Decision, Response};
use super::record::destination_record;
use super::runner::Runner;
use super::webhook::sender::Sender;
use super::webhook::store::{DeliveryQueue, NewDelivery};
use super::webhook::{self, Poster, Target};
use super::{now_ms, Event, EventConfig, EventConfigs, EventQueue, NewEvent, QueueError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// Longest the dispatcher sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How the dispatcher runs events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Backoff base: retry k waits base*k (Lambda: 60 s).
    pub retry_base_ms: u64,
    /// Attempts running at once.
    pub workers: usize,
    /// Length of one second of MaximumEventAgeInSeconds, ms (1,000; shorter in tests).
    pub age_unit_ms: u64,
}

/// The queue, its configurations and the task that empties it.
pub struct Dispatcher {
    queue: Arc<dyn EventQueue>,
    configs: Arc<dyn EventConfigs>,
    settings: Settings,
    pub counters: Arc<EventCounters>,
    webhooks: Arc<Sender>,
    wake: Notify,
    in_flight: AtomicU64,
    stopped: AtomicBool,
}

impl Dispatcher {
    /// A dispatcher over `queue`; events left in flight by an earlier run are queued
    /// again (at-least-once delivery), and so are webhook deliveries. Nothing runs
    /// until [`Dispatcher::start`] (and [`Dispatcher::start_webhooks`]).
    pub fn new(
        queue: Arc<dyn EventQueue>,
        configs: Arc<dyn EventConfigs>,
        deliveries: Arc<dyn DeliveryQueue>,
        settings: Settings,
    ) -> Result<Arc<Self>, QueueError> {
        let back = queue.recover()?;
        if back > 0 {
            tracing::info!(
                events = back,
                "events that were running when the agent stopped are queued again"
            );
        }
        let counters = Arc::new(EventCounters::default());
        let webhooks = Sender::new(deliveries, counters.clone(), settings.retry_base_ms)?;
        Ok(Arc::new(Self {
            queue,
            configs,
            settings,
            counters,
            webhooks,
            wake: Notify::new(),
            in_flight: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }))
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn EventQueue> {
        &self.queue
    }

    /// The configurations.
    pub fn configs(&self) -> &Arc<dyn EventConfigs> {
        &self.configs
    }

    /// The webhook sender (its pending deliveries).
    pub fn webhooks(&self) -> &Arc<Sender> {
        &self.webhooks
    }

    /// Attempts running now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Stores `e` durably and wakes the dispatcher.
    pub fn enqueue(&self, e: &NewEvent) -> Result<(), QueueError> {
        self.queue.enqueue(e)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Stops leasing events (at agent stop): attempts running now are ended with the
    /// agent and queued again at the next start.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.webhooks.stop();
    }

    /// Wakes the dispatcher (e.g. after a redrive or a limit was raised).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The function's configuration, or Lambda's defaults.
    pub fn config(&self, function: &str) -> EventConfig {
        match self.configs.get_config(function) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(function, error = %e, "event invoke config unreadable; using the defaults");
                EventConfig::default()
            }
        }
    }

    /// Starts the dispatch loop on the current tokio runtime.
    pub fn start(self: &Arc<Self>, runner: Arc<dyn Runner>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run_loop(runner).await })
    }

    /// Starts sending webhook deliveries through `poster`.
    pub fn start_webhooks(&self, poster: Arc<dyn Poster>) -> tokio::task::JoinHandle<()> {
        self.webhooks.start(poster)
    }

    async fn run_loop(self: Arc<Self>, runner: Arc<dyn Runner>) {
        let slots = Arc::new(Semaphore::new(self.settings.workers.max(1)));
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                tracing::info!(running = self.in_flight(), "event dispatcher stopped");
                return;
            }
            if !runner.accepting() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let now = now_ms();
            match self.queue.lease_due(now) {
                Ok(Some(ev)) => {
                    self.in_flight.fetch_add(1, Ordering::Relaxed);
                    let me = self.clone();
                    let runner = runner.clone();
                    let span = tracing::info_span!("event", function = %ev.function, request_id = %ev.request_id, attempt = ev.attempts + 1);
                    tokio::spawn(
                        async move {
                            me.attempt(runner.as_ref(), ev).await;
                            me.in_flight.fetch_sub(1, Ordering::Relaxed);
                            drop(slot);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {
                    drop(slot);
                    let wait = match self.queue.next_due_ms() {
                        Ok(Some(at)) => {
                            Duration::from_millis(at.saturating_sub(now)).min(IDLE_POLL)
                        }
                        _ => IDLE_POLL,
                    };
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => {
                    drop(slot);
                    tracing::error!(error = %e, "event queue unreadable; retrying in 1 s");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// One attempt of a leased event, and what follows from it.
    async fn attempt(&self, runner: &dyn Runner, ev: Event) {
        let cfg = self.config(&ev.function);
        if policy::expired(&ev, &cfg, now_ms(), self.settings.age_unit_ms) {
            let error = format!(
                "EventAgeExceeded: older than MaximumEventAgeInSeconds {} after {} attempts",
                cfg.max_age_s, ev.attempts
            );
            tracing::warn!(
                attempts = ev.attempts,
                "event expired; moved to the dead-letter queue"
            );
            EventCounters::inc(&self.counters.dropped_by_age);
            self.finish_dead(
                runner,
                &ev,
                &cfg,
                ev.attempts,
                Condition::EventAgeExceeded,
                &error,
                None,
            )
            .await;
            return;
        }
        let attempt = ev.attempts + 1;
        tracing::info!(attempt, deferrals = ev.deferrals, "event attempt");
        let result = runner.run(&ev, attempt).await;
        let decision = policy::decide(
            &ev,
            &cfg,
            Backoff {
                base_ms: self.settings.retry_base_ms,
            },
            &result,
            now_ms(),
        );
        let response = match &result {
            AttemptResult::Success(r) | AttemptResult::FunctionError(r) => Some(r),
            _ => None,
        };
        if response.is_some() {
            // The run freed its concurrency: an event of the same function that was
            // throttled need not wait out its backoff.
            match self.queue.promote(&ev.function, now_ms()) {
                Ok(true) => self.wake.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not promote a throttled event"),
            }
        }
        match decision {
            Decision::Done => {
                tracing::info!(attempt, "event done");
                // The record first: a webhook delivery is stored before the event
                // goes, so a kill between the two runs the event again rather than
                // losing the record.
                self.deliver(
                    runner,
                    &ev,
                    Kind::OnSuccess,
                    cfg.on_success.as_deref(),
                    Condition::Success,
                    attempt,
                    response,
                )
                .await;
                until_stored("the end of a finished event", &self.stopped, || {
                    self.queue.complete(&ev.request_id)
                })
                .await;
            }
            Decision::Retry {
                at_ms,
                attempts,
                deferrals,
                error,
                counted,
            } => {
                if counted {
                    EventCounters::inc(&self.counters.retries);
                    tracing::info!(attempt, retry_in_ms = at_ms.saturating_sub(now_ms()), %error, "event failed; will retry");
                } else {
                    EventCounters::inc(&self.counters.deferrals);
                    tracing::debug!(retry_in_ms = at_ms.saturating_sub(now_ms()), %error, "event could not run; will retry");
                }
                until_stored("the next attempt of an event", &self.stopped, || {
                    self.queue.retry_at(
                        &ev.request_id,
                        at_ms,
                        attempts,
                        deferrals,
                        &error,
                        !counted,
                    )
                })
                .await;
                // The loop may be asleep with nothing due: let it see the new time.
                self.wake.notify_one();
            }
            Decision::Dead {
                attempts,
                condition,
                error,
            } => {
                tracing::warn!(attempts, %error, "event failed; moved to the dead-letter queue");
                self.finish_dead(runner, &ev, &cfg, attempts, condition, &error, response)
                    .await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_dead(
        &self,
        runner: &dyn Runner,
        ev: &Event,
        cfg: &EventConfig,
        attempts: u32,
        condition: Condition,
        error: &str,
        response: Option<&Response>,
    ) {
        EventCounters::inc(&self.counters.dead_lettered);
        until_stored("a dead-lettered event", &self.stopped, || {
            self.queue.dead_letter(&ev.request_id, attempts, error)
        })
        .await;
        for (kind, dest) in [
            (Kind::OnFailure, cfg.on_failure.as_deref()),
            (Kind::DeadLetter, cfg.dead_letter.as_deref()),
        ] {
            self.deliver(runner, ev, kind, dest, condition, attempts, response)
                .await;
        }
    }

    /// Queues the destination record for `dest`, if one is configured: as an event
    /// of a function destination, or as a durable delivery to a webhook.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        runner: &dyn Runner,
        ev: &Event,
        kind: Kind,
        dest: Option<&str>,
        condition: Condition,
        attempts: u32,
        response: Option<&Response>,
    ) {
        let Some(dest) = dest else { return };
        let now = now_ms();
        let record = destination_record(
            ev,
            &runner.arn(&ev.function),
            condition,
            attempts,
            response,
            now,
        )
        .to_string()
        .into_bytes();
        let function = match webhook::target(dest) {
            Target::Webhook(url) => {
                let d = NewDelivery {
                    url,
                    kind,
                    record,
                    event: ev,
                    invokes: attempts,
                };
                if until_stored("a webhook delivery", &self.stopped, || {
                    self.webhooks.queue().add_delivery(&d, now)
                })
                .await
                {
                    self.webhooks.wake();
                    tracing::info!(
                        destination = kind.as_str(),
                        url,
                        condition = condition.as_str(),
                        "destination record queued for the webhook"
                    );
                }
                return;
            }
            Target::Function(f) => f,
        };
        if !runner.exists(function) {
            self.counters.delivered(kind, Outcome::Error);
            tracing::warn!(destination = kind.as_str(), function, "destination function no longer exists; record not delivered (the event's outcome is in the logs)");
            return;
        }
        let e = NewEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            function: function.to_string(),
            qualifier: "$LATEST".into(),
            payload: record,
            client_context: String::new(),
            enqueued_ms: now,
        };
        if until_stored("a destination record", &self.stopped, || self.enqueue(&e)).await {
            self.counters.delivered(kind, Outcome::Ok);
            tracing::info!(destination = kind.as_str(), function, condition = condition.as_str(), destination_request_id = %e.request_id, "destination record queued");
        }
    }
}

#[cfg(test)]
mod tests;
