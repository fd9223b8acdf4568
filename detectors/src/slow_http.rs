//! `slow_http`: outbound HTTP calls slower than the threshold, repeatedly.

use perf_sentinel_engine::registry::{BatchDetector, Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{SLOW_QUERY_MIN_OCCURRENCES, SLOW_QUERY_THRESHOLD_MS};
use crate::slow::{self, SlowConfig};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// An outbound HTTP call template whose executions take longer than
    /// `slow_query_threshold_ms` (strictly) at least
    /// `slow_query_min_occurrences` times in one trace. Across a batch of two
    /// or more traces, the same rule also runs over all traces together, and a
    /// template slow in at least two traces gets a cross-trace finding with its
    /// p50, p95 and p99 (attributed to the trace of the slowest execution).
    ///
    /// Severity: critical when the slowest execution exceeds five times the
    /// threshold, warning otherwise.
    ///
    /// ## Why is it slow?
    /// The caller waits for the slowest dependency: a slow downstream call sets the floor of the endpoint's latency and holds a thread or connection meanwhile.
    ///
    /// ## Example
    /// `GET /api/reports/quarterly` calls `GET /api/reports/quarterly/{id}` three times, each over 750 ms.
    ///
    /// Prefer: cache the response, ask the callee for a faster or narrower endpoint, set a timeout, or move the call off the request path.
    ///
    /// ## Known false positives
    /// Calls to endpoints that stream large payloads on purpose; long polling.
    id: "slow_http",
    label: "Slow HTTP",
    rank: 60,
    summary: "outbound HTTP calls slower than slow_query_threshold_ms, repeatedly",
    avoidable_io: false,
    tunables: &[SLOW_QUERY_THRESHOLD_MS, SLOW_QUERY_MIN_OCCURRENCES],
    gate_rules: &[],
    build: build,
}

struct SlowHttp(SlowConfig);

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(SlowHttp(SlowConfig::from_settings(s))))
}

impl Detector for SlowHttp {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        slow::detect(trace, EventKind::HttpOut, "slow_http", &self.0, out);
    }

    fn batch(&self) -> Option<Box<dyn BatchDetector + '_>> {
        Some(Box::new(slow::SlowAcrossTraces::new(
            EventKind::HttpOut,
            "slow_http",
            self.0,
        )))
    }
}
