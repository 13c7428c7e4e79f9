//! HTTP function URLs: one warm function (the hello handler, which returns its event:
//! a 200 application/json answer of about 1 KB) behind an HTTP trigger on flintd's
//! `--http-listen`, against a plain hyper server answering the same bytes, in the same
//! run. Latency: requests one at a time on one keep-alive connection, alternating
//! between the two; throughput: 4 keep-alive clients at once, requests per second.

use super::{Ctx, ScenarioError};
use crate::agent::{self, Agent};
use crate::http::{load, Baseline, HttpClient};
use crate::progress::Progress;
use crate::report::Scenario;
use flint_proto::v1::{create_trigger_request, CreateTriggerRequest, HttpSpec};
use std::time::Instant;

/// Concurrent clients of the throughput part.
const CLIENTS: usize = 4;

fn err(e: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Unexpected(e.to_string())
}

/// Measures function URL latency and throughput against the baseline.
pub async fn run(ctx: &mut Ctx, agent: &Agent) -> Result<Scenario, ScenarioError> {
    let addr = agent.http.clone().ok_or_else(|| {
        ScenarioError::Unexpected(
            "this flintd serves no function URLs (no --http-listen, or an --endpoint agent)".into(),
        )
    })?;
    let mut c = agent.client().await?;
    let name = ctx.name("http", 0);
    agent::deploy_sized(&mut c, &name, &ctx.code, ctx.cfg.warm_memory_mb).await?;
    c.triggers()
        .create_trigger(CreateTriggerRequest {
            name: name.clone(),
            function_name: name.clone(),
            kind: Some(create_trigger_request::Kind::Http(HttpSpec::default())),
            disabled: false,
        })
        .await
        .map_err(|s| err(format!("create the HTTP trigger: {}", s.message())))?;
    let path = format!("/{name}/bench?q=1");
    let mut url = HttpClient::connect(&addr).map_err(err)?;
    let (status, sample) = tokio::task::block_in_place(|| url.get(&path)).map_err(err)?;
    if status != 200 {
        return Err(err(format!(
            "the function URL answered {status}: {}",
            String::from_utf8_lossy(&sample)
        )));
    }
    let baseline = Baseline::start(sample.clone()).await.map_err(err)?;
    let mut base = HttpClient::connect(&baseline.addr).map_err(err)?;

    let n = if ctx.cfg.quick { 200 } else { 2000 };
    let per_client = if ctx.cfg.quick { 100 } else { 1000 };
    let mut p = Progress::new("http", (2 * n + 2) as u64);
    let (mut via_url, mut via_base) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t0 = Instant::now();
        let (s, body) = tokio::task::block_in_place(|| url.get(&path)).map_err(err)?;
        via_url.push(super::ms(t0.elapsed()));
        if s != 200 || body.len().abs_diff(sample.len()) > 64 {
            return Err(err(format!(
                "function URL answered {s} with {} bytes",
                body.len()
            )));
        }
        p.inc("sequential");
        let t0 = Instant::now();
        tokio::task::block_in_place(|| base.get(&path)).map_err(err)?;
        via_base.push(super::ms(t0.elapsed()));
        p.inc("sequential");
    }
    let mut s = Scenario::new("http", "HTTP function URL vs a plain hyper server");
    let u = s.add("function URL, sequential", "ms", false, &via_url);
    let b = s.add("hyper baseline, sequential", "ms", true, &via_base);
    s.ratio(
        "function URL / baseline p50",
        ("function URL", u),
        ("baseline", b),
    );
    let u99 = s.stats("function URL, sequential").map(|x| x.p99);
    let b99 = s.stats("hyper baseline, sequential").map(|x| x.p99);
    s.ratio(
        "function URL / baseline p99",
        ("function URL", u99),
        ("baseline", b99),
    );

    // One round first, so the 4 clients find 4 warm instances (cold starts are the
    // cold scenarios' business).
    tokio::task::block_in_place(|| load(&addr, &path, CLIENTS, 1)).map_err(err)?;
    let (lat_url, wall_url) =
        tokio::task::block_in_place(|| load(&addr, &path, CLIENTS, per_client)).map_err(err)?;
    p.inc("concurrent");
    let (lat_base, wall_base) =
        tokio::task::block_in_place(|| load(&baseline.addr, &path, CLIENTS, per_client))
            .map_err(err)?;
    p.inc("concurrent");
    p.finish("done");
    s.add(
        &format!("function URL, {CLIENTS} clients"),
        "ms",
        false,
        &lat_url,
    );
    s.add(
        &format!("hyper baseline, {CLIENTS} clients"),
        "ms",
        true,
        &lat_base,
    );
    let rps_url = lat_url.len() as f64 / wall_url;
    let rps_base = lat_base.len() as f64 / wall_base;
    s.value(
        &format!("function URL requests/s, {CLIENTS} clients"),
        rps_url,
    );
    s.value(
        &format!("hyper baseline requests/s, {CLIENTS} clients"),
        rps_base,
    );
    s.ratio(
        "function URL / baseline requests/s",
        ("function URL", Some(rps_url)),
        ("baseline", Some(rps_base)),
    );
    s.note(format!(
        "TCP loopback, HTTP/1.1 keep-alive, GET with a query; the function returns its event ({} B answer), the baseline answers those bytes. Each function URL request is a full invocation (event built, Lambda Runtime API round trip into the sandbox, result mapped). The function has {} MB ({:.3} vCPU).",
        sample.len(),
        ctx.cfg.warm_memory_mb,
        f64::from(ctx.cfg.warm_memory_mb) / 1769.0
    ));
    Ok(s)
}
