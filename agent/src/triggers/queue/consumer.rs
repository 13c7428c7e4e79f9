//! The consumer of one queue trigger: gathers batches (up to the batch size, the
//! batching window after the first message, or the payload limit), invokes the
//! function synchronously with each, and settles the messages by the result:
//! - success: every message is acknowledged;
//! - a function error (exception, timeout, crash): the batch is invoked again (its
//!   records marked `redelivered`) after 1 s, 2 s, ... up to `retries` times, then
//!   sent to the dead-letter target: the trigger's dead-letter function (invoked
//!   asynchronously with the batch; the messages are then acknowledged, or given
//!   back to the broker if it cannot be invoked), or, without one, rejected to the
//!   broker (`basic.reject`, no requeue: RabbitMQ routes them to the queue's own
//!   dead-letter exchange when it has one, and drops them otherwise);
//! - a throttle or a system error: not counted; the batch waits with exponential
//!   backoff and no new batch is gathered meanwhile, so the rest stays in the broker
//!   (its prefetch bounds what was delivered and not acknowledged).
//!
//! Batches run concurrently: the target is one more than the backlog in batches,
//! bounded by the maximum concurrency, read from the broker every second.

use super::source::{Message, Probe, Session, Settle, Source, SourceError};
use super::stats::Counters;
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often the backlog is read.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The longest a throttled batch waits between tries.
const MAX_DEFERRAL: Duration = Duration::from_secs(5);

/// What one invocation of a batch gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The function failed (counts against the retries).
    Failed(String),
    /// A limit refused it, or no sandbox could be had: try again later, uncounted.
    Deferred(String),
    /// The function no longer exists.
    Gone(String),
}

/// What the consumer needs from the agent.
pub trait Invoker: Send + Sync + 'static {
    /// Invokes the function synchronously with `payload`.
    fn invoke(&self, payload: Vec<u8>) -> impl Future<Output = Outcome> + Send;
    /// Hands a batch that exhausted its retries to the dead-letter target.
    fn dead_letter(
        &self,
        event: Value,
        attempts: u32,
        error: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// A batch was handled (the trigger's last fire).
    fn fired(&self);
    /// Something went wrong (the trigger's last error).
    fn failed(&self, error: &str);
}

/// A trigger's batching and retry settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub window: Duration,
    pub max_concurrency: u32,
    pub retries: u32,
    /// Exhausted batches go to a dead-letter function (else: rejected to the broker).
    pub dead_letter_function: bool,
    /// The largest event, in bytes (a record that would pass it starts the next batch).
    pub max_payload: usize,
}

impl Settings {
    /// Deliveries outstanding at most: every batch that may be in flight, full.
    pub fn prefetch(&self) -> u16 {
        (self.batch_size as u64 * u64::from(self.max_concurrency)).min(u64::from(u16::MAX)) as u16
    }
}

/// One trigger's consumer, shared by its batch tasks.
pub struct Consumer<S: Source, I: Invoker> {
    source: S,
    invoker: I,
    settings: Settings,
    counters: Arc<Counters>,
    /// Concurrent batches wanted now (by the backlog).
    target: AtomicU32,
    in_flight: AtomicU32,
    changed: Notify,
    /// No new batch is gathered before this (a batch was throttled).
    paused_until: Mutex<Option<Instant>>,
}

type Msg<S> = Message<<<S as Source>::Session as Session>::Settle>;

