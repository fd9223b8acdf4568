//! The streaming readers `analyze` uses for every format (sniffed as
//! `analyze` sniffs), checked against the whole-file parser: both accept or both refuse, and accepted input gives
//! the same spans in the same order. The spans are then grouped twice, in
//! memory and through temporary files with a tiny budget: same traces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest;
use perf_sentinel_engine::trace::{Span, SpanBatch, Trace, group_spans};

/// Groups `spans` in memory and through temporary files, in parts and
/// with a budget taken from the input, and compares the traces.
fn spilled_traces_equal_held(spans: Vec<Span>, data: &[u8]) {
    let part = 1 + usize::from(data.first().copied().unwrap_or(0) % 5);
    let budget = 1 + usize::from(data.last().copied().unwrap_or(0) % 7);
    let held = group_spans(SpanBatch::from(spans.clone())).expect("held in memory");
    let mut batch = SpanBatch::spilling(budget);
    for chunk in spans.chunks(part) {
        batch.push(chunk.to_vec()).expect("temporary file written");
    }
    let merged: Vec<Trace> = group_spans(batch).expect("temporary files read");
    assert_eq!(held.len(), merged.len());
    for (a, b) in held.iter().zip(&merged) {
        assert_eq!(a.trace_id, b.trace_id);
        assert_eq!(a.spans.len(), b.spans.len());
        for (s, t) in a.spans.iter().zip(&b.spans) {
            assert_eq!((&s.event, &s.template, s.params), (&t.event, &t.template, t.params));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let streamed = ingest::read_spans_from(&mut &data[..], "fuzz-input", u64::MAX, &mut |_| {});
    let whole = ingest::parse(data, "fuzz-input");
    match (streamed, whole) {
        (Ok((spans, _)), Ok(whole)) => {
            assert_eq!(spans.len(), whole.events.len());
            let whole = perf_sentinel_engine::trace::normalize_events(whole.events);
            for (s, w) in spans.iter().zip(whole.iter()) {
                assert_eq!((&s.event, &s.template, s.params), (&w.event, &w.template, w.params));
            }
            spilled_traces_equal_held(spans.iter().cloned().collect(), data);
        }
        (Err(a), Err(_)) => assert!(a.to_string().starts_with("fuzz-input"), "{a}"),
        (a, b) => panic!(
            "streamed {:?} but whole-file {:?}",
            a.map(|(s, _)| s.len()),
            b.map(|i| i.events.len())
        ),
    }
});
