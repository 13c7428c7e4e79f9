//! Architecture-specific machine setup, one module per host architecture with the same
//! surface (`layout`, vCPU setup, boot information); `current` is the one this build
//! runs. Everything outside `arch` is shared: the virtio devices, the MMIO bus, guest
//! memory, the configuration and the jail.
//!
//! The x86_64 module has PVH/bzImage boot information, CPUID, MSRs, the LAPIC and the
//! state snapshots save; the aarch64 module has the GICv3, the device tree, PSCI vCPU init,
//! the arm64 `Image` loader and the memory map. Both feed the shared run loop in `vmm/`;
//! vmm/README.md ("aarch64") says what of aarch64 runs where.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64 as current;

// Compiled everywhere: its device tree, Image loader and memory map are plain data, so
// their unit tests run on x86_64 hosts too; its KVM parts are gated inside.
pub mod aarch64;

#[cfg(target_arch = "aarch64")]
pub use self::aarch64 as current;
