//! Argument definitions and the listings of registered rules.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use perf_sentinel_engine::Engine;
use perf_sentinel_engine::registry::Tunable;
use perf_sentinel_engine::render::doc_text;

/// Lightweight polyglot performance anti-pattern detector
#[derive(Parser, Debug)]
#[command(name = "perf-sentinel", version, about = "Lightweight polyglot performance anti-pattern detector", long_about = ROOT_LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const ROOT_LONG_ABOUT: &str = "Lightweight polyglot performance anti-pattern detector

perf-sentinel reads the OpenTelemetry traces your services already emit and
finds the I/O anti-patterns that make them slow and wasteful (N+1 SQL and
HTTP, redundant calls, slow queries, excessive fanout, chatty services, pool
saturation, serialized calls), then estimates their energy and carbon cost.

Every subcommand takes its tuning from a .perf-sentinel.toml file: the one
given with --config, else ./.perf-sentinel.toml if it exists, else the
built-in defaults. Tuning is never a command-line flag. Batch tuning lives in
[thresholds], [detection] and [green] (see `perf-sentinel analyze --help`);
daemon tuning lives in [daemon] with [daemon.correlation], [daemon.ack],
[daemon.cors] and [daemon.archive] (see `perf-sentinel watch --help`). Every
key, its default and its range: `perf-sentinel rules` and docs/CONFIGURATION.md.";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyze a trace file and report anti-patterns (the CI quality gate)
    Analyze(AnalyzeArgs),
    /// Run the streaming daemon: OTLP in (gRPC and HTTP), findings out
    #[command(long_about = WATCH_LONG_ABOUT)]
    Watch(WatchArgs),
    /// Analyze the bundled demo traces (no files needed)
    Demo(DemoArgs),
    /// Show one trace as a span tree with its findings
    Explain(ExplainArgs),
    /// Compare two trace files: new, resolved and changed findings
    Diff(DiffArgs),
    /// Time the analysis pipeline on a trace file
    ///
    /// The file is read and parsed once. Each iteration then runs the
    /// pipeline over its events, which it reads in place: normalization,
    /// grouping into traces, every detector and scorer, and the report.
    /// `throughput_events_per_sec` is the events of all iterations over the
    /// time of the whole loop; `latency_per_event_us` is each iteration's
    /// time per event (p50, p99 over iterations).
    Bench(BenchArgs),
    /// List every registered detector and scorer with its tunables
    #[command(alias = "detectors")]
    Rules(RulesArgs),
    /// Print the documentation of one detector or scorer
    ExplainRule(ExplainRuleArgs),
    /// Print the shell completion script
    Completions(CompletionsArgs),
    /// Write the manual: one page per subcommand
    Man(ManArgs),
    /// Print the configuration reference (every key, its default and range) as Markdown
    ConfigReference,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Trace file (stdin when omitted)
    #[arg(short, long, value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// Times the pipeline runs over the input
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one roff file per page into this directory (default: all pages to stdout)
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Trace file: native JSON, Jaeger, Zipkin, OTLP/JSON or OTLP protobuf (stdin when omitted)
    #[arg(short, long, value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// Config file (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Quality-gate mode: JSON output by default, exit 1 when a threshold is breached
    #[arg(long)]
    pub ci: bool,
    /// Output format [default: text, or json with --ci]
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    #[command(flatten)]
    pub acks: AckArgs,
    /// Keep acknowledged findings in JSON and SARIF output, marked as such
    #[arg(long)]
    pub show_acknowledged: bool,
}

