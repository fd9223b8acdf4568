//! The Helm chart: a real `helm lint` and `helm template` for every workload
//! mode and every example values file, the rendered manifests checked, and
//! the rendered config accepted by `perf-sentinel watch --check-config`.

use std::process::Command;

use perf_sentinel_tests::{TempDir, run, sdk, stderr, workspace};

fn helm() -> std::path::PathBuf {
    let _ = sdk();
    workspace().join("tests/sdk/.bin/helm")
}

fn chart() -> String {
    workspace().join("charts/perf-sentinel").to_str().unwrap().to_owned()
}

fn render(args: &[&str]) -> Vec<u8> {
    let out = Command::new(helm())
        .arg("template")
        .arg("ps")
        .arg(chart())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn lint_template_and_check_every_mode_and_values_file() {
    let dir = TempDir::new("helm");
    let mut cases: Vec<Vec<String>> = ["Deployment", "StatefulSet", "DaemonSet"]
        .iter()
        .map(|k| {
            vec![
                "--set".into(),
                format!("workload.kind={k}"),
                "--set".into(),
                "workload.replicas=2".into(),
            ]
        })
        .collect();
    let mut values: Vec<_> = std::fs::read_dir(workspace().join("charts/perf-sentinel/ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    values.sort();
    assert!(values.len() >= 3);
    for v in &values {
        cases.push(vec!["-f".into(), v.to_str().unwrap().to_owned()]);
    }
    for (i, case) in cases.iter().enumerate() {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        let lint = Command::new(helm())
            .arg("lint")
            .arg("--strict")
            .arg(chart())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "helm lint {args:?}: {}",
            String::from_utf8_lossy(&lint.stdout)
        );
        let manifests = render(&args);
        let toml = dir.join(&format!("config-{i}.toml"));
        let mut check = Command::new(&sdk().python)
            .arg(workspace().join("tests/helm/check_manifests.py"))
            .arg(&toml)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        check.stdin.take().unwrap().write_all(&manifests).unwrap();
        let res = check.wait_with_output().unwrap();
        assert!(
            res.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&res.stdout).trim());
        let out = run(&["watch", "--check-config", "--config", toml.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: rendered config refused: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_schema_refuses_unknown_and_invalid_values() {
    for bad in [
        ["--set", "workload.kind=ReplicaSet"],
        ["--set", "service.ports.otlpGrpc.port=70000"],
        ["--set", "persistance=true"],
    ] {
        let out = Command::new(helm())
            .arg("template")
            .arg("ps")
            .arg(chart())
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
}

#[test]
fn example_configs_pass_check_config() {
    let out = run(&[
        "watch",
        "--check-config",
        "--config",
        workspace().join("examples/perf-sentinel.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = TempDir::new("bad-config");
    std::fs::write(dir.join("bad.toml"), "[daemon]\nanalysis_queue_capacity = 0\n").unwrap();
    let out = run(&[
        "watch",
        "--check-config",
        "--config",
        dir.join("bad.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}
