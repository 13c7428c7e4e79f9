//! The virtio-mmio transport, version 2 (virtio 1.2, 4.2.2): the register file a guest
//! driver programs to discover a device, negotiate features, set up queues and notify
//! them. Owns the device and hands it its queues when the driver sets DRIVER_OK.
//! Accesses of the wrong width or at unknown offsets are ignored (and logged,
//! rate-limited); nothing here panics on guest input.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use serde::{Deserialize, Serialize};

use super::{
    feature, status, GuestMemory, Interrupt, QueuePosition, VirtioDevice, VIRTIO_F_VERSION_1,
};
use crate::devices::{IrqLine, MmioDevice};
use crate::warn_ratelimited;

/// "virt" in little endian.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// The modern (non-legacy) virtio-mmio layout.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID reported to the guest ("FLNT").
pub const VENDOR_ID: u32 = 0x544e_4c46;
/// Size of the MMIO window of one device.
pub const MMIO_WINDOW_SIZE: u64 = 0x200;
/// Offset of the device configuration space.
pub const CONFIG_SPACE_OFFSET: u64 = reg::VIRTIO_MMIO_CONFIG as u64;

/// What the driver programmed for one queue; turned into a `Queue` on activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> Self {
        QueueConfig {
            max_size,
            size: max_size,
            ..Default::default()
        }
    }
}

/// A transport and its device in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportState {
    /// Virtio device ID, checked on restore.
    pub device_type: u32,
    /// Per queue: what the driver programmed.
    pub queues: Vec<QueueConfig>,
    /// Per queue of an activated device: where it stands.
    pub positions: Vec<QueuePosition>,
    /// QueueSel.
    pub queue_select: u32,
    /// DeviceFeaturesSel.
    pub device_features_select: u32,
    /// DriverFeaturesSel.
    pub driver_features_select: u32,
    /// DriverFeatures as written.
    pub driver_features: u64,
    /// Features the device accepted.
    pub acked_features: u64,
    /// Status register.
    pub status: u32,
    /// Whether DRIVER_OK activated the device.
    pub activated: bool,
    /// ConfigGeneration.
    pub config_generation: u32,
    /// InterruptStatus.
    pub interrupt_status: u32,
}

/// A snapshot's transport state does not fit the device.
#[derive(Debug, thiserror::Error)]
pub enum TransportRestoreError {
    /// virtio slot holds device type {found} in the snapshot but {expected} here
    #[error("virtio slot holds device type {found} in the snapshot but {expected} here")]
    DeviceType {
        /// Type in the snapshot.
        found: u32,
        /// Type of the device being restored.
        expected: u32,
    },
    /// the snapshot has {found} queues for a device with {expected}
    #[error("the snapshot has {found} queues for a device with {expected}")]
    QueueCount {
        /// Queues in the snapshot.
        found: usize,
        /// Queues of the device.
        expected: usize,
    },
    /// queue {0} of the snapshot is not usable in this guest memory
    #[error("queue {0} of the snapshot is not usable in this guest memory")]
    BadQueue(usize),
    /// the restored device could not start: {0}
    #[error("the restored device could not start: {0}")]
    Activate(#[from] super::ActivateError),
}

/// A virtio device behind the virtio-mmio register layout.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemory,
    interrupt: Interrupt,
    interrupt_status: Arc<AtomicU32>,
    queues: Vec<QueueConfig>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    driver_features: u64,
    status: u32,
    activated: bool,
    config_generation: u32,
}

impl MmioTransport {
    /// Puts `device` behind a virtio-mmio register window raising `irq`.
    pub fn new(device: Box<dyn VirtioDevice>, mem: GuestMemory, irq: Arc<dyn IrqLine>) -> Self {
        let interrupt_status = Arc::new(AtomicU32::new(0));
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&m| QueueConfig::new(m))
            .collect();
        MmioTransport {
            interrupt: Interrupt::new(interrupt_status.clone(), irq),
            interrupt_status,
            device,
            mem,
            queues,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            status: 0,
            activated: false,
            config_generation: 0,
        }
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the device was activated (DRIVER_OK accepted).
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    /// The device behind the transport.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// Quiesces the device and returns the transport's and device's state (vCPUs paused).
    pub fn snapshot(&mut self) -> TransportState {
        let positions = if self.activated {
            self.device.quiesce()
        } else {
            Vec::new()
        };
        TransportState {
            device_type: self.device.device_type(),
            queues: self.queues.clone(),
            positions,
            queue_select: self.queue_select,
            device_features_select: self.device_features_select,
            driver_features_select: self.driver_features_select,
            driver_features: self.driver_features,
            acked_features: self.device.acked_features(),
            status: self.status,
            activated: self.activated,
            config_generation: self.config_generation,
            interrupt_status: self.interrupt_status.load(Ordering::SeqCst),
        }
    }

