//! The HTTP listener: OTLP/HTTP `POST /v1/traces`, `/metrics`, `/health` and
//! the query API (`/api/*`).
//!
//! Connections are accepted by hand so that their number is capped (a
//! semaphore; excess connections are closed and counted) and a client that
//! sends half a request head is cut off after `header_timeout`.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use metrics::counter;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::warn;

use super::metrics::{CONNECTIONS_REFUSED, EXPORT_REQUESTS, OTLP_REJECTED};
use super::{Ingest, Shared};
use crate::finding::Finding;
use crate::ingest::otlp;
use crate::trace::{Trace, order_spans};

/// Findings a query returns at most.
const MAX_QUERY: usize = 1000;

#[derive(Clone)]
struct App {
    ingest: Ingest,
}

impl App {
    fn shared(&self) -> &Arc<Shared> {
        &self.ingest.shared
    }
}

fn router(app: App) -> Router {
    let api_enabled = app.shared().settings.api_enabled;
    let timeout = app.shared().settings.request_timeout;
    let mut r = Router::new()
        .route("/v1/traces", post(otlp_http))
        .route("/metrics", get(metrics_route))
        .route("/health", get(health));
    if api_enabled {
        r = r
            .route("/api/status", get(status))
            .route("/api/findings", get(findings))
            .route("/api/findings/{trace_id}", get(findings_of_trace))
            .route("/api/explain/{trace_id}", get(explain))
            .route("/api/correlations", get(correlations))
            .route("/api/export/report", get(export_report));
    }
    r.fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
                }
            },
        ))
        .with_state(app)
}

/// Accepts connections until `stop` turns true, then lets open ones finish.
pub async fn serve(listener: TcpListener, ingest: Ingest, mut stop: tokio::sync::watch::Receiver<bool>) {
    let settings = &ingest.shared.settings;
    let header_timeout = settings.header_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let app = router(App { ingest: ingest.clone() });
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = super::stopped(&mut stop) => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            counter!(CONNECTIONS_REFUSED).increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = super::stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(super::DRAIN_GRACE, conn).await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn reject(reason: &'static str, status: StatusCode, message: impl Into<String>) -> Response {
    counter!(OTLP_REJECTED, "reason" => reason).increment(1);
    error(status, message)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A refusal: the rejection reason, the status and the message.
type Refusal = (&'static str, StatusCode, String);

/// Inflates a gzip or deflate body, refusing more than `max` bytes.
fn inflate(bytes: &[u8], gzip: bool, max: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(flate2::read::ZlibDecoder::new(bytes))
    };
    match reader.take(max as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err((
            "payload_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body is larger than max_payload_size ({max} bytes)"),
        )),
        Ok(_) => Ok(out),
        Err(e) => Err((
            "parse_error",
            StatusCode::BAD_REQUEST,
            format!("invalid compressed body: {e}"),
        )),
    }
}

/// `POST /v1/traces`: OTLP protobuf or OTLP/JSON, plain, gzip or deflate.
async fn otlp_http(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let max = app.shared().settings.max_payload;
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    if !matches!(encoding.as_str(), "" | "identity" | "gzip" | "deflate") {
        return reject(
            "unsupported_encoding",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding `{encoding}` is not supported; use gzip, deflate or none"),
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util_limited::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                reject(
                    "payload_too_large",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body is larger than max_payload_size ({max} bytes)"),
                )
            } else {
                reject(
                    "parse_error",
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            };
        }
    };
    let body = match encoding.as_str() {
        "gzip" | "deflate" => match inflate(&bytes, encoding == "gzip", max) {
            Ok(b) => Bytes::from(b),
            Err((reason, status, message)) => return reject(reason, status, message),
        },
        _ => bytes,
    };
    let content_type = header_text(&headers, header::CONTENT_TYPE);
    // Protobuf requests are read in place and normalized from their bytes;
    // OTLP/JSON goes through owned events (it may hold several requests).
    let (submitted, json_reply) = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => match otlp::read_protobuf(&body, "request") {
            Ok(request) => {
                let spans = app.ingest.normalize_protobuf(&request);
                drop(request);
                drop(body);
                (app.ingest.queue(spans).await, false)
            }
            Err(e) => return reject("parse_error", StatusCode::BAD_REQUEST, e.without_origin()),
        },
        "application/json" => match otlp::parse_json(&body) {
            Ok(input) => (app.ingest.submit(input).await, true),
            Err(e) => {
                return reject(
                    "parse_error",
                    StatusCode::BAD_REQUEST,
                    format!("invalid OTLP/JSON at line {}, column {}: {e}", e.line(), e.column()),
                );
            }
        },
        other => {
            return reject(
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type `{other}` is not supported; use application/x-protobuf or application/json"),
            );
        }
    };
    if submitted.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "perf-sentinel is shutting down");
    }
    // An empty ExportTraceServiceResponse, in the request's encoding.
    if json_reply {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            "{}",
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))],
            Bytes::new(),
        )
            .into_response()
    }
}

/// The length-limit error type of `axum::body::to_bytes`, named for matching.
mod http_body_util_limited {
    pub use http_body_util::LengthLimitError;
}

