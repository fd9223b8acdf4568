//! `slow_sql`: SQL statements slower than the threshold, repeatedly.

use perf_sentinel_engine::registry::{BatchDetector, Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{SLOW_QUERY_MIN_OCCURRENCES, SLOW_QUERY_THRESHOLD_MS};
use crate::slow::{self, SlowConfig};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A SQL statement template whose executions take longer than
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
    /// A slow query holds a connection from the pool for its whole duration and keeps the request waiting; under load, slow queries starve the pool for everyone else.
    ///
    /// ## Example
    /// `GET /api/reports/monthly` runs `SELECT * FROM reports WHERE month = ?` three times, each over 700 ms.
    ///
    /// Prefer: an index on the filtered columns, a narrower `SELECT`, pagination, or a precomputed summary table.
    ///
    /// ## Known false positives
    /// Batch jobs and reports that are expected to be slow; the first query after a cold start.
    id: "slow_sql",
    label: "Slow SQL",
    rank: 50,
    summary: "database queries slower than slow_query_threshold_ms, repeatedly",
    avoidable_io: false,
    tunables: &[SLOW_QUERY_THRESHOLD_MS, SLOW_QUERY_MIN_OCCURRENCES],
    gate_rules: &[],
    build: build,
}

struct SlowSql(SlowConfig);

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(SlowSql(SlowConfig::from_settings(s))))
}

impl Detector for SlowSql {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        slow::detect(trace, EventKind::Sql, "slow_sql", &self.0, out);
    }

    fn batch(&self) -> Option<Box<dyn BatchDetector + '_>> {
        Some(Box::new(slow::SlowAcrossTraces::new(
            EventKind::Sql,
            "slow_sql",
            self.0,
        )))
    }
}