    /// Loads `state` into this freshly built transport and, if the device was active,
    /// activates it with its queues at the saved positions.
    pub fn restore(&mut self, state: &TransportState) -> Result<(), TransportRestoreError> {
        if state.device_type != self.device.device_type() {
            return Err(TransportRestoreError::DeviceType {
                found: state.device_type,
                expected: self.device.device_type(),
            });
        }
        if state.queues.len() != self.queues.len() {
            return Err(TransportRestoreError::QueueCount {
                found: state.queues.len(),
                expected: self.queues.len(),
            });
        }
        self.queues = state.queues.clone();
        self.queue_select = state.queue_select;
        self.device_features_select = state.device_features_select;
        self.driver_features_select = state.driver_features_select;
        self.driver_features = state.driver_features;
        self.status = state.status;
        self.config_generation = state.config_generation;
        self.interrupt_status
            .store(state.interrupt_status, Ordering::SeqCst);
        self.device.set_acked_features(state.acked_features);
        if !state.activated {
            return Ok(());
        }
        if state.positions.len() != self.queues.len() {
            return Err(TransportRestoreError::QueueCount {
                found: state.positions.len(),
                expected: self.queues.len(),
            });
        }
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, (cfg, pos)) in self.queues.iter().zip(&state.positions).enumerate() {
            let mut q = build_queue(cfg, &self.mem).ok_or(TransportRestoreError::BadQueue(i))?;
            q.set_next_avail(pos.next_avail);
            q.set_next_used(pos.next_used);
            queues.push(q);
        }
        self.device
            .activate_restored(self.mem.clone(), queues, self.interrupt.clone())?;
        self.activated = true;
        Ok(())
    }

    fn selected_queue(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn device_features(&self) -> u64 {
        self.device.avail_features() | feature(VIRTIO_F_VERSION_1)
    }

    fn queue_setup_allowed(&self) -> bool {
        self.status & (status::FEATURES_OK | status::DRIVER_OK | status::FAILED)
            == status::FEATURES_OK
    }

    fn reset(&mut self) {
        if self.activated {
            self.device.reset();
            self.activated = false;
        }
        for q in &mut self.queues {
            *q = QueueConfig::new(q.max_size);
        }
        self.queue_select = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status.store(0, Ordering::SeqCst);
    }

    fn read_register(&mut self, offset: u32) -> u32 {
        match offset {
            reg::VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC_VALUE,
            reg::VIRTIO_MMIO_VERSION => MMIO_VERSION,
            reg::VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_select {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => {
                self.selected_queue().map_or(0, |q| q.max_size.into())
            }
            reg::VIRTIO_MMIO_QUEUE_READY => self.selected_queue().map_or(0, |q| q.ready.into()),
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status.load(Ordering::SeqCst),
            reg::VIRTIO_MMIO_STATUS => self.status,
            reg::VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            // No shared memory regions: their length reads as all ones (4.2.2).
            reg::VIRTIO_MMIO_SHM_LEN_LOW | reg::VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            _ => {
                warn_ratelimited!(
                    offset,
                    "virtio-mmio: read of unknown or write-only register"
                );
                0
            }
        }
    }

    fn write_register(&mut self, offset: u32, v: u32) {
        match offset {
            reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_select = v,
            reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_select = v,
            reg::VIRTIO_MMIO_DRIVER_FEATURES => {
                if self.status & (status::DRIVER | status::FEATURES_OK) != status::DRIVER {
                    warn_ratelimited!("virtio-mmio: DriverFeatures written outside negotiation");
                    return;
                }
                match self.driver_features_select {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => warn_ratelimited!("virtio-mmio: DriverFeatures written with selector > 1"),
                }
            }
            reg::VIRTIO_MMIO_QUEUE_SEL => self.queue_select = v,
            reg::VIRTIO_MMIO_QUEUE_NUM
            | reg::VIRTIO_MMIO_QUEUE_READY
            | reg::VIRTIO_MMIO_QUEUE_DESC_LOW
            | reg::VIRTIO_MMIO_QUEUE_DESC_HIGH
            | reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | reg::VIRTIO_MMIO_QUEUE_USED_LOW
            | reg::VIRTIO_MMIO_QUEUE_USED_HIGH => self.write_queue_register(offset, v),
            reg::VIRTIO_MMIO_QUEUE_NOTIFY => {
                if self.activated {
                    self.device.queue_notify(v);
                } else {
                    warn_ratelimited!("virtio-mmio: QueueNotify before DRIVER_OK");
                }
            }
            reg::VIRTIO_MMIO_INTERRUPT_ACK => {
                self.interrupt_status.fetch_and(!v, Ordering::SeqCst);
            }
            reg::VIRTIO_MMIO_STATUS => self.write_status(v),
            _ => warn_ratelimited!(
                offset,
                "virtio-mmio: write of unknown or read-only register"
            ),
        }
    }

    fn write_queue_register(&mut self, offset: u32, v: u32) {
        if !self.queue_setup_allowed() {
            warn_ratelimited!(
                offset,
                "virtio-mmio: queue register written outside queue setup"
            );
            return;
        }
        let Some(q) = self.selected_queue() else {
            warn_ratelimited!(
                "virtio-mmio: queue register written for a queue that does not exist"
            );
            return;
        };
        let lo = |old: u64| (old & !0xffff_ffff) | u64::from(v);
        let hi = |old: u64| (old & 0xffff_ffff) | (u64::from(v) << 32);
        match offset {
            reg::VIRTIO_MMIO_QUEUE_NUM => q.size = u16::try_from(v).unwrap_or(0),
            reg::VIRTIO_MMIO_QUEUE_READY => q.ready = v == 1,
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => q.desc = lo(q.desc),
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => q.desc = hi(q.desc),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.avail = lo(q.avail),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => q.avail = hi(q.avail),
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => q.used = lo(q.used),
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => q.used = hi(q.used),
            _ => {}
        }
    }

    /// Status register write with the transitions of 2.1/3.1.1: 0 resets; otherwise
    /// exactly one new bit in order ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; FAILED any
    /// time; bits are never cleared except by a reset.
    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        if v & old != old {
            warn_ratelimited!(
                old,
                new = v,
                "virtio-mmio: status write clears bits; ignored"
            );
            return;
        }
        let added = v & !old;
        if added == status::FAILED {
            self.status = v;
            return;
        }
        let prerequisite = match added {
            status::ACKNOWLEDGE => 0,
            status::DRIVER => status::ACKNOWLEDGE,
            status::FEATURES_OK => status::ACKNOWLEDGE | status::DRIVER,
            status::DRIVER_OK => status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
            _ => {
                warn_ratelimited!(
                    old,
                    new = v,
                    "virtio-mmio: invalid status transition; ignored"
                );
                return;
            }
        };
        if old & !status::FAILED != prerequisite {
            warn_ratelimited!(
                old,
                new = v,
                "virtio-mmio: status bit set out of order; ignored"
            );
            return;
        }
        match added {
            status::FEATURES_OK => {
                let offered = self.device_features();
                let unoffered = self.driver_features & !offered;
                if unoffered != 0 || self.driver_features & feature(VIRTIO_F_VERSION_1) == 0 {
                    // Leaving FEATURES_OK clear tells the driver the subset was refused.
                    warn_ratelimited!(
                        acked = self.driver_features,
                        offered,
                        "virtio-mmio: driver features refused (unoffered bits or no VERSION_1)"
                    );
                    return;
                }
                self.device.set_acked_features(self.driver_features);
                self.status = v;
            }
            status::DRIVER_OK => {
                self.status = v;
                self.activate();
            }
            _ => self.status = v,
        }
    }

    fn activate(&mut self) {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, cfg) in self.queues.iter().enumerate() {
            match build_queue(cfg, &self.mem) {
                Some(q) => queues.push(q),
                None => {
                    warn_ratelimited!(
                        queue = i,
                        "virtio-mmio: queue not ready or invalid at DRIVER_OK"
                    );
                    return self.needs_reset();
                }
            }
        }
        match self
            .device
            .activate(self.mem.clone(), queues, self.interrupt.clone())
        {
            Ok(()) => self.activated = true,
            Err(e) => {
                warn_ratelimited!(error = %e, "virtio-mmio: device activation failed");
                self.needs_reset();
            }
        }
    }

    fn needs_reset(&mut self) {
        self.status |= status::DEVICE_NEEDS_RESET;
        if let Err(e) = self.interrupt.signal_config_change() {
            warn_ratelimited!(error = %e, "virtio-mmio: cannot raise the interrupt");
        }
    }
}