async fn metrics_route(State(app): State<App>) -> Response {
    let body = super::metrics::render(&app.shared().ledger);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

async fn status(State(app): State<App>) -> Response {
    let s = app.shared();
    let c = s.ledger.snapshot();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "active_traces": c.active_traces,
        "stored_findings": s.store.len(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct FindingsQuery {
    service: Option<String>,
    #[serde(rename = "type")]
    finding_type: Option<String>,
    severity: Option<String>,
    limit: Option<usize>,
    include_acked: Option<bool>,
}

async fn findings(State(app): State<App>, Query(q): Query<FindingsQuery>) -> Response {
    let s = app.shared();
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_QUERY);
    let keep = |f: &Finding| {
        q.service.as_deref().is_none_or(|v| f.service == v)
            && q.finding_type.as_deref().is_none_or(|v| f.finding_type == v)
            && q.severity.as_deref().is_none_or(|v| f.severity.as_str() == v)
    };
    let include_acked = q.include_acked.unwrap_or(false);
    let items: Vec<Value> = s
        .store
        .newest(limit, keep)
        .into_iter()
        .filter_map(|st| {
            let ack = s.acks.apply(vec![st.finding.clone()]).1.into_iter().next();
            match ack {
                Some(_) if !include_acked => None,
                Some(a) => {
                    let mut by = a.acknowledgment;
                    if let Some(o) = by.as_object_mut() {
                        o.insert("source".into(), json!("toml"));
                    }
                    Some(json!({ "finding": st.finding, "stored_at_ms": st.stored_at_ms, "acknowledged_by": by }))
                }
                None => Some(json!({ "finding": st.finding, "stored_at_ms": st.stored_at_ms })),
            }
        })
        .collect();
    axum::Json(items).into_response()
}

async fn findings_of_trace(State(app): State<App>, Path(trace_id): Path<String>) -> Response {
    let items = app.shared().store.oldest(MAX_QUERY, |f| f.trace_id == trace_id);
    axum::Json(items).into_response()
}

async fn explain(State(app): State<App>, Path(trace_id): Path<String>) -> Response {
    let s = Arc::clone(app.shared());
    let Some(mut spans) = s.window_trace(&trace_id) else {
        return error(StatusCode::NOT_FOUND, "trace not found in daemon memory");
    };
    order_spans(&mut spans);
    let trace = Trace { trace_id, spans };
    // Per-trace detectors only, off the async threads.
    let result = tokio::task::spawn_blocking(move || {
        let analysis = s.engine.analyze(std::slice::from_ref(&trace), s.settings.confidence);
        crate::explain::explain(&trace, &analysis.findings)
    })
    .await;
    match result {
        Ok(e) => axum::Json(e).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "explain failed"),
    }
}

async fn correlations(State(app): State<App>) -> Response {
    let list = match &app.shared().correlator {
        Some(c) => c.lock().unwrap_or_else(|e| e.into_inner()).report(),
        None => Vec::new(),
    };
    axum::Json(list).into_response()
}

async fn export_report(State(app): State<App>) -> Response {
    counter!(EXPORT_REQUESTS).increment(1);
    let s = app.shared();
    let c = s.ledger.snapshot();
    let processed = c.received - c.sampled_out - c.rejected;
    let green = s.last_green.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let disabled_green = json!({
        "total_io_ops": 0, "avoidable_io_ops": 0, "io_waste_ratio": 0.0, "io_waste_ratio_band": "healthy",
        "top_offenders": [], "energy_kwh": 0.0, "energy_model": ""
    });
    if processed == 0 || c.traces_analyzed == 0 {
        let msg = "daemon has not yet processed any events";
        return axum::Json(json!({
            "analysis": { "duration_ms": 0, "events_processed": 0, "traces_analyzed": 0 },
            "findings": [],
            "green_summary": disabled_green,
            "quality_gate": { "passed": true, "rules": [] },
            "warnings": [msg],
            "warning_details": [{ "kind": "cold_start", "message": msg }],
            "binary_version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response();
    }
    let findings: Vec<Finding> = s
        .store
        .newest(MAX_QUERY, |_| true)
        .into_iter()
        .map(|st| st.finding)
        .collect();
    let mut report = serde_json::Map::new();
    report.insert(
        "analysis".into(),
        json!({ "duration_ms": 0, "events_processed": processed, "traces_analyzed": c.traces_analyzed }),
    );
    report.insert("findings".into(), json!(findings));
    report.insert("green_summary".into(), green.map_or(disabled_green, Value::Object));
    report.insert("quality_gate".into(), json!({ "passed": true, "rules": [] }));
    if let Some(corr) = &s.correlator {
        let list = corr.lock().unwrap_or_else(|e| e.into_inner()).report();
        if !list.is_empty() {
            report.insert("correlations".into(), json!(list));
        }
    }
    let lost = c.shed + c.rejected;
    if lost > 0 {
        let msg = format!("{lost} spans were not analyzed (shed under overload or refused at shutdown); see /metrics");
        report.insert("warnings".into(), json!([msg.clone()]));
        report.insert(
            "warning_details".into(),
            json!([{ "kind": "ingestion_drops", "message": msg }]),
        );
    }
    report.insert("binary_version".into(), json!(env!("CARGO_PKG_VERSION")));
    axum::Json(Value::Object(report)).into_response()
}
