//! Cold starts: the first invocation of a new function with no warm instance, with the
//! warm pool off (empty pool) and with a generic sandbox ready in the pool (pool hit).
//! Baselines, interleaved in a seeded order: `python3 -c pass` on the host, the same in
//! bubblewrap, and the hello handler cold in bubblewrap (the peer sandbox).

use super::{ms, ColdData, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::progress::Progress;
use crate::report::Scenario;
use flint_proto::v1::Capacity;
use std::time::{Duration, Instant};

/// How long to wait for the pool to have a sandbox ready.
const POOL_WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
enum Step {
    Flint,
    PythonPass,
    BwrapPass,
    BwrapHello,
}

/// Runs `n` of each step in a seeded random order.
fn plan(ctx: &mut Ctx, n: usize, steps: &[Step]) -> Vec<Step> {
    let mut v: Vec<Step> = steps
        .iter()
        .flat_map(|s| std::iter::repeat_n(*s, n))
        .collect();
    ctx.rng.shuffle(&mut v);
    v
}

fn add_baselines(s: &mut Scenario, d: &ColdData) {
    s.add("python3 -c pass (host)", "ms", true, &d.python_pass_ms);
    s.add("bwrap python3 -c pass", "ms", true, &d.bwrap_pass_ms);
    s.add(
        "bwrap hello handler (peer sandbox)",
        "ms",
        true,
        &d.bwrap_hello_ms,
    );
}

/// Empty-pool cold starts: each sample deploys a new function and invokes it once.
pub async fn empty(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let title = "Cold start, empty pool";
    let n = ctx.cfg.cold_samples;
    let steps = plan(
        ctx,
        n,
        &[
            Step::Flint,
            Step::PythonPass,
            Step::BwrapPass,
            Step::BwrapHello,
        ],
    );
    let mut c = agent.client().await?;
    let mut d = ColdData::default();
    let mut pool_hits = 0usize;
    let mut p = Progress::new("cold_empty", steps.len() as u64);
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Flint => {
                let name = ctx.name("cold", i);
                agent::deploy(&mut c, &name, &ctx.code).await?;
                let (dt, r) = agent::invoke(&mut c, &name, b"").await?;
                let t = r.timings.unwrap_or_default();
                if !t.cold_start {
                    return Err(ScenarioError::Unexpected(format!(
                        "first invocation of new function {name} was not a cold start"
                    )));
                }
                if t.pool_hit {
                    pool_hits += 1;
                } else {
                    d.samples.push((ms(dt), t));
                }
            }
            Step::PythonPass => d.python_pass_ms.push(ms(ctx.baselines()?.python_pass()?)),
            Step::BwrapPass => d.bwrap_pass_ms.push(ms(ctx.baselines()?.bwrap_pass()?)),
            Step::BwrapHello => d.bwrap_hello_ms.push(ms(ctx.baselines()?.bwrap_hello()?)),
        }
        p.inc("");
    }
    p.finish("done");
    let mut s = Scenario::new("cold_empty", title);
    if pool_hits > 0 {
        s.note(format!(
            "{pool_hits} of {n} cold starts were served from a warm pool (this flintd has no \
             --pool-max flag to turn it off) and are left out"
        ));
    }
    let flint: Vec<f64> = d.samples.iter().map(|x| x.0).collect();
    let f = s.add(
        "flint cold start (client-observed Invoke)",
        "ms",
        false,
        &flint,
    );
    if f.is_none() {
        return Err(ScenarioError::Unexpected(
            "no empty-pool cold start was measured: every one was a pool hit".into(),
        ));
    }
    add_baselines(&mut s, &d);
    let py = s.stats("python3 -c pass (host)").map(|x| x.p50);
    let peer = s.stats("bwrap hello handler (peer sandbox)").map(|x| x.p50);
    s.ratio(
        "flint / python floor (p50)",
        ("flint", f),
        ("python3 -c pass", py),
    );
    s.ratio(
        "flint / bwrap peer (p50)",
        ("flint", f),
        ("bwrap hello", peer),
    );
    s.note(if agent.pool_off {
        "flintd ran with --pool-max 0 (no warm pool)"
    } else {
        "flintd has no --pool-max flag; every sample was checked to be a cold start without a pool hit"
    });
    ctx.cold = Some(d);
    Ok(s)
}

