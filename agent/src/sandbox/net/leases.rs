//! Addresses for the sandboxes' links: the Flint subnet (`--network-cidr`) cut into
//! /31 point-to-point pairs, one per live sandbox (the host end is the even address
//! and the sandbox's gateway, the sandbox's `eth0` the odd one), reused once the
//! sandbox is gone, like the host uid ranges (`namespace/uids.rs`).

use super::cidr::Cidr;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

/// The pairs in use.
pub struct Leases {
    cidr: Cidr,
    used: Mutex<Vec<bool>>,
}

/// One sandbox's pair; returned when dropped.
pub struct Lease {
    leases: Arc<Leases>,
    slot: u32,
}

impl Leases {
    /// All pairs of `cidr` free (at most 2^20 pairs are used from a larger block).
    pub fn new(cidr: Cidr) -> Arc<Self> {
        let slots = (cidr.size() / 2).min(1 << 20) as usize;
        Arc::new(Self {
            cidr,
            used: Mutex::new(vec![false; slots]),
        })
    }

    /// How many sandboxes can have a pair at once.
    pub fn capacity(&self) -> usize {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A free pair (the lowest), or None when all are taken.
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let slot = used.iter().position(|u| !u)?;
        used[slot] = true;
        Some(Lease {
            leases: self.clone(),
            slot: slot as u32,
        })
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.iter().filter(|u| **u).count()
    }
}

impl Lease {
    /// The host end: the sandbox's gateway.
    pub fn host(&self) -> Ipv4Addr {
        self.leases.cidr.nth(self.slot * 2)
    }

    /// The sandbox's address.
    pub fn sandbox(&self) -> Ipv4Addr {
        self.leases.cidr.nth(self.slot * 2 + 1)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut used = self.leases.used.lock().unwrap_or_else(|p| p.into_inner());
        used[self.slot as usize] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_returned_on_drop() {
        let l = Leases::new(Cidr::parse("100.96.0.0/29").unwrap());
        assert_eq!(l.capacity(), 4);
        let a = l.lease().unwrap();
        let b = l.lease().unwrap();
        assert_eq!(
            (a.host(), a.sandbox()),
            ("100.96.0.0".parse().unwrap(), "100.96.0.1".parse().unwrap())
        );
        assert_eq!(
            (b.host(), b.sandbox()),
            ("100.96.0.2".parse().unwrap(), "100.96.0.3".parse().unwrap())
        );
        let rest: Vec<_> = std::iter::from_fn(|| l.lease()).collect();
        assert_eq!(rest.len(), 2);
        assert!(l.lease().is_none());
        drop(a);
        assert_eq!(l.in_use(), 3);
        assert_eq!(
            l.lease().unwrap().sandbox(),
            "100.96.0.1".parse::<Ipv4Addr>().unwrap()
        );
        drop((b, rest));
        assert_eq!(l.in_use(), 0);
    }
}
