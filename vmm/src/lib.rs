//! Flint's KVM virtual machine monitor: one process per microVM.
//!
//! [`config`] turns flags or a JSON file into a [`config::VmConfig`]; [`vmm::Vmm`] builds
//! the machine (guest memory, KVM VM, kernel, devices, vCPUs) and runs it until the guest
//! powers off, resets or fails, reported as an [`exit::VmExit`]. [`snapshot`] writes a
//! running VM to a directory and [`vmm::Vmm::restore`] brings it back in a new process.

pub mod arch;
pub mod bus;
pub mod config;
pub mod devices;
pub mod exit;
pub mod hostfix;
pub mod jail;
pub mod kvm;
pub mod legacy;
pub mod loader;
pub mod memory;
pub mod pause;
pub mod snapshot;
pub mod timing;
pub mod vcpu;
pub mod vmm;
