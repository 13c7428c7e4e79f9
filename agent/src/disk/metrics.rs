//! Prometheus gauges of flintd's own disk use, read at scrape time.

use super::usage::PARTS;
use super::Disk;
use crate::metrics::Metrics;
use std::sync::Arc;

/// Registers `flint_disk_*` on `m`.
pub fn register(m: &Metrics, disk: &Arc<Disk>) {
    let d = Arc::downgrade(disk);
    m.gauge_vec(
        "flint_disk_used_bytes",
        "Bytes flintd's data directory takes on disk, by part: code (bundles), registry (flint.db), metering (metering.db), events (events.db), logs (function logs), other.",
        move || {
            let Some(d) = d.upgrade() else {
                return Vec::new();
            };
            let u = d.usage();
            PARTS
                .iter()
                .zip(u.bytes)
                .map(|(p, b)| (vec![("part".to_string(), p.to_string())], b as f64))
                .collect()
        },
    );
    let d = Arc::downgrade(disk);
    m.gauge(
        "flint_disk_free_bytes",
        "Bytes free (for unprivileged writers) on the file system of flintd's data directory.",
        move || d.upgrade().map_or(0.0, |d| d.free_bytes() as f64),
    );
    let d = Arc::downgrade(disk);
    m.gauge(
        "flint_disk_min_free_bytes",
        "Free bytes below which new code and new events are refused (--min-free-disk-mb; 0: never).",
        move || d.upgrade().map_or(0.0, |d| d.floor_bytes() as f64),
    );
    let d = Arc::downgrade(disk);
    m.counter_fn(
        "flint_disk_refusals_total",
        "CreateFunction, UpdateFunctionCode and Event invocations refused because the data directory's file system was below --min-free-disk-mb.",
        move || d.upgrade().map_or(0.0, |d| d.refused() as f64),
    );
}
