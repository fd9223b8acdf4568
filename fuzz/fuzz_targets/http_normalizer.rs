//! The HTTP normalizer on any method and target (split at the first newline):
//! no panic, and normalizing a template again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::normalize::{DigestSink, normalize_http};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, target) = text.split_once('\n').unwrap_or(("GET", text));
    let mut sink = DigestSink::default();
    let template = normalize_http(method, target, &mut sink);
    let _ = sink.finish();
    // The template is "METHOD path"; with a method free of spaces, its path
    // normalizes to itself.
    if method.contains(' ') {
        return;
    }
    if let Some((m, path)) = template.split_once(' ') {
        let again = normalize_http(m, path, &mut DigestSink::default());
        assert_eq!(again, template, "not idempotent on {method:?} {target:?}");
    }
});
