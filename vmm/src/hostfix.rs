//! Host workaround for the nested paging hypervisor `kvm_pvm`: its guests cannot use a set
//! of CPU features (XSAVE, SMAP, SMEP, PCID, AVX, ...) that KVM nevertheless reports, so an
//! unmodified Linux guest dies early with an emulation failure. When `kvm_pvm` is the
//! host's KVM, the kernel command line gets `noxsave clearcpuid=...` to turn them off.
//! A guest's `vmcall` never returns there either, so the vCPUs' CPUID also loses the KVM
//! features that work through a hypercall (`arch::x86_64::cpuid::hide_hypercall_features`).
//! Never applied on hardware KVM unless forced.

use std::path::Path;

/// What the guest kernel is told when the workaround applies.
pub const PVM_CMDLINE: &str =
    "noxsave clearcpuid=151,308,295,514,288,145,298,150,156,293,304,297,580,534,291,296";

/// Where the kvm_pvm module shows itself when loaded.
pub const PVM_MODULE_PATH: &str = "/sys/module/kvm_pvm";

/// Whether to apply the workaround.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkaroundMode {
    /// Apply it when /sys/module/kvm_pvm exists.
    #[default]
    Auto,
    /// Always apply it.
    On,
    /// Never apply it.
    Off,
}

/// True when the host's /dev/kvm is the `kvm_pvm` nested hypervisor.
pub fn pvm_detected_at(module_path: &Path) -> bool {
    module_path.exists()
}

/// Decides whether the workaround applies, given `mode` and what was detected.
pub fn workaround_applies(mode: WorkaroundMode, pvm_detected: bool) -> bool {
    match mode {
        WorkaroundMode::Auto => pvm_detected,
        WorkaroundMode::On => true,
        WorkaroundMode::Off => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_detection_and_flags_force_it() {
        assert!(workaround_applies(WorkaroundMode::Auto, true));
        assert!(!workaround_applies(WorkaroundMode::Auto, false));
        assert!(workaround_applies(WorkaroundMode::On, false));
        assert!(!workaround_applies(WorkaroundMode::Off, true));
    }

    #[test]
    fn detection_looks_for_the_module_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!pvm_detected_at(&dir.path().join("kvm_pvm")));
        std::fs::create_dir(dir.path().join("kvm_pvm")).expect("mkdir");
        assert!(pvm_detected_at(&dir.path().join("kvm_pvm")));
    }
}
