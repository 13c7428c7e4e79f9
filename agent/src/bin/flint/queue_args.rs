//! `flint triggers create ... --queue URL --queue-name Q ...`: the flags of a
//! message-queue trigger and how it is shown.

use clap::Args;
use flint_proto::v1::QueueSpec;

/// The flags of a queue trigger (with `--queue`).
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Consume a RabbitMQ queue: amqp://USER:PASSWORD@HOST:PORT/VHOST (vhost
    /// URL-encoded, %2f = "/"). The password is never shown again.
    #[arg(long, value_name = "URL", conflicts_with = "schedule")]
    pub queue: Option<String>,
    /// The queue to consume (with --queue).
    #[arg(long, requires = "queue")]
    pub queue_name: Option<String>,
    /// Messages per batch, 1-10000 (default 100).
    #[arg(long, requires = "queue")]
    pub batch_size: Option<u32>,
    /// Seconds a batch waits to fill after its first message, 0-300 (default 0.5).
    #[arg(long, requires = "queue")]
    pub batching_window_s: Option<f64>,
    /// Concurrent batches at most, 1-1000 (default 5).
    #[arg(long, requires = "queue")]
    pub max_concurrency: Option<u32>,
    /// Retries of a failing batch before it is dead-lettered, 0-1000 (default 2).
    #[arg(long, requires = "queue")]
    pub retries: Option<u32>,
    /// Function invoked asynchronously with a batch that exhausted its retries
    /// (default: the messages are rejected to the queue's dead-letter exchange).
    #[arg(long, value_name = "FUNCTION", requires = "queue")]
    pub dead_letter: Option<String>,
}

impl QueueArgs {
    /// The request's spec, if `--queue` was given.
    pub fn spec(self) -> anyhow::Result<Option<QueueSpec>> {
        let Some(url) = self.queue else {
            return Ok(None);
        };
        let window_ms = match self.batching_window_s {
            Some(s) if !(0.0..=300.0).contains(&s) => {
                anyhow::bail!("--batching-window-s {s}: use 0-300 seconds")
            }
            Some(s) => Some((s * 1000.0).round() as u32),
            None => None,
        };
        let batch_size = match self.batch_size {
            Some(0) => anyhow::bail!("--batch-size 0: use 1-10000"),
            b => b.unwrap_or(0),
        };
        let max_concurrency = match self.max_concurrency {
            Some(0) => anyhow::bail!("--max-concurrency 0: use 1-1000"),
            c => c.unwrap_or(0),
        };
        Ok(Some(QueueSpec {
            url,
            queue_name: self.queue_name.unwrap_or_default(),
            batch_size,
            batching_window_ms: window_ms,
            max_concurrency,
            retries: self.retries,
            dead_letter_function: self.dead_letter.unwrap_or_default(),
        }))
    }
}

/// The queue trigger's settings as JSON fields.
pub fn json(q: &QueueSpec) -> serde_json::Value {
    serde_json::json!({
        "url": q.url, "queue_name": q.queue_name, "batch_size": q.batch_size,
        "batching_window_s": q.batching_window_ms.unwrap_or_default() as f64 / 1000.0,
        "max_concurrency": q.max_concurrency, "retries": q.retries.unwrap_or_default(),
        "dead_letter": (!q.dead_letter_function.is_empty()).then_some(&q.dead_letter_function),
    })
}

/// The queue trigger's lines of `flint triggers get`.
pub fn print(q: &QueueSpec) {
    println!("queue:      {}", q.url);
    println!("queue name: {}", q.queue_name);
    println!("batch size: {}", q.batch_size);
    println!(
        "window:     {} s",
        q.batching_window_ms.unwrap_or_default() as f64 / 1000.0
    );
    println!("max conc.:  {}", q.max_concurrency);
    println!("retries:    {}", q.retries.unwrap_or_default());
    let dl = if q.dead_letter_function.is_empty() {
        "- (rejected to the queue's dead-letter exchange)"
    } else {
        &q.dead_letter_function
    };
    println!("dead letter: {dl}");
}
