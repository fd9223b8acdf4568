//! The daemon with two fault-injecting detectors, for the overload and
//! worker-death tests. Not shipped: it lives in the test crate.
//!
//! - `test_slow_analysis` sleeps `[detection] test_slow_analysis_ms` per
//!   trace, so the analysis worker falls behind a flood.
//! - `test_panic` panics on a trace holding a span of service `panic-please`.
//!
//! Usage: `perf-sentinel-faults CONFIG.toml` (listens on free ports, logs
//! the bound addresses on stderr like `perf-sentinel watch`).

extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use std::process::ExitCode;
use std::time::Duration;

use perf_sentinel_engine::config::Config;
use perf_sentinel_engine::daemon::Daemon;
use perf_sentinel_engine::registry::{Detector, Settings, Tunable, Value};
use perf_sentinel_engine::{Engine, Finding, Trace};

const SLOW_MS: Tunable = Tunable::int(
    "detection",
    "test_slow_analysis_ms",
    0,
    60_000,
    0,
    "Milliseconds the test detector sleeps per trace.",
);

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Nothing: it only slows analysis down, for overload tests.
    id: "test_slow_analysis",
    label: "Test: slow analysis",
    rank: 10_000,
    summary: "sleeps per trace to make the analysis worker fall behind",
    avoidable_io: false,
    tunables: &[SLOW_MS],
    gate_rules: &[],
    build: build_slow,
}

struct SlowAnalysis(Duration);

fn build_slow(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(SlowAnalysis(Duration::from_millis(s.uint(SLOW_MS.key)))))
}

impl Detector for SlowAnalysis {
    fn detect(&self, _trace: &Trace, _earlier: &[Finding], _out: &mut Vec<Finding>) {
        std::thread::sleep(self.0);
    }
}

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Nothing: it panics on a span of service `panic-please`, for
    /// worker-death tests.
    id: "test_panic",
    label: "Test: panic",
    rank: 10_001,
    summary: "panics on a span of service panic-please",
    avoidable_io: false,
    tunables: &[],
    gate_rules: &[],
    build: build_panic,
}

struct Panic;

fn build_panic(_: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(Panic))
}

impl Detector for Panic {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], _out: &mut Vec<Finding>) {
        if trace.spans.iter().any(|s| &*s.event.service == "panic-please") {
            panic!("test_panic detector: service panic-please seen");
        }
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: perf-sentinel-faults CONFIG.toml");
        return ExitCode::from(2);
    };
    let schema = match Engine::schema() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = match Config::load(std::path::Path::new(&path), schema) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for key in ["listen_port_http", "listen_port_grpc"] {
        if let Err(e) = config.override_value("daemon", key, Value::Int(0)) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let daemon = match Daemon::from_config(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match daemon.run_until_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Daemon error: {e}");
            ExitCode::from(1)
        }
    }
}
