//! `flint triggers ...`: create, list, show, enable, disable and delete triggers.

use crate::queue_args::{self, QueueArgs};
use crate::triggers_files::{self as tf, FilesArgs};

use clap::{Subcommand, ValueEnum};
use flint_agent::client::Client;
use flint_proto::v1::{
    create_trigger_request, trigger, CreateTriggerRequest, DeleteTriggerRequest, GetTriggerRequest,
    HttpSpec, ListTriggersRequest, MissedFires, ScheduleSpec, SetTriggerEnabledRequest, Trigger,
};

/// What a schedule does with fires missed while flintd was down.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Missed {
    /// Go on with the next time in the future.
    Skip,
    /// Fire once, late, then go on.
    RunOnce,
}

// One command parsed once per process: the size of its largest variant is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum TriggersCmd {
    /// Create a trigger: a schedule (--schedule), an HTTP function URL (--http), file
    /// events (--watch) or a queue consumer (--queue).
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["schedule", "http", "watch", "queue"])))]
    Create {
        name: String,
        #[arg(long)]
        function: String,
        /// rate(N minute|minutes|hour|hours|day|days) or
        /// cron(min hour day-of-month month day-of-week year), as EventBridge.
        #[arg(long)]
        schedule: Option<String>,
        #[command(flatten)]
        files: FilesArgs,
        /// An HTTP function URL, served by flintd's --http-listen at /NAME/.
        #[arg(long)]
        http: bool,
        /// Who may call the function URL: none (anyone who reaches the listener).
        #[arg(long, default_value = "none", requires = "http")]
        auth: String,
        /// IANA time zone the cron fields are read in (default UTC).
        #[arg(long, conflicts_with = "http")]
        timezone: Option<String>,
        /// Fires missed while flintd was down.
        #[arg(long, value_enum, default_value_t = Missed::Skip)]
        missed: Missed,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// List triggers (one function's with --function).
    Ls {
        #[arg(long)]
        function: Option<String>,
    },
    /// Show one trigger.
    Get { name: String },
    /// Enable a trigger (its next fire is its next time after now).
    Enable { name: String },
    /// Disable a trigger.
    Disable { name: String },
    /// Delete a trigger.
    #[command(alias = "rm")]
    Delete { name: String },
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", s.message(), s.code())
}

fn schedule(t: &Trigger) -> Option<&ScheduleSpec> {
    match &t.kind {
        Some(trigger::Kind::Schedule(s)) => Some(s),
        _ => None,
    }
}

fn http(t: &Trigger) -> Option<&HttpSpec> {
    match &t.kind {
        Some(trigger::Kind::Http(h)) => Some(h),
        _ => None,
    }
}

fn kind_label(t: &Trigger) -> &'static str {
    match &t.kind {
        Some(trigger::Kind::Schedule(_)) => "schedule",
        Some(trigger::Kind::Http(_)) => "http",
        Some(trigger::Kind::Files(_)) => "files",
        Some(trigger::Kind::Queue(_)) => "queue",
        None => "-",
    }
}

/// The schedule expression, the URL (or, without a listener, a note saying so), or
/// the watched directory with its filters.
fn what(t: &Trigger) -> String {
    match &t.kind {
        Some(trigger::Kind::Schedule(s)) => s.expression.clone(),
        Some(trigger::Kind::Http(_)) if t.url.is_empty() => "(no --http-listen)".into(),
        Some(trigger::Kind::Http(_)) => t.url.clone(),
        Some(trigger::Kind::Files(f)) => tf::summary(f),
        Some(trigger::Kind::Queue(q)) => format!("queue:{}", q.queue_name),
        None => "-".into(),
    }
}

fn missed_label(s: &ScheduleSpec) -> &'static str {
    match MissedFires::try_from(s.missed) {
        Ok(MissedFires::MissedRunOnce) => "run-once",
        _ => "skip",
    }
}

fn queue(t: &Trigger) -> Option<&flint_proto::v1::QueueSpec> {
    match &t.kind {
        Some(trigger::Kind::Queue(q)) => Some(q),
        _ => None,
    }
}

