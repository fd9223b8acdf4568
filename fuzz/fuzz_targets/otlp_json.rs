//! Any bytes, read as the OtlpJson format, then analyzed and rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::ingest::Format;

fuzz_target!(|data: &[u8]| perf_sentinel_fuzz::ingest_and_analyze(Some(Format::OtlpJson), data));
