//! Who holds what right now: instances starting and busy per function, and a change
//! counter that the Node API's watchers follow. Idle instances and pool sandboxes are
//! counted where they live (`idle.rs`, `prestart.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    starting: u32,
    busy: u32,
    /// Memory of the starting and busy instances, in MB.
    memory_mb: u64,
}

/// Starting and busy instances, and the change counter.
pub struct Occupancy {
    by_function: Mutex<BTreeMap<String, Counts>>,
    changes: watch::Sender<u64>,
}

/// What a guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A cold start in progress.
    Starting,
    /// An invocation running on an instance.
    Busy,
}

/// Counts one instance in a phase until dropped.
pub struct Guard {
    occ: Arc<Occupancy>,
    function: String,
    phase: Phase,
    memory_mb: u32,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.occ
            .change(&self.function, self.phase, self.memory_mb, false);
    }
}

/// Per-function numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunctionCounts {
    pub starting: u32,
    pub busy: u32,
    pub memory_mb: u64,
}

impl Occupancy {
    /// Empty.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            by_function: Mutex::new(BTreeMap::new()),
            changes: watch::channel(0).0,
        })
    }

    fn change(&self, function: &str, phase: Phase, memory_mb: u32, up: bool) {
        {
            let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
            let c = map.entry(function.to_string()).or_default();
            let field = match phase {
                Phase::Starting => &mut c.starting,
                Phase::Busy => &mut c.busy,
            };
            if up {
                *field += 1;
                c.memory_mb += u64::from(memory_mb);
            } else {
                *field = field.saturating_sub(1);
                c.memory_mb = c.memory_mb.saturating_sub(u64::from(memory_mb));
            }
            if *c == Counts::default() {
                map.remove(function);
            }
        }
        self.bump();
    }

    /// Counts an instance of `function` in `phase` until the guard is dropped.
    pub fn enter(self: &Arc<Self>, function: &str, phase: Phase, memory_mb: u32) -> Guard {
        self.change(function, phase, memory_mb, true);
        Guard {
            occ: self.clone(),
            function: function.to_string(),
            phase,
            memory_mb,
        }
    }

    /// Per-function starting/busy counts.
    pub fn functions(&self) -> BTreeMap<String, FunctionCounts> {
        self.by_function
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    FunctionCounts {
                        starting: c.starting,
                        busy: c.busy,
                        memory_mb: c.memory_mb,
                    },
                )
            })
            .collect()
    }

    /// Records that something changed (for watchers).
    pub fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// The change counter now.
    pub fn sequence(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_and_uncount() {
        let occ = Occupancy::new();
        let s0 = occ.sequence();
        let a = occ.enter("f", Phase::Starting, 128);
        let b = occ.enter("f", Phase::Busy, 128);
        let f = occ.functions()["f"];
        assert_eq!((f.starting, f.busy, f.memory_mb), (1, 1, 256));
        drop(a);
        drop(b);
        assert!(occ.functions().is_empty());
        assert_eq!(occ.sequence(), s0 + 4);
    }
}
