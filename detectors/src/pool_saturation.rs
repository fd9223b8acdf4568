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

/// Whether each interval, in the order given, starts no earlier than every
/// one before it ends: then no two overlap and the peak is at most 1. Only
/// a sufficient test: intervals out of start order answer `false`.
pub fn one_at_a_time(intervals: &[(i64, i64)]) -> bool {
    let mut end = i64::MIN;
    intervals.iter().all(|&(s, e)| {
        let ok = s >= end;
        end = end.max(e);
        ok
    })
}

impl Detector for PoolSaturation {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        // A service's statements are some of the trace's: counted first, as
        // most traces run fewer than the threshold in all.
        let mut sql = trace.spans.iter().filter(|s| s.kind() == EventKind::Sql);
        let Some(first) = sql.next() else { return };
        let (mut n, mut one_service) = (1, true);
        for s in sql {
            n += 1;
            // `Arc<str>` equality compares addresses before text.
            one_service &= s.event.service == first.event.service;
        }
        if n < self.threshold {
            return;
        }
        let mut by_service: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
        if one_service {
            // The usual trace: no map needed to split it by service.
            let mut spans = Vec::with_capacity(n);
            spans.extend(trace.spans.iter().filter(|s| s.kind() == EventKind::Sql));
            by_service.insert(&first.event.service, spans);
        } else {
            for s in trace.spans.iter().filter(|s| s.kind() == EventKind::Sql) {
                by_service.entry(&s.event.service).or_default().push(s);
            }
        }
        for (service, spans) in by_service {
            if spans.len() < self.threshold {
                continue;
            }
            let intervals: Vec<(i64, i64)> = spans.iter().filter_map(|s| s.interval_ns()).collect();
            // The threshold is at least 2: statements that ran one at a
            // time (the usual case) need no sweep.
            if intervals.len() < self.threshold || one_at_a_time(&intervals) {
                continue;
            }
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
    use super::{PoolSaturation, one_at_a_time, peak_concurrency};
    use perf_sentinel_engine::registry::Detector;

    /// `(service, peak)` of each finding for statements `(service, start
    /// ms)`, each 10 ms long, at a threshold of 4.
    fn saturated(statements: &[(&str, i64)]) -> Vec<(String, u64)> {
        let events = statements
            .iter()
            .enumerate()
            .map(|(i, (service, start_ms))| {
                let mut e = perf_sentinel_engine::testing::sql_event("t", &format!("s{i:02}"), "SELECT 1");
                e.service = (*service).to_owned();
                e.start_unix_nanos = Some(1_700_000_000_000_000_000 + start_ms * 1_000_000);
                e.duration_us = 10_000;
                e
            })
            .collect();
        perf_sentinel_engine::testing::findings_in(events, |trace, out| {
            PoolSaturation { threshold: 4 }.detect(trace, &[], out)
        })
        .into_iter()
        .map(|f| (f.service, f.pattern.occurrences))
        .collect()
    }

    #[test]
    fn counts_each_service_apart() {
        let at_once = |service, n| std::iter::repeat_n((service, 0), n);
        // One service: at once is reported, in turn is not.
        assert_eq!(saturated(&at_once("a", 5).collect::<Vec<_>>()), [("a".to_owned(), 5)]);
        let in_turn: Vec<(&str, i64)> = (0..8).map(|i| ("a", i * 10)).collect();
        assert!(saturated(&in_turn).is_empty());
        // Two services, neither past the threshold on its own.
        assert!(saturated(&at_once("a", 3).chain(at_once("b", 3)).collect::<Vec<_>>()).is_empty());
        // Two services, one past it.
        let both: Vec<_> = at_once("b", 2).chain(at_once("a", 4)).chain(at_once("b", 1)).collect();
        assert_eq!(saturated(&both), [("a".to_owned(), 4)]);
        let both: Vec<_> = at_once("b", 4).chain(at_once("a", 4)).collect();
        assert_eq!(saturated(&both), [("a".to_owned(), 4), ("b".to_owned(), 4)]);
    }

    /// The shortcut never skips a set the sweep would report at the
    /// smallest threshold (2), and is taken for statements run in turn.
    #[test]
    fn one_at_a_time_only_when_nothing_overlaps() {
        let mut cases = perf_sentinel_engine::testing::Cases::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| cases.below(n) as i64;
        let (mut taken, mut overlapping) = (0, 0);
        for round in 0..20_000 {
            let n = 1 + next(12) as usize;
            let mut iv = Vec::with_capacity(n);
            let mut at = next(50);
            for _ in 0..n {
                // In start order with gaps, touching or overlapping, some of
                // no length; every fourth set shuffled out of order.
                at += next(30) - 10;
                iv.push((at, at + next(25)));
            }
            if round % 4 == 0 {
                iv.reverse();
            }
            let peak = peak_concurrency(&iv);
            if one_at_a_time(&iv) {
                taken += 1;
                assert!(peak <= 1, "{iv:?}: peak {peak}");
            } else if peak <= 1 {
                // Allowed (the test is only sufficient), but not for
                // intervals of some length in start order.
                let in_order = iv.windows(2).all(|w| w[0].0 <= w[1].0);
                assert!(!in_order || iv.iter().any(|(s, e)| s == e), "{iv:?}");
            } else {
                overlapping += 1;
            }
        }
        assert!(
            taken > 1_000 && overlapping > 1_000,
            "{taken} taken, {overlapping} overlapping"
        );
        assert!(one_at_a_time(&[(0, 10), (10, 20), (20, 20), (20, 30)]));
        assert!(!one_at_a_time(&[(0, 10), (9, 20)]));
        assert!(!one_at_a_time(&[(0, 100), (10, 20), (30, 40)]));
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert_eq!(peak_concurrency(&[(0, 10), (10, 20), (20, 30)]), 1);
        assert_eq!(peak_concurrency(&[(0, 10), (5, 20), (6, 7)]), 3);
        assert_eq!(peak_concurrency(&[]), 0);
    }
}
