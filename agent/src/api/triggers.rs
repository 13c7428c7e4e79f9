//! The `flint.v1.Triggers` service: thin conversions over the agent's trigger calls
//! (triggers/manage.rs).

use crate::core::Agent;
use crate::store::StoreError;
use crate::triggers::http::spec::{HttpAuth, HttpSpec};
use crate::triggers::manage::NewTrigger;
use crate::triggers::model::{Missed, ScheduleSpec, Trigger, TriggerError, TriggerKind};
use crate::triggers::queue::spec as queue;
use crate::triggers::store::fmt_time;
use flint_proto::v1 as pb;
use flint_proto::v1::triggers_server::Triggers;
use std::sync::Arc;

/// The file-event trigger's settings to and from their message.
mod files_pb {
    use crate::triggers::files::spec::{parse_events, FilesError, FilesSpec};
    use flint_proto::v1 as pb;

    /// The token never leaves the agent: only whether one is set.
    pub fn to_pb(s: FilesSpec) -> pb::FilesSpec {
        pb::FilesSpec {
            dir: s.dir,
            prefix: s.prefix,
            suffix: s.suffix,
            events: s.events.iter().map(|e| e.label().to_string()).collect(),
            webhook_token: String::new(),
            webhook_token_set: s.webhook_token.is_some(),
        }
    }

    pub fn from_pb(s: pb::FilesSpec) -> Result<FilesSpec, FilesError> {
        let events = if s.events.is_empty() {
            parse_events("created,removed")?
        } else {
            parse_events(&s.events.join(","))?
        };
        Ok(FilesSpec {
            dir: s.dir,
            prefix: s.prefix,
            suffix: s.suffix,
            events,
            webhook_token: (!s.webhook_token.is_empty()).then_some(s.webhook_token),
        })
    }
}
use tonic::{Code, Request, Response, Status};

/// Serves trigger management.
pub struct TriggersApi {
    pub agent: Arc<Agent>,
}

