//! The webhook sender: one task that leases due deliveries and POSTs each in its own
//! task (at most [`PARALLEL`] at once). A 2xx answer removes the delivery; anything
//! else (connection error, timeout, another status) is retried after `base * k` for
//! retry k (the event retry base: about 1, 2, then 3 minutes), and after [`ATTEMPTS`]
//! the delivery's event goes to the dead-letter queue.

use super::store::{Delivery, DeliveryQueue};
use super::{Poster, ATTEMPTS};
use crate::events::counters::{EventCounters, Outcome};
use crate::events::now_ms;
use crate::events::persist::until_stored;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// POSTs running at once.
pub const PARALLEL: usize = 16;
/// Longest the sender sleeps without looking at the table.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Delivers pending webhook records.
pub struct Sender {
    queue: Arc<dyn DeliveryQueue>,
    counters: Arc<EventCounters>,
    base_ms: u64,
    wake: Notify,
    stopped: AtomicBool,
}

impl Sender {
    /// A sender over `queue`; deliveries left in flight by an earlier run are pending
    /// again. Nothing is sent until [`Sender::start`].
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        counters: Arc<EventCounters>,
        base_ms: u64,
    ) -> Result<Arc<Self>, crate::events::QueueError> {
        let back = queue.recover_deliveries()?;
        if back > 0 {
            tracing::info!(
                deliveries = back,
                "webhook deliveries that were running when the agent stopped are pending again"
            );
        }
        Ok(Arc::new(Self {
            queue,
            counters,
            base_ms,
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
        }))
    }

    /// The deliveries.
    pub fn queue(&self) -> &Arc<dyn DeliveryQueue> {
        &self.queue
    }

    /// A delivery was added: look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops leasing (at agent stop); POSTs running now are cut with the agent and
    /// sent again at the next start.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Starts the sending loop on the current tokio runtime.
    pub fn start(self: &Arc<Self>, poster: Arc<dyn Poster>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run_loop(poster).await })
    }

    async fn run_loop(self: Arc<Self>, poster: Arc<dyn Poster>) {
        let slots = Arc::new(Semaphore::new(PARALLEL));
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let now = now_ms();
            match self.queue.lease_delivery(now) {
                Ok(Some(d)) => {
                    let me = self.clone();
                    let poster = poster.clone();
                    let span = tracing::info_span!("webhook", function = %d.function, request_id = %d.request_id, destination = d.kind.as_str(), attempt = d.attempts + 1);
                    tokio::spawn(
                        async move {
                            me.send(poster.as_ref(), d).await;
                            drop(slot);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {
                    drop(slot);
                    let wait = match self.queue.next_delivery_ms() {
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
                    tracing::error!(error = %e, "webhook deliveries unreadable; retrying in 1 s");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// One POST of `d`, and what follows from it.
    async fn send(&self, poster: &dyn Poster, d: Delivery) {
        let attempt = d.attempts + 1;
        let error = match poster.post(&d.url, &d.record).await {
            Ok(status) if (200..300).contains(&status) => {
                self.counters.delivered(d.kind, Outcome::Ok);
                tracing::info!(
                    status,
                    attempt,
                    "destination record delivered to the webhook"
                );
                until_stored("the end of a webhook delivery", &self.stopped, || {
                    self.queue.delivery_done(d.id)
                })
                .await;
                return;
            }
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e,
        };
        if attempt < ATTEMPTS {
            let at = now_ms() + self.base_ms.saturating_mul(u64::from(attempt));
            self.counters.delivered(d.kind, Outcome::Retry);
            tracing::warn!(attempt, %error, retry_in_ms = at.saturating_sub(now_ms()), "webhook delivery failed; will retry");
            until_stored("the next POST of a webhook delivery", &self.stopped, || {
                self.queue.delivery_retry(d.id, at, attempt, &error)
            })
            .await;
            self.wake.notify_one();
            return;
        }
        self.counters.delivered(d.kind, Outcome::Error);
        let why = format!(
            "{} webhook {} failed {attempt} times, last: {error}",
            d.kind.as_str(),
            d.url
        );
        tracing::warn!(%why, "webhook delivery given up; the event is in the dead-letter queue");
        until_stored("an undeliverable record's event", &self.stopped, || {
            self.queue.delivery_dead(d.id, &why)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::NewDelivery;
    use super::super::{PostResult, Posting};
    use super::*;
    use crate::events::counters::Kind;
    use crate::events::sqlite::SqliteQueue;
    use crate::events::{EventQueue, EventState, NewEvent};
    use std::sync::Mutex;
    use std::time::Instant;

    /// Answers POSTs by a script (the last answer repeats) and keeps what it got.
    struct Scripted {
        answers: Vec<PostResult>,
        got: Mutex<Vec<(String, Vec<u8>)>>,
    }

    impl Poster for Scripted {
        fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> Posting<'a> {
            Box::pin(async move {
                let mut got = self.got.lock().unwrap();
                let n = got.len();
                got.push((url.to_string(), body.to_vec()));
                self.answers[n.min(self.answers.len() - 1)].clone()
            })
        }
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < Duration::from_secs(5), "stalled: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn setup(
        dir: &std::path::Path,
        answers: Vec<PostResult>,
    ) -> (Arc<SqliteQueue>, Arc<Sender>, Arc<Scripted>) {
        let q = Arc::new(SqliteQueue::open(&dir.join("events.db")).unwrap());
        q.enqueue(&NewEvent {
            request_id: "r".into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            client_context: String::new(),
            enqueued_ms: 1,
        })
        .unwrap();
        let e = q.lease_due(1).unwrap().unwrap();
        q.add_delivery(
            &NewDelivery {
                url: "http://hook/",
                kind: Kind::OnSuccess,
                record: b"{\"rec\":1}".to_vec(),
                event: &e,
                invokes: 1,
            },
            1,
        )
        .unwrap();
        q.complete("r").unwrap();
        let s = Sender::new(q.clone(), Arc::new(EventCounters::default()), 10).unwrap();
        let p = Arc::new(Scripted {
            answers,
            got: Mutex::new(Vec::new()),
        });
        (q, s, p)
    }

    #[tokio::test]
    async fn a_webhook_that_comes_back_gets_the_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let (q, s, p) = setup(
            dir.path(),
            vec![Err("connection refused".into()), Ok(503), Ok(200)],
        );
        let task = s.start(p.clone());
        until("delivered", || q.list_deliveries(None).unwrap().is_empty()).await;
        assert_eq!(p.got.lock().unwrap().len(), 3);
        assert_eq!(
            p.got.lock().unwrap()[2],
            ("http://hook/".into(), b"{\"rec\":1}".to_vec())
        );
        assert_eq!(s.counters.deliveries(Kind::OnSuccess, Outcome::Retry), 2);
        assert_eq!(s.counters.deliveries(Kind::OnSuccess, Outcome::Ok), 1);
        assert!(q.list(None, &[], 10).unwrap().is_empty(), "nothing dead");
        task.abort();
    }

    #[tokio::test]
    async fn a_webhook_that_stays_down_sends_the_event_to_the_dead_letter_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (q, s, p) = setup(dir.path(), vec![Ok(500)]);
        let task = s.start(p.clone());
        until("dead-lettered", || {
            !q.list(None, &[EventState::Dead], 10).unwrap().is_empty()
        })
        .await;
        assert_eq!(p.got.lock().unwrap().len(), ATTEMPTS as usize);
        assert!(q.list_deliveries(None).unwrap().is_empty());
        let dead = q.list(None, &[EventState::Dead], 10).unwrap();
        assert!(
            dead[0].last_error.contains("HTTP 500"),
            "{}",
            dead[0].last_error
        );
        assert_eq!(s.counters.deliveries(Kind::OnSuccess, Outcome::Error), 1);
        assert_eq!(
            s.counters.deliveries(Kind::OnSuccess, Outcome::Retry),
            u64::from(ATTEMPTS - 1)
        );
        task.abort();
    }
}