impl<S: Source, I: Invoker> Consumer<S, I> {
    pub fn new(source: S, invoker: I, settings: Settings, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Self {
            source,
            invoker,
            settings,
            counters,
            target: AtomicU32::new(1),
            in_flight: AtomicU32::new(0),
            changed: Notify::new(),
            paused_until: Mutex::new(None),
        })
    }

    pub fn invoker(&self) -> &I {
        &self.invoker
    }

    /// Connects and consumes until the session fails; returns why. Batches still
    /// running finish on their own (their acknowledgements fail if the connection is
    /// gone, and the broker redelivers those messages).
    pub async fn run_session(self: &Arc<Self>) -> SourceError {
        let mut session = match self.source.connect(self.settings.prefetch()).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        tracing::info!(prefetch = self.settings.prefetch(), "consuming");
        self.counters.session();
        let probe = session.probe();
        let me = Arc::downgrade(self);
        let poller = tokio::spawn(async move {
            loop {
                let depth = probe.depth().await;
                let Some(me) = me.upgrade() else { return };
                me.counters.set_lag(depth);
                if let Some(d) = depth {
                    let batches = d.div_ceil(me.settings.batch_size as u64) + 1;
                    let t = batches.min(u64::from(me.settings.max_concurrency)) as u32;
                    me.target.store(t, Ordering::Relaxed);
                    me.changed.notify_waiters();
                }
                drop(me);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        let _poller = AbortOnDrop(poller);
        let mut carry = None;
        loop {
            self.wait_for_slot().await;
            let batch = match gather(&mut session, &mut carry, &self.settings).await {
                Ok(b) => b,
                Err(e) => {
                    self.counters.set_lag(None);
                    return e;
                }
            };
            let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.counters.set_concurrency(n);
            let me = self.clone();
            tokio::spawn(async move {
                me.process(batch).await;
                let n = me.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
                me.counters.set_concurrency(n);
                me.changed.notify_waiters();
            });
        }
    }

    /// Waits until no throttle pauses consumption and a batch slot is free.
    async fn wait_for_slot(&self) {
        loop {
            let paused = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = paused.filter(|t| *t > Instant::now()) {
                tokio::time::sleep_until(t).await;
                continue;
            }
            let target = self.target.load(Ordering::Relaxed).max(1);
            if self.in_flight.load(Ordering::Relaxed) < target {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), self.changed.notified()).await;
        }
    }

    /// Invokes with one batch until it is handled or dead-lettered; settles it.
    async fn process(&self, batch: Vec<Msg<S>>) {
        let n = batch.len();
        let (mut records, settles): (Vec<Value>, Vec<_>) =
            batch.into_iter().map(|m| (m.record, m.settle)).unzip();
        let (mut failures, mut deferrals) = (0u32, 0u32);
        loop {
            let payload = self.source.event(records.clone()).to_string().into_bytes();
            match self.invoker.invoke(payload).await {
                Outcome::Success => {
                    self.counters.batch(n);
                    self.invoker.fired();
                    settle_all(settles, Settlement::Ack).await;
                    return;
                }
                Outcome::Failed(e) => {
                    failures += 1;
                    self.counters.failure();
                    self.invoker.failed(&e);
                    if failures > self.settings.retries && !self.settings.dead_letter_function {
                        tracing::warn!(messages = n, attempts = failures, error = %e, "batch failed; rejecting it to the queue's dead-letter exchange");
                        self.counters.dead_lettered(n);
                        settle_all(settles, Settlement::Reject).await;
                        return;
                    }
                    if failures > self.settings.retries {
                        tracing::warn!(messages = n, attempts = failures, error = %e, "batch failed; sending it to the dead-letter target");
                        let event = self.source.event(records);
                        match self.invoker.dead_letter(event, failures, &e).await {
                            Ok(()) => {
                                self.counters.dead_lettered(n);
                                settle_all(settles, Settlement::Ack).await;
                            }
                            Err(de) => {
                                tracing::warn!(error = %de, "dead-letter target refused the batch; giving it back to the broker");
                                self.invoker.failed(&format!("dead-letter: {de}"));
                                settle_all(settles, Settlement::Requeue).await;
                            }
                        }
                        return;
                    }
                    tracing::info!(messages = n, attempt = failures, error = %e, "batch failed; retrying");
                    for r in &mut records {
                        self.source.mark_redelivered(r);
                    }
                    tokio::time::sleep(Duration::from_secs(u64::from(failures.min(30)))).await;
                }
                Outcome::Deferred(e) => {
                    deferrals += 1;
                    self.counters.deferral();
                    let wait = deferral(deferrals);
                    if deferrals == 1 {
                        tracing::info!(error = %e, "batch deferred; pausing consumption");
                        self.invoker.failed(&e);
                    }
                    let until = Instant::now() + wait;
                    *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
                    tokio::time::sleep_until(until).await;
                }
                Outcome::Gone(e) => {
                    self.invoker.failed(&e);
                    settle_all(settles, Settlement::Requeue).await;
                    return;
                }
            }
        }
    }
}

/// Wait before the `n`th consecutive try of a throttled batch: 100 ms doubling.
fn deferral(n: u32) -> Duration {
    (Duration::from_millis(100) * (1u32 << n.saturating_sub(1).min(10))).min(MAX_DEFERRAL)
}

/// What to do with a batch's messages.
#[derive(Debug, Clone, Copy)]
enum Settlement {
    Ack,
    Requeue,
    Reject,
}

/// Settles every message; a failure means the connection is gone, and the broker
/// redelivers the rest.
async fn settle_all<T: Settle>(settles: Vec<T>, how: Settlement) {
    for s in settles {
        let r = match how {
            Settlement::Ack => s.ack().await,
            Settlement::Requeue => s.requeue().await,
            Settlement::Reject => s.reject().await,
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not settle; the broker will redeliver");
            return;
        }
    }
}

/// One batch: the carried-over message or the next delivery, then more until the
/// batch size, the window (from the first message) or the payload limit.
pub async fn gather<T: Session>(
    session: &mut T,
    carry: &mut Option<Message<T::Settle>>,
    s: &Settings,
) -> Result<Vec<Message<T::Settle>>, SourceError> {
    let first = match carry.take() {
        Some(m) => m,
        None => session.next().await?,
    };
    let deadline = Instant::now() + s.window;
    let mut size = first.size;
    let mut batch = vec![first];
    while batch.len() < s.batch_size {
        let m = match tokio::time::timeout_at(deadline, session.next()).await {
            Err(_) => break,
            Ok(m) => m?,
        };
        if size + m.size > s.max_payload {
            *carry = Some(m);
            break;
        }
        size += m.size;
        batch.push(m);
    }
    Ok(batch)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    struct Fake(mpsc::Receiver<u32>);
    struct Tag;
    #[derive(Clone)]
    struct NoProbe;

    impl Settle for Tag {
        async fn ack(self) -> Result<(), SourceError> {
            Ok(())
        }
        async fn requeue(self) -> Result<(), SourceError> {
            Ok(())
        }
        async fn reject(self) -> Result<(), SourceError> {
            Ok(())
        }
    }
    impl Probe for NoProbe {
        async fn depth(&self) -> Option<u64> {
            None
        }
    }
    impl Session for Fake {
        type Settle = Tag;
        type Probe = NoProbe;
        async fn next(&mut self) -> Result<Message<Tag>, SourceError> {
            match self.0.recv().await {
                Some(n) => Ok(Message {
                    record: Value::from(n),
                    size: 10,
                    settle: Tag,
                }),
                None => Err(SourceError::Cancelled),
            }
        }
        fn probe(&self) -> NoProbe {
            NoProbe
        }
    }

    fn settings(batch_size: usize, window_ms: u64, max_payload: usize) -> Settings {
        Settings {
            batch_size,
            window: Duration::from_millis(window_ms),
            max_concurrency: 4,
            retries: 2,
            dead_letter_function: false,
            max_payload,
        }
    }

    fn ids(b: &[Message<Tag>]) -> Vec<u64> {
        b.iter().map(|m| m.record.as_u64().unwrap()).collect()
    }

    async fn session(n: u32) -> (Fake, mpsc::Sender<u32>) {
        let (tx, rx) = mpsc::channel(100);
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
        (Fake(rx), tx)
    }

    #[tokio::test(start_paused = true)]
    async fn batches_stop_at_the_batch_size() {
        let (mut s, _tx) = session(7).await;
        let mut carry = None;
        let cfg = settings(3, 1000, 1 << 20);
        assert_eq!(
            ids(&gather(&mut s, &mut carry, &cfg).await.unwrap()),
            [0, 1, 2]
        );
        assert_eq!(
            ids(&gather(&mut s, &mut carry, &cfg).await.unwrap()),
            [3, 4, 5]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_closes_when_the_window_ends() {
        let (mut s, tx) = session(2).await;
        let t0 = Instant::now();
        let b = gather(&mut s, &mut None, &settings(10, 500, 1 << 20))
            .await
            .unwrap();
        assert_eq!(ids(&b), [0, 1]);
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
        drop(tx);
        assert!(matches!(
            gather(&mut s, &mut None, &settings(10, 500, 1 << 20)).await,
            Err(SourceError::Cancelled)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_over_the_payload_limit_starts_the_next_batch() {
        let (mut s, _tx) = session(5).await;
        let mut carry = None;
        let cfg = settings(10, 100, 25);
        assert_eq!(
            ids(&gather(&mut s, &mut carry, &cfg).await.unwrap()),
            [0, 1]
        );
        assert_eq!(
            ids(&gather(&mut s, &mut carry, &cfg).await.unwrap()),
            [2, 3]
        );
    }

    #[test]
    fn prefetch_covers_every_batch_in_flight_and_throttles_back_off() {
        assert_eq!(settings(100, 0, 0).prefetch(), 400);
        let mut many = settings(10_000, 0, 0);
        many.max_concurrency = 10;
        assert_eq!(many.prefetch(), u16::MAX);
        assert_eq!(deferral(1), Duration::from_millis(100));
        assert_eq!(deferral(3), Duration::from_millis(400));
        assert_eq!(deferral(30), MAX_DEFERRAL);
    }
}
