//! The SQL normalizer on any text: no panic, and normalizing a template again
//! changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::normalize::{DigestSink, normalize_sql};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let mut sink = DigestSink::default();
    let template = normalize_sql(sql, &mut sink);
    let _ = sink.finish();
    let again = normalize_sql(&template, &mut DigestSink::default());
    assert_eq!(again, template, "not idempotent on {sql:?}");
});
