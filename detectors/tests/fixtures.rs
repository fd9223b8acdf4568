//! Hit and miss fixtures for every built-in detector.
//!
//! `tests/fixtures/<detector id>/<hit|miss>_<case>.json` is a trace file. The
//! findings of that detector on it are compared with
//! `tests/snapshots/<detector id>__<case>.json`; a `hit_` case must produce at
//! least one finding and a `miss_` case none. `BLESS=1 cargo test` rewrites
//! the snapshots.

extern crate perf_sentinel_detectors as _;

use std::path::{Path, PathBuf};

use perf_sentinel_engine::{Engine, ingest};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn findings_of(engine: &Engine, path: &Path, detector: &str) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    let input = ingest::parse(&bytes, &path.display().to_string()).unwrap();
    let report = engine.report(input.events, input.stats);
    report
        .findings
        .iter()
        .filter(|f| f.finding_type == detector)
        .map(|f| {
            json!({
                "type": f.finding_type,
                "severity": f.severity,
                "trace_id": f.trace_id,
                "service": f.service,
                "source_endpoint": f.source_endpoint,
                "pattern": f.pattern,
                "first_timestamp": f.first_timestamp,
                "last_timestamp": f.last_timestamp,
                "classification_method": f.classification_method,
                "signature": f.signature,
            })
        })
        .collect()
}

#[test]
fn every_fixture_matches_its_snapshot() {
    let engine = Engine::with_defaults().unwrap();
    let bless = std::env::var_os("BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let detector = dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            engine.descriptor(&detector).is_some(),
            "fixture directory {detector} names no detector"
        );
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let case = file.file_stem().unwrap().to_str().unwrap().to_owned();
            let found = findings_of(&engine, &file, &detector);
            if case.starts_with("hit_") {
                assert!(!found.is_empty(), "{detector}/{case}: expected a finding, got none");
            } else {
                assert!(
                    case.starts_with("miss_"),
                    "{detector}/{case}: name must start with hit_ or miss_"
                );
                assert!(
                    found.is_empty(),
                    "{detector}/{case}: expected no finding, got {found:#?}"
                );
            }
            let snap = root().join("snapshots").join(format!("{detector}__{case}.json"));
            let text = serde_json::to_string_pretty(&found).unwrap() + "\n";
            if bless {
                std::fs::write(&snap, &text).unwrap();
            } else {
                match std::fs::read_to_string(&snap) {
                    Ok(old) if old == text => {}
                    Ok(old) => failures.push(format!(
                        "{}: snapshot differs\n--- old\n{old}\n--- new\n{text}",
                        snap.display()
                    )),
                    Err(_) => failures.push(format!("{}: missing snapshot (run with BLESS=1)", snap.display())),
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_detector_has_hit_and_miss_fixtures_and_documented_tunables() {
    let engine = Engine::with_defaults().unwrap();
    for d in engine.detectors() {
        let d = d.descriptor;
        let dir = root().join("fixtures").join(d.id);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("no fixtures for {}", d.id))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("hit_")), "{}: no hit_ fixture", d.id);
        assert!(
            names.iter().any(|n| n.starts_with("miss_")),
            "{}: no miss_ fixture",
            d.id
        );
        for heading in [
            "## What it detects",
            "## Why is it slow?",
            "## Example",
            "Prefer:",
            "## Known false positives",
        ] {
            assert!(d.docs.contains(heading), "{}: docs lack `{heading}`", d.id);
        }
        assert!(!d.tunables.is_empty(), "{}: no tunable", d.id);
        for t in d.tunables {
            assert!(t.doc.len() > 20, "{}: tunable {} is not documented", d.id, t.key);
        }
        assert!(
            d.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{}: id must be snake_case",
            d.id
        );
        assert!(
            d.summary.chars().next().is_some_and(char::is_lowercase) && !d.summary.ends_with('.'),
            "{}: summary must start lowercase and have no trailing period",
            d.id
        );
    }
}
