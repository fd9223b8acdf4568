//! Helpers for the end-to-end tests: find and run the real `perf-sentinel`
//! binary, locate the shared fixtures, and set up the OpenTelemetry SDKs that
//! produce real OTLP for the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared` beside the checkout (override with `PERF_SENTINEL_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("PERF_SENTINEL_SHARED").map_or_else(|| workspace().join("..").join("shared"), PathBuf::from)
}

/// A file of `../shared/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    shared().join("fixtures").join(name)
}

/// The `perf-sentinel` binary of this build profile. The first call in a test
/// process runs `cargo build -p perf-sentinel` (a no-op when it is up to date),
/// so the tests never run a stale binary.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>/perf-sentinel
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let bin = profile_dir.join(format!("perf-sentinel{}", std::env::consts::EXE_SUFFIX));
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "perf-sentinel"])
            .current_dir(workspace());
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p perf-sentinel failed");
        assert!(bin.exists(), "{} missing after cargo build", bin.display());
        bin
    })
    .clone()
}

/// Runs the binary with `args` in `dir` (a fresh temporary directory when
/// `None`, so no `.perf-sentinel.toml` is picked up by accident).
pub fn run_in(dir: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = TempDir::new("run");
            tmp.path()
        }
    };
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env("RUST_BACKTRACE", "1");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn perf-sentinel");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        // A broken pipe is fine: the binary may refuse input early.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().expect("wait for perf-sentinel")
}

/// Runs the binary in a fresh temporary directory.
pub fn run(args: &[&str]) -> Output {
    run_in(None, args, None)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses stdout as JSON, with the process output in the panic message.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {}\nstdout: {}", stderr(o), stdout(o)))
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "perf-sentinel-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The OpenTelemetry SDKs installed by `tests/sdk/setup.sh` (run once per
/// test process; it is a no-op when everything is already installed).
pub struct Sdk {
    pub python: PathBuf,
    pub node_dir: PathBuf,
}

pub fn sdk() -> &'static Sdk {
    static SDK: OnceLock<Sdk> = OnceLock::new();
    SDK.get_or_init(|| {
        let dir = workspace().join("tests").join("sdk");
        let out = Command::new("bash")
            .arg(dir.join("setup.sh"))
            .output()
            .expect("run tests/sdk/setup.sh");
        assert!(
            out.status.success(),
            "tests/sdk/setup.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Sdk {
            python: dir.join(".venv").join("bin").join("python"),
            node_dir: dir.join("node"),
        }
    })
}
