//! Builds a microVM from a [`VmConfig`] and runs it to its end: guest memory, the KVM VM,
//! the kernel and its boot information, devices, and one thread per vCPU.

pub mod attach;
pub mod cmdline;

use std::fs::File;
use std::io::Write;
use std::sync::{mpsc, Arc};

use kvm_ioctls::VcpuFd;
use vm_memory::GuestMemoryMmap;

use crate::arch::current::layout::SERIAL_IRQ;
use crate::arch::current::{self as arch, EntryMode};
use crate::bus::MmioBus;
use crate::config::VmConfig;
use crate::exit::VmExit;
use crate::hostfix;
use crate::kvm::KvmVm;
use crate::legacy::serial::SerialPort;
use crate::legacy::PioDevices;
use crate::timing::BootTimes;
use crate::vcpu::{self, VcpuContext};
use cmdline::CmdlineAdditions;

/// Errors while building or starting the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// KVM setup failed
    #[error(transparent)]
    Kvm(#[from] crate::kvm::KvmError),
    /// Guest memory could not be created
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// The kernel could not be loaded
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    /// Boot information could not be written
    #[error(transparent)]
    BootInfo(#[from] arch::boot_info::BootInfoError),
    /// The MP table could not be written
    #[error(transparent)]
    Mptable(#[from] arch::mptable::MptableError),
    /// cannot configure vCPU {0}: {1}
    #[error("cannot configure vCPU {0}: {1}")]
    VcpuSetup(u8, arch::VcpuSetupError),
    /// A vCPU thread could not start
    #[error(transparent)]
    Vcpu(#[from] vcpu::VcpuError),
    /// A device could not be placed on the MMIO bus
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// A disk could not be opened
    #[error(transparent)]
    Block(#[from] crate::devices::virtio::block::BlockError),
    /// The vsock device could not be created
    #[error(transparent)]
    Vsock(#[from] crate::devices::virtio::vsock::VsockError),
    /// too many virtio devices for the available interrupt lines
    #[error("too many virtio devices for the available interrupt lines")]
    TooManyDevices,
    /// cannot open serial log {0}: {1}
    #[error("cannot open serial log {0}: {1}")]
    SerialLog(std::path::PathBuf, std::io::Error),
    /// every vCPU thread ended without reporting the VM's end
    #[error("every vCPU thread ended without reporting the VM's end")]
    NoExitReason,
}

/// A VM ready to run.
pub struct Vmm {
    // Kept alive for the VM's lifetime: the VM fd owns the irqchip and irqfds.
    _kvm: KvmVm,
    _mem: GuestMemoryMmap<()>,
    vcpus: Vec<VcpuFd>,
    ctx: VcpuContext,
    cmdline: String,
    entry: arch::BootEntry,
    workaround: bool,
}

fn serial_output(config: &VmConfig) -> Result<Box<dyn Write + Send>, VmmError> {
    match &config.serial_log {
        Some(path) => File::create(path)
            .map(|f| Box::new(f) as Box<dyn Write + Send>)
            .map_err(|e| VmmError::SerialLog(path.clone(), e)),
        None => Ok(Box::new(std::io::stdout())),
    }
}

impl Vmm {
    /// Builds the VM. `pvm_detected` says whether the host is the kvm_pvm hypervisor.
    pub fn build(
        config: &VmConfig,
        times: Arc<BootTimes>,
        pvm_detected: bool,
    ) -> Result<Self, VmmError> {
        let kvm = KvmVm::new()?;
        let mem = crate::memory::create_guest_memory(config.mem_bytes())?;
        kvm.register_memory(&mem)?;

        let kernel = crate::loader::load_kernel(&mem, &config.kernel)?;

        let mut bus = MmioBus::new();
        let devices = attach::attach_devices(config, &kvm, &mem, &mut bus, times.clone())?;
        let workaround = hostfix::workaround_applies(config.pvm_workaround, pvm_detected);
        let additions = CmdlineAdditions {
            root: config.rootfs.as_ref().map(|(_, ro)| *ro),
            devices,
            extra: workaround.then(|| hostfix::PVM_CMDLINE.to_string()),
        };
        let cmdline = cmdline::compose(&config.cmdline, &additions);
        crate::loader::write_cmdline(&mem, &cmdline)?;
        match kernel.entry.mode {
            EntryMode::Pvh => arch::boot_info::write_pvh_info(&mem, config.mem_bytes())?,
            EntryMode::Linux64 => arch::boot_info::write_zero_page(
                &mem,
                config.mem_bytes(),
                kernel.setup_header,
                cmdline.len(),
            )?,
        }
        arch::mptable::write(&mem, config.vcpus)?;

        let serial = SerialPort::new(
            kvm.irq_line(SERIAL_IRQ)?,
            serial_output(config)?,
            times.clone(),
        );
        let ctx = VcpuContext {
            pio: Arc::new(PioDevices::new(serial)),
            mmio: Arc::new(bus),
            times,
        };

        let supported = kvm.supported_cpuid()?;
        let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
        for index in 0..config.vcpus {
            let vcpu = kvm.create_vcpu(u64::from(index))?;
            arch::setup_vcpu(&vcpu, &mem, &supported, index, config.vcpus, kernel.entry)
                .map_err(|e| VmmError::VcpuSetup(index, e))?;
            vcpus.push(vcpu);
        }
        Ok(Vmm {
            _kvm: kvm,
            _mem: mem,
            vcpus,
            ctx,
            cmdline,
            entry: kernel.entry,
            workaround,
        })
    }

    /// The kernel command line the guest gets.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// How and where the boot vCPU enters the kernel.
    pub fn entry(&self) -> arch::BootEntry {
        self.entry
    }

    /// Whether the kvm_pvm workaround was added to the command line.
    pub fn workaround_applied(&self) -> bool {
        self.workaround
    }

    /// Starts every vCPU and waits for the VM's end. vCPU threads that are still running
    /// afterwards are left to the caller (flint-vmm exits the process).
    pub fn run(mut self) -> Result<VmExit, VmmError> {
        let (tx, rx) = mpsc::channel();
        for (index, vcpu) in self.vcpus.drain(..).enumerate() {
            vcpu::spawn(vcpu, index as u8, self.ctx.clone(), tx.clone())?;
        }
        drop(tx);
        let exit = rx.recv().map_err(|_| VmmError::NoExitReason)?;
        // Keep the VM and its memory mapped while straggling vCPU threads still run.
        std::mem::forget(self);
        Ok(exit)
    }
}
