//! virtio-vsock (virtio 1.2, 5.10) with a Unix-socket backend in Firecracker's hybrid
//! form. The device ([`Vsock`]) starts a worker thread on activation; the worker owns the
//! queues and a [`muxer::Muxer`] that relays between guest ports and host Unix sockets:
//!
//! - host-initiated: connect to `uds_path`, write `CONNECT <port>\n`, read
//!   `OK <hostport>\n`, then the stream is the guest listener's connection;
//! - guest-initiated: the guest connects to CID 2 port P and the device dials the Unix
//!   socket `<uds_path>_P` (RST to the guest if nothing listens there).

mod connection;
mod device;
pub mod muxer;
pub mod packet;
mod worker;

pub use connection::{ConnError, RxPacket};
pub use device::Vsock;
pub use packet::{PacketError, PacketHeader};

/// The host's context ID.
pub const HOST_CID: u64 = 2;
/// The guest's context ID unless configured otherwise.
pub const DEFAULT_GUEST_CID: u64 = 3;
/// Size of each of the three queues.
pub const QUEUE_SIZE: u16 = 256;
/// Queue indices.
pub const RXQ: usize = 0;
/// Guest-to-host packets.
pub const TXQ: usize = 1;
/// Transport events (unused: no live migration).
pub const EVQ: usize = 2;
/// Receive buffer we advertise per connection (bytes of guest data we can hold).
pub const CONN_BUF_ALLOC: u32 = 256 * 1024;

/// epoll token: a queue was notified.
pub(crate) const TOKEN_QUEUE: u64 = 0;
/// epoll token: the worker must stop.
pub(crate) const TOKEN_KILL: u64 = 1;
/// epoll token: the host listener has connections.
pub(crate) const TOKEN_LISTENER: u64 = 2;
/// epoll tokens at and above this are `TOKEN_FIRST_FD + fd` of host streams.
pub(crate) const TOKEN_FIRST_FD: u64 = 16;

/// Errors creating or running the vsock device.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// guest CID {0} is reserved (must be 3 or more and below 2^32 - 1)
    #[error("guest CID {0} is reserved (must be 3 or more and below 2^32 - 1)")]
    InvalidCid(u64),
    /// cannot listen on {path}: {source}
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cannot create the device's event descriptors: {0}
    #[error("cannot create the device's event descriptors: {0}")]
    EventFd(#[source] std::io::Error),
}

#[cfg(test)]
mod tests;
