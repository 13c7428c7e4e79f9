//! virtio-blk tests: requests placed in a fake guest's queue by virtio-queue's mock
//! driver, served from a real temporary file.

use std::io::Write;
use std::sync::Arc;

use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::devices::virtio::chain::ChainBuffers;
use crate::devices::virtio::test_utils::{chain_at, guest_memory, interrupt, CountingIrq, W};
use crate::devices::virtio::{feature, GuestMemory, VirtioDevice};

const SECTORS: u64 = 8;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn image() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..(SECTORS * 512) as usize).map(pattern).collect();
    f.write_all(&bytes).unwrap();
    f
}

struct Fixture {
    mem: &'static GuestMemory,
    mock: MockSplitQueue<'static, GuestMemory>,
    blk: Block,
    irq: Arc<CountingIrq>,
    next_desc: u16,
    _file: tempfile::NamedTempFile,
}

fn fixture(read_only: bool) -> Fixture {
    let file = image();
    // Leaked so the mock driver (which borrows guest memory) can live in the fixture.
    let mem: &'static GuestMemory = Box::leak(Box::new(guest_memory()));
    let mut blk = Block::new(file.path(), read_only, "flint-root").unwrap();
    let mock = MockSplitQueue::create(mem, GuestAddress(0), 16);
    let q: Queue = mock.create_queue().unwrap();
    let (int, irq) = interrupt();
    blk.activate(mem.clone(), vec![q], int).unwrap();
    Fixture {
        mem,
        mock,
        blk,
        irq,
        next_desc: 0,
        _file: file,
    }
}

impl Fixture {
    /// Queues one request and processes it; returns (status byte, used len).
    fn submit(&mut self, bufs: &[(u64, u32, u16)]) -> (u8, u32) {
        if usize::from(self.next_desc) + bufs.len() > 16 {
            self.next_desc = 0;
        }
        let descs = chain_at(self.next_desc, bufs);
        self.mock.add_desc_chains(&descs, self.next_desc).unwrap();
        self.next_desc += descs.len() as u16;
        self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
        let before = self.mock.used().idx().load();
        assert_eq!(self.blk.process_queue(), 1);
        let used = self.mock.used();
        assert_eq!(used.idx().load(), before + 1);
        let elem = used.ring().ref_at(before as usize).unwrap().load();
        (self.mem.read_obj(GuestAddress(STATUS)).unwrap(), elem.len())
    }

    fn header(&self, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    }
}

#[test]
fn config_space_reports_capacity_and_seg_max() {
    let f = fixture(true);
    let mut cap = [0u8; 8];
    f.blk.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), SECTORS);
    let mut seg = [0u8; 4];
    f.blk.read_config(12, &mut seg);
    assert_eq!(u32::from_le_bytes(seg), SEG_MAX);
}

#[test]
fn features_include_ro_only_when_read_only() {
    let ro = fixture(true).blk.avail_features();
    let rw = fixture(false).blk.avail_features();
    let ro_bit = feature(bindings::VIRTIO_BLK_F_RO);
    assert_ne!(ro & ro_bit, 0);
    assert_eq!(rw & ro_bit, 0);
    for bit in [
        bindings::VIRTIO_BLK_F_FLUSH,
        bindings::VIRTIO_BLK_F_SEG_MAX,
        32,
    ] {
        assert_ne!(rw & feature(bit), 0);
    }
}

#[test]
fn read_two_sectors_across_segments() {
    let mut f = fixture(true);
    f.header(bindings::VIRTIO_BLK_T_IN, 2);
    let (st, len) = f.submit(&[
        (HDR, 16, 0),
        (DATA, 512, W),
        (DATA + 0x1000, 512, W),
        (STATUS, 1, W),
    ]);
    assert_eq!(st, VIRTIO_BLK_S_OK);
    assert_eq!(len, 1025);
    let mut a = vec![0u8; 512];
    f.mem.read_slice(&mut a, GuestAddress(DATA)).unwrap();
    assert!(a.iter().enumerate().all(|(i, &b)| b == pattern(1024 + i)));
    f.mem
        .read_slice(&mut a, GuestAddress(DATA + 0x1000))
        .unwrap();
    assert!(a.iter().enumerate().all(|(i, &b)| b == pattern(1536 + i)));
    assert_eq!(f.irq.count(), 1);
}

