//! Selecting lines of a function's log (`flint logs`): the log is a sequence of
//! invocation blocks, each from `START RequestId: ID` to `REPORT RequestId: ID` (or
//! `INIT_REPORT RequestId: ID` for a failed init), with any lines before a START (an
//! instance's init output) belonging to the block they precede. A filter keeps the
//! blocks of one request id, or of a set of request ids (those metering saw start
//! since a time); a version, if given, keeps only the blocks whose START line
//! (`START RequestId: ID Version: V`) names it. Pure: the files are read by log_tail.rs.

use std::collections::HashSet;

/// Which invocations' lines to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogFilter {
    /// Every line.
    #[default]
    All,
    /// The lines of one invocation.
    Request(String),
    /// The lines of these invocations.
    Requests(HashSet<String>),
}

impl LogFilter {
    fn keeps(&self, id: &str) -> bool {
        match self {
            LogFilter::All => true,
            LogFilter::Request(r) => r == id,
            LogFilter::Requests(set) => set.contains(id),
        }
    }
}

/// The request id a START line opens.
pub fn start_id(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("START RequestId: ")?;
    Some(rest.split([' ', '\t']).next().unwrap_or(rest).trim_end())
}

/// The version a START line names (`... Version: V`).
pub fn start_version(line: &str) -> Option<&str> {
    line.strip_prefix("START RequestId: ")?;
    let rest = line.split_once(" Version: ")?.1;
    Some(rest.split([' ', '\t']).next().unwrap_or(rest).trim_end())
}

/// The request id a REPORT or INIT_REPORT line closes.
pub fn end_id(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("REPORT RequestId: ")
        .or_else(|| line.strip_prefix("INIT_REPORT RequestId: "))?;
    Some(rest.split([' ', '\t']).next().unwrap_or(rest).trim_end())
}

/// Splits a stream of complete lines into invocation blocks and passes on the kept
/// ones, as they complete (a block is passed on line by line once its START is seen
/// and kept, so a follower sees a running invocation's output).
#[derive(Debug, Default)]
pub struct BlockFilter {
    filter: LogFilter,
    /// Lines seen since the last block ended, before any START.
    pending: Vec<String>,
    /// The open block's request id and whether it is kept.
    open: Option<(String, bool)>,
    /// Set once the single request asked for has ended.
    done: bool,
    /// Only the blocks of this version.
    version: Option<String>,
}

