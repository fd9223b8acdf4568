//! Any bytes, read as the Jaeger format, then analyzed and rendered; and the
//! block-by-block reader that `analyze` uses checked against it (see
//! `perf_sentinel_fuzz::blocks_match_whole`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest::Format;

fuzz_target!(|data: &[u8]| {
    perf_sentinel_fuzz::ingest_and_analyze(Some(Format::Jaeger), data);
    perf_sentinel_fuzz::blocks_match_whole(Format::Jaeger, data);
});
