//! `io_intensity`: I/O counts, the I/O intensity score and the waste ratio.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;

use perf_sentinel_engine::finding::GreenImpact;
use perf_sentinel_engine::registry::{
    BatchStart, DefaultValue, FindingScore, GateMeasure, GateRule, GreenSummary, Kind, ScoreBatch, ScoreInput, Scorer,
    Settings,
};
use perf_sentinel_engine::{Finding, Trace};
use serde_json::{Value, json};

use crate::common::{ENABLED, IIS_BANDS, WASTE_BANDS, band};

const IO_WASTE_RATIO_MAX: GateRule = GateRule {
    key: "io_waste_ratio_max",
    measure: GateMeasure::Metric("io_waste_ratio"),
    kind: Kind::Float { min: 0.0, max: 1.0 },
    default: DefaultValue::Float(0.30),
    doc: "Highest I/O waste ratio (avoidable I/O operations / all I/O operations) the quality gate accepts.",
};

perf_sentinel_engine::declare_scorer! {
    /// ## What it computes
    /// Every SQL or HTTP span is one I/O operation. For each
    /// (service, endpoint) it counts the operations and the traces that
    /// reached it; the **I/O intensity score** (IIS) is operations per trace.
    /// **Avoidable** operations come from findings of detectors that declare
    /// avoidable I/O (N+1 and redundant): occurrences minus one, the largest
    /// per (trace, template, endpoint). The **waste ratio** is avoidable over
    /// total operations; it is published as the metric `io_waste_ratio` for
    /// the quality gate.
    ///
    /// Bands are fixed: IIS moderate from 2, high from 5, critical from 10;
    /// waste ratio moderate from 0.10, high from 0.30, critical from 0.50.
    ///
    /// ## Output
    /// `green_summary.total_io_ops`, `avoidable_io_ops`, `io_waste_ratio`,
    /// `io_waste_ratio_band`, `top_offenders` (every endpoint, by IIS
    /// descending) and each finding's `green_impact`. Acknowledging a finding
    /// does not lower the waste ratio.
    id: "io_intensity",
    rank: 10,
    summary: "I/O operations per request, avoidable I/O and the waste ratio",
    tunables: &[ENABLED],
    gate_rules: &[IO_WASTE_RATIO_MAX],
    build: build,
}

struct IoIntensity {
    enabled: bool,
}

fn build(s: &Settings) -> Result<Box<dyn Scorer>, String> {
    Ok(Box::new(IoIntensity {
        enabled: s.bool(ENABLED.key),
    }))
}

impl Scorer for IoIntensity {
    fn batch(&self, start: &BatchStart<'_>) -> Box<dyn ScoreBatch + '_> {
        let avoidable: Vec<&'static str> = start
            .detectors
            .values()
            .filter(|d| d.avoidable_io)
            .map(|d| d.id)
            .collect();
        // Only when a cross-trace detector declares avoidable I/O can a
        // (trace, template, endpoint) key recur after its trace's findings
        // were tallied; then every key is kept to the end.
        let keep_keys = start.cross_trace.iter().any(|id| avoidable.contains(id));
        Box::new(IoBatch {
            enabled: self.enabled,
            total: 0,
            traces: 0,
            per_endpoint: HashMap::default(),
            avoidable,
            kept: keep_keys.then(BTreeMap::new),
            avoidable_sum: 0,
        })
    }
}

/// Spans of one (service, endpoint): operations, distinct traces, and the
/// last trace counted (traces are observed once each, so a trace is new to
/// an endpoint exactly when it differs from the last one counted there).
#[derive(Clone, Copy)]
struct EndpointOps {
    ops: u64,
    traces: u64,
    last: usize,
}

struct IoBatch {
    enabled: bool,
    total: u64,
    /// Traces observed so far; the index of the current one.
    traces: usize,
    /// service -> endpoint -> operations.
    per_endpoint: HashMap<Arc<str>, HashMap<Arc<str>, EndpointOps>>,
    /// Ids of the detectors whose findings count as avoidable I/O.
    avoidable: Vec<&'static str>,
    /// Largest extra operations per (trace, template, endpoint), when
    /// every key is kept to the end.
    kept: Option<BTreeMap<(String, String, String), u64>>,
    /// Avoidable operations of the traces tallied, when keys are not kept.
    avoidable_sum: u64,
}

impl ScoreBatch for IoBatch {
    fn observe(&mut self, trace: &Trace) {
        let ti = self.traces;
        self.traces += 1;
        self.total += trace.spans.len() as u64;
        if !self.enabled {
            return;
        }
        // A run of spans of one service and endpoint is counted with one lookup.
        for run in perf_sentinel_engine::trace::endpoint_runs(&trace.spans) {
            let (service, endpoint) = (&run[0].event.service, &run[0].event.source.endpoint);
            let per_service = match self.per_endpoint.get_mut(&**service) {
                Some(m) => m,
                None => self.per_endpoint.entry(Arc::clone(service)).or_default(),
            };
            let e = match per_service.get_mut(&**endpoint) {
                Some(e) => e,
                None => per_service.entry(Arc::clone(endpoint)).or_insert(EndpointOps {
                    ops: 0,
                    traces: 0,
                    last: usize::MAX,
                }),
            };
            e.ops += run.len() as u64;
            if e.last != ti {
                e.traces += 1;
                e.last = ti;
            }
        }
    }

