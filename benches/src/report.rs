//! What a run produces: results.json (machine, seed, every scenario's series, values
//! and ratios), one SVG chart per scenario and summary.md (the README's results table).

use crate::machine::Machine;
use crate::stats::Stats;
use crate::svg::{self, Bar, Line};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors writing the results.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Could not write an output file
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// Could not serialise the results
    #[error("cannot serialise results: {0}")]
    Json(#[from] serde_json::Error),
}

/// Whether a scenario produced numbers.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The scenario could not run here; `reason` says why. No number is made up.
    Unavailable,
    /// The scenario hit an error; `reason` holds it.
    Failed,
}

/// One measured series.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub label: String,
    pub unit: String,
    /// A baseline (floor or peer), not Flint.
    pub baseline: bool,
    pub stats: Stats,
}

/// `numerator / denominator`, both named by series label or value key.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub numerator: String,
    pub denominator: String,
    pub value: f64,
}

/// A compact table a scenario adds above its series (one row per case, e.g. per
/// runtime), built from the same samples as its series.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut o = format!("| {} |\n|", self.headers.join(" | "));
        o.push_str(&"---|".repeat(self.headers.len()));
        o.push('\n');
        for r in &self.rows {
            o.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        o
    }
}

/// How a scenario is charted.
#[derive(Debug, Clone, Default)]
pub enum ChartKind {
    /// Bars of every series' median, one panel per unit.
    #[default]
    Bars,
    /// Lines over a log2 x axis.
    Lines {
        x_label: String,
        y_label: String,
        lines: Vec<Line>,
    },
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub reason: Option<String>,
    pub series: Vec<Series>,
    /// Single numbers (counts, extrapolations), by name.
    pub values: BTreeMap<String, f64>,
    pub ratios: Vec<Ratio>,
    pub notes: Vec<String>,
    /// A per-case summary table (rendered above the series in summary.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    /// The chart file next to results.json.
    pub chart: Option<String>,
    #[serde(skip)]
    pub chart_kind: ChartKind,
}

impl Scenario {
    /// An empty, successful scenario.
    pub fn new(id: &str, title: &str) -> Scenario {
        Scenario {
            id: id.into(),
            title: title.into(),
            status: Status::Ok,
            reason: None,
            series: Vec::new(),
            values: BTreeMap::new(),
            ratios: Vec::new(),
            notes: Vec::new(),
            table: None,
            chart: None,
            chart_kind: ChartKind::Bars,
        }
    }

    /// A scenario that could not run, and why.
    pub fn unavailable(id: &str, title: &str, reason: impl Into<String>) -> Scenario {
        let mut s = Scenario::new(id, title);
        s.status = Status::Unavailable;
        s.reason = Some(reason.into());
        s
    }

    /// A scenario that failed with an error.
    pub fn failed(id: &str, title: &str, reason: impl Into<String>) -> Scenario {
        let mut s = Scenario::new(id, title);
        s.status = Status::Failed;
        s.reason = Some(reason.into());
        s
    }

    /// Adds a series from raw samples; returns its median (None when empty).
    pub fn add(&mut self, label: &str, unit: &str, baseline: bool, samples: &[f64]) -> Option<f64> {
        let stats = Stats::of(samples)?;
        self.series.push(Series {
            label: label.into(),
            unit: unit.into(),
            baseline,
            stats,
        });
        Some(stats.p50)
    }

    /// A series' stats by label.
    pub fn stats(&self, label: &str) -> Option<Stats> {
        self.series
            .iter()
            .find(|s| s.label == label)
            .map(|s| s.stats)
    }

    /// Adds `num / den` when both are present and the denominator is not zero.
    pub fn ratio(&mut self, name: &str, num: (&str, Option<f64>), den: (&str, Option<f64>)) {
        if let (Some(n), Some(d)) = (num.1, den.1) {
            if d != 0.0 && n.is_finite() && d.is_finite() {
                self.ratios.push(Ratio {
                    name: name.into(),
                    numerator: num.0.into(),
                    denominator: den.0.into(),
                    value: n / d,
                });
            }
        }
    }

    /// Records a single number.
    pub fn value(&mut self, name: &str, v: f64) {
        self.values.insert(name.into(), v);
    }

