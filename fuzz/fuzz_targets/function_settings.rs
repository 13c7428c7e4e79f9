//! flintd's function setting validation (`agent/src/validate.rs`): a handler, a name
//! and environment variables made of the input's bytes. Accepted settings hold no NUL
//! or other control character where a process could not carry it.
#![no_main]

use flint_fuzz::validate::{environment, handler, name};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xff (never in UTF-8): handler, name, then key/value pairs.
    let fields: Vec<String> = data
        .split(|&b| b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let h = &fields[0];
    if handler(h).is_ok() {
        assert!(
            !h.is_empty() && !h.chars().any(|c| c.is_control() || c.is_whitespace()),
            "{h:?}"
        );
    }
    if let Some(n) = fields.get(1) {
        if name(n).is_ok() {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{n:?}"
            );
        }
    }
    let env: HashMap<String, String> = fields
        .get(2..)
        .unwrap_or_default()
        .chunks(2)
        .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
        .collect();
    if environment(&env).is_ok() {
        for (k, v) in &env {
            assert!(!v.contains('\0'), "NUL accepted in {k}");
            assert!(
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{k:?}"
            );
        }
    }
});
