//! Reading a function's log files (logs.rs writes them): `<function>.log.1` (the
//! rotated predecessor) then `<function>.log`, line by line, and following the
//! current file as it grows, across rotations: when `<function>.log` is renamed
//! away, the rest of the old file is read through the open handle, then the new file
//! from its start.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A function's log, read from the oldest kept line on.
#[derive(Debug)]
pub struct LogReader {
    current: PathBuf,
    /// The rotated file, read first (once).
    rotated: Option<PathBuf>,
    file: Option<File>,
    ino: u64,
    /// Bytes read after the last newline.
    partial: Vec<u8>,
}

impl LogReader {
    /// A reader of `<dir>/<function>.log.1` and `<dir>/<function>.log`.
    pub fn new(dir: &Path, function: &str) -> Self {
        Self {
            current: dir.join(format!("{function}.log")),
            rotated: Some(dir.join(format!("{function}.log.1"))),
            file: None,
            ino: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call (all lines at the first).
    /// A missing file is no lines (yet).
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut buf = Vec::new();
        if let Some(rotated) = self.rotated.take() {
            match File::open(&rotated) {
                Ok(mut f) => {
                    f.read_to_end(&mut buf)?;
                    if !buf.ends_with(b"\n") && !buf.is_empty() {
                        buf.push(b'\n');
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = &mut self.file {
            f.read_to_end(&mut buf)?;
        }
        let now = match std::fs::metadata(&self.current) {
            Ok(m) => Some(m.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(ino) = now.filter(|i| self.file.is_none() || *i != self.ino) {
            // First open, or the file was rotated: the old handle is read out above.
            match File::open(&self.current) {
                Ok(mut f) => {
                    f.read_to_end(&mut buf)?;
                    self.file = Some(f);
                    self.ino = ino;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        Ok(String::from_utf8_lossy(&whole)
            .split_inclusive('\n')
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn reads_rotated_then_current_and_follows_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let (cur, old) = (d.path().join("f.log"), d.path().join("f.log.1"));
        let mut r = LogReader::new(d.path(), "f");
        assert!(r.poll().unwrap().is_empty(), "no files yet");
        let mut r = LogReader::new(d.path(), "f");
        append(&old, "1\n");
        append(&cur, "2\n3");
        assert_eq!(r.poll().unwrap(), vec!["1\n", "2\n"]);
        append(&cur, "\n4\n");
        assert_eq!(r.poll().unwrap(), vec!["3\n", "4\n"]);
        assert!(r.poll().unwrap().is_empty());
        // Rotation as logs.rs does it: the last lines of the old file, then the new.
        append(&cur, "5\n");
        std::fs::rename(&cur, &old).unwrap();
        append(&cur, "6\n");
        assert_eq!(r.poll().unwrap(), vec!["5\n", "6\n"]);
        append(&cur, "7\n");
        assert_eq!(r.poll().unwrap(), vec!["7\n"]);
    }
}
