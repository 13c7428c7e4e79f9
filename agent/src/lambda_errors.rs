//! Lambda's wording for failures the agent reports: error documents and the
//! "Runtime exited with error" message.

/// Lambda's wording for a runtime that exited.
pub fn exit_text(exit_code: i32, signal: i32) -> String {
    if signal > 0 {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().trim_start_matches("SIG").to_lowercase())
            .unwrap_or_else(|_| signal.to_string());
        let name = if name == "kill" {
            "killed".to_string()
        } else {
            name
        };
        format!("Runtime exited with error: signal: {name}")
    } else {
        format!("Runtime exited with error: exit status {exit_code}")
    }
}

/// A Lambda error document.
pub fn error_doc(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"errorType": error_type, "errorMessage": message}))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_texts_match_lambda() {
        assert_eq!(exit_text(0, 9), "Runtime exited with error: signal: killed");
        assert_eq!(exit_text(3, 0), "Runtime exited with error: exit status 3");
        assert_eq!(exit_text(0, 11), "Runtime exited with error: signal: segv");
    }
}
