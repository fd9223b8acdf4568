//! Identical input gives byte-identical JSON and SARIF, across runs and across
//! the order of traces and spans in the input file.

use perf_sentinel_tests::{TempDir, fixture, run_in};
use serde_json::Value;

fn output(dir: &TempDir, file: &str, format: &str) -> Vec<u8> {
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--input", file, "--format", format],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    out.stdout
}

#[test]
fn two_runs_give_identical_bytes() {
    let dir = TempDir::new("det");
    let demo = fixture("demo.json");
    let demo = demo.to_str().unwrap();
    for format in ["json", "sarif", "text"] {
        let a = output(&dir, demo, format);
        let b = output(&dir, demo, format);
        if format == "text" {
            // The text header shows elapsed milliseconds; the rest is stable.
            let strip = |v: &[u8]| {
                String::from_utf8_lossy(v)
                    .lines()
                    .skip(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(&a), strip(&b));
        } else {
            assert_eq!(a, b, "{format} output differs between runs");
        }
    }
}

#[test]
fn reordering_traces_in_the_input_changes_nothing() {
    let dir = TempDir::new("det-order");
    let text = std::fs::read_to_string(fixture("demo.json")).unwrap();
    let events: Vec<Value> = serde_json::from_str(&text).unwrap();
    // Reverse the order of traces, keeping each trace's spans in order.
    let mut ids: Vec<&str> = Vec::new();
    for e in &events {
        let id = e["trace_id"].as_str().unwrap();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut reordered = Vec::new();
    for id in ids.iter().rev() {
        reordered.extend(events.iter().filter(|e| e["trace_id"] == *id).cloned());
    }
    std::fs::write(dir.join("a.json"), &text).unwrap();
    std::fs::write(dir.join("b.json"), serde_json::to_string(&reordered).unwrap()).unwrap();
    for format in ["json", "sarif"] {
        assert_eq!(
            output(&dir, "a.json", format),
            output(&dir, "b.json", format),
            "{format}"
        );
    }
}
