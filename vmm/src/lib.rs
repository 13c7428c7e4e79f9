//! Flint's KVM virtual machine monitor: one process per microVM.
//!
//! [`config`] turns flags or a JSON file into a [`config::VmConfig`]; [`vmm::Vmm`] builds
//! the machine (guest memory, KVM VM, kernel, devices, vCPUs) and runs it until the guest
//! powers off, resets or fails, reported as an [`exit::VmExit`]. [`snapshot`] writes a
//! running VM to a directory and [`vmm::Vmm::restore`] brings it back in a new process.
//!
//! The run loop (`kvm`, `vcpu`, `vmm`, `legacy`'s serial port and boot timer) is shared by
//! x86_64 and aarch64 hosts; `loader` (PVH/bzImage), the port I/O devices and `snapshot`
//! are x86_64-only, and aarch64 boots through [`arch::aarch64`] (vmm/README.md, "aarch64").

pub mod arch;
pub mod bus;
pub mod config;
pub mod devices;
pub mod exit;
pub mod hostfix;
pub mod jail;
pub mod kvm;
pub mod legacy;
#[cfg(target_arch = "x86_64")]
pub mod loader;
pub mod memory;
pub mod pause;
#[cfg(target_arch = "x86_64")]
pub mod snapshot;
pub mod timing;
pub mod vcpu;
pub mod vmm;

/// The version of the snapshot format (vmm/README.md, "Snapshot format") this flint-vmm
/// writes and restores. Outside the x86_64-only `snapshot` module so that flintd keys
/// its snapshots by it on every architecture.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