#[test]
fn write_then_read_back_and_flush() {
    let mut f = fixture(false);
    f.mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
    f.header(bindings::VIRTIO_BLK_T_OUT, 7);
    let (st, len) = f.submit(&[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]);
    assert_eq!((st, len), (VIRTIO_BLK_S_OK, 1));
    f.header(bindings::VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (STATUS, 1, W)]),
        (VIRTIO_BLK_S_OK, 1)
    );
    let mut on_disk = vec![0u8; 512];
    f.blk.disk().read_at(&mut on_disk, 7 * 512).unwrap();
    assert_eq!(on_disk, vec![0x5a; 512]);
    f.header(bindings::VIRTIO_BLK_T_IN, 7);
    let (st, _) = f.submit(&[(HDR, 16, 0), (DATA + 0x1000, 512, W), (STATUS, 1, W)]);
    assert_eq!(st, VIRTIO_BLK_S_OK);
    let mut back = vec![0u8; 512];
    f.mem
        .read_slice(&mut back, GuestAddress(DATA + 0x1000))
        .unwrap();
    assert_eq!(back, vec![0x5a; 512]);
}

#[test]
fn write_to_read_only_disk_is_ioerr_and_changes_nothing() {
    let mut f = fixture(true);
    f.mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
    f.header(bindings::VIRTIO_BLK_T_OUT, 0);
    let (st, len) = f.submit(&[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]);
    assert_eq!((st, len), (VIRTIO_BLK_S_IOERR, 1));
    let mut on_disk = vec![0u8; 512];
    f.blk.disk().read_at(&mut on_disk, 0).unwrap();
    assert_eq!(on_disk[1], pattern(1));
}

#[test]
fn out_of_range_reads_are_ioerr() {
    let mut f = fixture(true);
    for (sector, len) in [(SECTORS, 512), (SECTORS - 1, 1024), (u64::MAX, 512)] {
        f.header(bindings::VIRTIO_BLK_T_IN, sector);
        let (st, used) = f.submit(&[(HDR, 16, 0), (DATA, len, W), (STATUS, 1, W)]);
        assert_eq!(
            (st, used),
            (VIRTIO_BLK_S_IOERR, 1),
            "sector {sector} len {len}"
        );
    }
    // The last sector itself is fine.
    f.header(bindings::VIRTIO_BLK_T_IN, SECTORS - 1);
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]).0,
        VIRTIO_BLK_S_OK
    );
}

#[test]
fn partial_sector_transfer_is_ioerr() {
    let mut f = fixture(true);
    f.header(bindings::VIRTIO_BLK_T_IN, 0);
    let (st, _) = f.submit(&[(HDR, 16, 0), (DATA, 100, W), (STATUS, 1, W)]);
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
}

#[test]
fn get_id_returns_the_id() {
    let mut f = fixture(true);
    f.header(bindings::VIRTIO_BLK_T_GET_ID, 0);
    let (st, len) = f.submit(&[(HDR, 16, 0), (DATA, 20, W), (STATUS, 1, W)]);
    assert_eq!((st, len), (VIRTIO_BLK_S_OK, 21));
    let mut id = [0u8; 20];
    f.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..10], b"flint-root");
    assert_eq!(id[10..], [0; 10]);
}

#[test]
fn unknown_type_is_unsupp() {
    let mut f = fixture(true);
    f.header(bindings::VIRTIO_BLK_T_DISCARD, 0);
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (STATUS, 1, W)]),
        (VIRTIO_BLK_S_UNSUPP, 1)
    );
}

#[test]
fn malformed_chains_are_returned_unused() {
    let mut f = fixture(true);
    f.header(bindings::VIRTIO_BLK_T_IN, 0);
    // Header too short.
    assert_eq!(f.submit(&[(HDR, 8, 0), (STATUS, 1, W)]), (0xff, 0));
    // No writable status byte.
    assert_eq!(f.submit(&[(HDR, 16, 0), (DATA, 512, 0)]), (0xff, 0));
    // Readable after writable.
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, 0)]),
        (0xff, 0)
    );
    // Buffer outside guest memory.
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (0xdead_0000_0000, 512, W), (STATUS, 1, W)]),
        (0xff, 0)
    );
    // The device still works afterwards.
    assert_eq!(
        f.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]).0,
        VIRTIO_BLK_S_OK
    );
}

