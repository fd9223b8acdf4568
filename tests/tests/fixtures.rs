//! On every shared fixture, `analyze --format json` reports what the reference
//! reports: the same findings, green summary and quality gate (prose removed).

use perf_sentinel_tests::{fixture, json, run, shared};
use serde_json::Value;

const FIXTURES: &[&str] = &[
    "clean_traces.json",
    "demo.json",
    "fanout.json",
    "jaeger_export.json",
    "mixed.json",
    "n_plus_one_http.json",
    "n_plus_one_sql.json",
    "slow_queries.json",
    "zipkin_export.json",
];

/// Removes what the expected files leave out: prose and our additions.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "suggestion",
                    "methodology",
                    "binary_version",
                    "spans_without_io_attributes",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn analyze(name: &str) -> Value {
    let path = fixture(name);
    let out = run(&["analyze", "--input", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        perf_sentinel_tests::stderr(&out)
    );
    json(&out)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(shared().join("fixtures").join("expected").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn findings_green_summary_and_gate_equal_the_reference_on_every_fixture() {
    for name in FIXTURES {
        let got = comparable(analyze(name));
        let want = comparable(expected(name));
        for key in [
            "findings",
            "green_summary",
            "quality_gate",
            "per_endpoint_io_ops",
            "analysis",
        ] {
            assert_eq!(got[key], want[key], "{name}: `{key}` differs");
        }
    }
}

#[test]
fn demo_yields_one_finding_of_each_type_and_clean_yields_none() {
    let demo = analyze("demo.json");
    let mut types: Vec<&str> = demo["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "chatty_service",
            "excessive_fanout",
            "n_plus_one_http",
            "n_plus_one_sql",
            "pool_saturation",
            "redundant_http",
            "redundant_sql",
            "serialized_calls",
            "slow_http",
            "slow_sql"
        ]
    );
    let clean = analyze("clean_traces.json");
    assert_eq!(clean["findings"], Value::Array(vec![]));
    assert_eq!(clean["quality_gate"]["passed"], Value::Bool(true));
}

#[test]
fn jaeger_and_zipkin_give_the_n_plus_one_of_the_native_file() {
    for name in ["n_plus_one_sql.json", "jaeger_export.json", "zipkin_export.json"] {
        let v = analyze(name);
        let f = &v["findings"].as_array().unwrap()[0];
        assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(f["type"], "n_plus_one_sql");
        assert_eq!(f["severity"], "warning");
        assert_eq!(f["pattern"]["template"], "SELECT * FROM order_item WHERE order_id = ?");
        assert_eq!(f["pattern"]["occurrences"], 6);
        assert_eq!(f["pattern"]["distinct_params"], 6);
    }
}
