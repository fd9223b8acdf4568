//! The analysis worker: one task, fed in FIFO order by a bounded queue.
//!
//! It runs every registered detector and scorer over a batch of completed
//! traces, then stores the findings, feeds the correlator, updates metrics
//! and writes one JSON line per finding to stdout. Detectors never see the
//! runtime: the worker is a blocking task and hands them `&Trace`.

use std::io::Write;
use std::sync::Arc;

use metrics::{counter, gauge, histogram};
use tokio::sync::mpsc;

use super::Shared;
use super::metrics::{AVOIDABLE_IO_OPS, FINDINGS_TOTAL, IO_WASTE_RATIO, SLOW_DURATION, TOTAL_IO_OPS};
use super::window::Evicted;
use crate::trace::{Trace, order_spans};

/// Traces evicted together, analyzed together.
pub struct Batch {
    pub traces: Vec<Evicted>,
    pub spans: u64,
}

impl Batch {
    pub fn new(traces: Vec<Evicted>) -> Batch {
        let spans = traces.iter().map(|(_, s)| s.len() as u64).sum();
        Batch { traces, spans }
    }
}

/// Lifetime I/O totals, for the waste-ratio gauge.
#[derive(Default)]
struct Totals {
    io_ops: f64,
    avoidable: f64,
}

/// Runs until the queue is closed and empty.
pub fn run(mut rx: mpsc::Receiver<Batch>, shared: Arc<Shared>) {
    let mut totals = Totals::default();
    while let Some(batch) = rx.blocking_recv() {
        shared
            .ledger
            .update(|c| c.analysis_queue_depth = c.analysis_queue_depth.saturating_sub(1));
        analyze(&shared, batch, &mut totals);
    }
}

fn analyze(shared: &Shared, batch: Batch, totals: &mut Totals) {
    let mut traces: Vec<Trace> = batch
        .traces
        .into_iter()
        .map(|(trace_id, mut spans)| {
            order_spans(&mut spans);
            Trace { trace_id, spans }
        })
        .collect();
    traces.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let analysis = shared.engine.analyze(&traces, shared.settings.confidence);

    let threshold = shared.settings.slow_threshold_us;
    for s in traces
        .iter()
        .flat_map(|t| &t.spans)
        .filter(|s| s.event.duration_us > threshold)
    {
        histogram!(SLOW_DURATION, "type" => s.event.kind.as_str()).record(s.event.duration_us as f64 / 1e6);
    }
    let io_ops = analysis
        .green_summary
        .fields
        .get("total_io_ops")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(batch.spans as f64);
    let avoidable = analysis
        .green_summary
        .metrics
        .get("avoidable_io_ops")
        .copied()
        .unwrap_or(0.0);
    counter!(TOTAL_IO_OPS).increment(io_ops as u64);
    counter!(AVOIDABLE_IO_OPS).increment(avoidable as u64);
    totals.io_ops += io_ops;
    totals.avoidable += avoidable;
    if totals.io_ops > 0.0 {
        gauge!(IO_WASTE_RATIO).set(totals.avoidable / totals.io_ops);
    }

    let now_ms = super::now_ms();
    if let Some(c) = &shared.correlator {
        c.lock()
            .unwrap_or_else(|e| e.into_inner())
            .ingest(&analysis.findings, now_ms);
    }
    for f in &analysis.findings {
        counter!(FINDINGS_TOTAL, "type" => f.finding_type.clone(), "severity" => f.severity.as_str()).increment(1);
    }
    if !analysis.findings.is_empty() {
        let mut line = Vec::with_capacity(512);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for f in &analysis.findings {
            line.clear();
            if serde_json::to_writer(&mut line, f).is_ok() {
                line.push(b'\n');
                // A closed stdout must not stop analysis: findings stay queryable.
                let _ = out.write_all(&line);
            }
        }
        let _ = out.flush();
    }
    // Last, so that they are moved rather than copied.
    shared.store.push(analysis.findings, now_ms);
    *shared.last_green.lock().unwrap_or_else(|e| e.into_inner()) = Some(analysis.green_summary.fields);
    let n = traces.len() as u64;
    shared.ledger.update(|c| {
        c.in_analysis -= batch.spans;
        c.analyzed += batch.spans;
        c.traces_analyzed += n;
    });
}
