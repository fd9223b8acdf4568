//! The engine: built once from a config, it analyzes batches of traces with
//! every registered detector and scorer.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ack::Acknowledgments;
use crate::config::{Config, ConfigError, Schema};
use crate::event::SpanEvent;
use crate::finding::{Confidence, Finding};
use crate::ingest::IngestStats;
use crate::registry::{
    self, BatchDetector, Detector, DetectorDescriptor, EndpointIo, GateMeasure, GateRule, GreenSummary, RegistryError,
    ScoreBatch, ScoreInput, Scorer, ScorerDescriptor, Value,
};
use crate::report::{AnalysisInfo, GateResult, QualityGate, Report};
use crate::trace::Trace;

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("detector or scorer `{id}` refused its configuration: {message}")]
    Build { id: &'static str, message: String },
}

/// A detector ready to run, with its descriptor.
pub struct LoadedDetector {
    pub descriptor: &'static DetectorDescriptor,
    pub detector: Box<dyn Detector>,
}

/// A scorer ready to run, with its descriptor.
pub struct LoadedScorer {
    pub descriptor: &'static ScorerDescriptor,
    pub scorer: Box<dyn Scorer>,
}

/// Batches smaller than this are analyzed on the calling thread.
const PARALLEL_MIN_TRACES: usize = 256;

/// Traces analyzed, then freed, at a time by [`Engine::analyze_owned`].
const OWNED_SLICE_TRACES: usize = 1024;

/// One batch under analysis: the findings so far and every cross-trace state.
struct BatchRun<'e> {
    engine: &'e Engine,
    findings: Vec<Finding>,
    batch_detectors: Vec<Box<dyn BatchDetector + 'e>>,
    scorers: Vec<Box<dyn ScoreBatch + 'e>>,
    endpoint_io: EndpointCounter,
    traces: usize,
}

impl<'e> BatchRun<'e> {
    fn new(engine: &'e Engine) -> BatchRun<'e> {
        BatchRun {
            engine,
            findings: Vec::new(),
            batch_detectors: engine.detectors.iter().filter_map(|d| d.detector.batch()).collect(),
            scorers: engine.scorers.iter().map(|s| s.scorer.batch()).collect(),
            endpoint_io: EndpointCounter::default(),
            traces: 0,
        }
    }

    /// Runs the per-trace detectors over `traces`, then shows each trace to
    /// the cross-trace states, in order.
    fn add(&mut self, traces: &[Trace]) {
        // Traces are independent: large slices are split over the cores, and
        // the parts are joined in order, so the result is the same either way.
        let detectors = &self.engine.detectors;
        let parts = crate::parallel::map_chunks(traces, PARALLEL_MIN_TRACES, |chunk| detect_traces(detectors, chunk));
        for mut part in parts {
            self.findings.append(&mut part);
        }
        self.observe(traces);
    }

    /// Shows each trace, in order, to the cross-trace states.
    fn observe(&mut self, traces: &[Trace]) {
        for trace in traces {
            for d in &mut self.batch_detectors {
                d.observe(trace);
            }
            for s in &mut self.scorers {
                s.observe(trace);
            }
            self.endpoint_io.observe(trace);
        }
        self.traces += traces.len();
    }

    fn finish(self, confidence: Confidence) -> Analysis {
        let BatchRun {
            engine,
            mut findings,
            batch_detectors,
            scorers,
            endpoint_io,
            traces,
        } = self;
        if traces >= 2 {
            for d in batch_detectors {
                d.finish(&mut findings);
            }
        }
        let per_endpoint_io_ops = endpoint_io.finish();
        let mut summary = GreenSummary::default();
        let input = ScoreInput {
            traces,
            endpoint_io: &per_endpoint_io_ops,
            detectors: &engine.by_id,
        };
        for s in scorers {
            s.finish(&input, &mut findings, &mut summary);
        }
        crate::parallel::for_each_chunk(&mut findings, PARALLEL_MIN_TRACES, |chunk| {
            for f in chunk {
                f.confidence = confidence;
                f.signature = f.compute_signature();
            }
        });
        engine.sort_findings(&mut findings);
        Analysis {
            findings,
            green_summary: summary,
            per_endpoint_io_ops,
        }
    }
}

/// The result of analyzing one batch, before it becomes a report.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Findings, sorted on the full key (see [`Engine::sort_findings`]).
    pub findings: Vec<Finding>,
    pub green_summary: GreenSummary,
    pub per_endpoint_io_ops: Vec<EndpointIo>,
}

