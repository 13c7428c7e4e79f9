//! S3's event notification record (event version 2.1), the payload a file-event
//! trigger invokes with: `{"Records": [record]}`, one record per invocation, as S3
//! sends to Lambda. The bucket is the trigger (name and `arn:aws:s3:::NAME`), the
//! object key the file's path relative to the watched directory, URL-encoded as S3
//! does (a space is `+`, `/` stays, other bytes outside `A-Z a-z 0-9 - _ . ~` are
//! `%XX` of their UTF-8).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Event {
    /// `ObjectCreated:Put`
    Put,
    /// `ObjectRemoved:Delete`
    Delete,
}

impl S3Event {
    pub fn name(self) -> &'static str {
        match self {
            S3Event::Put => "ObjectCreated:Put",
            S3Event::Delete => "ObjectRemoved:Delete",
        }
    }
}

/// The object of a record: its key (not yet encoded) and, for a created file, its
/// size and the MD5 of its content (S3's eTag of a single-part upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: Option<u64>,
    pub md5_hex: Option<String>,
}

/// Where the record says it happened.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub region: &'a str,
    pub account: &'a str,
    /// The trigger's name: bucket name and configuration id.
    pub bucket: &'a str,
}

/// Hands out S3's `sequencer` values for one bucket: hexadecimal, increasing, the
/// same width (so they order as strings), starting from the clock in microseconds
/// so that they keep increasing across restarts.
#[derive(Debug)]
pub struct Sequencer(AtomicU64);

impl Sequencer {
    pub fn new() -> Self {
        Self::starting_at(Utc::now().timestamp_micros().max(0) as u64)
    }

    pub fn starting_at(n: u64) -> Self {
        Sequencer(AtomicU64::new(n))
    }

    /// The next value: 16 upper-case hex digits.
    pub fn next(&self) -> String {
        format!("{:016X}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for Sequencer {
    fn default() -> Self {
        Self::new()
    }
}

/// URL-encodes an object key as S3 does in event notifications.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One record.
pub fn record(
    origin: &Origin<'_>,
    event: S3Event,
    time: DateTime<Utc>,
    object: &Object,
    sequencer: &str,
) -> Value {
    let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let mut obj = json!({ "key": encode_key(&object.key) });
    if event == S3Event::Put {
        obj["size"] = json!(object.size.unwrap_or(0));
        if let Some(md5) = &object.md5_hex {
            obj["eTag"] = json!(md5);
        }
    }
    obj["sequencer"] = json!(sequencer);
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": origin.region,
        "eventTime": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "eventName": event.name(),
        "userIdentity": { "principalId": origin.account },
        "requestParameters": { "sourceIPAddress": "127.0.0.1" },
        "responseElements": {
            "x-amz-request-id": &id[..16],
            "x-amz-id-2": id,
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": origin.bucket,
            "bucket": {
                "name": origin.bucket,
                "ownerIdentity": { "principalId": origin.account },
                "arn": format!("arn:aws:s3:::{}", origin.bucket),
            },
            "object": obj,
        }
    })
}

/// The invocation payload for records: `{"Records": [...]}`.
pub fn payload(records: Vec<Value>) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}

/// MD5 of `bytes` in lower-case hex.
#[cfg(test)]
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and MD5 (lower-case hex) of a file, read in 64 KiB pieces.
pub fn md5_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use md5::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((size, hex(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            region: "eu-west-1",
            account: "123456789012",
            bucket: "uploads",
        }
    }

    #[test]
    fn keys_are_encoded_as_s3_encodes_them() {
        assert_eq!(encode_key("in/red flower.jpg"), "in/red+flower.jpg");
        assert_eq!(encode_key("a+b=c&d"), "a%2Bb%3Dc%26d");
        assert_eq!(encode_key("ünï~-_.x"), "%C3%BCn%C3%AF~-_.x");
    }

    #[test]
    fn a_put_record_has_s3s_shape() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T10:05:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let obj = Object {
            key: "in/a b.csv".into(),
            size: Some(3),
            md5_hex: Some(md5_hex(b"abc")),
        };
        let r = record(&origin(), S3Event::Put, t, &obj, "0000000000000001");
        assert_eq!(r["eventVersion"], "2.1");
        assert_eq!(r["eventSource"], "aws:s3");
        assert_eq!(r["awsRegion"], "eu-west-1");
        assert_eq!(r["eventTime"], "2026-12-06T10:05:00.123Z");
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["userIdentity"]["principalId"], "123456789012");
        assert_eq!(r["requestParameters"]["sourceIPAddress"], "127.0.0.1");
        assert_eq!(
            r["responseElements"]["x-amz-request-id"]
                .as_str()
                .unwrap()
                .len(),
            16
        );
        let s3 = &r["s3"];
        assert_eq!(s3["s3SchemaVersion"], "1.0");
        assert_eq!(s3["configurationId"], "uploads");
        assert_eq!(
            s3["bucket"],
            json!({"name": "uploads", "ownerIdentity": {"principalId": "123456789012"},
                   "arn": "arn:aws:s3:::uploads"})
        );
        assert_eq!(
            s3["object"],
            json!({"key": "in/a+b.csv", "size": 3,
                   "eTag": "900150983cd24fb0d6963f7d28e17f72", "sequencer": "0000000000000001"})
        );
    }

    #[test]
    fn a_delete_record_has_no_size_or_etag() {
        let obj = Object {
            key: "gone.txt".into(),
            size: None,
            md5_hex: None,
        };
        let r = record(
            &origin(),
            S3Event::Delete,
            Utc::now(),
            &obj,
            "00000000000000FF",
        );
        assert_eq!(r["eventName"], "ObjectRemoved:Delete");
        assert_eq!(
            r["s3"]["object"],
            json!({"key": "gone.txt", "sequencer": "00000000000000FF"})
        );
        let p: Value = serde_json::from_slice(&payload(vec![r.clone()])).unwrap();
        assert_eq!(p["Records"][0], r);
    }

    #[test]
    fn sequencers_increase_as_strings() {
        let s = Sequencer::starting_at(0xFF);
        let (a, b) = (s.next(), s.next());
        assert_eq!(a, "00000000000000FF");
        assert!(b > a, "{b} > {a}");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.path().join("f"), &big).unwrap();
        assert_eq!(
            md5_file(&d.path().join("f")).unwrap(),
            (200_000, md5_hex(&big))
        );
    }
}
