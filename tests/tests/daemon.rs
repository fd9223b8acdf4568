//! The `watch` daemon as users run it: the real binary on free loopback
//! ports, fed by the OpenTelemetry Python SDK's own exporters and by raw
//! OTLP/HTTP requests.

use std::process::Command;
use std::time::{Duration, Instant};

use perf_sentinel_tests::{Daemon, eventually, http_request, otlp_json_trace, run_in, sdk, stderr, workspace};
use serde_json::Value;

fn findings_of(d: &Daemon, t: &str) -> Vec<Value> {
    let (status, body) = d.get("/api/findings?limit=1000");
    assert_eq!(status, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .map(|x| x["finding"].clone())
        .filter(|f| f["type"] == t)
        .collect()
}

fn post_json(d: &Daemon, body: &str) -> u16 {
    http_request(
        d.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .0
}

/// `received` equals the sum of every place a span can be.
fn balanced(m: &std::collections::BTreeMap<String, f64>) -> Result<(), String> {
    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let received = g("perf_sentinel_spans_received_total");
    let parts = g("perf_sentinel_spans_analyzed_total")
        + g("perf_sentinel_spans_shed_total")
        + g("perf_sentinel_spans_sampled_out_total")
        + g("perf_sentinel_spans_rejected_total")
        + g("perf_sentinel_spans_dropped_total{reason=\"max_events_per_trace\"}")
        + g("perf_sentinel_spans_in_ingest_queue")
        + g("perf_sentinel_spans_in_window")
        + g("perf_sentinel_spans_in_analysis");
    if received == parts {
        Ok(())
    } else {
        Err(format!("received {received} != accounted {parts}: {m:?}"))
    }
}

#[test]
fn python_sdk_n_plus_one_over_grpc_and_http_in_both_semantic_conventions() {
    let d = Daemon::watch("[daemon]\ntrace_ttl_ms = 1000\njson_socket = \"\"\n");
    let script = workspace().join("tests/sdk/python/sdk_app.py");
    let cases = [
        (format!("grpc://{}", d.grpc), ""),
        (format!("http://{}/v1/traces", d.http), ""),
        (format!("grpc://{}", d.grpc), "database"),
        (format!("http://{}/v1/traces", d.http), "database"),
    ];
    for (i, (target, semconv)) in cases.iter().enumerate() {
        let sent = Instant::now();
        let out = Command::new(&sdk().python)
            .arg(&script)
            .arg("sql")
            .arg(target)
            .env("OTEL_SEMCONV_STABILITY_OPT_IN", semconv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Visible within the TTL (1 s) plus one tick (0.5 s), with slack for a loaded machine.
        let found = eventually(4, || {
            let f = findings_of(&d, "n_plus_one_sql");
            (f.len() > i).then_some(f)
        })
        .unwrap_or_else(|| panic!("{target} ({semconv:?}): no N+1 after 4 s; {}", d.stderr()));
        let waited = sent.elapsed();
        let f = &found[0];
        assert_eq!(f["pattern"]["occurrences"], 12, "{f:#}");
        assert_eq!(
            f["pattern"]["template"],
            "SELECT id, sku FROM order_item WHERE order_id = ?"
        );
        assert_eq!(f["source_endpoint"], "/orders");
        assert_eq!(f["confidence"], "daemon_staging");
        eprintln!("{target} semconv={semconv:?}: N+1 visible {waited:?} after the export");
    }
    assert!(findings_of(&d, "pool_saturation").is_empty());
    assert_eq!(
        d.stdout_findings()
            .iter()
            .filter(|f| f["type"] == "n_plus_one_sql")
            .count(),
        4
    );
    balanced(&d.metrics()).unwrap();
}

#[test]
fn bad_requests_are_refused_counted_and_the_daemon_keeps_serving() {
    let d = Daemon::watch("[daemon]\nmax_payload_size = 2048\njson_socket = \"\"\n");
    let post = |headers: &[(&str, &str)], body: &[u8]| http_request(d.http, "POST", "/v1/traces", headers, body).0;
    assert_eq!(post(&[("Content-Type", "text/plain")], b"hello"), 415);
    assert_eq!(
        post(
            &[("Content-Type", "application/x-protobuf")],
            b"\x0a\xff\xff\xff\xff\x0f"
        ),
        400
    );
    assert_eq!(
        post(&[("Content-Type", "application/json")], b"{\"resourceSpans\": [1]}"),
        400
    );
    assert_eq!(post(&[("Content-Type", "application/json")], &vec![b' '; 4096]), 413);
    assert_eq!(
        post(
            &[("Content-Type", "application/json"), ("Content-Encoding", "br")],
            b"{}"
        ),
        415
    );
    assert_eq!(
        post(
            &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            b"not gzip"
        ),
        400
    );
    // A zip bomb: 1 MiB of zeros in a few hundred gzip bytes.
    let bomb = {
        use std::io::Write;
        let mut enc = flate2_compat::gzip();
        enc.write_all(&vec![b'0'; 1 << 20]).unwrap();
        enc.finish().unwrap()
    };
    assert_eq!(
        post(
            &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            &bomb
        ),
        413
    );
    assert_eq!(http_request(d.http, "GET", "/v1/traces", &[], b"").0, 405);
    assert_eq!(d.get("/nope").0, 404);
    let (status, body) = d.get("/health");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["version"], "0.8.6");
    // Still serving real traffic.
    assert_eq!(
        post_json(
            &d,
            &otlp_json_trace(&"ab".repeat(16), "svc", 1, 1_700_000_000_000_000_000)
        ),
        200
    );
    let m = d.metrics();
    let r = |reason: &str| m[&format!("perf_sentinel_otlp_rejected_total{{reason=\"{reason}\"}}")];
    assert_eq!(r("unsupported_media_type"), 1.0);
    assert_eq!(r("parse_error"), 3.0);
    assert_eq!(r("payload_too_large"), 2.0);
    assert_eq!(r("unsupported_encoding"), 1.0);
    assert_eq!(r("channel_full"), 0.0);
}

/// gzip without a compression crate in the test: a stored (level 0) deflate
/// stream is a valid gzip body, and a valid bomb needs real compression, so
/// the test shells out to the system `gzip`.
mod flate2_compat {
    pub struct Gz(Vec<u8>);
    pub fn gzip() -> Gz {
        Gz(Vec::new())
    }
    impl std::io::Write for Gz {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Gz {
        pub fn finish(self) -> std::io::Result<Vec<u8>> {
            use std::io::Write;
            let mut child = std::process::Command::new("gzip")
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            child.stdin.take().expect("stdin").write_all(&self.0)?;
            Ok(child.wait_with_output()?.stdout)
        }
    }
}

#[test]
fn bad_grpc_messages_get_their_status_and_are_counted() {
    let d = Daemon::watch("[daemon]\nmax_payload_size = 2048\njson_socket = \"\"\n");
    let script = workspace().join("tests/sdk/python/grpc_raw.py");
    let call = |payload: &str| -> String {
        let out = Command::new(&sdk().python)
            .arg(&script)
            .arg(d.grpc.to_string())
            .arg(payload)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(call("0affffffff0f"), "INVALID_ARGUMENT");
    let too_large = call("@4096");
    assert!(
        too_large == "OUT_OF_RANGE" || too_large == "RESOURCE_EXHAUSTED",
        "{too_large}"
    );
    // An empty request is valid and still answered.
    assert_eq!(call(""), "OK");
    assert_eq!(d.get("/health").0, 200);
    let m = d.metrics();
    assert_eq!(m["perf_sentinel_otlp_rejected_total{reason=\"parse_error\"}"], 1.0);
    assert_eq!(
        m["perf_sentinel_otlp_rejected_total{reason=\"payload_too_large\"}"],
        1.0
    );
}

#[test]
fn otlp_json_and_gzip_are_accepted_over_http() {
    let d = Daemon::watch("[daemon]\ntrace_ttl_ms = 200\njson_socket = \"\"\n");
    let body = otlp_json_trace(&"cd".repeat(16), "orders", 6, 1_700_000_000_000_000_000);
    let gz = flate2_compat::gzip();
    let gz = {
        use std::io::Write;
        let mut g = gz;
        g.write_all(body.as_bytes()).unwrap();
        g.finish().unwrap()
    };
    let (status, reply) = http_request(
        d.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply, b"{}");
    let f = eventually(3, || findings_of(&d, "n_plus_one_sql").into_iter().next()).expect("N+1 from gzip OTLP/JSON");
    assert_eq!(f["service"], "orders");
    assert_eq!(f["pattern"]["occurrences"], 6);
    let (status, body) = d.get(&format!("/api/findings/{}", "cd".repeat(16)));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().len(),
        1
    );
    let (_, report) = d.get("/api/export/report");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["analysis"]["events_processed"], 6);
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_drains_every_accepted_span() {
    let mut d = Daemon::watch("[daemon]\ntrace_ttl_ms = 600000\njson_socket = \"\"\n");
    for i in 0..3 {
        let id = format!("{:032x}", 0xabc0 + i);
        assert_eq!(
            post_json(&d, &otlp_json_trace(&id, "billing", 8, 1_700_000_000_000_000_000)),
            200
        );
    }
    let m = eventually(3, || {
        let m = d.metrics();
        (m["perf_sentinel_spans_in_window"] == 24.0).then_some(m)
    })
    .expect("24 spans in the window");
    assert_eq!(m["perf_sentinel_spans_analyzed_total"], 0.0);
    let start = Instant::now();
    assert_eq!(d.terminate(20), Some(0), "{}", d.stderr());
    eprintln!("drained and exited {:?} after SIGTERM", start.elapsed());
    let n1: Vec<Value> = d
        .stdout_findings()
        .into_iter()
        .filter(|f| f["type"] == "n_plus_one_sql")
        .collect();
    assert_eq!(n1.len(), 3, "{}", d.stderr());
    assert!(n1.iter().all(|f| f["pattern"]["occurrences"] == 8));
    assert!(d.stderr().contains("analyzed: 24"), "{}", d.stderr());
}

#[test]
fn queue_capacities_out_of_range_fail_at_start() {
    for (key, value) in [
        ("ingest_queue_capacity", "0"),
        ("ingest_queue_capacity", "1048577"),
        ("analysis_queue_capacity", "0"),
        ("analysis_queue_capacity", "1048577"),
    ] {
        let dir = perf_sentinel_tests::TempDir::new("capacity");
        std::fs::write(dir.join(".perf-sentinel.toml"), format!("[daemon]\n{key} = {value}\n")).unwrap();
        let out = run_in(
            Some(dir.path()),
            &["watch", "--listen-port-http", "0", "--listen-port-grpc", "0"],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{key} = {value}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("daemon.{key}")) && err.contains("1 to 1048576"),
            "{err}"
        );
    }
}

#[test]
fn a_panicking_detector_stops_the_daemon_within_a_second() {
    let mut d = Daemon::with_faults("[daemon]\ntrace_ttl_ms = 100\njson_socket = \"\"\n");
    assert_eq!(
        post_json(
            &d,
            &otlp_json_trace(&"ee".repeat(16), "panic-please", 2, 1_700_000_000_000_000_000)
        ),
        200
    );
    let sent = Instant::now();
    // The batch reaches the worker after the TTL (100 ms) and one tick (100 ms).
    let code = d.wait(5);
    let elapsed = sent.elapsed();
    assert_eq!(code, Some(1), "{}", d.stderr());
    assert!(
        elapsed < Duration::from_millis(1200),
        "exited {elapsed:?} after the send"
    );
    let log = d.stderr();
    assert!(
        log.contains("analysis worker stopped unexpectedly") && log.contains("service panic-please seen"),
        "{log}"
    );
    eprintln!("exited with 1, {elapsed:?} after the send (TTL 100 ms + tick 100 ms included)");
}

#[test]
fn overload_sheds_whole_batches_and_accounts_for_every_span() {
    let d = Daemon::with_faults(
        "[daemon]\ntrace_ttl_ms = 100\nanalysis_queue_capacity = 1\njson_socket = \"\"\n\
         [detection]\ntest_slow_analysis_ms = 20\n",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood_start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..3u64 {
        let addr = d.http;
        clients.push(std::thread::spawn(move || {
            let mut latencies = Vec::new();
            for r in 0..60u64 {
                let mut body = String::new();
                // 10 traces of 5 spans per request.
                let reqs: Vec<String> = (0..10)
                    .map(|t| {
                        otlp_json_trace(
                            &format!("{:08x}{:08x}{:016x}", c, r, t),
                            "flood",
                            5,
                            1_700_000_000_000_000_000,
                        )
                    })
                    .collect();
                body.push_str(&reqs.join("\n"));
                let t0 = Instant::now();
                let (status, _) = http_request(
                    addr,
                    "POST",
                    "/v1/traces",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                latencies.push(t0.elapsed());
                assert_eq!(status, 200);
                std::thread::sleep(Duration::from_millis(15));
            }
            latencies
        }));
    }
    let mut scrapes = 0;
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        let d_http = d.http;
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            let mut n = 0;
            let mut peak_rss: f64 = 0.0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, body) = http_request(d_http, "GET", "/metrics", &[], b"");
                let m = perf_sentinel_tests::parse_metrics(&String::from_utf8_lossy(&body));
                if let Err(e) = balanced(&m) {
                    bad.push(e);
                }
                peak_rss = peak_rss.max(m.get("process_resident_memory_bytes").copied().unwrap_or(0.0));
                n += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            (n, bad, peak_rss)
        })
    };
    let mut latencies: Vec<Duration> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let flood_secs = flood_start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, bad, peak_rss) = watcher.join().unwrap();
    scrapes += n;
    assert!(bad.is_empty(), "unbalanced scrapes: {bad:?}");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "{} requests: p50 {:?}, p99 {p99:?}, max {max:?}; {scrapes} balanced scrapes",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    assert!(p99 < Duration::from_millis(100), "ingestion slowed down: p99 {p99:?}");
    // Let the window and the queue empty, then check the books.
    let m = eventually(30, || {
        let m = d.metrics();
        (m["perf_sentinel_spans_in_window"] == 0.0
            && m["perf_sentinel_spans_in_analysis"] == 0.0
            && m["perf_sentinel_spans_in_ingest_queue"] == 0.0)
            .then_some(m)
    })
    .expect("the daemon settles");
    balanced(&m).unwrap();
    assert_eq!(m["perf_sentinel_spans_received_total"], 3.0 * 60.0 * 10.0 * 5.0);
    assert!(m["perf_sentinel_analysis_shed_batches_total"] > 0.0, "{m:?}");
    assert!(m["perf_sentinel_spans_shed_total"] > 0.0);
    assert_eq!(
        m["perf_sentinel_spans_shed_total"] + m["perf_sentinel_spans_analyzed_total"],
        m["perf_sentinel_spans_received_total"]
    );
    let offered = m["perf_sentinel_spans_received_total"] / flood_secs;
    let analyzed_rate = m["perf_sentinel_spans_analyzed_total"] / flood_secs;
    eprintln!(
        "offered {offered:.0} spans/s for {flood_secs:.2} s, analyzed {analyzed_rate:.0} spans/s; \
         shed {} batches ({} traces, {} spans), analyzed {} spans; peak RSS {:.1} MB",
        m["perf_sentinel_analysis_shed_batches_total"],
        m["perf_sentinel_analysis_shed_traces_total"],
        m["perf_sentinel_spans_shed_total"],
        m["perf_sentinel_spans_analyzed_total"],
        peak_rss / 1e6
    );
    // The window holds at most a TTL's worth of traces and the queue one batch.
    assert!(
        peak_rss < 100e6,
        "peak RSS {:.1} MB over the 100 MB bound",
        peak_rss / 1e6
    );
    assert!(
        offered > 2.0 * analyzed_rate,
        "the flood was not several times what the worker analyzes"
    );
}

