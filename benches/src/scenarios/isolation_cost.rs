//! What isolation and networking cost a cold start, measured against the alternative in
//! the same run, samples interleaved in a seeded order:
//!
//! - `cost_network`: one flintd (in a network namespace of its own, so the links and
//!   nftables rules its sandboxes need stay out of the host's), functions with network
//!   `none` and `outbound`: empty-pool cold starts (`--pool-max 0`) and pool hits (the
//!   outbound pool fills on demand after a first outbound start; `none` from
//!   `--pool-warm`).
//! - `cost_isolation`: this build's flintd and flint-init against an earlier build's
//!   (`--compare-bin-dir`, made by `benches/build-rev.sh REV`, e.g. the commit before
//!   the seccomp filter and the per-sandbox user namespace), both running at once,
//!   empty-pool cold starts and pool hits, network `none`.

use super::{ms, ns_ms, Ctx, ScenarioError};
use crate::agent::{self, Agent, StartOptions};
use crate::progress::Progress;
use crate::report::Scenario;
use flint_agent::client::Client;
use flint_proto::v1::CreateFunctionRequest;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait for a side's pool to have a sandbox ready.
const POOL_WAIT: Duration = Duration::from_secs(20);

/// One thing measured: a flintd and the network its functions ask for.
struct Side<'a> {
    label: String,
    agent: &'a Agent,
    network: &'static str,
}

/// Client latency and sandbox phase (create until flint-init's Hello) per sample.
#[derive(Default)]
struct Series {
    total_ms: Vec<f64>,
    sandbox_ms: Vec<f64>,
    /// A pool hit's phases (empty for an empty-pool start): flintd's bind until
    /// Ready, the part of it that was flint-init's Configure until the runtime's first
    /// /next, the invocation itself, and the rest of the client's time (the call,
    /// placement and binding before Configure, the reply).
    bind_ms: Vec<f64>,
    runtime_init_ms: Vec<f64>,
    invoke_ms: Vec<f64>,
    outside_ms: Vec<f64>,
    skipped: usize,
}

fn start_options(bin: &Path, ctx: &Ctx, pool: bool, netns: bool) -> StartOptions {
    StartOptions {
        flintd: bin.join("flintd"),
        init: bin.join("flint-init"),
        images_dir: ctx.cfg.images_dir.clone(),
        pool_off: !pool,
        pool_warm: if pool {
            vec![format!("python3.11:{}=2", ctx.cfg.cost_memory_mb)]
        } else {
            Vec::new()
        },
        keep_alive_s: 3600,
        extra: Vec::new(),
        own_netns: netns,
    }
}

async fn deploy(
    c: &mut Client,
    name: &str,
    code: &[u8],
    network: &str,
    memory_mb: u32,
) -> Result<(), ScenarioError> {
    c.functions
        .create_function(CreateFunctionRequest {
            name: name.into(),
            runtime: "python3.11".into(),
            handler: "app.handler".into(),
            memory_mb,
            timeout_s: 30,
            code_zip: code.to_vec(),
            network: network.into(),
            ..Default::default()
        })
        .await
        .map_err(|e| ScenarioError::Unexpected(format!("create function {name}: {e}")))?;
    Ok(())
}

/// Ready pool sandboxes for (python3.11, `memory_mb`, `network`); an earlier flintd
/// reports no network, which counts as `none`.
async fn ready(c: &Client, network: &str, memory_mb: u32) -> Result<u32, ScenarioError> {
    let cap = agent::capacity(c).await?;
    Ok(cap
        .pools
        .iter()
        .filter(|p| p.runtime == "python3.11" && p.memory_mb == memory_mb)
        .filter(|p| p.network == network || (p.network.is_empty() && network == "none"))
        .map(|p| p.ready)
        .sum())
}

