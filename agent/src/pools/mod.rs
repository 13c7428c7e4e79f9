//! The two pools, named so they do not collide:
//! - [`idle::IdleInstances`]: idle instances of one function (a warm start takes one);
//! - [`prestart::SandboxPool`]: generic sandboxes pre-started per (runtime, memory size),
//!   bound to a function by a cold start.
//!
//! [`key`] names the sandbox pools without depending on them (the configuration uses
//! it); [`occupancy`] counts starting and busy instances and wakes the Node API's
//! watchers when either pool changes.

pub mod idle;
pub mod key;
pub mod occupancy;
pub mod prestart;

/// Runs every destroy at once, each on a task of its own, and waits for all (agent
/// shutdown).
pub(crate) async fn destroy_all<F>(destroys: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut all = tokio::task::JoinSet::new();
    for d in destroys {
        all.spawn(d);
    }
    while all.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn destroys_run_at_once_and_are_all_waited_for() {
        let done = Arc::new(AtomicUsize::new(0));
        let t0 = tokio::time::Instant::now();
        super::destroy_all((0..50).map(|_| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .await;
        assert_eq!(done.load(Ordering::SeqCst), 50);
        // One after the other this would be 5 s.
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
    }
}
