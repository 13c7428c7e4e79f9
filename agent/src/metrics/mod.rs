//! Prometheus metrics: counters and histograms fed by every invocation (a [`Metrics`]
//! observer), gauges computed at scrape time from registered sources, and the
//! `GET /metrics` HTTP endpoint (`--metrics-listen`, see http.rs).
//!
//! Adding a gauge is one line, e.g. in `Agent::open`:
//! `metrics.gauge("flint_x", "What x is.", move || thing.x() as f64);`
//! or, with labels, `metrics.gauge_vec(name, help, move || vec![(labels, value)])`.

pub mod family;
pub mod gauges;
pub mod http;
pub mod vm_starts;

use crate::observe::{InvocationObserver, InvocationRecord, RecordedOutcome};
use family::{header, sample, CounterVec, HistogramVec, Labels};
use std::sync::{Arc, RwLock};

/// Invocation duration buckets (seconds): 1 ms to 15 minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];
/// Init duration buckets (seconds): 10 ms to the 10 s init limit.
const INIT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type Source = Box<dyn Fn() -> Vec<(Labels, f64)> + Send + Sync>;

struct Sampled {
    name: String,
    help: String,
    kind: &'static str,
    source: Source,
}

/// The agent's metrics.
pub struct Metrics {
    invocations: CounterVec,
    /// Invocations of published versions (and aliases) by version: $LATEST's are
    /// `invocations` alone, so a function without versions costs nothing more.
    version_invocations: CounterVec,
    errors: CounterVec,
    throttles: CounterVec,
    cold_starts: CounterVec,
    duration: HistogramVec,
    init_duration: HistogramVec,
    sampled: RwLock<Vec<Sampled>>,
}

impl Metrics {
    /// Empty metrics, no gauges.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            invocations: CounterVec::new(
                "flint_invocations_total",
                "Finished invocations by outcome (success, function_error, init_error, timeout, out_of_memory, crash).",
                &["function", "outcome"],
            ),
            version_invocations: CounterVec::new(
                "flint_version_invocations_total",
                "Finished invocations of published versions, by version and outcome ($LATEST's are in flint_invocations_total only).",
                &["function", "version", "outcome"],
            ),
            errors: CounterVec::new(
                "flint_errors_total",
                "Failed invocations by Lambda error type.",
                &["function", "error_type"],
            ),
            throttles: CounterVec::new(
                "flint_throttles_total",
                "Invocations refused by a limit (reserved_concurrency, concurrency_limit, rate_limit, draining).",
                &["function", "limit"],
            ),
            cold_starts: CounterVec::new(
                "flint_cold_starts_total",
                "Invocations that started a new instance; pool_hit=true when a pre-started sandbox was used.",
                &["function", "pool_hit"],
            ),
            duration: HistogramVec::new(
                "flint_invocation_duration_seconds",
                "Invocation duration (invoke sent to result), seconds.",
                &["function"],
                DURATION_BUCKETS,
            ),
            init_duration: HistogramVec::new(
                "flint_init_duration_seconds",
                "Init phase of cold starts, seconds.",
                &["function"],
                INIT_BUCKETS,
            ),
            sampled: RwLock::new(Vec::new()),
        })
    }

    fn add(&self, name: &str, help: &str, kind: &'static str, source: Source) {
        self.sampled
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sampled {
                name: name.to_string(),
                help: help.to_string(),
                kind,
                source,
            });
    }

    /// A gauge without labels whose value `f` gives at scrape time.
    pub fn gauge(&self, name: &str, help: &str, f: impl Fn() -> f64 + Send + Sync + 'static) {
        self.add(
            name,
            help,
            "gauge",
            Box::new(move || vec![(Vec::new(), f())]),
        );
    }

    /// A labelled gauge whose samples `f` gives at scrape time.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> Vec<(Labels, f64)> + Send + Sync + 'static,
    ) {
        self.add(name, help, "gauge", Box::new(f));
    }

    /// A counter kept elsewhere (e.g. the meter's dropped records), read at scrape time.
    pub fn counter_fn(&self, name: &str, help: &str, f: impl Fn() -> f64 + Send + Sync + 'static) {
        self.add(
            name,
            help,
            "counter",
            Box::new(move || vec![(Vec::new(), f())]),
        );
    }

    /// Labelled counters kept elsewhere, read at scrape time.
    pub fn counter_vec_fn(
        &self,
        name: &str,
        help: &str,
        f: impl Fn() -> Vec<(Labels, f64)> + Send + Sync + 'static,
    ) {
        self.add(name, help, "counter", Box::new(f));
    }

    /// Invocations counted for `function` with `outcome` (e.g. "success").
    #[cfg(test)]
    pub fn invocations(&self, function: &str, outcome: &str) -> u64 {
        self.invocations.get(&[function, outcome])
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.invocations.render(&mut out);
        self.version_invocations.render(&mut out);
        self.errors.render(&mut out);
        self.throttles.render(&mut out);
        self.cold_starts.render(&mut out);
        self.duration.render(&mut out);
        self.init_duration.render(&mut out);
        for s in self
            .sampled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            header(&mut out, &s.name, &s.help, s.kind);
            for (labels, v) in (s.source)() {
                sample(&mut out, &s.name, &labels, v);
            }
        }
        out
    }
}

