//! Real OTLP from the OpenTelemetry SDKs: OTLP/JSON posted by the JavaScript
//! SDK's HTTP exporter, and OTLP protobuf encoded by the Python SDK's own
//! encoder from apps instrumented with the sqlite3 and requests
//! instrumentations.

use std::process::Command;

use perf_sentinel_tests::{TempDir, json, run_in, sdk};
use serde_json::Value;

fn analyze(dir: &TempDir, file: &str) -> Value {
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--input", file, "--format", "json"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", perf_sentinel_tests::stderr(&out));
    json(&out)
}

fn of_type<'a>(report: &'a Value, t: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == t)
        .collect()
}

fn python_app(dir: &TempDir, scenario: &str) -> Value {
    let script = perf_sentinel_tests::workspace().join("tests/sdk/python/sdk_app.py");
    let out_file = dir.join(&format!("{scenario}.pb"));
    let out = Command::new(&sdk().python)
        .arg(script)
        .arg(scenario)
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python app failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    analyze(dir, out_file.to_str().unwrap())
}

#[test]
fn javascript_sdk_otlp_json_gives_the_n_plus_one() {
    let dir = TempDir::new("sdk-js");
    let out_file = dir.join("otlp.json");
    let node_dir = &sdk().node_dir;
    let out = Command::new("node")
        .arg(node_dir.join("n_plus_one_app.js"))
        .arg(&out_file)
        .current_dir(node_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node app failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read_to_string(&out_file).unwrap();
    assert!(body.contains("\"resourceSpans\""), "not OTLP/JSON: {body}");
    let report = analyze(&dir, out_file.to_str().unwrap());
    let n1 = of_type(&report, "n_plus_one_sql");
    assert_eq!(report["findings"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(n1.len(), 1);
    let f = n1[0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["service"], "order-svc");
    assert_eq!(f["source_endpoint"], "POST /api/orders/{id}/submit");
    assert_eq!(f["pattern"]["template"], "SELECT * FROM order_item WHERE order_id = ?");
    assert_eq!(f["pattern"]["occurrences"], 6);
    assert_eq!(f["pattern"]["distinct_params"], 6);
    assert_eq!(f["code_location"]["namespace"], "com.example.OrderItemRepository");
    assert_eq!(f["code_location"]["lineno"], 42);
    assert_eq!(report["analysis"]["spans_without_io_attributes"], 1);
}

/// `methods`: the acceptable `classification_method` values. Without bound
/// values the durations decide between the reference's heuristic (variance
/// above 0.5) and `params_unknown`; both report the loop.
fn check_sqlite_loop(report: &Value, distinct: u64, methods: &[Option<&str>]) {
    let n1 = of_type(report, "n_plus_one_sql");
    assert_eq!(n1.len(), 1, "{report:#}");
    let f = n1[0];
    assert_eq!(
        f["pattern"]["template"],
        "SELECT id, sku FROM order_item WHERE order_id = ?"
    );
    assert_eq!(f["pattern"]["occurrences"], 12);
    assert_eq!(f["pattern"]["distinct_params"], distinct);
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["source_endpoint"], "/orders");
    let method = f.get("classification_method").and_then(Value::as_str);
    assert!(methods.contains(&method), "classification_method {method:?}");
    // 17 strictly sequential sub-millisecond queries are not a saturated pool.
    assert!(of_type(report, "pool_saturation").is_empty(), "{report:#}");
    // The three identical settings lookups are redundant, not an N+1.
    let red = of_type(report, "redundant_sql");
    assert_eq!(red.len(), 1, "{report:#}");
    assert_eq!(red[0]["pattern"]["occurrences"], 3);
}

#[test]
fn python_sqlite_loop_without_parameter_capture_is_one_n_plus_one() {
    let dir = TempDir::new("sdk-py-sql");
    check_sqlite_loop(
        &python_app(&dir, "sql"),
        1,
        &[Some("params_unknown"), Some("sanitizer_heuristic")],
    );
}

#[test]
fn python_sqlite_loop_with_parameter_capture_is_one_n_plus_one() {
    let dir = TempDir::new("sdk-py-sql-params");
    check_sqlite_loop(&python_app(&dir, "sql-params"), 12, &[None]);
}

#[test]
fn python_requests_loop_is_one_n_plus_one_http() {
    let dir = TempDir::new("sdk-py-http");
    let report = python_app(&dir, "http");
    let n1 = of_type(&report, "n_plus_one_http");
    assert_eq!(n1.len(), 1, "{report:#}");
    assert_eq!(n1[0]["pattern"]["template"], "GET /api/users/{id}");
    assert_eq!(n1[0]["pattern"]["occurrences"], 6);
    assert_eq!(n1[0]["pattern"]["distinct_params"], 6);
    assert_eq!(n1[0]["source_endpoint"], "/orders/{id}");
}
