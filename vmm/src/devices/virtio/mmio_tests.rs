//! Tests of the virtio-mmio transport against a fake device that records what the
//! transport did to it.

use std::sync::{Arc, Mutex};

use super::*;
use crate::devices::virtio::test_utils::{guest_memory, CountingIrq};
use crate::devices::virtio::{ActivateError, INTERRUPT_CONFIG, INTERRUPT_USED_RING};
use virtio_queue::mock::MockSplitQueue;

#[derive(Default)]
struct Record {
    acked: Option<u64>,
    activated_queues: Option<usize>,
    notified: Vec<u32>,
    resets: usize,
    config_writes: Vec<(u64, Vec<u8>)>,
    interrupt: Option<Interrupt>,
    activated_positions: Vec<QueuePosition>,
}

/// Where the fake device says its queues stand when quiesced.
const SAVED_POSITIONS: [QueuePosition; 2] = [
    QueuePosition {
        next_avail: 7,
        next_used: 5,
    },
    QueuePosition {
        next_avail: 65535,
        next_used: 65535,
    },
];

struct FakeDevice {
    rec: Arc<Mutex<Record>>,
    fail_activate: bool,
}

const FAKE_FEATURE: u64 = 1 << 3;

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        42
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn avail_features(&self) -> u64 {
        FAKE_FEATURE
    }
    fn set_acked_features(&mut self, acked: u64) {
        self.rec.lock().unwrap().acked = Some(acked);
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::super::read_config_bytes(&[0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x1, 0x2], offset, data)
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.rec
            .lock()
            .unwrap()
            .config_writes
            .push((offset, data.to_vec()));
    }
    fn activate(
        &mut self,
        _m: GuestMemory,
        q: Vec<Queue>,
        i: Interrupt,
    ) -> Result<(), ActivateError> {
        if self.fail_activate {
            return Err(ActivateError::AlreadyActive);
        }
        let mut r = self.rec.lock().unwrap();
        r.activated_queues = Some(q.len());
        r.activated_positions = q.iter().map(QueuePosition::of).collect();
        r.interrupt = Some(i);
        Ok(())
    }
    fn queue_notify(&mut self, index: u32) {
        self.rec.lock().unwrap().notified.push(index);
    }
    fn reset(&mut self) {
        self.rec.lock().unwrap().resets += 1;
    }
    fn acked_features(&self) -> u64 {
        self.rec.lock().unwrap().acked.unwrap_or(0)
    }
    fn quiesce(&mut self) -> Vec<QueuePosition> {
        SAVED_POSITIONS.to_vec()
    }
}

struct Harness {
    t: MmioTransport,
    rec: Arc<Mutex<Record>>,
    irq: Arc<CountingIrq>,
    mem: GuestMemory,
}

fn harness(fail_activate: bool) -> Harness {
    let rec = Arc::new(Mutex::new(Record::default()));
    let irq = Arc::new(CountingIrq::default());
    let mem = guest_memory();
    let dev = FakeDevice {
        rec: rec.clone(),
        fail_activate,
    };
    let t = MmioTransport::new(Box::new(dev), mem.clone(), irq.clone());
    Harness { t, rec, irq, mem }
}