    fn tally(&mut self, findings: &[Finding]) {
        if !self.enabled {
            return;
        }
        let avoidable = findings
            .iter()
            .filter(|f| self.avoidable.contains(&f.finding_type.as_str()));
        let extra = |f: &Finding| f.pattern.occurrences.saturating_sub(1);
        if let Some(kept) = &mut self.kept {
            for f in avoidable {
                let key = (
                    f.trace_id.clone(),
                    f.pattern.template.clone(),
                    f.source_endpoint.clone(),
                );
                let slot = kept.entry(key).or_default();
                *slot = (*slot).max(extra(f));
            }
            return;
        }
        // A trace's findings all come in one call, so the largest extra per
        // (template, endpoint) is summed as each trace's run ends.
        let mut trace: Option<&str> = None;
        let mut largest: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for f in avoidable {
            if trace != Some(f.trace_id.as_str()) {
                self.avoidable_sum += largest.values().sum::<u64>();
                largest.clear();
                trace = Some(&f.trace_id);
            }
            let slot = largest.entry((&f.pattern.template, &f.source_endpoint)).or_default();
            *slot = (*slot).max(extra(f));
        }
        self.avoidable_sum += largest.values().sum::<u64>();
    }

    fn finish(mut self: Box<Self>, _input: &ScoreInput<'_>, summary: &mut GreenSummary) -> Option<FindingScore> {
        let total = self.total;
        let f = &mut summary.fields;
        if !self.enabled {
            f.insert("total_io_ops".into(), json!(total));
            f.insert("avoidable_io_ops".into(), json!(0));
            f.insert("io_waste_ratio".into(), json!(0.0));
            f.insert("io_waste_ratio_band".into(), json!("healthy"));
            f.insert("top_offenders".into(), json!([]));
            summary.metrics.insert("io_waste_ratio".into(), 0.0);
            summary.metrics.insert("avoidable_io_ops".into(), 0.0);
            return None;
        }
        let avoidable = self.avoidable_sum + self.kept.as_ref().map_or(0, |kept| kept.values().sum());
        // service -> endpoint -> IIS.
        let iis: BTreeMap<String, BTreeMap<String, f64>> = self
            .per_endpoint
            .iter()
            .map(|(service, endpoints)| {
                let scores = endpoints
                    .iter()
                    .map(|(endpoint, e)| (endpoint.to_string(), e.ops as f64 / e.traces.max(1) as f64))
                    .collect();
                (service.to_string(), scores)
            })
            .collect();
        let ratio = if total == 0 {
            0.0
        } else {
            avoidable as f64 / total as f64
        };
        let mut top: Vec<((&str, &str), f64)> = iis
            .iter()
            .flat_map(|(service, scores)| {
                scores
                    .iter()
                    .map(move |(endpoint, &score)| ((&**service, &**endpoint), score))
            })
            .collect();
        top.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| a.0.0.cmp(b.0.0))
                .then_with(|| a.0.1.cmp(b.0.1))
        });
        let top: Vec<Value> = top
            .into_iter()
            .map(|((service, endpoint), score)| {
                json!({
                    "endpoint": endpoint,
                    "service": service,
                    "io_intensity_score": score,
                    "io_intensity_band": band(score, IIS_BANDS),
                })
            })
            .collect();
        f.insert("total_io_ops".into(), json!(total));
        f.insert("avoidable_io_ops".into(), json!(avoidable));
        f.insert("io_waste_ratio".into(), json!(ratio));
        f.insert("io_waste_ratio_band".into(), json!(band(ratio, WASTE_BANDS)));
        f.insert("top_offenders".into(), Value::Array(top));
        summary.metrics.insert("io_waste_ratio".into(), ratio);
        summary.metrics.insert("avoidable_io_ops".into(), avoidable as f64);
        let avoidable_types = std::mem::take(&mut self.avoidable);
        Some(Box::new(move |f: &mut Finding| {
            let score = iis
                .get(f.service.as_str())
                .and_then(|scores| scores.get(f.source_endpoint.as_str()))
                .copied()
                .unwrap_or(0.0);
            f.green_impact = Some(GreenImpact {
                estimated_extra_io_ops: if avoidable_types.contains(&f.finding_type.as_str()) {
                    f.pattern.occurrences.saturating_sub(1)
                } else {
                    0
                },
                io_intensity_score: score,
                io_intensity_band: band(score, IIS_BANDS).to_owned(),
            });
        }))
    }
}

