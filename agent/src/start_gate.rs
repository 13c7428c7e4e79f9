//! The start scheduler: admits sandbox cold starts a few at a time. A start is mostly
//! CPU (namespaces, cgroup, the runtime's init); when a burst starts hundreds at once
//! they all slow down together until their init deadlines pass and every one fails.
//! Instead at most `slots` starts run at once (default twice the host's CPUs); the
//! rest queue in arrival order for at most `wait`, and a call that gets no slot in
//! that time is refused at once with TooManyRequestsException (RESOURCE_EXHAUSTED),
//! which a client can retry. Warm instances never pass through here.

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
}

/// A start in progress; its slot is free again when this is dropped.
#[derive(Debug)]
pub struct StartSlot {
    _permit: OwnedSemaphorePermit,
}

/// The default number of parallel starts: twice the CPUs this process may use.
pub fn default_slots() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cpus * 2).unwrap_or(u32::MAX)
}

impl StartGate {
    /// A gate running `size` starts at once (at least one), queueing the rest for at
    /// most `wait`.
    pub fn new(size: u32, wait: Duration) -> Self {
        let size = size.max(1);
        Self {
            slots: Arc::new(Semaphore::new(size as usize)),
            size,
            wait,
        }
    }

    /// Starts running now (in `slots`), the most that run at once.
    pub fn running(&self) -> u32 {
        self.size - self.slots.available_permits() as u32
    }

    /// Waits (in arrival order) for a start slot; refuses once `wait` has passed.
    pub async fn enter(&self) -> Result<StartSlot, Throttle> {
        let t0 = Instant::now();
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(StartSlot { _permit: permit }),
            // Timed out, or (never: the semaphore is not closed) closed.
            _ => Err(Throttle::Starts {
                parallel: self.size,
                waited_ms: t0.elapsed().as_millis() as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_most_size_at_once_and_refuses_after_the_wait() {
        let gate = StartGate::new(2, Duration::from_millis(100));
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

    #[test]
    fn default_is_twice_the_cpus() {
        assert!(default_slots() >= 2 && default_slots().is_multiple_of(2));
    }
}