/// Every per-trace detector, by rank, over each trace of `traces`.
fn detect_traces(detectors: &[LoadedDetector], traces: &[Trace]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut fresh = Vec::new();
    for trace in traces {
        let start = found.len();
        for d in detectors {
            d.detector.detect(trace, &found[start..], &mut fresh);
            found.append(&mut fresh);
        }
    }
    found
}

/// Detectors, scorers and quality gate built from one configuration.
pub struct Engine {
    config: Arc<Config>,
    detectors: Vec<LoadedDetector>,
    scorers: Vec<LoadedScorer>,
    by_id: BTreeMap<&'static str, &'static DetectorDescriptor>,
    gate: Vec<(GateRule, f64)>,
}

impl Engine {
    /// The schema of every registered tunable; load a [`Config`] against it.
    pub fn schema() -> Result<Schema, RegistryError> {
        Schema::from_registry()
    }

    /// Builds every registered detector and scorer from `config`. A config
    /// that a descriptor rejects is an error here, never during analysis.
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        let config = Arc::new(config);
        let mut detectors = Vec::new();
        let mut by_id = BTreeMap::new();
        for d in registry::detectors()? {
            let detector = (d.build)(&config.settings_for(d.tunables))
                .map_err(|message| EngineError::Build { id: d.id, message })?;
            by_id.insert(d.id, d);
            detectors.push(LoadedDetector {
                descriptor: d,
                detector,
            });
        }
        let mut scorers = Vec::new();
        let mut gate = Vec::new();
        for d in &detectors {
            gate.extend(d.descriptor.gate_rules.iter().copied());
        }
        for s in registry::scorers()? {
            let scorer = (s.build)(&config.settings_for(s.tunables))
                .map_err(|message| EngineError::Build { id: s.id, message })?;
            gate.extend(s.gate_rules.iter().copied());
            scorers.push(LoadedScorer { descriptor: s, scorer });
        }
        let gate = gate
            .into_iter()
            .map(|rule| {
                let threshold = match config.value(&rule.tunable()) {
                    Some(Value::Int(i)) => i as f64,
                    Some(Value::Float(f)) => f,
                    _ => 0.0,
                };
                (rule, threshold)
            })
            .collect();
        Ok(Engine {
            config,
            detectors,
            scorers,
            by_id,
            gate,
        })
    }

    /// An engine with every default.
    pub fn with_defaults() -> Result<Engine, EngineError> {
        Engine::new(Config::defaults(Engine::schema()?))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn detectors(&self) -> &[LoadedDetector] {
        &self.detectors
    }

    pub fn scorers(&self) -> &[LoadedScorer] {
        &self.scorers
    }

    /// The descriptor of a finding type, if registered.
    pub fn descriptor(&self, finding_type: &str) -> Option<&'static DetectorDescriptor> {
        self.by_id.get(finding_type).copied()
    }

    /// Runs every detector and scorer over a batch of traces.
    pub fn analyze(&self, traces: &[Trace], confidence: Confidence) -> Analysis {
        let mut run = BatchRun::new(self);
        run.add(traces);
        run.finish(confidence)
    }

    /// Like [`Engine::analyze`], for a batch it may free as it goes: traces
    /// are analyzed a slice at a time and freed once every detector and
    /// scorer has seen them, so the batch's spans and its findings are not
    /// all held at once. Same result as [`Engine::analyze`].
    pub fn analyze_owned(&self, traces: Vec<Trace>, confidence: Confidence) -> Analysis {
        match self.analyze_stream(
            traces.into_iter().map(Ok::<Trace, std::convert::Infallible>),
            confidence,
        ) {
            Ok((analysis, _)) => analysis,
            Err(never) => match never {},
        }
    }

    /// Like [`Engine::analyze_owned`], for traces that arrive one at a time
    /// (as [`SpanBatch::into_traces`](crate::trace::SpanBatch::into_traces)
    /// gives them), so that the batch is never held whole. Gives the
    /// analysis and the number of traces, or the first error the traces
    /// gave.
    pub fn analyze_stream<E>(
        &self,
        mut traces: impl Iterator<Item = Result<Trace, E>>,
        confidence: Confidence,
    ) -> Result<(Analysis, usize), E> {
        let mut run = BatchRun::new(self);
        let mut next_slice = || -> Result<Vec<Trace>, E> { traces.by_ref().take(OWNED_SLICE_TRACES).collect() };
        let first = next_slice()?;
        let helpers = crate::parallel::workers().saturating_sub(1);
        // A first slice shorter than a slice is the whole batch.
        if helpers == 0 || first.len() < PARALLEL_MIN_TRACES {
            let mut slice = first;
            while !slice.is_empty() {
                run.add(&slice);
                drop(slice);
                slice = next_slice()?;
            }
            let count = run.traces;
            return Ok((run.finish(confidence), count));
        }
        let detectors = &self.detectors;
        std::thread::scope(|scope| {
            // Helper threads take their part of every slice and live for the
            // whole batch (at 1M events, 50 MB less peak memory than threads
            // started per slice; docs/PERFORMANCE.md).
            let mut lanes = Vec::with_capacity(helpers);
            for _ in 0..helpers {
                let (job_tx, job_rx) = std::sync::mpsc::channel::<(Arc<Vec<Trace>>, std::ops::Range<usize>)>();
                let (found_tx, found_rx) = std::sync::mpsc::channel::<Vec<Finding>>();
                let handle = scope.spawn(move || {
                    for (slice, range) in job_rx {
                        let found = detect_traces(detectors, &slice[range]);
                        // Released before answering, so that the caller
                        // holds the last reference and frees the slice.
                        drop(slice);
                        if found_tx.send(found).is_err() {
                            break;
                        }
                    }
                });
                lanes.push((job_tx, found_rx, Some(handle)));
            }
            let mut slice = first;
            while !slice.is_empty() {
                let n = slice.len();
                let size = n.div_ceil(helpers + 1);
                let shared = Arc::new(slice);
                for (i, (job_tx, _, _)) in lanes.iter().enumerate() {
                    let range = ((i + 1) * size).min(n)..((i + 2) * size).min(n);
                    // A helper that stopped is reported when its answer is read.
                    let _ = job_tx.send((Arc::clone(&shared), range));
                }
                let mut found = detect_traces(detectors, &shared[..size.min(n)]);
                run.findings.append(&mut found);
                for (_, found_rx, handle) in &mut lanes {
                    match found_rx.recv() {
                        Ok(mut part) => run.findings.append(&mut part),
                        // The helper panicked: raise its panic here.
                        Err(_) => match handle.take().map(std::thread::ScopedJoinHandle::join) {
                            Some(Err(panic)) => std::panic::resume_unwind(panic),
                            _ => unreachable!("an analysis helper stopped without a panic"),
                        },
                    }
                }
                run.observe(&shared);
                drop(shared);
                slice = next_slice()?;
            }
            drop(lanes);
            let count = run.traces;
            Ok((run.finish(confidence), count))
        })
    }

    /// Sorts findings on a full key: detector rank, severity, trace id,
    /// endpoint, template, then service, timestamps, counts, suggestion and
    /// span ids, so that ties never depend on input or hash order.
    pub fn sort_findings(&self, findings: &mut [Finding]) {
        // The ranks are looked up once, and positions are sorted instead of
        // findings (a few hundred bytes each), then the findings are put in
        // place (45 M fewer instructions for the 6,213 findings of the 44k
        // protobuf demo). Equal keys keep their input order, as the stable
        // sort did.
        let rank: Vec<u32> = findings
            .iter()
            .map(|f| self.by_id.get(f.finding_type.as_str()).map_or(u32::MAX, |d| d.rank))
            .collect();
        let mut order: Vec<usize> = (0..findings.len()).collect();
        order.sort_unstable_by(|&i, &j| {
            let (a, b) = (&findings[i], &findings[j]);
            (
                rank[i],
                &a.finding_type,
                a.severity,
                &a.trace_id,
                &a.source_endpoint,
                &a.pattern.template,
            )
                .cmp(&(
                    rank[j],
                    &b.finding_type,
                    b.severity,
                    &b.trace_id,
                    &b.source_endpoint,
                    &b.pattern.template,
                ))
                .then_with(|| {
                    (
                        &a.service,
                        &a.first_timestamp,
                        &a.last_timestamp,
                        a.pattern.occurrences,
                        a.pattern.distinct_params,
                    )
                        .cmp(&(
                            &b.service,
                            &b.first_timestamp,
                            &b.last_timestamp,
                            b.pattern.occurrences,
                            b.pattern.distinct_params,
                        ))
                })
                .then_with(|| {
                    (a.pattern.window_ms, &a.suggestion, &a.span_ids).cmp(&(
                        b.pattern.window_ms,
                        &b.suggestion,
                        &b.span_ids,
                    ))
                })
                .then(i.cmp(&j))
        });
        place(findings, &mut order);
    }

    /// Evaluates the `[thresholds]` rules on final findings and scorer metrics.
    pub fn quality_gate(&self, findings: &[Finding], summary: &GreenSummary) -> QualityGate {
        let rules: Vec<GateResult> = self
            .gate
            .iter()
            .map(|(rule, threshold)| {
                let actual = match rule.measure {
                    GateMeasure::Findings {
                        finding_type,
                        min_severity,
                    } => findings
                        .iter()
                        .filter(|f| f.finding_type == finding_type && f.severity <= min_severity)
                        .count() as f64,
                    GateMeasure::Metric(name) => summary.metrics.get(name).copied().unwrap_or(0.0),
                };
                GateResult {
                    rule: rule.key.to_owned(),
                    threshold: *threshold,
                    actual,
                    passed: actual <= *threshold,
                }
            })
            .collect();
        QualityGate {
            passed: rules.iter().all(|r| r.passed),
            rules,
        }
    }

    /// Groups events into traces, analyzes them and builds a batch report.
    pub fn report(&self, events: Vec<SpanEvent>, stats: IngestStats) -> Report {
        self.report_with(events, stats, None)
    }

    /// Like [`Engine::report`], moving acknowledged findings out of
    /// `findings` (and out of the quality gate) first.
    pub fn report_with(&self, events: Vec<SpanEvent>, stats: IngestStats, acks: Option<&Acknowledgments>) -> Report {
        let spans = crate::trace::normalize_events(events);
        let counts = (spans.len() as u64, spans.unparseable_timestamps() as u64);
        // Never spilled: normalized here, in memory.
        let traces = crate::trace::group_parts(spans.parts).into_iter();
        match self.report_traces(traces.map(Ok::<Trace, std::convert::Infallible>), counts, stats, acks) {
            Ok(report) => report,
            Err(never) => match never {},
        }
    }

    /// Like [`Engine::report_with`], for spans already normalized (as
    /// [`crate::ingest::read_spans`] gives them). A batch that spilled to
    /// temporary files is read back trace by trace; an error reading them
    /// is an error of the input.
    pub fn report_spans(
        &self,
        spans: crate::trace::SpanBatch,
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
    ) -> Result<Report, crate::ingest::IngestError> {
        let counts = (spans.len() as u64, spans.unparseable_timestamps() as u64);
        let spill_error = |e: std::io::Error| crate::ingest::IngestError::spill(&e);
        let traces = spans.into_traces().map_err(spill_error)?;
        self.report_traces(traces, counts, stats, acks).map_err(spill_error)
    }

    /// Analyzes `traces` into a batch report; `counts` are the batch's
    /// events and those with a timestamp that does not parse.
    fn report_traces<E>(
        &self,
        traces: impl Iterator<Item = Result<Trace, E>>,
        (events, unparseable): (u64, u64),
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
    ) -> Result<Report, E> {
        let (analysis, trace_count) = self.analyze_stream(traces, Confidence::CiBatch)?;
        let mut report = self.report_from(analysis, events, trace_count as u64, stats, acks);
        report.analysis.events_with_unparseable_timestamp = unparseable;
        Ok(report)
    }

    /// Wraps an analysis into a report with its quality gate. The green
    /// summary is computed before acknowledgments and left as it is.
    pub fn report_from(
        &self,
        mut analysis: Analysis,
        events: u64,
        traces: u64,
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
    ) -> Report {
        let mut acknowledged_findings = Vec::new();
        if let Some(acks) = acks {
            let (kept, acked) = acks.apply(std::mem::take(&mut analysis.findings));
            analysis.findings = kept;
            acknowledged_findings = acked;
        }
        let quality_gate = self.quality_gate(&analysis.findings, &analysis.green_summary);
        Report {
            analysis: AnalysisInfo {
                duration_ms: 0,
                events_processed: events,
                traces_analyzed: traces,
                spans_without_io_attributes: stats.spans_without_io_attributes,
                events_with_unparseable_timestamp: 0,
            },
            findings: analysis.findings,
            green_summary: analysis.green_summary.fields,
            quality_gate,
            per_endpoint_io_ops: analysis.per_endpoint_io_ops,
            acknowledged_findings,
            binary_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }
    }
}