#[test]
fn a_client_that_stalls_mid_request_is_cut_off_and_others_are_served() {
    use std::io::{Read, Write};
    let d = Daemon::watch("[daemon]\njson_socket = \"\"\n");
    // Half a request head, then silence (slowloris).
    let mut slow = std::net::TcpStream::connect(d.http).unwrap();
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .unwrap();
    // Other clients are served meanwhile.
    for _ in 0..5 {
        assert_eq!(d.get("/health").0, 200);
    }
    // The stalled connection is closed by the server after the header timeout (10 s).
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "the stalled client was held {waited:?}"
    );
    eprintln!("stalled client cut off after {waited:?}");
    assert_eq!(d.get("/health").0, 200);
}

#[test]
fn rust_log_takes_target_directives_and_a_bad_value_falls_back_to_info() {
    // The listening line is logged at info by the engine: a per-target
    // directive lets it through under a default of warn.
    let d = Daemon::watch_logging("", "warn,perf_sentinel_engine=info");
    let log = d.stderr();
    assert!(log.contains("daemon listening"), "{log}");
    assert!(!log.contains("is not a log filter"), "{log}");
    drop(d);

    let d = Daemon::watch_logging("", "info,h2=[{");
    let log = d.stderr();
    assert!(log.contains("daemon listening"), "{log}");
    assert!(
        log.contains("WARN") && log.contains("RUST_LOG=\"info,h2=[{\" is not a log filter"),
        "{log}"
    );
}
