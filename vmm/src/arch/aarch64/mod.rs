//! aarch64 machine setup: the memory map, the flattened device tree, the arm64 `Image`
//! loader, KVM's GICv3 and the vCPUs (PSCI 0.2).
//!
//! `layout`, `fdt` and `image` are plain data and compile (and are unit-tested) on every
//! host; `gic`, `vcpu` and `vcpu_state` make arm64-only KVM ioctls and exist only in
//! aarch64 builds, where the shared `vmm/` code wires them into a VM.

pub mod fdt;
pub mod image;
pub mod layout;

#[cfg(target_arch = "aarch64")]
pub mod gic;
#[cfg(all(test, target_arch = "aarch64"))]
mod kvm_tests;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
#[cfg(target_arch = "aarch64")]
pub mod vcpu_state;

#[cfg(target_arch = "aarch64")]
pub use vcpu::VcpuSetupError;

/// Where the boot vCPU enters the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootEntry {
    /// Guest physical address of the kernel's first instruction (the boot vCPU's PC).
    pub addr: u64,
    /// Guest physical address of the device tree (the boot vCPU's x0).
    pub fdt: u64,
}

/// Where a stopped vCPU was, for error messages: `pc 0x...`.
#[cfg(target_arch = "aarch64")]
pub fn guest_ip(vcpu: &kvm_ioctls::VcpuFd) -> String {
    format!("pc {:#x}", vcpu::pc(vcpu).unwrap_or(0))
}