#[derive(Args, Debug, Clone)]
pub struct AckArgs {
    /// Acknowledgments file [default: ./.perf-sentinel-acknowledgments.toml when present]
    #[arg(long, value_name = "PATH", conflicts_with = "no_acknowledgments")]
    pub acknowledgments: Option<PathBuf>,
    /// Ignore acknowledgments: report every finding
    #[arg(long)]
    pub no_acknowledgments: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Trace file before the change
    #[arg(long, value_name = "PATH")]
    pub before: PathBuf,
    /// Trace file after the change
    #[arg(long, value_name = "PATH")]
    pub after: PathBuf,
    /// Config file applied to both (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format; SARIF holds the new findings only
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Write to this file instead of stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub acks: AckArgs,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Trace file
    #[arg(short, long, value_name = "PATH")]
    pub input: PathBuf,
    /// The trace to show
    #[arg(long, value_name = "ID")]
    pub trace_id: String,
    /// Config file (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

const WATCH_LONG_ABOUT: &str = "Run the streaming daemon: OTLP in (gRPC and HTTP), findings out

Receives spans over OTLP/gRPC (listen_port_grpc, 4317), OTLP/HTTP
(POST /v1/traces on listen_port_http, 4318; protobuf or JSON, gzip or not)
and the JSON socket; keeps each trace until no span arrived for trace_ttl_ms;
analyzes completed traces on one ordered worker; prints each finding as one
JSON line on stdout and serves /metrics, /health and the query API (/api/*).

All runtime tuning lives in [daemon] of .perf-sentinel.toml, except the three
listen overrides below:

  listeners         listen_address, listen_port_http, listen_port_grpc,
                    json_socket, tls_cert_path, tls_key_path
  window, memory    max_active_traces, trace_ttl_ms, max_events_per_trace,
                    max_payload_size, max_retained_findings
  bounded queues    ingest_queue_capacity (1024; senders wait when full),
  (backpressure)    analysis_queue_capacity (1024; a full queue sheds whole
                    batches, counted in perf_sentinel_analysis_shed_*)
  behaviour         sampling_rate, environment, api_enabled
  sub-sections      [daemon.correlation], [daemon.ack], [daemon.cors],
                    [daemon.archive]

SIGINT or SIGTERM drains: accepted spans are analyzed before exit 0. A dead
analysis worker exits 1 at once so that a supervisor restarts the daemon.

Logs go to stderr. RUST_LOG filters them (tracing's env filter syntax): a
level (debug) or comma-separated target=level directives
(warn,perf_sentinel_engine=info); info by default. A value that does not
parse is reported and info is used.";

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Config file (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Overrides [daemon] listen_address
    #[arg(long, value_name = "ADDR")]
    pub listen_address: Option<String>,
    /// Overrides [daemon] listen_port_http (0 picks a free port)
    #[arg(long, value_name = "PORT")]
    pub listen_port_http: Option<u16>,
    /// Overrides [daemon] listen_port_grpc (0 picks a free port)
    #[arg(long, value_name = "PORT")]
    pub listen_port_grpc: Option<u16>,
    /// Load and validate the config (and build every detector and scorer), then exit: 0 when valid, 2 otherwise
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Config file (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RulesArgs {
    /// Config file (default: ./.perf-sentinel.toml when present)
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Args, Debug)]
pub struct ExplainRuleArgs {
    /// Detector or scorer id, e.g. n_plus_one_sql
    pub id: String,
}

fn tunable_line(t: &Tunable) -> String {
    format!(
        "  [{}] {} = {}  ({})\n      {}\n",
        t.section,
        t.key,
        t.default_text(),
        t.range_text(),
        t.doc
    )
}

/// `perf-sentinel rules`: every detector and scorer, sorted by rank.
pub fn rules_listing(engine: &Engine, format: ListFormat) -> String {
    match format {
        ListFormat::Json => {
            let tunables = |ts: &[Tunable]| -> Vec<serde_json::Value> {
                ts.iter()
                    .map(|t| {
                        serde_json::json!({
                            "section": t.section, "key": t.key, "default": t.default_text(),
                            "range": t.range_text(), "doc": t.doc,
                        })
                    })
                    .collect()
            };
            let detectors: Vec<serde_json::Value> = engine
                .detectors()
                .iter()
                .map(|d| {
                    let d = d.descriptor;
                    let gates: Vec<Tunable> = d.gate_rules.iter().map(|g| g.tunable()).collect();
                    serde_json::json!({
                        "id": d.id, "kind": "detector", "crate": d.crate_name, "label": d.label,
                        "summary": d.summary, "tunables": tunables(d.tunables), "gate_rules": tunables(&gates),
                    })
                })
                .collect();
            let scorers: Vec<serde_json::Value> = engine
                .scorers()
                .iter()
                .map(|s| {
                    let s = s.descriptor;
                    let gates: Vec<Tunable> = s.gate_rules.iter().map(|g| g.tunable()).collect();
                    serde_json::json!({
                        "id": s.id, "kind": "scorer", "crate": s.crate_name,
                        "summary": s.summary, "tunables": tunables(s.tunables), "gate_rules": tunables(&gates),
                    })
                })
                .collect();
            let mut s =
                serde_json::to_string_pretty(&serde_json::json!({ "detectors": detectors, "scorers": scorers }))
                    .unwrap_or_default();
            s.push('\n');
            s
        }
        ListFormat::Text => {
            let mut o = String::from("Detectors:\n");
            for d in engine.detectors() {
                let d = d.descriptor;
                let _ = writeln!(o, "  {:<26} {} ({})", d.id, d.summary, d.crate_name);
            }
            o.push_str("\nScorers:\n");
            for s in engine.scorers() {
                let s = s.descriptor;
                let _ = writeln!(o, "  {:<26} {} ({})", s.id, s.summary, s.crate_name);
            }
            o.push_str("\n`perf-sentinel explain-rule <id>` prints one rule's documentation and tunables.\n");
            o
        }
    }
}

/// `perf-sentinel explain-rule ID`.
pub fn explain_rule(engine: &Engine, id: &str) -> Option<String> {
    let (title, docs, tunables, gates) = if let Some(d) = engine.descriptor(id) {
        (
            format!("{} ({}): {}", d.id, d.label, d.summary),
            d.docs,
            d.tunables,
            d.gate_rules,
        )
    } else {
        let s = engine.scorers().iter().map(|s| s.descriptor).find(|s| s.id == id)?;
        (format!("{}: {}", s.id, s.summary), s.docs, s.tunables, s.gate_rules)
    };
    let mut o = format!("# {title}\n\n{}", doc_text(docs));
    if !tunables.is_empty() {
        o.push_str("\n## Options\n");
        for t in tunables {
            o.push_str(&tunable_line(t));
        }
    }
    if !gates.is_empty() {
        o.push_str("\n## Quality gate\n");
        for g in gates {
            o.push_str(&tunable_line(&g.tunable()));
        }
    }
    Some(o)
}
