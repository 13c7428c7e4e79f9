//! virtio-net (virtio 1.2, 5.1) over a host TAP interface. No offloads and no mergeable
//! receive buffers: every frame travels with a 12-byte `virtio_net_hdr_v1` whose fields
//! are all zero (`num_buffers` 1 on receive), and each receive chain holds one whole
//! frame. The device ([`Net`]) starts a worker thread on activation that moves frames
//! between the queues and the TAP file descriptor.

mod device;
pub mod frame;
pub mod mac;
pub mod tap;
mod worker;

pub use device::Net;
pub use frame::FrameError;
pub use mac::MacAddr;
pub use tap::Tap;

/// Size of each of the two queues.
pub const QUEUE_SIZE: u16 = 256;
/// Receive queue (host to guest).
pub const RXQ: usize = 0;
/// Transmit queue (guest to host).
pub const TXQ: usize = 1;
/// Length of `virtio_net_hdr_v1` (5.1.6): flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset, num_buffers.
pub const VNET_HDR_LEN: usize = 12;
/// Largest frame without GSO: a 1500-byte MTU plus the Ethernet header and one VLAN tag.
pub const MAX_FRAME_LEN: usize = 1518;
/// Smallest frame the device passes on: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;

/// epoll token: a queue was notified.
pub(crate) const TOKEN_QUEUE: u64 = 0;
/// epoll token: the worker must stop.
pub(crate) const TOKEN_KILL: u64 = 1;
/// epoll token: the TAP interface has frames for the guest.
pub(crate) const TOKEN_TAP: u64 = 2;

/// Errors creating the network device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// TAP interface name {0:?} is empty, longer than 15 bytes or holds '/', ' ' or NUL
    #[error("TAP interface name {0:?} is empty, longer than 15 bytes or holds '/', ' ' or NUL")]
    BadTapName(String),
    /// cannot open /dev/net/tun: {0}
    #[error("cannot open /dev/net/tun (is the tun module loaded?): {0}")]
    OpenTun(#[source] std::io::Error),
    /// cannot attach to TAP interface {name}: {source}
    #[error("cannot attach to TAP interface {name} (it must be a TAP device this user may open, e.g. made by `ip tuntap add dev {name} mode tap`): {source}")]
    Attach {
        /// The interface name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests;
