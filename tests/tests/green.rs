//! GreenOps scoring end to end: regions, green disabled, user files.

use perf_sentinel_tests::{TempDir, fixture, json, run_in, stderr};
use serde_json::{Value, json};

fn event(i: usize, region: Option<&str>, target: &str) -> Value {
    let mut e = json!({
        "timestamp": format!("2026-03-02T09:15:00.{:03}Z", i * 10),
        "trace_id": "t1", "span_id": format!("s{i}"), "parent_span_id": "root",
        "service": "billing", "type": "sql", "operation": "postgresql",
        "target": target, "duration_us": 500,
        "source": { "endpoint": "GET /invoices/{id}", "method": "InvoiceRepo.lines" }
    });
    if let Some(r) = region {
        e["cloud_region"] = json!(r);
    }
    e
}

fn analyze(dir: &TempDir, events: &[Value], config: &str) -> std::process::Output {
    std::fs::write(dir.join("t.json"), serde_json::to_string(events).unwrap()).unwrap();
    std::fs::write(dir.join(".perf-sentinel.toml"), config).unwrap();
    run_in(
        Some(dir.path()),
        &["analyze", "--input", "t.json", "--format", "json"],
        None,
    )
}

#[test]
fn two_cloud_regions_give_two_region_rows() {
    let dir = TempDir::new("regions");
    let events = vec![
        event(0, Some("eu-west-3"), "SELECT 1"),
        event(1, Some("eu-west-3"), "SELECT 2"),
        event(2, Some("us-east-1"), "INSERT INTO t VALUES (1)"),
    ];
    let v = json(&analyze(&dir, &events, "[green]\nuse_hourly_profiles = false\n"));
    let rows = v["green_summary"]["regions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // Sorted by carbon, descending: one INSERT in us-east-1 (1.5 × 1e-7 × 379 × 1.15)
    // outweighs two SELECTs in eu-west-3 (2 × 0.5 × 1e-7 × 56 × 1.15).
    assert_eq!(rows[0]["region"], "us-east-1");
    assert_eq!(rows[0]["io_ops"], 1);
    assert!((rows[0]["co2_gco2"].as_f64().unwrap() - 1.5e-7 * 379.0 * 1.15).abs() < 1e-15);
    assert_eq!(rows[1]["region"], "eu-west-3");
    assert_eq!(rows[1]["io_ops"], 2);
    assert_eq!(rows[1]["pue"], 1.15);
    assert_eq!(v["green_summary"]["per_service_region"]["billing"], "eu-west-3");
}

/// Each span's region is its own, however spans of different regions and
/// services alternate (consecutive spans share the resolution of their
/// region only when they share service and cloud region).
#[test]
fn alternating_regions_and_services_count_each_span_in_its_region() {
    let dir = TempDir::new("alternating-regions");
    let mut events = Vec::new();
    for i in 0..12 {
        let mut e = event(i, [Some("us-east-1"), None, None][i % 3], "SELECT 1");
        if i % 3 == 2 {
            e["service"] = json!("ledger");
        }
        events.push(e);
    }
    let config = "[green]\nuse_hourly_profiles = false\ndefault_region = \"eu-west-3\"\n\n[green.service_regions]\nledger = \"eu-central-1\"\n";
    let v = json(&analyze(&dir, &events, config));
    let rows = v["green_summary"]["regions"].as_array().unwrap();
    let ops = |region: &str| rows.iter().find(|r| r["region"] == region).map(|r| r["io_ops"].clone());
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(ops("us-east-1"), Some(json!(4)));
    assert_eq!(ops("eu-west-3"), Some(json!(4)));
    assert_eq!(ops("eu-central-1"), Some(json!(4)));
    let per_service = &v["green_summary"]["per_service_region"];
    assert_eq!(per_service["billing"], "us-east-1", "{per_service}");
    assert_eq!(per_service["ledger"], "eu-central-1", "{per_service}");
}

#[test]
fn an_unknown_region_is_reported_out_of_table_with_zero_carbon() {
    let dir = TempDir::new("unknown-region");
    let events = vec![event(0, Some("mars-north-1"), "SELECT 1"), event(1, None, "SELECT 2")];
    let v = json(&analyze(&dir, &events, ""));
    let rows = v["green_summary"]["regions"].as_array().unwrap();
    let mars = rows.iter().find(|r| r["region"] == "mars-north-1").unwrap();
    assert_eq!(mars["status"], "out_of_table");
    assert_eq!(mars["co2_gco2"], 0.0);
    let unknown = rows.iter().find(|r| r["region"] == "unknown").unwrap();
    assert_eq!(unknown["status"], "unresolved");
    assert_eq!(unknown["io_ops"], 1);
    // The text report says so.
    let out = run_in(Some(dir.path()), &["analyze", "--input", "t.json"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("region mars-north-1 is not in the carbon table"),
        "{text}"
    );
}

#[test]
fn green_disabled_removes_the_green_blocks() {
    let dir = TempDir::new("green-off");
    let input = std::fs::read_to_string(fixture("n_plus_one_sql.json")).unwrap();
    let events: Vec<Value> = serde_json::from_str(&input).unwrap();
    let v = json(&analyze(&dir, &events, "[green]\nenabled = false\n"));
    assert_eq!(
        v["green_summary"],
        json!({
            "total_io_ops": 6, "avoidable_io_ops": 0, "io_waste_ratio": 0.0,
            "io_waste_ratio_band": "healthy", "top_offenders": [],
            "energy_kwh": 0.0, "energy_model": ""
        })
    );
    assert!(v["findings"][0].get("green_impact").is_none());
    assert_eq!(v["quality_gate"]["rules"][2]["actual"], 0.0);
}

#[test]
fn user_profiles_and_calibration_apply_and_broken_files_name_file_and_line() {
    let dir = TempDir::new("user-files");
    let hours: Vec<f64> = (0..24).map(|h| if h == 9 { 100.0 } else { 1.0 }).collect();
    std::fs::write(
        dir.join("profiles.json"),
        json!({ "profiles": { "Moon-1": { "type": "flat_year", "hours": hours } } }).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("cal.toml"),
        "[calibration]\n[calibration.services]\n\"billing\" = { factor = 2.0 }\n",
    )
    .unwrap();
    let events = vec![event(0, Some("moon-1"), "SELECT 1")];
    let cfg = "[green]\nhourly_profiles_file = \"profiles.json\"\ncalibration_file = \"cal.toml\"\n";
    let v = json(&analyze(&dir, &events, cfg));
    let g = &v["green_summary"];
    // Out of table but with a user profile: PUE 1.2, the 09:00 UTC value.
    let expect = 1e-7 * 0.5 * 2.0 * 100.0 * 1.2;
    assert!(
        (g["co2"]["operational_gco2"].as_f64().unwrap() - expect).abs() < 1e-15,
        "{g:#}"
    );
    assert_eq!(g["co2"]["total"]["model"], "io_proxy_v2+cal");
    assert_eq!(g["regions"][0]["intensity_source"], "hourly");

    std::fs::write(
        dir.join("profiles.json"),
        "{\"profiles\": {\n \"x\": {\"type\": \"flat_year\", \"hours\": [1, 2,]}}}",
    )
    .unwrap();
    let out = analyze(&dir, &events, cfg);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("profiles.json:2:"), "{}", stderr(&out));

    std::fs::write(
        dir.join("profiles.json"),
        json!({ "profiles": { "m": { "type": "flat_year", "hours": hours } } }).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("cal.toml"),
        "[calibration]\n[calibration.services]\n\"billing\" = { factor = \"two\" }\n",
    )
    .unwrap();
    let out = analyze(&dir, &events, cfg);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cal.toml:3:"), "{}", stderr(&out));
}
