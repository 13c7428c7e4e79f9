//! KVM's in-kernel GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3): created after the vCPUs, placed at
//! the distributor and redistributor addresses of [`super::layout`], sized, initialised.
//! Devices raise its SPIs through irqfds (GSI `n` = SPI `n`).

use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
    KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
    KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, VmFd};

use super::layout::{GIC_DIST_ADDR, GIC_NR_IRQS, GIC_REDIST_ADDR, MAX_VCPUS};

/// Errors while setting up the GIC.
#[derive(Debug, thiserror::Error)]
pub enum GicError {
    /// The host has no GICv3 emulation (a GICv2-only host).
    #[error("KVM_CREATE_DEVICE(ARM_VGIC_V3) failed: {0} (does this host have a GICv3?)")]
    Create(kvm_ioctls::Error),
    /// An attribute was refused.
    #[error("setting the GICv3 {what}: {err}")]
    Attr {
        /// Which attribute.
        what: &'static str,
        /// KVM's error.
        err: kvm_ioctls::Error,
    },
    /// More vCPUs than redistributors fit in the memory map.
    #[error("{0} vCPUs: the redistributor window holds {MAX_VCPUS}")]
    TooManyVcpus(u64),
}

/// The GIC device; the VM keeps it open.
pub struct Gic {
    _fd: DeviceFd,
}

fn set(
    fd: &DeviceFd,
    what: &'static str,
    group: u32,
    attr: u64,
    addr: u64,
) -> Result<(), GicError> {
    let a = kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr,
    };
    fd.set_device_attr(&a)
        .map_err(|err| GicError::Attr { what, err })
}

/// Creates and initialises the GICv3 for `vcpus` vCPUs, which must all exist already.
pub fn create(vm: &VmFd, vcpus: u64) -> Result<Gic, GicError> {
    if vcpus > MAX_VCPUS {
        return Err(GicError::TooManyVcpus(vcpus));
    }
    let mut dev = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let fd = vm.create_device(&mut dev).map_err(GicError::Create)?;
    let dist: u64 = GIC_DIST_ADDR;
    let redist: u64 = GIC_REDIST_ADDR;
    let nr_irqs: u32 = GIC_NR_IRQS;
    // The `addr` fields point at these locals, which live until the calls return (KVM
    // copies the value in).
    set(
        &fd,
        "distributor address",
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        u64::from(KVM_VGIC_V3_ADDR_TYPE_DIST),
        &dist as *const u64 as u64,
    )?;
    set(
        &fd,
        "redistributor address",
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        u64::from(KVM_VGIC_V3_ADDR_TYPE_REDIST),
        &redist as *const u64 as u64,
    )?;
    set(
        &fd,
        "number of interrupts",
        KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        0,
        &nr_irqs as *const u32 as u64,
    )?;
    set(
        &fd,
        "initialisation",
        KVM_DEV_ARM_VGIC_GRP_CTRL,
        u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
        0,
    )?;
    Ok(Gic { _fd: fd })
}