/// A `Queue` from the driver's settings, or `None` if they are unusable.
fn build_queue(cfg: &QueueConfig, mem: &GuestMemory) -> Option<Queue> {
    if !cfg.ready {
        return None;
    }
    let mut q = Queue::new(cfg.max_size).ok()?;
    q.try_set_size(cfg.size).ok()?;
    q.try_set_desc_table_address(GuestAddress(cfg.desc)).ok()?;
    q.try_set_avail_ring_address(GuestAddress(cfg.avail)).ok()?;
    q.try_set_used_ring_address(GuestAddress(cfg.used)).ok()?;
    q.set_ready(true);
    q.is_valid(mem).then_some(q)
}

impl MmioDevice for MmioTransport {
    fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            self.device.read_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        if data.len() != 4 || offset & 3 != 0 {
            warn_ratelimited!(
                offset,
                len = data.len(),
                "virtio-mmio: bad register read width"
            );
            data.fill(0);
            return;
        }
        // offset < 0x100 here.
        let v = self.read_register(offset as u32);
        data.copy_from_slice(&v.to_le_bytes());
    }

    fn mmio_write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            if self.status & (status::DRIVER | status::FAILED) == status::DRIVER {
                self.device.write_config(offset - CONFIG_SPACE_OFFSET, data);
            } else {
                warn_ratelimited!("virtio-mmio: config write before DRIVER or after FAILED");
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            warn_ratelimited!(
                offset,
                len = data.len(),
                "virtio-mmio: bad register write width"
            );
            return;
        };
        if offset & 3 != 0 {
            warn_ratelimited!(offset, "virtio-mmio: misaligned register write");
            return;
        }
        self.write_register(offset as u32, u32::from_le_bytes(bytes));
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;
