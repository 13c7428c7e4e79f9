//! virtio-blk (virtio 1.2, 5.2) over a host file: a read-only root image or a writable
//! scratch disk. Requests are served synchronously on the vCPU thread that notified the
//! queue.

mod device;
pub mod disk;
pub mod request;

pub use device::Block;
pub use disk::Disk;
pub use request::{Request, RequestError, RequestType};

use virtio_bindings::virtio_blk as bindings;

/// Sector size the virtio-blk protocol counts in.
pub const SECTOR_SIZE: u64 = 512;
/// log2 of [`SECTOR_SIZE`].
pub const SECTOR_SHIFT: u32 = 9;
/// Size of the single request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most data segments in one request (queue size minus header and status).
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Length of a device ID returned by GET_ID.
pub const ID_BYTES: usize = bindings::VIRTIO_BLK_ID_BYTES as usize;

/// Request status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Request status: I/O error (also out-of-range and writes to a read-only disk).
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Request status: request type not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Errors opening a disk.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// cannot open disk image {path}: {source}
    #[error("cannot open disk image {path}: {source}")]
    Open {
        /// The image path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cannot read the size of disk image {path}: {source}
    #[error("cannot read the size of disk image {path}: {source}")]
    Metadata {
        /// The image path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// disk id {0:?} is longer than 20 bytes
    #[error("disk id {0:?} is longer than 20 bytes")]
    IdTooLong(String),
}

#[cfg(test)]
mod tests;
