//! Normalized spans grouped into traces: what detectors see.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event::{EventKind, SpanEvent};
use crate::normalize::{DigestSink, ParamDigest, ParamSink, normalize_http, normalize_sql};

/// A span after normalization.
#[derive(Debug, Clone)]
pub struct Span {
    /// The event as ingested. Its `target` holds the raw statement or URL:
    /// detectors use [`Span::template`] and [`Span::params`] instead.
    pub event: SpanEvent,
    /// The normalized template, e.g. `SELECT * FROM t WHERE id = ?`.
    pub template: Arc<str>,
    /// A fingerprint of the literals removed from the target.
    pub params: ParamDigest,
}

impl Span {
    /// Normalizes one event.
    pub fn new(mut event: SpanEvent, templates: &mut TemplateInterner) -> Span {
        let mut sink = DigestSink::default();
        let template = match event.kind {
            EventKind::Sql => normalize_sql(&event.target, &mut sink),
            EventKind::HttpOut => normalize_http(&event.operation, &event.target, &mut sink),
        };
        for value in event.db_parameters.drain(..) {
            sink.push(&value);
        }
        Span {
            template: templates.intern(template),
            params: sink.finish(),
            event,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.event.kind
    }

    /// Start instant in nanoseconds since the epoch, if the timestamp parses.
    pub fn start_ns(&self) -> Option<i64> {
        self.event.start_unix_nanos
    }

    /// `(start, end)` in nanoseconds, if the timestamp parses.
    pub fn interval_ns(&self) -> Option<(i64, i64)> {
        let start = self.event.start_unix_nanos?;
        let dur = i64::try_from(self.event.duration_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        Some((start, start.saturating_add(dur)))
    }
}

/// Shares one allocation between every span with the same template.
#[derive(Default)]
pub struct TemplateInterner {
    seen: HashMap<Arc<str>, ()>,
}

impl TemplateInterner {
    pub fn intern(&mut self, t: String) -> Arc<str> {
        if let Some((k, _)) = self.seen.get_key_value(t.as_str()) {
            return Arc::clone(k);
        }
        let k: Arc<str> = Arc::from(t);
        self.seen.insert(Arc::clone(&k), ());
        k
    }
}

/// All spans of one trace id, in input order.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

impl Trace {
    /// The span with this id, if the trace holds it (first one wins).
    pub fn span(&self, span_id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.event.span_id == span_id)
    }
}

/// Groups events by exact trace id.
///
/// The result does not depend on the order of the input: traces come out
/// sorted by id, and the spans of a trace by start instant, then span id
/// (spans whose timestamp does not parse go last, in span-id order). For the
/// usual input, written in time order, this is the input order the reference
/// uses to pick a group's "first span"; for shuffled input it is the same
/// answer instead of a different one.
pub fn group_traces(events: Vec<SpanEvent>) -> Vec<Trace> {
    group_spans(normalize_events(events))
}

/// Normalized spans in input order, kept in the parts they were made in
/// (one per worker or per run of input), so that grouping them into traces
/// frees each part as it goes instead of holding every span twice.
#[derive(Debug, Default)]
pub struct SpanBatch {
    parts: Vec<Vec<Span>>,
}

impl SpanBatch {
    pub fn from_parts(parts: Vec<Vec<Span>>) -> SpanBatch {
        SpanBatch { parts }
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Vec::is_empty)
    }

    /// The spans in input order.
    pub fn iter(&self) -> impl Iterator<Item = &Span> {
        self.parts.iter().flatten()
    }
}

impl From<Vec<Span>> for SpanBatch {
    fn from(spans: Vec<Span>) -> SpanBatch {
        SpanBatch { parts: vec![spans] }
    }
}

impl IntoIterator for SpanBatch {
    type Item = Span;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Span>>>;

    /// The spans in input order; each part is freed once it is consumed.
    fn into_iter(self) -> Self::IntoIter {
        self.parts.into_iter().flatten()
    }
}

/// Normalizes events into spans, in input order; large inputs are spread
/// over the cores.
pub fn normalize_events(events: Vec<SpanEvent>) -> SpanBatch {
    SpanBatch::from_parts(crate::parallel::map_owned_chunks(events, 4096, |chunk| {
        let mut templates = TemplateInterner::default();
        chunk
            .into_iter()
            .map(|e| Span::new(e, &mut templates))
            .collect::<Vec<_>>()
    }))
}

/// Groups normalized spans by exact trace id, as [`group_traces`] does.
pub fn group_spans(spans: SpanBatch) -> Vec<Trace> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut traces: Vec<Trace> = Vec::new();
    let mut last: Option<usize> = None;
    for span in spans {
        // Files usually hold a trace's spans together: try the last trace first.
        if let Some(i) = last.filter(|&i| traces[i].trace_id == span.event.trace_id) {
            traces[i].spans.push(span);
            continue;
        }
        let slot = match index.get(span.event.trace_id.as_str()) {
            Some(&i) => i,
            None => {
                index.insert(span.event.trace_id.clone(), traces.len());
                traces.push(Trace {
                    trace_id: span.event.trace_id.clone(),
                    spans: Vec::new(),
                });
                traces.len() - 1
            }
        };
        traces[slot].spans.push(span);
        last = Some(slot);
    }
    traces.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    for t in &mut traces {
        order_spans(&mut t.spans);
    }
    traces
}

/// Orders a trace's spans by start instant, then span id; spans whose
/// timestamp does not parse go last.
pub fn order_spans(spans: &mut [Span]) {
    let order = |a: &Span, b: &Span| {
        let key = |s: &Span| (s.event.start_unix_nanos.is_none(), s.event.start_unix_nanos);
        key(a).cmp(&key(b)).then_with(|| a.event.span_id.cmp(&b.event.span_id))
    };
    // Spans are large and usually already in order: check before moving any.
    if !spans.is_sorted_by(|a, b| order(a, b).is_le()) {
        spans.sort_by(order);
    }
}
