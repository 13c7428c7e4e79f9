//! The start scheduler: admits sandbox cold starts a few at a time. A start is mostly
//! CPU (namespaces, cgroup, the runtime's init); when a burst starts hundreds at once
//! they all slow down together until their init deadlines pass and every one fails.
//! Instead at most `slots` starts run at once (default twice the host's CPUs); the
//! rest queue in arrival order for at most `wait`, and a call that gets no slot in
//! that time is refused at once with TooManyRequestsException (RESOURCE_EXHAUSTED),
//! which a client can retry. A start that makes a sandbox also waits (within the same
//! time) while the host's available memory is below `min_free_mb`; a pool hit does
//! not, as its sandbox's memory is in use already. Warm instances never pass through
//! here.

use crate::limiter::Throttle;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admits cold starts.
#[derive(Debug)]
pub struct StartGate {
    slots: Arc<Semaphore>,
    size: u32,
    wait: Duration,
    /// Starts wait while the host has less memory available than this (MB).
    min_free_mb: u64,
}

/// How often a start waiting for memory looks again.
const MEMORY_POLL: Duration = Duration::from_millis(50);

/// MemAvailable of a /proc/meminfo text, in MB.
fn mem_available_mb(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// The host's available memory in MB; None when /proc/meminfo cannot be read.
fn host_available_mb() -> Option<u64> {
    mem_available_mb(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// A start in progress; its slot is free again when this is dropped.
#[derive(Debug)]
pub struct StartSlot {
    _permit: OwnedSemaphorePermit,
    /// When the start asked for its slot: the memory wait counts from here too.
    since: Instant,
}

/// The default number of parallel starts: twice the CPUs this process may use.
pub fn default_slots() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cpus * 2).unwrap_or(u32::MAX)
}

impl StartGate {
    /// A gate running `size` starts at once (at least one), queueing the rest for at
    /// most `wait`, and holding starts while the host has under `min_free_mb` MB
    /// available.
    pub fn new(size: u32, wait: Duration, min_free_mb: u64) -> Self {
        let size = size.max(1);
        Self {
            slots: Arc::new(Semaphore::new(size as usize)),
            size,
            wait,
            min_free_mb,
        }
    }

    /// Starts running now (in `slots`), the most that run at once.
    #[cfg(test)]
    pub fn running(&self) -> u32 {
        self.size - self.slots.available_permits() as u32
    }

    /// Waits (in arrival order) for a start slot; refuses once `wait` has passed.
    pub async fn enter(&self) -> Result<StartSlot, Throttle> {
        let since = Instant::now();
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(StartSlot {
                _permit: permit,
                since,
            }),
            // Timed out, or (never: the semaphore is not closed) closed.
            _ => Err(Throttle::Starts {
                parallel: self.size,
                waited_ms: since.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Waits, holding `slot`, while the host has less memory available than the floor;
    /// refuses once `wait` has passed since the slot was asked for. Only a start that
    /// makes a sandbox calls this: a pool hit binds a sandbox whose memory is in use
    /// already, and skips the read of /proc/meminfo (about 0.3 ms when it has not been
    /// read for a while).
    pub async fn room_for_sandbox(&self, slot: &StartSlot) -> Result<(), Throttle> {
        self.room_with(slot, host_available_mb).await
    }

    async fn room_with(
        &self,
        slot: &StartSlot,
        available_mb: impl Fn() -> Option<u64>,
    ) -> Result<(), Throttle> {
        loop {
            match available_mb() {
                Some(mb) if mb < self.min_free_mb => {
                    if slot.since.elapsed() >= self.wait {
                        return Err(Throttle::HostMemory {
                            available_mb: mb,
                            floor_mb: self.min_free_mb,
                        });
                    }
                    tokio::time::sleep(MEMORY_POLL).await;
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_most_size_at_once_and_refuses_after_the_wait() {
        let gate = StartGate::new(2, Duration::from_millis(100), 0);
        let a = gate.enter().await.unwrap();
        let _b = gate.enter().await.unwrap();
        assert_eq!(gate.running(), 2);
        let t0 = Instant::now();
        match gate.enter().await {
            Err(Throttle::Starts {
                parallel: 2,
                waited_ms,
            }) => {
                assert!(waited_ms >= 100, "{waited_ms}")
            }
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
        // A slot freed while waiting is taken.
        let waiter = tokio::spawn(async move {
            let g = gate;
            g.enter().await.map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn starts_wait_for_memory_then_are_refused_with_the_numbers() {
        let gate = StartGate::new(4, Duration::from_millis(150), 512);
        let t0 = Instant::now();
        let slot = gate.enter().await.unwrap();
        match gate.room_with(&slot, || Some(100)).await {
            Err(Throttle::HostMemory {
                available_mb: 100,
                floor_mb: 512,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() >= Duration::from_millis(150));
        drop(slot);
        assert_eq!(gate.running(), 0, "the slot is given back");
        let slot = gate.enter().await.unwrap();
        assert!(gate.room_with(&slot, || Some(4096)).await.is_ok());
        // Unknown memory admits.
        assert!(gate.room_with(&slot, || None).await.is_ok());
        // The real reading: this host has more than 0 MB.
        let gate = StartGate::new(1, Duration::from_millis(10), 0);
        let slot = gate.enter().await.unwrap();
        assert!(gate.room_for_sandbox(&slot).await.is_ok());
    }

    #[tokio::test]
    async fn memory_freed_while_waiting_admits_within_the_wait() {
        let gate = StartGate::new(1, Duration::from_secs(5), 512);
        let slot = gate.enter().await.unwrap();
        let reads = std::sync::atomic::AtomicU32::new(0);
        let t0 = Instant::now();
        let low_twice = || {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(if n < 2 { 100 } else { 1024 })
        };
        assert!(gate.room_with(&slot, low_twice).await.is_ok());
        assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert!(t0.elapsed() >= 2 * MEMORY_POLL && t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn reads_mem_available() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2097152 kB\n";
        assert_eq!(mem_available_mb(m), Some(2048));
        assert_eq!(mem_available_mb("MemTotal: 1 kB\n"), None);
        assert!(host_available_mb().is_some_and(|mb| mb > 0));
    }

    #[test]
    fn default_is_twice_the_cpus() {
        assert!(default_slots() >= 2 && default_slots().is_multiple_of(2));
    }
}