fn ready(cap: &Capacity) -> u32 {
    cap.pools
        .iter()
        .filter(|p| p.runtime == "python3.11" && p.memory_mb == 128)
        .map(|p| p.ready)
        .sum()
}

/// Pool-hit cold starts: wait for a ready (python3.11, 128 MB) pool sandbox, then
/// deploy a new function and invoke it once.
pub async fn pool(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let (id, title) = ("cold_pool", "Cold start, pool hit");
    let mut c = agent.client().await?;
    match agent::capacity(&c).await {
        Ok(_) => {}
        Err(agent::AgentError::Rpc { status, .. })
            if status.code() == tonic::Code::Unimplemented =>
        {
            return Ok(Scenario::unavailable(
                id,
                title,
                "flintd does not implement flint.v1.Node/GetCapacity yet (UNIMPLEMENTED): a \
                 ready pool sandbox cannot be observed, so no pool-hit number is reported",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let n = ctx.cfg.pool_samples;
    let steps = plan(ctx, n, &[Step::Flint, Step::PythonPass, Step::BwrapHello]);
    let mut hits = Vec::new();
    let mut misses = 0usize;
    let mut py = Vec::new();
    let mut peer = Vec::new();
    let mut p = Progress::new(id, steps.len() as u64);
    for (i, step) in steps.into_iter().enumerate() {
        // No sample (the baselines' included) shares the CPU with the refill the
        // previous hit set off (agent::wait_settled).
        agent::wait_settled(&[&c], POOL_WAIT).await?;
        match step {
            Step::Flint => {
                let t0 = Instant::now();
                while ready(&agent::capacity(&c).await?) == 0 {
                    if t0.elapsed() > POOL_WAIT {
                        return Ok(Scenario::unavailable(
                            id,
                            title,
                            format!(
                                "Node.GetCapacity showed no ready pool sandbox for (python3.11, \
                                 128 MB) within {POOL_WAIT:?}: the pool is off or not filling"
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let name = ctx.name("pool", i);
                agent::deploy(&mut c, &name, &ctx.code).await?;
                let (dt, r) = agent::invoke(&mut c, &name, b"").await?;
                let t = r.timings.unwrap_or_default();
                if t.cold_start && t.pool_hit {
                    hits.push(ms(dt));
                } else {
                    misses += 1;
                }
            }
            Step::PythonPass => py.push(ms(ctx.baselines()?.python_pass()?)),
            Step::BwrapHello => peer.push(ms(ctx.baselines()?.bwrap_hello()?)),
            Step::BwrapPass => {}
        }
        p.inc("");
    }
    p.finish("done");
    let mut s = Scenario::new(id, title);
    let f = s.add(
        "flint cold start, pool hit (client-observed)",
        "ms",
        false,
        &hits,
    );
    if f.is_none() {
        return Ok(Scenario::unavailable(
            id,
            title,
            format!(
                "a pool sandbox was ready each time, but none of the {n} first invocations \
                 reported pool_hit in its timings"
            ),
        ));
    }
    if misses > 0 {
        s.note(format!(
            "{misses} of {n} first invocations missed the pool and are left out"
        ));
    }
    let pyp = s.add("python3 -c pass (host)", "ms", true, &py);
    let peerp = s.add("bwrap hello handler (peer sandbox)", "ms", true, &peer);
    s.ratio(
        "pool hit / python floor (p50)",
        ("flint pool hit", f),
        ("python3 -c pass", pyp),
    );
    s.ratio(
        "pool hit / bwrap peer (p50)",
        ("flint pool hit", f),
        ("bwrap hello", peerp),
    );
    let empty = ctx
        .cold
        .as_ref()
        .and_then(|d| crate::stats::median(&d.samples.iter().map(|x| x.0).collect::<Vec<_>>()));
    s.ratio(
        "pool hit / empty-pool cold start (p50)",
        ("flint pool hit", f),
        ("flint empty pool", empty),
    );
    Ok(s)
}
