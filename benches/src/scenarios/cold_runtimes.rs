//! Per-runtime cold starts: for every runtime the images provide (and `provided` with a Go
//! and a Rust binary), the first invocation of a new hello function with the warm pool off
//! (empty pool) and with a pool sandbox ready (pool hit: only samples whose timings say
//! `pool_hit` count): for runtimes whose runtime.json says `prestart` the runtime is already
//! started in it; for `provided` (the function's own `bootstrap`) it holds flint-init, and
//! the bootstrap starts at hand-over. Floor: the runtime's bare start in bubblewrap on the same image, interleaved
//! with the cold starts in a seeded order so host noise hits both.

use super::{ms, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::progress::Progress;
use crate::report::{Scenario, Status, Table};
use crate::runtime_cases::{Case, CaseError, MEMORY_MB};
use crate::svg::fmt_num;
use flint_proto::v1::Capacity;
use std::time::{Duration, Instant};

pub const ID: &str = "cold_runtimes";
pub const TITLE: &str = "Cold start per runtime, empty pool and pool hit";

/// How long to wait for a runtime's pool sandbox (a JVM takes a while on a loaded host).
const POOL_WAIT: Duration = Duration::from_secs(60);
const EVENT: &[u8] = b"{}";

#[derive(Clone, Copy)]
enum Step {
    Empty,
    PoolHit,
    Floor,
}

/// `--pool-warm` values for the pool flintd: one ready sandbox per runtime.
pub fn pool_warm(cases: &[(&str, Result<Case, CaseError>)]) -> Vec<String> {
    let mut v: Vec<String> = cases
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .map(|c| format!("{}:{MEMORY_MB}=1", c.runtime))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn ready(cap: &Capacity, runtime: &str) -> u32 {
    cap.pools
        .iter()
        .filter(|p| p.runtime == runtime && p.memory_mb == MEMORY_MB)
        .map(|p| p.ready)
        .sum()
}

/// Waits until the pool holds a ready sandbox of `runtime`; false after [`POOL_WAIT`].
async fn await_ready(
    c: &flint_agent::client::Client,
    runtime: &str,
) -> Result<bool, ScenarioError> {
    let t0 = Instant::now();
    while ready(&agent::capacity(c).await?, runtime) == 0 {
        if t0.elapsed() > POOL_WAIT {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(true)
}

/// One runtime's samples (ms).
#[derive(Default)]
struct Samples {
    empty: Vec<f64>,
    hit: Vec<f64>,
    floor: Vec<f64>,
    /// Empty-pool samples that were pool hits, pool samples that missed.
    stray: usize,
}

async fn measure(
    ctx: &mut Ctx,
    case: &Case,
    (empty, pool): (&Agent, &Agent),
    p: &mut Progress,
) -> Result<Samples, ScenarioError> {
    let n = ctx.cfg.runtime_samples;
    let mut steps: Vec<Step> = [(Step::Empty, n), (Step::PoolHit, n), (Step::Floor, n)]
        .iter()
        .flat_map(|(s, k)| std::iter::repeat_n(*s, *k))
        .collect();
    ctx.rng.shuffle(&mut steps);
    let mut ce = empty.client().await?;
    let mut cp = pool.client().await?;
    let mut s = Samples::default();
    for (i, step) in steps.into_iter().enumerate() {
        // No sample shares the CPU with a pool refill (agent::wait_settled).
        agent::wait_settled(&[&cp], POOL_WAIT).await?;
        match step {
            Step::Empty => {
                let name = ctx.name(&format!("rt-{}", slug(case.label)), i);
                agent::deploy_on(
                    &mut ce,
                    &name,
                    (case.runtime, case.handler),
                    &case.code,
                    MEMORY_MB,
                )
                .await?;
                let (dt, r) = agent::invoke(&mut ce, &name, EVENT).await?;
                let t = r.timings.unwrap_or_default();
                if !t.cold_start {
                    return Err(ScenarioError::Unexpected(format!(
                        "first invocation of new function {name} was not a cold start"
                    )));
                }
                if t.pool_hit {
                    s.stray += 1;
                } else {
                    s.empty.push(ms(dt));
                }
            }
            Step::PoolHit => {
                if !await_ready(&cp, case.runtime).await? {
                    return Err(ScenarioError::Unexpected(format!(
                        "Node.GetCapacity showed no ready pool sandbox for ({}, {MEMORY_MB} MB) \
                         within {POOL_WAIT:?}: the pool is off or not filling",
                        case.runtime
                    )));
                }
                let name = ctx.name(&format!("rtpool-{}", slug(case.label)), i);
                agent::deploy_on(
                    &mut cp,
                    &name,
                    (case.runtime, case.handler),
                    &case.code,
                    MEMORY_MB,
                )
                .await?;
                let (dt, r) = agent::invoke(&mut cp, &name, EVENT).await?;
                let t = r.timings.unwrap_or_default();
                if t.cold_start && t.pool_hit {
                    s.hit.push(ms(dt));
                } else {
                    s.stray += 1;
                }
                // Let the pool refill now, not during the next sample.
                await_ready(&cp, case.runtime).await?;
            }
            Step::Floor => {
                let f = case
                    .floor()
                    .map_err(|e| ScenarioError::Unexpected(e.to_string()))?;
                s.floor.push(ms(f));
            }
        }
        p.inc(case.label);
    }
    Ok(s)
}

fn slug(label: &str) -> String {
    label
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '.' | ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// Runs every case against `empty` (flintd with the pool off) and `pool` (flintd with a
/// ready sandbox per runtime).
pub async fn run(
    ctx: &mut Ctx,
    cases: Vec<(&'static str, Result<Case, CaseError>)>,
    empty: &Agent,
    pool: &Agent,
) -> Result<Scenario, ScenarioError> {
    let mut s = Scenario::new(ID, TITLE);
    let n = ctx.cfg.runtime_samples;
    let steps: usize = cases
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .map(|_| 3 * n)
        .sum();
    let mut p = Progress::new(ID, steps as u64);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let dash = || "-".to_string();
    for (label, case) in &cases {
        let case = match case {
            Ok(c) => c,
            Err(e) => {
                s.note(format!("{label}: not measured: {e}"));
                rows.push(vec![
                    label.to_string(),
                    dash(),
                    "not measured".into(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                ]);
                continue;
            }
        };
        let m = match measure(ctx, case, (empty, pool), &mut p).await {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                rows.push(vec![
                    label.to_string(),
                    case.prestart.to_string(),
                    "failed".into(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                ]);
                continue;
            }
        };
        let e = s.add(&format!("{label} empty pool"), "ms", false, &m.empty);
        let h = s.add(&format!("{label} pool hit"), "ms", false, &m.hit);
        let floor_label = format!("{label} floor: {}", case.floor.label);
        let f = s.add(&floor_label, "ms", true, &m.floor);
        s.ratio(
            &format!("{label}: empty pool / floor (p50)"),
            ("empty pool", e),
            ("floor", f),
        );
        s.ratio(
            &format!("{label}: pool hit / floor (p50)"),
            ("pool hit", h),
            ("floor", f),
        );
        s.ratio(
            &format!("{label}: pool hit / empty pool (p50)"),
            ("pool hit", h),
            ("empty pool", e),
        );
        if m.stray > 0 {
            s.note(format!(
                "{label}: {} sample(s) left out (an empty-pool start served by a pool, or a pool start that missed)",
                m.stray
            ));
        }
        if !case.prestart {
            s.note(format!(
                "{label}: runtime.json has no \"prestart\": true: its pool sandbox holds \
                 flint-init only, and the bootstrap starts at hand-over"
            ));
        }
        let st = |l: &str| s.stats(l);
        let cell = |x: Option<f64>| x.map_or_else(dash, fmt_num);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => dash(),
        };
        let es = st(&format!("{label} empty pool"));
        let hs = st(&format!("{label} pool hit"));
        rows.push(vec![
            label.to_string(),
            case.prestart.to_string(),
            cell(es.map(|x| x.p50)),
            cell(es.map(|x| x.p99)),
            cell(hs.map(|x| x.p50)),
            cell(hs.map(|x| x.p99)),
            cell(f),
            ratio(e, f),
            ratio(h, f),
        ]);
    }
    p.finish("done");
    s.table = Some(Table {
        headers: [
            "runtime",
            "prestart",
            "empty pool p50 (ms)",
            "empty pool p99 (ms)",
            "pool hit p50 (ms)",
            "pool hit p99 (ms)",
            "floor p50 (ms)",
            "empty / floor",
            "pool hit / floor",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    s.note(format!(
        "{n} sample(s) of each per runtime; functions of {MEMORY_MB} MB (one vCPU: the first \
         invocation is not paced by the CPU share of small sizes); the floors run in \
         bwrap --unshare-all on the runtime's own image; quick mode has few samples: read p99 \
         as the largest sample"
    ));
    s.note(if empty.pool_off {
        "empty pool: flintd with --pool-max 0; pool hit: a second flintd with --pool-warm RUNTIME:1769=1 per runtime, refilled before the next sample"
    } else {
        "flintd has no --pool-max flag; empty-pool samples were checked to be cold starts without a pool hit"
    });
    if !failures.is_empty() {
        s.status = Status::Failed;
        s.reason = Some(failures.join("; "));
    }
    Ok(s)
}