impl Harness {
    fn r(&mut self, off: u32) -> u32 {
        let mut d = [0u8; 4];
        self.t.mmio_read(u64::from(off), &mut d);
        u32::from_le_bytes(d)
    }
    fn w(&mut self, off: u32, v: u32) {
        self.t.mmio_write(u64::from(off), &v.to_le_bytes());
    }
    fn negotiate(&mut self, features: u64) -> bool {
        self.w(reg::VIRTIO_MMIO_STATUS, status::ACKNOWLEDGE);
        self.w(
            reg::VIRTIO_MMIO_STATUS,
            status::ACKNOWLEDGE | status::DRIVER,
        );
        self.w(reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        self.w(reg::VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
        self.w(reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        self.w(reg::VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        self.w(reg::VIRTIO_MMIO_STATUS, s);
        self.r(reg::VIRTIO_MMIO_STATUS) == s
    }
    fn setup_queue(&mut self, idx: u32, base: u64, size: u16) {
        let mem = self.mem.clone();
        let mock = MockSplitQueue::create(&mem, GuestAddress(base), size);
        self.w(reg::VIRTIO_MMIO_QUEUE_SEL, idx);
        self.w(reg::VIRTIO_MMIO_QUEUE_NUM, size.into());
        for (lo, a) in [
            (reg::VIRTIO_MMIO_QUEUE_DESC_LOW, mock.desc_table_addr().0),
            (reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, mock.avail_addr().0),
            (reg::VIRTIO_MMIO_QUEUE_USED_LOW, mock.used_addr().0),
        ] {
            self.w(lo, a as u32);
            self.w(lo + 4, (a >> 32) as u32);
        }
        self.w(reg::VIRTIO_MMIO_QUEUE_READY, 1);
    }
    fn driver_ok(&mut self) {
        self.w(
            reg::VIRTIO_MMIO_STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
    }
}

const V1: u64 = 1 << 32;

#[test]
fn identification_registers() {
    let mut h = harness(false);
    assert_eq!(h.r(reg::VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(h.r(reg::VIRTIO_MMIO_VERSION), 2);
    assert_eq!(h.r(reg::VIRTIO_MMIO_DEVICE_ID), 42);
    assert_eq!(h.r(reg::VIRTIO_MMIO_VENDOR_ID), VENDOR_ID);
    assert_eq!(h.r(reg::VIRTIO_MMIO_CONFIG_GENERATION), 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
}

#[test]
fn device_features_are_paged_and_include_version_1() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_DEVICE_FEATURES), FAKE_FEATURE as u32);
    h.w(reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_eq!(h.r(reg::VIRTIO_MMIO_DEVICE_FEATURES), 1);
    h.w(reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    assert_eq!(h.r(reg::VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

#[test]
fn queue_num_max_follows_queue_sel() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 8);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 2);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

#[test]
fn feature_negotiation_accepts_offered_subset() {
    let mut h = harness(false);
    assert!(h.negotiate(V1 | FAKE_FEATURE));
    assert_eq!(h.rec.lock().unwrap().acked, Some(V1 | FAKE_FEATURE));
}

#[test]
fn feature_negotiation_refuses_unoffered_features() {
    let mut h = harness(false);
    assert!(!h.negotiate(V1 | (1 << 5)));
    assert_eq!(h.rec.lock().unwrap().acked, None);
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn feature_negotiation_requires_version_1() {
    let mut h = harness(false);
    assert!(!h.negotiate(FAKE_FEATURE));
    assert_eq!(h.rec.lock().unwrap().acked, None);
}

#[test]
fn driver_features_ignored_before_driver_status() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_DRIVER_FEATURES, 0xffff_ffff);
    assert_eq!(h.t.driver_features, 0);
}

#[test]
fn status_bits_must_be_set_in_order() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_STATUS, status::DRIVER);
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), 0);
    h.w(reg::VIRTIO_MMIO_STATUS, status::ACKNOWLEDGE);
    h.w(
        reg::VIRTIO_MMIO_STATUS,
        status::ACKNOWLEDGE | status::DRIVER_OK,
    );
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), status::ACKNOWLEDGE);
    // Clearing a bit without a reset is ignored.
    h.w(reg::VIRTIO_MMIO_STATUS, status::DRIVER);
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), status::ACKNOWLEDGE);
    // FAILED may be set any time.
    h.w(
        reg::VIRTIO_MMIO_STATUS,
        status::ACKNOWLEDGE | status::FAILED,
    );
    assert_eq!(
        h.r(reg::VIRTIO_MMIO_STATUS),
        status::ACKNOWLEDGE | status::FAILED
    );
}

#[test]
fn driver_ok_activates_with_all_queues_then_notify_reaches_device() {
    let mut h = harness(false);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_READY), 1);
    h.driver_ok();
    assert!(h.t.is_activated());
    assert_eq!(h.rec.lock().unwrap().activated_queues, Some(2));
    h.w(reg::VIRTIO_MMIO_QUEUE_NOTIFY, 1);
    assert_eq!(h.rec.lock().unwrap().notified, vec![1]);
    // Queue registers are frozen once live.
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    h.w(reg::VIRTIO_MMIO_QUEUE_READY, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_READY), 1);
}

#[test]
fn queue_registers_ignored_before_features_ok() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    h.w(reg::VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_READY), 0);
}

