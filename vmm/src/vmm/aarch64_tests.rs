//! The aarch64 machine's device tree as `Vmm::build` writes it, without KVM: every
//! virtio-mmio slot `attach` fills is in the tree with the SPI its irqfd raises, beside
//! the UART, and the command line does not announce the devices a second time.

use super::*;
use crate::arch::aarch64::fdt::{GIC_SPI, IRQ_TYPE_EDGE_RISING};
use crate::arch::aarch64::layout::{spi_intid, VIRTIO_MMIO_SIZE};
use crate::config::RawVmConfig;

fn cells(value: &[u8]) -> Vec<u32> {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u64s(value: &[u8]) -> Vec<u64> {
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[test]
fn the_device_tree_lists_every_attached_device_with_its_spi() {
    // rootfs, scratch, vsock and net: the four slots attach_devices can fill.
    let slots: Vec<_> = (0..4).map(|i| attach::slot(i).expect("slot")).collect();
    let cfg = fdt_config(
        vec![0x8000_0000, 0x8000_0001],
        256 << 20,
        "console=ttyS0",
        &slots,
    );
    let blob = fdt::build(&cfg).expect("fdt");
    let tree = ::fdt::Fdt::new(&blob).expect("parse");

    let uart = tree.find_node("/uart@9000000").expect("uart");
    assert_eq!(
        cells(uart.property("interrupts").expect("interrupts").value),
        [GIC_SPI, SERIAL_IRQ, IRQ_TYPE_EDGE_RISING]
    );
    let virtio: Vec<_> = tree
        .all_nodes()
        .filter(|n| n.compatible().map(|c| c.first()) == Some("virtio,mmio"))
        .collect();
    assert_eq!(virtio.len(), slots.len());
    let mut spis = vec![SERIAL_IRQ];
    for (node, slot) in virtio.iter().zip(&slots) {
        assert_eq!(node.name, format!("virtio_mmio@{:x}", slot.addr));
        assert_eq!(
            u64s(node.property("reg").expect("reg").value),
            [slot.addr, VIRTIO_MMIO_SIZE]
        );
        let irq = cells(node.property("interrupts").expect("interrupts").value);
        // The irqfd registered for GSI `slot.irq` raises exactly this SPI.
        assert_eq!(irq, [GIC_SPI, slot.irq, IRQ_TYPE_EDGE_RISING]);
        assert!(spi_intid(slot.irq) < crate::arch::aarch64::layout::GIC_NR_IRQS);
        spis.push(slot.irq);
    }
    let distinct: std::collections::BTreeSet<_> = spis.iter().collect();
    assert_eq!(
        distinct.len(),
        spis.len(),
        "every device has its own SPI: {spis:?}"
    );
    assert_eq!(tree.cpus().count(), 2);
}

#[test]
fn too_many_devices_for_the_spis_are_refused() {
    let last = (crate::arch::aarch64::layout::IRQ_MAX
        - crate::arch::aarch64::layout::VIRTIO_IRQ_BASE) as usize;
    assert!(attach::slot(last).is_ok());
    assert!(matches!(
        attach::slot(last + 1),
        Err(VmmError::TooManyDevices)
    ));
}

#[test]
fn the_command_line_names_the_root_disk_but_not_the_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("Image");
    let disk = dir.path().join("rootfs.ext4");
    std::fs::write(&kernel, b"k").expect("kernel");
    std::fs::write(&disk, b"d").expect("disk");
    let raw = RawVmConfig {
        kernel: Some(kernel),
        rootfs: Some(disk),
        cmdline: Some("console=ttyS0 -- -v".into()),
        ..Default::default()
    };
    let config = VmConfig::try_from(raw).expect("config");
    let line = compose_cmdline(&config);
    assert!(line.starts_with("console=ttyS0 root=/dev/vda"), "{line}");
    assert!(line.ends_with(" -- -v"), "{line}");
    assert!(!line.contains("virtio_mmio.device"), "{line}");
}
