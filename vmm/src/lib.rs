//! Flint's KVM virtual machine monitor.

pub mod devices;
