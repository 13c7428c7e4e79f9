//! Metric families and their Prometheus text exposition (format 0.0.4): labelled
//! counters, labelled histograms, and samples computed at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Label pairs of one sample, e.g. `[("function", "hello")]`.
pub type Labels = Vec<(String, String)>;

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// `{a="x",b="y"}`, or "" without labels.
fn label_set<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let body: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if body.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", body.join(","))
    }
}

/// Writes the `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line.
pub fn sample(out: &mut String, name: &str, labels: &Labels, value: f64) {
    let set = label_set(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let _ = writeln!(out, "{name}{set} {}", float(value));
}

/// A counter with fixed label names.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterVec {
    /// A counter named `name` with labels `labels`.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the sample with `values` (in label order).
    pub fn inc(&self, values: &[&str]) {
        let key = values.iter().map(|v| v.to_string()).collect();
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    /// The sample's value (0 if never incremented).
    #[cfg(test)]
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Writes the family.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (vals, n) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let set = label_set(
                self.labels
                    .iter()
                    .copied()
                    .zip(vals.iter().map(String::as_str)),
            );
            let _ = writeln!(out, "{}{set} {n}", self.name);
        }
    }
}

struct Hist {
    /// Observations per bucket (not cumulative); one more than the bounds, for +Inf.
    counts: Vec<u64>,
    sum: f64,
}

/// A histogram with fixed label names and bucket upper bounds.
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, Hist>>,
}

impl HistogramVec {
    /// A histogram with ascending bucket bounds `bounds` (+Inf is implied).
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation `v` for the sample with `values`.
    pub fn observe(&self, values: &[&str], v: f64) {
        let key = values.iter().map(|v| v.to_string()).collect();
        let mut map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(key).or_insert_with(|| Hist {
            counts: vec![0; self.bounds.len() + 1],
            sum: 0.0,
        });
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        h.counts[i] += 1;
        h.sum += v;
    }

    /// Writes the family: cumulative `_bucket`s, `_sum` and `_count`.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (vals, h) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let base: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(vals.iter().map(String::as_str))
                .collect();
            let mut cumulative = 0;
            let les = self.bounds.iter().map(|b| float(*b)).chain(["+Inf".into()]);
            for (le, n) in les.zip(&h.counts) {
                cumulative += n;
                let set = label_set(base.iter().copied().chain([("le", le.as_str())]));
                let _ = writeln!(out, "{}_bucket{set} {cumulative}", self.name);
            }
            let set = label_set(base.iter().copied());
            let _ = writeln!(out, "{}_sum{set} {}", self.name, float(h.sum));
            let _ = writeln!(out, "{}_count{set} {cumulative}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_escaped_labels() {
        let c = CounterVec::new("t_total", "Things.", &["function", "outcome"]);
        c.inc(&["a\"b", "ok"]);
        c.inc(&["a\"b", "ok"]);
        c.inc(&["z", "bad\nline"]);
        assert_eq!(c.get(&["a\"b", "ok"]), 2);
        let mut s = String::new();
        c.render(&mut s);
        assert_eq!(
            s,
            "# HELP t_total Things.\n# TYPE t_total counter\n\
             t_total{function=\"a\\\"b\",outcome=\"ok\"} 2\n\
             t_total{function=\"z\",outcome=\"bad\\nline\"} 1\n"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let h = HistogramVec::new("d_seconds", "Durations.", &["function"], &[0.1, 1.0]);
        h.observe(&["f"], 0.05);
        h.observe(&["f"], 0.1);
        h.observe(&["f"], 0.5);
        h.observe(&["f"], 7.0);
        let mut s = String::new();
        h.render(&mut s);
        assert_eq!(
            s,
            "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{function=\"f\",le=\"0.1\"} 2\n\
             d_seconds_bucket{function=\"f\",le=\"1\"} 3\n\
             d_seconds_bucket{function=\"f\",le=\"+Inf\"} 4\n\
             d_seconds_sum{function=\"f\"} 7.65\n\
             d_seconds_count{function=\"f\"} 4\n"
        );
    }

    #[test]
    fn floats_use_prometheus_spelling() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(3.0), "3");
    }
}
