//! Criterion benchmarks of the microVM's device request paths, on fake guest memory with
//! requests placed by virtio-queue's mock driver: virtio-blk (pop a chain, flatten it,
//! parse the request, execute it against a real file) and virtio-vsock (read a tx packet,
//! write an rx packet, header encode/decode). The mock queue is rebuilt for every
//! iteration, outside the timed part (it corrupts itself past size/2 chains).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use flint_vmm::devices::virtio::block::{Disk, Request};
use flint_vmm::devices::virtio::chain::ChainBuffers;
use flint_vmm::devices::virtio::vsock::packet::{self, op, PacketHeader, HEADER_SIZE, TYPE_STREAM};
use flint_vmm::devices::virtio::GuestMemory;
use std::io::Write;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const W: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const NEXT: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;
const DISK_BYTES: usize = 4 << 20;

fn memory() -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), 16 << 20)]).expect("guest memory")
}

/// A chain at descriptor 0: (address, length, flags) per buffer.
fn chain(bufs: &[(u64, u32, u16)]) -> Vec<RawDescriptor> {
    let last = bufs.len() - 1;
    bufs.iter()
        .enumerate()
        .map(|(i, &(a, l, f))| {
            let (f, n) = if i == last {
                (f, 0)
            } else {
                (f | NEXT, i as u16 + 1)
            };
            RawDescriptor::from(Descriptor::new(a, l, f, n))
        })
        .collect()
}

/// A fresh queue holding one chain.
fn queue(mem: &GuestMemory, descs: &[RawDescriptor]) -> Queue {
    let mock = MockSplitQueue::create(mem, GuestAddress(0), 16);
    mock.add_desc_chains(descs, 0).expect("add chain");
    mock.create_queue().expect("queue")
}

fn pop(q: &mut Queue, mem: &GuestMemory) -> ChainBuffers {
    let c = q.pop_descriptor_chain(mem).expect("a chain is queued");
    ChainBuffers::parse(c, mem).expect("valid chain")
}

fn bench_block(c: &mut Criterion) {
    let mem = memory();
    let mut file = tempfile::NamedTempFile::new().expect("disk file");
    file.write_all(&vec![0x5a; DISK_BYTES]).expect("fill disk");
    let disk = Disk::open(file.path(), false, "bench").expect("open disk");
    let mut g = c.benchmark_group("virtio_blk");
    for (kind, name, len) in [
        (0u32, "read", 4096u32),
        (0, "read", 65536),
        (1, "write", 4096),
    ] {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&8u64.to_le_bytes());
        mem.write_slice(&h, GuestAddress(HDR)).expect("header");
        let data_flags = if kind == 0 { W } else { 0 };
        let descs = chain(&[(HDR, 16, 0), (DATA, len, data_flags), (STATUS, 1, W)]);
        g.throughput(Throughput::Bytes(u64::from(len)));
        g.bench_function(BenchmarkId::new(name, len), |b| {
            b.iter_batched(
                || queue(&mem, &descs),
                |mut q| {
                    let buf = pop(&mut q, &mem);
                    let req = Request::parse(&buf, &mem).expect("valid request");
                    let done = req.execute(&disk, &mem);
                    assert_eq!(done.status, 0, "request failed");
                    done
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn header(len: u32) -> PacketHeader {
    PacketHeader {
        src_cid: 3,
        dst_cid: 2,
        src_port: 1024,
        dst_port: 9000,
        len,
        type_: TYPE_STREAM,
        op: op::RW,
        buf_alloc: 256 * 1024,
        ..Default::default()
    }
}

fn bench_vsock(c: &mut Criterion) {
    let mem = memory();
    let mut g = c.benchmark_group("virtio_vsock");
    g.bench_function("header_round_trip", |b| {
        let h = header(4096);
        b.iter(|| PacketHeader::from_bytes(&std::hint::black_box(h).to_bytes()))
    });
    for len in [64u32, 4096, 65536] {
        g.throughput(Throughput::Bytes(u64::from(len)));
        mem.write_slice(&header(len).to_bytes(), GuestAddress(HDR))
            .expect("tx header");
        mem.write_slice(
            &vec![7u8; len as usize],
            GuestAddress(HDR + HEADER_SIZE as u64),
        )
        .expect("tx data");
        let tx = chain(&[(HDR, HEADER_SIZE as u32 + len, 0)]);
        g.bench_function(BenchmarkId::new("read_tx", len), |b| {
            b.iter_batched(
                || queue(&mem, &tx),
                |mut q| {
                    let buf = pop(&mut q, &mem);
                    packet::read_tx(&buf, &mem).expect("valid packet")
                },
                BatchSize::SmallInput,
            )
        });
        let rx = chain(&[(DATA, HEADER_SIZE as u32 + len, W)]);
        let data = vec![9u8; len as usize];
        g.bench_function(BenchmarkId::new("write_rx", len), |b| {
            b.iter_batched(
                || queue(&mem, &rx),
                |mut q| {
                    let buf = pop(&mut q, &mem);
                    packet::write_rx(&buf, &mem, header(0), &data).expect("room for packet")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_block, bench_vsock);
criterion_main!(benches);
