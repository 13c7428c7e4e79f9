//! `flint events`: the asynchronous invocation queue, its dead-letter queue and the
//! event invoke configuration of functions.

use clap::Subcommand;
use flint_agent::client::Client;
use flint_agent::timefmt::rfc3339_millis;
use flint_proto::v1::*;

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Events queued, in flight, retrying or dead (of NAME, or of every function).
    Ls {
        name: Option<String>,
        /// Only events in this state: queued, in-flight, retrying, dead.
        #[arg(long, value_parser = parse_state)]
        state: Vec<EventState>,
    },
    /// The dead-letter queue of NAME: events that exhausted their retries or expired.
    Dlq { name: String },
    /// Queue NAME's dead events again (same request ids, fresh attempts and age).
    Redrive { name: String },
    /// Show NAME's event invoke configuration, or set it with the flags.
    Config {
        name: String,
        /// Retries after a function error: 0-2 (default 2).
        #[arg(long)]
        max_retries: Option<u32>,
        /// Maximum event age, seconds: 60-21600 (default 21600).
        #[arg(long)]
        max_age: Option<u32>,
        /// Function (name or ARN) or http(s):// webhook that receives the record of
        /// each successful event.
        #[arg(long)]
        on_success: Option<String>,
        /// Function or webhook that receives the record of each failed or expired event.
        #[arg(long)]
        on_failure: Option<String>,
        /// Dead-letter target (Lambda's DeadLetterConfig): a function or webhook that
        /// also receives the record of each event that exhausted its retries or
        /// expired (the event stays in `flint events dlq` too).
        #[arg(long)]
        dead_letter: Option<String>,
        /// Remove the configuration (Lambda's defaults apply again).
        #[arg(long, conflicts_with_all = ["max_retries", "max_age", "on_success", "on_failure", "dead_letter"])]
        delete: bool,
    },
    /// Every function's event invoke configuration.
    Configs,
}

fn parse_state(s: &str) -> Result<EventState, String> {
    Ok(match s {
        "queued" => EventState::Queued,
        "in-flight" => EventState::InFlight,
        "retrying" => EventState::Retrying,
        "dead" => EventState::Dead,
        _ => {
            return Err(format!(
                "unknown state {s:?}: use queued, in-flight, retrying or dead"
            ))
        }
    })
}

fn state_name(v: i32) -> &'static str {
    match EventState::try_from(v) {
        Ok(EventState::Queued) => "queued",
        Ok(EventState::InFlight) => "in-flight",
        Ok(EventState::Retrying) => "retrying",
        Ok(EventState::Dead) => "dead",
        _ => "?",
    }
}

fn time(ms: u64) -> String {
    rfc3339_millis(ms / 1000, (ms % 1000) as u32)
}

fn config_json(c: &EventInvokeConfig) -> serde_json::Value {
    serde_json::json!({
        "function_name": c.function_name,
        "maximum_retry_attempts": c.maximum_retry_attempts,
        "maximum_event_age_seconds": c.maximum_event_age_seconds,
        "on_success": c.on_success, "on_failure": c.on_failure,
        "dead_letter": c.dead_letter,
    })
}

fn print_config(c: &EventInvokeConfig, json: bool) {
    if json {
        println!("{}", config_json(c));
        return;
    }
    let none = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    println!("function:     {}", c.function_name);
    println!("max retries:  {}", c.maximum_retry_attempts.unwrap_or(2));
    println!(
        "max age:      {} s",
        c.maximum_event_age_seconds.unwrap_or(21_600)
    );
    println!("on success:   {}", none(&c.on_success));
    println!("on failure:   {}", none(&c.on_failure));
    println!("dead letter:  {}", none(&c.dead_letter));
}

