//! Host uid ranges for the sandboxes' user namespaces: each live namespace sandbox
//! holds one range of 65,536 host uids (and gids) of its own, so no two functions
//! share a host uid, a key ring or per-user kernel limits. Ranges start at host uid
//! 2^30, far above the ids distributions hand out (and /etc/subuid's usual 100000+),
//! and are reused once their sandbox is gone.

use std::sync::{Arc, Mutex};

/// The first host uid Flint gives out.
pub const BASE: u32 = 1 << 30;
/// Ids per sandbox (the namespace's 0..65535).
pub const RANGE: u32 = 65_536;
/// How many ranges fit above [`BASE`] (2^30 / 2^16): sandboxes alive at once.
pub const SLOTS: u32 = 16_384;

/// The ranges in use.
pub struct UidRanges {
    used: Mutex<Vec<bool>>,
    /// Where the search for a free range starts: random per agent, so two agents on
    /// one host (tests) rarely pick the same ranges.
    start: u32,
}

/// One sandbox's range; returned when dropped.
pub struct UidLease {
    ranges: Arc<UidRanges>,
    slot: u32,
}

impl UidRanges {
    /// All ranges free.
    pub fn new() -> Arc<Self> {
        let start = u32::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        Arc::new(Self {
            used: Mutex::new(vec![false; SLOTS as usize]),
            start: start % SLOTS,
        })
    }

    /// A free range, or None when all are taken.
    pub fn lease(self: &Arc<Self>) -> Option<UidLease> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (0..SLOTS)
            .map(|i| (self.start + i) % SLOTS)
            .find(|&s| !used[s as usize])?;
        used[slot as usize] = true;
        Some(UidLease {
            ranges: self.clone(),
            slot,
        })
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.iter().filter(|u| **u).count()
    }
}

impl UidLease {
    /// The range's first host uid (root of the sandbox's namespace).
    pub fn base(&self) -> u32 {
        BASE + self.slot * RANGE
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        let mut used = self.ranges.used.lock().unwrap_or_else(|p| p.into_inner());
        used[self.slot as usize] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_and_returned_on_drop() {
        let r = UidRanges::new();
        let a = r.lease().unwrap();
        let b = r.lease().unwrap();
        assert_ne!(a.base(), b.base());
        for l in [&a, &b] {
            assert!(l.base() >= BASE);
            assert_eq!((l.base() - BASE) % RANGE, 0);
            assert!(l.base().checked_add(RANGE - 1).is_some());
        }
        assert_eq!(r.in_use(), 2);
        drop(a);
        assert_eq!(r.in_use(), 1);
        let all: Vec<_> = std::iter::from_fn(|| r.lease()).collect();
        assert_eq!(all.len() as u32, SLOTS - 1, "every range once");
        assert!(r.lease().is_none());
        drop(all);
        assert_eq!(r.in_use(), 1);
    }
}
