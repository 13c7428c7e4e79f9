//! vsock tests: a fake guest driver (virtio-queue's mock rings in fake guest memory)
//! talks to the real device and worker thread, and the host side uses real Unix sockets
//! in a temporary directory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::packet::{op, PacketHeader, HEADER_SIZE, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::*;
use crate::devices::virtio::test_utils::{chain_at, guest_memory, interrupt, CountingIrq, W};
use crate::devices::virtio::{GuestMemory, VirtioDevice};

const CID: u64 = 3;
const RX_BUF: u64 = 0x10_0000;
const RX_BUF_STRIDE: u64 = 0x2000;
const RX_DATA: u32 = 4096;
const TX_BUF: u64 = 0x40_0000;
const TX_BUF_STRIDE: u64 = 0x1_1000;
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);
/// Chains a 256-entry mock queue can take before its rings overlap (see the bulk test).
const MOCK_SAFE_CHAINS: u16 = 127;

struct Guest {
    mem: &'static GuestMemory,
    rxq: MockSplitQueue<'static, GuestMemory>,
    txq: MockSplitQueue<'static, GuestMemory>,
    _evq: MockSplitQueue<'static, GuestMemory>,
    dev: Vsock,
    irq: Arc<CountingIrq>,
    rx_posted: u16,
    rx_seen: u16,
    rx_addr: HashMap<u16, u64>,
    tx_sent: u16,
    dir: tempfile::TempDir,
}

fn hdr(op: u16, src_port: u32, dst_port: u32) -> PacketHeader {
    PacketHeader {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port,
        dst_port,
        type_: TYPE_STREAM,
        op,
        buf_alloc: 64 * 1024,
        ..Default::default()
    }
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let mem: &'static GuestMemory = Box::leak(Box::new(guest_memory()));
        let rxq = MockSplitQueue::create(mem, GuestAddress(0), 256);
        let txq = MockSplitQueue::create(mem, GuestAddress(0x1_0000), 256);
        let evq = MockSplitQueue::create(mem, GuestAddress(0x2_0000), 256);
        let mut dev = Vsock::new(CID, &dir.path().join("v.sock")).unwrap();
        let queues: Vec<Queue> = vec![
            rxq.create_queue().unwrap(),
            txq.create_queue().unwrap(),
            evq.create_queue().unwrap(),
        ];
        let (int, irq) = interrupt();
        dev.activate(mem.clone(), queues, int).unwrap();
        let mut g = Guest {
            mem,
            rxq,
            txq,
            _evq: evq,
            dev,
            irq,
            rx_posted: 0,
            rx_seen: 0,
            rx_addr: HashMap::new(),
            tx_sent: 0,
            dir,
        };
        g.post_rx(64);
        g
    }

    fn uds(&self) -> PathBuf {
        self.dir.path().join("v.sock")
    }

    fn post_rx(&mut self, n: u16) {
        for _ in 0..n {
            let i = self.rx_posted;
            let addr = RX_BUF + u64::from(i) * RX_BUF_STRIDE;
            self.rxq
                .add_desc_chains(&chain_at(i, &[(addr, HEADER_SIZE as u32 + RX_DATA, W)]), i)
                .unwrap();
            self.rx_addr.insert(i, addr);
            self.rx_posted += 1;
        }
        self.dev.queue_notify(RXQ as u32);
    }

    /// Sends one packet (header and payload in separate descriptors).
    fn send(&mut self, h: PacketHeader, data: &[u8]) {
        let mut h = h;
        h.len = data.len() as u32;
        self.send_raw(&h.to_bytes(), data);
    }

    fn send_raw(&mut self, header: &[u8], data: &[u8]) {
        let k = self.tx_sent;
        let addr = TX_BUF + u64::from(k / 2) * TX_BUF_STRIDE;
        self.mem.write_slice(header, GuestAddress(addr)).unwrap();
        self.mem.write_slice(data, GuestAddress(addr + 64)).unwrap();
        let mut bufs = vec![(addr, header.len() as u32, 0)];
        if !data.is_empty() {
            bufs.push((addr + 64, data.len() as u32, 0));
        }
        self.txq.add_desc_chains(&chain_at(k, &bufs), k).unwrap();
        self.tx_sent += 2;
        self.dev.queue_notify(TXQ as u32);
    }

    /// Next packet the device put in the rx queue, waiting up to `timeout`.
    fn recv_within(&mut self, timeout: Duration) -> Option<(PacketHeader, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        while self.rxq.used().idx().load() == self.rx_seen {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Pairs with the device's release store of used.idx (a driver's virt_rmb()).
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let elem = self
            .rxq
            .used()
            .ring()
            .ref_at(usize::from(self.rx_seen))
            .unwrap()
            .load();
        self.rx_seen += 1;
        let addr = self.rx_addr[&(elem.id() as u16)];
        let mut raw = [0u8; HEADER_SIZE];
        self.mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
        let h = PacketHeader::from_bytes(&raw);
        assert_eq!(
            elem.len(),
            HEADER_SIZE as u32 + h.len,
            "used length matches the packet"
        );
        let mut data = vec![0u8; h.len as usize];
        self.mem
            .read_slice(&mut data, GuestAddress(addr + HEADER_SIZE as u64))
            .unwrap();
        Some((h, data))
    }

    fn recv(&mut self) -> (PacketHeader, Vec<u8>) {
        self.recv_within(WAIT)
            .expect("no packet from the device within 5 s")
    }

    /// Guest-initiated connection to host port `port` from guest port `gport`.
    fn connect_guest(&mut self, listener: &UnixListener, gport: u32, port: u32) -> UnixStream {
        self.send(hdr(op::REQUEST, gport, port), &[]);
        let (h, _) = self.recv();
        assert_eq!((h.op, h.src_port, h.dst_port), (op::RESPONSE, port, gport));
        assert_eq!((h.src_cid, h.dst_cid), (HOST_CID, CID));
        assert_eq!(h.buf_alloc, CONN_BUF_ALLOC);
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    /// Host-initiated connection to guest port `port`; returns (stream, host port).
    fn connect_host(&mut self, port: u32) -> (UnixStream, u32) {
        let mut s = UnixStream::connect(self.uds()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        writeln!(s, "CONNECT {port}").unwrap();
        let (h, _) = self.recv();
        assert_eq!((h.op, h.dst_port), (op::REQUEST, port));
        assert!(h.src_port >= 1 << 30);
        let mut resp = hdr(op::RESPONSE, port, h.src_port);
        resp.buf_alloc = 64 * 1024;
        self.send(resp, &[]);
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert_eq!(line, format!("OK {}\n", h.src_port));
        (s, h.src_port)
    }

    fn listen(&self, port: u32) -> UnixListener {
        let mut p = self.uds().into_os_string();
        p.push(format!("_{port}"));
        UnixListener::bind(p).unwrap()
    }
}

#[test]
fn config_space_is_the_guest_cid() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Vsock::new(42, &dir.path().join("s")).unwrap();
    let mut b = [0u8; 8];
    dev.read_config(0, &mut b);
    assert_eq!(u64::from_le_bytes(b), 42);
    assert_eq!(dev.device_type(), 19);
    assert_eq!(dev.queue_max_sizes().len(), 3);
    assert!(matches!(
        Vsock::new(2, &dir.path().join("t")),
        Err(VsockError::InvalidCid(2))
    ));
    assert!(matches!(
        Vsock::new(3, &dir.path().join("no/such/dir/s")),
        Err(VsockError::Bind { .. })
    ));
}

