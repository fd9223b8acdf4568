//! `perf-sentinel`: the command-line front end of the engine.
//!
//! It parses arguments, builds an engine from `.perf-sentinel.toml` and prints
//! what the engine returns. Exit codes: 0 success, 1 quality gate failed under
//! `--ci`, 2 any error (bad input, bad config, bad arguments).

// Link-only crates: their detectors and scorers register themselves.
extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

mod cli;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use perf_sentinel_engine::config::{Config, ConfigError};
use perf_sentinel_engine::registry::Value;
use perf_sentinel_engine::{Engine, ingest, render};

use cli::{Cli, Command, OutputFormat};

/// Bundled traces for `perf-sentinel demo`: one trace per finding type.
const DEMO_TRACES: &str = include_str!("../../examples/demo-traces.json");

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn color_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Loads the config (explicit path, or `./.perf-sentinel.toml`, or defaults)
/// and prints its warnings.
fn load_config(path: Option<&Path>) -> Result<Config> {
    let schema = Engine::schema().context("registry")?;
    let config = Config::discover(path, schema).map_err(|e: ConfigError| anyhow::anyhow!("{e}"))?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

fn max_payload(config: &Config) -> u64 {
    match config.get("daemon", "max_payload_size") {
        Some(Value::Int(n)) => u64::try_from(n).unwrap_or(ingest::DEFAULT_MAX_PAYLOAD),
        _ => ingest::DEFAULT_MAX_PAYLOAD,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Analyze(a) => {
            let config = load_config(a.config.as_deref())?;
            let cap = max_payload(&config);
            let engine = Engine::new(config)?;
            let started = Instant::now();
            let bytes = ingest::read_input(a.input.as_deref(), cap)?;
            let origin = ingest::origin_of(a.input.as_deref());
            let input = ingest::parse(&bytes, &origin)?;
            drop(bytes);
            let report = engine.report(input.events, input.stats);
            let format = a.format.unwrap_or(if a.ci {
                OutputFormat::Json
            } else {
                OutputFormat::Text
            });
            match format {
                OutputFormat::Json => out(&report.to_json())?,
                OutputFormat::Sarif => out(&render::sarif(&engine, &report.findings, &[]))?,
                OutputFormat::Text => out(&render::text(
                    &engine,
                    &report,
                    started.elapsed().as_millis(),
                    color_enabled(),
                ))?,
            }
            if a.ci && !report.quality_gate.passed {
                eprintln!("Quality gate FAILED");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(d) => {
            let mut config = load_config(d.config.as_deref())?;
            if config.get("green", "default_region").is_none()
                && config.schema().find("green", "default_region").is_some()
            {
                config
                    .override_value("green", "default_region", Value::Str("eu-west-3".into()))
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            let engine = Engine::new(config)?;
            let started = Instant::now();
            let input = ingest::parse(DEMO_TRACES.as_bytes(), "demo")?;
            let report = engine.report(input.events, input.stats);
            out(&render::text(
                &engine,
                &report,
                started.elapsed().as_millis(),
                color_enabled(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(r) => {
            let engine = Engine::new(load_config(r.config.as_deref())?)?;
            out(&cli::rules_listing(&engine, r.format))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExplainRule(e) => {
            let engine = Engine::new(load_config(None)?)?;
            match cli::explain_rule(&engine, &e.id) {
                Some(text) => {
                    out(&text)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => anyhow::bail!(
                    "no detector or scorer has the id `{}`; `perf-sentinel rules` lists them",
                    e.id
                ),
            }
        }
    }
}
