//! `redundant_sql`: the same query with the same values, repeated.

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{REDUNDANT_MIN_OCCURRENCES, as_usize};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// The same SQL statement with the same bind values executed `redundant_min_occurrences` (default 2) or more times in one trace. A template already reported as `n_plus_one_sql` in
    /// the trace is not reported again here.
    ///
    /// Severity: warning from 5 occurrences, info below.
    ///
    /// ## Why is it slow?
    /// The answer was already in hand: every repeat is a round trip and a
    /// query execution that return rows the application has just read.
    ///
    /// ## Example
    /// `GET /api/settings` runs `SELECT * FROM settings WHERE key = 'theme'`
    /// three times, once from each component that needs the theme.
    ///
    /// Prefer: a request-scoped cache or memoized lookup, or passing the value
    /// down instead of fetching it again.
    ///
    /// ## Known false positives
    /// Re-reads that must observe a change made in between (polling, or a
    /// read after a write in another transaction).
    id: "redundant_sql",
    label: "Redundant SQL",
    rank: 30,
    summary: "the same SQL query with the same values repeated in one trace",
    avoidable_io: true,
    tunables: &[REDUNDANT_MIN_OCCURRENCES],
    gate_rules: &[],
    build: build,
}

struct RedundantSql {
    min: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(RedundantSql {
        min: as_usize(s.uint(REDUNDANT_MIN_OCCURRENCES.key)),
    }))
}

impl Detector for RedundantSql {
    fn detect(&self, trace: &Trace, earlier: &[Finding], out: &mut Vec<Finding>) {
        crate::redundant::detect(
            trace,
            EventKind::Sql,
            "redundant_sql",
            "n_plus_one_sql",
            self.min,
            earlier,
            out,
        );
    }
}
