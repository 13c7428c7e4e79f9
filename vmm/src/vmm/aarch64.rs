//! Building an aarch64 VM, in the order arm64 KVM needs: the VM and its memory, the
//! kernel Image, every vCPU (KVM_ARM_VCPU_INIT with the preferred target and PSCI 0.2),
//! then the GICv3 (it must see all vCPUs; finalised with KVM_DEV_ARM_VGIC_CTRL_INIT), then
//! the devices with irqfds on the GIC's SPIs (the 16550 UART and the virtio-mmio devices
//! on the shared MMIO bus), then the device tree describing them, and last the boot
//! vCPU's registers (PC = kernel entry, x0 = device tree, PSTATE EL1h with DAIF masked).

use std::fs::File;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use super::cmdline::{self, CmdlineAdditions, MmioAnnouncement};
use super::{attach, serial_output, vcpu_context, Vmm, VmmError};
use crate::arch::aarch64::fdt::{self, FdtConfig};
use crate::arch::aarch64::layout::{fdt_addr, SERIAL_ADDR, SERIAL_IRQ, SERIAL_SIZE};
use crate::arch::aarch64::{gic, image, vcpu as arm_vcpu, BootEntry};
use crate::bus::MmioBus;
use crate::config::VmConfig;
use crate::kvm::KvmVm;
use crate::legacy::serial::SerialPort;
use crate::timing::BootTimes;

/// What the device tree describes, from the vCPUs' MPIDRs and the devices attached. Its
/// virtio nodes carry the SPIs the devices' irqfds raise, so the guest never needs
/// `virtio_mmio.device=` on its command line.
pub fn fdt_config(
    mpidrs: Vec<u64>,
    mem_bytes: u64,
    cmdline: &str,
    devices: &[MmioAnnouncement],
) -> FdtConfig {
    FdtConfig {
        mpidrs,
        mem_bytes,
        cmdline: cmdline.to_string(),
        virtio: devices.iter().map(|d| (d.addr, d.irq)).collect(),
    }
}

/// The command line: the configured one plus the root device. The virtio-mmio devices
/// are in the device tree, not announced on the command line as on x86_64.
pub fn compose_cmdline(config: &VmConfig) -> String {
    let additions = CmdlineAdditions {
        root: config.rootfs.as_ref().map(|(_, ro)| *ro),
        devices: Vec::new(),
        extra: None,
    };
    cmdline::compose(&config.cmdline, &additions)
}

impl Vmm {
    /// Builds the VM. `_pvm_detected` is for x86_64's kvm_pvm host workaround, which has
    /// no aarch64 counterpart.
    pub fn build(
        config: &VmConfig,
        times: Arc<BootTimes>,
        _pvm_detected: bool,
    ) -> Result<Self, VmmError> {
        let mem_bytes = config.mem_bytes();
        let kvm = KvmVm::new()?;
        let mem = crate::memory::create_guest_memory(mem_bytes)?;
        kvm.register_memory(&mem)?;

        let kernel = File::open(&config.kernel)
            .map_err(image::ImageError::from)
            .and_then(|mut f| image::load(&mem, mem_bytes, &mut f))
            .map_err(|e| VmmError::Image(config.kernel.clone(), e))?;

        let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
        let mut mpidrs = Vec::with_capacity(usize::from(config.vcpus));
        for index in 0..config.vcpus {
            let vcpu = kvm.create_vcpu(u64::from(index))?;
            arm_vcpu::init(kvm.fd(), &vcpu, index).map_err(|e| VmmError::VcpuSetup(index, e))?;
            mpidrs.push(arm_vcpu::mpidr(&vcpu).map_err(|e| VmmError::VcpuSetup(index, e))?);
            vcpus.push(vcpu);
        }
        let gic = gic::create(kvm.fd(), u64::from(config.vcpus))?;

        let mut bus = MmioBus::new();
        let (devices, transports) =
            attach::attach_devices(&config.devices(), &kvm, &mem, &mut bus, times.clone())?;
        let serial = SerialPort::new(
            kvm.irq_line(SERIAL_IRQ)?,
            serial_output(config.serial_log.as_deref())?,
            times.clone(),
        );
        bus.insert(SERIAL_ADDR, SERIAL_SIZE, Arc::new(Mutex::new(serial)))?;

        let cmdline = compose_cmdline(config);
        let blob = fdt::build(&fdt_config(mpidrs, mem_bytes, &cmdline, &devices))?;
        let fdt = fdt_addr(mem_bytes);
        mem.write_slice(&blob, GuestAddress(fdt))
            .map_err(VmmError::FdtMemory)?;

        // fdt::build refused a VM without vCPUs already.
        if let Some(boot) = vcpus.first() {
            arm_vcpu::setup_boot_regs(boot, kernel.entry, fdt)
                .map_err(|e| VmmError::VcpuSetup(0, e))?;
        }

        let ctx = vcpu_context(&kvm, bus, times)?;
        Ok(Vmm {
            kvm,
            mem,
            vcpus,
            ctx,
            transports,
            _gic: gic,
            snapshot_to: None,
            cmdline,
            entry: Some(BootEntry {
                addr: kernel.entry,
                fdt,
            }),
            workaround: false,
        })
    }
}

#[cfg(test)]
#[path = "aarch64_tests.rs"]
mod tests;
