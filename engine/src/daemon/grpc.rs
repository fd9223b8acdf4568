//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::time::Duration;

use metrics::counter;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use prost::bytes::{Buf as _, Bytes};
use tokio::net::TcpListener;
use tonic::codec::{CompressionEncoding, DecodeBuf, EncodeBuf};
use tonic::{Request, Response, Status};
use tracing::error;

use super::metrics::OTLP_REJECTED;

use super::Ingest;
use crate::ingest::otlp;

/// Counts requests the framework refused before our handler ran, and
/// reports a message it could not read as `INVALID_ARGUMENT` (the framework
/// says `INTERNAL`, which exporters would retry forever). The protobuf
/// itself is decoded, refused and counted by [`export`].
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
        // INTERNAL for a compressed message that does not decompress, or a
        // stream that ends inside a message.
        "13" if message.contains("decompressing") || message.contains("decoding") => {
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

/// The gRPC method this listener serves.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Hands each request's message over as its bytes, in one piece, and
/// encodes the response with prost. Decoding then reads a plain slice:
/// prost reading the framework's buffer advanced it field by field, 3.6 %
/// of the daemon's instructions under load (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, Default)]
struct WholeMessage;

impl tonic::codec::Codec for WholeMessage {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = WholeMessage;
    type Decoder = WholeMessage;

    fn encoder(&mut self) -> WholeMessage {
        WholeMessage
    }

    fn decoder(&mut self) -> WholeMessage {
        WholeMessage
    }
}

impl tonic::codec::Encoder for WholeMessage {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: ExportTraceServiceResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

impl tonic::codec::Decoder for WholeMessage {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Reads one `Export` request in place and submits its I/O spans.
async fn export(ingest: Ingest, message: Request<Bytes>) -> Result<Response<ExportTraceServiceResponse>, Status> {
    let spans = match otlp::read_protobuf(message.get_ref(), "request") {
        Ok(request) => ingest.normalize_protobuf(&request),
        Err(e) => {
            counter!(OTLP_REJECTED, "reason" => "parse_error").increment(1);
            return Err(Status::invalid_argument(e.without_origin()));
        }
    };
    // The spans own what they keep: the message's bytes go back to the
    // framework's buffer before the spans are queued.
    drop(message);
    ingest
        .queue(spans)
        .await
        .map_err(|_| Status::unavailable("perf-sentinel is shutting down; retry against another instance"))?;
    Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
}

/// `TraceService` over [`WholeMessage`]: the `Export` method, and
/// `UNIMPLEMENTED` for any other path, as the generated server does.
#[derive(Clone)]
struct TraceServer {
    ingest: Ingest,
    max_decoding: usize,
}

impl tonic::server::NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for TraceServer {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                let mut response = axum::http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert("grpc-status", (tonic::Code::Unimplemented as i32).into());
                headers.insert("content-type", axum::http::HeaderValue::from_static("application/grpc"));
                Ok(response)
            });
        }
        let (ingest, max) = (self.ingest.clone(), self.max_decoding);
        Box::pin(async move {
            let method = tower::service_fn(move |request| export(ingest.clone(), request));
            let mut grpc = tonic::server::Grpc::new(WholeMessage)
                .max_decoding_message_size(max)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Deflate)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip);
            Ok(grpc.unary(method, req).await)
        })
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
    let svc = TraceServer {
        ingest: ingest.clone(),
        max_decoding: settings.max_payload,
    };
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

#[cfg(test)]
mod tests {
    use super::classify_refusal;

    fn refused(status: &str, message: &str) -> String {
        let mut resp = axum::http::Response::new(());
        resp.headers_mut().insert("grpc-status", status.parse().unwrap());
        resp.headers_mut().insert("grpc-message", message.parse().unwrap());
        let resp = classify_refusal(resp);
        resp.headers()["grpc-status"].to_str().unwrap().to_owned()
    }

    #[test]
    fn unreadable_messages_become_invalid_argument() {
        let corrupt = "Error decompressing: invalid gzip header, while sending request";
        assert_eq!(refused("13", corrupt), "3");
        assert_eq!(refused("13", "Unexpected EOF decoding stream."), "3");
        // Other internal errors, and every other status, are left alone.
        assert_eq!(refused("13", "something else"), "13");
        assert_eq!(refused("8", "Error decompressing: size limit exceeded"), "8");
        assert_eq!(refused("0", ""), "0");
    }
}
