//! The trait through which a flint.init.v1 session answers flint-init's calls
//! (`HostCall`), kept apart from its implementation (guest.rs) so the session depends
//! on nothing but the protocol.

use flint_proto::init::{HostCall, HostCallReply};
use std::future::Future;
use std::pin::Pin;

/// A boxed future of one reply.
pub type ReplyFuture = Pin<Box<dyn Future<Output = HostCallReply> + Send>>;

/// Answers one instance's calls (the session runs each on its own task).
pub trait GuestCalls: Send + Sync {
    /// The reply to `call`.
    fn answer(&self, call: HostCall) -> ReplyFuture;
}
