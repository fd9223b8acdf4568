//! Any bytes, read as the OtlpProtobuf format, then analyzed and rendered;
//! and the streaming block reader that `analyze` uses checked against the
//! whole-message decoder: whatever the whole decoder accepts, the block
//! reader accepts too and gives the same spans for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest::{Format, otlp};
use perf_sentinel_engine::trace;

fuzz_target!(|data: &[u8]| {
    perf_sentinel_fuzz::ingest_and_analyze(Some(Format::OtlpProtobuf), data);
    if let Ok(whole) = otlp::parse_protobuf(data, "fuzz-input") {
        let (spans, stats) = otlp::protobuf_spans(data, "fuzz-input")
            .expect("the block reader refused what the whole decoder accepts");
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
