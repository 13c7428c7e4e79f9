//! `flint_microvm_starts_total{how}`: how microVMs started (boot, snapshot_build,
//! snapshot_build_failed, restore, restore_runtime_waiting, restore_failed), from the
//! microVM backend's counts.

use super::Metrics;
use crate::sandbox::microvm::snapshots::STARTS;

/// Registers the counter.
pub fn register(m: &Metrics) {
    m.counter_vec_fn(
        "flint_microvm_starts_total",
        "microVM starts by how: boot (kernel booted), snapshot_build (booted to Hello and snapshotted), snapshot_build_failed, restore (restored from a snapshot taken at Hello), restore_runtime_waiting (restored from a function's snapshot with its runtime waiting), restore_failed (fell back to a boot).",
        || {
            STARTS
                .samples()
                .into_iter()
                .map(|(how, n)| (vec![("how".to_string(), how.to_string())], n as f64))
                .collect()
        },
    );
}