impl InvocationObserver for Metrics {
    fn invocation(&self, rec: &InvocationRecord) {
        let f = rec.function.as_str();
        self.invocations.inc(&[f, rec.outcome.label()]);
        if rec.version != flint_proto::lambda::LATEST {
            self.version_invocations
                .inc(&[f, &rec.version, rec.outcome.label()]);
        }
        if rec.outcome != RecordedOutcome::Success {
            self.errors.inc(&[f, rec.outcome.error_type()]);
        }
        if rec.cold_start {
            self.cold_starts
                .inc(&[f, if rec.pool_hit { "true" } else { "false" }]);
            if rec.init_duration_ns > 0 {
                self.init_duration
                    .observe(&[f], rec.init_duration_ns as f64 / 1e9);
            }
        }
        // A failed init never sent the invocation: it has no duration.
        if !matches!(rec.outcome, RecordedOutcome::InitError(_)) {
            self.duration.observe(&[f], rec.duration_ns as f64 / 1e9);
        }
    }

    fn throttled(&self, function: &str, limit: &str) {
        self.throttles.inc(&[function, limit]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::store::tests::rec;

    #[test]
    fn invocations_throttles_and_gauges_are_exposed() {
        let m = Metrics::new();
        m.invocation(&rec("1", "f", 0, 3, 128, true, RecordedOutcome::Success));
        m.invocation(&rec("2", "f", 0, 2, 128, false, RecordedOutcome::Success));
        m.invocation(&rec(
            "3",
            "f",
            0,
            2,
            128,
            false,
            RecordedOutcome::FunctionError("ValueError".into()),
        ));
        m.invocation(&rec(
            "4",
            "g",
            0,
            0,
            128,
            true,
            RecordedOutcome::InitError("Runtime.ImportModuleError".into()),
        ));
        let mut v2 = rec("5", "f", 0, 1, 128, false, RecordedOutcome::Success);
        v2.version = "2".into();
        m.invocation(&v2);
        m.throttled("f", "rate_limit");
        m.gauge("flint_idle_instances", "Idle instances.", || 2.0);
        m.gauge_vec("flint_pool_ready", "Ready sandboxes.", || {
            vec![(vec![("runtime".into(), "python3.11".into())], 3.0)]
        });
        let s = m.render();
        for line in [
            "flint_invocations_total{function=\"f\",outcome=\"success\"} 3",
            "flint_version_invocations_total{function=\"f\",version=\"2\",outcome=\"success\"} 1",
            "flint_invocations_total{function=\"f\",outcome=\"function_error\"} 1",
            "flint_invocations_total{function=\"g\",outcome=\"init_error\"} 1",
            "flint_errors_total{function=\"f\",error_type=\"ValueError\"} 1",
            "flint_errors_total{function=\"g\",error_type=\"Runtime.ImportModuleError\"} 1",
            "flint_throttles_total{function=\"f\",limit=\"rate_limit\"} 1",
            "flint_cold_starts_total{function=\"f\",pool_hit=\"false\"} 1",
            "flint_cold_starts_total{function=\"g\",pool_hit=\"false\"} 1",
            "flint_invocation_duration_seconds_count{function=\"f\"} 4",
            "flint_init_duration_seconds_count{function=\"f\"} 1",
            "# TYPE flint_idle_instances gauge",
            "flint_idle_instances 2",
            "flint_pool_ready{runtime=\"python3.11\"} 3",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        assert!(
            !s.contains("flint_invocation_duration_seconds_count{function=\"g\"}"),
            "a failed init has no invocation duration"
        );
        assert_eq!(m.invocations("f", "success"), 3);
        assert!(
            !s.contains("version=\"$LATEST\""),
            "$LATEST is not counted per version"
        );
    }
}
