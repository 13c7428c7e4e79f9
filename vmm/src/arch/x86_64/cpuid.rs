//! CPUID normalisation: the host's KVM-supported CPUID, adjusted per vCPU (hypervisor bit,
//! APIC ids, leaf 0xb / 0x1f topology) and with the performance-monitoring leaf hidden;
//! on hosts whose hypercalls never return (`kvm_pvm`), without the KVM paravirtual
//! features that work only through a hypercall ([`hide_hypercall_features`]).

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMS: u32 = 0x4;
const LEAF_PERFMON: u32 = 0xa;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;

const ECX_HYPERVISOR_BIT: u32 = 1 << 31;
const EDX_HTT_BIT: u32 = 1 << 28;
const TOPOLOGY_LEVEL_SMT: u32 = 1;
const TOPOLOGY_LEVEL_CORE: u32 = 2;

/// Where hypervisor leaves may start (KVM's may be moved up in steps of 0x100).
const HYPERVISOR_LEAVES: std::ops::Range<u32> = 0x4000_0000..0x4001_0000;
/// KVM's signature in ebx, ecx, edx of its base leaf: "KVMKVMKVM\0\0\0".
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];

/// KVM paravirtual features (eax of the KVM base leaf + 1) that the guest uses by
/// issuing a hypercall (`vmcall`), bit numbers from the KVM CPUID documentation:
/// PV_UNHALT (7, spinlock kick: KVM_HC_KICK_CPU), PV_SEND_IPI (11, KVM_HC_SEND_IPI),
/// PV_SCHED_YIELD (13, KVM_HC_SCHED_YIELD), HC_MAP_GPA_RANGE (16).
pub const HYPERCALL_FEATURES: u32 = (1 << 7) | (1 << 11) | (1 << 13) | (1 << 16);

/// Clears [`HYPERCALL_FEATURES`] from the KVM features leaf. For hosts on which a guest's
/// `vmcall` never returns (the nested `kvm_pvm` hypervisor, see `crate::hostfix`): a guest
/// told of these features would hang at its first IPI, spinlock kick or directed yield
/// with more than one vCPU. Returns whether a KVM features leaf was found.
pub fn hide_hypercall_features(cpuid: &mut CpuId) -> bool {
    let base = cpuid
        .as_slice()
        .iter()
        .find(|e| {
            HYPERVISOR_LEAVES.contains(&e.function)
                && e.function % 0x100 == 0
                && [e.ebx, e.ecx, e.edx] == KVM_SIGNATURE
        })
        .map(|e| e.function);
    let Some(base) = base else {
        return false;
    };
    let mut found = false;
    for entry in cpuid.as_mut_slice() {
        if entry.function == base + 1 {
            entry.eax &= !HYPERCALL_FEATURES;
            found = true;
        }
    }
    found
}

/// Number of APIC-id bits needed to number `count` CPUs.
fn id_bits(count: u8) -> u32 {
    if count <= 1 {
        0
    } else {
        u32::from(count - 1).ilog2() + 1
    }
}

/// Adjusts one entry for vCPU `index` of `count` (one core per vCPU, one thread per core).
fn normalize_entry(entry: &mut kvm_cpuid_entry2, index: u8, count: u8) {
    let apic_id = u32::from(index);
    match entry.function {
        LEAF_FEATURES => {
            entry.ecx |= ECX_HYPERVISOR_BIT;
            // ebx: [31:24] initial APIC id, [23:16] logical processors per package.
            entry.ebx = (entry.ebx & 0x0000_ffff) | (apic_id << 24) | (u32::from(count) << 16);
            if count > 1 {
                entry.edx |= EDX_HTT_BIT;
            } else {
                entry.edx &= !EDX_HTT_BIT;
            }
        }
        LEAF_CACHE_PARAMS => {
            // eax[31:26]: addressable core ids per package minus one; [25:14]: threads
            // sharing this cache minus one (caches are per core here except L3).
            let cores = (u32::from(count.max(1)) - 1) & 0x3f;
            let level = (entry.eax >> 5) & 0x7;
            let sharing = if level >= 3 { cores } else { 0 };
            entry.eax = (entry.eax & 0x3fff) | (cores << 26) | (sharing << 14);
        }
        LEAF_PERFMON => {
            entry.eax = 0;
            entry.ebx = 0;
            entry.ecx = 0;
            entry.edx = 0;
        }
        LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
            entry.edx = apic_id;
            match entry.index {
                0 => {
                    entry.eax = 0;
                    entry.ebx = 1;
                    entry.ecx = (TOPOLOGY_LEVEL_SMT << 8) | entry.index;
                }
                1 => {
                    entry.eax = id_bits(count);
                    entry.ebx = u32::from(count);
                    entry.ecx = (TOPOLOGY_LEVEL_CORE << 8) | entry.index;
                }
                _ => {
                    entry.eax = 0;
                    entry.ebx = 0;
                    entry.ecx = entry.index;
                }
            }
        }
        _ => {}
    }
}

