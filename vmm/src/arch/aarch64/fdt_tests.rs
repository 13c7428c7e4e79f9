//! Reads the device tree back with the `fdt` crate and checks what a kernel looks for.

use super::*;
use crate::arch::aarch64::layout::{fdt_addr, virtio_slot};

fn config(vcpus: u64) -> FdtConfig {
    FdtConfig {
        mpidrs: (0..vcpus).map(|i| 0x8000_0000 | i).collect(),
        mem_bytes: 128 << 20,
        cmdline: "console=ttyS0 reboot=k panic=1".into(),
        virtio: vec![virtio_slot(0), virtio_slot(1)],
    }
}

/// A property's big-endian 32-bit cells.
pub(crate) fn cells(value: &[u8]) -> Vec<u32> {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A property's big-endian 64-bit values.
pub(crate) fn u64s(value: &[u8]) -> Vec<u64> {
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn prop<'a>(fdt: &'a fdt::Fdt<'a>, node: &str, name: &str) -> &'a [u8] {
    fdt.find_node(node)
        .unwrap_or_else(|| panic!("no node {node}"))
        .property(name)
        .unwrap_or_else(|| panic!("no {name} in {node}"))
        .value
}

#[test]
fn memory_chosen_and_root_cells() {
    let blob = build(&config(1)).expect("fdt");
    let fdt = fdt::Fdt::new(&blob).expect("parse");
    assert_eq!(
        fdt.chosen().bootargs(),
        Some("console=ttyS0 reboot=k panic=1")
    );
    assert_eq!(fdt.chosen().stdout().map(|n| n.name), Some("uart@9000000"));
    let regions: Vec<_> = fdt.memory().regions().collect();
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0].starting_address as u64, RAM_START);
    assert_eq!(regions[0].size, Some(128 << 20));
    assert_eq!(cells(prop(&fdt, "/", "#address-cells")), [2]);
    assert_eq!(cells(prop(&fdt, "/", "interrupt-parent")), [GIC_PHANDLE]);
    // The blob fits where the machine puts it.
    assert!(blob.len() as u64 <= FDT_MAX_SIZE);
    assert!(fdt_addr(128 << 20) + FDT_MAX_SIZE <= RAM_START + (128 << 20));
}

#[test]
fn one_cpu_node_per_vcpu_with_psci() {
    let blob = build(&config(3)).expect("fdt");
    let fdt = fdt::Fdt::new(&blob).expect("parse");
    let cpus = fdt.find_node("/cpus").expect("cpus");
    let nodes: Vec<_> = cpus.children().collect();
    assert_eq!(nodes.len(), 3);
    for (i, cpu) in nodes.iter().enumerate() {
        // MPIDR bit 31 (RES1) is not an affinity field: left out of `reg`.
        assert_eq!(cpu.name, format!("cpu@{i:x}"));
        assert_eq!(u64s(cpu.property("reg").expect("reg").value), [i as u64]);
        assert_eq!(
            cpu.property("enable-method").and_then(|p| p.as_str()),
            Some("psci")
        );
    }
    assert_eq!(
        fdt.find_node("/psci")
            .and_then(|n| n.compatible())
            .map(|c| c.first()),
        Some("arm,psci-0.2")
    );
    assert_eq!(prop(&fdt, "/psci", "method"), b"hvc\0");
}

#[test]
fn gic_redistributors_cover_every_vcpu() {
    let blob = build(&config(4)).expect("fdt");
    let fdt = fdt::Fdt::new(&blob).expect("parse");
    let gic = fdt.find_compatible(&["arm,gic-v3"]).expect("gic");
    assert_eq!(gic.name, "intc@8000000");
    assert!(gic.property("interrupt-controller").is_some());
    assert_eq!(gic.interrupt_cells(), Some(3));
    assert_eq!(
        u64s(gic.property("reg").expect("reg").value),
        [
            GIC_DIST_ADDR,
            GIC_DIST_SIZE,
            GIC_REDIST_ADDR,
            4 * GIC_REDIST_SIZE
        ]
    );
    assert_eq!(
        cells(gic.property("phandle").expect("phandle").value),
        [GIC_PHANDLE]
    );
}

#[test]
fn timer_uart_and_virtio_interrupts() {
    let blob = build(&config(1)).expect("fdt");
    let fdt = fdt::Fdt::new(&blob).expect("parse");
    assert_eq!(
        cells(prop(&fdt, "/timer", "interrupts")),
        [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    );
    assert_eq!(
        cells(prop(&fdt, "/uart@9000000", "interrupts")),
        [GIC_SPI, SERIAL_IRQ, IRQ_TYPE_EDGE_RISING]
    );
    assert_eq!(
        u64s(prop(&fdt, "/uart@9000000", "reg")),
        [SERIAL_ADDR, SERIAL_SIZE]
    );
    let virtio: Vec<_> = fdt
        .all_nodes()
        .filter(|n| n.compatible().map(|c| c.first()) == Some("virtio,mmio"))
        .collect();
    assert_eq!(virtio.len(), 2);
    for (i, dev) in virtio.iter().enumerate() {
        let (base, spi) = virtio_slot(i as u32);
        assert_eq!(dev.name, format!("virtio_mmio@{base:x}"));
        assert_eq!(
            u64s(dev.property("reg").expect("reg").value),
            [base, VIRTIO_MMIO_SIZE]
        );
        assert_eq!(
            cells(dev.property("interrupts").expect("interrupts").value),
            [GIC_SPI, spi, IRQ_TYPE_EDGE_RISING]
        );
    }
}

#[test]
fn no_vcpu_is_refused() {
    let mut cfg = config(1);
    cfg.mpidrs.clear();
    assert!(matches!(build(&cfg), Err(FdtError::NoVcpus)));
}
