//! The flattened device tree an arm64 kernel boots with (its address in x0): memory,
//! CPUs (enabled through PSCI), the architected timer, KVM's GICv3, the 16550 UART and
//! the virtio-mmio devices with their interrupts, and `/chosen` with the command line.
//! Written with `vm-fdt`; the tests read the blob back with the `fdt` crate.

use vm_fdt::FdtWriter;

use super::layout::{
    FDT_MAX_SIZE, GIC_DIST_ADDR, GIC_DIST_SIZE, GIC_REDIST_ADDR, GIC_REDIST_SIZE, RAM_START,
    SERIAL_ADDR, SERIAL_IRQ, SERIAL_SIZE, TIMER_PPIS, VIRTIO_MMIO_SIZE,
};

/// `interrupts` cell 0: a shared peripheral interrupt.
pub const GIC_SPI: u32 = 0;
/// `interrupts` cell 0: a private peripheral interrupt.
pub const GIC_PPI: u32 = 1;
/// `interrupts` cell 2: rising edge (the UART and virtio-mmio, raised by irqfds).
pub const IRQ_TYPE_EDGE_RISING: u32 = 1;
/// `interrupts` cell 2: level, active high.
pub const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// The GIC's phandle, the root's `interrupt-parent`.
pub const GIC_PHANDLE: u32 = 1;
/// The GICv3 maintenance interrupt (PPI 9), which the binding asks for.
pub const GIC_MAINTENANCE_PPI: u32 = 9;
/// The UART's input clock: the 16550's classic 1.8432 MHz.
pub const SERIAL_CLOCK_HZ: u32 = 1_843_200;

/// What the device tree describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdtConfig {
    /// Each vCPU's MPIDR_EL1 (its `reg`), in vCPU order.
    pub mpidrs: Vec<u64>,
    /// Guest RAM size, from `RAM_START`.
    pub mem_bytes: u64,
    /// Kernel command line (`/chosen/bootargs`).
    pub cmdline: String,
    /// The virtio-mmio devices: window base and SPI number.
    pub virtio: Vec<(u64, u32)>,
}

/// Errors while writing the device tree.
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    /// The writer refused a node or property.
    #[error("writing the device tree: {0}")]
    Write(#[from] vm_fdt::Error),
    /// The blob outgrew the 2 MiB an arm64 kernel maps.
    #[error("the device tree is {0} bytes, more than the {FDT_MAX_SIZE} an arm64 kernel maps")]
    TooLarge(usize),
    /// No vCPU to describe.
    #[error("the device tree needs at least one vCPU")]
    NoVcpus,
}

/// Writes the device tree blob.
pub fn build(cfg: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    if cfg.mpidrs.is_empty() {
        return Err(FdtError::NoVcpus);
    }
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", &cfg.cmdline)?;
    w.property_string("stdout-path", &format!("/uart@{SERIAL_ADDR:x}"))?;
    w.end_node(chosen)?;

    let memory = w.begin_node(&format!("memory@{RAM_START:x}"))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[RAM_START, cfg.mem_bytes])?;
    w.end_node(memory)?;

    cpus(&mut w, &cfg.mpidrs)?;
    gic(&mut w, cfg.mpidrs.len() as u64)?;
    timer(&mut w)?;

    let psci = w.begin_node("psci")?;
    w.property_string("compatible", "arm,psci-0.2")?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    let uart = w.begin_node(&format!("uart@{SERIAL_ADDR:x}"))?;
    w.property_string("compatible", "ns16550a")?;
    w.property_array_u64("reg", &[SERIAL_ADDR, SERIAL_SIZE])?;
    w.property_u32("clock-frequency", SERIAL_CLOCK_HZ)?;
    // Edge: the UART's interrupt is an irqfd, which pulses the line.
    w.property_array_u32("interrupts", &[GIC_SPI, SERIAL_IRQ, IRQ_TYPE_EDGE_RISING])?;
    w.end_node(uart)?;

    for &(base, spi) in &cfg.virtio {
        let dev = w.begin_node(&format!("virtio_mmio@{base:x}"))?;
        w.property_string("compatible", "virtio,mmio")?;
        w.property_array_u64("reg", &[base, VIRTIO_MMIO_SIZE])?;
        w.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_TYPE_EDGE_RISING])?;
        w.property_null("dma-coherent")?;
        w.end_node(dev)?;
    }

    w.end_node(root)?;
    let blob = w.finish()?;
    if blob.len() as u64 > FDT_MAX_SIZE {
        return Err(FdtError::TooLarge(blob.len()));
    }
    Ok(blob)
}

fn cpus(w: &mut FdtWriter, mpidrs: &[u64]) -> Result<(), FdtError> {
    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 0)?;
    for &mpidr in mpidrs {
        // Only the affinity fields (Aff3 in bits 32-39, Aff2-0 in bits 0-23) go in `reg`.
        let reg = mpidr & 0xff_00ff_ffff;
        let cpu = w.begin_node(&format!("cpu@{reg:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,arm-v8")?;
        w.property_string("enable-method", "psci")?;
        w.property_u64("reg", reg)?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;
    Ok(())
}

fn gic(w: &mut FdtWriter, vcpus: u64) -> Result<(), FdtError> {
    let gic = w.begin_node(&format!("intc@{GIC_DIST_ADDR:x}"))?;
    w.property_string("compatible", "arm,gic-v3")?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_array_u64(
        "reg",
        &[
            GIC_DIST_ADDR,
            GIC_DIST_SIZE,
            GIC_REDIST_ADDR,
            GIC_REDIST_SIZE * vcpus,
        ],
    )?;
    w.property_u32("#redistributor-regions", 1)?;
    w.property_phandle(GIC_PHANDLE)?;
    w.property_array_u32(
        "interrupts",
        &[GIC_PPI, GIC_MAINTENANCE_PPI, IRQ_TYPE_LEVEL_HIGH],
    )?;
    w.end_node(gic)?;
    Ok(())
}

fn timer(w: &mut FdtWriter) -> Result<(), FdtError> {
    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    w.property_null("always-on")?;
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, IRQ_TYPE_LEVEL_HIGH])
        .collect();
    w.property_array_u32("interrupts", &cells)?;
    w.end_node(timer)?;
    Ok(())
}

#[cfg(test)]
#[path = "fdt_tests.rs"]
pub(crate) mod tests;
