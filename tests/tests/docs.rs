//! The documentation surface: `--help`, the manual, completions, `bench`,
//! the generated configuration reference and the two READMEs.

extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use std::process::Command;

use perf_sentinel_engine::Engine;
use perf_sentinel_tests::{TempDir, fixture, json, run, stdout, workspace};

#[test]
fn help_lists_every_tunable_with_its_default() {
    let schema = Engine::schema().unwrap();
    for (cmd, sections) in [
        ("analyze", &["thresholds", "detection", "green"][..]),
        (
            "watch",
            &[
                "daemon",
                "daemon.correlation",
                "daemon.ack",
                "daemon.cors",
                "daemon.archive",
            ][..],
        ),
    ] {
        let out = run(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        let mut checked = 0;
        for t in schema.tunables.iter().filter(|t| sections.contains(&t.section)) {
            let line = format!("{} = {}", t.key, t.default_text());
            assert!(
                help.contains(&format!("[{}]", t.section)),
                "{cmd} --help lacks [{}]",
                t.section
            );
            assert!(help.contains(&line), "{cmd} --help lacks `{line}`");
            checked += 1;
        }
        assert!(checked >= 15, "{cmd}: only {checked} tunables");
        assert!(help.contains("Examples:"), "{cmd} --help has no examples");
    }
    let root = stdout(&run(&["--help"]));
    for want in [
        ".perf-sentinel.toml",
        "[thresholds]",
        "[detection]",
        "[green]",
        "[daemon]",
        "watch --help",
        "analyze --help",
    ] {
        assert!(root.contains(want), "root --help lacks `{want}`");
    }
    assert!(stdout(&run(&["-h"])).starts_with("Lightweight polyglot performance anti-pattern detector"));
}

#[test]
fn man_pages_render_cleanly_and_cross_references_resolve() {
    let dir = TempDir::new("man");
    let out = run(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for sub in [
        "analyze",
        "watch",
        "demo",
        "explain",
        "diff",
        "bench",
        "rules",
        "explain-rule",
        "completions",
        "man",
    ] {
        assert!(
            pages.contains(&format!("perf-sentinel-{sub}.1")),
            "no page for {sub}: {pages:?}"
        );
    }
    for page in &pages {
        let path = dir.join(page);
        let roff = std::fs::read_to_string(&path).unwrap();
        let title = page.trim_end_matches(".1");
        assert!(roff.contains(&format!(".TH {title} 1")), "{page}: title is not {title}");
        let res = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .arg(&path)
            .output()
            .expect("groff");
        assert!(
            res.status.success() && res.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        // Every `name(1)` reference names a page we wrote.
        let text = roff.replace("\\-", "-");
        for (i, _) in text.match_indices("(1)") {
            let before = text[..i].trim_end();
            let name = before.rsplit(|c: char| c.is_whitespace() || c == ',').next().unwrap();
            let name = name.trim_start_matches(".BR").trim();
            if name.starts_with("perf-sentinel") {
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} cites {name}(1), which has no page"
                );
            }
        }
    }
    let all = stdout(&run(&["man"]));
    assert!(all.matches(".TH ").count() == pages.len());
    assert!(all.contains("analysis_queue_capacity"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(stdout(&out).contains("analyze"), "{shell}");
    }
}

#[test]
fn bench_reports_the_reference_fields() {
    let demo = fixture("demo.json");
    let v = json(&run(&["bench", "--input", demo.to_str().unwrap(), "--iterations", "3"]));
    assert_eq!(v["iterations"], 3);
    assert_eq!(v["events_per_iteration"], 78);
    assert!(v["throughput_events_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["latency_per_event_us"]["p99"].as_f64().unwrap() >= v["latency_per_event_us"]["p50"].as_f64().unwrap());
    assert!(v.get("rss_peak_bytes").is_some() && v.get("total_elapsed_ms").is_some());
    assert_eq!(
        run(&["bench", "--input", demo.to_str().unwrap(), "--iterations", "0"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn configuration_reference_is_current() {
    let generated = stdout(&run(&["config-reference"]));
    let path = workspace().join("docs").join("CONFIGURATION.md");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == generated,
        "docs/CONFIGURATION.md is stale: run BLESS=1 cargo test"
    );
    for key in [
        "ingest_queue_capacity",
        "n_plus_one_min_occurrences",
        "io_waste_ratio_max",
        "default_region",
    ] {
        assert!(on_disk.contains(&format!("`{key}`")), "{key}");
    }
}

#[test]
fn the_french_readme_mirrors_the_english_sections() {
    let headings = |name: &str| -> Vec<usize> {
        std::fs::read_to_string(workspace().join(name))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| l.chars().take_while(|&c| c == '#').count())
            .collect()
    };
    let (en, fr) = (headings("README.md"), headings("README.fr.md"));
    assert_eq!(en, fr, "README.md and README.fr.md differ in their section structure");
    assert!(en.len() >= 8);
    let fence = |name: &str| {
        std::fs::read_to_string(workspace().join(name))
            .unwrap()
            .matches("```")
            .count()
    };
    assert_eq!(fence("README.md"), fence("README.fr.md"));
}
