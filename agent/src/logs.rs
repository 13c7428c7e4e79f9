//! Function logs: each function's output, with Lambda's START/END/REPORT lines,
//! appended to `<data>/logs/<function>.log`; the tail of one invocation's log is what
//! LogType Tail returns.
//!
//! Disk use is bounded: one invocation keeps at most [`INVOCATION_LOG_MAX`] bytes of
//! output (the rest is dropped, with a marker line), and a log file that would grow
//! past its cap (`--function-log-max-bytes`) is rotated to `<function>.log.1`,
//! replacing the previous one: a function takes at most twice the cap on disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most output one invocation keeps, in memory and on disk.
pub const INVOCATION_LOG_MAX: usize = 1024 * 1024;

/// The log directory.
#[derive(Debug)]
pub struct Logs {
    dir: PathBuf,
    /// A log file is rotated before it would grow past this.
    max_file_bytes: u64,
    /// Serialises append-and-rotate, so concurrent invocations never rotate twice.
    write: Mutex<()>,
}

/// Appends function output to one invocation's log, keeping at most
/// [`INVOCATION_LOG_MAX`] bytes; the first output past the cap is replaced by a
/// marker line, later output is dropped.
pub fn push_capped(log: &mut Vec<u8>, data: &[u8]) {
    if log.len() >= INVOCATION_LOG_MAX {
        return;
    }
    let room = INVOCATION_LOG_MAX - log.len();
    if data.len() <= room {
        log.extend_from_slice(data);
        return;
    }
    log.extend_from_slice(&data[..room]);
    log.extend_from_slice(
        format!(
            "\n[flint] this invocation's output passed {INVOCATION_LOG_MAX} bytes: the rest is dropped\n"
        )
        .as_bytes(),
    );
}

impl Logs {
    /// Opens (creating) the log directory; files are rotated at `max_file_bytes`.
    pub fn open(dir: &Path, max_file_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_file_bytes: max_file_bytes.max(1),
            write: Mutex::new(()),
        })
    }

    fn rotated(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log.1"))
    }

    /// The log file of `function`.
    pub fn path(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log"))
    }

    /// Appends one invocation's log, rotating the file first if it would pass its
    /// cap. Text longer than the cap keeps its last `cap` bytes.
    pub fn append(&self, function: &str, text: &[u8]) {
        let cap = usize::try_from(self.max_file_bytes).unwrap_or(usize::MAX);
        let text = &text[text.len().saturating_sub(cap)..];
        let path = self.path(function);
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if size > 0 && size + text.len() as u64 > self.max_file_bytes {
            if let Err(e) = std::fs::rename(&path, self.rotated(function)) {
                tracing::warn!(function, error = %e, "rotating function log");
            }
        }
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text));
        if let Err(e) = r {
            tracing::warn!(function, error = %e, "writing function log");
        }
    }

    /// Removes a deleted function's log and its rotated predecessor.
    pub fn remove(&self, function: &str) {
        let _ = std::fs::remove_file(self.path(function));
        let _ = std::fs::remove_file(self.rotated(function));
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
        let logs = Logs::open(d.path(), 1 << 20).unwrap();
        logs.append("f", b"one\n");
        logs.append("f", b"two\n");
        assert_eq!(std::fs::read(logs.path("f")).unwrap(), b"one\ntwo\n");
        logs.remove("f");
        assert!(!logs.path("f").exists());
    }

    #[test]
    fn files_rotate_at_their_cap_and_keep_one_predecessor() {
        let d = tempfile::tempdir().unwrap();
        let logs = Logs::open(d.path(), 100).unwrap();
        for i in 0..50 {
            logs.append("f", format!("line {i:02} of the log\n").as_bytes());
        }
        let cur = std::fs::read_to_string(logs.path("f")).unwrap();
        let old = std::fs::read_to_string(d.path().join("f.log.1")).unwrap();
        assert!(cur.len() <= 100 && old.len() <= 100, "{cur:?} {old:?}");
        assert!(cur.ends_with("line 49 of the log\n"), "{cur:?}");
        // Nothing is lost across the rotation: the old file ends where the new begins.
        let num = |l: &str| l[5..7].parse::<u32>().unwrap();
        let last_old = num(old.lines().last().unwrap());
        let first_cur = num(cur.lines().next().unwrap());
        assert_eq!(last_old + 1, first_cur);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        // One huge invocation keeps its end, within the cap.
        logs.append("g", &[b'x'; 1000]);
        assert_eq!(std::fs::metadata(logs.path("g")).unwrap().len(), 100);
        logs.remove("f");
        assert!(!d.path().join("f.log.1").exists());
    }

    #[test]
    fn one_invocation_keeps_at_most_the_cap_with_a_marker() {
        let mut log = b"START\n".to_vec();
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..100 {
            push_capped(&mut log, &chunk);
        }
        assert!(log.len() < INVOCATION_LOG_MAX + 200, "{}", log.len());
        let text = String::from_utf8_lossy(&log);
        assert!(text.starts_with("START\n"));
        assert!(
            text.ends_with("the rest is dropped\n"),
            "{}",
            &text[text.len() - 100..]
        );
        assert_eq!(text.matches("[flint]").count(), 1);
    }
}
