//! A binary that links a second detector with the id `n_plus_one_sql`, as a
//! careless plugin would: building an engine must fail and name both crates.

extern crate perf_sentinel_detectors as _;

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{Engine, Finding, Trace};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Nothing; it only collides with a built-in id.
    id: "n_plus_one_sql",
    label: "Duplicate",
    rank: 9_999,
    summary: "a detector that reuses a built-in id",
    avoidable_io: false,
    tunables: &[],
    gate_rules: &[],
    build: build,
}

struct Duplicate;

fn build(_: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(Duplicate))
}

impl Detector for Duplicate {
    fn detect(&self, _trace: &Trace, _earlier: &[Finding], _out: &mut Vec<Finding>) {}
}

fn main() -> std::process::ExitCode {
    match Engine::with_defaults() {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
