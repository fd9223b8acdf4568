//! `chatty_service`: too many outbound HTTP calls in one trace.

use std::collections::BTreeMap;

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{DefaultValue, Detector, Kind, Settings, Tunable};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

const CHATTY_SERVICE_MIN_CALLS: Tunable = Tunable {
    section: "detection",
    key: "chatty_service_min_calls",
    kind: Kind::Int {
        min: 1,
        max: u32::MAX as i64,
    },
    default: DefaultValue::Int(15),
    advised: None,
    doc: "Most outbound HTTP calls one trace may make; more is a finding, more than three times it a critical one.",
};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A trace that makes more than `chatty_service_min_calls` outbound HTTP
    /// calls in total, whatever their templates. One finding per trace; its
    /// template is the entry endpoint and `distinct_params` counts the
    /// distinct HTTP templates called.
    ///
    /// Severity: critical above three times the threshold, warning otherwise.
    ///
    /// ## Why is it slow?
    /// Every inter-service call adds latency, serialization and a failure
    /// point. An endpoint that needs sixteen calls to answer is as slow as
    /// their sum (or their slowest, at best) and as fragile as all of them.
    ///
    /// ## Example
    /// `GET /api/dashboard/home` calls the user, settings, notification and
    /// feed services sixteen times between them.
    ///
    /// Prefer: a batch or aggregate endpoint, a backend-for-frontend that
    /// composes the data server-side, or caching of the stable parts.
    ///
    /// ## Known false positives
    /// Gateways and aggregators whose job is to call many services; raise
    /// the threshold for them.
    id: "chatty_service",
    label: "Chatty service",
    rank: 80,
    summary: "more outbound HTTP calls in one trace than chatty_service_min_calls",
    avoidable_io: false,
    tunables: &[CHATTY_SERVICE_MIN_CALLS],
    gate_rules: &[],
    build: build,
}

struct ChattyService {
    min_calls: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(ChattyService {
        min_calls: crate::common::as_usize(s.uint(CHATTY_SERVICE_MIN_CALLS.key)),
    }))
}

impl Detector for ChattyService {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        // Counted before anything is collected: most traces stay under the bar.
        let n = trace.spans.iter().filter(|s| s.kind() == EventKind::HttpOut).count();
        if n <= self.min_calls {
            return;
        }
        let http: Vec<&Span> = trace.spans.iter().filter(|s| s.kind() == EventKind::HttpOut).collect();
        let severity = if n > self.min_calls.saturating_mul(3) {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let endpoint = http[0].event.source.endpoint.clone();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &http {
            *counts.entry(&s.template).or_default() += 1;
        }
        let mut top: Vec<(&str, usize)> = counts.iter().map(|(t, c)| (*t, *c)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = top.iter().take(2).map(|(t, c)| format!("{t} x{c}")).collect();
        let mut f = finding_for_group("chatty_service", severity, &endpoint, &http);
        f.pattern.distinct_params = counts.len() as u64;
        f.code_location = None;
        f.instrumentation_scopes.clear();
        f.trace_level = true;
        f.suggestion = format!(
            "{endpoint} makes {n} inter-service calls (most frequent: {}): add a batch endpoint or compose the data in a backend-for-frontend",
            listed.join(", ")
        );
        out.push(f);
    }
}
