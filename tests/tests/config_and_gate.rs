//! Config errors, the carbon worked example, the `--ci` gate and SARIF validity.

use std::process::Command;

use perf_sentinel_tests::{TempDir, fixture, json, run, run_in, sdk, shared, stderr};

fn with_config(toml: &str, args: &[&str]) -> std::process::Output {
    let dir = TempDir::new("cfg");
    std::fs::write(dir.join(".perf-sentinel.toml"), toml).unwrap();
    run_in(Some(dir.path()), args, None)
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_2() {
    let input = fixture("n_plus_one_sql.json");
    let input = input.to_str().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "[detection]\nn_plus_one_min_occurences = 3\n",
            &[
                ".perf-sentinel.toml:2:1",
                "detection.n_plus_one_min_occurences",
                "did you mean `n_plus_one_min_occurrences`",
            ],
        ),
        (
            "[detection]\nmax_fanout = 0\n",
            &[":2:14", "detection.max_fanout", "out of range (1 to 100000)"],
        ),
        (
            "[thresholds]\nio_waste_ratio_max = 1.5\n",
            &[":2:22", "io_waste_ratio_max", "out of range"],
        ),
        (
            "[green]\nenabled = \"yes\"\n",
            &[":2:11", "green.enabled", "expected a boolean"],
        ),
        ("listen_port = 4318\n", &[":1:1", "[daemon] listen_port_http"]),
        ("[detection\n", &[":1:", "invalid TOML"]),
        (
            "[daemon]\nenvironment = \"prod\"\n",
            &["daemon.environment", "staging, production"],
        ),
    ];
    for (toml, wants) in cases {
        let out = with_config(toml, &["analyze", "--input", input]);
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let err = stderr(&out);
        for w in *wants {
            assert!(err.contains(w), "{toml:?}: stderr lacks `{w}`: {err}");
        }
    }
    let out = run(&["analyze", "--input", input, "--config", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.toml"));
}

#[test]
fn a_reference_config_file_loads_unchanged() {
    let toml = r#"
[thresholds]
n_plus_one_sql_critical_max = 0
io_waste_ratio_max = 0.20

[detection]
n_plus_one_min_occurrences = 4
slow_query_threshold_ms = 300
sanitizer_aware_classification = " Strict "

[green]
default_region = "eu-west-1"

[green.service_regions]
"ledger" = "us-east-1"

[green.scaphandre]
endpoint = "http://127.0.0.1:8080/metrics"

[daemon]
listen_address = "127.0.0.1"
analysis_queue_capacity = 2048

[daemon.correlation]
enabled = true

[daemon.cors]
allowed_origins = ["http://localhost:3000"]

[reporting]
intent = "internal"
"#;
    let input = fixture("n_plus_one_sql.json");
    let out = with_config(
        toml,
        &["analyze", "--input", input.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["quality_gate"]["rules"][2]["threshold"], 0.2);
}

#[test]
fn carbon_worked_example() {
    // Spec 04 §3: six SELECT N+1 spans, eu-west-3, hourly profiles off.
    let input = fixture("n_plus_one_sql.json");
    let toml = "[green]\ndefault_region = \"eu-west-3\"\nuse_hourly_profiles = false\n";
    let v = json(&with_config(
        toml,
        &["analyze", "--input", input.to_str().unwrap(), "--format", "json"],
    ));
    let g = &v["green_summary"];
    let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-12;
    assert!(close(&g["co2"]["operational_gco2"], 1.932e-5), "{g:#}");
    assert!(close(&g["co2"]["total"]["mid"], 0.00101932), "{g:#}");
    assert!(close(&g["co2"]["avoidable"]["mid"], 1.61e-5), "{g:#}");
    assert_eq!(g["co2"]["total"]["model"], "io_proxy_v1");
    assert_eq!(g["regions"][0]["region"], "eu-west-3");
    assert_eq!(g["regions"][0]["status"], "known");
    assert!(close(&g["energy_kwh"], 6.0 * 5e-8));
    // The default path uses the monthly profile.
    let v = json(&with_config(
        "[green]\ndefault_region = \"eu-west-3\"\n",
        &["analyze", "--input", input.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(v["green_summary"]["co2"]["total"]["model"], "io_proxy_v3");
    assert_eq!(v["green_summary"]["regions"][0]["intensity_source"], "monthly_hourly");
}

#[test]
fn ci_gate_exit_codes() {
    let failing = fixture("n_plus_one_sql.json");
    let out = run(&["analyze", "--ci", "--input", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Quality gate FAILED"));
    assert_eq!(json(&out)["quality_gate"]["passed"], false);
    let clean = fixture("clean_traces.json");
    let out = run(&["analyze", "--ci", "--input", clean.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // Without --ci a failing gate still exits 0.
    let out = run(&["analyze", "--input", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // A relaxed threshold passes.
    let out = with_config(
        "[thresholds]\nio_waste_ratio_max = 1.0\n",
        &["analyze", "--ci", "--input", failing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_sarif_we_write_validates_against_the_official_schema() {
    let dir = TempDir::new("sarif");
    let demo = fixture("demo.json");
    let demo = demo.to_str().unwrap();
    let clean = fixture("clean_traces.json");
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--input", demo, "--format", "sarif"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let log = json(&out);
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 10);
    let rules: Vec<&str> = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let registered = json(&run(&["rules", "--format", "json"]))["detectors"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(rules.len(), registered, "one rule per registered detector");
    for id in [
        "n_plus_one_sql",
        "redundant_http",
        "slow_sql",
        "excessive_fanout",
        "serialized_calls",
    ] {
        assert!(rules.contains(&id), "{id}");
    }
    std::fs::write(dir.join("analyze.sarif"), &out.stdout).unwrap();

    let out = run_in(
        Some(dir.path()),
        &[
            "diff",
            "--before",
            clean.to_str().unwrap(),
            "--after",
            demo,
            "--format",
            "sarif",
        ],
        None,
    );
    std::fs::write(dir.join("diff.sarif"), &out.stdout).unwrap();

    // An acknowledged finding shown with --show-acknowledged.
    let sig = json(&run_in(
        Some(dir.path()),
        &["analyze", "--input", demo, "--format", "json"],
        None,
    ))["findings"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        dir.join(".perf-sentinel-acknowledgments.toml"),
        format!("[[acknowledged]]\nsignature = \"{sig}\"\nacknowledged_by = \"a\"\nacknowledged_at = \"2026-01-01\"\nreason = \"r\"\n"),
    )
    .unwrap();
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--input", demo, "--format", "sarif", "--show-acknowledged"],
        None,
    );
    let acked = json(&out);
    let results = acked["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert_eq!(results[9]["properties"]["acknowledged"], true);
    std::fs::write(dir.join("acked.sarif"), &out.stdout).unwrap();

    let schema = shared().join("schemas").join("sarif-schema-2.1.0.json");
    let check = "import json,sys,jsonschema\n\
                 s=json.load(open(sys.argv[1]))\n\
                 for p in sys.argv[2:]:\n    jsonschema.validate(json.load(open(p)), s, cls=jsonschema.Draft7Validator)\n\
                 print('valid')\n";
    let res = Command::new(&sdk().python)
        .arg("-c")
        .arg(check)
        .arg(schema)
        .args(["analyze.sarif", "diff.sarif", "acked.sarif"].map(|f| dir.join(f)))
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "SARIF invalid: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}
