//! Builds a microVM from a [`VmConfig`] (or restores one from a snapshot, `restore.rs`)
//! and runs it to its end: guest memory, the KVM VM, the kernel and its boot information,
//! devices, and one thread per vCPU. With a snapshot directory set, SIGUSR1 pauses the
//! vCPUs and writes the VM there (`snapshot.rs`).
//!
//! Shared by both architectures: the device attachment, the command line, the vCPU
//! threads and the run loop. Building the machine is per architecture: x86_64 here
//! (PVH/bzImage, boot information, MP table, port I/O devices), aarch64 in `aarch64.rs`
//! (arm64 Image, GICv3, device tree, MMIO UART). Snapshots are x86_64-only.

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod attach;
pub mod cmdline;
#[cfg(target_arch = "x86_64")]
mod restore;
#[cfg(target_arch = "x86_64")]
pub use restore::restored_devices;
#[cfg(target_arch = "x86_64")]
mod snapshot;

use std::fs::File;
use std::io::Write;
use std::os::unix::thread::JoinHandleExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use kvm_ioctls::VcpuFd;
use vm_memory::GuestMemoryMmap;

use crate::arch::current as arch;
#[cfg(target_arch = "x86_64")]
use crate::arch::current::layout::SERIAL_IRQ;
#[cfg(target_arch = "x86_64")]
use crate::arch::current::EntryMode;
use crate::bus::MmioBus;
#[cfg(target_arch = "x86_64")]
use crate::config::VmConfig;
use crate::exit::VmExit;
#[cfg(target_arch = "x86_64")]
use crate::hostfix;
use crate::kvm::KvmVm;
#[cfg(target_arch = "x86_64")]
use crate::legacy::serial::SerialPort;
#[cfg(target_arch = "x86_64")]
use crate::legacy::PioDevices;
use crate::pause::{self, PauseControl};
#[cfg(target_arch = "x86_64")]
use crate::snapshot::MachineConfig;
use crate::timing::BootTimes;
use crate::vcpu::{self, VcpuContext, VmEvent};
#[cfg(target_arch = "x86_64")]
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
    #[cfg(target_arch = "x86_64")]
    /// The kernel could not be loaded
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    #[cfg(target_arch = "x86_64")]
    /// Boot information could not be written
    #[error(transparent)]
    BootInfo(#[from] arch::boot_info::BootInfoError),
    #[cfg(target_arch = "x86_64")]
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
    /// The network device could not be created
    #[error(transparent)]
    Net(#[from] crate::devices::virtio::net::NetError),
    /// too many virtio devices for the available interrupt lines
    #[error("too many virtio devices for the available interrupt lines")]
    TooManyDevices,
    /// cannot open serial log {0}: {1}
    #[error("cannot open serial log {0}: {1}")]
    SerialLog(std::path::PathBuf, std::io::Error),
    /// every vCPU thread ended without reporting the VM's end
    #[error("every vCPU thread ended without reporting the VM's end")]
    NoExitReason,
    /// cannot set up snapshot signals: {0}
    #[error("cannot set up snapshot signals: {0}")]
    Signal(std::io::Error),
    /// cannot probe what vCPU state KVM can save: {0}
    #[error("cannot probe what vCPU state KVM can save: {0}")]
    SaveCaps(arch::vcpu_state::VcpuStateError),
    /// cannot save vCPU {0}: {1}
    #[error("cannot save vCPU {0}: {1}")]
    SaveVcpu(u8, arch::vcpu_state::VcpuStateError),
    /// cannot restore vCPU {0}: {1}
    #[error("cannot restore vCPU {0}: {1}")]
    RestoreVcpu(u8, arch::vcpu_state::VcpuStateError),
    #[cfg(target_arch = "x86_64")]
    /// VM state (interrupt controllers, PIT, clock)
    #[error("cannot save or restore the VM's interrupt controllers, PIT or clock: {0}")]
    VmState(#[from] arch::vm_state::VmStateError),
    /// the vCPUs did not pause within {0:?}
    #[error("the vCPUs did not pause within {0:?}")]
    PauseTimeout(std::time::Duration),
    #[cfg(target_arch = "x86_64")]
    /// Snapshot files
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// cannot restore virtio device {0}: {1}
    #[error("cannot restore virtio device {0}: {1}")]
    RestoreDevice(usize, crate::devices::virtio::mmio::TransportRestoreError),
    /// cannot restore the serial port
    #[error(transparent)]
    RestoreSerial(#[from] crate::legacy::serial::SerialRestoreError),
    /// the snapshot does not fit this machine: {0}
    #[error("the snapshot does not fit this machine: {0}")]
    Mismatch(String),
    /// cannot load the kernel {0}: {1}
    #[cfg(target_arch = "aarch64")]
    #[error("cannot load the kernel {0}: {1}")]
    Image(PathBuf, arch::image::ImageError),
    /// The device tree could not be written
    #[cfg(target_arch = "aarch64")]
    #[error(transparent)]
    Fdt(#[from] arch::fdt::FdtError),
    /// cannot write the device tree into guest memory: {0}
    #[cfg(target_arch = "aarch64")]
    #[error("cannot write the device tree into guest memory: {0}")]
    FdtMemory(vm_memory::GuestMemoryError),
    /// The GICv3 could not be created
    #[cfg(target_arch = "aarch64")]
    #[error(transparent)]
    Gic(#[from] arch::gic::GicError),
    /// snapshots are not supported on aarch64
    #[cfg(target_arch = "aarch64")]
    #[error("snapshots are not supported on aarch64: flint-vmm takes and restores them on x86_64 hosts only")]
    SnapshotUnsupported,
}

/// A VM ready to run.
// On aarch64 `kvm`, `mem` and `transports` are only kept alive (x86_64 snapshots read them).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub struct Vmm {
    // Kept alive for the VM's lifetime: the VM fd owns the irqchip and irqfds.
    kvm: KvmVm,
    mem: GuestMemoryMmap<()>,
    vcpus: Vec<VcpuFd>,
    ctx: VcpuContext,
    transports: Vec<attach::SharedTransport>,
    #[cfg(target_arch = "x86_64")]
    machine: MachineConfig,
    // The in-kernel GICv3's device fd, open as long as the VM.
    #[cfg(target_arch = "aarch64")]
    _gic: arch::gic::Gic,
    snapshot_to: Option<PathBuf>,
    cmdline: String,
    entry: Option<arch::BootEntry>,
    workaround: bool,
}

fn serial_output(serial_log: Option<&Path>) -> Result<Box<dyn Write + Send>, VmmError> {
    match serial_log {
        Some(path) => File::create(path)
            .map(|f| Box::new(f) as Box<dyn Write + Send>)
            .map_err(|e| VmmError::SerialLog(path.to_owned(), e)),
        None => Ok(Box::new(std::io::stdout())),
    }
}

/// The context every vCPU thread of a VM on `kvm` shares.
fn vcpu_context(
    kvm: &KvmVm,
    #[cfg(target_arch = "x86_64")] pio: PioDevices,
    bus: MmioBus,
    times: Arc<BootTimes>,
) -> Result<VcpuContext, VmmError> {
    Ok(VcpuContext {
        #[cfg(target_arch = "x86_64")]
        pio: Arc::new(pio),
        mmio: Arc::new(bus),
        times,
        pause: Arc::new(PauseControl::default()),
        caps: Arc::new(kvm.save_caps().map_err(VmmError::SaveCaps)?),
    })
}

impl Vmm {
    /// Builds the VM. `pvm_detected` says whether the host is the kvm_pvm hypervisor.
    #[cfg(target_arch = "x86_64")]
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
        let (devices, transports) =
            attach::attach_devices(&config.devices(), &kvm, &mem, &mut bus, times.clone())?;
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
            serial_output(config.serial_log.as_deref())?,
            times.clone(),
        );
        let ctx = vcpu_context(&kvm, PioDevices::new(serial), bus, times)?;

        let mut supported = kvm.supported_cpuid()?;
        if workaround {
            // kvm_pvm: a guest's vmcall never returns (vmm/README.md, "The host workaround").
            arch::cpuid::hide_hypercall_features(&mut supported);
        }
        let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
        for index in 0..config.vcpus {
            let vcpu = kvm.create_vcpu(u64::from(index))?;
            arch::setup_vcpu(&vcpu, &mem, &supported, index, config.vcpus, kernel.entry)
                .map_err(|e| VmmError::VcpuSetup(index, e))?;
            vcpus.push(vcpu);
        }
        Ok(Vmm {
            kvm,
            mem,
            vcpus,
            ctx,
            transports,
            machine: MachineConfig {
                mem_mib: config.mem_mib,
                vcpus: config.vcpus,
                devices: config.devices(),
            },
            snapshot_to: None,
            cmdline,
            entry: Some(kernel.entry),
            workaround,
        })
    }

    /// Makes SIGUSR1 write a snapshot of the running VM to `dir` (created if missing)
    /// and stop the VM (exit status 5).
    pub fn snapshot_on_signal(&mut self, dir: PathBuf) {
        self.snapshot_to = Some(dir);
    }

    /// The kernel command line the guest gets.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// How and where the boot vCPU enters the kernel (`None` for a restored VM).
    pub fn entry(&self) -> Option<arch::BootEntry> {
        self.entry
    }

    /// Whether the kvm_pvm workaround was added to the command line.
    pub fn workaround_applied(&self) -> bool {
        self.workaround
    }

    /// Starts every vCPU and waits for the VM's end (or, with a snapshot directory, for
    /// SIGUSR1, then writes the snapshot). vCPU threads that are still running afterwards
    /// are left to the caller (flint-vmm exits the process).
    pub fn run(mut self) -> Result<VmExit, VmmError> {
        if self.snapshot_to.is_some() {
            // Before any thread starts, so that every thread inherits the blocked mask.
            pause::block_snapshot_signal().map_err(VmmError::Signal)?;
        }
        pause::install_kick_handler().map_err(VmmError::Signal)?;
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(self.vcpus.len());
        for (index, vcpu) in self.vcpus.drain(..).enumerate() {
            let handle = vcpu::spawn(vcpu, index as u8, self.ctx.clone(), tx.clone())?;
            threads.push(handle.as_pthread_t());
        }
        if self.snapshot_to.is_some() {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("flint-snapshot-signal".into())
                .spawn(move || {
                    while pause::wait_snapshot_signal().is_ok() {
                        if tx.send(VmEvent::SnapshotRequested).is_err() {
                            return;
                        }
                    }
                })
                .map_err(VmmError::Signal)?;
        }
        drop(tx);
        let exit = loop {
            match rx.recv().map_err(|_| VmmError::NoExitReason)? {
                VmEvent::Exit(exit) => break exit,
                VmEvent::SnapshotRequested => {
                    if let Some(dir) = self.snapshot_to.clone() {
                        #[cfg(target_arch = "x86_64")]
                        break snapshot::take(&self, &dir, &threads, &rx)?;
                        #[cfg(target_arch = "aarch64")]
                        {
                            let _ = (dir, &threads);
                            return Err(VmmError::SnapshotUnsupported);
                        }
                    }
                }
                // vCPUs only pause when a snapshot asks them to.
                VmEvent::Paused(..) => {}
            }
        };
        // Keep the VM and its memory mapped while straggling vCPU threads still run.
        std::mem::forget(self);
        Ok(exit)
    }
}
