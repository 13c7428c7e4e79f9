//! The aarch64 guest physical memory map. Devices sit in the first 2 GiB, RAM starts at
//! 2 GiB (as on QEMU's `virt` machine and Firecracker), and the device tree goes in the
//! last 2 MiB of RAM. Every address the machine uses is named here.
//!
//! ```text
//! 0x0800_0000  GICv3 distributor (64 KiB)
//! 0x080a_0000  GICv3 redistributors, 128 KiB per vCPU, up to 0x0900_0000
//! 0x0900_0000  16550 UART (ns16550a, MMIO, one page)
//! 0x0900_1000  Flint boot-timer page
//! 0x0a00_0000  virtio-mmio devices, one page each
//! 0x8000_0000  RAM; the kernel Image at RAM_START + text_offset; the DTB in the last 2 MiB
//! ```

/// GICv3 distributor base.
pub const GIC_DIST_ADDR: u64 = 0x0800_0000;
/// GICv3 distributor size.
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// First GICv3 redistributor (vCPU `i` at `GIC_REDIST_ADDR + i * GIC_REDIST_SIZE`).
pub const GIC_REDIST_ADDR: u64 = 0x080a_0000;
/// One vCPU's redistributor: RD_base and SGI_base frames, 64 KiB each.
pub const GIC_REDIST_SIZE: u64 = 0x2_0000;
/// End (exclusive) of the redistributor window.
pub const GIC_REDIST_END: u64 = SERIAL_ADDR;
/// Most vCPUs whose redistributors fit in the window.
pub const MAX_VCPUS: u64 = (GIC_REDIST_END - GIC_REDIST_ADDR) / GIC_REDIST_SIZE;

/// The 16550 UART (device tree `compatible = "ns16550a"`, 1-byte registers).
pub const SERIAL_ADDR: u64 = 0x0900_0000;
/// Size of the UART's window.
pub const SERIAL_SIZE: u64 = 0x1000;
/// The Flint boot-timer device page.
pub const BOOT_TIMER_ADDR: u64 = 0x0900_1000;
/// Size of the boot-timer device page.
pub const BOOT_TIMER_SIZE: u64 = 0x1000;
/// First virtio-mmio device; device `i` sits at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
/// Size of each virtio-mmio device window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;

/// Shared peripheral interrupts (SPIs) are INTIDs 32 and up; a KVM irqfd GSI `n` raises
/// SPI `n` (INTID `32 + n`), which the device tree names `<GIC_SPI n ...>`.
pub const SPI_BASE_INTID: u32 = 32;
/// The UART's SPI number.
pub const SERIAL_IRQ: u32 = 0;
/// The boot-timer has no interrupt; the first virtio-mmio device uses SPI 1, device `i`
/// SPI `VIRTIO_IRQ_BASE + i`.
pub const VIRTIO_IRQ_BASE: u32 = 1;
/// Number of interrupts KVM's GIC gets (KVM_DEV_ARM_VGIC_GRP_NR_IRQS): SPIs 0..=95.
pub const GIC_NR_IRQS: u32 = 128;
/// Last SPI usable by a device.
pub const IRQ_MAX: u32 = GIC_NR_IRQS - SPI_BASE_INTID - 1;

/// The architected timer's private peripheral interrupts (PPI numbers, INTID - 16):
/// secure physical, non-secure physical, virtual, hypervisor, as the kernel's
/// `arm,armv8-timer` binding lists them.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// Guest RAM starts at 2 GiB.
pub const RAM_START: u64 = 0x8000_0000;
/// Largest guest RAM size: up to the 40-bit IPA space KVM gives a VM by default (1 TiB).
pub const MAX_MEM_BYTES: u64 = (1 << 40) - RAM_START;

/// The kernel Image's base must be 2 MiB aligned (Documentation/arm64/booting.rst).
pub const KERNEL_ALIGN: u64 = 0x20_0000;
/// Largest device tree blob: the kernel maps at most 2 MiB of it.
pub const FDT_MAX_SIZE: u64 = 0x20_0000;

