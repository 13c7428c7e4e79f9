//! Criterion benchmarks of the host <-> flint-init codec: framing (`flint_proto::frame`)
//! of an Invoke (host to guest) and an InvokeResponse (guest to host) with payloads of
//! 0 B, 1 KB and 1 MB, encode and decode.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flint_proto::frame::{encode, read_frame};
use flint_proto::init::{
    guest_message, host_message, GuestMessage, HostMessage, Invoke, InvokeResponse,
};

const SIZES: [(usize, &str); 3] = [(0, "0B"), (1024, "1KB"), (1 << 20, "1MB")];

fn invoke(size: usize) -> HostMessage {
    HostMessage {
        msg: Some(host_message::Msg::Invoke(Invoke {
            request_id: "8f2c5b1e-3d4a-4c6b-9e7f-0a1b2c3d4e5f".into(),
            payload: vec![b'a'; size],
            deadline_ms: 1_800_000_000_000,
            invoked_function_arn: "arn:flint:lambda:local:000000000000:function:hello".into(),
            trace_id: "Root=1-5759e988-bd862e3fe1be46a994272793".into(),
            ..Default::default()
        })),
    }
}

fn response(size: usize) -> GuestMessage {
    GuestMessage {
        msg: Some(guest_message::Msg::Response(InvokeResponse {
            request_id: "8f2c5b1e-3d4a-4c6b-9e7f-0a1b2c3d4e5f".into(),
            payload: vec![b'a'; size],
        })),
    }
}

fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for (size, label) in SIZES {
        g.throughput(Throughput::Bytes(size.max(1) as u64));
        let inv = invoke(size);
        let resp = response(size);
        let inv_frame = encode(&inv).expect("encode invoke");
        let resp_frame = encode(&resp).expect("encode response");
        g.bench_with_input(BenchmarkId::new("encode_invoke", label), &inv, |b, m| {
            b.iter(|| encode(m).expect("encode"))
        });
        g.bench_with_input(
            BenchmarkId::new("decode_invoke", label),
            &inv_frame,
            |b, f| b.iter(|| read_frame::<_, HostMessage>(&mut f.as_slice()).expect("decode")),
        );
        g.bench_with_input(BenchmarkId::new("encode_response", label), &resp, |b, m| {
            b.iter(|| encode(m).expect("encode"))
        });
        g.bench_with_input(
            BenchmarkId::new("decode_response", label),
            &resp_frame,
            |b, f| b.iter(|| read_frame::<_, GuestMessage>(&mut f.as_slice()).expect("decode")),
        );
    }
    g.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
