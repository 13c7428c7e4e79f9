//! Rate-limited logging for messages a guest can trigger at will (bad MMIO accesses,
//! malformed descriptor chains): at most a burst of lines per second, the rest counted
//! and reported in the next line that gets through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines allowed per window before suppression starts.
const BURST: u32 = 10;
/// Length of one window.
const WINDOW: Duration = Duration::from_secs(1);

/// A per-call-site limiter: `allow()` says whether the caller may log now, and how many
/// lines were suppressed since the last allowed one.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Window>,
    suppressed: AtomicU64,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    count: u32,
}

impl RateLimiter {
    /// A limiter with an empty window.
    pub const fn new() -> Self {
        RateLimiter {
            state: Mutex::new(Window {
                start: None,
                count: 0,
            }),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed_before)` if a line may be logged now, `None` if it must be dropped.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut w = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match w.start {
            Some(start) if now.duration_since(start) < WINDOW => {}
            _ => {
                w.start = Some(now);
                w.count = 0;
            }
        }
        if w.count < BURST {
            w.count += 1;
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// `warn!` through a static per-call-site [`RateLimiter`].
#[macro_export]
macro_rules! warn_ratelimited {
    ($($arg:tt)*) => {{
        static LIMITER: $crate::devices::ratelimit::RateLimiter =
            $crate::devices::ratelimit::RateLimiter::new();
        if let Some(suppressed) = LIMITER.allow() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)*);
            } else {
                tracing::warn!($($arg)*);
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_counted() {
        let l = RateLimiter::new();
        for _ in 0..BURST {
            assert_eq!(l.allow(), Some(0));
        }
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        // Force the window to expire.
        l.state.lock().unwrap().start = Some(Instant::now() - WINDOW * 2);
        assert_eq!(l.allow(), Some(2));
    }
}