#[cfg(test)]
mod tests {
    use perf_sentinel_engine::registry::DetectorDescriptor;

    use super::*;

    fn descriptor(id: &'static str, avoidable_io: bool) -> &'static DetectorDescriptor {
        Box::leak(Box::new(DetectorDescriptor {
            id,
            label: id,
            rank: 1,
            summary: "",
            docs: "",
            crate_name: "tests",
            avoidable_io,
            tunables: &[],
            gate_rules: &[],
            build: |_| Err(String::new()),
        }))
    }

    fn finding(finding_type: &str, trace: &str, template: &str, occurrences: u64) -> Finding {
        serde_json::from_value(json!({
            "type": finding_type, "severity": "warning", "trace_id": trace, "service": "svc",
            "source_endpoint": "GET /", "suggestion": "", "first_timestamp": "", "last_timestamp": "",
            "pattern": {"template": template, "occurrences": occurrences, "window_ms": 0, "distinct_params": 0},
        }))
        .unwrap()
    }

    /// `avoidable_io_ops` after tallying `calls` in order, with
    /// `cross_trace` as the detectors that have a cross-trace pass; and
    /// the per-finding score.
    fn score(cross_trace: &[&'static str], calls: &[Vec<Finding>]) -> (f64, Option<FindingScore>) {
        // `a` and `c` avoidable, `n` not.
        let detectors: BTreeMap<&'static str, &'static DetectorDescriptor> = [
            ("a", descriptor("a", true)),
            ("c", descriptor("c", true)),
            ("n", descriptor("n", false)),
        ]
        .into_iter()
        .collect();
        let start = BatchStart {
            detectors: &detectors,
            cross_trace,
        };
        let scorer = IoIntensity { enabled: true };
        let mut batch = scorer.batch(&start);
        for call in calls {
            batch.tally(call);
        }
        let mut summary = GreenSummary::default();
        let input = ScoreInput {
            traces: 2,
            endpoint_io: &[],
            detectors: &detectors,
        };
        let score = batch.finish(&input, &mut summary);
        (summary.metrics["avoidable_io_ops"], score)
    }

    #[test]
    fn the_largest_extra_per_trace_template_and_endpoint_counts_once() {
        let per_trace = vec![
            vec![
                finding("a", "t1", "X", 5),
                finding("n", "t1", "X", 10),
                finding("a", "t1", "X", 3),
                finding("a", "t1", "Y", 2),
            ],
            // A call may hold several traces, each together.
            vec![finding("a", "t2", "X", 2), finding("a", "t3", "X", 4)],
        ];
        // t1: X 4, Y 1; t2: X 1; t3: X 3.
        assert_eq!(score(&[], &per_trace).0, 9.0);
        // Every key kept to the end gives the same sum.
        assert_eq!(score(&["c"], &per_trace).0, 9.0);
        // A cross-trace detector without avoidable I/O changes nothing.
        let mut with_cross = per_trace.clone();
        with_cross.push(vec![finding("n", "t1", "X", 50)]);
        assert_eq!(score(&["n"], &with_cross).0, 9.0);
        // An avoidable cross-trace finding on a key of an ended trace
        // raises that key's largest extra instead of adding to it.
        let mut with_cross = per_trace.clone();
        with_cross.push(vec![finding("c", "t1", "X", 7), finding("c", "t4", "Z", 3)]);
        assert_eq!(score(&["c"], &with_cross).0, 9.0 - 4.0 + 6.0 + 2.0);
    }

    #[test]
    fn each_finding_gets_its_extra_operations_and_endpoint_score() {
        let (_, score) = score(&[], &[vec![finding("a", "t1", "X", 5)]]);
        let score = score.expect("a score per finding when enabled");
        for (finding_type, extra) in [("a", 4), ("n", 0)] {
            let mut f = finding(finding_type, "t9", "X", 5);
            score(&mut f);
            let g = f.green_impact.expect("green impact");
            assert_eq!(g.estimated_extra_io_ops, extra, "{finding_type}");
            // No spans observed: the endpoint has no score.
            assert_eq!((g.io_intensity_score, g.io_intensity_band.as_str()), (0.0, "healthy"));
        }
    }
}
