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

#[test]
fn events_read_in_place_give_the_report_of_events_moved_in() {
    use perf_sentinel_detectors as _;
    use perf_sentinel_engine::{Engine, ingest};
    use perf_sentinel_scorers as _;

    let engine = Engine::with_defaults().unwrap();
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            inputs.push(ingest::parse(&std::fs::read(&path).unwrap(), &path.display().to_string()).unwrap());
        }
    }
    assert!(inputs.len() >= 8, "{} fixture files", inputs.len());
    // Past 4,096 events the spans are normalized on several threads.
    let demo = ingest::parse(&std::fs::read(fixture("demo.json")).unwrap(), "demo.json").unwrap();
    let mut many = Vec::new();
    for copy in 0..100 {
        many.extend(demo.events.iter().map(|e| {
            let mut e = e.clone();
            e.trace_id = format!("{}-{copy}", e.trace_id);
            e.span_id = format!("{}-{copy}", e.span_id);
            e
        }));
    }
    inputs.push(ingest::Ingested {
        events: many,
        stats: demo.stats,
    });
    let mut findings = 0;
    for input in inputs {
        let in_place = engine.report_events(&input.events, input.stats, None);
        let moved = engine.report(input.events, input.stats);
        findings += moved.findings.len();
        assert_eq!(in_place.to_json(), moved.to_json());
    }
    assert!(findings > 100, "{findings} findings compared");
}

/// Findings come out in detector rank order (not name order), unknown
/// types last, and re-sorting them in any input order changes nothing.
#[test]
fn findings_sort_by_rank_and_key_from_any_input_order() {
    use perf_sentinel_detectors as _;
    use perf_sentinel_engine::{Engine, ingest};
    use perf_sentinel_scorers as _;

    let engine = Engine::with_defaults().unwrap();
    let demo = ingest::parse(&std::fs::read(fixture("demo.json")).unwrap(), "demo.json").unwrap();
    let report = engine.report(demo.events, demo.stats);
    let sorted = report.findings;
    let types: Vec<&str> = sorted.iter().map(|f| f.finding_type.as_str()).collect();
    let first = |t: &str| types.iter().position(|x| *x == t).unwrap();
    // Ranks 10 and 80: names alone would put chatty_service first.
    assert!(first("n_plus_one_sql") < first("chatty_service"), "{types:?}");
    let mut unknown = sorted[0].clone();
    unknown.finding_type = "a_type_no_detector_declares".to_owned();
    let mut shuffled = sorted.clone();
    shuffled.push(unknown.clone());
    let mut want = sorted;
    want.push(unknown);
    // A fixed shuffle: reversed, then every third moved to the front.
    shuffled.reverse();
    let (thirds, rest): (Vec<_>, Vec<_>) = shuffled.into_iter().enumerate().partition(|(i, _)| i % 3 == 0);
    let mut shuffled: Vec<_> = thirds.into_iter().chain(rest).map(|(_, f)| f).collect();
    engine.sort_findings(&mut shuffled);
    assert_eq!(shuffled, want);
}

/// Event `e` of copy number `copy`: its trace and span ids suffixed, so
/// that every copy is a trace of its own.
fn copied(e: &Value, copy: usize) -> Value {
    let mut e = e.clone();
    for key in ["trace_id", "span_id", "parent_span_id"] {
        if let Some(id) = e[key].as_str() {
            e[key] = Value::from(format!("{id}-{copy}"));
        }
    }
    e
}

