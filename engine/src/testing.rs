//! Test support for detector authors: run a directory of hit and miss
//! fixtures through an engine.
//!
//! ```no_run
//! // tests/fixtures.rs of a plugin crate
//! extern crate perf_sentinel_detectors as _; // or your own crate
//! # fn main() {
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
//! perf_sentinel_engine::testing::check_fixture_dir("n_plus_one_sql", &dir).unwrap();
//! # }
//! ```

use std::path::Path;

use crate::engine::Engine;
use crate::event::{EventKind, EventSource, SpanEvent};
use crate::finding::Finding;
use crate::ingest;

/// A small seeded generator (xorshift64) for tests that check a rule on
/// many varied cases: the same seed gives the same cases on every run.
pub struct Cases(u64);

impl Cases {
    /// A generator from `seed`, which must not be 0.
    pub fn new(seed: u64) -> Cases {
        Cases(seed.max(1))
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What `detect` finds in `events`, grouped into traces as the engine
/// groups them, in trace order: the unit-test harness of a detector.
pub fn findings_in(events: Vec<SpanEvent>, mut detect: impl FnMut(&crate::Trace, &mut Vec<Finding>)) -> Vec<Finding> {
    let mut out = Vec::new();
    for trace in crate::trace::group_traces(events) {
        detect(&trace, &mut out);
    }
    out
}

/// A SQL event of trace `trace_id` running `sql`, with every optional field
/// left out: a starting point for unit tests of detectors and groupings.
pub fn sql_event(trace_id: &str, span_id: &str, sql: &str) -> SpanEvent {
    SpanEvent {
        timestamp: "2026-01-01T00:00:00.000Z".to_owned(),
        trace_id: trace_id.to_owned(),
        span_id: span_id.to_owned(),
        parent_span_id: None,
        service: "svc".to_owned(),
        cloud_region: None,
        kind: EventKind::Sql,
        operation: "sql".to_owned(),
        target: sql.to_owned(),
        duration_us: 1,
        source: EventSource::default(),
        status_code: None,
        response_size_bytes: None,
        code_function: None,
        code_filepath: None,
        code_lineno: None,
        code_namespace: None,
        instrumentation_scopes: vec![],
        start_unix_nanos: None,
        db_parameters: vec![],
    }
}

/// Runs every `hit_*.json` and `miss_*.json` trace file of `dir` through an
/// engine with default settings: a hit must produce at least one finding of
/// `detector`, a miss none. Returns the findings of each hit file, by name,
/// for further checks; an error says which file failed and why.
pub fn check_fixture_dir(detector: &str, dir: &Path) -> Result<Vec<(String, Vec<Finding>)>, String> {
    let engine = Engine::with_defaults().map_err(|e| e.to_string())?;
    if engine.descriptor(detector).is_none() {
        return Err(format!(
            "`{detector}` is not registered: is its crate linked (`extern crate … as _;`)?"
        ));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    let (mut hits, mut misses) = (Vec::new(), 0);
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let bytes = std::fs::read(&path).map_err(|e| format!("{name}: {e}"))?;
        let input = ingest::parse(&bytes, &name).map_err(|e| e.to_string())?;
        let report = engine.report(input.events, input.stats);
        let found: Vec<Finding> = report
            .findings
            .into_iter()
            .filter(|f| f.finding_type == detector)
            .collect();
        if name.starts_with("hit_") {
            if found.is_empty() {
                return Err(format!("{name}: expected a `{detector}` finding, got none"));
            }
            hits.push((name, found));
        } else if name.starts_with("miss_") {
            if !found.is_empty() {
                return Err(format!("{name}: expected no `{detector}` finding, got {found:#?}"));
            }
            misses += 1;
        }
    }
    if hits.is_empty() || misses == 0 {
        return Err(format!(
            "{}: needs at least one hit_ and one miss_ fixture",
            dir.display()
        ));
    }
    Ok(hits)
}
