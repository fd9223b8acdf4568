//! Any bytes, read as the OtlpProtobuf format, then analyzed and rendered;
//! and the block-by-block reader that `analyze` uses checked against the
//! whole-message decoder: whatever the whole decoder accepts, the block
//! reader gives the same spans for, or refuses (and `analyze` then falls
//! back to the whole decoder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest::{Format, otlp};
use perf_sentinel_engine::trace;

fuzz_target!(|data: &[u8]| {
    perf_sentinel_fuzz::ingest_and_analyze(Some(Format::OtlpProtobuf), data);
    if let (Ok(whole), Ok((spans, stats))) = (
        otlp::parse_protobuf(data, "fuzz-input"),
        otlp::protobuf_spans(data, "fuzz-input"),
    ) {
        assert_eq!(stats.spans_read, whole.stats.spans_read);
        let mut events = whole.events;
        for e in &mut events {
            e.sanitize();
        }
        let whole = trace::normalize_events(events);
        assert_eq!(spans.len(), whole.len());
        for (a, b) in spans.iter().zip(whole.iter()) {
            assert_eq!((&a.event, &a.template, a.params), (&b.event, &b.template, b.params));
        }
    }
});
