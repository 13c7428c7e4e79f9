//! Function logs: each function's output, with Lambda's START/END/REPORT lines,
//! appended to `<data>/logs/<function>.log`; the tail of one invocation's log is what
//! LogType Tail returns.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The log directory.
#[derive(Debug, Clone)]
pub struct Logs {
    dir: PathBuf,
}

impl Logs {
    /// Opens (creating) the log directory.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The log file of `function`.
    pub fn path(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log"))
    }

    /// Appends one invocation's log.
    pub fn append(&self, function: &str, text: &[u8]) {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(function))
            .and_then(|mut f| f.write_all(text));
        if let Err(e) = r {
            tracing::warn!(function, error = %e, "writing function log");
        }
    }

    /// Removes a deleted function's log.
    pub fn remove(&self, function: &str) {
        let _ = std::fs::remove_file(self.path(function));
    }
}

/// The last `max` bytes of `log`, cut at a character boundary.
pub fn tail(log: &[u8], max: usize) -> String {
    let start = log.len().saturating_sub(max);
    let mut s = &log[start..];
    // Skip continuation bytes of a character cut in half.
    while let Some((&b, rest)) = s.split_first() {
        if b & 0xC0 == 0x80 {
            s = rest;
        } else {
            break;
        }
    }
    String::from_utf8_lossy(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_and_whole_characters() {
        assert_eq!(tail(b"abcdef", 3), "def");
        assert_eq!(tail(b"ab", 10), "ab");
        let s = "ééé".as_bytes(); // 6 bytes
        assert_eq!(tail(s, 5), "éé");
    }

    #[test]
    fn append_accumulates() {
        let d = tempfile::tempdir().unwrap();
        let logs = Logs::open(d.path()).unwrap();
        logs.append("f", b"one\n");
        logs.append("f", b"two\n");
        assert_eq!(std::fs::read(logs.path("f")).unwrap(), b"one\ntwo\n");
        logs.remove("f");
        assert!(!logs.path("f").exists());
    }
}
