//! Builds a microVM from a [`VmConfig`] (or restores one from a snapshot, `restore.rs`)
//! and runs it to its end: guest memory, the KVM VM, the kernel and its boot information,
//! devices, and one thread per vCPU. With a snapshot directory set, SIGUSR1 pauses the
//! vCPUs and writes the VM there (`snapshot.rs`).

pub mod attach;
pub mod cmdline;
mod restore;
pub use restore::restored_devices;
mod snapshot;

use std::fs::File;
use std::io::Write;
use std::os::unix::thread::JoinHandleExt;
use std::path::{Path, PathBuf};
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
use crate::pause::{self, PauseControl};
use crate::snapshot::MachineConfig;
use crate::timing::BootTimes;
use crate::vcpu::{self, VcpuContext, VmEvent};
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
    /// VM state (interrupt controllers, PIT, clock)
    #[error("cannot save or restore the VM's interrupt controllers, PIT or clock: {0}")]
    VmState(#[from] arch::vm_state::VmStateError),
    /// the vCPUs did not pause within {0:?}
    #[error("the vCPUs did not pause within {0:?}")]
    PauseTimeout(std::time::Duration),
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
}

/// A VM ready to run.
pub struct Vmm {
    // Kept alive for the VM's lifetime: the VM fd owns the irqchip and irqfds.
    kvm: KvmVm,
    mem: GuestMemoryMmap<()>,
    vcpus: Vec<VcpuFd>,
    ctx: VcpuContext,
    transports: Vec<attach::SharedTransport>,
    machine: MachineConfig,
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
    pio: PioDevices,
    bus: MmioBus,
    times: Arc<BootTimes>,
) -> Result<VcpuContext, VmmError> {
    Ok(VcpuContext {
        pio: Arc::new(pio),
        mmio: Arc::new(bus),
        times,
        pause: Arc::new(PauseControl::default()),
        caps: Arc::new(kvm.save_caps().map_err(VmmError::SaveCaps)?),
    })
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
                        break snapshot::take(&self, &dir, &threads, &rx)?;
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