/// Moves `items[order[k]]` to position `k` for every `k`, one cycle of the
/// permutation at a time, with fewer swaps than items. `order` is left as
/// the identity.
fn place<T>(items: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut k = start;
        while order[k] != k {
            let from = order[k];
            order[k] = k;
            if from == start {
                break;
            }
            items.swap(k, from);
            k = from;
        }
    }
}

/// Spans per (service, endpoint), sorted by service then endpoint.
pub fn endpoint_io(traces: &[Trace]) -> Vec<EndpointIo> {
    let mut counter = EndpointCounter::default();
    for t in traces {
        counter.observe(t);
    }
    counter.finish()
}

/// A span's (service, endpoint).
type EndpointKey<'a> = (&'a Arc<str>, &'a Arc<str>);

/// Counts spans per (service, endpoint), one trace at a time.
#[derive(Default)]
struct EndpointCounter {
    /// service -> endpoint -> spans; names are looked up as `&str` and
    /// their shared strings cloned once per new key.
    counts: foldhash::HashMap<Arc<str>, foldhash::HashMap<Arc<str>, u64>>,
}

impl EndpointCounter {
    fn observe(&mut self, trace: &Trace) {
        // Runs of spans with the same (service, endpoint) are counted first
        // and added to the map once per run.
        let mut run: Option<(EndpointKey<'_>, u64)> = None;
        for s in &trace.spans {
            let key = (&s.event.service, &s.event.source.endpoint);
            match &mut run {
                Some((k, n)) if *k == key => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace((key, 1)) {
                        self.add(k, n);
                    }
                }
            }
        }
        if let Some((k, n)) = run {
            self.add(k, n);
        }
    }

