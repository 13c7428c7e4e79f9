//! Device models of the Flint VMM. The contract between the machine (vCPU exits,
//! interrupts) and the devices lives here; everything below is device logic that
//! never touches KVM directly and is tested against fake guest memory.

/// A device mapped on the MMIO bus. Offsets are relative to the device's base.
/// Called from vCPU threads; implementations must never panic on guest input.
pub trait MmioDevice: Send {
    /// Guest read of `data.len()` bytes at `offset`.
    fn mmio_read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest write of `data` at `offset`.
    fn mmio_write(&mut self, offset: u64, data: &[u8]);
}

/// An edge-triggered interrupt line into the guest (an irqfd on KVM).
pub trait IrqLine: Send + Sync {
    /// Raises the interrupt once.
    fn trigger(&self) -> std::io::Result<()>;
}

pub mod ratelimit;
pub mod virtio;
