//! Detector plugins: separate crates compiled in by cargo features, visible
//! everywhere a built-in detector is.

use std::path::{Path, PathBuf};
use std::process::Command;

use perf_sentinel_tests::{TempDir, json, run, run_in, stderr, stdout, workspace};
use serde_json::Value;

fn fixture(plugin: &str, name: &str) -> String {
    workspace()
        .join("plugins")
        .join(plugin)
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

fn findings(out: &std::process::Output, t: &str) -> Vec<Value> {
    json(out)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == t)
        .cloned()
        .collect()
}

#[test]
fn plugin_findings_appear_in_the_json_report() {
    let out = run(&[
        "analyze",
        "--input",
        &fixture("mn_plus_one", "hit_block_of_two_four_times.json"),
        "--format",
        "json",
    ]);
    let mn = findings(&out, "mn_plus_one");
    assert_eq!(mn.len(), 1, "{}", stdout(&out));
    assert_eq!(
        mn[0]["pattern"]["template"],
        "SELECT * FROM customer WHERE id = ? ; SELECT * FROM invoice_line WHERE invoice_id = ?"
    );
    assert_eq!(mn[0]["pattern"]["occurrences"], 4);
    // Four repetitions are below the N+1 threshold: only the plugin sees the loop.
    assert!(findings(&out, "n_plus_one_sql").is_empty());

    let out = run(&[
        "analyze",
        "--input",
        &fixture("tx_across_remote_call", "hit_http_inside_transaction.json"),
        "--format",
        "json",
    ]);
    let tx = findings(&out, "tx_across_remote_call");
    assert_eq!(tx.len(), 1, "{}", stdout(&out));
    assert_eq!(
        tx[0]["pattern"]["template"],
        "BEGIN … COMMIT around POST /payments/authorize"
    );
    assert_eq!(tx[0]["severity"], "warning");
}

#[test]
fn plugin_tunables_are_documented_and_validated() {
    let help = stdout(&run(&["analyze", "--help"]));
    for key in [
        "mn_plus_one_min_repeats = 3",
        "mn_plus_one_max_block_len = 6",
        "tx_across_remote_call_min_remote_ms = 0",
    ] {
        assert!(help.contains(key), "analyze --help lacks `{key}`");
    }
    let man = stdout(&run(&["man"]));
    assert!(man.contains("mn_plus_one_min_repeats") && man.contains("tx_across_remote_call_critical_ms"));
    let explain = stdout(&run(&["explain-rule", "mn_plus_one"]));
    assert!(explain.contains("## Why is it slow?") && explain.contains("mn_plus_one_min_block_len"));

    let dir = TempDir::new("plugin-config");
    let input = fixture("mn_plus_one", "hit_block_of_two_four_times.json");
    std::fs::write(
        dir.join(".perf-sentinel.toml"),
        "[detection]\nmn_plus_one_min_repeats = 1\n",
    )
    .unwrap();
    let out = run_in(Some(dir.path()), &["analyze", "--input", &input], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("detection.mn_plus_one_min_repeats") && stderr(&out).contains("2 to 100000"));
    std::fs::write(
        dir.join(".perf-sentinel.toml"),
        "[detection]\nmn_plus_one_min_repeats = 5\n",
    )
    .unwrap();
    let out = run_in(
        Some(dir.path()),
        &["analyze", "--input", &input, "--format", "json"],
        None,
    );
    assert!(findings(&out, "mn_plus_one").is_empty(), "min_repeats = 5 is applied");
}

/// Builds the CLI without default features in its own target directory.
fn bare_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap()
        .join("no-default-features");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "-p",
            "perf-sentinel",
            "--no-default-features",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(workspace())
        .status()
        .unwrap();
    assert!(status.success());
    target.join("debug").join("perf-sentinel")
}

#[test]
fn without_default_features_the_plugins_are_gone() {
    let bin = bare_binary();
    let input = fixture("mn_plus_one", "hit_block_of_two_four_times.json");
    let out = Command::new(&bin)
        .args(["analyze", "--input", &input, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(findings(&out, "mn_plus_one").is_empty());
    let rules = String::from_utf8_lossy(&Command::new(&bin).arg("rules").output().unwrap().stdout).into_owned();
    assert!(
        rules.contains("n_plus_one_sql") && !rules.contains("mn_plus_one") && !rules.contains("tx_across_remote_call")
    );
    // Their keys are unknown there: a config naming them is refused.
    let dir = TempDir::new("bare-config");
    std::fs::write(
        dir.join(".perf-sentinel.toml"),
        "[detection]\nmn_plus_one_min_repeats = 3\n",
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["analyze", "--input", &input])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn two_detectors_with_one_id_fail_at_start_naming_both_crates() {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("perf-sentinel-duplicate");
    let out = Command::new(bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`n_plus_one_sql`")
            && err.contains("perf-sentinel-detectors")
            && err.contains("perf-sentinel-tests"),
        "{err}"
    );
}

#[test]
fn the_embedding_example_prints_a_report_for_the_demo() {
    let demo = perf_sentinel_tests::fixture("demo.json");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--quiet", "--example", "embed", "--"])
        .arg(&demo)
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 findings"));
}
