//! A detector that panics on a trace that another analysis thread claimed:
//! the panic reaches the caller, with its message, and nothing hangs.

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{Engine, Finding, Trace, ingest};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Nothing: it panics on a span of service `panic-please`.
    id: "test_panic_on_service",
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
            panic!("test detector: service panic-please seen");
        }
    }
}

/// `traces` one-span traces; the one numbered `bad` is of service `panic-please`.
fn events(traces: usize, bad: Option<usize>) -> Vec<u8> {
    let mut out = String::from("[");
    for i in 0..traces {
        let service = if Some(i) == bad { "panic-please" } else { "orders" };
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"timestamp":"2025-07-10T14:32:01.000Z","trace_id":"t{i}","span_id":"s{i}","service":"{service}","type":"sql","operation":"SELECT","target":"SELECT 1","duration_us":10,"source":{{"endpoint":"GET /x","method":"m"}}}}"#
        ));
    }
    out.push(']');
    out.into_bytes()
}

#[test]
fn a_detector_panic_on_any_slice_and_chunk_reaches_the_caller() {
    let engine = Engine::with_defaults().unwrap();
    // Three slices of 1,024 traces and a short one; the bad trace early,
    // in the middle and at the end of a slice, and in the last one.
    for bad in [0, 1_500, 2_047, 3_100] {
        let input = ingest::parse(&events(3_200, Some(bad)), "panic.json").unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.report(input.events, input.stats)
        }));
        let panic = result.err().unwrap_or_else(|| panic!("trace {bad}: no panic"));
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert_eq!(message, "test detector: service panic-please seen", "trace {bad}");
    }
    // Without the bad trace the same batch is analyzed.
    let input = ingest::parse(&events(3_200, None), "calm.json").unwrap();
    let report = engine.report(input.events, input.stats);
    assert_eq!(report.analysis.traces_analyzed, 3_200);
}
