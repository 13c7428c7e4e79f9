//! Warm invocation latency: one function kept warm, N sequential invocations per payload
//! size (0 B, 1 KB, 1 MB of JSON echoed back), against the raw tonic echo over the same
//! kind of Unix socket with the same messages and payloads.

use super::{ms, Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::echo::EchoServer;
use crate::progress::Progress;
use crate::report::Scenario;
use flint_proto::v1::{InvocationType, InvokeRequest, LogType};
use std::time::Instant;

fn size_label(bytes: usize) -> String {
    match bytes {
        0 => "0 B".into(),
        b if b >= 1 << 20 => format!("{} MB", b >> 20),
        b => format!("{} KB", b >> 10),
    }
}

/// Measures warm latency at every payload size.
pub async fn run(
    ctx: &mut Ctx,
    agent: &Agent,
    echo: &EchoServer,
) -> Result<Scenario, ScenarioError> {
    let mut c = agent.client().await?;
    let mut e = echo.client().await?;
    let name = ctx.name("warm", 0);
    agent::deploy_sized(&mut c, &name, &ctx.code, ctx.cfg.warm_memory_mb).await?;
    agent::invoke(&mut c, &name, b"").await?;
    let total: usize = ctx.cfg.warm.iter().map(|(_, n)| 2 * n).sum();
    let mut p = Progress::new("warm", total as u64);
    let mut s = Scenario::new("warm", "Warm invocation latency");
    let mut colds = 0usize;
    for &(size, n) in &ctx.cfg.warm.clone() {
        let payload = ctx.rng.json_payload(size);
        let label = size_label(size);
        let mut flint = Vec::with_capacity(n);
        let mut raw = Vec::with_capacity(n);
        for _ in 0..n {
            let (dt, r) = agent::invoke(&mut c, &name, &payload).await?;
            if r.payload.len() != payload.len().max(2) {
                return Err(ScenarioError::Unexpected(format!(
                    "warm invoke echoed {} bytes for a {}-byte payload",
                    r.payload.len(),
                    payload.len()
                )));
            }
            colds += usize::from(r.timings.is_some_and(|t| t.cold_start));
            flint.push(ms(dt));
            p.inc(&label);
        }
        for _ in 0..n {
            let req = InvokeRequest {
                function_name: name.clone(),
                invocation_type: InvocationType::RequestResponse as i32,
                log_type: LogType::LogNone as i32,
                payload: payload.clone(),
                client_context: String::new(),
            };
            let t0 = Instant::now();
            let r = e
                .invocations
                .invoke(req)
                .await
                .map_err(|st| ScenarioError::Unexpected(format!("echo baseline: {st}")))?;
            raw.push(ms(t0.elapsed()));
            if r.get_ref().payload.len() != payload.len() {
                return Err(ScenarioError::Unexpected(
                    "echo returned another payload".into(),
                ));
            }
            p.inc(&label);
        }
        let f = s.add(&format!("flint warm invoke, {label}"), "ms", false, &flint);
        let b = s.add(&format!("tonic echo, {label}"), "ms", true, &raw);
        s.ratio(
            &format!("flint / echo p50, {label}"),
            ("flint", f),
            ("echo", b),
        );
        let f99 = s
            .stats(&format!("flint warm invoke, {label}"))
            .map(|x| x.p99);
        let b99 = s.stats(&format!("tonic echo, {label}")).map(|x| x.p99);
        s.ratio(
            &format!("flint / echo p99, {label}"),
            ("flint", f99),
            ("echo", b99),
        );
    }
    p.finish("done");
    if colds > 0 {
        s.note(format!(
            "{colds} of the measured invocations were cold starts (an instance was lost)"
        ));
    }
    s.value("cold starts among warm samples", colds as f64);
    s.note(format!(
        "the function has {} MB, so Lambda's CPU share of {:.3} vCPU",
        ctx.cfg.warm_memory_mb,
        f64::from(ctx.cfg.warm_memory_mb) / 1769.0
    ));
    Ok(s)
}
