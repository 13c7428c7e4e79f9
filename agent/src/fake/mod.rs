//! The invocation core without root or real sandboxes (test-only): a backend whose
//! sandboxes are socket pairs ([`backend`]), a scripted flint-init on the other end
//! ([`guest`]), an agent opened on them in a temporary directory ([`harness`]), and
//! tests of placement, failure mapping, logs, limits, draining and versions that drive the
//! agent through its public calls only (create, update, invoke, drain, capacity).

pub(crate) mod backend;
pub(crate) mod guest;
pub(crate) mod harness;

mod admission_tests;
mod failure_tests;
mod layer_tests;
mod limit_tests;
mod log_tests;
mod placement_tests;
mod role_tests;
mod schedule_tests;
mod version_tests;