/// `n` first invocations per side, interleaved; with `pool`, each waits for a ready
/// pool sandbox of its side and only pool hits count, else only empty-pool starts.
async fn measure(
    ctx: &mut Ctx,
    id: &str,
    sides: &[Side<'_>],
    n: usize,
    pool: bool,
) -> Result<Vec<Series>, ScenarioError> {
    let mut clients = Vec::new();
    for s in sides {
        clients.push(s.agent.client().await?);
    }
    let mut order: Vec<usize> = (0..sides.len())
        .flat_map(|i| std::iter::repeat_n(i, n))
        .collect();
    ctx.rng.shuffle(&mut order);
    let mut out: Vec<Series> = sides.iter().map(|_| Series::default()).collect();
    let what = if pool { "pool" } else { "cold" };
    let mut p = Progress::new(id, order.len() as u64);
    for (k, i) in order.into_iter().enumerate() {
        // Every side settled: no sample shares the CPU with a pool refill, its own
        // side's or the other's (agent::wait_settled).
        let all: Vec<&Client> = clients.iter().collect();
        agent::wait_settled(&all, POOL_WAIT).await?;
        let c = &mut clients[i];
        if pool {
            let t0 = Instant::now();
            while ready(c, sides[i].network, ctx.cfg.cost_memory_mb).await? == 0 {
                if t0.elapsed() > POOL_WAIT {
                    return Err(ScenarioError::Unexpected(format!(
                        "{}: no ready pool sandbox within {POOL_WAIT:?}",
                        sides[i].label
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let name = ctx.name(&format!("{id}-{what}{i}"), k);
        deploy(
            c,
            &name,
            &ctx.code,
            sides[i].network,
            ctx.cfg.cost_memory_mb,
        )
        .await?;
        let (dt, r) = agent::invoke(c, &name, b"").await?;
        let t = r.timings.unwrap_or_default();
        if t.cold_start && t.pool_hit == pool {
            out[i].total_ms.push(ms(dt));
            out[i].sandbox_ms.push(ns_ms(t.sandbox_ns));
            if pool {
                let (bind, run) = (ns_ms(t.init_duration_ns), ns_ms(t.duration_ns));
                out[i].bind_ms.push(bind);
                out[i].runtime_init_ms.push(ns_ms(t.runtime_init_ns));
                out[i].invoke_ms.push(run);
                out[i].outside_ms.push(ms(dt) - bind - run);
            }
        } else {
            out[i].skipped += 1;
        }
        p.inc("");
    }
    p.finish("done");
    Ok(out)
}

/// Adds each side's series and the difference of every later side's p50 from the
/// first side's.
fn report(s: &mut Scenario, what: &str, sides: &[Side<'_>], series: &[Series]) {
    let mut first: Option<(f64, Option<f64>)> = None;
    for (side, r) in sides.iter().zip(series) {
        let total = s.add(
            &format!("{what}, {} (client)", side.label),
            "ms",
            false,
            &r.total_ms,
        );
        // A pool hit has no sandbox phase of its own (0 in its timings).
        let sandbox = if r.sandbox_ms.iter().any(|x| *x > 0.0) {
            s.add(
                &format!("{what}, {}: sandbox phase", side.label),
                "ms",
                false,
                &r.sandbox_ms,
            )
        } else {
            None
        };
        for (phase, v) in [
            ("bind until Ready", &r.bind_ms),
            (
                "of which flint-init's Configure until the first /next",
                &r.runtime_init_ms,
            ),
            ("the invocation (Duration)", &r.invoke_ms),
            (
                "the rest of the client's time (call, placement, reply)",
                &r.outside_ms,
            ),
        ] {
            if !v.is_empty() {
                s.add(&format!("{what}, {}: {phase}", side.label), "ms", false, v);
            }
        }
        if r.skipped > 0 {
            s.note(format!(
                "{what}, {}: {} samples were not the kind measured (pool hit or miss) and are left out",
                side.label, r.skipped
            ));
        }
        match (first, total) {
            (None, Some(t)) => first = Some((t, sandbox)),
            (Some((t0, sb0)), Some(t)) => {
                s.value(
                    &format!("{what}: {} - {} p50 (ms)", side.label, sides[0].label),
                    t - t0,
                );
                if let (Some(a), Some(b)) = (sandbox, sb0) {
                    s.value(
                        &format!(
                            "{what}: sandbox phase, {} - {} p50 (ms)",
                            side.label, sides[0].label
                        ),
                        a - b,
                    );
                }
                s.ratio(
                    &format!("{what} (p50)"),
                    (&side.label, Some(t)),
                    (&sides[0].label, Some(t0)),
                );
            }
            _ => {}
        }
    }
}

fn phase(pool: bool) -> &'static str {
    if pool {
        "pool hit"
    } else {
        "empty-pool cold start"
    }
}

/// Runs `cost_network` or `cost_isolation`.
pub async fn run(ctx: &mut Ctx, id: &str) -> Result<Scenario, ScenarioError> {
    let title = if id == "cost_network" {
        "Cost of networking: none vs outbound, same run"
    } else {
        "Cost of isolation: this build vs an earlier one, same run"
    };
    if ctx.cfg.endpoint.is_some() {
        return Ok(Scenario::unavailable(
            id,
            title,
            "needs flintds that flint-bench starts itself (not --endpoint)",
        ));
    }
    let n = ctx.cfg.cold_samples.max(ctx.cfg.pool_samples);
    let here = ctx.cfg.bin_dir.clone();
    let mut s = Scenario::new(id, title);
    if id == "cost_network" {
        for pool in [false, true] {
            let mut a = Agent::start(&start_options(&here, ctx, pool, true)).await?;
            let sides = [
                Side {
                    label: "network none".into(),
                    agent: &a,
                    network: "none",
                },
                Side {
                    label: "network outbound".into(),
                    agent: &a,
                    network: "outbound",
                },
            ];
            if pool {
                // The outbound pool is filled on demand: one outbound start asks for it.
                let mut c = a.client().await?;
                let name = ctx.name(&format!("{id}-prime"), 0);
                deploy(&mut c, &name, &ctx.code, "outbound", ctx.cfg.cost_memory_mb).await?;
                agent::invoke(&mut c, &name, b"").await?;
            }
            let what = phase(pool);
            let r = measure(ctx, id, &sides, n, pool)
                .await
                .map(|r| report(&mut s, what, &sides, &r));
            a.stop();
            r?;
        }
        s.note(format!("flintd ran in a network namespace of its own (loopback only): outbound sandboxes get their link, addresses and nftables rules there; no traffic is sent; functions of {} MB (--cost-memory-mb)", ctx.cfg.cost_memory_mb));
        return Ok(s);
    }
    let Some((earlier, label)) = ctx.cfg.compare.clone() else {
        return Ok(Scenario::unavailable(
            id,
            title,
            "needs --compare-bin-dir (benches/run.sh --compare-rev REV builds it)",
        ));
    };
    for pool in [false, true] {
        let mut a = Agent::start(&start_options(&here, ctx, pool, false)).await?;
        let mut b = Agent::start(&start_options(&earlier, ctx, pool, false)).await?;
        let sides = [
            Side {
                label: label.clone(),
                agent: &b,
                network: "none",
            },
            Side {
                label: "this build".into(),
                agent: &a,
                network: "none",
            },
        ];
        let what = phase(pool);
        let r = measure(ctx, id, &sides, n, pool)
            .await
            .map(|r| report(&mut s, what, &sides, &r));
        a.stop();
        b.stop();
        r?;
    }
    s.note(format!(
        "both flintds ran at once on the same host, samples alternated in a seeded order; \
         {label}'s flintd and flint-init from {}; functions of {} MB (--cost-memory-mb)",
        earlier.display(),
        ctx.cfg.cost_memory_mb
    ));
    Ok(s)
}
