//! Writing the dispatcher's and the webhook sender's state changes when the queue
//! cannot take them (a full disk): the write is tried again every
//! [`RETRY_EVERY`] until it lands or the agent stops, so that an event is neither left
//! in flight until the next start nor its destination record dropped. The worker
//! slot stays taken meanwhile: a full disk slows the dispatcher down instead of
//! spinning it.

use super::QueueError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Wait between two tries of a write that failed.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Runs `write` until it succeeds (true) or `stopped` is set (false; the state is
/// then recovered at the next start). The first failure is logged as an error
/// naming `what`, later ones at debug level.
pub async fn until_stored(
    what: &str,
    stopped: &AtomicBool,
    mut write: impl FnMut() -> Result<(), QueueError>,
) -> bool {
    let mut tries = 0u32;
    loop {
        match write() {
            Ok(()) => {
                if tries > 0 {
                    tracing::info!(what, tries = tries + 1, "stored after a failed write");
                }
                return true;
            }
            Err(e) if tries == 0 => {
                tracing::error!(what, error = %e, "could not store; trying again every second")
            }
            Err(e) => tracing::debug!(what, error = %e, "still cannot store"),
        }
        tries += 1;
        if stopped.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn a_write_is_tried_until_it_lands_or_the_agent_stops() {
        let stopped = AtomicBool::new(false);
        let n = Cell::new(0);
        let landed = until_stored("test", &stopped, || {
            n.set(n.get() + 1);
            if n.get() < 3 {
                Err(QueueError::Full { path: "x".into() })
            } else {
                Ok(())
            }
        })
        .await;
        assert!(landed);
        assert_eq!(n.get(), 3);
        stopped.store(true, Ordering::SeqCst);
        assert!(
            !until_stored("test", &stopped, || Err(QueueError::Full {
                path: "x".into()
            }))
            .await
        );
    }
}
