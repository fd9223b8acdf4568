//! The engine: built once from a config, it analyzes batches of traces with
//! every registered detector and scorer.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ack::Acknowledgments;
use crate::config::{Config, ConfigError, Schema};
use crate::event::SpanEvent;
use crate::finding::{Confidence, Finding, Signer};
use crate::finding_spill::{Runs, Stored, compare};
use crate::ingest::IngestStats;
use crate::registry::{
    self, BatchDetector, BatchStart, Detector, DetectorDescriptor, EndpointIo, FindingScore, GateMeasure, GateRule,
    GreenSummary, RegistryError, ScoreBatch, ScoreInput, Scorer, ScorerDescriptor, Value,
};
use crate::report::{AnalysisInfo, BatchReport, FindingCounts, GateResult, QualityGate, Report, SpilledFindings};
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

/// Traces a thread claims at a time from a slice being analyzed.
const CLAIM_TRACES: usize = 32;

/// A slice of traces whose chunks the analysis threads claim in turn.
struct SliceJob {
    traces: Vec<Trace>,
    chunks: usize,
    next: std::sync::atomic::AtomicUsize,
}

impl SliceJob {
    fn new(traces: Vec<Trace>) -> SliceJob {
        SliceJob {
            chunks: traces.len().div_ceil(CLAIM_TRACES),
            traces,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next unclaimed chunk and its index, if any is left.
    fn claim(&self) -> Option<(usize, &[Trace])> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = i.checked_mul(CLAIM_TRACES).filter(|&s| s < self.traces.len())?;
        Some((i, &self.traces[start..(start + CLAIM_TRACES).min(self.traces.len())]))
    }
}

/// What an analysis helper sends back for a slice.
enum Claimed {
    /// The findings of chunk `.0`.
    Chunk(usize, Vec<Finding>),
    /// Nothing left to claim; the helper let go of the slice.
    Done,
    /// A detector panicked on the helper: raised again by the caller.
    Panicked(Box<dyn std::any::Any + Send>),
}

/// One batch under analysis: the findings so far and every cross-trace state.
struct BatchRun<'e> {
    engine: &'e Engine,
    /// Findings held (past the budget, since the last run written).
    findings: Vec<Finding>,
    spill: Option<Spill<'e>>,
    batch_detectors: Vec<Box<dyn BatchDetector + 'e>>,
    scorers: Vec<Box<dyn ScoreBatch + 'e>>,
    endpoint_io: EndpointCounter,
    traces: usize,
}

/// Where a batch's findings go once it holds `budget` of them: sorted,
/// with their signatures and acknowledgments, into runs on disk.
struct Spill<'a> {
    budget: usize,
    confidence: Confidence,
    acks: Option<&'a Acknowledgments>,
    kept: Runs,
    acked: Runs,
    /// Findings left in the report, by type and severity.
    counts: FindingCounts,
    /// The first write that failed; findings stop being kept after it.
    error: Option<std::io::Error>,
}

impl Spill<'_> {
    /// Writes `findings` out as one run each of kept and acknowledged
    /// findings.
    fn write(&mut self, engine: &Engine, mut findings: Vec<Finding>) {
        if self.error.is_some() || findings.is_empty() {
            return;
        }
        let confidence = self.confidence;
        // Scores are applied as the runs are read back.
        settle(&mut findings, &[], confidence);
        engine.sort_findings(&mut findings);
        let (kept, acked) = match self.acks {
            Some(acks) => acks.apply(findings),
            None => (findings, Vec::new()),
        };
        for f in &kept {
            self.counts.add(f);
        }
        let rank = |f: &Finding| engine.rank(&f.finding_type);
        let kept = kept
            .into_iter()
            .map(|finding| Stored {
                rank: rank(&finding),
                finding,
                ack: None,
            })
            .collect();
        let acked = acked
            .into_iter()
            .map(|a| Stored {
                rank: rank(&a.finding),
                finding: a.finding,
                ack: Some(a.acknowledgment),
            })
            .collect();
        if let Err(e) = self.kept.push(kept).and_then(|()| self.acked.push(acked)) {
            self.error = Some(e);
        }
    }
}

