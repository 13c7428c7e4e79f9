//! flint-init's code bundle unpacker (`guest-init/src/unpack.rs`): any bytes as a zip,
//! unpacked into a scratch directory. Nothing may be written outside it, no entry may
//! write more than its header declares, and it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// Bytes of every regular file under `d`, and whether any path leaves it.
fn walk(d: &Path, root: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(d).expect("read_dir").flatten() {
        let p = e.path();
        assert!(
            p.starts_with(root),
            "{} escapes {}",
            p.display(),
            root.display()
        );
        let m = std::fs::symlink_metadata(&p).expect("stat");
        assert!(
            !m.file_type().is_symlink(),
            "{} is a symbolic link",
            p.display()
        );
        if m.is_dir() {
            total += walk(&p, root);
        } else {
            total += m.len();
        }
    }
    total
}

fuzz_target!(|data: &[u8]| {
    let root = scratch::dir();
    let dest = root.join("task");
    std::fs::create_dir(&dest).expect("mkdir");
    if let Ok(stats) = flint_fuzz::unpack::unpack(data, &dest) {
        let on_disk = walk(&dest, &dest);
        assert!(
            on_disk <= stats.bytes,
            "{on_disk} bytes on disk, {} counted",
            stats.bytes
        );
        // The declared sizes bound what was written.
        if let Ok(mut z) = zip::ZipArchive::new(std::io::Cursor::new(data)) {
            let declared: u64 = (0..z.len())
                .filter_map(|i| z.by_index_raw(i).ok().map(|e| e.size()))
                .sum();
            assert!(
                stats.bytes <= declared,
                "{} written, {declared} declared",
                stats.bytes
            );
        }
    }
    // Nothing next to the destination.
    let beside: Vec<_> = std::fs::read_dir(&root)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("task")],
        "written outside the destination"
    );
    scratch::clear(&root);
});

mod scratch {
    include!("scratch.rs");
}