fn print_events(r: &ListEventsResponse, json: bool) {
    if json {
        let events: Vec<_> = r
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "request_id": e.request_id, "function_name": e.function_name,
                    "state": state_name(e.state), "attempts": e.attempts, "deferrals": e.deferrals,
                    "enqueued": time(e.enqueued_unix_ms), "next_attempt": time(e.next_attempt_unix_ms),
                    "last_error": e.last_error, "payload_bytes": e.payload_bytes,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"events": events, "depth": r.depth, "dead": r.dead, "oldest_age_ms": r.oldest_age_ms, "pending_deliveries": r.pending_deliveries})
        );
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<9}  {:>8}  {:<24}  LAST ERROR",
        "REQUEST ID", "FUNCTION", "STATE", "ATTEMPTS", "NEXT ATTEMPT"
    );
    for e in &r.events {
        let next = if state_name(e.state) == "dead" {
            "-".to_string()
        } else {
            time(e.next_attempt_unix_ms)
        };
        let err: String = e.last_error.chars().take(60).collect();
        println!(
            "{:<36}  {:<20}  {:<9}  {:>8}  {:<24}  {err}",
            e.request_id,
            e.function_name,
            state_name(e.state),
            e.attempts,
            next
        );
    }
    println!(
        "queue: {} unfinished, {} dead, oldest {:.1} s, {} webhook deliveries pending",
        r.depth,
        r.dead,
        r.oldest_age_ms as f64 / 1e3,
        r.pending_deliveries
    );
}

/// Runs `flint events ...`.
pub async fn run(c: &Client, cmd: EventsCmd, json: bool) -> anyhow::Result<()> {
    let mut ev = c.events();
    let st = |s: tonic::Status| anyhow::anyhow!("{} ({:?})", s.message(), s.code());
    match cmd {
        EventsCmd::Ls { name, state } => {
            let r = ev
                .list_events(ListEventsRequest {
                    function_name: name.unwrap_or_default(),
                    states: state.into_iter().map(|s| s as i32).collect(),
                    limit: 0,
                })
                .await
                .map_err(st)?
                .into_inner();
            print_events(&r, json);
        }
        EventsCmd::Dlq { name } => {
            let r = ev
                .list_events(ListEventsRequest {
                    function_name: name,
                    states: vec![EventState::Dead as i32],
                    limit: 0,
                })
                .await
                .map_err(st)?
                .into_inner();
            print_events(&r, json);
        }
        EventsCmd::Redrive { name } => {
            let r = ev
                .redrive_events(RedriveEventsRequest {
                    function_name: name.clone(),
                })
                .await
                .map_err(st)?
                .into_inner();
            if json {
                println!("{}", serde_json::json!({"redriven": r.redriven}));
            } else {
                println!("{} dead events of {name} queued again", r.redriven);
            }
        }
        EventsCmd::Configs => {
            let mut marker = String::new();
            let mut all = Vec::new();
            loop {
                let r = ev
                    .list_event_invoke_configs(ListEventInvokeConfigsRequest {
                        marker,
                        max_items: 0,
                    })
                    .await
                    .map_err(st)?
                    .into_inner();
                all.extend(r.configs);
                if r.next_marker.is_empty() {
                    break;
                }
                marker = r.next_marker;
            }
            if json {
                let v: Vec<_> = all.iter().map(config_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (i, c) in all.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_config(c, false);
                }
            }
        }
        EventsCmd::Config {
            name, delete: true, ..
        } => {
            ev.delete_event_invoke_config(DeleteEventInvokeConfigRequest {
                function_name: name.clone(),
            })
            .await
            .map_err(st)?;
            if !json {
                println!("event invoke config of {name} removed");
            }
        }
        EventsCmd::Config {
            name,
            max_retries: None,
            max_age: None,
            on_success: None,
            on_failure: None,
            dead_letter: None,
            ..
        } => {
            let c = ev
                .get_event_invoke_config(GetEventInvokeConfigRequest {
                    function_name: name,
                })
                .await
                .map_err(st)?
                .into_inner();
            print_config(&c, json);
        }
        EventsCmd::Config {
            name,
            max_retries,
            max_age,
            on_success,
            on_failure,
            dead_letter,
            ..
        } => {
            let c = ev
                .put_event_invoke_config(PutEventInvokeConfigRequest {
                    config: Some(EventInvokeConfig {
                        function_name: name,
                        maximum_retry_attempts: max_retries,
                        maximum_event_age_seconds: max_age,
                        on_success: on_success.unwrap_or_default(),
                        on_failure: on_failure.unwrap_or_default(),
                        dead_letter: dead_letter.unwrap_or_default(),
                    }),
                })
                .await
                .map_err(st)?
                .into_inner();
            print_config(&c, json);
        }
    }
    Ok(())
}
