//! Embedding the engine in a program.
//!
//! Run from the workspace root:
//!
//! ```text
//! cargo run --example embed -- ../shared/fixtures/demo.json
//! cargo run --example embed -- --daemon 3
//! ```
//!
//! The first form analyzes a trace file and prints a summary and the JSON
//! report; the second runs the OTLP daemon on free loopback ports for the
//! given number of seconds, with the program's own shutdown future, and
//! prints what it received.

// Link the built-in detectors and scorers: they register themselves.
extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use perf_sentinel_engine::config::Config;
use perf_sentinel_engine::daemon::{self, settings::DaemonSettings};
use perf_sentinel_engine::registry::Value;
use perf_sentinel_engine::{Engine, ingest};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The config: ./.perf-sentinel.toml when present, else the defaults.
    let config = Config::discover(None, Engine::schema()?)?;
    if args.first().map(String::as_str) == Some("--daemon") {
        let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
        return run_daemon(config, secs);
    }
    let path = args.first().map_or("../shared/fixtures/demo.json", String::as_str);
    let engine = Engine::new(config)?;
    let bytes = std::fs::read(path)?;
    let input = ingest::parse(&bytes, path)?;
    let report = engine.report(input.events, input.stats);
    eprintln!(
        "{}: {} events, {} traces, {} findings, quality gate {}",
        path,
        report.analysis.events_processed,
        report.analysis.traces_analyzed,
        report.findings.len(),
        if report.quality_gate.passed { "passed" } else { "failed" }
    );
    for f in &report.findings {
        eprintln!(
            "  [{}] {} {}: {}",
            f.severity.as_str(),
            f.finding_type,
            f.service,
            f.pattern.template
        );
    }
    use std::io::Write;
    std::io::stdout().write_all(report.to_json().as_bytes())?;
    Ok(())
}

fn run_daemon(mut config: Config, secs: u64) -> Result<(), Box<dyn Error>> {
    config.override_value("daemon", "listen_port_http", Value::Int(0))?;
    config.override_value("daemon", "listen_port_grpc", Value::Int(0))?;
    config.override_value("daemon", "json_socket", Value::Str(String::new()))?;
    let settings = DaemonSettings::from_config(&config)?;
    let engine = Arc::new(Engine::new(config)?);
    let runtime = tokio::runtime::Runtime::new()?;
    // Our own shutdown future: a timer here; a channel or a signal elsewhere.
    let shutdown = tokio::time::sleep(Duration::from_secs(secs));
    runtime.block_on(daemon::run(engine, settings, shutdown, |bound| {
        eprintln!("daemon listening: gRPC {} HTTP {} for {secs} s", bound.grpc, bound.http);
    }))?;
    eprintln!("daemon drained and stopped");
    Ok(())
}
