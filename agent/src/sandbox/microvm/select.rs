//! `--sandbox auto`: the microVM where hardware KVM can run the guest, the namespace
//! sandbox otherwise, with the reason in words.

use std::path::Path;

/// What auto selection decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub microvm: bool,
    pub reason: String,
}

/// Chooses from facts about the host. `pvm` is true when /dev/kvm is the nested
/// `kvm_pvm` hypervisor (see vmm/src/hostfix.rs), which cannot run Linux user space
/// in a guest.
pub fn choose(kvm_usable: bool, pvm: bool, kernel: &Path, vmm: &Path) -> Choice {
    let no = |reason: String| Choice {
        microvm: false,
        reason,
    };
    if !kvm_usable {
        return no("/dev/kvm is missing or cannot be opened: no hardware virtualisation".into());
    }
    if pvm {
        return no("/dev/kvm is the nested kvm_pvm hypervisor, on which Linux user space cannot run in a microVM".into());
    }
    if !kernel.is_file() {
        return no(format!(
            "no guest kernel at {} (build it with images/kernel/build.sh)",
            kernel.display()
        ));
    }
    if !vmm.is_file() {
        return no(format!("no flint-vmm at {}", vmm.display()));
    }
    Choice {
        microvm: true,
        reason: "hardware KVM is available and the guest kernel is built".into(),
    }
}

/// Reads the facts from this host and chooses.
pub fn choose_here(kernel: &Path, vmm: &Path) -> Choice {
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let pvm = Path::new(flint_vmm::hostfix::PVM_MODULE_PATH).exists();
    choose(kvm_usable, pvm, kernel, vmm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_with_reasons() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let p = f.path();
        assert!(choose(true, false, p, p).microvm);
        let c = choose(true, true, p, p);
        assert!(!c.microvm && c.reason.contains("kvm_pvm"), "{c:?}");
        let c = choose(false, false, p, p);
        assert!(!c.microvm && c.reason.contains("/dev/kvm"));
        let c = choose(true, false, Path::new("/nonexistent/vmlinux"), p);
        assert!(!c.microvm && c.reason.contains("images/kernel/build.sh"));
    }
}
