//! Any bytes, read as the OtlpProtobuf format, then analyzed and rendered;
//! the in-place reader checked against prost (what prost decodes, it reads
//! as the same events); and the streaming block reader that `analyze` uses
//! checked against the whole-message reader: both accept or both refuse,
//! and what both accept gives the same spans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use perf_sentinel_engine::ingest::{Format, otlp};
use perf_sentinel_engine::trace;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    perf_sentinel_fuzz::ingest_and_analyze(Some(Format::OtlpProtobuf), data);
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        let in_place = otlp::parse_protobuf(data, "fuzz-input").expect("prost accepts it, so must the in-place reader");
        assert_eq!(in_place, otlp::convert(&request));
    }
    let streamed = otlp::protobuf_spans(data, "fuzz-input");
    match (otlp::parse_protobuf(data, "fuzz-input"), streamed) {
        (Ok(whole), Ok((spans, stats))) => {
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
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("the block reader refused what the whole decoder accepts: {e}"),
        (Err(e), Ok(_)) => panic!("the block reader accepted what the whole decoder refuses: {e}"),
    }
});
