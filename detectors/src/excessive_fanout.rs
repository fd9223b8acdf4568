//! `excessive_fanout`: a span with too many child operations.

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{DefaultValue, Detector, Kind, Settings, Tunable};
use perf_sentinel_engine::{Finding, Severity, Trace};

use crate::common::by_parent;

const MAX_FANOUT: Tunable = Tunable {
    section: "detection",
    key: "max_fanout",
    kind: Kind::Int { min: 1, max: 100_000 },
    default: DefaultValue::Int(20),
    advised: Some((5.0, 1000.0)),
    doc: "Most I/O children one span may have; more is a finding, more than three times it a critical one.",
};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A parent span with more than `max_fanout` SQL or HTTP child spans in
    /// one trace. The parent itself need not be an I/O span. When the parent
    /// is in the trace, the finding names its service, endpoint and template;
    /// otherwise the template is `parent:<span id>` and the rest comes from
    /// the first child.
    ///
    /// Severity: critical above three times `max_fanout`, warning otherwise.
    ///
    /// ## Why is it slow?
    /// Each child is a round trip. Run in sequence they add up; run in
    /// parallel they compete for the same connection pool and hit the
    /// downstream service in bursts.
    ///
    /// ## Example
    /// `POST /api/checkout/confirm` issues 21 queries from one handler span.
    ///
    /// Prefer: batch the child operations (one `IN` query, one bulk call),
    /// or load what the handler needs up front.
    ///
    /// ## Known false positives
    /// Batch jobs whose root span legitimately wraps thousands of independent
    /// operations; raise `max_fanout` for such services' traces.
    id: "excessive_fanout",
    label: "Excessive fanout",
    rank: 70,
    summary: "one span with more I/O children than max_fanout",
    avoidable_io: false,
    tunables: &[MAX_FANOUT],
    gate_rules: &[],
    build: build,
}

struct ExcessiveFanout {
    max: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(ExcessiveFanout {
        max: crate::common::as_usize(s.uint(MAX_FANOUT.key)),
    }))
}

impl Detector for ExcessiveFanout {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        // No span can have more children than the trace has spans.
        if trace.spans.len() <= self.max {
            return;
        }
        for (parent_id, children) in by_parent(trace) {
            let n = children.len();
            if n <= self.max {
                continue;
            }
            let severity = if n > self.max.saturating_mul(3) {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let parent = trace.span(parent_id);
            let template = match parent {
                Some(p) => String::from(&*p.template),
                None => format!("parent:{parent_id}"),
            };
            let mut f = finding_for_group("excessive_fanout", severity, &template, &children);
            if let Some(p) = parent {
                f.service = String::from(&*p.event.service);
                f.source_endpoint = String::from(&*p.event.source.endpoint);
            }
            f.pattern.distinct_params = n as u64;
            f.code_location = None;
            f.instrumentation_scopes.clear();
            f.suggestion = format!(
                "one span has {n} I/O children (threshold {}): batch them into fewer calls or load the data up front",
                self.max
            );
            out.push(f);
        }
    }
}
