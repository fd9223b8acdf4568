//! `perf-sentinel`: the command-line front end of the engine.
//!
//! It parses arguments, builds an engine from `.perf-sentinel.toml` and prints
//! what the engine returns. Exit codes: 0 success, 1 quality gate failed under
//! `--ci`, 2 any error (bad input, bad config, bad arguments).

// Link-only crates: their detectors and scorers register themselves.
extern crate perf_sentinel_detectors as _;
#[cfg(feature = "plugin-mn-plus-one")]
extern crate perf_sentinel_plugin_mn_plus_one as _;
#[cfg(feature = "plugin-tx-across-remote-call")]
extern crate perf_sentinel_plugin_tx_across_remote_call as _;
extern crate perf_sentinel_scorers as _;

mod cli;
mod docs;
mod progress;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::FromArgMatches;
use perf_sentinel_engine::ack::{self, Acknowledgments};
use perf_sentinel_engine::config::{Config, ConfigError};
use perf_sentinel_engine::registry::Value;
use perf_sentinel_engine::trace::SpanBatch;
use perf_sentinel_engine::{Engine, ingest, render};

use cli::{Cli, Command, OutputFormat};

/// mimalloc: measured faster than the system allocator on the analysis
/// pipeline (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long, in milliseconds, the allocator keeps freed memory before it
/// returns it to the system, for the batch commands. `analyze` frees its
/// read buffers, then each slice of traces once analyzed; at 5 ms that
/// memory goes back while the run goes on: peak RSS a third lower at 44k
/// events (about the same time) and at 1M events (about 15 % more time),
/// see docs/PERFORMANCE.md. `MIMALLOC_PURGE_DELAY=1000` restores mimalloc's
/// default.
const BATCH_PURGE_DELAY_MS: std::os::raw::c_long = 5;

/// mimalloc's own purge delay, which the daemon keeps: it frees and
/// allocates all the time, and returning pages at once would only cost
/// system calls. `bench` runs the pipeline over and over as the daemon
/// does, so it keeps it too (at 5 ms, a fifth of its time went to the
/// kernel zeroing pages given back by the run before).
const DAEMON_PURGE_DELAY_MS: std::os::raw::c_long = 1000;

/// mimalloc's `mi_option_purge_delay`: its index in the `mi_option_t` enum,
/// the same in the v2 and v3 lines (libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's purge delay unless the operator set
/// `MIMALLOC_PURGE_DELAY`, which mimalloc read at start-up. The batch value
/// is set first thing in `main`: a deadline set by an earlier free would
/// stand.
#[allow(unsafe_code)]
fn set_purge_delay(ms: std::os::raw::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table,
    // which the allocator reads when it next schedules a purge; any value is
    // valid for the purge delay. It is called from the main thread before
    // the command starts any other thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}

/// Spans `analyze` and `diff` hold in memory before they sort what they
/// hold out to a temporary file by trace id (about 100 MB of spans; the
/// traces are merged back from the files, with the same result). Set
/// `PERF_SENTINEL_SPILL_SPANS` to another count, or to 0 to hold every span.
const SPILL_SPANS: usize = 1 << 18;

/// Findings `analyze` and `diff` hold in memory before they sort what they
/// hold out to a temporary file (about 50 MB of findings; the report merges them back,
/// byte for byte the same). Set `PERF_SENTINEL_SPILL_FINDINGS` to another
/// count, or to 0 to hold every finding.
const SPILL_FINDINGS: usize = 1 << 15;

/// A budget read from the environment variable `name`, `default` when unset.
fn budget(name: &str, what: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("{name}: expected a number of {what} (0 to never spill), got `{v}`")),
        Err(std::env::VarError::NotUnicode(v)) => {
            anyhow::bail!("{name}: expected a number of {what}, got `{}`", v.to_string_lossy())
        }
    }
}

/// The span batch the batch commands read into: see [`SPILL_SPANS`].
fn span_batch() -> Result<SpanBatch> {
    Ok(match budget("PERF_SENTINEL_SPILL_SPANS", "spans", SPILL_SPANS)? {
        0 => SpanBatch::default(),
        n => SpanBatch::spilling(n),
    })
}

/// Bundled traces for `perf-sentinel demo`: one trace per finding type.
const DEMO_TRACES: &str = include_str!("../../examples/demo-traces.json");

