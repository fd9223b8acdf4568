//! The slow-operation rules shared by `slow_sql` and `slow_http`: per trace,
//! and across the traces of a batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use perf_sentinel_engine::group::{bounds, distinct_params, finding_for_group, rank_index, with_timing};
use perf_sentinel_engine::registry::{BatchDetector, Settings};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

use crate::common::{SLOW_QUERY_MIN_OCCURRENCES, SLOW_QUERY_THRESHOLD_MS, as_usize, by_template};

#[derive(Debug, Clone, Copy)]
pub struct SlowConfig {
    /// Threshold in microseconds.
    pub threshold_us: u64,
    pub min_occurrences: usize,
}

impl SlowConfig {
    pub fn from_settings(s: &Settings) -> SlowConfig {
        SlowConfig {
            threshold_us: s.uint(SLOW_QUERY_THRESHOLD_MS.key).saturating_mul(1000),
            min_occurrences: as_usize(s.uint(SLOW_QUERY_MIN_OCCURRENCES.key)),
        }
    }

    fn severity(&self, max_us: u64) -> Severity {
        if max_us > self.threshold_us.saturating_mul(5) {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }
}

fn advice(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Sql => {
            "check the query plan: add the missing index, select fewer columns or rows, or precompute the result"
        }
        EventKind::HttpOut => "cache the response, make the endpoint faster, or call it off the request path",
    }
}

/// Slow spans of one kind, grouped by template, in one trace.
pub fn detect(trace: &Trace, kind: EventKind, finding_type: &str, cfg: &SlowConfig, out: &mut Vec<Finding>) {
    for (template, group) in by_template(trace, kind) {
        let slow: Vec<&Span> = group
            .into_iter()
            .filter(|s| s.event.duration_us > cfg.threshold_us)
            .collect();
        if slow.len() < cfg.min_occurrences || slow.is_empty() {
            continue;
        }
        let max = slow.iter().map(|s| s.event.duration_us).max().unwrap_or(0);
        let mut f = finding_for_group(finding_type, cfg.severity(max), &template, &slow);
        f.pattern.distinct_params = distinct_params(slow.iter().copied());
        f.suggestion = format!(
            "{} executions took over {} ms (slowest {:.1} ms): {}",
            slow.len(),
            cfg.threshold_us / 1000,
            max as f64 / 1000.0,
            advice(kind)
        );
        out.push(with_timing(f, &slow));
    }
}

/// Slow spans of one kind grouped by template across all traces of a batch;
/// reported when a template is slow in at least two traces.
///
/// Only the spans over the threshold are kept (cloned, their names shared),
/// so the batch's traces can be freed as they are observed.
pub struct SlowAcrossTraces {
    kind: EventKind,
    finding_type: &'static str,
    cfg: SlowConfig,
    groups: BTreeMap<Arc<str>, Vec<Span>>,
}

impl SlowAcrossTraces {
    pub fn new(kind: EventKind, finding_type: &'static str, cfg: SlowConfig) -> SlowAcrossTraces {
        SlowAcrossTraces {
            kind,
            finding_type,
            cfg,
            groups: BTreeMap::new(),
        }
    }
}

impl BatchDetector for SlowAcrossTraces {
    fn observe(&mut self, trace: &Trace) {
        for s in trace
            .spans
            .iter()
            .filter(|s| s.kind() == self.kind && s.event.duration_us > self.cfg.threshold_us)
        {
            match self.groups.get_mut(&s.template) {
                Some(g) => g.push(s.clone()),
                None => {
                    self.groups.insert(Arc::clone(&s.template), vec![s.clone()]);
                }
            }
        }
    }

    fn finish(self: Box<Self>, out: &mut Vec<Finding>) {
        let SlowAcrossTraces {
            kind,
            finding_type,
            cfg,
            groups,
        } = *self;
        for (template, mut entries) in groups {
            if entries.len() < cfg.min_occurrences {
                continue;
            }
            let traces: BTreeSet<&str> = entries.iter().map(|s| &*s.event.trace_id).collect();
            if traces.len() < 2 {
                continue;
            }
            let trace_count = traces.len();
            drop(traces);
            // Ties on duration are broken by trace and span id, never by input order.
            entries.sort_by(|a, b| {
                (
                    a.event.duration_us,
                    &a.event.trace_id,
                    &a.event.span_id,
                    &a.event.timestamp,
                )
                    .cmp(&(
                        b.event.duration_us,
                        &b.event.trace_id,
                        &b.event.span_id,
                        &b.event.timestamp,
                    ))
            });
            let n = entries.len();
            let pct = |p| entries[rank_index(n, p)].event.duration_us;
            let (p50, p95, p99) = (pct(50), pct(95), pct(99));
            if p99 <= cfg.threshold_us {
                continue;
            }
            let Some(slowest) = entries.last() else {
                continue;
            };
            let mut f = finding_for_group(
                finding_type,
                cfg.severity(slowest.event.duration_us),
                &template,
                &[slowest],
            );
            let b = bounds(entries.iter());
            f.pattern.occurrences = n as u64;
            f.pattern.distinct_params = 0;
            f.pattern.window_ms = b.window_ms;
            f.first_timestamp = b.first_timestamp;
            f.last_timestamp = b.last_timestamp;
            f.span_ids = entries.iter().map(|s| s.event.span_id.as_str().to_owned()).collect();
            f.suggestion = format!(
                "cross-trace analysis: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms over {n} slow executions in {trace_count} traces: {}",
                p50 as f64 / 1000.0,
                p95 as f64 / 1000.0,
                p99 as f64 / 1000.0,
                advice(kind)
            );
            out.push(f);
        }
    }
}
