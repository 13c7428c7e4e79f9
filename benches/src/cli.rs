//! flint-bench's flags (clap), validated into [`Config`]: the mode's sample counts and
//! limits are decided here, once.

use std::path::PathBuf;
use std::time::Duration;

/// Every scenario, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "cold_empty",
    "breakdown",
    "warm",
    "throughput",
    "rest",
    "http",
    "events",
    "density",
    "cold_pool",
    "cold_runtimes",
    "microvm",
    "microvm_snapshot",
];

/// Scenarios that run only when named in `--only` (or, both, with
/// `--compare-bin-dir`): they need an earlier build, and the network one runs flintd in a
/// network namespace of its own (benches/README.md, "Cost of isolation and networking").
pub const ON_REQUEST: &[&str] = &["cost_network", "cost_isolation"];

/// The runtimes `--runtimes` can name (cold_runtimes' rows; `provided` is both the Go and
/// the Rust function).
pub const RUNTIMES: [&str; 5] = ["python3.11", "nodejs18.x", "ruby3.2", "java17", "provided"];

/// Errors in the flags.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An unknown scenario name was given
    #[error("unknown scenario {0:?}: choose from {list}, {more}", list = SCENARIOS.join(", "), more = ON_REQUEST.join(", "))]
    UnknownScenario(String),
    /// The density budget is zero
    #[error("--density-budget-mb must be at least 1")]
    Budget,
    /// An unknown runtime name was given to --runtimes
    #[error("unknown runtime {0:?} in --runtimes: choose from {list}", list = RUNTIMES.join(", "))]
    UnknownRuntime(String),
    /// The binaries directory could not be found
    #[error("cannot tell where the workspace binaries are: pass --bin-dir")]
    BinDir,
}

/// flint-bench: Flint's benchmark harness.
#[derive(Debug, clap::Parser)]
#[command(name = "flint-bench", version, about)]
pub struct Args {
    /// Quick mode: few samples, small budgets; finishes in under a minute.
    #[arg(long)]
    pub quick: bool,
    /// CI's smoke run: quick mode with the per-runtime and snapshot scenarios cut to
    /// their minimum (one sample per runtime, two restores, a handful of VMs sharing).
    #[arg(long)]
    pub smoke: bool,
    /// Seed for payload contents, function names and measurement order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (default: benches/results/<date>, or <date>-quick).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use this running flintd (Unix socket path or http://HOST:PORT) instead of starting
    /// one. The pool scenarios then see its pool configuration as it is.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Directory holding flintd, flint-init and flint-vmm (default: next to flint-bench).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Runtime images directory.
    #[arg(long, default_value = "/var/lib/flint/images")]
    pub images_dir: PathBuf,
    /// The interpreter that the python3.11 image holds, on the host.
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python: PathBuf,
    /// Density: stop adding instances once host memory use (MemAvailable drop) reaches
    /// this (default: 512 quick, 8192 full).
    #[arg(long)]
    pub density_budget_mb: Option<u64>,
    /// Memory of the functions the warm, throughput and http scenarios invoke, in MB. At
    /// the default, 128, Lambda's CPU share (0.072 vCPU) throttles back-to-back calls;
    /// 1769 (one vCPU) measures Flint's own path without that limit.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub warm_memory_mb: u32,
    /// Memory of the cost_network and cost_isolation scenarios' functions (MB; default
    /// 128). At 128 MB the CPU quota (0.072 vCPU) paces the first invocation; 1769 gives
    /// one vCPU.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub cost_memory_mb: u32,
    /// flintd and flint-init of an earlier build (benches/build-rev.sh) for the
    /// cost_isolation scenario's same-run comparison; turns on cost_network and
    /// cost_isolation.
    #[arg(long, value_name = "DIR")]
    pub compare_bin_dir: Option<PathBuf>,
    /// What to call that build in the results (e.g. its commit).
    #[arg(long, value_name = "LABEL", default_value = "earlier build")]
    pub compare_label: String,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// cold_runtimes: measure only these runtimes (comma-separated names as in the
    /// table: python3.11, nodejs18.x, ruby3.2, java17, provided); default all.
    #[arg(long, value_delimiter = ',')]
    pub runtimes: Vec<String>,
    /// Internal: serve the echo baseline on this Unix socket.
    #[arg(long, hide = true)]
    pub echo_server: Option<PathBuf>,
}

/// Sample counts and limits of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    /// CI's smoke run (quick, with the heaviest scenarios cut down).
    pub smoke: bool,
    pub seed: u64,
    pub out: PathBuf,
    pub endpoint: Option<String>,
    pub bin_dir: PathBuf,
    pub images_dir: PathBuf,
    pub python: PathBuf,
    pub scenarios: Vec<String>,
    /// The earlier build to compare with, and its label.
    pub compare: Option<(PathBuf, String)>,
    /// Memory of the warm, throughput and http scenarios' functions (MB).
    pub warm_memory_mb: u32,
    /// Memory of the cost scenarios' functions (MB).
    pub cost_memory_mb: u32,
    /// Empty-pool cold starts (and each process baseline's samples).
    pub cold_samples: usize,
    /// Pool-hit cold starts.
    pub pool_samples: usize,
    /// Warm invocations per payload size: (bytes, count).
    pub warm: Vec<(usize, usize)>,
    pub throughput_levels: Vec<usize>,
    pub throughput_window: Duration,
    pub density_budget_mb: u64,
    pub density_time_cap: Duration,
    pub density_peers: usize,
    pub vmm_runs: usize,
    /// cold_runtimes: samples of each kind (empty pool, pool hit, floor) per runtime.
    pub runtime_samples: usize,
    /// cold_runtimes: the runtimes to measure (empty: all).
    pub runtimes: Vec<String>,
    /// microvm_snapshot: fresh boots and restores (each) of the counting guest.
    pub snapshot_runs: usize,
    /// microvm_snapshot: VMs run at once for the shared-memory measurement.
    pub share_vms: usize,
}

