//! The code the fuzz targets drive, compiled from the real source files of the crates
//! under test (`#[path]` includes), so a target builds without the agent's whole
//! dependency tree (tokio, tonic, SQLite). Only pure input checks are included: each
//! file below needs nothing but the standard library, the other files listed here and
//! small crates (zip, serde_json, sha2). flint-proto and flint-vmm are ordinary
//! dependencies.
#![allow(dead_code, unused_imports)]

/// flintd's limits (`agent/src/limits.rs`), used by the checks below.
#[path = "../../agent/src/limits.rs"]
pub mod limits;

/// flintd's invocation payload check (`agent/src/payload.rs`).
#[path = "../../agent/src/payload.rs"]
pub mod payload;

/// flintd's code bundle check and store (`agent/src/code.rs`).
#[path = "../../agent/src/code.rs"]
pub mod code;

/// flintd's function setting validation (`agent/src/validate.rs`).
#[path = "../../agent/src/validate.rs"]
pub mod validate;

#[path = "../../agent/src/pools/key.rs"]
pub mod pools_key;
#[path = "../../agent/src/sandbox/limits.rs"]
pub mod sandbox_limits;
#[path = "../../agent/src/sandbox/network_mode.rs"]
pub mod sandbox_network_mode;

/// What `validate.rs` needs from flintd's `pools` module.
pub mod pools {
    pub use crate::pools_key as key;
}

/// What `validate.rs` needs from flintd's `sandbox` module.
pub mod sandbox {
    pub use crate::sandbox_limits as limits;
    pub use crate::sandbox_network_mode as network_mode;
    pub use limits::BackendLimits;
    pub use network_mode::NetworkMode;
}

/// flint-init's Runtime API HTTP codec (`guest-init/src/http.rs`).
#[path = "../../guest-init/src/http.rs"]
pub mod http;

/// flint-init's code bundle unpacker (`guest-init/src/unpack.rs`).
#[path = "../../guest-init/src/unpack.rs"]
pub mod unpack;

pub mod virtq;
