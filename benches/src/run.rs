//! One run: machine description, the agents, the scenarios in order, the output files.
//! A scenario that fails is recorded as failed (with its error) and the run goes on.

use crate::agent::{Agent, AgentError, StartOptions};
use crate::baseline::Baselines;
use crate::cli::Config;
use crate::echo::EchoServer;
use crate::machine::Machine;
use crate::report::{ReportError, Results, Scenario};
use crate::rng::Rng;
use crate::scenarios::{self, Ctx, ScenarioError};
use std::time::Instant;

/// Errors that stop the whole run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results could not be written
    #[error(transparent)]
    Report(#[from] ReportError),
}

const TITLES: &[(&str, &str)] = &[
    ("cold_empty", "Cold start, empty pool"),
    ("breakdown", "Cold-start breakdown (agent phase timings)"),
    ("warm", "Warm invocation latency"),
    ("throughput", "Throughput by concurrency"),
    ("rest", "REST API warm invoke overhead"),
    ("http", "HTTP function URL vs a plain hyper server"),
    ("events", "Asynchronous invocations: accept and start"),
    ("density", "Density of idle warm instances (128 MB hello)"),
    ("cold_pool", "Cold start, pool hit"),
    (
        "cold_runtimes",
        "Cold start per runtime, empty pool and pool hit",
    ),
    (
        "microvm",
        "microVM: flint-vmm start to first guest instruction",
    ),
    (
        "microvm_snapshot",
        "microVM: snapshot restore vs fresh boot, memory shared between restored VMs",
    ),
    (
        "cost_network",
        "Cost of networking: none vs outbound, same run",
    ),
    (
        "cost_isolation",
        "Cost of isolation: this build vs an earlier one, same run",
    ),
];

fn title(id: &str) -> &'static str {
    TITLES.iter().find(|t| t.0 == id).map_or("", |t| t.1)
}

fn settle(id: &str, r: Result<Scenario, ScenarioError>) -> Scenario {
    r.unwrap_or_else(|e| {
        eprintln!("{id}: failed: {e}");
        Scenario::failed(id, title(id), e.to_string())
    })
}

async fn agent(cfg: &Config, pool_off: bool) -> Result<Agent, AgentError> {
    let warm = if pool_off {
        vec![]
    } else {
        vec!["python3.11:128=2".to_string()]
    };
    agent_with(cfg, pool_off, warm).await
}

async fn agent_with(
    cfg: &Config,
    pool_off: bool,
    pool_warm: Vec<String>,
) -> Result<Agent, AgentError> {
    match &cfg.endpoint {
        Some(ep) => Agent::existing(ep).await,
        None => {
            Agent::start(&StartOptions {
                flintd: cfg.bin_dir.join("flintd"),
                init: cfg.bin_dir.join("flint-init"),
                images_dir: cfg.images_dir.clone(),
                pool_off,
                pool_warm,
                keep_alive_s: 3600,
                extra: Vec::new(),
                own_netns: false,
            })
            .await
        }
    }
}

/// The per-runtime cold starts: a flintd with the pool off and one whose pool keeps a
/// sandbox of each runtime ready, both up while the cases run.
async fn cold_runtimes(cfg: &Config, ctx: &mut Ctx) -> Scenario {
    use scenarios::cold_runtimes as cr;
    let mut cases = crate::runtime_cases::all(&cfg.images_dir);
    if !cfg.runtimes.is_empty() {
        // A label is the runtime's name, with the language after it for `provided`.
        cases.retain(|(label, _)| {
            let name = label.split(' ').next().unwrap_or(label);
            cfg.runtimes.iter().any(|r| r == name)
        });
    }
    let warm = cr::pool_warm(&cases);
    let agents = match agent(cfg, true).await {
        Ok(e) => agent_with(cfg, false, warm).await.map(|p| (e, p)),
        Err(e) => Err(e),
    };
    match agents {
        Err(e) => Scenario::failed(cr::ID, cr::TITLE, e.to_string()),
        Ok((mut e, mut p)) => {
            let r = cr::run(ctx, cases, &e, &p).await;
            e.stop();
            p.stop();
            settle(cr::ID, r)
        }
    }
}

