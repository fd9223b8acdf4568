"""Sends raw bytes as an OTLP/gRPC Export request and prints the status
code name (OK, INVALID_ARGUMENT, ...). Usage: grpc_raw.py HOST:PORT HEXBYTES|@SIZE
(@SIZE sends SIZE bytes of a valid-looking but oversized message)."""

import sys

import grpc

target, payload = sys.argv[1], sys.argv[2]
if payload.startswith("@"):
    size = int(payload[1:])
    # Field 1 (resource_spans), length-delimited, filled with zeros.
    body = b"\x0a" + bytes([0x80 | (size & 0x7F), (size >> 7) & 0x7F]) + b"\x00" * size
else:
    body = bytes.fromhex(payload)
with grpc.insecure_channel(target) as channel:
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        export(body, timeout=10)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name)