/// Applies `scores` to each finding, then sets its confidence and its
/// signature, on every core.
fn settle(findings: &mut [Finding], scores: &[FindingScore], confidence: Confidence) {
    crate::parallel::for_each_chunk(findings, PARALLEL_MIN_TRACES, |chunk| {
        let mut signer = Signer::default();
        for f in chunk {
            for score in scores {
                score(f);
            }
            f.confidence = confidence;
            f.signature = f.signature_with(&mut signer);
        }
    });
}

/// How a batch ended: its findings held, or written out.
enum Finished {
    Held(Analysis),
    Spilled(Analysis, SpilledFindings),
}

impl<'e> BatchRun<'e> {
    fn new(engine: &'e Engine, spill: Option<Spill<'e>>) -> BatchRun<'e> {
        let (mut batch_detectors, mut cross_trace) = (Vec::new(), Vec::new());
        for d in &engine.detectors {
            if let Some(state) = d.detector.batch() {
                batch_detectors.push(state);
                cross_trace.push(d.descriptor.id);
            }
        }
        let start = BatchStart {
            detectors: &engine.by_id,
            cross_trace: &cross_trace,
        };
        BatchRun {
            engine,
            findings: Vec::new(),
            spill,
            batch_detectors,
            scorers: engine.scorers.iter().map(|s| s.scorer.batch(&start)).collect(),
            endpoint_io: EndpointCounter::default(),
            traces: 0,
        }
    }

    /// Shows `found` to the scorers and keeps it (writing a run out when
    /// the budget is reached).
    fn keep(&mut self, mut found: Vec<Finding>) {
        for s in &mut self.scorers {
            s.tally(&found);
        }
        self.findings.append(&mut found);
        if let Some(spill) = &mut self.spill
            && self.findings.len() >= spill.budget
        {
            spill.write(self.engine, std::mem::take(&mut self.findings));
        }
    }

    /// Runs the per-trace detectors over `traces`, then shows each trace to
    /// the cross-trace states, in order.
    fn add(&mut self, traces: &[Trace]) {
        // Traces are independent: large slices are split over the cores, and
        // the parts are joined in order, so the result is the same either way.
        let detectors = &self.engine.detectors;
        let parts = crate::parallel::map_chunks(traces, PARALLEL_MIN_TRACES, |chunk| detect_traces(detectors, chunk));
        for part in parts {
            self.keep(part);
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

    fn finish(mut self, confidence: Confidence) -> Result<Finished, std::io::Error> {
        let mut cross = Vec::new();
        if self.traces >= 2 {
            for d in std::mem::take(&mut self.batch_detectors) {
                d.finish(&mut cross);
            }
        }
        self.keep(cross);
        let BatchRun {
            engine,
            mut findings,
            spill,
            batch_detectors: _,
            scorers,
            endpoint_io,
            traces,
        } = self;
        let per_endpoint_io_ops = endpoint_io.finish();
        let mut summary = GreenSummary::default();
        let input = ScoreInput {
            traces,
            endpoint_io: &per_endpoint_io_ops,
            detectors: &engine.by_id,
        };
        let scores: Vec<FindingScore> = scorers
            .into_iter()
            .filter_map(|s| s.finish(&input, &mut summary))
            .collect();
        if let Some(mut spill) = spill
            && (spill.kept.len() > 0 || spill.acked.len() > 0 || spill.error.is_some())
        {
            spill.write(engine, findings);
            if let Some(e) = spill.error {
                return Err(e);
            }
            let analysis = Analysis {
                findings: Vec::new(),
                green_summary: summary,
                per_endpoint_io_ops,
            };
            return Ok(Finished::Spilled(
                analysis,
                SpilledFindings {
                    kept: spill.kept,
                    acked: spill.acked,
                    counts: spill.counts,
                    scores,
                },
            ));
        }
        settle(&mut findings, &scores, confidence);
        engine.sort_findings(&mut findings);
        Ok(Finished::Held(Analysis {
            findings,
            green_summary: summary,
            per_endpoint_io_ops,
        }))
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

/// The analysis of a batch that was never to spill.
fn held(finished: Result<Finished, std::io::Error>) -> Analysis {
    match finished {
        Ok(Finished::Held(analysis)) => analysis,
        _ => unreachable!("a batch without a findings budget neither spills nor writes"),
    }
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
        let mut run = BatchRun::new(self, None);
        run.add(traces);
        held(run.finish(confidence))
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
        traces: impl Iterator<Item = Result<Trace, E>>,
        confidence: Confidence,
    ) -> Result<(Analysis, usize), E> {
        let (run, count) = self.run_stream(traces, BatchRun::new(self, None))?;
        Ok((held(run.finish(confidence)), count))
    }

    /// Shows every trace of `traces` to `run`, a slice at a time, freeing
    /// each slice once seen; gives `run` back with the traces counted.
    fn run_stream<'e, E>(
        &'e self,
        mut traces: impl Iterator<Item = Result<Trace, E>>,
        mut run: BatchRun<'e>,
    ) -> Result<(BatchRun<'e>, usize), E> {
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
            return Ok((run, count));
        }
        let detectors = &self.detectors;
        std::thread::scope(|scope| {
            // Helper threads live for the whole batch (at 1M events, 50 MB
            // less peak memory than threads started per slice;
            // docs/PERFORMANCE.md) and claim chunks of each slice as they
            // become free, so that no core waits on a fixed share.
            let (found_tx, found_rx) = std::sync::mpsc::channel::<Claimed>();
            let mut lanes = Vec::with_capacity(helpers);
            for _ in 0..helpers {
                let (job_tx, job_rx) = std::sync::mpsc::channel::<Arc<SliceJob>>();
                let found_tx = found_tx.clone();
                scope.spawn(move || {
                    for job in job_rx {
                        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            while let Some((i, chunk)) = job.claim() {
                                let _ = found_tx.send(Claimed::Chunk(i, detect_traces(detectors, chunk)));
                            }
                        }));
                        // Released before answering, so that the caller
                        // holds the last reference and frees the slice.
                        drop(job);
                        match answer {
                            Ok(()) => {
                                let _ = found_tx.send(Claimed::Done);
                            }
                            Err(panic) => {
                                let _ = found_tx.send(Claimed::Panicked(panic));
                                return;
                            }
                        }
                    }
                });
                lanes.push(job_tx);
            }
            drop(found_tx);
            let mut slice = first;
            while !slice.is_empty() {
                let job = Arc::new(SliceJob::new(slice));
                for job_tx in &lanes {
                    let _ = job_tx.send(Arc::clone(&job));
                }
                // While the helpers start on the slice: the cross-trace
                // states see it, in order, and the next slice is grouped.
                run.observe(&job.traces);
                let next = next_slice();
                let mut parts: Vec<Option<Vec<Finding>>> = vec![None; job.chunks];
                while let Some((i, chunk)) = job.claim() {
                    parts[i] = Some(detect_traces(detectors, chunk));
                }
                let mut done = 0;
                while done < lanes.len() {
                    match found_rx.recv() {
                        Ok(Claimed::Chunk(i, found)) => parts[i] = Some(found),
                        Ok(Claimed::Done) => done += 1,
                        Ok(Claimed::Panicked(panic)) => std::panic::resume_unwind(panic),
                        Err(_) => unreachable!("analysis helpers stopped without a panic"),
                    }
                }
                drop(job);
                for part in parts {
                    run.keep(part.unwrap_or_default());
                }
                slice = next?;
            }
            drop(lanes);
            let count = run.traces;
            Ok((run, count))
        })
    }

    /// Sorts findings on a full key: detector rank, severity, trace id,
    /// endpoint, template, then service, timestamps, counts, suggestion and
    /// span ids, so that ties never depend on input or hash order.
    pub fn sort_findings(&self, findings: &mut [Finding]) {
        // Positions are sorted instead of findings (a few hundred bytes
        // each), then the findings are put in place. The positions are
        // first dealt, in input order, into one bucket per (rank, type,
        // severity), the leading part of the key: there are few, and
        // findings come trace by trace in trace id order, so each bucket is
        // then mostly in order already and its stable sort on the rest of
        // the key finds long runs instead of comparing n log n times.
        // Equal keys keep their input order.
        type Head<'a> = (u32, &'a str, crate::finding::Severity);
        let mut heads: Vec<Head<'_>> = Vec::new();
        let mut index: foldhash::HashMap<(&str, crate::finding::Severity), usize> = foldhash::HashMap::default();
        let mut bucket_of: Vec<usize> = Vec::with_capacity(findings.len());
        for f in findings.iter() {
            let key = (f.finding_type.as_str(), f.severity);
            let bucket = match bucket_of.last() {
                Some(&b) if (heads[b].1, heads[b].2) == key => b,
                _ => *index.entry(key).or_insert_with(|| {
                    heads.push((self.rank(key.0), key.0, key.1));
                    heads.len() - 1
                }),
            };
            bucket_of.push(bucket);
        }
        let mut head_order: Vec<usize> = (0..heads.len()).collect();
        head_order.sort_by(|&a, &b| heads[a].cmp(&heads[b]));
        let mut start = vec![0usize; heads.len()];
        let mut counts = vec![0usize; heads.len()];
        for &b in &bucket_of {
            counts[b] += 1;
        }
        let mut at = 0;
        for &b in &head_order {
            start[b] = at;
            at += counts[b];
        }
        let mut order = vec![0usize; findings.len()];
        let mut next = start.clone();
        for (i, &b) in bucket_of.iter().enumerate() {
            order[next[b]] = i;
            next[b] += 1;
        }
        for &b in &head_order {
            let (rank, bucket) = (heads[b].0, &mut order[start[b]..start[b] + counts[b]]);
            bucket.sort_by(|&i, &j| compare(rank, &findings[i], rank, &findings[j]));
        }
        place(findings, &mut order);
    }

    /// The rank of a finding type's detector; unknown types sort last.
    fn rank(&self, finding_type: &str) -> u32 {
        self.by_id.get(finding_type).map_or(u32::MAX, |d| d.rank)
    }

    /// Evaluates the `[thresholds]` rules on final findings and scorer metrics.
    pub fn quality_gate(&self, findings: &[Finding], summary: &GreenSummary) -> QualityGate {
        self.quality_gate_of(&FindingCounts::of(findings), summary)
    }

    /// Like [`Engine::quality_gate`], from the findings' counts.
    pub fn quality_gate_of(&self, counts: &FindingCounts, summary: &GreenSummary) -> QualityGate {
        let rules: Vec<GateResult> = self
            .gate
            .iter()
            .map(|(rule, threshold)| {
                let actual = match rule.measure {
                    GateMeasure::Findings {
                        finding_type,
                        min_severity,
                    } => counts.at_least(finding_type, min_severity) as f64,
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
        self.report_normalized(crate::trace::normalize_events(events), stats, acks)
    }

    /// Like [`Engine::report_with`], for events the caller keeps (to
    /// analyze them again, or under other settings): they are read in place
    /// instead of moved, and the report is the same.
    pub fn report_events(&self, events: &[SpanEvent], stats: IngestStats, acks: Option<&Acknowledgments>) -> Report {
        self.report_normalized(crate::trace::normalize_borrowed(events), stats, acks)
    }

    /// The report of spans normalized in memory.
    fn report_normalized(
        &self,
        spans: crate::trace::SpanBatch,
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
    ) -> Report {
        let counts = (spans.len() as u64, spans.unparseable_timestamps() as u64);
        // Never spilled: normalized here, in memory.
        let traces = crate::trace::group_parts(spans.parts).into_iter();
        let traces = traces.map(Ok::<Trace, std::convert::Infallible>);
        match self.report_traces(traces, counts, stats, acks, 0) {
            Ok(report) => match report.and_then(BatchReport::into_report) {
                Ok(report) => report,
                Err(_) => unreachable!("a batch without a findings budget writes no file"),
            },
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
        let report = self.report_spans_spilling(spans, stats, acks, 0)?;
        report
            .into_report()
            .map_err(|e| crate::ingest::IngestError::spill(&e, "findings"))
    }

    /// Like [`Engine::report_spans`], for batches with more findings than
    /// memory should hold: past `budget` findings held (0: no limit), they
    /// are sorted, signed and split by acknowledgment into temporary files,
    /// and the report reads them back, merged in report order, each time
    /// it is written. The output is byte for byte that of
    /// [`Engine::report_spans`].
    pub fn report_spans_spilling(
        &self,
        spans: crate::trace::SpanBatch,
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
        budget: usize,
    ) -> Result<BatchReport<'static>, crate::ingest::IngestError> {
        let counts = (spans.len() as u64, spans.unparseable_timestamps() as u64);
        let spill_error = |of: &'static str| move |e: std::io::Error| crate::ingest::IngestError::spill(&e, of);
        let traces = spans.into_traces().map_err(spill_error("spans"))?;
        self.report_traces(traces, counts, stats, acks, budget)
            .map_err(spill_error("spans"))?
            .map_err(spill_error("findings"))
    }

    /// Analyzes `traces` into a batch report; `counts` are the batch's
    /// events and those with a timestamp that does not parse. The outer
    /// error is the traces', the inner one a temporary findings file's.
    fn report_traces<E>(
        &self,
        traces: impl Iterator<Item = Result<Trace, E>>,
        (events, unparseable): (u64, u64),
        stats: IngestStats,
        acks: Option<&Acknowledgments>,
        budget: usize,
    ) -> Result<Result<BatchReport<'static>, std::io::Error>, E> {
        let spill = (budget > 0).then(|| Spill {
            budget,
            confidence: Confidence::CiBatch,
            acks,
            kept: Runs::default(),
            acked: Runs::default(),
            counts: FindingCounts::default(),
            error: None,
        });
        let (run, trace_count) = self.run_stream(traces, BatchRun::new(self, spill))?;
        let finished = match run.finish(Confidence::CiBatch) {
            Ok(finished) => finished,
            Err(e) => return Ok(Err(e)),
        };
        let (mut report, spilled) = match finished {
            Finished::Held(analysis) => (
                self.report_from(analysis, events, trace_count as u64, stats, acks),
                None,
            ),
            Finished::Spilled(analysis, spilled) => {
                let gate = self.quality_gate_of(&spilled.counts, &analysis.green_summary);
                let mut report = self.report_from(analysis, events, trace_count as u64, stats, None);
                report.quality_gate = gate;
                (report, Some(spilled))
            }
        };
        report.analysis.events_with_unparseable_timestamp = unparseable;
        Ok(Ok(BatchReport::new(report, spilled)))
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
        for run in crate::trace::endpoint_runs(&trace.spans) {
            let e = &run[0].event;
            self.add((&e.service, &e.source.endpoint), run.len() as u64);
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
    use super::*;
    use crate::finding::Severity;
    use proptest::prelude::*;

    fn finding((t, severity, trace, endpoint, template, n): (usize, usize, u8, u8, u8, u64)) -> Finding {
        let types = [
            "n_plus_one_sql",
            "slow_sql",
            "redundant_http",
            "chatty_service",
            "not_a_detector",
        ];
        let mut f = crate::finding_spill::tests::finding(0);
        f.finding_type = types[t].to_owned();
        f.severity = [Severity::Critical, Severity::Warning, Severity::Info][severity];
        f.trace_id = format!("trace-{trace}");
        f.source_endpoint = format!("GET /{endpoint}");
        f.pattern.template = format!("SELECT {template}");
        f.pattern.occurrences = n;
        f
    }

    proptest! {
        /// The bucketed sort gives the order of one stable sort on the
        /// full key: ties in input order. (No detector registers with this
        /// test build of the engine, so every rank is the unknown one here;
        /// `tests/tests/determinism.rs` checks ranks.)
        #[test]
        fn sorted_findings_follow_the_full_key(
            keys in prop::collection::vec((0..5usize, 0..3usize, 0..6u8, 0..3u8, 0..3u8, 0..2u64), 0..300),
            by_trace in any::<bool>(),
        ) {
            let engine = Engine::with_defaults().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut findings: Vec<Finding> = keys.into_iter().map(finding).collect();
            if by_trace {
                // As detection makes them: trace by trace.
                findings.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
            }
            // The signature is not part of the key: it marks input positions.
            for (i, f) in findings.iter_mut().enumerate() {
                f.signature = i.to_string();
            }
            let mut want = findings.clone();
            want.sort_by(|a, b| compare(engine.rank(&a.finding_type), a, engine.rank(&b.finding_type), b));
            let mut got = findings;
            engine.sort_findings(&mut got);
            let positions = |v: &[Finding]| v.iter().map(|f| f.signature.clone()).collect::<Vec<_>>();
            prop_assert_eq!(positions(&got), positions(&want));
        }
    }

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
