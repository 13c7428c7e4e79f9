//! `flint triggers ...`: create, list, show, enable, disable and delete triggers.

use crate::queue_args::{self, QueueArgs};

use clap::{Subcommand, ValueEnum};
use flint_agent::client::Client;
use flint_proto::v1::{
    create_trigger_request, trigger, CreateTriggerRequest, DeleteTriggerRequest, GetTriggerRequest,
    ListTriggersRequest, MissedFires, ScheduleSpec, SetTriggerEnabledRequest, Trigger,
};

/// What a schedule does with fires missed while flintd was down.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Missed {
    /// Go on with the next time in the future.
    Skip,
    /// Fire once, late, then go on.
    RunOnce,
}

#[derive(Subcommand)]
pub enum TriggersCmd {
    /// Create a trigger: a schedule (--schedule) or a queue consumer (--queue).
    Create {
        name: String,
        #[arg(long)]
        function: String,
        /// rate(N minute|minutes|hour|hours|day|days) or
        /// cron(min hour day-of-month month day-of-week year), as EventBridge.
        #[arg(long, required_unless_present = "queue")]
        schedule: Option<String>,
        /// IANA time zone the cron fields are read in (default UTC).
        #[arg(long)]
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
        "schedule": s.map(|s| s.expression.as_str()),
        "timezone": s.map(|s| if s.timezone.is_empty() { "UTC" } else { s.timezone.as_str() }),
        "missed": s.map(missed_label),
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
            timezone,
            missed,
            disabled,
            queue,
        } => {
            let missed = match missed {
                Missed::Skip => MissedFires::MissedSkip,
                Missed::RunOnce => MissedFires::MissedRunOnce,
            };
            let kind = match (queue.spec()?, schedule) {
                (Some(q), _) => create_trigger_request::Kind::Queue(q),
                (None, Some(expression)) => create_trigger_request::Kind::Schedule(ScheduleSpec {
                    expression,
                    timezone: timezone.unwrap_or_default(),
                    missed: missed as i32,
                }),
                (None, None) => anyhow::bail!("give --schedule EXPRESSION or --queue URL"),
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
                "{:<24} {:<20} {:<8} {:<28} {:<24} {:<24} LAST ERROR",
                "NAME", "FUNCTION", "ENABLED", "SOURCE", "LAST FIRE", "NEXT FIRE"
            );
            for t in &all {
                let queue_label = queue(t).map(|q| format!("queue:{}", q.queue_name));
                let expr = match (schedule(t), &queue_label) {
                    (Some(s), _) => s.expression.as_str(),
                    (None, Some(q)) => q.as_str(),
                    (None, None) => "-",
                };
                println!(
                    "{:<24} {:<20} {:<8} {:<28} {:<24} {:<24} {}",
                    t.name,
                    t.function_name,
                    if t.enabled { "yes" } else { "no" },
                    expr,
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