/// Returns `supported` normalised for vCPU `index` of `count`.
pub fn for_vcpu(supported: &CpuId, index: u8, count: u8) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        normalize_entry(entry, index, count);
    }
    cpuid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx: 0xdead_0800,
            ecx: 0,
            edx: 0,
            eax: 0x1234,
            ..Default::default()
        }
    }

    #[test]
    fn features_leaf_gets_hypervisor_bit_and_apic_id() {
        let mut e = entry(LEAF_FEATURES, 0);
        normalize_entry(&mut e, 2, 4);
        assert_ne!(e.ecx & ECX_HYPERVISOR_BIT, 0);
        assert_eq!(e.ebx >> 24, 2);
        assert_eq!((e.ebx >> 16) & 0xff, 4);
        assert_eq!(e.ebx & 0xffff, 0x0800);
        assert_ne!(e.edx & EDX_HTT_BIT, 0);
    }

    #[test]
    fn topology_leaf_describes_one_thread_per_core() {
        let mut smt = entry(LEAF_TOPOLOGY, 0);
        let mut core = entry(LEAF_TOPOLOGY, 1);
        let mut end = entry(LEAF_TOPOLOGY, 2);
        for e in [&mut smt, &mut core, &mut end] {
            normalize_entry(e, 3, 5);
        }
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8, smt.edx), (0, 1, 1, 3));
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (3, 5, 2, 3));
        assert_eq!((end.ebx, end.ecx >> 8), (0, 0));
        // Leaf 0x1f (preferred by Linux when present) must tell the same story.
        let mut v2 = entry(LEAF_TOPOLOGY_V2, 1);
        normalize_entry(&mut v2, 3, 5);
        assert_eq!((v2.eax, v2.ebx, v2.ecx >> 8, v2.edx), (3, 5, 2, 3));
    }

    #[test]
    fn perfmon_is_hidden() {
        let mut e = entry(LEAF_PERFMON, 0);
        normalize_entry(&mut e, 0, 1);
        assert_eq!((e.eax, e.ebx, e.ecx, e.edx), (0, 0, 0, 0));
    }

    #[test]
    fn hypercall_features_are_cleared_from_the_kvm_leaf_only() {
        // What kvm_pvm reported here: CLOCKSOURCE(2), ASYNC_PF, STEAL_TIME, PV_EOI,
        // PV_UNHALT, PV_TLB_FLUSH, PV_SEND_IPI, POLL_CONTROL, PV_SCHED_YIELD, stable bit.
        let host = 0x0100_7efb;
        let signature = |function| kvm_cpuid_entry2 {
            function,
            eax: function + 1,
            ebx: KVM_SIGNATURE[0],
            ecx: KVM_SIGNATURE[1],
            edx: KVM_SIGNATURE[2],
            ..Default::default()
        };
        let features = |function| kvm_cpuid_entry2 {
            function,
            eax: host,
            ..Default::default()
        };
        let mut cpuid = CpuId::from_entries(&[
            features(LEAF_FEATURES),
            signature(0x4000_0000),
            features(0x4000_0001),
        ])
        .expect("cpuid");
        assert!(hide_hypercall_features(&mut cpuid));
        let e = cpuid.as_slice();
        assert_eq!(e[2].eax, 0x0100_567b);
        assert_eq!(e[2].eax & HYPERCALL_FEATURES, 0);
        assert_eq!(e[0].eax, host, "leaf 1 untouched");
        // KVM's leaves moved up (Hyper-V's first): found by the signature.
        let mut moved = CpuId::from_entries(&[
            signature(0x4000_0100),
            features(0x4000_0101),
            features(0x4000_0001),
        ])
        .expect("cpuid");
        assert!(hide_hypercall_features(&mut moved));
        assert_eq!(moved.as_slice()[1].eax, 0x0100_567b);
        assert_eq!(moved.as_slice()[2].eax, host);
        // No KVM signature: nothing to do.
        let mut none = CpuId::from_entries(&[features(0x4000_0001)]).expect("cpuid");
        assert!(!hide_hypercall_features(&mut none));
        assert_eq!(none.as_slice()[0].eax, host);
    }

    #[test]
    fn id_bits_rounds_up() {
        assert_eq!(
            [id_bits(1), id_bits(2), id_bits(3), id_bits(4), id_bits(5)],
            [0, 1, 2, 2, 3]
        );
    }
}
