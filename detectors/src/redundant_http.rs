//! `redundant_http`: the same call with the same parameters, repeated.

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{REDUNDANT_MIN_OCCURRENCES, as_usize};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// The same outbound HTTP call (method, path and query) made `redundant_min_occurrences` (default 2)
    /// or more times in one trace. A template already reported as `n_plus_one_http` in
    /// the trace is not reported again here.
    ///
    /// Severity: warning from 5 occurrences, info below.
    ///
    /// ## Why is it slow?
    /// Each repeat pays the network and the remote service's work for a
    /// response the caller already received.
    ///
    /// ## Example
    /// `GET /api/profile/me` calls `GET /api/token/validate` three times, once
    /// per middleware layer.
    ///
    /// Prefer: validate once and pass the result along, or cache the response
    /// for the duration of the request.
    ///
    /// ## Known false positives
    /// Retries after a failure (they share the template and parameters) and
    /// deliberate polling.
    id: "redundant_http",
    label: "Redundant HTTP",
    rank: 40,
    summary: "the same HTTP call with the same parameters repeated in one trace",
    avoidable_io: true,
    tunables: &[REDUNDANT_MIN_OCCURRENCES],
    gate_rules: &[],
    build: build,
}

struct RedundantHttp {
    min: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(RedundantHttp {
        min: as_usize(s.uint(REDUNDANT_MIN_OCCURRENCES.key)),
    }))
}

impl Detector for RedundantHttp {
    fn detect(&self, trace: &Trace, earlier: &[Finding], out: &mut Vec<Finding>) {
        crate::redundant::detect(
            trace,
            EventKind::HttpOut,
            "redundant_http",
            "n_plus_one_http",
            self.min,
            earlier,
            out,
        );
    }
}
