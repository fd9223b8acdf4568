//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::time::Duration;

use metrics::counter;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tracing::error;

use super::metrics::OTLP_REJECTED;

use super::Ingest;
use crate::ingest::otlp;

/// Counts requests the framework refused before our handler ran, and
/// reports an undecodable message as `INVALID_ARGUMENT` (the framework says
/// `INTERNAL`, which exporters would retry forever).
fn classify_refusal<B>(mut resp: axum::http::Response<B>) -> axum::http::Response<B> {
    let headers = resp.headers_mut();
    let status = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned();
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    match status.as_str() {
        // INTERNAL from a decode failure.
        "13" if message.contains("decode") => {
            headers.insert("grpc-status", axum::http::HeaderValue::from_static("3"));
            counter!(OTLP_REJECTED, "reason" => "parse_error").increment(1);
        }
        // OUT_OF_RANGE or RESOURCE_EXHAUSTED: over max_payload_size.
        "11" | "8" => counter!(OTLP_REJECTED, "reason" => "payload_too_large").increment(1),
        // UNIMPLEMENTED for an unknown compression.
        "12" if message.contains("compress") => {
            counter!(OTLP_REJECTED, "reason" => "unsupported_encoding").increment(1)
        }
        _ => {}
    }
    resp
}

/// Concurrent streams per HTTP/2 connection.
const MAX_STREAMS: u32 = 256;

struct Service {
    ingest: Ingest,
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (events, stats) = otlp::convert_borrowed(request.get_ref());
        self.ingest
            .submit_borrowed(events, stats)
            .await
            .map_err(|_| Status::unavailable("perf-sentinel is shutting down; retry against another instance"))?;
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// An accepted connection holding one of the listener's `max_connections` slots.
struct Capped {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for Capped {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl tokio::io::AsyncRead for Capped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepted connections, at most `max` open at once: past it a new one is
/// closed at once and counted, as on the HTTP listener.
fn capped(
    listener: TcpListener,
    max: usize,
) -> impl futures_util::Stream<Item = Result<Capped, std::io::Error>> + Send + 'static {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max));
    futures_util::stream::unfold((listener, slots), |(listener, slots)| async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
                metrics::counter!(super::metrics::CONNECTIONS_REFUSED).increment(1);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Some((Ok(Capped { stream, _slot: slot }), (listener, slots)));
        }
    })
}

/// Serves until `stop` turns true. Messages over `max_payload_size` are
/// refused by the framework (`OUT_OF_RANGE`); gzip, deflate and zstd
/// messages are accepted (the Collector sends gzip by default).
pub async fn serve(listener: TcpListener, ingest: Ingest, mut stop: tokio::sync::watch::Receiver<bool>) {
    let settings = &ingest.shared.settings;
    let svc = TraceServiceServer::new(Service { ingest: ingest.clone() })
        .max_decoding_message_size(settings.max_payload)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Deflate)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip);
    let incoming = capped(listener, settings.max_connections);
    let result = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(classify_refusal))
        .timeout(settings.request_timeout)
        .concurrency_limit_per_connection(MAX_STREAMS as usize)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(MAX_STREAMS)
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, async move {
            super::stopped(&mut stop).await;
        })
        .await;
    if let Err(e) = result {
        error!(error = %e, "gRPC listener failed");
    }
}