#[test]
fn guest_initiated_connect_data_both_ways_and_shutdown() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut s = g.connect_guest(&l, 5000, 1024);

    g.send(hdr(op::RW, 5000, 1024), b"hello");
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    s.write_all(b"world").unwrap();
    let (h, data) = g.recv();
    assert_eq!((h.op, data.as_slice()), (op::RW, &b"world"[..]));
    assert_eq!(h.fwd_cnt, 5, "the device reports the 5 bytes it forwarded");
    assert!(g.irq.count() > 0);

    g.send(hdr(op::SHUTDOWN, 5000, 1024), &[]);
    let mut sd = hdr(op::SHUTDOWN, 5000, 1024);
    sd.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    g.send(sd, &[]);
    let (h, _) = g.recv();
    assert_eq!((h.op, h.dst_port), (op::RST, 5000));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "host sees EOF after the guest closed"
    );
}

#[test]
fn guest_connect_to_port_nobody_listens_on_gets_rst() {
    let mut g = Guest::new();
    g.send(hdr(op::REQUEST, 5001, 7777), &[]);
    let (h, _) = g.recv();
    assert_eq!((h.op, h.src_port, h.dst_port), (op::RST, 7777, 5001));
}

#[test]
fn host_initiated_connect_data_and_host_close() {
    let mut g = Guest::new();
    let (mut s, hport) = g.connect_host(52);

    s.write_all(b"ping").unwrap();
    let (h, data) = g.recv();
    assert_eq!(
        (h.op, h.src_port, h.dst_port, data.as_slice()),
        (op::RW, hport, 52, &b"ping"[..])
    );

    g.send(hdr(op::RW, 52, hport), b"pong");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");

    // Host closes its writing side: the guest is told no more data will come...
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (h, _) = g.recv();
    assert_eq!((h.op, h.flags), (op::SHUTDOWN, SHUTDOWN_SEND));
    // ...but can still answer.
    g.send(hdr(op::RW, 52, hport), b"bye");
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"bye");
    // Guest resets: the host stream is closed, no RST comes back.
    g.send(hdr(op::RST, 52, hport), &[]);
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
    assert!(g.recv_within(QUIET).is_none());
}