    /// Adds a note for the reader.
    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    fn svg(&self) -> String {
        let title = format!("{} ({})", self.title, self.id);
        match &self.chart_kind {
            ChartKind::Lines {
                x_label,
                y_label,
                lines,
            } => svg::line_chart(&title, x_label, y_label, lines),
            ChartKind::Bars => {
                let bars: Vec<Bar> = self
                    .series
                    .iter()
                    .map(|s| Bar {
                        label: s.label.clone(),
                        unit: s.unit.clone(),
                        value: s.stats.p50,
                        ticks: if s.stats.n > 1 {
                            vec![s.stats.p90, s.stats.p99]
                        } else {
                            vec![]
                        },
                        baseline: s.baseline,
                    })
                    .collect();
                svg::bar_chart(&title, &bars)
            }
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Results {
    pub tool: String,
    pub machine: Machine,
    pub seed: u64,
    pub mode: String,
    /// Build profile of flint-bench (release or debug); the agent binaries are its siblings.
    pub profile: String,
    pub command: String,
    pub duration_s: f64,
    pub scenarios: Vec<Scenario>,
}

fn write(path: &Path, body: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, body).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

impl Results {
    /// Writes the charts, results.json and summary.md into `dir` (created if needed).
    pub fn write_to(&mut self, dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        for s in &mut self.scenarios {
            if s.status == Status::Ok {
                let name = format!("{}.svg", s.id);
                write(&dir.join(&name), s.svg().as_bytes())?;
                s.chart = Some(name);
            }
        }
        write(&dir.join("results.json"), &serde_json::to_vec_pretty(self)?)?;
        write(&dir.join("summary.md"), self.markdown().as_bytes())
    }

    /// The results as Markdown tables (machine, then one table per scenario).
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut o = format!(
            "Run {} ({} mode, {} build, seed {}, {:.0} s): `{}`\n\nMachine: {}, {} cores, {} MiB RAM, kernel {}, {}; /dev/kvm: {}.\n",
            m.date, self.mode, self.profile, self.seed, self.duration_s, self.command, m.cpu_model, m.cores,
            m.memory_mib, m.kernel, m.os, m.kvm
        );
        for s in &self.scenarios {
            o.push_str(&format!("\n### {} (`{}`)\n\n", s.title, s.id));
            match (&s.reason, s.status) {
                (Some(r), Status::Failed) => o.push_str(&format!("Failed: {r}\n")),
                (Some(r), _) => o.push_str(&format!("Not available: {r}\n")),
                _ => {}
            }
            if let Some(t) = &s.table {
                o.push_str(&t.markdown());
                o.push('\n');
            }
            if !s.series.is_empty() {
                o.push_str("| series | unit | n | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n");
                for x in &s.series {
                    let t = &x.stats;
                    o.push_str(&format!(
                        "| {}{} | {} | {} | {} | {} | {} | {} |\n",
                        x.label,
                        if x.baseline { " (baseline)" } else { "" },
                        x.unit,
                        t.n,
                        svg::fmt_num(t.p50),
                        svg::fmt_num(t.p90),
                        svg::fmt_num(t.p99),
                        svg::fmt_num(t.max)
                    ));
                }
            }
            if !s.values.is_empty() {
                o.push('\n');
                for (k, v) in &s.values {
                    o.push_str(&format!("- {k}: {}\n", svg::fmt_num(*v)));
                }
            }
            if !s.ratios.is_empty() {
                o.push_str("\n| ratio | value |\n|---|---|\n");
                for r in &s.ratios {
                    o.push_str(&format!(
                        "| {} ({} / {}) | {:.2}x |\n",
                        r.name, r.numerator, r.denominator, r.value
                    ));
                }
            }
            for n in &s.notes {
                o.push_str(&format!("\n> {n}\n"));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_skipped_without_a_denominator() {
        let mut s = Scenario::new("x", "X");
        let a = s.add("flint", "ms", false, &[2.0, 4.0, 6.0]);
        let b = s.add("floor", "ms", true, &[1.0]);
        s.ratio("r", ("flint", a), ("floor", b));
        s.ratio("none", ("flint", a), ("missing", None));
        s.ratio("zero", ("flint", a), ("zero", Some(0.0)));
        assert_eq!(s.ratios.len(), 1);
        assert_eq!(s.ratios[0].value, 4.0);
        assert!(s.add("empty", "ms", false, &[]).is_none());
    }

    #[test]
    fn writes_json_chart_and_summary() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Scenario::new("warm", "Warm");
        s.add("flint", "ms", false, &[1.0, 2.0]);
        s.table = Some(Table {
            headers: vec!["runtime".into(), "p50".into()],
            rows: vec![vec!["node".into(), "9".into()]],
        });
        let mut r = Results {
            tool: "t".into(),
            machine: Machine::detect(),
            seed: 1,
            mode: "quick".into(),
            profile: "debug".into(),
            command: "c".into(),
            duration_s: 1.0,
            scenarios: vec![s, Scenario::unavailable("pool", "Pool", "no pool")],
        };
        r.write_to(dir.path()).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(v["scenarios"][0]["chart"], "warm.svg");
        assert_eq!(v["scenarios"][1]["status"], "unavailable");
        assert!(dir.path().join("warm.svg").is_file());
        assert!(!dir.path().join("pool.svg").exists());
        let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
        assert!(md.contains("Not available: no pool"));
        assert!(
            md.contains("| runtime | p50 |\n|---|---|\n| node | 9 |\n"),
            "{md}"
        );
    }
}
