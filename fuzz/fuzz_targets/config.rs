//! The config loader on any text: no panic; a refusal names the file.
#![no_main]

extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use libfuzzer_sys::fuzz_target;
use perf_sentinel_engine::Engine;
use perf_sentinel_engine::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let schema = Engine::schema().expect("the built-in registry loads");
    match Config::parse(text, "fuzz.toml", schema) {
        Ok(config) => {
            // A config that loads builds an engine, or says why not.
            let _ = Engine::new(config);
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml"), "{e}"),
    }
});
