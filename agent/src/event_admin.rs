//! Managing asynchronous invocations, shared by the gRPC and REST front ends: a
//! function's event invoke configuration (its destinations must exist when it is put),
//! the queue views and redrive of the dead-letter queue.

use crate::core::Agent;
use crate::events::{ConfigError, Event, EventConfig, EventState, QueueError, QueueStats};
use crate::store::StoreError;

/// Failures managing events.
#[derive(Debug, thiserror::Error)]
pub enum EventAdminError {
    /// Unknown function
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value Lambda would refuse
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue failed
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No configuration to get or delete
    #[error("function {0} has no event invoke configuration: put one first (flint events config)")]
    NoConfig(String),
}

/// One page of configurations (function, configuration) and the next page's marker.
pub type ConfigPage = (Vec<(String, EventConfig)>, Option<String>);

/// Most configurations one page of ListFunctionEventInvokeConfigs holds (Lambda's).
pub const LIST_CONFIGS_MAX: u32 = 50;

/// The function name in `s`: a name, or an ARN `arn:...:function:NAME[:QUALIFIER]`.
pub fn function_name_of(s: &str) -> &str {
    match s.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => s,
    }
}

impl Agent {
    /// Stores `c` for `function` after checking it; returns what was stored.
    pub fn put_event_config(
        &self,
        function: &str,
        c: EventConfig,
    ) -> Result<EventConfig, EventAdminError> {
        self.store().get(function)?;
        let c = c.validated(function, |d| {
            let name = function_name_of(d);
            self.store().get(name).ok().map(|f| f.name)
        })?;
        self.events().configs().put_config(function, &c)?;
        tracing::info!(function, max_retries = c.max_retries, max_age_s = c.max_age_s, on_success = ?c.on_success, on_failure = ?c.on_failure, dead_letter = ?c.dead_letter, "event invoke config put");
        Ok(c)
    }

    /// The function's configuration.
    pub fn get_event_config(&self, function: &str) -> Result<EventConfig, EventAdminError> {
        self.store().get(function)?;
        self.events()
            .configs()
            .get_config(function)?
            .ok_or_else(|| EventAdminError::NoConfig(function.to_string()))
    }

    /// One page of configurations, by function name: at most `max_items` (1-50)
    /// after `marker` (a function name; empty = from the start), and the marker of
    /// the next page (None on the last).
    pub fn list_event_configs(
        &self,
        marker: &str,
        max_items: u32,
    ) -> Result<ConfigPage, EventAdminError> {
        let n = max_items.clamp(1, LIST_CONFIGS_MAX);
        let mut page = self.events().configs().list_configs(marker, n + 1)?;
        let next = (page.len() > n as usize).then(|| {
            page.truncate(n as usize);
            page[n as usize - 1].0.clone()
        });
        Ok((page, next))
    }

    /// Removes the function's configuration (Lambda's defaults apply again).
    pub fn delete_event_config(&self, function: &str) -> Result<(), EventAdminError> {
        if !self.events().configs().delete_config(function)? {
            self.store().get(function)?;
            return Err(EventAdminError::NoConfig(function.to_string()));
        }
        Ok(())
    }

    /// Events of `function` (all when None) in `states` (all when empty), the
    /// whole queue's numbers, and the webhook deliveries pending (of `function`).
    pub fn list_events(
        &self,
        function: Option<&str>,
        states: &[EventState],
        limit: u32,
    ) -> Result<(Vec<Event>, QueueStats, u64), EventAdminError> {
        let q = self.events().queue();
        let pending = self
            .events()
            .webhooks()
            .queue()
            .list_deliveries(function)?
            .len() as u64;
        Ok((q.list(function, states, limit)?, q.stats()?, pending))
    }

    /// Queues the function's dead events again; returns how many.
    pub fn redrive_events(&self, function: &str) -> Result<u64, EventAdminError> {
        self.store().get(function)?;
        let n = self
            .events()
            .queue()
            .redrive(function, crate::events::now_ms())?;
        self.events().wake();
        tracing::info!(function, events = n, "dead-letter queue redriven");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_name_the_function() {
        assert_eq!(function_name_of("sink"), "sink");
        assert_eq!(
            function_name_of("arn:aws:lambda:us-east-1:000000000000:function:sink"),
            "sink"
        );
        assert_eq!(
            function_name_of("arn:aws:lambda:us-east-1:000000000000:function:sink:$LATEST"),
            "sink"
        );
    }
}
