//! The two pools, named so they do not collide:
//! - [`idle::IdleInstances`]: idle instances of one function (a warm start takes one);
//! - [`prestart::SandboxPool`]: generic sandboxes pre-started per (runtime, memory size),
//!   bound to a function by a cold start.
//!
//! [`key`] names the sandbox pools without depending on them (the configuration uses
//! it); [`occupancy`] counts starting and busy instances and wakes the Node API's
//! watchers when either pool changes.

pub mod idle;
pub mod key;
pub mod occupancy;
pub mod prestart;
