//! `n_plus_one_sql`: one query per item of a loop.

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{
    N_PLUS_ONE_MIN_OCCURRENCES, N_PLUS_ONE_SQL_GATE, SANITIZER_AWARE_CLASSIFICATION, WINDOW_DURATION_MS,
};
use crate::n_plus_one::{self, NPlusOneConfig};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// One SQL statement executed again and again in a single trace with a
    /// different bind value each time: the same template at least
    /// `n_plus_one_min_occurrences` times, with at least that many distinct
    /// parameter lists, all within `window_duration_ms` of each other.
    ///
    /// Instrumentation often records `WHERE id = ?` without the bound value.
    /// When a span carries its values (`db.statement.parameters`,
    /// `db.query.parameter.<key>`) they are used. When it does not, in `auto`
    /// mode a parameterized statement repeated `n_plus_one_min_occurrences`
    /// times in one trace is reported as an N+1 with `classification_method`
    /// `params_unknown` (the reference calls it redundant and misses the loop);
    /// groups that also pass the reference's sanitizer heuristic (an ORM scope,
    /// or durations that vary by more than half their mean) say
    /// `sanitizer_heuristic`. `strict`, `always` and `never` keep the
    /// reference's verdicts.
    ///
    /// Severity: critical from 10 occurrences, warning below.
    ///
    /// ## Why is it slow?
    /// Every execution is a round trip to the database: a page listing 50
    /// orders with their items pays 51 round trips, and the database parses
    /// and plans the same statement 50 times. Latency grows with the data.
    ///
    /// ## Example
    /// `POST /api/orders/42/submit` runs
    /// `SELECT * FROM order_item WHERE order_id = 1`, then `= 2`, … `= 6`.
    ///
    /// Prefer: one `SELECT * FROM order_item WHERE order_id IN (?)`, a join,
    /// or the ORM's batch fetching (`JOIN FETCH`, `selectinload`,
    /// `prefetch_related`, `@BatchSize`).
    ///
    /// ## Known false positives
    /// Deliberate per-row work, such as `SELECT ... FOR UPDATE` on each row of
    /// a queue; a loop over a handful of items that can never grow.
    ///
    /// ## References
    /// - <https://docs.sentry.io/product/issues/issue-details/performance-issues/n-one-queries/>
    id: "n_plus_one_sql",
    label: "N+1 SQL",
    rank: 10,
    summary: "one SQL query per item of a loop, with different bind values",
    avoidable_io: true,
    tunables: &[N_PLUS_ONE_MIN_OCCURRENCES, WINDOW_DURATION_MS, SANITIZER_AWARE_CLASSIFICATION],
    gate_rules: &[N_PLUS_ONE_SQL_GATE],
    build: build,
}

struct NPlusOneSql(NPlusOneConfig);

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(NPlusOneSql(NPlusOneConfig::from_settings(s))))
}

impl Detector for NPlusOneSql {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        n_plus_one::detect(trace, EventKind::Sql, "n_plus_one_sql", &self.0, out);
    }
}
