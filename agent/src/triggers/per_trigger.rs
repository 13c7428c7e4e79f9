//! Numbers kept per trigger and exported as Prometheus families labelled `trigger`:
//! the one shape the schedule, file-event and queue triggers' counters share. Each
//! family reads the map when Prometheus scrapes it, through a weak reference (the
//! registry of metrics outlives nothing it reads).

use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Whether a family only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Counter,
    Gauge,
}

/// One `C` per trigger name.
pub struct PerTrigger<C> {
    map: Mutex<BTreeMap<String, C>>,
}

impl<C> Default for PerTrigger<C> {
    fn default() -> Self {
        Self {
            map: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<C: Clone + Default + Send + 'static> PerTrigger<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, C>> {
        // A panic while the lock was held cannot leave a count half-written.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on `trigger`'s numbers (made at their default on first use).
    pub fn update<R>(&self, trigger: &str, f: impl FnOnce(&mut C) -> R) -> R {
        let mut map = self.lock();
        f(map.entry(trigger.to_string()).or_default())
    }

    /// Every trigger's numbers.
    #[cfg(test)]
    pub fn snapshot(&self) -> BTreeMap<String, C> {
        self.lock().clone()
    }

    /// Forgets a deleted trigger.
    pub fn remove(&self, trigger: &str) {
        self.lock().remove(trigger);
    }

    /// Exports one family `name`: `pick` of each trigger's numbers (`None`: no sample
    /// for that trigger, e.g. a value not known yet).
    pub fn export(
        self: &Arc<Self>,
        metrics: &Metrics,
        family: Family,
        name: &str,
        help: &str,
        pick: fn(&C) -> Option<f64>,
    ) {
        let weak = Arc::downgrade(self);
        let read = move || {
            let Some(me) = weak.upgrade() else {
                return Vec::new();
            };
            let map = me.lock();
            map.iter()
                .filter_map(|(t, c)| pick(c).map(|v| (vec![("trigger".to_string(), t.clone())], v)))
                .collect()
        };
        match family {
            Family::Counter => metrics.counter_vec_fn(name, help, read),
            Family::Gauge => metrics.gauge_vec(name, help, read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_read_every_trigger_and_skip_unknown_values() {
        let m = Metrics::new();
        let p: Arc<PerTrigger<(u64, Option<i64>)>> = Arc::default();
        p.export(&m, Family::Counter, "t_total", "Things.", |c| {
            Some(c.0 as f64)
        });
        p.export(&m, Family::Gauge, "t_level", "Level.", |c| {
            c.1.map(|v| v as f64)
        });
        p.update("a", |c| c.0 += 2);
        p.update("b", |c| *c = (1, Some(7)));
        let text = m.render();
        assert!(text.contains("# TYPE t_total counter"), "{text}");
        assert!(text.contains("t_total{trigger=\"a\"} 2"), "{text}");
        assert!(text.contains("t_level{trigger=\"b\"} 7"), "{text}");
        assert!(!text.contains("t_level{trigger=\"a\"}"), "{text}");
        p.remove("a");
        assert!(!m.render().contains("trigger=\"a\""));
        assert_eq!(p.snapshot().len(), 1);
    }
}
