//! The agent as the scheduler's [`Host`]: its registry, its configuration, and its
//! asynchronous (Event) invocations.

use super::schedule_expr::ParseOptions;
use super::scheduler::{Host, InvokeResult};
use crate::core::Agent;
use crate::invoke::{InvocationType, InvokeInput};
use crate::store::Store;
use std::sync::Arc;

impl Host for Agent {
    fn store(&self) -> &Store {
        Agent::store(self)
    }

    fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            allow_seconds: self.config().schedule_seconds,
        }
    }

    fn region_account(&self) -> (String, String) {
        let c = self.config();
        (c.region.clone(), c.account_id.clone())
    }

    fn invoke_event(self: Arc<Self>, function: String, payload: Vec<u8>) -> InvokeResult {
        Box::pin(async move {
            self.invoke(InvokeInput {
                function_name: function,
                invocation_type: InvocationType::Event,
                log_tail: false,
                payload,
                client_context: String::new(),
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string())
        })
    }
}