#[test]
fn host_connect_refused_by_guest_closes_host_stream() {
    let mut g = Guest::new();
    let mut s = UnixStream::connect(g.uds()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"CONNECT 99\n").unwrap();
    let (h, _) = g.recv();
    assert_eq!(h.op, op::REQUEST);
    g.send(hdr(op::RST, 99, h.src_port), &[]);
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "no OK line, just EOF");
}

#[test]
fn host_connect_times_out_when_guest_never_answers() {
    let mut g = Guest::new();
    let mut s = UnixStream::connect(g.uds()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"CONNECT 7\n").unwrap();
    let (h, _) = g.recv();
    assert_eq!(h.op, op::REQUEST);
    let (r, _) = g.recv();
    assert_eq!((r.op, r.src_port), (op::RST, h.src_port));
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn bad_handshake_is_closed() {
    let g = Guest::new();
    let mut s = UnixStream::connect(g.uds()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"HELLO there\n").unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn host_to_guest_respects_guest_credit() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut req = hdr(op::REQUEST, 6000, 1024);
    req.buf_alloc = 8;
    g.send(req, &[]);
    assert_eq!(g.recv().0.op, op::RESPONSE);
    let (mut s, _) = l.accept().unwrap();
    s.write_all(&[7u8; 20]).unwrap();
    let mut got = 0;
    while let Some((h, d)) = g.recv_within(QUIET) {
        assert_eq!(h.op, op::RW);
        got += d.len();
    }
    assert_eq!(got, 8, "exactly the guest's buf_alloc");
    // The guest consumed 8 bytes.
    let mut cu = hdr(op::CREDIT_UPDATE, 6000, 1024);
    cu.buf_alloc = 8;
    cu.fwd_cnt = 8;
    g.send(cu, &[]);
    let mut more = 0;
    while let Some((_, d)) = g.recv_within(QUIET) {
        more += d.len();
    }
    assert_eq!(more, 8);
}

#[test]
fn credit_request_gets_credit_update() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut s = g.connect_guest(&l, 5000, 1024);
    g.send(hdr(op::RW, 5000, 1024), &[1u8; 100]);
    let mut buf = [0u8; 100];
    s.read_exact(&mut buf).unwrap();
    g.send(hdr(op::CREDIT_REQUEST, 5000, 1024), &[]);
    let (h, _) = g.recv();
    assert_eq!(
        (h.op, h.buf_alloc, h.fwd_cnt),
        (op::CREDIT_UPDATE, CONN_BUF_ALLOC, 100)
    );
}

#[test]
fn host_slow_reader_gets_credit_update_after_draining() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut s = g.connect_guest(&l, 5000, 1024);
    // More than half the advertised buffer, while the host does not read.
    let chunk = vec![9u8; 60 * 1024];
    for _ in 0..4 {
        g.send(hdr(op::RW, 5000, 1024), &chunk);
    }
    let mut all = vec![0u8; 4 * chunk.len()];
    s.read_exact(&mut all).unwrap();
    assert!(all.iter().all(|&b| b == 9));
    let (h, _) = g.recv();
    assert_eq!(h.op, op::CREDIT_UPDATE);
    assert!(h.fwd_cnt >= CONN_BUF_ALLOC / 2);
}

#[test]
fn guest_overrunning_credit_is_reset() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let _s = g.connect_guest(&l, 5000, 1024);
    let chunk = vec![1u8; 64 * 1024];
    // Host never reads: socket buffer plus CONN_BUF_ALLOC fill up, then RST.
    let mut reset = false;
    for _ in 0..40 {
        g.send(hdr(op::RW, 5000, 1024), &chunk);
        if let Some((h, _)) = g.recv_within(Duration::from_millis(20)) {
            if h.op == op::RST {
                reset = true;
                break;
            }
        }
    }
    assert!(
        reset,
        "the device must reset a connection whose guest ignores credit"
    );
}

