//! A progress bar on stderr: one line per scenario, redrawn in place on a terminal,
//! printed once when the scenario ends otherwise (CI logs stay short).

use std::io::{IsTerminal, Write};
use std::time::Instant;

const WIDTH: usize = 30;

/// Progress of one scenario.
pub struct Progress {
    name: String,
    total: u64,
    done: u64,
    started: Instant,
    tty: bool,
}

impl Progress {
    /// Starts a bar for `name` with `total` steps.
    pub fn new(name: &str, total: u64) -> Progress {
        let p = Progress {
            name: name.to_string(),
            total: total.max(1),
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        };
        p.draw("");
        p
    }

    /// Grows the total (for scenarios that learn their length as they go).
    pub fn set_total(&mut self, total: u64) {
        self.total = total.max(1);
    }

    /// One more step done, with a short status text.
    pub fn inc(&mut self, msg: &str) {
        self.done = (self.done + 1).min(self.total);
        self.draw(msg);
    }

    /// Ends the bar with a final message.
    pub fn finish(self, msg: &str) {
        let line = self.line(self.total, msg);
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = writeln!(e, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(e, "{line}");
        }
    }

    fn line(&self, done: u64, msg: &str) -> String {
        let filled = (done as usize * WIDTH) / self.total as usize;
        format!(
            "{:<18} [{}{}] {:>5}/{:<5} {:>6.1}s {}",
            self.name,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            done,
            self.total,
            self.started.elapsed().as_secs_f64(),
            msg
        )
    }

    fn draw(&self, msg: &str) {
        if self.tty {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{}", self.line(self.done, msg));
            let _ = e.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_in_proportion() {
        let mut p = Progress::new("x", 4);
        p.tty = false;
        p.inc("a");
        p.inc("b");
        let l = p.line(p.done, "m");
        assert!(
            l.contains(&format!("[{}{}]", "#".repeat(15), "-".repeat(15))),
            "{l}"
        );
        assert!(l.contains("2/4"), "{l}");
    }
}
