//! The trace window: traces still receiving spans, bounded in count (LRU),
//! in age (TTL since the last span) and in spans per trace (ring buffer).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::trace::Span;

struct Entry {
    spans: VecDeque<Span>,
    last_seen: Instant,
    touch: u64,
}

/// A completed or evicted trace on its way to analysis.
pub type Evicted = (String, Vec<Span>);

/// What one push did besides storing the span.
#[derive(Default)]
pub struct Pushed {
    /// The least recently touched trace, evicted to make room.
    pub evicted: Option<Evicted>,
    /// Whether the trace's oldest span was dropped to respect the span cap.
    pub dropped_oldest: bool,
}

/// The window. Not thread-safe by itself: the daemon keeps it behind a mutex.
pub struct TraceWindow {
    traces: HashMap<Arc<str>, Entry>,
    /// touch sequence -> trace id, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    seq: u64,
    max_traces: usize,
    max_spans: usize,
    span_count: usize,
}

impl TraceWindow {
    pub fn new(max_traces: usize, max_spans: usize) -> TraceWindow {
        TraceWindow {
            traces: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            max_traces: max_traces.max(1),
            max_spans: max_spans.max(1),
            span_count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Spans held, all traces together.
    #[cfg(test)]
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// Adds a span to its trace, creating the trace (and evicting the least
    /// recently touched one when full) if needed.
    pub fn push(&mut self, span: Span, now: Instant) -> Pushed {
        let mut out = Pushed::default();
        self.seq += 1;
        let seq = self.seq;
        let id = span.event.trace_id.clone();
        if let Some(e) = self.traces.get_mut(&id) {
            self.order.remove(&e.touch);
            e.touch = seq;
            e.last_seen = now;
            self.order.insert(seq, id);
            e.spans.push_back(span);
            self.span_count += 1;
            if e.spans.len() > self.max_spans {
                e.spans.pop_front();
                self.span_count -= 1;
                out.dropped_oldest = true;
            }
            return out;
        }
        if self.traces.len() >= self.max_traces {
            if let Some((_, oldest)) = self.order.pop_first() {
                if let Some(e) = self.traces.remove(&oldest) {
                    self.span_count -= e.spans.len();
                    out.evicted = Some((oldest.to_string(), e.spans.into()));
                }
            }
        }
        let mut spans = VecDeque::new();
        spans.push_back(span);
        self.span_count += 1;
        self.order.insert(seq, id.clone());
        self.traces.insert(
            id,
            Entry {
                spans,
                last_seen: now,
                touch: seq,
            },
        );
        out
    }

    /// Removes and returns every trace idle for more than `ttl`, oldest touch first.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<Evicted> {
        let expired: Vec<(u64, Arc<str>)> = self
            .order
            .iter()
            .filter(|(_, id)| {
                self.traces
                    .get(*id)
                    .is_some_and(|e| now.saturating_duration_since(e.last_seen) > ttl)
            })
            .map(|(s, id)| (*s, id.clone()))
            .collect();
        expired.into_iter().filter_map(|(s, id)| self.take(s, id)).collect()
    }

    /// Removes and returns every trace.
    pub fn drain(&mut self) -> Vec<Evicted> {
        let all: Vec<(u64, Arc<str>)> = std::mem::take(&mut self.order).into_iter().collect();
        all.into_iter().filter_map(|(s, id)| self.take(s, id)).collect()
    }

    fn take(&mut self, seq: u64, id: Arc<str>) -> Option<Evicted> {
        self.order.remove(&seq);
        let e = self.traces.remove(&id)?;
        self.span_count -= e.spans.len();
        Some((id.to_string(), e.spans.into()))
    }

    /// A copy of a trace's spans, without touching it.
    pub fn get(&self, trace_id: &str) -> Option<Vec<Span>> {
        self.traces.get(trace_id).map(|e| e.spans.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, EventSource, SpanEvent};
    use crate::trace::Interner;

    fn span(trace: &str, id: u32) -> Span {
        let e = SpanEvent {
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            trace_id: trace.into(),
            span_id: format!("s{id}"),
            parent_span_id: None,
            service: "svc".into(),
            cloud_region: None,
            kind: EventKind::Sql,
            operation: "sql".into(),
            target: format!("SELECT {id}"),
            duration_us: 1,
            source: EventSource::default(),
            status_code: None,
            response_size_bytes: None,
            code_function: None,
            code_filepath: None,
            code_lineno: None,
            code_namespace: None,
            instrumentation_scopes: vec![],
            start_unix_nanos: None,
            db_parameters: vec![],
        };
        Span::new(e, &mut Interner::default())
    }

    #[test]
    fn lru_evicts_the_least_recently_touched() {
        let mut w = TraceWindow::new(2, 10);
        let t0 = Instant::now();
        w.push(span("a", 1), t0);
        w.push(span("b", 2), t0);
        w.push(span("a", 3), t0);
        let p = w.push(span("c", 4), t0);
        let (id, spans) = p.evicted.unwrap();
        assert_eq!((id.as_str(), spans.len()), ("b", 1));
        assert_eq!((w.len(), w.span_count()), (2, 3));
    }

    #[test]
    fn ring_buffer_drops_the_oldest_span() {
        let mut w = TraceWindow::new(10, 2);
        let t0 = Instant::now();
        w.push(span("a", 1), t0);
        w.push(span("a", 2), t0);
        assert!(w.push(span("a", 3), t0).dropped_oldest);
        let spans = w.get("a").unwrap();
        assert_eq!(
            spans.iter().map(|s| s.event.span_id.as_str()).collect::<Vec<_>>(),
            ["s2", "s3"]
        );
    }

    #[test]
    fn ttl_is_strict() {
        let mut w = TraceWindow::new(10, 10);
        let t0 = Instant::now();
        w.push(span("a", 1), t0);
        assert!(
            w.expire(t0 + Duration::from_millis(100), Duration::from_millis(100))
                .is_empty()
        );
        assert_eq!(
            w.expire(t0 + Duration::from_millis(101), Duration::from_millis(100))
                .len(),
            1
        );
        assert_eq!((w.len(), w.span_count()), (0, 0));
    }
}
