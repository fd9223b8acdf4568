//! Any bytes, with the format sniffed as `analyze` does, then analyzed and rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| perf_sentinel_fuzz::ingest_and_analyze(None, data));
