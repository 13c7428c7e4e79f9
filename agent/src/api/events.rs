//! The `flint.v1.Events` service: event invoke configurations and the event queue's
//! views (see event_admin.rs).

use crate::core::Agent;
use crate::event_admin::EventAdminError;
use crate::events::{EventConfig, EventState as S, QueueError};
use crate::store::StoreError;
use flint_proto::v1::events_server::Events;
use flint_proto::v1::{
    DeleteEventInvokeConfigRequest, DeleteEventInvokeConfigResponse, EventInvokeConfig, EventState,
    GetEventInvokeConfigRequest, ListEventInvokeConfigsRequest, ListEventInvokeConfigsResponse,
    ListEventsRequest, ListEventsResponse, PutEventInvokeConfigRequest, QueuedEvent,
    RedriveEventsRequest, RedriveEventsResponse,
};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// Most events one ListEvents returns.
const LIST_MAX: u32 = 10_000;

/// Serves the event queue.
pub struct EventsApi {
    pub agent: Arc<Agent>,
}

impl From<EventAdminError> for Status {
    fn from(e: EventAdminError) -> Status {
        // Store and queue failures name host paths: the client gets an error id.
        if matches!(
            e,
            EventAdminError::Store(StoreError::Sqlite(_) | StoreError::Corrupt(_))
                | EventAdminError::Queue(
                    QueueError::Sqlite { .. }
                        | QueueError::Migration { .. }
                        | QueueError::Corrupt { .. }
                )
        ) {
            return crate::api::status::hidden(&e);
        }
        let code = match &e {
            EventAdminError::Store(StoreError::NotFound(_)) | EventAdminError::NoConfig(_) => {
                Code::NotFound
            }
            EventAdminError::Config(_) => Code::InvalidArgument,
            EventAdminError::Queue(QueueError::Full { .. }) => Code::ResourceExhausted,
            EventAdminError::Store(_) | EventAdminError::Queue(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

fn to_proto(function: &str, c: &EventConfig) -> EventInvokeConfig {
    EventInvokeConfig {
        function_name: function.to_string(),
        maximum_retry_attempts: Some(c.max_retries),
        maximum_event_age_seconds: Some(c.max_age_s),
        on_success: c.on_success.clone().unwrap_or_default(),
        on_failure: c.on_failure.clone().unwrap_or_default(),
        dead_letter: c.dead_letter.clone().unwrap_or_default(),
    }
}

fn state_to_proto(s: S) -> EventState {
    match s {
        S::Queued => EventState::Queued,
        S::InFlight => EventState::InFlight,
        S::Retrying => EventState::Retrying,
        S::Dead => EventState::Dead,
    }
}

fn state_from_proto(v: i32) -> Result<Option<S>, Status> {
    Ok(match EventState::try_from(v) {
        Ok(EventState::Any) => None,
        Ok(EventState::Queued) => Some(S::Queued),
        Ok(EventState::InFlight) => Some(S::InFlight),
        Ok(EventState::Retrying) => Some(S::Retrying),
        Ok(EventState::Dead) => Some(S::Dead),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown event state {v}: use EVENT_STATE_QUEUED, _IN_FLIGHT, _RETRYING or _DEAD"
            )))
        }
    })
}

#[tonic::async_trait]
impl Events for EventsApi {
    async fn put_event_invoke_config(
        &self,
        req: Request<PutEventInvokeConfigRequest>,
    ) -> Result<Response<EventInvokeConfig>, Status> {
        let c = req.into_inner().config.ok_or_else(|| {
            Status::invalid_argument("config is missing: give function_name and the settings")
        })?;
        let defaults = EventConfig::default();
        let wanted = EventConfig {
            max_retries: c.maximum_retry_attempts.unwrap_or(defaults.max_retries),
            max_age_s: c.maximum_event_age_seconds.unwrap_or(defaults.max_age_s),
            on_success: Some(c.on_success),
            on_failure: Some(c.on_failure),
            dead_letter: Some(c.dead_letter),
        };
        let stored = self.agent.put_event_config(&c.function_name, wanted)?;
        Ok(Response::new(to_proto(&c.function_name, &stored)))
    }

    async fn get_event_invoke_config(
        &self,
        req: Request<GetEventInvokeConfigRequest>,
    ) -> Result<Response<EventInvokeConfig>, Status> {
        let name = req.into_inner().function_name;
        let c = self.agent.get_event_config(&name)?;
        Ok(Response::new(to_proto(&name, &c)))
    }

    async fn delete_event_invoke_config(
        &self,
        req: Request<DeleteEventInvokeConfigRequest>,
    ) -> Result<Response<DeleteEventInvokeConfigResponse>, Status> {
        self.agent
            .delete_event_config(&req.into_inner().function_name)?;
        Ok(Response::new(DeleteEventInvokeConfigResponse {}))
    }

    async fn list_event_invoke_configs(
        &self,
        req: Request<ListEventInvokeConfigsRequest>,
    ) -> Result<Response<ListEventInvokeConfigsResponse>, Status> {
        let r = req.into_inner();
        let max = match r.max_items {
            0 => crate::event_admin::LIST_CONFIGS_MAX,
            n => n,
        };
        let (page, next) = self.agent.list_event_configs(&r.marker, max)?;
        Ok(Response::new(ListEventInvokeConfigsResponse {
            configs: page.iter().map(|(f, c)| to_proto(f, c)).collect(),
            next_marker: next.unwrap_or_default(),
        }))
    }

    async fn list_events(
        &self,
        req: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let r = req.into_inner();
        let mut states = Vec::new();
        for s in &r.states {
            if let Some(s) = state_from_proto(*s)? {
                states.push(s);
            }
        }
        let limit = match r.limit {
            0 => 1000,
            n => n.min(LIST_MAX),
        };
        let function = (!r.function_name.is_empty()).then_some(r.function_name.as_str());
        let (events, stats, pending) = self.agent.list_events(function, &states, limit)?;
        let now = crate::events::now_ms();
        Ok(Response::new(ListEventsResponse {
            events: events
                .into_iter()
                .map(|e| QueuedEvent {
                    request_id: e.request_id,
                    function_name: e.function,
                    qualifier: e.qualifier,
                    state: state_to_proto(e.state) as i32,
                    attempts: e.attempts,
                    deferrals: e.deferrals,
                    enqueued_unix_ms: e.enqueued_ms,
                    next_attempt_unix_ms: e.next_attempt_ms,
                    last_error: e.last_error,
                    payload_bytes: e.payload.len() as u64,
                })
                .collect(),
            depth: stats.depth,
            dead: stats.dead,
            oldest_age_ms: stats
                .oldest_enqueued_ms
                .map_or(0, |t| now.saturating_sub(t)),
            pending_deliveries: pending,
        }))
    }

    async fn redrive_events(
        &self,
        req: Request<RedriveEventsRequest>,
    ) -> Result<Response<RedriveEventsResponse>, Status> {
        let redriven = self.agent.redrive_events(&req.into_inner().function_name)?;
        Ok(Response::new(RedriveEventsResponse { redriven }))
    }
}
