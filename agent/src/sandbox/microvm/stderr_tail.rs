//! The last lines flint-vmm wrote to stderr, kept for the start error: a VMM that
//! refuses to start (a bad flag, a memory size it cannot map, a KVM failure) says why
//! there, and the invocation's error should say it too, not only a debug log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::task::JoinHandle;

/// Lines kept.
pub const TAIL_LINES: usize = 6;
/// Longest line kept, in bytes (longer ones are cut, with "...").
pub const LINE_MAX: usize = 300;
/// How long the start error waits for the last lines after the VMM exited.
pub const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// The last [`TAIL_LINES`] lines, control characters (terminal colours) removed.
#[derive(Debug, Default)]
pub struct LineTail {
    lines: VecDeque<String>,
}

impl LineTail {
    /// Keeps `line`, dropping the oldest beyond [`TAIL_LINES`]; blank lines are skipped.
    pub fn push(&mut self, line: &str) {
        let clean = strip_controls(line);
        let clean = clean.trim();
        if clean.is_empty() {
            return;
        }
        let mut kept = String::new();
        for c in clean.chars() {
            if kept.len() + c.len_utf8() > LINE_MAX {
                kept.push_str("...");
                break;
            }
            kept.push(c);
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(kept);
    }

    /// The lines joined with " | ", or "(empty)".
    pub fn render(&self) -> String {
        if self.lines.is_empty() {
            return "(empty)".into();
        }
        Vec::from_iter(self.lines.iter().map(String::as_str)).join(" | ")
    }
}

/// `s` without ANSI escape sequences (`ESC [ ... letter`) and other control characters.
fn strip_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, up to the final byte (a letter, '@'..'~').
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Reads a VMM's stderr to its end: every line is logged at debug level (with the
/// sandbox id) and the last ones kept.
pub struct StderrTail {
    tail: Arc<Mutex<LineTail>>,
    reader: JoinHandle<()>,
}

impl StderrTail {
    /// Starts reading `stderr` on a task.
    pub fn spawn<R: AsyncRead + Unpin + Send + 'static>(stderr: R, sandbox: String) -> Self {
        let tail = Arc::new(Mutex::new(LineTail::default()));
        let keep = tail.clone();
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(sandbox = %sandbox, "flint-vmm: {line}");
                keep.lock().unwrap_or_else(|p| p.into_inner()).push(&line);
            }
        });
        Self { tail, reader }
    }

    /// The tail, after waiting up to `wait` for the stream to end (the VMM has exited
    /// and its last lines may still be in the pipe).
    pub async fn render_after(self, wait: Duration) -> String {
        let Self { tail, reader } = self;
        let _ = tokio::time::timeout(wait, reader).await;
        let text = tail.lock().unwrap_or_else(|p| p.into_inner()).render();
        text
    }

    /// The tail so far.
    pub fn render(&self) -> String {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cleaned_and_bounded() {
        let mut t = LineTail::default();
        assert_eq!(t.render(), "(empty)");
        for i in 0..10 {
            t.push(&format!("line {i}"));
        }
        t.push("   ");
        assert_eq!(
            t.render(),
            "line 4 | line 5 | line 6 | line 7 | line 8 | line 9"
        );
        t.push("\u{1b}[2m2026-12-06T08:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m booted\tok");
        assert!(t
            .render()
            .ends_with("| 2026-12-06T08:00:00Z  INFO booted ok"));
        t.push(&"é".repeat(400));
        let last = t.render().rsplit(" | ").next().unwrap().to_string();
        assert!(
            last.ends_with("...") && last.len() <= LINE_MAX + 3,
            "{last}"
        );
    }

    #[tokio::test]
    async fn reads_a_stream_to_its_end() {
        let (mut w, r) = tokio::io::duplex(64);
        let tail = StderrTail::spawn(r, "sbx-test".into());
        use tokio::io::AsyncWriteExt;
        w.write_all(b"starting\nflint-vmm: invalid configuration: memory 4096 MiB is out of range (4..=3328 MiB)\n")
            .await
            .unwrap();
        drop(w);
        assert_eq!(
            tail.render_after(Duration::from_secs(5)).await,
            "starting | flint-vmm: invalid configuration: memory 4096 MiB is out of range (4..=3328 MiB)"
        );
    }

    #[tokio::test]
    async fn an_open_stream_does_not_hold_the_error_back() {
        let (mut w, r) = tokio::io::duplex(64);
        let tail = StderrTail::spawn(r, "sbx-test".into());
        use tokio::io::AsyncWriteExt;
        w.write_all(b"still running\n").await.unwrap();
        // The line is read well within the wait, which then times out: the writer
        // (a VMM's child that kept the pipe) never closes it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = std::time::Instant::now();
        assert_eq!(
            tail.render_after(Duration::from_millis(100)).await,
            "still running"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        drop(w);
    }
}
