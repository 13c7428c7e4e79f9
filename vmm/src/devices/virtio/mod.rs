//! Virtio devices: the [`VirtioDevice`] trait every device implements, the interrupt
//! helper a device uses to tell the guest about used buffers, and constants shared by the
//! transport and the devices (virtio 1.2, sections 2.1 and 3.1).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::IrqLine;

pub mod block;
pub mod chain;
pub mod mmio;
pub mod net;
pub mod vsock;

/// Guest memory as seen by every device.
pub type GuestMemory = GuestMemoryMmap<()>;

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_ACKNOWLEDGE;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_DRIVER;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_FEATURES_OK;
    /// The driver is ready: the device is live.
    pub const DRIVER_OK: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_DRIVER_OK;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_NEEDS_RESET;
    /// The guest gave up on the device.
    pub const FAILED: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_FAILED;
}

/// Bit number of VIRTIO_F_VERSION_1, which this (modern-only) implementation requires.
pub const VIRTIO_F_VERSION_1: u32 = virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// InterruptStatus bit: a used buffer was added to a queue.
pub const INTERRUPT_USED_RING: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
/// InterruptStatus bit: the device configuration changed.
pub const INTERRUPT_CONFIG: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_CONFIG;

/// Feature bit `bit` as a mask.
pub const fn feature(bit: u32) -> u64 {
    1u64 << bit
}

/// Errors from activating a device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// the driver configured {got} queues, the device needs {want}
    #[error("the driver configured {got} queues, the device needs {want}")]
    QueueCount {
        /// Queues the device needs.
        want: usize,
        /// Queues the driver set up.
        got: usize,
    },
    /// the device could not start its worker: {0}
    #[error("the device could not start its worker: {0}")]
    Worker(#[source] std::io::Error),
    /// the device is already active
    #[error("the device is already active")]
    AlreadyActive,
}

/// The interrupt side of the transport, handed to a device on activation: sets a bit in
/// the transport's InterruptStatus register and raises the device's IRQ line.
#[derive(Clone)]
pub struct Interrupt {
    status: Arc<AtomicU32>,
    irq: Arc<dyn IrqLine>,
}

impl Interrupt {
    /// Ties an InterruptStatus register to an IRQ line.
    pub fn new(status: Arc<AtomicU32>, irq: Arc<dyn IrqLine>) -> Self {
        Interrupt { status, irq }
    }

    /// Tells the guest that used buffers are waiting.
    pub fn signal_used_queue(&self) -> std::io::Result<()> {
        self.signal(INTERRUPT_USED_RING)
    }

    /// Tells the guest that the configuration (or the device status) changed.
    pub fn signal_config_change(&self) -> std::io::Result<()> {
        self.signal(INTERRUPT_CONFIG)
    }

    fn signal(&self, bit: u32) -> std::io::Result<()> {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.irq.trigger()
    }

    /// Current InterruptStatus value.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }
}

/// A virtio device, independent of the transport that exposes it to the guest.
pub trait VirtioDevice: Send {
    /// Virtio device ID (5.x: 2 = block, 19 = socket).
    fn device_type(&self) -> u32;
    /// Maximum size of each of the device's queues; its length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits the device offers.
    fn avail_features(&self) -> u64;
    /// Records the features the driver accepted (always a subset of `avail_features`;
    /// the transport refuses anything else).
    fn set_acked_features(&mut self, acked: u64);
    /// Reads `data.len()` bytes of the device configuration space at `offset`; bytes past
    /// the end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Guest write to the configuration space; devices with a read-only configuration
    /// ignore it.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Makes the device live with the queues the driver set up.
    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError>;
    /// The guest notified queue `index` (QueueNotify). Called on the vCPU thread.
    fn queue_notify(&mut self, index: u32);
    /// Returns the device to its pre-activation state, dropping the queues and stopping any
    /// worker thread.
    fn reset(&mut self);
    /// Features the driver accepted.
    fn acked_features(&self) -> u64;
    /// Stops the device's work for a snapshot (it stays stopped: the process ends after the
    /// snapshot) and returns where each queue stands; empty if the device is not active.
    fn quiesce(&mut self) -> Vec<QueuePosition>;
    /// Makes a restored device live again with queues already at their saved positions.
    /// Devices whose host side cannot survive a restore (vsock connections) reset it here.
    fn activate_restored(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), ActivateError> {
        self.activate(mem, queues, interrupt)
    }
}

/// Where a queue stands: the next available-ring entry the device will take and the next
/// used-ring entry it will fill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueuePosition {
    /// Next index into the available ring.
    pub next_avail: u16,
    /// Next index into the used ring.
    pub next_used: u16,
}

impl QueuePosition {
    /// The position of `queue`.
    pub fn of(queue: &Queue) -> Self {
        use virtio_queue::QueueT;
        QueuePosition {
            next_avail: queue.next_avail(),
            next_used: queue.next_used(),
        }
    }
}

/// Copies `config[offset..]` into `data`, zero-filling whatever lies past the end of
/// `config`; the shared implementation of [`VirtioDevice::read_config`].
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= config.len() {
        return;
    }
    let n = data.len().min(config.len() - start);
    data[..n].copy_from_slice(&config[start..start + n]);
}

#[cfg(test)]
pub(crate) mod test_utils;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_config_bytes_zero_fills_past_end() {
        let cfg = [1u8, 2, 3, 4];
        let mut d = [0xffu8; 4];
        read_config_bytes(&cfg, 2, &mut d);
        assert_eq!(d, [3, 4, 0, 0]);
        read_config_bytes(&cfg, 100, &mut d);
        assert_eq!(d, [0; 4]);
        read_config_bytes(&cfg, u64::MAX, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
