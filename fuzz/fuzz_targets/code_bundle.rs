//! flintd's code bundle check at CreateFunction/UpdateFunctionCode (`agent/src/code.rs`
//! `check_bundle`): any bytes as a zip. A bundle it accepts has only enclosed entry names,
//! and unpacks (with flint-init's unpacker) to no more than the sizes the check summed.
#![no_main]

use flint_fuzz::code::check_bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = check_bundle(data) else {
        return;
    };
    assert_eq!(info.sha256.len(), 64);
    let dir = flint_fuzz_scratch::dir();
    match flint_fuzz::unpack::unpack(data, &dir) {
        Ok(stats) => assert!(
            stats.bytes <= info.unzipped,
            "unpacked {} bytes, the check counted {}",
            stats.bytes,
            info.unzipped
        ),
        // The check is the first line; flint-init may still refuse what it cannot
        // write (for example a file where a directory was made), never escape.
        Err(flint_fuzz::unpack::UnpackError::Escape(name)) => {
            panic!("check_bundle accepted {name:?}, which the unpacker finds escaping")
        }
        Err(_) => {}
    }
    flint_fuzz_scratch::clear(&dir);
});

mod flint_fuzz_scratch {
    include!("scratch.rs");
}
