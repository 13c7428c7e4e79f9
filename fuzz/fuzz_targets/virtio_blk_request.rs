//! flint-vmm's virtio-blk request parser and executor
//! (`vmm/src/devices/virtio/block/request.rs`) on a descriptor chain the fuzzer writes
//! (`flint_fuzz::virtq`): parse, then run the request against a small scratch disk.
//! Nothing may panic or touch memory outside the guest's.
#![no_main]

use flint_fuzz::virtq::first_chain;
use flint_vmm::devices::virtio::block::{Disk, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A 64 KiB disk image, one per fuzz process.
fn disk() -> &'static Disk {
    static DISK: OnceLock<Disk> = OnceLock::new();
    DISK.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("flint-fuzz-disk-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 64 * 1024]).expect("scratch disk");
        let disk = Disk::open(&path, false, "fuzz").expect("open scratch disk");
        let _ = std::fs::remove_file(&path);
        disk
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mem, Ok(chain))) = first_chain(data) else {
        return;
    };
    if let Ok(req) = Request::parse(&chain, &mem) {
        let done = req.execute(disk(), &mem);
        assert!(u64::from(done.used_len) <= chain.writable_len());
    }
});
