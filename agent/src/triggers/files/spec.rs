//! A file-event trigger's settings (the `spec` column, as JSON) and their checks.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the watched directory appears inside the sandboxes of the trigger's function:
/// `/mnt/flint/<trigger name>`, read-only.
pub const MOUNT_ROOT: &str = "/mnt/flint";

/// The longest webhook token accepted, in bytes.
const TOKEN_MAX: usize = 256;

/// A file-event trigger that cannot be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilesError {
    /// The watched directory is not an absolute path
    #[error("--watch {0:?}: give an absolute path to an existing directory")]
    NotAbsolute(String),
    /// The watched directory does not exist or is not a directory
    #[error("--watch {0}: not an existing directory ({1})")]
    NotADirectory(String, String),
    /// An unknown event name
    #[error("--events: unknown event {0:?}; use created, removed or both (created,removed)")]
    Event(String),
    /// An empty event list
    #[error("--events: name at least one of created, removed")]
    NoEvents,
    /// A name that cannot be a directory name under /mnt/flint
    #[error(
        "a file-event trigger cannot be named {0:?}: its directory is mounted at /mnt/flint/NAME"
    )]
    Name(String),
    /// A token that cannot be sent in an HTTP header
    #[error("--webhook-token: use 16-256 printable ASCII characters without spaces")]
    Token,
}

/// Which changes a trigger delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileEvent {
    /// A file closed after writing, or moved in: `ObjectCreated:Put`.
    Created,
    /// A file deleted, or moved out: `ObjectRemoved:Delete`.
    Removed,
}

impl FileEvent {
    /// Parses `created` or `removed`.
    pub fn parse(s: &str) -> Result<Self, FilesError> {
        match s.trim() {
            "created" => Ok(FileEvent::Created),
            "removed" => Ok(FileEvent::Removed),
            other => Err(FilesError::Event(other.to_string())),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FileEvent::Created => "created",
            FileEvent::Removed => "removed",
        }
    }
}

fn both() -> Vec<FileEvent> {
    vec![FileEvent::Created, FileEvent::Removed]
}

/// A file-event trigger's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesSpec {
    /// The watched directory, absolute (with its subdirectories).
    pub dir: String,
    /// Only keys (paths relative to `dir`) that start with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Only keys that end with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Which changes are delivered (default both).
    #[serde(default = "both")]
    pub events: Vec<FileEvent>,
    /// The bearer token of the S3-notification webhook; none: the webhook refuses
    /// every request for this trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_token: Option<String>,
}

impl FilesSpec {
    /// Checks a new trigger's settings: `dir` an existing absolute directory, at
    /// least one event, a token usable in a header. Sorts and dedups `events`.
    pub fn check(&mut self, name: &str) -> Result<(), FilesError> {
        if name == "." || name == ".." {
            return Err(FilesError::Name(name.to_string()));
        }
        if !Path::new(&self.dir).is_absolute() {
            return Err(FilesError::NotAbsolute(self.dir.clone()));
        }
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(FilesError::NotADirectory(
                    self.dir.clone(),
                    "it is a file".into(),
                ))
            }
            Err(e) => return Err(FilesError::NotADirectory(self.dir.clone(), e.to_string())),
        }
        self.events.sort();
        self.events.dedup();
        if self.events.is_empty() {
            return Err(FilesError::NoEvents);
        }
        if let Some(t) = &self.webhook_token {
            let ok = (16..=TOKEN_MAX).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(FilesError::Token);
            }
        }
        Ok(())
    }

    /// True when `key` passes the prefix and suffix filters.
    pub fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }

    /// True when `event` is delivered.
    pub fn wants(&self, event: FileEvent) -> bool {
        self.events.contains(&event)
    }
}

/// Parses a comma-separated event list (`created,removed`).
pub fn parse_events(list: &str) -> Result<Vec<FileEvent>, FilesError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(FileEvent::parse)
        .collect()
}

/// The path a trigger's directory has inside its function's sandboxes.
pub fn mount_path(trigger: &str) -> String {
    format!("{MOUNT_ROOT}/{trigger}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &str) -> FilesSpec {
        FilesSpec {
            dir: dir.into(),
            prefix: String::new(),
            suffix: String::new(),
            events: both(),
            webhook_token: None,
        }
    }

    #[test]
    fn the_directory_must_exist_and_be_absolute() {
        let d = tempfile::tempdir().unwrap();
        spec(d.path().to_str().unwrap()).check("t").unwrap();
        assert_eq!(
            spec(d.path().to_str().unwrap()).check(".."),
            Err(FilesError::Name("..".into()))
        );
        assert!(matches!(
            spec("rel/dir").check("t"),
            Err(FilesError::NotAbsolute(_))
        ));
        let missing = d.path().join("nope");
        let e = spec(missing.to_str().unwrap()).check("t").unwrap_err();
        assert!(e.to_string().contains("not an existing directory"), "{e}");
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            spec(file.to_str().unwrap()).check("t"),
            Err(FilesError::NotADirectory(_, _))
        ));
    }

    #[test]
    fn events_tokens_and_filters() {
        assert_eq!(
            parse_events("removed, created,removed").unwrap(),
            [FileEvent::Removed, FileEvent::Created, FileEvent::Removed]
        );
        assert_eq!(parse_events("put"), Err(FilesError::Event("put".into())));
        let d = tempfile::tempdir().unwrap();
        let mut s = spec(d.path().to_str().unwrap());
        s.events = vec![];
        assert_eq!(s.check("t"), Err(FilesError::NoEvents));
        s.events = vec![FileEvent::Removed, FileEvent::Removed];
        s.webhook_token = Some("short".into());
        assert_eq!(s.check("t"), Err(FilesError::Token));
        s.webhook_token = Some("a-long-enough-secret-token".into());
        s.check("t").unwrap();
        assert_eq!(s.events, [FileEvent::Removed]);
        assert!(!s.wants(FileEvent::Created));
        s.prefix = "in/".into();
        s.suffix = ".csv".into();
        assert!(s.matches("in/a.csv"));
        assert!(!s.matches("out/a.csv") && !s.matches("in/a.txt"));
    }

    #[test]
    fn json_defaults_to_both_events() {
        let s: FilesSpec = serde_json::from_str(r#"{"dir":"/srv"}"#).unwrap();
        assert_eq!(s.events, both());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"dir":"/srv","events":["created","removed"]}"#
        );
    }
}
