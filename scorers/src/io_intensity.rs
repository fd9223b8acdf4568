//! `io_intensity`: I/O counts, the I/O intensity score and the waste ratio.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;

use perf_sentinel_engine::finding::GreenImpact;
use perf_sentinel_engine::registry::{
    DefaultValue, GateMeasure, GateRule, GreenSummary, Kind, ScoreBatch, ScoreInput, Scorer, Settings,
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
    fn batch(&self) -> Box<dyn ScoreBatch + '_> {
        Box::new(IoBatch {
            enabled: self.enabled,
            total: 0,
            traces: 0,
            per_endpoint: HashMap::default(),
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
}

impl ScoreBatch for IoBatch {
    fn observe(&mut self, trace: &Trace) {
        let ti = self.traces;
        self.traces += 1;
        self.total += trace.spans.len() as u64;
        if !self.enabled {
            return;
        }
        for s in &trace.spans {
            let service = match self.per_endpoint.get_mut(&*s.event.service) {
                Some(m) => m,
                None => self.per_endpoint.entry(Arc::clone(&s.event.service)).or_default(),
            };
            let e = match service.get_mut(&*s.event.source.endpoint) {
                Some(e) => e,
                None => service
                    .entry(Arc::clone(&s.event.source.endpoint))
                    .or_insert(EndpointOps {
                        ops: 0,
                        traces: 0,
                        last: usize::MAX,
                    }),
            };
            e.ops += 1;
            if e.last != ti {
                e.traces += 1;
                e.last = ti;
            }
        }
    }

    fn finish(self: Box<Self>, input: &ScoreInput<'_>, findings: &mut [Finding], summary: &mut GreenSummary) {
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
            return;
        }
        let per_endpoint = self.per_endpoint.iter().flat_map(|(service, endpoints)| {
            endpoints
                .iter()
                .map(move |(endpoint, e)| ((&**service, &**endpoint), (e.ops, e.traces)))
        });
        let iis: HashMap<(&str, &str), f64> = per_endpoint
            .map(|(k, (ops, traces))| (k, ops as f64 / traces.max(1) as f64))
            .collect();
        let avoidable_type = |f: &Finding| {
            input
                .detectors
                .get(f.finding_type.as_str())
                .is_some_and(|d| d.avoidable_io)
        };
        let mut max_extra: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        for f in findings.iter().filter(|f| avoidable_type(f)) {
            let extra = f.pattern.occurrences.saturating_sub(1);
            let slot = max_extra
                .entry((&f.trace_id, &f.pattern.template, &f.source_endpoint))
                .or_default();
            *slot = (*slot).max(extra);
        }
        let avoidable: u64 = max_extra.values().sum();
        let impacts: Vec<GreenImpact> = findings
            .iter()
            .map(|f| {
                let score = iis
                    .get(&(f.service.as_str(), f.source_endpoint.as_str()))
                    .copied()
                    .unwrap_or(0.0);
                GreenImpact {
                    estimated_extra_io_ops: if avoidable_type(f) {
                        f.pattern.occurrences.saturating_sub(1)
                    } else {
                        0
                    },
                    io_intensity_score: score,
                    io_intensity_band: band(score, IIS_BANDS).to_owned(),
                }
            })
            .collect();
        for (f, g) in findings.iter_mut().zip(impacts) {
            f.green_impact = Some(g);
        }
        let ratio = if total == 0 {
            0.0
        } else {
            avoidable as f64 / total as f64
        };
        let mut top: Vec<((&str, &str), f64)> = iis.into_iter().collect();
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
    }
}
