//! The host CPU model a snapshot was taken on: vendor, family/model/stepping and brand
//! string from CPUID. A snapshot carries the guest's CPUID and in-kernel CPU state of that
//! model, so restoring it on another model is refused.

use serde::{Deserialize, Serialize};

/// Identity of a host CPU model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuModel {
    /// CPUID leaf 0 vendor string, e.g. "GenuineIntel".
    pub vendor: String,
    /// CPUID leaf 1 EAX (stepping, model, family and their extended fields).
    pub signature: u32,
    /// CPUID leaves 0x8000_0002..4, trimmed ("" if the CPU has none).
    pub brand: String,
}

impl std::fmt::Display for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} signature {:#x} \"{}\"",
            self.vendor, self.signature, self.brand
        )
    }
}

fn regs_bytes(regs: &[u32]) -> Vec<u8> {
    regs.iter().flat_map(|r| r.to_le_bytes()).collect()
}

/// The CPU this process runs on.
#[cfg(target_arch = "x86_64")]
pub fn host() -> CpuModel {
    use std::arch::x86_64::__cpuid;
    // CPUID is safe on every x86_64 CPU; extended leaves are only read up to the maximum
    // the CPU reports.
    let leaf0 = __cpuid(0);
    let vendor = regs_bytes(&[leaf0.ebx, leaf0.edx, leaf0.ecx]);
    let signature = __cpuid(1).eax;
    let max_ext = __cpuid(0x8000_0000).eax;
    let mut brand = Vec::new();
    if max_ext >= 0x8000_0004 {
        for leaf in 0x8000_0002u32..=0x8000_0004 {
            let r = __cpuid(leaf);
            brand.extend(regs_bytes(&[r.eax, r.ebx, r.ecx, r.edx]));
        }
    }
    CpuModel {
        vendor: String::from_utf8_lossy(&vendor).into_owned(),
        signature,
        brand: String::from_utf8_lossy(&brand)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_model_is_stable_and_named() {
        let a = host();
        assert_eq!(a, host());
        assert_eq!(a.vendor.len(), 12, "{a}");
        assert!(!a.brand.contains('\0'));
    }
}