impl Config {
    /// Whether `name` is to run.
    pub fn wants(&self, name: &str) -> bool {
        self.scenarios.iter().any(|s| s == name)
    }
}

impl TryFrom<Args> for Config {
    type Error = CliError;

    fn try_from(a: Args) -> Result<Config, CliError> {
        for s in &a.only {
            if !SCENARIOS.contains(&s.as_str()) && !ON_REQUEST.contains(&s.as_str()) {
                return Err(CliError::UnknownScenario(s.clone()));
            }
        }
        if let Some(r) = a.runtimes.iter().find(|r| !RUNTIMES.contains(&r.as_str())) {
            return Err(CliError::UnknownRuntime(r.clone()));
        }
        let mut scenarios: Vec<String> = if a.only.is_empty() {
            SCENARIOS.iter().map(|s| s.to_string()).collect()
        } else {
            a.only.clone()
        };
        if a.compare_bin_dir.is_some() {
            for s in ON_REQUEST {
                if !scenarios.iter().any(|x| x == s) {
                    scenarios.push(s.to_string());
                }
            }
        }
        let bin_dir = match a.bin_dir {
            Some(d) => d,
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(PathBuf::from))
                .ok_or(CliError::BinDir)?,
        };
        let budget = a
            .density_budget_mb
            .unwrap_or(if a.quick || a.smoke { 512 } else { 8192 });
        if budget == 0 {
            return Err(CliError::Budget);
        }
        let out = a.out.unwrap_or_else(|| {
            let day = crate::machine::today();
            let name = if a.quick || a.smoke {
                format!("{day}-quick")
            } else {
                day
            };
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("results")
                .join(name)
        });
        let q = a.quick || a.smoke;
        let (smoke, full) = (a.smoke, !q);
        Ok(Config {
            quick: q,
            smoke,
            warm_memory_mb: a.warm_memory_mb,
            cost_memory_mb: a.cost_memory_mb,
            seed: a.seed,
            out,
            endpoint: a.endpoint,
            bin_dir,
            images_dir: a.images_dir,
            python: a.python,
            scenarios,
            compare: a.compare_bin_dir.map(|d| (d, a.compare_label)),
            cold_samples: if q { 5 } else { 100 },
            pool_samples: if q { 3 } else { 100 },
            warm: if q {
                vec![(0, 200), (1024, 200), (1 << 20, 20)]
            } else {
                vec![(0, 2000), (1024, 2000), (1 << 20, 200)]
            },
            throughput_levels: if q {
                vec![1, 2, 4, 8]
            } else {
                (0..=8).map(|i| 1 << i).collect()
            },
            throughput_window: Duration::from_millis(if q { 400 } else { 3000 }),
            density_budget_mb: budget,
            density_time_cap: Duration::from_secs(if q { 15 } else { 900 }),
            density_peers: if q { 8 } else { 50 },
            vmm_runs: if q { 5 } else { 20 },
            runtime_samples: if smoke {
                1
            } else if full {
                30
            } else {
                5
            },
            runtimes: a.runtimes,
            snapshot_runs: if smoke {
                2
            } else if full {
                20
            } else {
                5
            },
            share_vms: if smoke {
                4
            } else if full {
                100
            } else {
                20
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<Config, CliError> {
        Config::try_from(Args::parse_from([&["flint-bench"], args].concat()))
    }

    #[test]
    fn quick_mode_is_smaller_than_full() {
        let q = cfg(&["--quick"]).unwrap();
        let f = cfg(&[]).unwrap();
        assert!(q.cold_samples < f.cold_samples);
        assert_eq!(q.density_budget_mb, 512);
        assert_eq!(f.density_budget_mb, 8192);
        assert_eq!(f.throughput_levels.last(), Some(&256));
        assert!(q
            .out
            .ends_with(format!("{}-quick", crate::machine::today())));
        assert_eq!(q.scenarios.len(), SCENARIOS.len());
        let s = cfg(&["--smoke"]).unwrap();
        assert!(s.quick, "smoke is quick mode");
        assert!(s.runtime_samples < q.runtime_samples && q.runtime_samples < f.runtime_samples);
        assert!(s.share_vms < q.share_vms && q.share_vms < f.share_vms);
        assert_eq!(f.share_vms, 100);
    }

    #[test]
    fn only_takes_known_scenarios() {
        let c = cfg(&["--only", "warm,microvm"]).unwrap();
        assert!(c.wants("warm") && c.wants("microvm") && !c.wants("density"));
        assert!(matches!(
            cfg(&["--only", "nope"]),
            Err(CliError::UnknownScenario(_))
        ));
        let c = cfg(&["--runtimes", "java17,provided"]).unwrap();
        assert_eq!(c.runtimes, ["java17", "provided"]);
        assert!(matches!(
            cfg(&["--runtimes", "java17,jav"]),
            Err(CliError::UnknownRuntime(r)) if r == "jav"
        ));
        assert!(matches!(
            cfg(&["--density-budget-mb", "0"]),
            Err(CliError::Budget)
        ));
    }
}
