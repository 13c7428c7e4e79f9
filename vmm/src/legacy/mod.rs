//! Legacy devices: the 16550 UART and the boot-timer MMIO page on both architectures; on
//! x86_64 also the PC devices on the port I/O bus (`pio`: COM1, i8042, the Flint exit
//! port). On aarch64 the UART sits on the MMIO bus (`serial_mmio`).

pub mod boot_timer;
#[cfg(target_arch = "x86_64")]
pub mod i8042;
#[cfg(target_arch = "x86_64")]
mod pio;
pub mod serial;
mod serial_mmio;

#[cfg(target_arch = "x86_64")]
pub use pio::{LegacyState, PioDevices};