fn trigger_json(t: &Trigger) -> serde_json::Value {
    let s = schedule(t);
    let mut v = serde_json::json!({
        "name": t.name, "function": t.function_name, "arn": t.arn, "enabled": t.enabled,
        "kind": kind_label(t),
        "url": http(t).map(|_| t.url.as_str()),
        "auth": http(t).map(|h| if h.auth.is_empty() { "none" } else { h.auth.as_str() }),
        "schedule": s.map(|s| s.expression.as_str()),
        "timezone": s.map(|s| if s.timezone.is_empty() { "UTC" } else { s.timezone.as_str() }),
        "missed": s.map(missed_label),
        "files": tf::files(t).map(tf::json),
        "created": t.created, "last_fire": t.last_fire, "next_fire": t.next_fire,
        "last_error": t.last_error,
    });
    if let Some(q) = queue(t) {
        v["queue"] = queue_args::json(q);
    }
    v
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn print_one(t: &Trigger, json: bool) {
    if json {
        println!("{}", trigger_json(t));
        return;
    }
    println!("name:       {}", t.name);
    println!("arn:        {}", t.arn);
    println!("function:   {}", t.function_name);
    if let Some(s) = schedule(t) {
        println!("schedule:   {}", s.expression);
        let tz = if s.timezone.is_empty() {
            "UTC"
        } else {
            &s.timezone
        };
        println!("timezone:   {tz}");
        println!("missed:     {}", missed_label(s));
    }
    if let Some(h) = http(t) {
        println!("url:        {}", what(t));
        println!("auth:       {}", or_dash(&h.auth));
    }
    if let Some(f) = tf::files(t) {
        tf::print(f, &t.name);
    }
    if let Some(q) = queue(t) {
        queue_args::print(q);
    }
    println!("enabled:    {}", t.enabled);
    println!("created:    {}", t.created);
    println!("last fire:  {}", or_dash(&t.last_fire));
    println!("next fire:  {}", or_dash(&t.next_fire));
    println!("last error: {}", or_dash(&t.last_error));
}

/// Runs one `flint triggers` command.
pub async fn run(c: &Client, cmd: TriggersCmd, json: bool) -> anyhow::Result<i32> {
    let mut api = c.triggers();
    match cmd {
        TriggersCmd::Create {
            name,
            function,
            schedule,
            http,
            auth,
            files,
            timezone,
            missed,
            disabled,
            queue,
        } => {
            let missed = match missed {
                Missed::Skip => MissedFires::MissedSkip,
                Missed::RunOnce => MissedFires::MissedRunOnce,
            };
            let kind = match (files.spec(), queue.spec()?, schedule, http) {
                (Some(f), _, _, _) => create_trigger_request::Kind::Files(f),
                (None, Some(q), _, _) => create_trigger_request::Kind::Queue(q),
                (None, None, Some(expression), _) => {
                    create_trigger_request::Kind::Schedule(ScheduleSpec {
                        expression,
                        timezone: timezone.unwrap_or_default(),
                        missed: missed as i32,
                    })
                }
                (None, None, None, _) => create_trigger_request::Kind::Http(HttpSpec { auth }),
            };
            let t = api
                .create_trigger(CreateTriggerRequest {
                    name,
                    function_name: function,
                    kind: Some(kind),
                    disabled,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_one(&t, json);
        }
        TriggersCmd::Ls { function } => {
            let all = api
                .list_triggers(ListTriggersRequest {
                    function_name: function.unwrap_or_default(),
                })
                .await
                .map_err(status_err)?
                .into_inner()
                .triggers;
            if json {
                let v: Vec<_> = all.iter().map(trigger_json).collect();
                println!("{}", serde_json::Value::Array(v));
                return Ok(0);
            }
            println!(
                "{:<24} {:<20} {:<8} {:<8} {:<40} {:<24} {:<24} LAST ERROR",
                "NAME", "FUNCTION", "KIND", "ENABLED", "SCHEDULE / URL", "LAST FIRE", "NEXT FIRE"
            );
            for t in &all {
                println!(
                    "{:<24} {:<20} {:<8} {:<8} {:<40} {:<24} {:<24} {}",
                    t.name,
                    t.function_name,
                    kind_label(t),
                    if t.enabled { "yes" } else { "no" },
                    what(t),
                    or_dash(&t.last_fire),
                    or_dash(&t.next_fire),
                    or_dash(&t.last_error)
                );
            }
        }
        TriggersCmd::Get { name } => {
            let t = api
                .get_trigger(GetTriggerRequest { name })
                .await
                .map_err(status_err)?
                .into_inner();
            print_one(&t, json);
        }
        TriggersCmd::Enable { name } => {
            let t = api
                .set_trigger_enabled(SetTriggerEnabledRequest {
                    name,
                    enabled: true,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_one(&t, json);
        }
        TriggersCmd::Disable { name } => {
            let t = api
                .set_trigger_enabled(SetTriggerEnabledRequest {
                    name,
                    enabled: false,
                })
                .await
                .map_err(status_err)?
                .into_inner();
            print_one(&t, json);
        }
        TriggersCmd::Delete { name } => {
            api.delete_trigger(DeleteTriggerRequest { name: name.clone() })
                .await
                .map_err(status_err)?;
            if json {
                println!("{}", serde_json::json!({"deleted": name}));
            } else {
                println!("deleted trigger {name}");
            }
        }
    }
    Ok(0)
}