/// `analyze` with a spans budget: what it reads past the budget is sorted by
/// trace id into temporary files and merged back. The budget changes
/// nothing in the output, down to one span per file, even when every trace
/// is spread over the whole input.
#[test]
fn spilling_spans_to_temporary_files_changes_nothing() {
    use std::process::Command;

    let dir = TempDir::new("det-spill");
    let demo: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixture("demo.json")).unwrap()).unwrap();
    // Span k of every copy, then span k + 1 of every copy: each trace's
    // spans lie across the whole file, so across every temporary file.
    let mut spread = Vec::new();
    for e in &demo {
        for copy in 0..200 {
            spread.push(copied(e, copy));
        }
    }
    std::fs::write(dir.join("spread.json"), serde_json::to_vec(&spread).unwrap()).unwrap();
    let generated = Command::new(env!("CARGO_BIN_EXE_gen-dataset"))
        .args(["6000", "--format", "otlp-protobuf"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    std::fs::write(dir.join("demo.pb"), &generated.stdout).unwrap();
    std::fs::write(dir.join("big.toml"), "[analyze]\nmax_input_size = 100000000\n").unwrap();

    let analyze = |file: &str, format: &str, budget: &str, tmp: Option<&std::path::Path>| {
        let mut cmd = Command::new(perf_sentinel_tests::bin());
        cmd.current_dir(dir.path())
            .args(["analyze", "--config", "big.toml", "--input", file, "--format", format])
            .env("PERF_SENTINEL_SPILL_SPANS", budget);
        if let Some(tmp) = tmp {
            cmd.env("TMPDIR", tmp);
        }
        cmd.output().unwrap()
    };
    for file in ["spread.json", "demo.pb"] {
        for format in ["json", "sarif"] {
            let held = analyze(file, format, "0", None);
            assert_eq!(held.status.code(), Some(0), "{}", perf_sentinel_tests::stderr(&held));
            assert!(held.stdout.len() > 10_000);
            for budget in ["1", "700", "5000"] {
                let spilled = analyze(file, format, budget, None);
                assert_eq!(
                    spilled.status.code(),
                    Some(0),
                    "{}",
                    perf_sentinel_tests::stderr(&spilled)
                );
                assert!(
                    held.stdout == spilled.stdout,
                    "{file} {format}: budget {budget} differs"
                );
            }
        }
    }

    // `explain` finds a trace among the merged ones as among those held.
    let explain = |budget: &str| {
        let out = Command::new(perf_sentinel_tests::bin())
            .current_dir(dir.path())
            .args(["explain", "--config", "big.toml", "--input", "spread.json"])
            .args(["--trace-id", "trace-demo-nplus-sql-117", "--format", "json"])
            .env("PERF_SENTINEL_SPILL_SPANS", budget)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", perf_sentinel_tests::stderr(&out));
        out.stdout
    };
    let held = explain("0");
    assert!(String::from_utf8_lossy(&held).contains("n_plus_one_sql"));
    assert!(held == explain("700"));

    // The files really are written: where they cannot be, the run stops
    // with exit 2 and says where and what to do.
    let nowhere = dir.join("no-such-dir");
    let out = analyze("spread.json", "json", "700", Some(&nowhere));
    assert_eq!(out.status.code(), Some(2));
    let err = perf_sentinel_tests::stderr(&out);
    assert!(
        err.contains("no-such-dir") && err.contains("temporary file of spans") && err.contains("TMPDIR"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Held in memory, the same run needs no temporary file.
    assert_eq!(
        analyze("spread.json", "json", "0", Some(&nowhere)).status.code(),
        Some(0)
    );

    let bad = analyze("spread.json", "json", "lots", None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(perf_sentinel_tests::stderr(&bad).contains("PERF_SENTINEL_SPILL_SPANS: expected a number"));
}

/// `analyze` with a findings budget: past it, findings are sorted, signed
/// and split by acknowledgment into temporary files, and every format is
/// written from the files merged back. The budget changes nothing in any
/// output, down to one finding per file, acknowledged ones included.
#[test]
fn spilling_findings_to_temporary_files_changes_nothing() {
    use std::process::Command;

    let dir = TempDir::new("det-spill-findings");
    let demo: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixture("demo.json")).unwrap()).unwrap();
    let mut copies = Vec::new();
    for copy in 0..40 {
        copies.extend(demo.iter().map(|e| copied(e, copy)));
    }
    std::fs::write(dir.join("copies.json"), serde_json::to_vec(&copies).unwrap()).unwrap();
    std::fs::write(dir.join("big.toml"), "[analyze]\nmax_input_size = 100000000\n").unwrap();

    let analyze = |args: &[&str], budget: &str, tmp: Option<&std::path::Path>| {
        let mut cmd = Command::new(perf_sentinel_tests::bin());
        cmd.current_dir(dir.path())
            .args(["analyze", "--config", "big.toml", "--input", "copies.json"])
            .args(args)
            .env("PERF_SENTINEL_SPILL_SPANS", "0")
            .env("PERF_SENTINEL_SPILL_FINDINGS", budget);
        if let Some(tmp) = tmp {
            cmd.env("TMPDIR", tmp);
        }
        cmd.output().unwrap()
    };

    // Acknowledge the most frequent signature: one finding per copy.
    let held = analyze(&["--format", "json"], "0", None);
    assert_eq!(held.status.code(), Some(0), "{}", perf_sentinel_tests::stderr(&held));
    let report: Value = serde_json::from_slice(&held.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(findings.len() > 200, "{} findings", findings.len());
    let mut per_signature = std::collections::BTreeMap::new();
    for f in findings {
        *per_signature.entry(f["signature"].as_str().unwrap()).or_insert(0) += 1;
    }
    let (signature, recurring) = per_signature.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(*recurring >= 40);
    std::fs::write(
        dir.join("acks.toml"),
        format!(
            "[[acknowledged]]\nsignature = \"{signature}\"\nacknowledged_by = \"a\"\nacknowledged_at = \"2026-01-01\"\nreason = \"known\"\n"
        ),
    )
    .unwrap();

    // Text shows the run's duration, which differs from run to run.
    let timeless = |out: &[u8]| {
        let text = String::from_utf8_lossy(out).into_owned();
        let at = text.find(" ms)").expect("a duration in the header");
        let from = text[..at].rfind('(').unwrap();
        format!("{}{}", &text[..from], &text[at..])
    };
    for format in ["json", "sarif", "text"] {
        for extra in [
            &[][..],
            &["--acknowledgments", "acks.toml"],
            &["--acknowledgments", "acks.toml", "--show-acknowledged"],
            &["--ci"],
        ] {
            let mut args = vec!["--format", format];
            args.extend_from_slice(extra);
            let held = analyze(&args, "0", None);
            assert!(
                held.status.code().is_some_and(|c| c <= 1),
                "{}",
                perf_sentinel_tests::stderr(&held)
            );
            for budget in ["1", "7", "100"] {
                let spilled = analyze(&args, budget, None);
                assert_eq!(
                    spilled.status.code(),
                    held.status.code(),
                    "{}",
                    perf_sentinel_tests::stderr(&spilled)
                );
                if format == "text" {
                    assert_eq!(
                        timeless(&held.stdout),
                        timeless(&spilled.stdout),
                        "{args:?}: budget {budget}"
                    );
                } else {
                    assert!(held.stdout == spilled.stdout, "{args:?}: budget {budget} differs");
                }
            }
        }
    }

    // `diff` reads each side's findings back from its files, one per
    // identity held: the same output as with every finding held.
    let mut fewer: Vec<Value> = copies[..copies.len() / 2].to_vec();
    fewer.retain(|e| !e["trace_id"].as_str().is_some_and(|t| t.contains("redundant")));
    std::fs::write(dir.join("fewer.json"), serde_json::to_vec(&fewer).unwrap()).unwrap();
    let diff = |format: &str, budget: &str| {
        let out = Command::new(perf_sentinel_tests::bin())
            .current_dir(dir.path())
            .args([
                "diff",
                "--config",
                "big.toml",
                "--before",
                "copies.json",
                "--after",
                "fewer.json",
            ])
            .args(["--format", format])
            .env("PERF_SENTINEL_SPILL_FINDINGS", budget)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", perf_sentinel_tests::stderr(&out));
        out.stdout
    };
    let held: Value = serde_json::from_slice(&diff("json", "0")).unwrap();
    assert!(!held["resolved_findings"].as_array().unwrap().is_empty(), "{held}");
    for format in ["json", "sarif", "text"] {
        let held = diff(format, "0");
        for budget in ["1", "7"] {
            assert!(held == diff(format, budget), "diff {format}: budget {budget} differs");
        }
    }

    // The files really are written: where they cannot be, the run stops
    // with exit 2 and names the directory.
    let nowhere = dir.join("no-such-dir");
    let out = analyze(&["--format", "json"], "100", Some(&nowhere));
    assert_eq!(out.status.code(), Some(2));
    let err = perf_sentinel_tests::stderr(&out);
    assert!(
        err.contains("no-such-dir") && err.contains("temporary file of findings") && err.contains("TMPDIR"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        analyze(&["--format", "json"], "0", Some(&nowhere)).status.code(),
        Some(0)
    );

    let bad = analyze(&["--format", "json"], "many", None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(perf_sentinel_tests::stderr(&bad).contains("PERF_SENTINEL_SPILL_FINDINGS: expected a number"));
}
