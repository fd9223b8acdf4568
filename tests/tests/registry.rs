//! The binary links every built-in detector and scorer: the list it prints
//! equals the checked-in list (`BLESS=1` rewrites it).

use perf_sentinel_tests::{json, run, stdout, workspace};

#[test]
fn registered_rules_equal_the_checked_in_list() {
    let out = run(&["rules", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let mut listed = String::new();
    for kind in ["detectors", "scorers"] {
        for d in v[kind].as_array().unwrap() {
            listed.push_str(&format!(
                "{} {} {}\n",
                &kind[..kind.len() - 1],
                d["id"].as_str().unwrap(),
                d["crate"].as_str().unwrap()
            ));
        }
    }
    let path = workspace().join("tests").join("registered-rules.txt");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &listed).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        listed, want,
        "registered rules differ from tests/registered-rules.txt (BLESS=1 to update)"
    );
}

#[test]
fn explain_rule_prints_docs_and_tunables() {
    let out = run(&["explain-rule", "n_plus_one_sql"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for want in [
        "## What it detects",
        "## Why is it slow?",
        "Prefer:",
        "n_plus_one_min_occurrences",
        "n_plus_one_sql_critical_max",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    let out = run(&["explain-rule", "no_such_rule"]);
    assert_eq!(out.status.code(), Some(2));
}
