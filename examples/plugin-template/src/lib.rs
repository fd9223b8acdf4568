//! A template detector plugin: copy this crate, rename it and the detector,
//! and write your rule in `detect`.
//!
//! A plugin depends on `perf-sentinel-engine` only. It registers its
//! detector with `declare_detector!`; the binary that links it (with
//! `extern crate perf_sentinel_plugin_template as _;`) gets the detector in
//! `analyze`, `watch`, `rules`, `explain-rule`, `--help` and the man page.

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{Detector, Settings, Tunable};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

/// Tunables live in `[detection]`; prefix their keys with the detector id.
const MIN_BYTES: Tunable = Tunable::int(
    "detection",
    "large_http_response_min_bytes",
    1,
    i64::MAX,
    1_048_576,
    "Smallest response body, in bytes, that is reported.",
);

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Outbound HTTP calls whose response body (`http.response.body.size`)
    /// is at least `large_http_response_min_bytes`, grouped by template.
    ///
    /// Severity: info.
    ///
    /// ## Why is it slow?
    /// Large responses cost transfer time, memory and parsing, often for
    /// fields the caller never reads.
    ///
    /// ## Example
    /// `GET /api/catalog` downloads 4 MiB from `GET /products` to show 20 items.
    ///
    /// Prefer: pagination, field selection, or compression.
    ///
    /// ## Known false positives
    /// File downloads and exports.
    id: "large_http_response",
    label: "Large HTTP response",
    rank: 1000,
    summary: "outbound HTTP calls with very large response bodies",
    avoidable_io: false,
    tunables: &[MIN_BYTES],
    gate_rules: &[],
    build: build,
}

struct LargeHttpResponse {
    min_bytes: u64,
}

/// Called once at start-up with the validated tunables.
fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(LargeHttpResponse {
        min_bytes: s.uint(MIN_BYTES.key),
    }))
}

impl Detector for LargeHttpResponse {
    /// Pure: no I/O, no clock, same trace in, same findings out.
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        let mut groups: std::collections::BTreeMap<&str, Vec<&Span>> = std::collections::BTreeMap::new();
        for s in trace.spans.iter().filter(|s| s.kind() == EventKind::HttpOut) {
            if s.event.response_size_bytes.is_some_and(|b| b >= self.min_bytes) {
                groups.entry(&s.template).or_default().push(s);
            }
        }
        for (template, spans) in groups {
            let largest = spans
                .iter()
                .filter_map(|s| s.event.response_size_bytes)
                .max()
                .unwrap_or(0);
            let mut f = finding_for_group("large_http_response", Severity::Info, template, &spans);
            f.suggestion = format!("responses up to {largest} bytes: paginate, select fields or compress");
            out.push(f);
        }
    }
}
