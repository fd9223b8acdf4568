//! Acknowledgments, `diff`, `explain` and the gate on the demo data.

use perf_sentinel_tests::{TempDir, fixture, json, run, run_in, stderr, stdout};
use serde_json::Value;

fn demo() -> String {
    fixture("demo.json").to_str().unwrap().to_owned()
}

#[test]
fn ci_gate_on_demo_and_clean_matches_the_reference() {
    let out = run(&["analyze", "--ci", "--input", &demo()]);
    assert_eq!(out.status.code(), Some(1));
    let got = json(&out)["quality_gate"].clone();
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(perf_sentinel_tests::shared().join("fixtures/expected/demo.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(got, want["quality_gate"]);
    let clean = fixture("clean_traces.json");
    assert_eq!(
        run(&["analyze", "--ci", "--input", clean.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

fn ack_file(dir: &TempDir, signature: &str, expires: Option<&str>) {
    let mut text = format!(
        "[[acknowledged]]\nsignature = \"{signature}\"\nacknowledged_by = \"team-orders\"\nacknowledged_at = \"2026-01-01\"\nreason = \"batch rewrite planned\"\n"
    );
    if let Some(e) = expires {
        text.push_str(&format!("expires_at = \"{e}\"\n"));
    }
    std::fs::write(dir.join(".perf-sentinel-acknowledgments.toml"), text).unwrap();
}

#[test]
fn acknowledging_the_critical_n_plus_one_passes_the_gate_unless_expired() {
    // With the waste-ratio rule relaxed, only the critical N+1 SQL fails the demo.
    let dir = TempDir::new("acks");
    std::fs::write(
        dir.join(".perf-sentinel.toml"),
        "[thresholds]\nio_waste_ratio_max = 1.0\n",
    )
    .unwrap();
    let report = json(&run_in(
        Some(dir.path()),
        &["analyze", "--input", &demo(), "--format", "json"],
        None,
    ));
    let sig = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "n_plus_one_sql" && f["severity"] == "critical")
        .unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        run_in(Some(dir.path()), &["analyze", "--ci", "--input", &demo()], None)
            .status
            .code(),
        Some(1)
    );

    ack_file(&dir, &sig, None);
    let out = run_in(Some(dir.path()), &["analyze", "--ci", "--input", &demo()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["findings"].as_array().unwrap().len(), 9);
    assert!(v.get("acknowledged_findings").is_none());
    // The waste ratio is not lowered by acknowledging.
    assert_eq!(
        v["green_summary"]["io_waste_ratio"],
        report["green_summary"]["io_waste_ratio"]
    );
    let shown = json(&run_in(
        Some(dir.path()),
        &["analyze", "--ci", "--input", &demo(), "--show-acknowledged"],
        None,
    ));
    assert_eq!(
        shown["acknowledged_findings"][0]["acknowledgment"]["reason"],
        "batch rewrite planned"
    );
    // --no-acknowledgments restores the failure.
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--ci", "--no-acknowledgments", "--input", &demo()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));

    ack_file(&dir, &sig, Some("2020-01-31"));
    let out = run_in(Some(dir.path()), &["analyze", "--ci", "--input", &demo()], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an expired acknowledgment must not pass the gate"
    );

    std::fs::write(
        dir.join(".perf-sentinel-acknowledgments.toml"),
        "[[acknowledged]]\nsignature = 3\n",
    )
    .unwrap();
    let out = run_in(Some(dir.path()), &["analyze", "--input", &demo()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(".perf-sentinel-acknowledgments.toml:2:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shuffled_events_change_no_byte() {
    let dir = TempDir::new("shuffle");
    let text = std::fs::read_to_string(fixture("demo.json")).unwrap();
    let mut events: Vec<Value> = serde_json::from_str(&text).unwrap();
    // A fixed permutation: reverse, then interleave halves.
    events.reverse();
    let half = events.len() / 2;
    let (a, b) = events.split_at(half);
    let mut shuffled = Vec::new();
    for i in 0..half.max(b.len()) {
        shuffled.extend(b.get(i).cloned());
        shuffled.extend(a.get(i).cloned());
    }
    std::fs::write(dir.join("orig.json"), &text).unwrap();
    std::fs::write(dir.join("shuffled.json"), serde_json::to_string(&shuffled).unwrap()).unwrap();
    for format in ["json", "sarif"] {
        let x = run_in(
            Some(dir.path()),
            &["analyze", "--input", "orig.json", "--format", format],
            None,
        );
        let y = run_in(
            Some(dir.path()),
            &["analyze", "--input", "shuffled.json", "--format", format],
            None,
        );
        assert_eq!(x.stdout, y.stdout, "{format}");
    }
}

#[test]
fn diff_demo_against_clean_lists_ten_resolved_findings() {
    let clean = fixture("clean_traces.json");
    let out = run(&[
        "diff",
        "--before",
        &demo(),
        "--after",
        clean.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["resolved_findings"].as_array().unwrap().len(), 10);
    assert_eq!(v["new_findings"].as_array().unwrap().len(), 0);
    assert!(v["severity_changes"].as_array().unwrap().is_empty());
    assert!(!v["endpoint_metric_deltas"].as_array().unwrap().is_empty());
    let text = stdout(&run(&["diff", "--before", &demo(), "--after", clean.to_str().unwrap()]));
    assert!(text.contains("10 resolved"), "{text}");
    // The reverse direction: ten new findings, as SARIF.
    let out = run(&[
        "diff",
        "--before",
        clean.to_str().unwrap(),
        "--after",
        &demo(),
        "--format",
        "sarif",
    ]);
    assert_eq!(json(&out)["runs"][0]["results"].as_array().unwrap().len(), 10);
}

#[test]
fn explain_anchors_findings_on_spans() {
    let out = run(&[
        "explain",
        "--input",
        &demo(),
        "--trace-id",
        "trace-demo-nplus-sql",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["trace_id"], "trace-demo-nplus-sql");
    let roots = v["roots"].as_array().unwrap();
    let flagged: Vec<&Value> = roots.iter().filter(|s| s.get("findings").is_some()).collect();
    assert_eq!(flagged.len(), 1, "{v:#}");
    assert_eq!(flagged[0]["findings"][0]["type"], "n_plus_one_sql");
    assert_eq!(flagged[0]["findings"][0]["occurrences"], 10);
    assert!(
        roots
            .iter()
            .all(|r| r["children"].is_array() && r.get("parent_span_id").is_some())
    );
    let text = stdout(&run(&[
        "explain",
        "--input",
        &demo(),
        "--trace-id",
        "trace-demo-chatty",
    ]));
    assert!(text.contains("! [warning] chatty_service"), "{text}");
    let out = run(&["explain", "--input", &demo(), "--trace-id", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("trace-demo-"), "{}", stderr(&out));
}

#[test]
fn a_large_file_past_the_payload_cap_is_read_with_max_input_size_and_quietly_when_piped() {
    let dir = TempDir::new("large");
    // 40,000 events (about 17 MB): over the 16 MiB default cap.
    let exe = std::env::current_exe().unwrap();
    let generator = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("gen-dataset");
    let out = std::process::Command::new(generator).arg("40000").output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.len() > 16 * 1024 * 1024, "{} bytes", out.stdout.len());
    std::fs::write(dir.join("big.json"), &out.stdout).unwrap();
    let refused = run_in(Some(dir.path()), &["analyze", "--input", "big.json"], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("[analyze] max_input_size"),
        "{}",
        stderr(&refused)
    );
    std::fs::write(
        dir.join(".perf-sentinel.toml"),
        "[analyze]\nmax_input_size = 104857600\n",
    )
    .unwrap();
    let o = run_in(
        Some(dir.path()),
        &["analyze", "--input", "big.json", "--format", "json"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["analysis"]["events_processed"], 40_000);
    // stderr is a pipe here: no progress line, however long the run.
    assert!(!stderr(&o).contains("reading"), "{}", stderr(&o));
}
