//! The streaming readers `analyze` uses for every format (sniffed as
//! `analyze` sniffs), checked against the whole-file parser: both accept or both refuse, and accepted input gives
//! the same spans in the same order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest;

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
        }
        (Err(a), Err(_)) => assert!(a.to_string().starts_with("fuzz-input"), "{a}"),
        (a, b) => panic!(
            "streamed {:?} but whole-file {:?}",
            a.map(|(s, _)| s.len()),
            b.map(|i| i.events.len())
        ),
    }
});
