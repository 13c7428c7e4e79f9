//! The check every invocation payload passes before it reaches a runtime: valid
//! UTF-8, JSON, and nested no deeper than [`PAYLOAD_DEPTH_MAX`] (a runtime's JSON
//! parser recurses, and a 100,000-deep array kills it).

/// Deepest nesting of arrays and objects a payload may have.
pub const PAYLOAD_DEPTH_MAX: usize = 512;

/// Why a payload is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not UTF-8
    #[error("invalid UTF-8 at byte {0}; JSON text must be UTF-8")]
    NotUtf8(usize),
    /// Nested too deeply
    #[error("arrays and objects nest deeper than {PAYLOAD_DEPTH_MAX} levels at byte {0}; flatten the document")]
    TooDeep(usize),
    /// Not JSON
    #[error("{0}")]
    Syntax(String),
}

/// Checks that `payload` is one UTF-8 JSON document nested at most
/// [`PAYLOAD_DEPTH_MAX`] deep.
pub fn check(payload: &[u8]) -> Result<(), PayloadError> {
    if let Err(e) = std::str::from_utf8(payload) {
        return Err(PayloadError::NotUtf8(e.valid_up_to()));
    }
    check_depth(payload)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| PayloadError::Syntax(e.to_string()))
}

/// Fails at the first bracket that opens level `PAYLOAD_DEPTH_MAX + 1`, counting only
/// brackets outside strings. Syntax is left to the parser.
fn check_depth(payload: &[u8]) -> Result<(), PayloadError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in payload.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > PAYLOAD_DEPTH_MAX {
                    return Err(PayloadError::TooDeep(i));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> Vec<u8> {
        let mut v = "[".repeat(n).into_bytes();
        v.extend("]".repeat(n).bytes());
        v
    }

    #[test]
    fn accepts_ordinary_documents() {
        for ok in [
            &b"{}"[..],
            b"null",
            b"[1, \"a]]]\\\"[[[\", {\"k\": [true]}]",
            "\"caf\u{e9}\"".as_bytes(),
            // A lone surrogate escape is valid JSON (RFC 8259, section 8.2); Python's
            // and Node's parsers take it, so it reaches the runtime as sent.
            b"{\"s\": \"\\udddd\"}",
        ] {
            assert_eq!(check(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
        assert_eq!(check(&nested(PAYLOAD_DEPTH_MAX)), Ok(()));
    }

    #[test]
    fn refuses_invalid_utf8_even_inside_strings() {
        assert_eq!(check(b"\"ab\xff\""), Err(PayloadError::NotUtf8(3)));
        assert_eq!(
            check(b"{\"k\": \"\xc3\x28\"}"),
            Err(PayloadError::NotUtf8(7))
        );
    }

    #[test]
    fn refuses_deep_nesting_with_where() {
        let deep = nested(100_000);
        assert_eq!(check(&deep), Err(PayloadError::TooDeep(PAYLOAD_DEPTH_MAX)));
        let mut objects = "{\"a\":".repeat(PAYLOAD_DEPTH_MAX + 1);
        objects.push('1');
        objects.push_str(&"}".repeat(PAYLOAD_DEPTH_MAX + 1));
        assert!(matches!(
            check(objects.as_bytes()),
            Err(PayloadError::TooDeep(_))
        ));
        // Brackets inside strings do not count.
        let s = format!("\"{}\"", "[".repeat(10_000));
        assert_eq!(check(s.as_bytes()), Ok(()));
    }

    #[test]
    fn refuses_syntax_errors() {
        assert!(matches!(check(b"{"), Err(PayloadError::Syntax(_))));
        assert!(matches!(check(b"[1,]"), Err(PayloadError::Syntax(_))));
    }
}
