//! The slow-operation rules shared by `slow_sql` and `slow_http`: per trace,
//! and across the traces of a batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use perf_sentinel_engine::group::{distinct_params, finding_for_group, rank_index, timestamp_bounds, with_timing};
use perf_sentinel_engine::registry::{BatchDetector, Settings};
use perf_sentinel_engine::trace::CompactString;
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

use crate::common::{SLOW_QUERY_MIN_OCCURRENCES, SLOW_QUERY_THRESHOLD_MS, as_usize, by_template_where};

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
    // Only slow spans are grouped: a template without one has no finding.
    let slow_spans = |s: &Span| s.event.duration_us > cfg.threshold_us;
    for (template, slow) in by_template_where(trace, kind, cfg.min_occurrences, slow_spans) {
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
/// Of each span over the threshold only what the report needs is kept
/// (duration, trace and span ids, timestamp: 72 bytes against a span's
/// ~370), and the slowest span of each template whole, so the batch's
/// traces can be freed as they are observed.
pub struct SlowAcrossTraces {
    kind: EventKind,
    finding_type: &'static str,
    cfg: SlowConfig,
    groups: BTreeMap<Arc<str>, SlowGroup>,
}

/// One template's slow spans.
struct SlowGroup {
    entries: Vec<Slow>,
    /// The greatest span on [`key`] (the last of equals), whole.
    slowest: Span,
}

/// What is kept of a slow span.
struct Slow {
    duration_us: u64,
    trace_id: Arc<str>,
    span_id: CompactString,
    timestamp: CompactString,
}

/// Slow spans are ordered by duration, then trace id, span id and timestamp.
fn key(s: &Span) -> (u64, &str, &str, &str) {
    let e = &s.event;
    (e.duration_us, &e.trace_id, &e.span_id, &e.timestamp)
}

impl Slow {
    fn new(s: &Span) -> Slow {
        Slow {
            duration_us: s.event.duration_us,
            trace_id: Arc::clone(&s.event.trace_id),
            span_id: s.event.span_id.clone(),
            timestamp: s.event.timestamp.clone(),
        }
    }

    /// As [`key`].
    fn key(&self) -> (u64, &str, &str, &str) {
        (self.duration_us, &self.trace_id, &self.span_id, &self.timestamp)
    }
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
                Some(g) => {
                    if key(s) >= key(&g.slowest) {
                        g.slowest = s.clone();
                    }
                    g.entries.push(Slow::new(s));
                }
                None => {
                    let group = SlowGroup {
                        entries: vec![Slow::new(s)],
                        slowest: s.clone(),
                    };
                    self.groups.insert(Arc::clone(&s.template), group);
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
        for (template, group) in groups {
            let SlowGroup { mut entries, slowest } = group;
            if entries.len() < cfg.min_occurrences {
                continue;
            }
            let traces: BTreeSet<&str> = entries.iter().map(|s| &*s.trace_id).collect();
            if traces.len() < 2 {
                continue;
            }
            let trace_count = traces.len();
            drop(traces);
            entries.sort_by(|a, b| a.key().cmp(&b.key()));
            let n = entries.len();
            let pct = |p| entries[rank_index(n, p)].duration_us;
            let (p50, p95, p99) = (pct(50), pct(95), pct(99));
            if p99 <= cfg.threshold_us {
                continue;
            }
            let slowest = &slowest;
            let mut f = finding_for_group(
                finding_type,
                cfg.severity(slowest.event.duration_us),
                &template,
                &[slowest],
            );
            let b = timestamp_bounds(entries.iter().map(|s| s.timestamp.as_str()));
            f.pattern.occurrences = n as u64;
            f.pattern.distinct_params = 0;
            f.pattern.window_ms = b.window_ms;
            f.first_timestamp = b.first_timestamp;
            f.last_timestamp = b.last_timestamp;
            f.span_ids = entries.iter().map(|s| s.span_id.clone()).collect();
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
