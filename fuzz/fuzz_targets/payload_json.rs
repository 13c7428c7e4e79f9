//! flintd's invocation payload check (`agent/src/payload.rs`): any bytes. A payload it
//! accepts is UTF-8 and parses as JSON nested at most PAYLOAD_DEPTH_MAX deep; a refused
//! one gets an error that says why.
#![no_main]

use flint_fuzz::payload::{check, PayloadError, PAYLOAD_DEPTH_MAX};
use libfuzzer_sys::fuzz_target;

/// Deepest nesting of a parsed document.
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    match check(data) {
        Ok(()) => {
            let text = std::str::from_utf8(data).expect("accepted payloads are UTF-8");
            // serde_json's Value has limits JSON does not: nesting (128, below our 512),
            // f64's range (1e400 is valid JSON, and runtimes read it as infinity) and
            // lone surrogate escapes ("\udddd", or "\ud800" not followed by a trailing
            // one: valid JSON, RFC 8259 section 8.2, and Python's and Node's parsers take
            // them; a Rust String cannot hold them. check() accepts only well-formed
            // escapes, so serde_json's "unexpected end of hex escape" here is that case).
            let v = match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => v,
                Err(e)
                    if e.to_string().starts_with("recursion limit exceeded")
                        || e.to_string().starts_with("number out of range")
                        || e.to_string().starts_with("lone leading surrogate")
                        || e.to_string().starts_with("unexpected end of hex escape") =>
                {
                    return
                }
                Err(e) => panic!("accepted payload is not JSON: {e}"),
            };
            assert!(depth(&v) <= PAYLOAD_DEPTH_MAX, "depth {}", depth(&v));
        }
        Err(PayloadError::NotUtf8(at)) => {
            assert_eq!(std::str::from_utf8(data).unwrap_err().valid_up_to(), at)
        }
        Err(PayloadError::TooDeep(at)) => assert!(at < data.len()),
        Err(PayloadError::Syntax(msg)) => assert!(!msg.is_empty()),
    }
});