#[test]
fn malformed_packets_are_dropped_or_reset_and_device_keeps_working() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    // Wrong destination CID: dropped silently.
    let mut wrong = hdr(op::REQUEST, 1, 1024);
    wrong.dst_cid = 77;
    g.send(wrong, &[]);
    // Wrong source CID: dropped silently.
    let mut spoof = hdr(op::REQUEST, 1, 1024);
    spoof.src_cid = 9;
    g.send(spoof, &[]);
    assert!(g.recv_within(QUIET).is_none());
    // Header shorter than 44 bytes: dropped.
    g.send_raw(&[0u8; 20], &[]);
    assert!(g.recv_within(QUIET).is_none());
    // Datagram type: RST.
    let mut dgram = hdr(op::REQUEST, 2, 1024);
    dgram.type_ = 2;
    g.send(dgram, &[]);
    assert_eq!(g.recv().0.op, op::RST);
    // Data for a connection that does not exist: RST.
    g.send(hdr(op::RW, 3, 1024), b"x");
    assert_eq!(g.recv().0.op, op::RST);
    // Length larger than the payload present: RST.
    let mut liar = hdr(op::RW, 4, 1024);
    liar.len = 1000;
    g.send_raw(&liar.to_bytes(), b"short");
    assert_eq!(g.recv().0.op, op::RST);
    // Length over 64 KiB: RST.
    liar.len = u32::MAX;
    g.send_raw(&liar.to_bytes(), b"short");
    assert_eq!(g.recv().0.op, op::RST);
    // Unknown op on a live connection: RST and the host stream is closed.
    let mut s = g.connect_guest(&l, 5000, 1024);
    g.send(hdr(99, 5000, 1024), &[]);
    let (h, _) = g.recv();
    assert_eq!((h.op, h.dst_port), (op::RST, 5000));
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
    // Still works.
    let mut s2 = g.connect_guest(&l, 5001, 1024);
    g.send(hdr(op::RW, 5001, 1024), b"ok");
    let mut b = [0u8; 2];
    s2.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ok");
}

#[test]
fn rx_buffer_too_small_is_returned_empty() {
    let mut g = Guest::new();
    // Consume the pre-posted buffers' slots with a new device that has only a tiny one.
    let i = g.rx_posted;
    g.rxq
        .add_desc_chains(&chain_at(i, &[(RX_BUF + 0xf0_0000, 8, W)]), i)
        .unwrap();
    g.rx_addr.insert(i, RX_BUF + 0xf0_0000);
    // The 64 normal buffers come first; use them up with RSTs.
    for p in 0..65 {
        g.send(hdr(op::RW, 100 + p, 1), b"x");
    }
    g.dev.queue_notify(RXQ as u32);
    let deadline = Instant::now() + WAIT;
    while g.rxq.used().idx().load() < 65 {
        assert!(
            Instant::now() < deadline,
            "device did not consume the rx buffers"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let elem = g.rxq.used().ring().ref_at(64).unwrap().load();
    assert_eq!((elem.id(), elem.len()), (u32::from(i), 0));
}

#[test]
fn reset_stops_the_worker_and_closes_connections() {
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut s = g.connect_guest(&l, 5000, 1024);
    assert!(g.dev.is_active());
    g.dev.reset();
    assert!(!g.dev.is_active());
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn bulk_host_to_guest_transfer_is_complete_and_ordered() {
    const TOTAL: usize = 1 << 20;
    let mut g = Guest::new();
    let l = g.listen(1024);
    let mut req = hdr(op::REQUEST, 7000, 1024);
    req.buf_alloc = 64 * 1024;
    g.send(req, &[]);
    assert_eq!(g.recv().0.op, op::RESPONSE);
    let (s, _) = l.accept().unwrap();
    let writer = std::thread::spawn(move || {
        let mut s = s;
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
        // The guest side may stop reading first (it has a bounded number of rx buffers).
        let _ = s.write_all(&data);
    });
    let start = Instant::now();
    let mut got: Vec<u8> = Vec::with_capacity(TOTAL);
    let mut consumed = 0u32;
    while got.len() < TOTAL {
        // More rx buffers as they are used. virtio-queue 0.17's MockSplitQueue places the
        // used ring over the upper half of the avail ring (its ring `end()` counts entries,
        // not bytes), so each mock queue must stay below size/2 chains in total.
        if g.rx_posted - g.rx_seen < 8 && g.rx_posted + 16 < MOCK_SAFE_CHAINS {
            g.post_rx(16);
        } else if g.rx_posted == g.rx_seen {
            break;
        }
        let (h, d) = g.recv();
        assert_eq!(h.op, op::RW);
        consumed += d.len() as u32;
        got.extend_from_slice(&d);
        // Consume and return credit as a real driver does.
        let mut cu = hdr(op::CREDIT_UPDATE, 7000, 1024);
        cu.fwd_cnt = consumed;
        g.send(cu, &[]);
        if g.tx_sent / 2 >= MOCK_SAFE_CHAINS - 2 {
            break;
        }
    }
    let elapsed = start.elapsed();
    eprintln!("vsock host->guest: {} bytes in {elapsed:?}", got.len());
    assert!(
        got.len() >= 100 * RX_DATA as usize,
        "the transfer made progress"
    );
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8),
        "bytes in order"
    );
    drop(g);
    let _ = writer.join();
}
