//! Hit and miss fixtures of `tx_across_remote_call`: every `hit_` file must produce at
//! least one finding of this detector, every `miss_` file none.

extern crate perf_sentinel_plugin_tx_across_remote_call as _;

#[test]
fn hit_and_miss_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let hits = perf_sentinel_engine::testing::check_fixture_dir("tx_across_remote_call", &dir)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!hits.is_empty());
}