fn main() -> ExitCode {
    // First: mimalloc does not shorten a purge deadline it already set.
    set_purge_delay(BATCH_PURGE_DELAY_MS);
    let cli = match Cli::from_arg_matches(&docs::command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
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

/// The acknowledgments to apply: none with `--no-acknowledgments`, the given
/// file (which must exist), or `./.perf-sentinel-acknowledgments.toml` when
/// it exists.
fn load_acks(args: &cli::AckArgs) -> Result<Option<Acknowledgments>> {
    if args.no_acknowledgments {
        return Ok(None);
    }
    let path = match &args.acknowledgments {
        Some(p) => p.clone(),
        None => {
            let p = std::path::PathBuf::from(ack::DEFAULT_ACK_FILE);
            if std::fs::symlink_metadata(&p).is_err() {
                return Ok(None);
            }
            p
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Acknowledgments::load(&path, now)
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

/// Logs to stderr at the level `RUST_LOG` gives, `info` by default.
///
/// `RUST_LOG` is a tracing env filter: a level (`debug`) or comma-separated
/// `target=level` directives (`info,perf_sentinel_engine=debug,h2=warn`). A
/// value that does not parse is reported once and `info` is used.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some((v, e))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    if let Some((value, e)) = bad {
        tracing::warn!("RUST_LOG={value:?} is not a log filter ({e}); logging at info");
    }
}

/// `perf-sentinel watch`: config errors exit 2, daemon failures 1.
fn watch(w: cli::WatchArgs) -> Result<ExitCode> {
    use perf_sentinel_engine::daemon::Daemon;
    set_purge_delay(DAEMON_PURGE_DELAY_MS);
    init_logging();
    let mut config = load_config(w.config.as_deref())?;
    let overrides = [
        ("listen_address", w.listen_address.map(Value::Str)),
        ("listen_port_http", w.listen_port_http.map(|p| Value::Int(i64::from(p)))),
        ("listen_port_grpc", w.listen_port_grpc.map(|p| Value::Int(i64::from(p)))),
    ];
    for (key, value) in overrides {
        if let Some(v) = value {
            config
                .override_value("daemon", key, v)
                .map_err(|e| anyhow::anyhow!("--{}: {e}", key.replace('_', "-")))?;
        }
    }
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string());
    let daemon = Daemon::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
    if w.check_config {
        let s = &daemon.settings;
        eprintln!(
            "{source}: valid; {} detectors, {} scorers; would listen on {}:{} (gRPC) and {}:{} (HTTP)",
            daemon.engine.detectors().len(),
            daemon.engine.scorers().len(),
            s.listen_address,
            s.port_grpc,
            s.listen_address,
            s.port_http
        );
        return Ok(ExitCode::SUCCESS);
    }
    match daemon.run_until_signal() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Daemon error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Largest input `bench` reads: benchmarks use files past the 16 MiB default.
const BENCH_MAX_INPUT: u64 = 1 << 30;

/// `perf-sentinel bench`: the pipeline (normalize, correlate, detect, score,
/// report) over already-parsed events, `iterations` times.
fn bench(engine: &Engine, events: &[perf_sentinel_engine::SpanEvent], iterations: u32) -> String {
    let n = events.len();
    let mut per_event_us: Vec<f64> = Vec::with_capacity(iterations as usize);
    let total = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        let report = engine.report_events(events, ingest::IngestStats::default(), None);
        let elapsed = t.elapsed();
        std::hint::black_box(report);
        per_event_us.push(elapsed.as_secs_f64() * 1e6 / n as f64);
    }
    let total = total.elapsed();
    per_event_us.sort_by(f64::total_cmp);
    let pick = |p: usize| per_event_us[perf_sentinel_engine::group::rank_index(per_event_us.len(), p)];
    let throughput = (n as f64 * f64::from(iterations)) / total.as_secs_f64().max(1e-9);
    let v = serde_json::json!({
        "iterations": iterations,
        "events_per_iteration": n,
        "throughput_events_per_sec": throughput.round(),
        "latency_per_event_us": { "p50": pick(50), "p99": pick(99) },
        "rss_peak_bytes": peak_rss_bytes(),
        "total_elapsed_ms": total.as_millis() as u64,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// Peak resident set size (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Analyze(a) => {
            let config = load_config(a.config.as_deref())?;
            let cap = perf_sentinel_engine::config::max_input_size(&config);
            let engine = Engine::new(config)?;
            let started = Instant::now();
            let acks = load_acks(&a.acks)?;
            let origin = ingest::origin_of(a.input.as_deref());
            let size = a
                .input
                .as_deref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len());
            let mut progress = progress::Progress::new(origin, size);
            let batch = span_batch()?;
            let findings_budget = budget("PERF_SENTINEL_SPILL_FINDINGS", "findings", SPILL_FINDINGS)?;
            let (spans, stats) = ingest::read_spans_into(a.input.as_deref(), cap, batch, &mut |n| progress.read(n))?;
            progress.analyzing(spans.len());
            let report = engine.report_spans_spilling(spans, stats, acks.as_ref(), findings_budget)?;
            progress.writing(|| report.counts().total());
            let format = a
                .format
                .unwrap_or(if a.ci { OutputFormat::Json } else { OutputFormat::Text });
            let stdout = std::io::stdout();
            let mut w = stdout.lock();
            let written = match format {
                OutputFormat::Json => report.write_json(a.show_acknowledged, &mut w),
                OutputFormat::Sarif => render::write_sarif(&engine, &report, a.show_acknowledged, &mut w),
                OutputFormat::Text => {
                    let elapsed = started.elapsed().as_millis();
                    render::write_text(&engine, &report, elapsed, color_enabled(), &mut w).and_then(|()| {
                        if a.show_acknowledged {
                            render::write_acknowledged_text(&report, &mut w)
                        } else {
                            Ok(())
                        }
                    })
                }
            };
            written.and_then(|()| w.flush())?;
            progress.finish();
            let passed = !a.ci || report.header().quality_gate.passed;
            // The process ends here: freeing every finding one by one would
            // only delay the exit.
            std::mem::forget(report);
            if !passed {
                eprintln!("Quality gate FAILED");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch(w) => watch(w),
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
        Command::Explain(e) => {
            let config = load_config(e.config.as_deref())?;
            let cap = perf_sentinel_engine::config::max_input_size(&config);
            let engine = Engine::new(config)?;
            let (spans, _) = ingest::read_spans_into(Some(&e.input), cap, span_batch()?, &mut |_| {})?;
            // Traces one at a time: a file larger than memory is searched
            // in the spans budget.
            let (mut count, mut first) = (0usize, Vec::new());
            let mut found = None;
            for trace in spans.into_traces().context("reading back the temporary span files")? {
                let trace = trace.context("reading back the temporary span files")?;
                if trace.trace_id == e.trace_id {
                    found = Some(trace);
                    break;
                }
                count += 1;
                if first.len() < 20 {
                    first.push(trace.trace_id);
                }
            }
            let Some(trace) = found else {
                anyhow::bail!(
                    "{}: no trace with id `{}`; {} traces, the first {}: {}",
                    e.input.display(),
                    e.trace_id,
                    count,
                    first.len(),
                    first.join(", ")
                );
            };
            let trace = &trace;
            // Per-trace detectors only: the cross-trace pass needs a batch.
            let analysis = engine.analyze(std::slice::from_ref(trace), perf_sentinel_engine::Confidence::CiBatch);
            let explanation = perf_sentinel_engine::explain::explain(trace, &analysis.findings);
            match e.format {
                cli::ListFormat::Json => out(&explanation.to_json())?,
                cli::ListFormat::Text => out(&explanation.to_text())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff(d) => {
            let config = load_config(d.config.as_deref())?;
            let cap = perf_sentinel_engine::config::max_input_size(&config);
            let engine = Engine::new(config)?;
            let acks = load_acks(&d.acks)?;
            let findings_budget = budget("PERF_SENTINEL_SPILL_FINDINGS", "findings", SPILL_FINDINGS)?;
            let mut sides = Vec::new();
            for path in [&d.before, &d.after] {
                let (spans, stats) = ingest::read_spans_into(Some(path), cap, span_batch()?, &mut |_| {})?;
                sides.push(engine.report_spans_spilling(spans, stats, acks.as_ref(), findings_budget)?);
            }
            let diff = perf_sentinel_engine::diff::diff_reports(&engine, &sides[0], &sides[1])?;
            let text = match d.format {
                OutputFormat::Json => diff.to_json(),
                OutputFormat::Sarif => render::sarif(&engine, &diff.new_findings, &[]),
                OutputFormat::Text => diff.to_text(),
            };
            match &d.output {
                Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?,
                None => out(&text)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(b) => {
            set_purge_delay(DAEMON_PURGE_DELAY_MS);
            let engine = Engine::with_defaults()?;
            let bytes = ingest::read_input(b.input.as_deref(), BENCH_MAX_INPUT)?;
            let input = ingest::parse(&bytes, &ingest::origin_of(b.input.as_deref()))?;
            drop(bytes);
            anyhow::ensure!(
                !input.events.is_empty(),
                "{}: no events to benchmark",
                ingest::origin_of(b.input.as_deref())
            );
            out(&bench(&engine, &input.events, b.iterations))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(c) => {
            let mut cmd = docs::command();
            let mut buf = Vec::new();
            clap_complete::generate(c.shell, &mut cmd, "perf-sentinel", &mut buf);
            out(&String::from_utf8_lossy(&buf))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(m) => {
            let pages = docs::man_pages(&docs::command()).context("rendering the manual")?;
            match m.out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                    for (name, roff) in &pages {
                        let path = dir.join(name);
                        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
                    }
                }
                None => {
                    let all: Vec<u8> = pages.into_iter().flat_map(|(_, r)| r).collect();
                    out(&String::from_utf8_lossy(&all))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigReference => {
            out(&docs::config_reference(&Engine::schema()?))?;
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
