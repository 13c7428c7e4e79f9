//! A queue trigger's settings (the `spec` column, as JSON), their checks, and the
//! broker URL as shown (password hidden).

use lapin::uri::{AMQPScheme, AMQPUri};
use serde::{Deserialize, Serialize};

/// Messages per batch when not given (Lambda's default for Amazon MQ).
pub const DEFAULT_BATCH_SIZE: u32 = 100;
/// How long a batch may wait to fill when not given (Lambda: 500 ms).
pub const DEFAULT_WINDOW_MS: u32 = 500;
/// Concurrent batches at most when not given.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 5;
/// Retries of a failing batch when not given.
pub const DEFAULT_RETRIES: u32 = 2;

/// A queue trigger's settings as given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The broker URL does not parse
    #[error("queue URL: {0}; use amqp://USER:PASSWORD@HOST:PORT/VHOST")]
    Url(String),
    /// amqps:// (TLS is not built in)
    #[error("queue URL: only amqp:// is supported (this flintd has no AMQP over TLS)")]
    Scheme,
    /// No queue name
    #[error("a queue trigger needs --queue-name: the RabbitMQ queue to consume")]
    NoQueueName,
    /// Batch size out of range
    #[error("batch size {0}: use 1-10000")]
    BatchSize(u32),
    /// Batching window out of range
    #[error("batching window {0} ms: use 0-300 s")]
    Window(u32),
    /// Concurrency out of range
    #[error("max concurrency {0}: use 1-1000")]
    Concurrency(u32),
    /// Retries out of range
    #[error("retries {0}: use 0-1000")]
    Retries(u32),
}

/// A RabbitMQ queue trigger: consume `queue_name` at `url` in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// `amqp://USER:PASSWORD@HOST:PORT/VHOST` (vhost URL-encoded; `%2f` is `/`).
    pub url: String,
    pub queue_name: String,
    pub batch_size: u32,
    pub batching_window_ms: u32,
    pub max_concurrency: u32,
    /// Retries of a failing batch before it goes to the dead-letter target.
    pub retries: u32,
    /// The function a batch that exhausted its retries is sent to (asynchronously);
    /// None: the batch is dropped (acknowledged) with an error in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
}

impl QueueSpec {
    /// Checks every setting; returns the parsed URL.
    pub fn check(&self) -> Result<AMQPUri, SpecError> {
        let uri = self.uri()?;
        if self.queue_name.is_empty() {
            return Err(SpecError::NoQueueName);
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(SpecError::BatchSize(self.batch_size));
        }
        if self.batching_window_ms > 300_000 {
            return Err(SpecError::Window(self.batching_window_ms));
        }
        if !(1..=1000).contains(&self.max_concurrency) {
            return Err(SpecError::Concurrency(self.max_concurrency));
        }
        if self.retries > 1000 {
            return Err(SpecError::Retries(self.retries));
        }
        Ok(uri)
    }

    /// The broker URL, parsed. (lapin's parser reads only domain names and takes an
    /// IP address for `localhost`: a literal IP host is put back here.)
    pub fn uri(&self) -> Result<AMQPUri, SpecError> {
        let mut uri: AMQPUri = self
            .url
            .parse()
            .map_err(|e: String| SpecError::Url(e.replace(&self.url, &self.redacted_url())))?;
        if uri.scheme != AMQPScheme::AMQP {
            return Err(SpecError::Scheme);
        }
        if let Some(ip) = ip_host(&self.url) {
            uri.authority.host = ip;
        }
        Ok(uri)
    }

    /// The URL with its password replaced by `****` (what `flint triggers` shows).
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// The host of `scheme://[userinfo@]host[:port][/...]` when it is an IP address
/// (IPv6 without its brackets).
fn ip_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => host_port.split(':').next()?,
    };
    host.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// `scheme://user:secret@host...` -> `scheme://user:****@host...`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> QueueSpec {
        QueueSpec {
            url: url.into(),
            queue_name: "orders".into(),
            batch_size: DEFAULT_BATCH_SIZE,
            batching_window_ms: DEFAULT_WINDOW_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            retries: DEFAULT_RETRIES,
            dead_letter: None,
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let s = spec("amqp://app:s3cr%40t@10.0.0.5:5672/prod");
        assert_eq!(s.redacted_url(), "amqp://app:****@10.0.0.5:5672/prod");
        assert_eq!(redact("amqp://host:5672/%2f"), "amqp://host:5672/%2f");
        assert_eq!(redact("amqp://guest@host/"), "amqp://guest@host/");
    }

    #[test]
    fn ip_hosts_are_kept() {
        let host = |u: &str| spec(u).uri().unwrap().authority.host;
        assert_eq!(host("amqp://u:p@10.0.0.5:5672/v"), "10.0.0.5");
        assert_eq!(host("amqp://10.0.0.5/v"), "10.0.0.5");
        assert_eq!(host("amqp://u:p@[::1]:5672/v"), "::1");
        assert_eq!(host("amqp://u:p@mq.example:5672/v"), "mq.example");
        assert_eq!(
            spec("amqp://u:p@10.0.0.5:5673/v")
                .uri()
                .unwrap()
                .authority
                .port,
            5673
        );
    }

    #[test]
    fn vhosts_decode_and_default_to_slash() {
        assert_eq!(spec("amqp://u:p@h:5672/%2f").uri().unwrap().vhost, "/");
        assert_eq!(
            spec("amqp://u:p@h:5672/flint").uri().unwrap().vhost,
            "flint"
        );
        assert_eq!(spec("amqp://u:p@h:5672").uri().unwrap().vhost, "/");
    }

    #[test]
    fn settings_are_checked() {
        spec("amqp://u:p@h:5672/v").check().unwrap();
        assert_eq!(
            spec("amqps://u:p@h:5671/v").check().unwrap_err(),
            SpecError::Scheme
        );
        assert!(matches!(
            spec("http://x").check().unwrap_err(),
            SpecError::Url(_)
        ));
        let mut s = spec("amqp://h");
        s.batch_size = 10_001;
        assert_eq!(s.check().unwrap_err(), SpecError::BatchSize(10_001));
        s.batch_size = 1;
        s.batching_window_ms = 300_001;
        assert_eq!(s.check().unwrap_err(), SpecError::Window(300_001));
        s.batching_window_ms = 0;
        s.max_concurrency = 0;
        assert_eq!(s.check().unwrap_err(), SpecError::Concurrency(0));
        s.max_concurrency = 1;
        s.queue_name.clear();
        assert_eq!(s.check().unwrap_err(), SpecError::NoQueueName);
    }

    #[test]
    fn spec_json_round_trips() {
        let mut s = spec("amqp://u:p@h:5672/v");
        s.dead_letter = Some("dlq".into());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<QueueSpec>(&j).unwrap(), s);
    }
}
