//! The per-vCPU state a snapshot keeps, and saving/restoring it through KVM in the order
//! KVM needs: CPUID, MP state, registers, special registers, FPU/XSAVE, XCRs, debug
//! registers, local APIC, MSRs, pending events.

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd};
use serde::{Deserialize, Serialize};

/// MSRs read per KVM_GET_MSRS call (below KVM's 256-entry limit).
const MSR_CHUNK: usize = 128;

/// Errors while saving or restoring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuStateError {
    /// KVM_{0} failed: {1}
    #[error("KVM_{0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    /// cannot build a KVM list: {0:?}
    #[error("cannot build a KVM list: {0:?}")]
    Fam(vmm_sys_util::fam::Error),
    /// the snapshot has neither XSAVE nor FPU state for a vCPU
    #[error("the snapshot has neither XSAVE nor FPU state for a vCPU")]
    NoFpuState,
}

/// What this host's KVM can save, found once per VM.
#[derive(Clone, Debug, Default)]
pub struct SaveCaps {
    /// MSRs KVM reports (KVM_GET_MSR_INDEX_LIST).
    pub msr_indices: Vec<u32>,
    /// KVM_GET/SET_XSAVE usable (KVM_CAP_XSAVE, state fits in 4 KiB).
    pub xsave: bool,
    /// KVM_GET/SET_XCRS usable.
    pub xcrs: bool,
}

impl SaveCaps {
    /// Probes `kvm`.
    pub fn probe(kvm: &Kvm) -> Result<Self, VcpuStateError> {
        let msr_indices = kvm
            .get_msr_index_list()
            .map_err(|e| VcpuStateError::Kvm("GET_MSR_INDEX_LIST", e))?
            .as_slice()
            .to_vec();
        let xsave2 = kvm.check_extension_int(Cap::Xsave2);
        let fits = xsave2 <= 0 || xsave2 as usize <= std::mem::size_of::<kvm_xsave>();
        Ok(SaveCaps {
            msr_indices,
            xsave: kvm.check_extension(Cap::Xsave) && fits,
            xcrs: kvm.check_extension(Cap::Xcrs),
        })
    }
}

/// The x87/SSE state when XSAVE is not available (KVM_GET_FPU).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FpuState {
    /// x87 registers.
    pub fpr: [[u8; 16]; 8],
    /// Control word.
    pub fcw: u16,
    /// Status word.
    pub fsw: u16,
    /// Abridged tag word.
    pub ftwx: u8,
    /// Last opcode.
    pub last_opcode: u16,
    /// Last instruction pointer.
    pub last_ip: u64,
    /// Last data pointer.
    pub last_dp: u64,
    /// XMM registers.
    pub xmm: [[u8; 16]; 16],
    /// SSE control/status.
    pub mxcsr: u32,
}

impl From<&kvm_fpu> for FpuState {
    fn from(f: &kvm_fpu) -> Self {
        FpuState {
            fpr: f.fpr,
            fcw: f.fcw,
            fsw: f.fsw,
            ftwx: f.ftwx,
            last_opcode: f.last_opcode,
            last_ip: f.last_ip,
            last_dp: f.last_dp,
            xmm: f.xmm,
            mxcsr: f.mxcsr,
        }
    }
}

impl From<&FpuState> for kvm_fpu {
    fn from(f: &FpuState) -> Self {
        kvm_fpu {
            fpr: f.fpr,
            fcw: f.fcw,
            fsw: f.fsw,
            ftwx: f.ftwx,
            last_opcode: f.last_opcode,
            last_ip: f.last_ip,
            last_dp: f.last_dp,
            xmm: f.xmm,
            mxcsr: f.mxcsr,
            ..Default::default()
        }
    }
}

/// One vCPU's architectural and in-kernel state.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    /// The CPUID the vCPU was given (KVM_GET_CPUID2).
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// Running, halted, waiting for SIPI, ...
    pub mp_state: kvm_mp_state,
    /// General registers.
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers.
    pub sregs: kvm_sregs,
    /// XSAVE area (FPU, SSE, AVX, ...), when KVM supports it.
    pub xsave: Option<kvm_xsave>,
    /// x87/SSE state, when XSAVE is not used.
    pub fpu: Option<FpuState>,
    /// Extended control registers (XCR0), when KVM supports them.
    pub xcrs: Option<kvm_xcrs>,
    /// Debug registers.
    pub debug_regs: kvm_debugregs,
    /// Local APIC register page.
    pub lapic: kvm_lapic_state,
    /// Every MSR KVM lists and could read, TSC included.
    pub msrs: Vec<kvm_msr_entry>,
    /// Pending exceptions, interrupts, NMIs, SMI.
    pub vcpu_events: kvm_vcpu_events,
}

fn kvm<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, VcpuStateError> {
    r.map_err(|e| VcpuStateError::Kvm(what, e))
}