#[test]
fn notify_before_driver_ok_is_ignored() {
    let mut h = harness(false);
    h.w(reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert!(h.rec.lock().unwrap().notified.is_empty());
}

#[test]
fn driver_ok_with_unready_queue_sets_needs_reset() {
    let mut h = harness(false);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.driver_ok();
    assert!(!h.t.is_activated());
    assert_ne!(h.r(reg::VIRTIO_MMIO_STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_INTERRUPT_STATUS), INTERRUPT_CONFIG);
    assert_eq!(h.irq.count(), 1);
}

#[test]
fn driver_ok_with_bad_queue_size_sets_needs_reset() {
    let mut h = harness(false);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    h.w(reg::VIRTIO_MMIO_QUEUE_NUM, 7); // not a power of two
    h.driver_ok();
    assert!(!h.t.is_activated());
    assert_ne!(h.r(reg::VIRTIO_MMIO_STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn failed_activation_sets_needs_reset() {
    let mut h = harness(true);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.driver_ok();
    assert!(!h.t.is_activated());
    assert_ne!(h.r(reg::VIRTIO_MMIO_STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn interrupt_status_and_ack() {
    let mut h = harness(false);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.driver_ok();
    let i = h.rec.lock().unwrap().interrupt.clone().unwrap();
    i.signal_used_queue().unwrap();
    assert_eq!(h.irq.count(), 1);
    assert_eq!(h.r(reg::VIRTIO_MMIO_INTERRUPT_STATUS), INTERRUPT_USED_RING);
    i.signal_config_change().unwrap();
    assert_eq!(
        h.r(reg::VIRTIO_MMIO_INTERRUPT_STATUS),
        INTERRUPT_USED_RING | INTERRUPT_CONFIG
    );
    h.w(reg::VIRTIO_MMIO_INTERRUPT_ACK, INTERRUPT_USED_RING);
    assert_eq!(h.r(reg::VIRTIO_MMIO_INTERRUPT_STATUS), INTERRUPT_CONFIG);
}

#[test]
fn writing_zero_resets_device_and_registers() {
    let mut h = harness(false);
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.driver_ok();
    h.w(reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(h.rec.lock().unwrap().resets, 1);
    assert!(!h.t.is_activated());
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_QUEUE_READY), 0);
    // And the device can be brought up again.
    assert!(h.negotiate(V1));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.driver_ok();
    assert!(h.t.is_activated());
}

#[test]
fn config_space_reads_and_gated_writes() {
    let mut h = harness(false);
    let mut b = [0u8; 2];
    h.t.mmio_read(0x102, &mut b);
    assert_eq!(b, [0xc, 0xd]);
    let mut q = [0u8; 8];
    h.t.mmio_read(0x100, &mut q);
    assert_eq!(q, [0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x1, 0x2]);
    h.t.mmio_write(0x100, &[1]);
    assert!(h.rec.lock().unwrap().config_writes.is_empty());
    h.w(reg::VIRTIO_MMIO_STATUS, status::ACKNOWLEDGE);
    h.w(
        reg::VIRTIO_MMIO_STATUS,
        status::ACKNOWLEDGE | status::DRIVER,
    );
    h.t.mmio_write(0x104, &[1, 2]);
    assert_eq!(h.rec.lock().unwrap().config_writes, vec![(4, vec![1, 2])]);
}

#[test]
fn wrong_width_and_misaligned_accesses_are_ignored() {
    let mut h = harness(false);
    let mut b = [0xffu8; 2];
    h.t.mmio_read(0, &mut b);
    assert_eq!(b, [0, 0]);
    let mut d = [0xffu8; 4];
    h.t.mmio_read(1, &mut d);
    assert_eq!(d, [0; 4]);
    let mut e = [0xffu8; 8];
    h.t.mmio_read(0, &mut e);
    assert_eq!(e, [0; 8]);
    h.t.mmio_write(reg::VIRTIO_MMIO_STATUS.into(), &[1]);
    h.t.mmio_write(u64::from(reg::VIRTIO_MMIO_STATUS) + 1, &[1, 0, 0, 0]);
    assert_eq!(h.r(reg::VIRTIO_MMIO_STATUS), 0);
    // Unknown registers read as zero; writes to read-only ones change nothing.
    assert_eq!(h.r(0x0f0), 0);
    h.w(reg::VIRTIO_MMIO_MAGIC_VALUE, 0);
    assert_eq!(h.r(reg::VIRTIO_MMIO_MAGIC_VALUE), MMIO_MAGIC_VALUE);
    h.t.mmio_read(u64::MAX, &mut d);
    h.t.mmio_write(u64::MAX, &d);
}

#[test]
fn snapshot_and_restore_carry_registers_and_queue_positions() {
    let mut h = harness(false);
    assert!(h.negotiate(V1 | FAKE_FEATURE));
    h.setup_queue(0, 0x10_0000, 16);
    h.setup_queue(1, 0x20_0000, 8);
    h.driver_ok();
    h.w(reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    let state = h.t.snapshot();
    assert!(state.activated);
    assert_eq!(state.positions, SAVED_POSITIONS);
    assert_eq!(state.acked_features, V1 | FAKE_FEATURE);
    let json = serde_json::to_string(&state).expect("serialise");
    let state: TransportState = serde_json::from_str(&json).expect("parse");

    let mut r = harness(false);
    r.t.restore(&state).expect("restore");
    assert!(r.t.is_activated());
    assert_eq!(r.r(reg::VIRTIO_MMIO_STATUS), h.r(reg::VIRTIO_MMIO_STATUS));
    assert_eq!(r.r(reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 8, "QueueSel kept");
    assert_eq!(r.r(reg::VIRTIO_MMIO_QUEUE_READY), 1);
    let rec = r.rec.lock().unwrap();
    assert_eq!(rec.acked, Some(V1 | FAKE_FEATURE));
    assert_eq!(rec.activated_queues, Some(2));
    assert_eq!(rec.activated_positions, SAVED_POSITIONS);
}

#[test]
fn restore_refuses_another_device_or_queue_count() {
    let mut h = harness(false);
    let mut state = h.t.snapshot();
    assert!(!state.activated && state.positions.is_empty());
    state.device_type = 2;
    assert!(matches!(
        harness(false).t.restore(&state),
        Err(TransportRestoreError::DeviceType {
            found: 2,
            expected: 42
        })
    ));
    state.device_type = 42;
    state.queues.pop();
    assert!(matches!(
        harness(false).t.restore(&state),
        Err(TransportRestoreError::QueueCount { .. })
    ));
}
