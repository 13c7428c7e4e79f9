//! Lambda's own REST API (version 2015-03-31) over HTTP, so boto3, the AWS CLI and
//! the AWS SDKs can use Flint as their endpoint (`--api-listen`). Every request is
//! authenticated with AWS Signature Version 4 against the access keys of
//! [`keys::KeyStore`]; every operation calls the same agent functions the gRPC
//! services call (`Agent::create_function`, `Agent::invoke`, ...). Errors come back
//! in Lambda's shapes ([`errors`]).
//!
//! Files: `server` (connections), `auth` (SigV4 on a request), `router` (method and
//! path to operation), `functions`, `invoke`, `concurrency`, `event_config`, `function_urls` (on http
//! triggers) and `event_sources` (on queue triggers) (one per resource),
//! `versions` and `aliases` (versions, aliases, qualified reads),
//! `shapes` (JSON), `names` (names and ARNs), `errors`, `sigv4`, `keys`, `tls`,
//! `role_auth` (execution roles' temporary credentials and their policy), `key_auth`
//! (an access key's policy on an operation).

mod aliases;
mod auth;
mod concurrency;
mod dead_letter;
pub(crate) mod errors;
mod event_config;
mod event_sources;
mod function_urls;
mod functions;
mod invoke;
mod key_auth;
pub mod keys;
mod layer_pages;
#[cfg(test)]
mod layer_pages_tests;
mod layers;
pub(crate) mod names;
mod request;
mod role_auth;
mod router;
mod server;
pub(crate) mod shapes;
pub mod sigv4;
pub mod tls;
mod versions;

use crate::core::Agent;
use std::sync::Arc;

pub use request::{ApiRequest, ApiResponse};
pub use server::{answer, serve};

/// What the REST front end works with.
pub struct LambdaApi {
    pub agent: Arc<Agent>,
    pub place: names::Place,
    pub keys: keys::KeyStore,
}

impl LambdaApi {
    /// The REST API of `agent`, with the region and account id of its configuration.
    pub fn new(agent: Arc<Agent>) -> Arc<Self> {
        let place = names::Place {
            region: agent.config().region.clone(),
            account: agent.config().account_id.clone(),
        };
        let keys = keys::KeyStore::new(&agent.config().data_dir);
        Arc::new(Self { agent, place, keys })
    }
}
