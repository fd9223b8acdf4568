//! `pool_saturation`: more concurrent SQL spans than a pool can serve.

use std::collections::BTreeMap;

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{DefaultValue, Detector, Kind, Settings, Tunable};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

const POOL_SATURATION_CONCURRENT_THRESHOLD: Tunable = Tunable {
    section: "detection",
    key: "pool_saturation_concurrent_threshold",
    kind: Kind::Int {
        min: 2,
        max: u32::MAX as i64,
    },
    default: DefaultValue::Int(10),
    advised: None,
    doc: "Concurrent SQL spans of one service, at the peak, from which a trace is reported.",
};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A service whose SQL spans in one trace overlap in time, at their peak,
    /// at least `pool_saturation_concurrent_threshold` at once. Overlap is
    /// measured at the precision of the input (nanoseconds for OTLP): spans
    /// that run one after another never overlap, even within one millisecond
    /// (the reference rounds starts to milliseconds and reports sequential
    /// sub-millisecond queries as concurrent). Spans that touch (one ends as
    /// the next starts) do not overlap. The template is the service name and
    /// `occurrences` is the peak.
    ///
    /// Severity: always warning.
    ///
    /// ## Why is it slow?
    /// A connection pool serves a fixed number of queries at once. A request
    /// that fans out wider than the pool queues behind itself, and under load
    /// every request waits for a connection.
    ///
    /// ## Example
    /// `POST /api/orders/bulk` starts ten inserts in parallel on a pool of
    /// ten connections.
    ///
    /// Prefer: bound the parallelism below the pool size, batch the
    /// statements, or size the pool from its metrics
    /// (`db.client.connection.pool.*`).
    ///
    /// ## Known false positives
    /// Services with a pool much larger than the threshold, and read replicas
    /// behind separate pools.
    id: "pool_saturation",
    label: "Pool saturation",
    rank: 90,
    summary: "more SQL spans of one service at once than pool_saturation_concurrent_threshold",
    avoidable_io: false,
    tunables: &[POOL_SATURATION_CONCURRENT_THRESHOLD],
    gate_rules: &[],
    build: build,
}

struct PoolSaturation {
    threshold: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(PoolSaturation {
        threshold: crate::common::as_usize(s.uint(POOL_SATURATION_CONCURRENT_THRESHOLD.key)),
    }))
}

/// Highest number of intervals open at once; an end and a start at the same
/// instant do not overlap.
pub fn peak_concurrency(intervals: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i8)> = Vec::with_capacity(intervals.len() * 2);
    for &(s, e) in intervals {
        edges.push((s, 1));
        edges.push((e, -1));
    }
    // At equal instants, -1 (end) sorts before +1 (start).
    edges.sort_unstable();
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        cur += i64::from(d);
        peak = peak.max(cur);
    }
    usize::try_from(peak).unwrap_or(0)
}

impl Detector for PoolSaturation {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        // A service's statements are some of the trace's: counted first, as
        // most traces run fewer than the threshold in all.
        if trace.spans.iter().filter(|s| s.kind() == EventKind::Sql).count() < self.threshold {
            return;
        }
        let mut by_service: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
        for s in trace.spans.iter().filter(|s| s.kind() == EventKind::Sql) {
            by_service.entry(&s.event.service).or_default().push(s);
        }
        for (service, spans) in by_service {
            if spans.len() < self.threshold {
                continue;
            }
            let intervals: Vec<(i64, i64)> = spans.iter().filter_map(|s| s.interval_ns()).collect();
            let peak = peak_concurrency(&intervals);
            if peak < self.threshold {
                continue;
            }
            let mut f = finding_for_group("pool_saturation", Severity::Warning, service, &spans);
            f.pattern.occurrences = peak as u64;
            f.pattern.distinct_params = spans.len() as u64;
            f.code_location = None;
            f.instrumentation_scopes.clear();
            f.trace_level = true;
            f.suggestion = format!(
                "{service} ran {peak} SQL statements at once in one request: bound the parallelism below the pool size, batch the statements, or check the pool metrics (db.client.connection.pool.*)"
            );
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::peak_concurrency;

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert_eq!(peak_concurrency(&[(0, 10), (10, 20), (20, 30)]), 1);
        assert_eq!(peak_concurrency(&[(0, 10), (5, 20), (6, 7)]), 3);
        assert_eq!(peak_concurrency(&[]), 0);
    }
}