#[test]
fn request_parse_is_pure() {
    let mem = guest_memory();
    let mock = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let mut h = [0u8; 16];
    h[0] = bindings::VIRTIO_BLK_T_OUT as u8;
    h[8] = 3;
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    // Header and data in one readable buffer.
    mock.add_desc_chains(&chain_at(0, &[(HDR, 16 + 1024, 0), (STATUS, 1, W)]), 0)
        .unwrap();
    let mut q: Queue = mock.create_queue().unwrap();
    use virtio_queue::QueueT;
    let buf = ChainBuffers::parse(q.pop_descriptor_chain(&mem).unwrap(), &mem).unwrap();
    let req = Request::parse(&buf, &mem).unwrap();
    assert_eq!(req.kind, RequestType::Out);
    assert_eq!(req.sector, 3);
    assert_eq!(req.data_len(), 1024);
    assert_eq!(req.data[0].addr, GuestAddress(HDR + 16));
    assert_eq!(req.status, GuestAddress(STATUS));
}

#[test]
fn open_errors_are_typed() {
    assert!(matches!(
        Block::new(std::path::Path::new("/nonexistent/disk.img"), true, "x"),
        Err(BlockError::Open { .. })
    ));
    let f = image();
    assert!(matches!(
        Block::new(f.path(), true, "an-id-that-is-way-too-long"),
        Err(BlockError::IdTooLong(_))
    ));
}

#[test]
fn through_the_mmio_transport() {
    use crate::devices::virtio::mmio::MmioTransport;
    use crate::devices::virtio::status as s;
    use crate::devices::MmioDevice;
    use virtio_bindings::virtio_mmio as reg;

    let file = image();
    let mem = guest_memory();
    let irq = Arc::new(CountingIrq::default());
    let blk = Block::new(file.path(), true, "root").unwrap();
    let mut t = MmioTransport::new(Box::new(blk), mem.clone(), irq.clone());
    let mut w = |off: u32, v: u32| t.mmio_write(u64::from(off), &v.to_le_bytes());
    w(reg::VIRTIO_MMIO_STATUS, s::ACKNOWLEDGE);
    w(reg::VIRTIO_MMIO_STATUS, s::ACKNOWLEDGE | s::DRIVER);
    w(reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    w(reg::VIRTIO_MMIO_DRIVER_FEATURES, 1);
    w(
        reg::VIRTIO_MMIO_STATUS,
        s::ACKNOWLEDGE | s::DRIVER | s::FEATURES_OK,
    );
    let mock = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    w(reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    w(reg::VIRTIO_MMIO_QUEUE_NUM, 16);
    w(
        reg::VIRTIO_MMIO_QUEUE_DESC_LOW,
        mock.desc_table_addr().0 as u32,
    );
    w(reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, mock.avail_addr().0 as u32);
    w(reg::VIRTIO_MMIO_QUEUE_USED_LOW, mock.used_addr().0 as u32);
    w(reg::VIRTIO_MMIO_QUEUE_READY, 1);
    w(
        reg::VIRTIO_MMIO_STATUS,
        s::ACKNOWLEDGE | s::DRIVER | s::FEATURES_OK | s::DRIVER_OK,
    );
    let mut h = [0u8; 16];
    h[0] = bindings::VIRTIO_BLK_T_IN as u8;
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    mock.add_desc_chains(
        &chain_at(0, &[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]),
        0,
    )
    .unwrap();
    w(reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_eq!(mock.used().idx().load(), 1);
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(DATA + 7)).unwrap(),
        pattern(7)
    );
    assert_eq!(irq.count(), 1);
    let mut d = [0u8; 4];
    t.mmio_read(reg::VIRTIO_MMIO_INTERRUPT_STATUS.into(), &mut d);
    assert_eq!(u32::from_le_bytes(d), 1);
}
