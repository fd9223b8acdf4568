//! Literal values seen in spans (customer ids, e-mail addresses, tokens)
//! must not leave perf-sentinel: spans carry unique markers in SQL literals,
//! numeric and UUID path segments and query strings, and no output may
//! contain any of them.

use perf_sentinel_tests::{Daemon, TempDir, eventually, http_request, run_in, stdout};
use serde_json::{Value, json};

const MARKERS: &[&str] = &[
    "canary-mail-5f1c@example.com",
    "8675309123",
    "canary-token-9q8w7e",
    "d3b07384-d113-4ec4-9f2b-5c7e9a1b2c3d",
    "canary-note-x1y2",
];

fn spans() -> Vec<Value> {
    (0..6)
        .flat_map(|i| {
            let ts = format!("2026-03-02T09:15:00.{:03}Z", i * 20);
            vec![
                json!({
                    "timestamp": ts, "trace_id": "canary-trace", "span_id": format!("q{i}"), "parent_span_id": "root",
                    "service": "accounts", "type": "sql", "operation": "postgresql",
                    "target": format!("SELECT * FROM users WHERE email = 'canary-mail-5f1c@example.com' AND id = {} AND note = 'canary-note-x1y2'", 8675309123u64 + i),
                    "duration_us": 700_000, "source": { "endpoint": "GET /accounts/{id}", "method": "Accounts.load" }
                }),
                json!({
                    "timestamp": ts, "trace_id": "canary-trace", "span_id": format!("h{i}"), "parent_span_id": "root",
                    "service": "accounts", "type": "http_out", "operation": "GET",
                    "target": format!("https://billing:8443/v1/customers/{}/carts/d3b07384-d113-4ec4-9f2b-5c7e9a1b2c3d?token=canary-token-9q8w7e", 8675309123u64 + i),
                    "duration_us": 600_000, "source": { "endpoint": "GET /accounts/{id}", "method": "Accounts.load" }
                }),
            ]
        })
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    for m in MARKERS {
        assert!(!text.contains(m), "{what} leaks the literal `{m}`:\n{text}");
    }
}

#[test]
fn no_literal_reaches_any_batch_output() {
    let dir = TempDir::new("canary");
    std::fs::write(dir.join("t.json"), serde_json::to_string(&spans()).unwrap()).unwrap();
    let mut found_any = false;
    for args in [
        vec!["analyze", "--input", "t.json", "--format", "json"],
        vec!["analyze", "--input", "t.json", "--format", "sarif"],
        vec!["analyze", "--input", "t.json", "--format", "text"],
        vec![
            "explain",
            "--input",
            "t.json",
            "--trace-id",
            "canary-trace",
            "--format",
            "json",
        ],
        vec!["explain", "--input", "t.json", "--trace-id", "canary-trace"],
        vec!["diff", "--before", "t.json", "--after", "t.json", "--format", "json"],
    ] {
        let out = run_in(Some(dir.path()), &args, None);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        found_any |= text.contains("n_plus_one_sql");
        assert_clean(&format!("{args:?} stdout"), &text);
        assert_clean(&format!("{args:?} stderr"), &String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        found_any,
        "the canary traces must produce findings for the check to mean anything"
    );
}

#[test]
fn no_literal_reaches_any_daemon_output() {
    let d = Daemon::watch("[daemon]\ntrace_ttl_ms = 300\njson_socket = \"\"\n");
    // The same spans as OTLP/JSON over HTTP.
    let otlp_spans: Vec<Value> = spans()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let key = if s["type"] == "sql" { "db.statement" } else { "url.full" };
            json!({
                "traceId": "0123456789abcdef0123456789abcdef", "spanId": format!("{:016x}", i + 1),
                "parentSpanId": "00000000000000ff", "name": "io", "kind": 3,
                "startTimeUnixNano": (1_700_000_000_000_000_000u64 + i as u64 * 10_000_000).to_string(),
                "endTimeUnixNano": (1_700_000_000_700_000_000u64 + i as u64 * 10_000_000).to_string(),
                "attributes": [ { "key": key, "value": { "stringValue": s["target"] } } ]
            })
        })
        .collect();
    let body = json!({ "resourceSpans": [ { "resource": { "attributes": [ { "key": "service.name", "value": { "stringValue": "accounts" } } ] },
        "scopeSpans": [ { "scope": { "name": "canary" }, "spans": otlp_spans } ] } ] });
    let (status, _) = http_request(
        d.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let findings = eventually(5, || {
        let (_, b) = d.get("/api/findings");
        (b.contains("n_plus_one")).then_some(b)
    })
    .expect("findings from the canary trace");
    assert_clean("/api/findings", &findings);
    for path in [
        "/api/export/report",
        "/metrics",
        "/api/status",
        "/api/findings/0123456789abcdef0123456789abcdef",
    ] {
        assert_clean(path, &d.get(path).1);
    }
    let stdout = std::fs::read_to_string(d.dir.join("stdout.ndjson")).unwrap();
    assert!(stdout.contains("n_plus_one"));
    assert_clean("stdout NDJSON", &stdout);
    assert_clean("logs", &d.stderr());
}