/// Runs every wanted scenario and writes the results into `cfg.out`.
pub async fn run(cfg: Config, command: String) -> Result<Results, RunError> {
    let t0 = Instant::now();
    let machine = Machine::detect();
    let baselines = Baselines::new(&cfg.python, &cfg.images_dir.join("python3.11/rootfs"))
        .map_err(|e| e.to_string());
    let code = crate::agent::hello_bundle().unwrap_or_default();
    let mut ctx = Ctx {
        rng: Rng::new(cfg.seed),
        tag: format!("b{}-{}", cfg.seed, std::process::id()),
        code,
        baselines,
        cold: None,
        cfg: cfg.clone(),
    };
    let mut out = Vec::new();
    let fail_all = |out: &mut Vec<Scenario>, ids: &[&str], why: &str| {
        for id in ids {
            if cfg.wants(id) {
                out.push(Scenario::failed(id, title(id), why.to_string()));
            }
        }
    };

    let main_ids = [
        "cold_empty",
        "breakdown",
        "warm",
        "throughput",
        "rest",
        "http",
        "events",
    ];
    if main_ids.iter().any(|id| cfg.wants(id)) {
        match agent(&cfg, true).await {
            Err(e) => fail_all(&mut out, &main_ids, &e.to_string()),
            Ok(mut a) => {
                if cfg.wants("cold_empty") || cfg.wants("breakdown") {
                    let r = scenarios::cold::empty(&mut ctx, &a).await;
                    let s = settle("cold_empty", r);
                    if cfg.wants("cold_empty") {
                        out.push(s);
                    }
                }
                if cfg.wants("breakdown") {
                    out.push(settle("breakdown", scenarios::breakdown::run(&ctx)));
                }
                if cfg.wants("warm") || cfg.wants("throughput") {
                    match EchoServer::start().await {
                        Err(e) => fail_all(&mut out, &["warm", "throughput"], &e.to_string()),
                        Ok(echo) => {
                            if cfg.wants("warm") {
                                let r = scenarios::warm::run(&mut ctx, &a, &echo).await;
                                out.push(settle("warm", r));
                            }
                            if cfg.wants("throughput") {
                                let r = scenarios::throughput::run(&mut ctx, &a, &echo).await;
                                out.push(settle("throughput", r));
                            }
                        }
                    }
                }
                if cfg.wants("rest") {
                    out.push(settle("rest", scenarios::rest::run(&mut ctx, &a).await));
                }
                if cfg.wants("http") {
                    out.push(settle("http", scenarios::http::run(&mut ctx, &a).await));
                }
                if cfg.wants("events") {
                    out.push(settle("events", scenarios::events::run(&mut ctx, &a).await));
                }
                a.stop();
            }
        }
    }
    if cfg.wants("cold_pool") {
        let s = match agent(&cfg, false).await {
            Err(e) => Scenario::failed("cold_pool", title("cold_pool"), e.to_string()),
            Ok(mut a) => {
                let r = scenarios::cold::pool(&mut ctx, &a).await;
                a.stop();
                settle("cold_pool", r)
            }
        };
        out.push(s);
    }
    if cfg.wants("cold_runtimes") {
        out.push(cold_runtimes(&cfg, &mut ctx).await);
    }
    for id in ["cost_network", "cost_isolation"] {
        if cfg.wants(id) {
            out.push(settle(
                id,
                scenarios::isolation_cost::run(&mut ctx, id).await,
            ));
        }
    }
    if cfg.wants("microvm") {
        out.push(settle("microvm", scenarios::microvm::run(&mut ctx)));
    }
    if cfg.wants("microvm_snapshot") {
        let r = scenarios::microvm_snapshot::run(&mut ctx);
        out.push(settle("microvm_snapshot", r));
    }
    // Last, on a flintd of its own: starting and destroying a thousand instances leaves
    // the host busy for a while, which the scenarios after it would have measured.
    if cfg.wants("density") {
        let s = match agent(&cfg, true).await {
            Err(e) => Scenario::failed("density", title("density"), e.to_string()),
            Ok(mut a) => {
                let r = scenarios::density::run(&mut ctx, &a).await;
                a.stop();
                settle("density", r)
            }
        };
        out.push(s);
    }

    let mut results = Results {
        tool: format!("flint-bench {}", env!("CARGO_PKG_VERSION")),
        machine,
        seed: cfg.seed,
        mode: if cfg.smoke {
            "smoke"
        } else if cfg.quick {
            "quick"
        } else {
            "full"
        }
        .into(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        command,
        duration_s: t0.elapsed().as_secs_f64(),
        scenarios: out,
    };
    results.write_to(&cfg.out)?;
    Ok(results)
}
