//! Puts devices on the MMIO bus: the boot timer, then the virtio-mmio devices (root disk,
//! scratch disk, vsock, network) at consecutive 4 KiB windows with consecutive interrupt lines.

use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryMmap;

use crate::arch::current::layout::{
    BOOT_TIMER_ADDR, BOOT_TIMER_SIZE, IRQ_MAX, VIRTIO_IRQ_BASE, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE,
};
use crate::bus::MmioBus;
use crate::config::DeviceSpec;
use crate::devices::virtio::block::Block;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::Net;
use crate::devices::virtio::vsock::Vsock;
use crate::devices::virtio::VirtioDevice;
use crate::kvm::KvmVm;
use crate::legacy::boot_timer::BootTimer;
use crate::timing::BootTimes;

use super::cmdline::MmioAnnouncement;
use super::VmmError;

/// A virtio-mmio transport shared between the MMIO bus and the VMM (for snapshots).
pub type SharedTransport = Arc<Mutex<MmioTransport>>;

/// Adds the boot timer and every configured virtio device to `bus`; returns the
/// announcements for the command line and the transports, both in slot order.
pub fn attach_devices(
    config: &DeviceSpec,
    kvm: &KvmVm,
    mem: &GuestMemoryMmap<()>,
    bus: &mut MmioBus,
    times: Arc<BootTimes>,
) -> Result<(Vec<MmioAnnouncement>, Vec<SharedTransport>), VmmError> {
    bus.insert(
        BOOT_TIMER_ADDR,
        BOOT_TIMER_SIZE,
        Arc::new(Mutex::new(BootTimer::new(times))),
    )?;

    let mut virtio: Vec<Box<dyn VirtioDevice>> = Vec::new();
    if let Some((path, read_only)) = &config.rootfs {
        virtio.push(Box::new(Block::new(path, *read_only, "rootfs")?));
    }
    if let Some(path) = &config.scratch {
        virtio.push(Box::new(Block::new(path, false, "scratch")?));
    }
    if let Some((uds, cid)) = &config.vsock {
        virtio.push(Box::new(Vsock::new(*cid, uds)?));
    }
    if let Some((tap, mac)) = &config.net {
        virtio.push(Box::new(Net::new(tap, Some(*mac))?));
    }

    let mut announced = Vec::new();
    let mut transports = Vec::new();
    for (index, device) in virtio.into_iter().enumerate() {
        let MmioAnnouncement { addr, irq } = slot(index)?;
        let line = kvm.irq_line(irq)?;
        let transport = Arc::new(Mutex::new(MmioTransport::new(device, mem.clone(), line)));
        bus.insert(addr, VIRTIO_MMIO_SIZE, transport.clone())?;
        announced.push(MmioAnnouncement { addr, irq });
        transports.push(transport);
    }
    Ok((announced, transports))
}

/// The window and interrupt line (an irqfd GSI; on aarch64 the GIC SPI of that number)
/// of virtio-mmio slot `index`.
pub fn slot(index: usize) -> Result<MmioAnnouncement, VmmError> {
    let irq = u32::try_from(index)
        .ok()
        .and_then(|i| VIRTIO_IRQ_BASE.checked_add(i))
        .filter(|irq| *irq <= IRQ_MAX)
        .ok_or(VmmError::TooManyDevices)?;
    Ok(MmioAnnouncement {
        addr: VIRTIO_MMIO_BASE + index as u64 * VIRTIO_MMIO_SIZE,
        irq,
    })
}
