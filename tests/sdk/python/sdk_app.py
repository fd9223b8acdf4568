"""An instrumented app with the classic N+1 loops, traced by the real
OpenTelemetry Python SDK and written to a file with the SDK's own OTLP
protobuf encoder (the bytes an OTLP exporter would send).

Usage: python sdk_app.py sql|sql-params|http OUT

OUT is a file (the spans encoded with the SDK's OTLP protobuf encoder), or a
running daemon: grpc://HOST:PORT uses the SDK's OTLP/gRPC exporter and
http://HOST:PORT/v1/traces its OTLP/HTTP exporter.
"""

import http.server
import sqlite3
import sys
import threading

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)


class Collect(SpanExporter):
    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def sql_app(tracer, capture_parameters):
    if capture_parameters:
        from opentelemetry.instrumentation import dbapi

        dbapi.wrap_connect(
            "sdk_app", sqlite3, "connect", "sqlite", {"database": "database"}, capture_parameters=True
        )
    else:
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        SQLite3Instrumentor().instrument()
    conn = sqlite3.connect(":memory:")
    cur = conn.cursor()
    cur.execute("CREATE TABLE order_item (id INTEGER PRIMARY KEY, order_id INTEGER, sku TEXT)")
    cur.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    cur.execute("INSERT INTO settings VALUES ('theme', 'dark')")
    with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/orders")
        root.set_attribute("http.request.method", "GET")
        orders = [row[0] for row in cur.execute("SELECT DISTINCT order_id FROM order_item")]
        orders = list(range(1, 13))  # the loop below is the N+1
        for order_id in orders:
            cur.execute("SELECT id, sku FROM order_item WHERE order_id = ?", (order_id,)).fetchall()
        for _ in range(3):
            cur.execute("SELECT value FROM settings WHERE key = ?", ("theme",)).fetchall()
        cur.execute("SELECT COUNT(*) FROM order_item").fetchall()


class Users(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"id": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def http_app(tracer):
    import requests
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Users)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with requests.Session() as session:
        with tracer.start_as_current_span("GET /orders/{id}", kind=trace.SpanKind.SERVER) as root:
            root.set_attribute("http.route", "/orders/{id}")
            for user_id in range(1, 7):
                session.get(f"http://127.0.0.1:{port}/api/users/{user_id}").raise_for_status()
    server.shutdown()


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    collect = Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "order-svc"}))
    if out.startswith("grpc://"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=out[len("grpc://"):], insecure=True)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif out.startswith("http://"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=out)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(collect))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shop.orders")
    if scenario == "sql":
        sql_app(tracer, capture_parameters=False)
    elif scenario == "sql-params":
        sql_app(tracer, capture_parameters=True)
    elif scenario == "http":
        http_app(tracer)
    else:
        sys.exit(f"unknown scenario {scenario}")
    provider.shutdown()
    if collect.spans:
        request = encode_spans(collect.spans)
        with open(out, "wb") as f:
            f.write(request.SerializeToString())
        print(f"{len(collect.spans)} spans written to {out}")
    else:
        print(f"spans exported to {out}")


if __name__ == "__main__":
    main()
