//! The file-event side of `flint triggers`: the flags of `create --watch DIR` and
//! how a files trigger is shown.

use clap::Args;
use flint_proto::v1::{trigger, FilesSpec, Trigger};

/// `flint triggers create NAME --function F --watch DIR ...`
#[derive(Args, Debug, Default)]
pub struct FilesArgs {
    /// Watch this directory and its subdirectories (absolute, existing): files closed
    /// after writing or moved
    /// in invoke the function with S3's ObjectCreated:Put record, deletions and moves
    /// out with ObjectRemoved:Delete. The function reads the files at
    /// /mnt/flint/NAME (read-only).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["schedule", "timezone"])]
    pub watch: Option<String>,
    /// Only keys (paths relative to DIR) starting with this.
    #[arg(long, requires = "watch")]
    pub prefix: Option<String>,
    /// Only keys ending with this.
    #[arg(long, requires = "watch")]
    pub suffix: Option<String>,
    /// Which changes: created, removed or created,removed (default both).
    #[arg(long, requires = "watch", value_name = "LIST")]
    pub events: Option<String>,
    /// Bearer token of POST /flint/s3-notifications/NAME on flintd's --api-listen
    /// (for MinIO's or Ceph RGW's webhook target); never shown again.
    #[arg(long, requires = "watch", value_name = "TOKEN")]
    pub webhook_token: Option<String>,
}

impl FilesArgs {
    /// The settings, when --watch was given.
    pub fn spec(self) -> Option<FilesSpec> {
        Some(FilesSpec {
            dir: self.watch?,
            prefix: self.prefix.unwrap_or_default(),
            suffix: self.suffix.unwrap_or_default(),
            events: self
                .events
                .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            webhook_token: self.webhook_token.unwrap_or_default(),
            webhook_token_set: false,
        })
    }
}

pub fn files(t: &Trigger) -> Option<&FilesSpec> {
    match &t.kind {
        Some(trigger::Kind::Files(f)) => Some(f),
        _ => None,
    }
}

/// The one-line summary in `flint triggers ls`.
pub fn summary(f: &FilesSpec) -> String {
    format!("watch {}", f.dir)
}

pub fn json(f: &FilesSpec) -> serde_json::Value {
    serde_json::json!({
        "dir": f.dir, "prefix": f.prefix, "suffix": f.suffix, "events": f.events,
        "webhook_token": if f.webhook_token_set { "(set)" } else { "" },
    })
}

pub fn print(f: &FilesSpec, name: &str) {
    println!("watch:      {}", f.dir);
    println!("mounted at: /mnt/flint/{name} (read-only)");
    if !f.prefix.is_empty() {
        println!("prefix:     {}", f.prefix);
    }
    if !f.suffix.is_empty() {
        println!("suffix:     {}", f.suffix);
    }
    println!("events:     {}", f.events.join(","));
    let token = if f.webhook_token_set {
        "(set)"
    } else {
        "(none: webhook off)"
    };
    println!("webhook:    /flint/s3-notifications/{name} token {token}");
}