    fn add(&mut self, (service, endpoint): EndpointKey<'_>, n: u64) {
        let per_service = match self.counts.get_mut(&**service) {
            Some(m) => m,
            None => self.counts.entry(Arc::clone(service)).or_default(),
        };
        match per_service.get_mut(&**endpoint) {
            Some(c) => *c += n,
            None => {
                per_service.insert(Arc::clone(endpoint), n);
            }
        }
    }

    fn finish(self) -> Vec<EndpointIo> {
        let mut out: Vec<EndpointIo> = self
            .counts
            .into_iter()
            .flat_map(|(service, endpoints)| {
                endpoints.into_iter().map(move |(endpoint, io_ops)| EndpointIo {
                    service: service.to_string(),
                    endpoint: endpoint.to_string(),
                    io_ops,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.service, &a.endpoint).cmp(&(&b.service, &b.endpoint)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::place;

    #[test]
    fn place_applies_every_permutation_of_five() {
        let mut order: Vec<usize> = (0..5).collect();
        let mut count = 0;
        // Heap's algorithm over the 120 permutations.
        let mut c = [0usize; 5];
        let mut check = |order: &[usize]| {
            let mut items: Vec<char> = "abcde".chars().collect();
            let want: Vec<char> = order.iter().map(|&i| items[i]).collect();
            let mut scratch = order.to_vec();
            place(&mut items, &mut scratch);
            assert_eq!(items, want, "{order:?}");
            assert!(scratch.iter().enumerate().all(|(k, &v)| k == v));
            count += 1;
        };
        check(&order);
        let mut i = 0;
        while i < 5 {
            if c[i] < i {
                order.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                check(&order);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(count, 120);
    }
}
