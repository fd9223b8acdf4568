//! `n_plus_one_http`: one HTTP call per item of a loop.

use perf_sentinel_engine::registry::{Detector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Trace};

use crate::common::{
    N_PLUS_ONE_HTTP_GATE, N_PLUS_ONE_MIN_OCCURRENCES, SANITIZER_AWARE_CLASSIFICATION, WINDOW_DURATION_MS,
};
use crate::n_plus_one::{self, NPlusOneConfig};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// One outbound HTTP endpoint called again and again in a single trace
    /// with a different id each time: the same `METHOD /path/{id}` template at
    /// least `n_plus_one_min_occurrences` times, with at least that many
    /// distinct parameter lists (path ids and query strings), all within
    /// `window_duration_ms`. Calls whose ids were scrubbed are classified by
    /// `sanitizer_aware_classification` (in `auto` mode: durations that vary
    /// by more than half their mean).
    ///
    /// Severity: critical from 10 occurrences, warning below.
    ///
    /// ## Why is it slow?
    /// Each call pays connection handling, serialization, the remote
    /// service's own work and the network twice. Ten sequential calls of 12 ms
    /// are 120 ms the user waits for, and the callee sees ten times the load.
    ///
    /// ## Example
    /// `POST /api/orders/42/submit` calls `GET /api/users/1`,
    /// `GET /api/users/2`, … `GET /api/users/6`.
    ///
    /// Prefer: a batch endpoint (`GET /api/users?ids=1,2,3`), a GraphQL or
    /// data-loader layer that coalesces the ids, or a cache in front of the
    /// callee.
    ///
    /// ## Known false positives
    /// Fan-out to different resources that happen to share a route shape and
    /// cannot be batched (for example, webhooks to distinct tenants).
    ///
    /// ## References
    /// - <https://docs.sentry.io/product/issues/issue-details/performance-issues/n-one-api-calls/>
    id: "n_plus_one_http",
    label: "N+1 HTTP",
    rank: 20,
    summary: "one HTTP call per item of a loop, with different ids",
    avoidable_io: true,
    tunables: &[N_PLUS_ONE_MIN_OCCURRENCES, WINDOW_DURATION_MS, SANITIZER_AWARE_CLASSIFICATION],
    gate_rules: &[N_PLUS_ONE_HTTP_GATE],
    build: build,
}

struct NPlusOneHttp(NPlusOneConfig);

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(NPlusOneHttp(NPlusOneConfig::from_settings(s))))
}

impl Detector for NPlusOneHttp {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        n_plus_one::detect(trace, EventKind::HttpOut, "n_plus_one_http", &self.0, out);
    }
}
