//! Floods: of connections, and of requests interrupted by SIGTERM. Their own
//! test binary, so that they do not share the machine with the timing checks
//! of daemon.rs.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use perf_sentinel_tests::{Daemon, eventually, otlp_json_trace, try_http_request};

/// Opens `n` connections and tells, once the daemon has taken them all off
/// its backlog, which it keeps open and how many it closed at once.
fn flood(addr: SocketAddr, n: usize, cap: usize) -> (Vec<TcpStream>, usize) {
    let mut open: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    for c in &open {
        c.set_nonblocking(true).unwrap();
    }
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    // The daemon accepts in the background: poll until only `cap` are left
    // open (or the deadline, and the assertions below tell what happened).
    while open.len() > cap && Instant::now() < deadline {
        open.retain_mut(|c| {
            let mut b = [0u8; 16];
            match c.read(&mut b) {
                // Open: silent (HTTP/1) or greeting (gRPC's HTTP/2 settings).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Ok(n) if n > 0 => true,
                // Closed at once: end of stream or reset.
                _ => {
                    refused += 1;
                    false
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    // Those still open stay open: the daemon serves them.
    std::thread::sleep(Duration::from_millis(200));
    for c in &mut open {
        let mut b = [0u8; 64];
        let r = c.read(&mut b);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) || matches!(r, Ok(n) if n > 0),
            "a kept connection was closed"
        );
    }
    (open, refused)
}

#[test]
fn a_connection_flood_is_capped_on_both_listeners_and_service_resumes() {
    let d = Daemon::watch("[daemon]\nmax_connections = 32\njson_socket = \"\"\n");
    let rss = |d: &Daemon| d.metrics()["process_resident_memory_bytes"] / 1e6;
    let rss_before = rss(&d);
    for (name, addr) in [("HTTP", d.http), ("gRPC", d.grpc)] {
        // Scrape before the flood: /metrics needs a slot on the HTTP listener too.
        let before = d.metrics()["perf_sentinel_connections_refused_total"];
        let (kept, refused) = flood(addr, 200, 32);
        eprintln!(
            "{name}: 200 connections, {} kept open, {refused} closed at once",
            kept.len()
        );
        assert_eq!(kept.len(), 32, "{name}");
        assert_eq!(refused, 168, "{name}");
        drop(kept);
        // Slots come back as soon as the flood lets go (the daemon frees
        // them as it sees the connections close: a scrape may still be
        // refused meanwhile, and is counted too).
        let mut retries_refused = 0.0;
        let after = eventually(5, || {
            let m = try_http_request(d.http, "GET", "/metrics", &[], b"");
            match m {
                Some((200, body)) => Some(perf_sentinel_tests::parse_metrics(&String::from_utf8_lossy(&body))),
                _ => {
                    retries_refused += 1.0;
                    None
                }
            }
        })
        .expect("the HTTP listener answers again");
        assert_eq!(
            after["perf_sentinel_connections_refused_total"] - before,
            168.0 + retries_refused,
            "{name}"
        );
    }
    // The gRPC listener serves again: a connection is kept, not closed.
    let mut c = TcpStream::connect(d.grpc).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    assert!(
        matches!(c.read(&mut b), Ok(n) if n > 0),
        "the gRPC listener greets a new connection"
    );
    let rss_after = rss(&d);
    eprintln!("RSS {rss_before:.1} MB before, {rss_after:.1} MB after 400 connections");
    assert!(
        rss_after < rss_before + 16.0,
        "RSS grew from {rss_before} to {rss_after} MB"
    );
    assert_eq!(d.get("/health").0, 200);
}

/// Reads a field of the `drained; exiting` log line's ledger.
fn ledger_field(log: &str, field: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("drained; exiting"))
        .unwrap_or_else(|| panic!("no drain line in {log}"));
    let at = line
        .find(&format!(" {field}: "))
        .unwrap_or_else(|| panic!("no {field} in {line}"));
    line[at + field.len() + 3..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {line}"))
}

#[test]
fn sigterm_during_a_flood_drains_every_accepted_span() {
    // The default TTL (30 s): at SIGTERM nearly every trace is still in the window.
    let mut d = Daemon::watch("[daemon]\njson_socket = \"\"\n");
    let addr = d.http;
    let stop = Arc::new(AtomicBool::new(false));
    let accepted_spans = Arc::new(AtomicU64::new(0));
    let accepted_traces = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..3u64)
        .map(|c| {
            let (stop, spans, traces) = (
                Arc::clone(&stop),
                Arc::clone(&accepted_spans),
                Arc::clone(&accepted_traces),
            );
            std::thread::spawn(move || {
                let mut r = 0u64;
                let mut refused = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // 10 traces of 6 spans (an N+1 each) per request.
                    let body: Vec<String> = (0..10)
                        .map(|t| {
                            otlp_json_trace(
                                &format!("{c:08x}{r:08x}{t:016x}"),
                                "flood",
                                6,
                                1_700_000_000_000_000_000,
                            )
                        })
                        .collect();
                    r += 1;
                    match try_http_request(
                        addr,
                        "POST",
                        "/v1/traces",
                        &[("Content-Type", "application/json")],
                        body.join("\n").as_bytes(),
                    ) {
                        Some((200, _)) => {
                            spans.fetch_add(60, Ordering::Relaxed);
                            traces.fetch_add(10, Ordering::Relaxed);
                        }
                        _ => {
                            refused += 1;
                            // Refused: the daemon is going away.
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                (r, refused)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let at_term = accepted_spans.load(Ordering::Relaxed);
    let start = Instant::now();
    let code = d.terminate(30);
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (sent, refused) = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(code, Some(0), "{}", d.stderr());
    let log = d.stderr();
    let spans = accepted_spans.load(Ordering::Relaxed);
    let traces = accepted_traces.load(Ordering::Relaxed);
    let received = ledger_field(&log, "received");
    let analyzed = ledger_field(&log, "analyzed");
    let rejected = ledger_field(&log, "rejected");
    eprintln!(
        "{sent} requests ({refused} refused after SIGTERM); {at_term} spans accepted at SIGTERM, {spans} in all; \
         received {received}, rejected {rejected}, analyzed {analyzed}; exit 0 {took:?} after SIGTERM"
    );
    assert!(at_term > 0, "the flood was under way at SIGTERM");
    // Every span of a 200 answer was analyzed; spans refused mid-shutdown
    // were answered with an error and counted as rejected.
    assert_eq!(received, spans + rejected, "{log}");
    assert_eq!(analyzed, spans, "{log}");
    for field in [
        "shed",
        "sampled_out",
        "dropped",
        "in_ingest_queue",
        "in_window",
        "in_analysis",
    ] {
        assert_eq!(ledger_field(&log, field), 0, "{field}: {log}");
    }
    let n1 = d
        .stdout_findings()
        .into_iter()
        .filter(|f| f["type"] == "n_plus_one_sql")
        .count() as u64;
    assert_eq!(n1, traces, "one N+1 finding per accepted trace");
}
