//! The trace window: traces still receiving spans, bounded in count (LRU),
//! in age (TTL since the last span) and in spans per trace (ring buffer).

use std::collections::{BTreeMap, VecDeque};
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

/// What one push did besides storing the spans.
#[derive(Default)]
pub struct Pushed {
    /// The least recently touched trace, evicted to make room.
    pub evicted: Option<Evicted>,
    /// The trace's oldest spans dropped to respect the span cap.
    pub dropped: usize,
}

/// The window. Not thread-safe by itself: the daemon keeps it behind a mutex.
pub struct TraceWindow {
    /// Trace ids come from clients: the hasher is seeded per map.
    traces: foldhash::HashMap<Arc<str>, Entry>,
    /// touch sequence -> trace id, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    /// The last touch given; the trace that has it is the most recent.
    seq: u64,
    max_traces: usize,
    max_spans: usize,
    span_count: usize,
}

impl TraceWindow {
    pub fn new(max_traces: usize, max_spans: usize) -> TraceWindow {
        TraceWindow {
            traces: foldhash::HashMap::default(),
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
    #[cfg(test)]
    pub fn push(&mut self, span: Span, now: Instant) -> Pushed {
        let id = span.event.trace_id.clone();
        self.push_run(id, std::iter::once(span), now)
    }

    /// Adds spans of trace `id`, in order: the same as adding them one at a
    /// time, with one lookup. Requests usually carry a trace's spans
    /// together, so the daemon hands over each run of them at once.
    pub fn push_run(&mut self, id: Arc<str>, spans: impl ExactSizeIterator<Item = Span>, now: Instant) -> Pushed {
        let mut out = Pushed::default();
        let n = spans.len();
        if n == 0 {
            return out;
        }
        if let Some(e) = self.traces.get_mut(&id) {
            // Touched again: it becomes the most recent, unless it is.
            if e.touch != self.seq {
                self.order.remove(&e.touch);
                self.seq += 1;
                e.touch = self.seq;
                self.order.insert(self.seq, id);
            }
            e.last_seen = now;
            e.spans.extend(spans);
            out.dropped = cap(&mut e.spans, self.max_spans);
            self.span_count += n - out.dropped;
            return out;
        }
        if self.traces.len() >= self.max_traces
            && let Some((_, oldest)) = self.order.pop_first()
            && let Some(e) = self.traces.remove(&oldest)
        {
            self.span_count -= e.spans.len();
            out.evicted = Some((oldest.to_string(), e.spans.into()));
        }
        let mut kept = VecDeque::with_capacity(n);
        kept.extend(spans);
        out.dropped = cap(&mut kept, self.max_spans);
        self.span_count += kept.len();
        self.seq += 1;
        self.order.insert(self.seq, id.clone());
        self.traces.insert(
            id,
            Entry {
                spans: kept,
                last_seen: now,
                touch: self.seq,
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

/// Drops the oldest spans past `max`, as a ring buffer would; returns how
/// many.
fn cap(spans: &mut VecDeque<Span>, max: usize) -> usize {
    let over = spans.len().saturating_sub(max);
    spans.drain(..over);
    over
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Interner;

    fn span(trace: &str, id: u32) -> Span {
        let e = crate::testing::sql_event(trace, &format!("s{id}"), &format!("SELECT {id}"));
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

    /// Trace ids and span ids, in the window's order.
    fn ids(traces: Vec<Evicted>) -> Vec<(String, Vec<String>)> {
        traces
            .into_iter()
            .map(|(id, spans)| (id, spans.iter().map(|s| s.event.span_id.to_string()).collect()))
            .collect()
    }

    /// The window's rules, spelled out on a list ordered by last touch.
    #[derive(Default)]
    struct Model {
        traces: Vec<(String, Vec<String>)>,
        evicted: Vec<(String, Vec<String>)>,
        dropped: usize,
    }

    impl Model {
        fn push(&mut self, trace: &str, span: String, max_traces: usize, max_spans: usize) {
            let mut entry = match self.traces.iter().position(|(id, _)| id == trace) {
                Some(i) => self.traces.remove(i),
                None => {
                    if self.traces.len() >= max_traces {
                        self.evicted.push(self.traces.remove(0));
                    }
                    (trace.to_owned(), Vec::new())
                }
            };
            entry.1.push(span);
            if entry.1.len() > max_spans {
                entry.1.remove(0);
                self.dropped += 1;
            }
            self.traces.push(entry);
        }
    }

    proptest::proptest! {
        /// Runs of a trace's spans leave the window, its evictions and its
        /// drops as the rules say for the same spans added one at a time.
        #[test]
        fn a_run_is_its_spans_one_at_a_time(
            runs in proptest::collection::vec((0u8..4, 1usize..5), 0..20),
            max_traces in 1usize..4,
            max_spans in 1usize..4,
        ) {
            let t0 = Instant::now();
            let mut model = Model::default();
            let mut w = TraceWindow::new(max_traces, max_spans);
            let (mut evicted, mut dropped) = (Vec::new(), 0);
            let mut next = 0;
            for (trace, len) in runs {
                let trace = format!("t{trace}");
                let spans: Vec<Span> = (next..next + len as u32).map(|i| span(&trace, i)).collect();
                next += len as u32;
                for s in &spans {
                    model.push(&trace, s.event.span_id.to_string(), max_traces, max_spans);
                }
                let p = w.push_run(trace.as_str().into(), spans.into_iter(), t0);
                dropped += p.dropped;
                evicted.extend(p.evicted);
                let held: usize = model.traces.iter().map(|(_, s)| s.len()).sum();
                proptest::prop_assert_eq!((w.len(), w.span_count()), (model.traces.len(), held));
            }
            proptest::prop_assert_eq!(dropped, model.dropped);
            proptest::prop_assert_eq!(ids(evicted), model.evicted);
            proptest::prop_assert_eq!(ids(w.drain()), model.traces);
        }
    }

    #[test]
    fn ring_buffer_drops_the_oldest_span() {
        let mut w = TraceWindow::new(10, 2);
        let t0 = Instant::now();
        w.push(span("a", 1), t0);
        w.push(span("a", 2), t0);
        assert_eq!(w.push(span("a", 3), t0).dropped, 1);
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
