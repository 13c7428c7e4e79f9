//! A trigger as the agent stores it, its errors, and the checks of a new one.

use super::http::spec::HttpSpec;
use super::schedule_expr::{parse_tz, ParseOptions, Schedule, ScheduleError, ScheduleExpr};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A trigger that cannot be created, found or changed.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Bad schedule expression or time zone
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Bad trigger name
    #[error("trigger name {0:?}: use 1-64 of A-Z a-z 0-9 . _ -")]
    Name(String),
    /// A schedule with no fire after now
    #[error("schedule '{0}' never fires after now: check its years and days")]
    NeverFires(String),
    /// No kind given
    #[error("a trigger needs a kind: --schedule EXPRESSION, --http or --watch DIR")]
    NoKind,
    /// Bad HTTP trigger settings
    #[error("{0}")]
    Http(String),
    /// Bad file-event trigger settings
    #[error(transparent)]
    Files(#[from] super::files::spec::FilesError),
    /// A schedule asked of a trigger of another kind
    #[error("trigger {0} is not a schedule")]
    NotSchedule(String),
    /// Unknown trigger
    #[error("trigger {0} not found: check the name (flint triggers ls)")]
    NotFound(String),
    /// Name taken
    #[error("trigger {0} already exists: pick another name or delete it first")]
    Exists(String),
    /// The function does not exist
    #[error("function {0} not found: create it first (flint create) or check the name (flint ls)")]
    NoFunction(String),
    /// Bad queue trigger settings
    #[error(transparent)]
    Queue(#[from] super::queue::SpecError),
    /// Registry failure or a corrupt row
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a schedule does with fires missed while flintd was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// The next fire is the next scheduled time in the future.
    #[default]
    Skip,
    /// One late fire (for the latest missed time), then on schedule.
    RunOnce,
}

/// A schedule trigger's settings (the `spec` column, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub expression: String,
    /// IANA name; None = UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub missed: Missed,
}

/// What kind of trigger, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerKind {
    Schedule(ScheduleSpec),
    /// An HTTP function URL (triggers/http/).
    Http(HttpSpec),
    /// File events of a watched directory (triggers/files/).
    Files(super::files::spec::FilesSpec),
    /// A message-queue consumer (RabbitMQ).
    Queue(super::queue::QueueSpec),
}

impl TriggerKind {
    /// The `kind` column.
    pub fn label(&self) -> &'static str {
        match self {
            TriggerKind::Schedule(_) => "schedule",
            TriggerKind::Http(_) => "http",
            TriggerKind::Files(_) => "files",
            TriggerKind::Queue(_) => "queue",
        }
    }
}

/// One stored trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub function: String,
    pub kind: TriggerKind,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    /// The scheduled time of the last fire handed to the function.
    pub last_fire: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The scheduled time of the next fire (None: disabled, or never again).
    pub next_fire: Option<DateTime<Utc>>,
}

impl Trigger {
    /// The trigger's schedule, parsed; rates are anchored at its creation.
    pub fn schedule(&self, opts: ParseOptions) -> Result<Schedule, TriggerError> {
        let TriggerKind::Schedule(spec) = &self.kind else {
            return Err(TriggerError::NotSchedule(self.name.clone()));
        };
        Ok(Schedule {
            expr: ScheduleExpr::parse(&spec.expression, opts)?,
            tz: parse_tz(spec.timezone.as_deref())?,
            anchor: self.created,
        })
    }
}

/// Checks a trigger name: 1-64 of `A-Z a-z 0-9 . _ -` (EventBridge's rule names).
pub fn check_name(name: &str) -> Result<(), TriggerError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TriggerError::Name(name.to_string()))
    }
}

/// EventBridge's ARN of a rule: `arn:aws:events:REGION:ACCOUNT:rule/NAME`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:events:{region}:{account}:rule/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        check_name("nightly-etl_v2.1").unwrap();
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn spec_json_round_trips_with_defaults() {
        let s: ScheduleSpec = serde_json::from_str(r#"{"expression":"rate(1 day)"}"#).unwrap();
        assert_eq!(s.missed, Missed::Skip);
        assert_eq!(s.timezone, None);
        let s = ScheduleSpec {
            expression: "cron(0 8 * * ? *)".into(),
            timezone: Some("Europe/Berlin".into()),
            missed: Missed::RunOnce,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains(r#""missed":"run-once""#));
        assert_eq!(serde_json::from_str::<ScheduleSpec>(&j).unwrap(), s);
    }
}