/// Guest address of the device tree blob: the last 2 MiB-aligned 2 MiB of RAM, so it
/// neither crosses a 2 MiB block nor overlaps the kernel at the start of RAM.
pub fn fdt_addr(mem_bytes: u64) -> u64 {
    RAM_START + (mem_bytes & !(KERNEL_ALIGN - 1)) - FDT_MAX_SIZE
}

/// Base of virtio-mmio device `index` and its SPI number.
pub fn virtio_slot(index: u32) -> (u64, u32) {
    (
        VIRTIO_MMIO_BASE + u64::from(index) * VIRTIO_MMIO_SIZE,
        VIRTIO_IRQ_BASE + index,
    )
}

/// The GIC interrupt id (INTID) of SPI `spi`. KVM's irqfd GSI `n` and the device tree's
/// `<GIC_SPI n ...>` both name SPI `n`; the GIC itself (and a KVM_IRQ_LINE caller)
/// counts INTIDs, which start at 32 for SPIs.
pub const fn spi_intid(spi: u32) -> u32 {
    SPI_BASE_INTID + spi
}

/// Base of vCPU `index`'s redistributor.
pub fn redist_addr(index: u64) -> u64 {
    GIC_REDIST_ADDR + index * GIC_REDIST_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_windows_do_not_overlap_and_sit_below_ram() {
        let windows = [
            (GIC_DIST_ADDR, GIC_DIST_SIZE),
            (GIC_REDIST_ADDR, GIC_REDIST_END - GIC_REDIST_ADDR),
            (SERIAL_ADDR, SERIAL_SIZE),
            (BOOT_TIMER_ADDR, BOOT_TIMER_SIZE),
            (VIRTIO_MMIO_BASE, u64::from(IRQ_MAX) * VIRTIO_MMIO_SIZE),
        ];
        for (i, &(a, alen)) in windows.iter().enumerate() {
            assert!(a + alen <= RAM_START, "window {i} reaches RAM");
            for &(b, blen) in &windows[i + 1..] {
                assert!(a + alen <= b || b + blen <= a, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn redistributors_fit_the_most_vcpus() {
        assert_eq!(MAX_VCPUS, 123);
        assert!(redist_addr(MAX_VCPUS) <= GIC_REDIST_END);
        assert!(redist_addr(MAX_VCPUS + 1) > GIC_REDIST_END);
        assert!(MAX_VCPUS >= u64::from(crate::config::MAX_VCPUS));
    }

    #[test]
    fn the_dtb_takes_the_last_two_mib_of_ram() {
        assert_eq!(fdt_addr(128 << 20), RAM_START + (126 << 20));
        // RAM not a multiple of 2 MiB: the tail is left unused, the DTB stays aligned.
        assert_eq!(fdt_addr((128 << 20) + 4096), RAM_START + (126 << 20));
        assert_eq!(fdt_addr(128 << 20) % KERNEL_ALIGN, 0);
    }

    #[test]
    fn every_device_spi_is_an_intid_the_gic_was_sized_for() {
        assert_eq!(spi_intid(SERIAL_IRQ), 32);
        assert_eq!(spi_intid(VIRTIO_IRQ_BASE), 33);
        // KVM_DEV_ARM_VGIC_GRP_NR_IRQS counts INTIDs: the last device SPI must be below it.
        assert_eq!(spi_intid(IRQ_MAX), GIC_NR_IRQS - 1);
        assert!(spi_intid(virtio_slot(IRQ_MAX - VIRTIO_IRQ_BASE).1) < GIC_NR_IRQS);
        // KVM's limits: NR_IRQS a multiple of 32, at most 1024 INTIDs.
        const { assert!(GIC_NR_IRQS.is_multiple_of(32) && GIC_NR_IRQS <= 1024) };
    }

    #[test]
    fn virtio_slots_follow_each_other_with_their_own_spi() {
        assert_eq!(virtio_slot(0), (0x0a00_0000, 1));
        assert_eq!(virtio_slot(2), (0x0a00_2000, 3));
        const { assert!(SERIAL_IRQ < VIRTIO_IRQ_BASE) };
    }
}