impl From<TriggerError> for Status {
    fn from(e: TriggerError) -> Status {
        let code = match &e {
            TriggerError::Schedule(_)
            | TriggerError::Name(_)
            | TriggerError::NeverFires(_)
            | TriggerError::NoKind
            | TriggerError::Http(_)
            | TriggerError::Files(_)
            | TriggerError::Queue(_)
            | TriggerError::NotSchedule(_) => Code::InvalidArgument,
            TriggerError::NotFound(_) | TriggerError::NoFunction(_) => Code::NotFound,
            TriggerError::Exists(_) => Code::AlreadyExists,
            TriggerError::Store(StoreError::HasTriggers { .. }) => Code::FailedPrecondition,
            TriggerError::Store(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

fn to_pb(agent: &Agent, t: Trigger) -> pb::Trigger {
    let mut url = String::new();
    let (arn, kind) = match t.kind {
        TriggerKind::Schedule(s) => (
            agent.trigger_arn(&t.name),
            pb::trigger::Kind::Schedule(pb::ScheduleSpec {
                expression: s.expression,
                timezone: s.timezone.unwrap_or_default(),
                missed: match s.missed {
                    Missed::Skip => pb::MissedFires::MissedSkip,
                    Missed::RunOnce => pb::MissedFires::MissedRunOnce,
                } as i32,
            }),
        ),
        TriggerKind::Http(h) => {
            let c = agent.config();
            if let Some(addr) = c.http_listen {
                url = crate::triggers::http::spec::url(addr, c.http_tls_cert.is_some(), &t.name);
            }
            (
                agent.trigger_arn(&t.name),
                pb::trigger::Kind::Http(pb::HttpSpec {
                    auth: h.auth.label().into(),
                }),
            )
        }
        TriggerKind::Files(s) => (
            format!("arn:aws:s3:::{}", t.name),
            pb::trigger::Kind::Files(files_pb::to_pb(s)),
        ),
        TriggerKind::Queue(q) => (
            agent.trigger_arn(&t.name),
            pb::trigger::Kind::Queue(pb::QueueSpec {
                url: q.redacted_url(),
                queue_name: q.queue_name,
                batch_size: q.batch_size,
                batching_window_ms: Some(q.batching_window_ms),
                max_concurrency: q.max_concurrency,
                retries: Some(q.retries),
                dead_letter_function: q.dead_letter.unwrap_or_default(),
            }),
        ),
    };
    pb::Trigger {
        arn,
        name: t.name,
        function_name: t.function,
        enabled: t.enabled,
        kind: Some(kind),
        url,
        created: fmt_time(t.created),
        last_fire: t.last_fire.map(fmt_time).unwrap_or_default(),
        last_error: t.last_error.unwrap_or_default(),
        next_fire: t.next_fire.map(fmt_time).unwrap_or_default(),
    }
}

fn from_pb(r: pb::CreateTriggerRequest) -> Result<NewTrigger, TriggerError> {
    let kind = match r.kind {
        Some(pb::create_trigger_request::Kind::Schedule(s)) => {
            TriggerKind::Schedule(ScheduleSpec {
                expression: s.expression,
                timezone: (!s.timezone.is_empty()).then_some(s.timezone),
                missed: match pb::MissedFires::try_from(s.missed) {
                    Ok(pb::MissedFires::MissedRunOnce) => Missed::RunOnce,
                    _ => Missed::Skip,
                },
            })
        }
        Some(pb::create_trigger_request::Kind::Http(h)) => TriggerKind::Http(HttpSpec {
            auth: HttpAuth::parse(&h.auth).map_err(TriggerError::Http)?,
        }),
        Some(pb::create_trigger_request::Kind::Files(s)) => {
            TriggerKind::Files(files_pb::from_pb(s)?)
        }
        Some(pb::create_trigger_request::Kind::Queue(q)) => TriggerKind::Queue(queue_from_pb(q)),
        None => return Err(TriggerError::NoKind),
    };
    Ok(NewTrigger {
        name: r.name,
        function: r.function_name,
        kind,
        enabled: !r.disabled,
    })
}

/// A queue trigger's settings, with the documented defaults for unset fields.
fn queue_from_pb(q: pb::QueueSpec) -> queue::QueueSpec {
    let or = |v: u32, d: u32| if v == 0 { d } else { v };
    queue::QueueSpec {
        url: q.url,
        queue_name: q.queue_name,
        batch_size: or(q.batch_size, queue::DEFAULT_BATCH_SIZE),
        batching_window_ms: q.batching_window_ms.unwrap_or(queue::DEFAULT_WINDOW_MS),
        max_concurrency: or(q.max_concurrency, queue::DEFAULT_MAX_CONCURRENCY),
        retries: q.retries.unwrap_or(queue::DEFAULT_RETRIES),
        dead_letter: (!q.dead_letter_function.is_empty()).then_some(q.dead_letter_function),
    }
}

/// Runs `f` on a blocking thread (registry access).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TriggerError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl Triggers for TriggersApi {
    async fn create_trigger(
        &self,
        req: Request<pb::CreateTriggerRequest>,
    ) -> Result<Response<pb::Trigger>, Status> {
        let new = from_pb(req.into_inner())?;
        let a = self.agent.clone();
        let t = blocking(move || a.create_trigger(new)).await?;
        Ok(Response::new(to_pb(&self.agent, t)))
    }

    async fn get_trigger(
        &self,
        req: Request<pb::GetTriggerRequest>,
    ) -> Result<Response<pb::Trigger>, Status> {
        let name = req.into_inner().name;
        let a = self.agent.clone();
        let t = blocking(move || a.get_trigger(&name)).await?;
        Ok(Response::new(to_pb(&self.agent, t)))
    }

    async fn list_triggers(
        &self,
        req: Request<pb::ListTriggersRequest>,
    ) -> Result<Response<pb::ListTriggersResponse>, Status> {
        let f = req.into_inner().function_name;
        let a = self.agent.clone();
        let ts = blocking(move || a.list_triggers((!f.is_empty()).then_some(f.as_str()))).await?;
        Ok(Response::new(pb::ListTriggersResponse {
            triggers: ts.into_iter().map(|t| to_pb(&self.agent, t)).collect(),
        }))
    }

    async fn set_trigger_enabled(
        &self,
        req: Request<pb::SetTriggerEnabledRequest>,
    ) -> Result<Response<pb::Trigger>, Status> {
        let r = req.into_inner();
        let a = self.agent.clone();
        let t = blocking(move || a.set_trigger_enabled(&r.name, r.enabled)).await?;
        Ok(Response::new(to_pb(&self.agent, t)))
    }

    async fn delete_trigger(
        &self,
        req: Request<pb::DeleteTriggerRequest>,
    ) -> Result<Response<pb::DeleteTriggerResponse>, Status> {
        let name = req.into_inner().name;
        let a = self.agent.clone();
        blocking(move || a.delete_trigger(&name)).await?;
        Ok(Response::new(pb::DeleteTriggerResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::schedule_expr::ScheduleError;

    #[test]
    fn trigger_errors_map_to_codes_with_their_text() {
        let s = Status::from(TriggerError::Schedule(ScheduleError::CronField {
            field: "day-of-week",
            value: "FOO".into(),
            reason: "bad".into(),
        }));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "cron day-of-week field 'FOO': bad");
        assert_eq!(
            Status::from(TriggerError::NoFunction("f".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(TriggerError::Exists("t".into())).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            Status::from(TriggerError::NoKind).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn http_create_requests_take_auth_none_only() {
        let r = |auth: &str| pb::CreateTriggerRequest {
            name: "site".into(),
            function_name: "web".into(),
            kind: Some(pb::create_trigger_request::Kind::Http(pb::HttpSpec {
                auth: auth.into(),
            })),
            disabled: false,
        };
        let t = from_pb(r("")).unwrap();
        assert_eq!(t.kind, TriggerKind::Http(HttpSpec::default()));
        let e = from_pb(r("AWS_IAM")).unwrap_err();
        assert_eq!(Status::from(e).code(), Code::InvalidArgument);
    }

    #[test]
    fn unset_queue_settings_take_their_documented_defaults() {
        let r = pb::CreateTriggerRequest {
            name: "t".into(),
            function_name: "f".into(),
            kind: Some(pb::create_trigger_request::Kind::Queue(pb::QueueSpec {
                url: "amqp://u:p@h/v".into(),
                queue_name: "q".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let TriggerKind::Queue(q) = from_pb(r).unwrap().kind else {
            panic!("not a queue trigger");
        };
        assert_eq!(
            (
                q.batch_size,
                q.batching_window_ms,
                q.max_concurrency,
                q.retries
            ),
            (100, 500, 5, 2)
        );
        assert_eq!(q.dead_letter, None);
        assert_eq!(
            Status::from(TriggerError::Queue(queue::SpecError::BatchSize(0))).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_create_request_without_a_kind_is_refused() {
        let r = pb::CreateTriggerRequest {
            name: "t".into(),
            function_name: "f".into(),
            ..Default::default()
        };
        assert!(matches!(from_pb(r), Err(TriggerError::NoKind)));
    }
}
