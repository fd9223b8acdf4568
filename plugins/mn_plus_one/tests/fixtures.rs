//! Hit and miss fixtures of `mn_plus_one`: a `hit_` file must produce at least one
//! finding of this detector, a `miss_` file none.

extern crate perf_sentinel_plugin_mn_plus_one as _;

use perf_sentinel_engine::{Engine, ingest};

#[test]
fn hit_and_miss_fixtures() {
    let engine = Engine::with_defaults().unwrap();
    assert!(
        engine.descriptor("mn_plus_one").is_some(),
        "the plugin did not register"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seen = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let input = ingest::parse(&std::fs::read(&path).unwrap(), &name).unwrap();
        let report = engine.report(input.events, input.stats);
        let found: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.finding_type == "mn_plus_one")
            .collect();
        if name.starts_with("hit_") {
            assert!(!found.is_empty(), "{name}: expected a finding");
            seen.0 += 1;
        } else {
            assert!(found.is_empty(), "{name}: unexpected {found:#?}");
            seen.1 += 1;
        }
    }
    assert!(seen.0 >= 1 && seen.1 >= 1, "{seen:?}");
}
