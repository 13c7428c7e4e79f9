//! The KVM virtual machine: VM file descriptor, guest memory slots, and interrupt lines
//! backed by irqfds. On x86_64 the VM gets its in-kernel interrupt controllers and PIT
//! when it is created; on aarch64 the GICv3 comes later, once the vCPUs exist
//! ([`crate::arch::aarch64::gic`]), and irqfd GSI `n` raises the GIC's SPI `n`.

use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
#[cfg(target_arch = "x86_64")]
use kvm_bindings::{kvm_pit_config, CpuId, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{GuestMemory, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

#[cfg(target_arch = "x86_64")]
use crate::arch::current::layout::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
use crate::arch::current::vcpu_state::{SaveCaps, VcpuStateError};
use crate::devices::IrqLine;

/// Errors while creating or configuring the KVM VM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// cannot open /dev/kvm: {0}
    #[error("cannot open /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    /// KVM_{0} failed: {1}
    #[error("KVM_{0} failed: {1}")]
    Ioctl(&'static str, kvm_ioctls::Error),
    /// cannot create an eventfd: {0}
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

/// A created KVM VM with its interrupt controllers.
pub struct KvmVm {
    kvm: Kvm,
    vm: VmFd,
}

impl KvmVm {
    /// Opens /dev/kvm and creates a VM; on x86_64 with TSS, identity map, irqchip and PIT.
    pub fn new() -> Result<Self, KvmError> {
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        // On aarch64 kvm-ioctls asks for the host's largest IPA size.
        let vm = kvm
            .create_vm()
            .map_err(|e| KvmError::Ioctl("CREATE_VM", e))?;
        #[cfg(target_arch = "x86_64")]
        Self::create_x86_devices(&vm)?;
        Ok(KvmVm { kvm, vm })
    }

    /// The x86_64 VM's TSS and identity map pages, in-kernel irqchip and PIT.
    #[cfg(target_arch = "x86_64")]
    fn create_x86_devices(vm: &VmFd) -> Result<(), KvmError> {
        vm.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(|e| KvmError::Ioctl("SET_TSS_ADDR", e))?;
        vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
            .map_err(|e| KvmError::Ioctl("SET_IDENTITY_MAP_ADDR", e))?;
        vm.create_irq_chip()
            .map_err(|e| KvmError::Ioctl("CREATE_IRQCHIP", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(|e| KvmError::Ioctl("CREATE_PIT2", e))?;
        Ok(())
    }

    /// Registers every region of `mem` as a KVM memory slot.
    pub fn register_memory(&self, mem: &GuestMemoryMmap<()>) -> Result<(), KvmError> {
        for (slot, region) in mem.iter().enumerate() {
            let region_desc = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the host mapping [userspace_addr, +memory_size) belongs to `mem`, which
            // the VMM keeps alive (it is cloned into every user) for as long as the VM exists.
            unsafe { self.vm.set_user_memory_region(region_desc) }
                .map_err(|e| KvmError::Ioctl("SET_USER_MEMORY_REGION", e))?;
        }
        Ok(())
    }

    /// The CPUID leaves KVM supports on this host.
    #[cfg(target_arch = "x86_64")]
    pub fn supported_cpuid(&self) -> Result<CpuId, KvmError> {
        self.kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| KvmError::Ioctl("GET_SUPPORTED_CPUID", e))
    }

    /// The VM file descriptor.
    pub fn fd(&self) -> &VmFd {
        &self.vm
    }

    /// What a snapshot's vCPU state can include on this host.
    pub fn save_caps(&self) -> Result<SaveCaps, VcpuStateError> {
        SaveCaps::probe(&self.kvm)
    }

    /// Creates vCPU `id`.
    pub fn create_vcpu(&self, id: u64) -> Result<VcpuFd, KvmError> {
        self.vm
            .create_vcpu(id)
            .map_err(|e| KvmError::Ioctl("CREATE_VCPU", e))
    }

    /// Creates an interrupt line that injects `gsi` when triggered.
    pub fn irq_line(&self, gsi: u32) -> Result<Arc<EventFdIrq>, KvmError> {
        let evt = EventFd::new(EFD_NONBLOCK).map_err(KvmError::EventFd)?;
        self.vm
            .register_irqfd(&evt, gsi)
            .map_err(|e| KvmError::Ioctl("IRQFD", e))?;
        Ok(Arc::new(EventFdIrq { evt, gsi }))
    }
}

/// An edge-triggered interrupt line: an eventfd registered with KVM_IRQFD.
pub struct EventFdIrq {
    evt: EventFd,
    gsi: u32,
}

impl EventFdIrq {
    /// The GSI this line raises.
    pub fn gsi(&self) -> u32 {
        self.gsi
    }
}

impl IrqLine for EventFdIrq {
    fn trigger(&self) -> std::io::Result<()> {
        self.evt.write(1)
    }
}
