//! Flint's wire formats: the public gRPC API (`flint.v1`, feature `api`) and the
//! host <-> flint-init protocol (`flint.init.v1`) with its length-delimited framing.

pub mod frame;
pub mod lambda;

/// The host <-> flint-init protocol messages.
pub mod init {
    include!(concat!(env!("OUT_DIR"), "/flint.init.v1.rs"));

    /// The protocol version this build speaks; sent in `Hello`. 3: Configure's
    /// `tmp_mount` (an older flint-init would ignore it and keep the pool's /tmp).
    pub const PROTOCOL_VERSION: u32 = 3;
}

/// The public gRPC API.
#[cfg(feature = "api")]
pub mod v1 {
    tonic::include_proto!("flint.v1");

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("flint_v1_descriptor");
}
