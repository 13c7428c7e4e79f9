//! Architecture-specific machine setup. Only x86_64 exists today; an `aarch64` module
//! with the same surface (layout, vCPU setup, boot information) can sit beside it.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64 as current;
