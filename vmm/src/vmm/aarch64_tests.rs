//! The aarch64 machine's device tree as `Vmm::build` writes it, without KVM: every
//! virtio-mmio slot `attach` fills is in the tree with the SPI its irqfd raises, beside
//! the UART, and the command line does not announce the devices a second time.

use super::*;
use crate::arch::aarch64::fdt::tests::{cells, u64s};
use crate::arch::aarch64::fdt::{GIC_SPI, IRQ_TYPE_EDGE_RISING};
use crate::arch::aarch64::layout::fdt_addr;
use crate::arch::aarch64::layout::{spi_intid, VIRTIO_MMIO_SIZE};
use crate::config::RawVmConfig;

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

/// The tiny guest below as an arm64 `Image`: `b` over the 64-byte header, then (at 0x40)
/// check that x0 points at a device tree (its magic 0xd00dfeed, big-endian), write 'O'
/// and then 'K' (or 'X' if x0 was wrong) to the UART, and PSCI SYSTEM_OFF (`hvc`,
/// function 0x8400_0008). Encodings checked with `aarch64-linux-gnu-as`.
fn tiny_image() -> Vec<u8> {
    const CODE: [u32; 14] = [
        0xb940_0003, // ldr  w3, [x0]
        0x5281_ba04, // movz w4, #0x0dd0
        0x72bd_bfc4, // movk w4, #0xedfe, lsl #16
        0x6b04_007f, // cmp  w3, w4
        0xd2a1_2001, // movz x1, #0x0900, lsl #16   (the UART)
        0x5280_09e2, // movz w2, #'O'
        0x3900_0022, // strb w2, [x1]
        0x5280_0962, // movz w2, #'K'
        0x5280_0b05, // movz w5, #'X'
        0x1a85_0042, // csel w2, w2, w5, eq
        0x3900_0022, // strb w2, [x1]
        0x5280_0100, // movz w0, #8
        0x72b0_8000, // movk w0, #0x8400, lsl #16  (PSCI SYSTEM_OFF)
        0xd400_0002, // hvc  #0
    ];
    let mut image = vec![0u8; 4096];
    image[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b 0x40
    image[16..24].copy_from_slice(&4096u64.to_le_bytes()); // image_size; text_offset 0
    image[56..60].copy_from_slice(&crate::arch::aarch64::image::IMAGE_MAGIC.to_le_bytes());
    for (i, word) in CODE.iter().enumerate() {
        image[64 + 4 * i..68 + 4 * i].copy_from_slice(&word.to_le_bytes());
    }
    image
}

#[test]
fn the_tiny_image_parses_and_enters_after_its_header() {
    let header = image::parse_header(&tiny_image()).expect("header");
    assert_eq!((header.text_offset, header.image_size), (0, 4096));
}

/// The whole aarch64 path on real KVM: `Vmm::build` (two vCPUs, a disk and vsock on
/// irqfds after the GIC) and the shared run loop; the guest's UART stores come through
/// KVM_EXIT_MMIO to the MMIO bus and its PSCI SYSTEM_OFF ends the VM with status 0.
#[test]
#[ignore = "needs /dev/kvm on an aarch64 host"]
fn a_tiny_image_boots_through_vmm_build_and_powers_off_through_psci() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("Image");
    let disk = dir.path().join("disk.img");
    let log = dir.path().join("serial.log");
    std::fs::write(&kernel, tiny_image()).expect("kernel");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk");
    let raw = RawVmConfig {
        kernel: Some(kernel),
        mem_mib: Some(64),
        vcpus: Some(2),
        rootfs: Some(disk),
        vsock_uds: Some(dir.path().join("v.sock")),
        vsock_cid: Some(3),
        serial_log: Some(log.clone()),
        ..Default::default()
    };
    let config = VmConfig::try_from(raw).expect("config");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let times = Arc::new(BootTimes::new(std::time::Instant::now()));
        let result = Vmm::build(&config, times, false).and_then(|vmm| {
            assert_eq!(
                vmm.entry(),
                Some(BootEntry {
                    addr: crate::arch::aarch64::layout::RAM_START,
                    fdt: fdt_addr(64 << 20),
                })
            );
            vmm.run()
        });
        let _ = tx.send(result.map_err(|e| e.to_string()));
    });
    let serial = || std::fs::read_to_string(&log).unwrap_or_default();
    let exit = match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(result) => result.unwrap_or_else(|e| panic!("{e}; serial: {:?}", serial())),
        Err(_) => panic!("no exit within 10 s; serial: {:?}", serial()),
    };
    assert_eq!(exit.exit_code(), 0, "{exit:?}; serial: {:?}", serial());
    assert_eq!(serial(), "OK");
}
