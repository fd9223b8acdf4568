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

/// A running daemon (`perf-sentinel watch` or the fault-injecting test
/// daemon) on free loopback ports, killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub http: std::net::SocketAddr,
    pub grpc: std::net::SocketAddr,
    pub dir: TempDir,
    stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `perf-sentinel watch` with this config in a fresh directory.
    pub fn watch(config: &str) -> Daemon {
        Daemon::watch_logging(config, "info")
    }

    /// Starts the daemon with `RUST_LOG` set to `rust_log`.
    pub fn watch_logging(config: &str, rust_log: &str) -> Daemon {
        let dir = TempDir::new("daemon");
        std::fs::write(dir.join(".perf-sentinel.toml"), config).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["watch", "--listen-port-http", "0", "--listen-port-grpc", "0"]);
        cmd.env("RUST_LOG", rust_log);
        Daemon::spawn(cmd, dir)
    }

    /// Starts the daemon with the fault-injecting test detectors.
    pub fn with_faults(config: &str) -> Daemon {
        let dir = TempDir::new("daemon-faults");
        std::fs::write(dir.join("config.toml"), config).unwrap();
        // Cargo builds a package's binaries before its integration tests.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let mut cmd = Command::new(profile_dir.join(format!("perf-sentinel-faults{}", std::env::consts::EXE_SUFFIX)));
        cmd.arg(dir.join("config.toml"));
        Daemon::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: TempDir) -> Daemon {
        use std::io::BufRead;
        let stdout = std::fs::File::create(dir.join("stdout.ndjson")).unwrap();
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        if cmd.get_envs().all(|(k, _)| k != "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd.spawn().expect("spawn daemon");
        let stderr = child.stderr.take().expect("stderr");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                // Stored first: once the daemon is reported up, its log holds the line.
                let up = line.contains("daemon listening");
                sink.lock().unwrap().push(line.clone());
                if up {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("daemon did not start: {:?}", lines.lock().unwrap());
            }
        };
        let addr = |key: &str| -> std::net::SocketAddr {
            let start = line.find(&format!("{key}=")).expect("address in log") + key.len() + 1;
            line[start..].split_whitespace().next().unwrap().parse().unwrap()
        };
        Daemon {
            http: addr("http"),
            grpc: addr("grpc"),
            child,
            dir,
            stderr_lines: lines,
        }
    }

    /// Everything the daemon logged so far.
    pub fn stderr(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }

    /// The findings it printed on stdout so far.
    pub fn stdout_findings(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("stdout.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("stdout line is JSON"))
            .collect()
    }

    /// Sends SIGTERM and waits for the exit status (at most `secs` seconds).
    pub fn terminate(&mut self, secs: u64) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(secs)
    }

    /// Waits for the process to exit, at most `secs` seconds.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// A GET on the HTTP port; returns the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, body) = http_request(self.http, "GET", path, &[], &[]);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `/metrics` parsed into `name{labels} -> value`.
    pub fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        parse_metrics(&body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus text exposition as `name{labels} -> value`.
pub fn parse_metrics(body: &str) -> std::collections::BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A minimal HTTP/1.1 client for loopback tests: one request per connection.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    try_http_request(addr, method, path, headers, body).expect("connect and send")
}

/// Like [`http_request`], `None` when the connection or the send fails (a
/// daemon that is shutting down or refusing connections); status 0 when the
/// server closed without an answer.
pub fn try_http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body_start = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..body_start]).to_ascii_lowercase();
    let mut body = raw[body_start..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// An OTLP/JSON request: one trace of `n` SQL spans (an N+1 by literal id)
/// under one parent, service `service`, starting at `start_ns`.
pub fn otlp_json_trace(trace_hex: &str, service: &str, n: usize, start_ns: u64) -> String {
    let mut spans = vec![serde_json::json!({
        "traceId": trace_hex, "spanId": "00000000000000ff", "name": "GET /orders/{id}", "kind": 2,
        "startTimeUnixNano": start_ns.to_string(), "endTimeUnixNano": (start_ns + 50_000_000).to_string(),
        "attributes": [ { "key": "http.route", "value": { "stringValue": "GET /orders/{id}" } } ]
    })];
    for i in 0..n {
        let s = start_ns + 1_000_000 * (i as u64 + 1);
        spans.push(serde_json::json!({
            "traceId": trace_hex, "spanId": format!("{:016x}", i + 1), "parentSpanId": "00000000000000ff",
            "name": "SELECT", "kind": 3,
            "startTimeUnixNano": s.to_string(), "endTimeUnixNano": (s + 500_000).to_string(),
            "attributes": [
                { "key": "db.system", "value": { "stringValue": "postgresql" } },
                { "key": "db.statement", "value": { "stringValue": format!("SELECT * FROM item WHERE order_id = {i}") } }
            ]
        }));
    }
    serde_json::json!({
        "resourceSpans": [{
            "resource": { "attributes": [ { "key": "service.name", "value": { "stringValue": service } } ] },
            "scopeSpans": [ { "scope": { "name": "test" }, "spans": spans } ]
        }]
    })
    .to_string()
}

/// Polls `check` every 50 ms until it returns `Some` or `secs` pass.
pub fn eventually<T>(secs: u64, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