impl BlockFilter {
    /// A filter of `filter`'s invocations.
    pub fn new(filter: LogFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Keeps only the blocks whose START line names `version` (None: every version).
    pub fn with_version(mut self, version: Option<String>) -> Self {
        self.version = version.filter(|v| !v.is_empty());
        self
    }

    /// True once a `Request` filter's invocation has ended (nothing more can match).
    pub fn done(&self) -> bool {
        self.done
    }

    /// Feeds one line (with its newline); returns the lines to output.
    pub fn push(&mut self, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(id) = start_id(line) {
            let keep = self.filter.keeps(id)
                && self
                    .version
                    .as_deref()
                    .is_none_or(|v| start_version(line) == Some(v));
            self.open = Some((id.to_string(), keep));
            if keep {
                out.append(&mut self.pending);
            } else {
                self.pending.clear();
            }
        }
        match &self.open {
            Some((id, keep)) => {
                if *keep {
                    out.push(line.to_string());
                }
                if end_id(line) == Some(id.as_str()) {
                    if *keep && matches!(self.filter, LogFilter::Request(_)) {
                        self.done = true;
                    }
                    self.open = None;
                }
            }
            None if end_id(line).is_some() => {
                // An INIT_REPORT without a START: its init output is pending.
                // (It names no version: a version filter drops it.)
                let id = end_id(line).unwrap_or_default().to_string();
                if self.filter.keeps(&id) && self.version.is_none() {
                    out.append(&mut self.pending);
                    out.push(line.to_string());
                    if matches!(self.filter, LogFilter::Request(_)) {
                        self.done = true;
                    }
                }
                self.pending.clear();
            }
            None if self.filter == LogFilter::All && self.version.is_none() => {
                out.push(line.to_string())
            }
            None => {
                // Bounded: init output is capped per invocation (logs.rs).
                if self.pending.len() < 10_000 {
                    self.pending.push(line.to_string());
                }
            }
        }
        out
    }
}

/// The kept lines of `text` (whole lines only).
#[cfg(test)]
pub fn select(text: &str, filter: LogFilter) -> String {
    let mut f = BlockFilter::new(filter);
    text.split_inclusive('\n')
        .flat_map(|l| f.push(l))
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "init output\n\
START RequestId: a Version: $LATEST\n\
hello a\n\
END RequestId: a\n\
REPORT RequestId: a\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\n\
START RequestId: b Version: $LATEST\n\
hello b\n\
END RequestId: b\n\
REPORT RequestId: b\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\n\
boom at init\n\
INIT_REPORT RequestId: c Status: error\tError Type: Runtime.ExitError\n";

    #[test]
    fn a_version_keeps_the_blocks_its_start_lines_name() {
        let log = LOG.replace("RequestId: b Version: $LATEST", "RequestId: b Version: 2");
        assert_eq!(start_version("START RequestId: b Version: 2\n"), Some("2"));
        assert_eq!(start_version("hello Version: 2"), None);
        let only = |f: LogFilter, v: &str| {
            let mut bf = BlockFilter::new(f).with_version(Some(v.to_string()));
            log.split_inclusive('\n')
                .flat_map(|l| bf.push(l))
                .collect::<String>()
        };
        let two = only(LogFilter::All, "2");
        assert!(two.starts_with("START RequestId: b Version: 2"), "{two}");
        assert!(two.ends_with("Memory Size: 128 MB\n"), "{two}");
        assert!(!two.contains("hello a") && !two.contains("boom"), "{two}");
        let latest = only(LogFilter::All, "$LATEST");
        assert!(
            latest.starts_with("init output\nSTART RequestId: a"),
            "{latest}"
        );
        assert!(!latest.contains("hello b"), "{latest}");
        assert_eq!(only(LogFilter::Request("a".into()), "2"), "");
        assert_eq!(only(LogFilter::All, "7"), "");
    }

    #[test]
    fn ids_are_read_from_start_and_report_lines() {
        assert_eq!(
            start_id("START RequestId: r1 Version: $LATEST\n"),
            Some("r1")
        );
        assert_eq!(end_id("REPORT RequestId: r1\tDuration: 1 ms\n"), Some("r1"));
        assert_eq!(
            end_id("INIT_REPORT RequestId: r2 Status: error\n"),
            Some("r2")
        );
        assert_eq!(start_id("hello START RequestId: x"), None);
    }

    #[test]
    fn one_request_is_its_block_with_the_init_output_before_it() {
        let a = select(LOG, LogFilter::Request("a".into()));
        assert!(a.starts_with("init output\nSTART RequestId: a"), "{a}");
        assert!(a.ends_with("Memory Size: 128 MB\n"), "{a}");
        assert!(!a.contains("hello b"), "{a}");
        let b = select(LOG, LogFilter::Request("b".into()));
        assert!(
            b.starts_with("START RequestId: b") && b.contains("hello b"),
            "{b}"
        );
        assert!(!b.contains("init output") && !b.contains("boom"), "{b}");
        let c = select(LOG, LogFilter::Request("c".into()));
        assert_eq!(
            c,
            "boom at init\nINIT_REPORT RequestId: c Status: error\tError Type: Runtime.ExitError\n"
        );
        assert_eq!(select(LOG, LogFilter::Request("zz".into())), "");
    }

    #[test]
    fn a_set_keeps_its_blocks_and_all_keeps_everything() {
        let set: HashSet<String> = ["b".to_string(), "c".to_string()].into();
        let s = select(LOG, LogFilter::Requests(set));
        assert!(!s.contains("hello a") && !s.contains("init output"), "{s}");
        assert!(s.contains("hello b") && s.contains("boom at init"), "{s}");
        assert_eq!(select(LOG, LogFilter::All), LOG);
    }

    #[test]
    fn a_single_request_filter_is_done_after_its_report() {
        let mut f = BlockFilter::new(LogFilter::Request("a".into()));
        for l in LOG.split_inclusive('\n').take(4) {
            f.push(l);
            assert!(!f.done());
        }
        assert_eq!(f.push("REPORT RequestId: a\tDuration: 1 ms\n").len(), 1);
        assert!(f.done());
    }
}
