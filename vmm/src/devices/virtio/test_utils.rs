//! Test helpers shared by the device tests: fake guest memory, descriptors, and an IRQ
//! line that counts its triggers.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use vm_memory::GuestAddress;

use super::{GuestMemory, Interrupt};
use crate::devices::IrqLine;

/// Descriptor flag: device-writable.
pub const W: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
/// Descriptor flag: chained.
pub const NEXT: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16;

/// 16 MiB of guest memory at 0.
pub fn guest_memory() -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap()
}

/// The descriptors of one chain placed at table index `base`: each entry is
/// (guest address, length, flags); NEXT links are filled in.
pub fn chain_at(base: u16, bufs: &[(u64, u32, u16)]) -> Vec<RawDescriptor> {
    let last = bufs.len().saturating_sub(1);
    bufs.iter()
        .enumerate()
        .map(|(i, &(addr, len, flags))| {
            let (flags, next) = if i == last {
                (flags & !NEXT, 0)
            } else {
                (flags | NEXT, base + i as u16 + 1)
            };
            RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
        })
        .collect()
}

/// An IRQ line that counts how often it fired.
#[derive(Default)]
pub struct CountingIrq(pub AtomicUsize);

impl IrqLine for CountingIrq {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl CountingIrq {
    /// Triggers so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A fresh interrupt helper and the IRQ line behind it.
pub fn interrupt() -> (Interrupt, Arc<CountingIrq>) {
    let irq = Arc::new(CountingIrq::default());
    (
        Interrupt::new(Arc::new(AtomicU32::new(0)), irq.clone()),
        irq,
    )
}
