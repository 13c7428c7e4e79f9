//! flint-init's Runtime API HTTP/1.1 request parser (`guest-init/src/http.rs`): request
//! heads and bodies (Content-Length and chunked) read from one connection's bytes, as
//! the runtime in the sandbox could send them. It must never panic and never return a
//! body above the endpoint's limit.
#![no_main]

use flint_fuzz::http::{read_body, read_head, HttpError};
use libfuzzer_sys::fuzz_target;
use std::io::BufReader;

/// Body limit of the response endpoints (6 MB in flint-init; small here so the
/// fuzzer reaches the over-limit paths).
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // A small buffer makes lines and chunks straddle buffer refills.
    let mut r = BufReader::with_capacity(64, data);
    for _ in 0..32 {
        let head = match read_head(&mut r) {
            Ok(h) => h,
            Err(_) => return,
        };
        match read_body(&mut r, &head, LIMIT) {
            Ok(body) => assert!(body.len() <= LIMIT, "body of {} bytes", body.len()),
            Err(HttpError::TooLarge { drained: true, .. }) => {}
            Err(_) => return,
        }
        if !head.keep_alive {
            return;
        }
    }
});
