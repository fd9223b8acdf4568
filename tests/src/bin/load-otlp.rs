//! An OTLP load generator for the daemon: pre-encoded requests, so that the
//! client spends its CPU on sending, not on encoding.
//!
//! ```text
//! load-otlp grpc|http ADDR [--seconds S] [--connections C] [--rate SPANS_PER_SEC]
//!           [--traces T] [--spans N]
//! ```
//!
//! Each request carries T traces (default 50) of N spans (default 20): an
//! N+1 loop of SQL spans under one parent. One request is encoded once
//! (protobuf for gRPC and for HTTP); every send copies it and writes fresh
//! trace ids into the copy at their known offsets, so no trace is ever sent
//! twice. C connections (default 4) send in a closed loop for S seconds
//! (default 10), paced to `--rate` spans per second in all when given.
//! Prints one JSON object: requests, spans, errors, spans/s, latencies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A trace id placeholder whose bytes never occur elsewhere in the request.
fn marker(t: usize) -> [u8; 16] {
    let mut id = [0xA5u8; 16];
    id[12..].copy_from_slice(&(t as u32).to_be_bytes());
    id
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// The request template and the offsets of every trace id in it, per trace.
fn template(traces: usize, spans: usize) -> (Vec<u8>, Vec<Vec<usize>>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut all = Vec::new();
    for t in 0..traces {
        let trace_id = marker(t).to_vec();
        let parent = [(t as u8).wrapping_add(1); 8].to_vec();
        all.push(Span {
            trace_id: trace_id.clone(),
            span_id: parent.clone(),
            name: "GET /orders/{id}".into(),
            start_time_unix_nano: now,
            end_time_unix_nano: now + 50_000_000,
            attributes: vec![kv("http.route", "/orders/{id}")],
            ..Default::default()
        });
        for i in 1..spans {
            let start = now + i as u64 * 1_000_000;
            all.push(Span {
                trace_id: trace_id.clone(),
                span_id: [(t as u8).wrapping_add(1), i as u8, (i >> 8) as u8, 7, 7, 7, 7, 7].to_vec(),
                parent_span_id: parent.clone(),
                name: "SELECT order_item".into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 800_000,
                attributes: vec![
                    kv("db.system", "postgresql"),
                    kv(
                        "db.statement",
                        &format!("SELECT * FROM order_item WHERE order_id = {}", 1000 + i),
                    ),
                ],
                ..Default::default()
            });
        }
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "load-otlp")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: all,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = req.encode_to_vec();
    let offsets = (0..traces)
        .map(|t| {
            let m = marker(t);
            bytes
                .windows(16)
                .enumerate()
                .filter(|(_, w)| *w == m)
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    (bytes, offsets)
}

/// A copy of the template with trace ids unique to `seq`.
fn stamp(template: &[u8], offsets: &[Vec<usize>], seq: u64) -> Vec<u8> {
    let mut body = template.to_vec();
    for (t, at) in offsets.iter().enumerate() {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&seq.to_be_bytes());
        id[8..].copy_from_slice(&(t as u64 + 1).to_be_bytes());
        for &o in at {
            body[o..o + 16].copy_from_slice(&id);
        }
    }
    body
}

/// A gRPC codec for bytes that are already an encoded request.
#[derive(Clone, Default)]
struct Raw;

struct RawEncoder;
struct SkipDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for SkipDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = SkipDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> SkipDecoder {
        SkipDecoder
    }
}

struct Totals {
    requests: AtomicU64,
    errors: AtomicU64,
    seq: AtomicU64,
}

/// Sends one request over plain HTTP/1.1 keep-alive; the status code.
async fn http_send(conn: &mut tokio::net::TcpStream, addr: SocketAddr, body: &[u8]) -> std::io::Result<u16> {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    // Read the head, then the body by Content-Length.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - end;
    while have < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Ok(status)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: load-otlp grpc|http ADDR [--seconds S] [--connections C] [--rate SPANS_PER_SEC] [--traces T] [--spans N]"
        );
        std::process::exit(2)
    };
    let (Some(proto), Some(addr)) = (args.first(), args.get(1).and_then(|a| a.parse::<SocketAddr>().ok())) else {
        usage()
    };
    let opt = |name: &str, default: f64| -> f64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap_or_else(|_| usage()))
    };
    let seconds = opt("--seconds", 10.0);
    let connections = opt("--connections", 4.0) as usize;
    let traces = opt("--traces", 50.0) as usize;
    let spans = opt("--spans", 20.0) as usize;
    let rate = opt("--rate", 0.0);
    let grpc = match proto.as_str() {
        "grpc" => true,
        "http" => false,
        _ => usage(),
    };
    let (tpl, offsets) = template(traces, spans);
    let tpl = Arc::new((tpl, offsets));
    let per_request = (traces * spans) as u64;
    // Pacing: each connection sends one request every `gap`.
    let gap = (rate > 0.0).then(|| Duration::from_secs_f64(per_request as f64 * connections as f64 / rate));
    let totals = Arc::new(Totals {
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        seq: AtomicU64::new(1),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let shared = Arc::clone(&totals);
    let (latencies, elapsed) = rt.block_on(async move {
        let totals = shared;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (tpl, totals) = (Arc::clone(&tpl), Arc::clone(&totals));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut next = Instant::now();
                let mut grpc_client = None;
                let mut http_conn = None;
                if grpc {
                    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                        .expect("endpoint")
                        .connect()
                        .await
                        .expect("connect to the gRPC listener");
                    grpc_client = Some(tonic::client::Grpc::new(channel));
                } else {
                    http_conn = Some(tokio::net::TcpStream::connect(addr).await.expect("connect"));
                }
                while Instant::now() < deadline {
                    if let Some(gap) = gap {
                        let now = Instant::now();
                        if next > now {
                            tokio::time::sleep(next - now).await;
                        }
                        next += gap;
                    }
                    let seq = totals.seq.fetch_add(1, Ordering::Relaxed);
                    let body = stamp(&tpl.0, &tpl.1, seq);
                    let t0 = Instant::now();
                    let ok = if let Some(client) = grpc_client.as_mut() {
                        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                        );
                        client.ready().await.is_ok() && client.unary(tonic::Request::new(body), path, Raw).await.is_ok()
                    } else {
                        let conn = http_conn.as_mut().expect("connection");
                        match http_send(conn, addr, &body).await {
                            Ok(200) => true,
                            Ok(_) => false,
                            Err(_) => {
                                // Reconnect after a broken connection.
                                if let Ok(c) = tokio::net::TcpStream::connect(addr).await {
                                    *conn = c;
                                }
                                false
                            }
                        }
                    };
                    lat.push(t0.elapsed());
                    let counter = if ok { &totals.requests } else { &totals.errors };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        (all, started.elapsed())
    });
    let mut latencies = latencies;
    latencies.sort();
    let pick = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let ok = totals.requests.load(Ordering::Relaxed);
    let out = serde_json::json!({
        "protocol": proto,
        "connections": connections,
        "seconds": elapsed.as_secs_f64(),
        "spans_per_request": per_request,
        "request_bytes": tpl_len(traces, spans),
        "requests_ok": ok,
        "requests_failed": totals.errors.load(Ordering::Relaxed),
        "spans_sent_ok": ok * per_request,
        "spans_per_sec": (ok * per_request) as f64 / elapsed.as_secs_f64(),
        "latency_ms": { "p50": pick(50), "p99": pick(99), "max": latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3) },
    });
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{out}");
}

fn tpl_len(traces: usize, spans: usize) -> usize {
    template(traces, spans).0.len()
}
