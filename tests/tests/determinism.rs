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

/// `analyze` frees a file's traces a slice at a time, once every detector
/// and scorer has seen them; the daemon and embedders analyze a borrowed
/// batch. Both give the same analysis, cross-trace findings, per-finding
/// impact and the carbon summary included.
#[test]
fn analysis_freed_slice_by_slice_equals_analysis_of_the_whole_batch() {
    use perf_sentinel_detectors as _;
    use perf_sentinel_engine::config::Config;
    use perf_sentinel_engine::{Confidence, Engine, SpanEvent};
    use perf_sentinel_scorers as _;

    let demo: Vec<SpanEvent> = serde_json::from_str(&std::fs::read_to_string(fixture("demo.json")).unwrap()).unwrap();
    let mut events = Vec::new();
    for copy in 0..300 {
        for e in &demo {
            let mut e = e.clone();
            e.trace_id = format!("{}-{copy}", e.trace_id);
            e.span_id = format!("{}-{copy}", e.span_id);
            if let Some(p) = &mut e.parent_span_id {
                *p = format!("{p}-{copy}");
            }
            events.push(e);
        }
    }
    let config = Config::parse(
        "[green]\nenabled = true\ndefault_region = \"eu-west-3\"\nper_operation_coefficients = false\n",
        "test.toml",
        Engine::schema().unwrap(),
    )
    .unwrap();
    let engine = Engine::new(config).unwrap();
    let traces = perf_sentinel_engine::trace::group_traces(events);
    assert!(traces.len() > 2 * 1024, "{} traces: several slices", traces.len());

    let whole = engine.analyze(&traces, Confidence::CiBatch);
    let sliced = engine.analyze_owned(traces, Confidence::CiBatch);
    let cross = |a: &perf_sentinel_engine::Analysis| {
        a.findings
            .iter()
            .filter(|f| f.suggestion.starts_with("cross-trace"))
            .count()
    };
    assert!(cross(&whole) > 0, "the demo has templates slow in many traces");
    assert_eq!(cross(&whole), cross(&sliced));
    assert!(whole.green_summary.fields.contains_key("co2"));
    assert_eq!(
        serde_json::to_string(&whole.findings).unwrap(),
        serde_json::to_string(&sliced.findings).unwrap()
    );
    let span_ids =
        |a: &perf_sentinel_engine::Analysis| a.findings.iter().map(|f| f.span_ids.clone()).collect::<Vec<_>>();
    assert_eq!(span_ids(&whole), span_ids(&sliced));
    // Grams per endpoint come from the batch's endpoint counts.
    assert!(
        whole.green_summary.fields["top_offenders"][0]
            .get("co2_grams")
            .is_some()
    );
    assert_eq!(whole.green_summary.fields, sliced.green_summary.fields);
    assert_eq!(whole.green_summary.metrics, sliced.green_summary.metrics);
    assert_eq!(whole.per_endpoint_io_ops, sliced.per_endpoint_io_ops);
}
