//! flintd: Flint's host agent.

use clap::Parser;
use flint_agent::config::{Config, LogFormat, RawConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("flintd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = flint_agent::config_file::expand(std::env::args_os().collect())?;
    let raw = RawConfig::parse_from(args);
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match raw.log_format {
        // Every line one JSON object: the event's fields, and the fields of the spans
        // it is in (function, request_id of the invoke span).
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .init(),
        LogFormat::Text => logs.init(),
    }
    let config = Config::try_from(raw)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let agent = flint_agent::core::Agent::open(config)?;
        flint_agent::server::serve(agent).await?;
        Ok(())
    })
}