/// Reads every MSR of `indices` that KVM can read; indices KVM refuses are left out.
fn read_msrs(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, VcpuStateError> {
    let mut out = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(MSR_CHUNK)];
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(VcpuStateError::Fam)?;
        let read = kvm("GET_MSRS", vcpu.get_msrs(&mut msrs))?;
        out.extend_from_slice(&msrs.as_slice()[..read]);
        // KVM stops at the first MSR it cannot read: skip that one.
        let consumed = if read < chunk.len() { read + 1 } else { read };
        rest = &rest[consumed..];
    }
    Ok(out)
}

/// Writes `entries`; MSRs KVM refuses are skipped and returned.
fn write_msrs(vcpu: &VcpuFd, entries: &[kvm_msr_entry]) -> Result<Vec<u32>, VcpuStateError> {
    let mut refused = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(MSR_CHUNK)];
        let msrs = Msrs::from_entries(chunk).map_err(VcpuStateError::Fam)?;
        let set = kvm("SET_MSRS", vcpu.set_msrs(&msrs))?;
        if set < chunk.len() {
            refused.push(chunk[set].index);
            rest = &rest[set + 1..];
        } else {
            rest = &rest[set..];
        }
    }
    Ok(refused)
}

/// Reads `vcpu`'s state. Call it on the vCPU's thread after a KVM_RUN with
/// `immediate_exit` set, so a pending port or MMIO access is complete.
pub fn save(vcpu: &VcpuFd, caps: &SaveCaps) -> Result<VcpuState, VcpuStateError> {
    let cpuid = kvm("GET_CPUID2", vcpu.get_cpuid2(KVM_MAX_CPUID_ENTRIES))?;
    let mp_state = kvm("GET_MP_STATE", vcpu.get_mp_state())?;
    let regs = kvm("GET_REGS", vcpu.get_regs())?;
    let sregs = kvm("GET_SREGS", vcpu.get_sregs())?;
    let (xsave, fpu) = if caps.xsave {
        (Some(kvm("GET_XSAVE", vcpu.get_xsave())?), None)
    } else {
        (None, Some(FpuState::from(&kvm("GET_FPU", vcpu.get_fpu())?)))
    };
    let xcrs = if caps.xcrs {
        Some(kvm("GET_XCRS", vcpu.get_xcrs())?)
    } else {
        None
    };
    Ok(VcpuState {
        cpuid: cpuid.as_slice().to_vec(),
        mp_state,
        regs,
        sregs,
        xsave,
        fpu,
        xcrs,
        debug_regs: kvm("GET_DEBUGREGS", vcpu.get_debug_regs())?,
        lapic: kvm("GET_LAPIC", vcpu.get_lapic())?,
        msrs: read_msrs(vcpu, &caps.msr_indices)?,
        vcpu_events: kvm("GET_VCPU_EVENTS", vcpu.get_vcpu_events())?,
    })
}

/// Loads `state` into a freshly created vCPU.
pub fn restore(vcpu: &VcpuFd, state: &VcpuState) -> Result<(), VcpuStateError> {
    let cpuid = CpuId::from_entries(&state.cpuid).map_err(VcpuStateError::Fam)?;
    kvm("SET_CPUID2", vcpu.set_cpuid2(&cpuid))?;
    kvm("SET_MP_STATE", vcpu.set_mp_state(state.mp_state))?;
    kvm("SET_REGS", vcpu.set_regs(&state.regs))?;
    kvm("SET_SREGS", vcpu.set_sregs(&state.sregs))?;
    match (&state.xsave, &state.fpu) {
        (Some(xsave), _) => {
            // SAFETY: the snapshot was only given an XSAVE area on a host (of this CPU
            // model, checked before restoring) whose XSAVE state fits in `kvm_xsave`, so
            // KVM reads no more than the struct holds.
            kvm("SET_XSAVE", unsafe { vcpu.set_xsave(xsave) })?
        }
        (None, Some(fpu)) => kvm("SET_FPU", vcpu.set_fpu(&kvm_fpu::from(fpu)))?,
        (None, None) => return Err(VcpuStateError::NoFpuState),
    }
    if let Some(xcrs) = &state.xcrs {
        kvm("SET_XCRS", vcpu.set_xcrs(xcrs))?;
    }
    kvm("SET_DEBUGREGS", vcpu.set_debug_regs(&state.debug_regs))?;
    kvm("SET_LAPIC", vcpu.set_lapic(&state.lapic))?;
    let refused = write_msrs(vcpu, &state.msrs)?;
    if !refused.is_empty() {
        tracing::warn!(
            ?refused,
            "KVM refused to restore some MSRs; they keep their reset values"
        );
    }
    kvm("SET_VCPU_EVENTS", vcpu.set_vcpu_events(&state.vcpu_events))?;
    Ok(())
}
