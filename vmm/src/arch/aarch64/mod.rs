//! aarch64 machine setup: the memory map, the flattened device tree, the arm64 `Image`
//! loader, KVM's GICv3 and the vCPUs (PSCI 0.2).
//!
//! `layout`, `fdt` and `image` are plain data and compile (and are unit-tested) on every
//! host; `gic` and `vcpu` make arm64-only KVM ioctls and exist only in aarch64 builds.

pub mod fdt;
pub mod image;
pub mod layout;

#[cfg(target_arch = "aarch64")]
pub mod gic;
#[cfg(all(test, target_arch = "aarch64"))]
mod kvm_tests;
#[cfg(target_arch = "aarch64")]
pub mod vcpu;
