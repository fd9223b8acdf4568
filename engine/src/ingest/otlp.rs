//! OTLP: `ExportTraceServiceRequest` as protobuf or as OTLP/JSON, mapped to events.
//!
//! The mapping follows spec 01 §4: a span is SQL when it carries
//! `db.statement` or `db.query.text`, HTTP when it carries `http.url` or
//! `url.full`, and is otherwise counted in
//! [`IngestStats::spans_without_io_attributes`]. Parent lookups (endpoint,
//! code location, scopes) search the spans of the same `resource_spans` block.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::{IngestError, Ingested};
use crate::event::{EventKind, EventSource, SpanEvent};

/// Spans per `resource_spans` block that parent lookups index; spans past it
/// are still converted but lose parent-based enrichment.
pub const MAX_INDEXED_SPANS: usize = 100_000;
/// Ancestors walked to find a code location or scope names.
pub const MAX_PARENT_HOPS: usize = 8;

/// Decodes a binary `ExportTraceServiceRequest`.
pub fn parse_protobuf(body: &[u8], origin: &str) -> Result<Ingested, IngestError> {
    let req = ExportTraceServiceRequest::decode(body).map_err(|e| {
        IngestError::new(
            origin,
            None,
            format!("invalid OTLP protobuf: {e}; expected an ExportTraceServiceRequest as an OTLP exporter sends it"),
        )
    })?;
    Ok(convert(&req))
}

/// Parses OTLP/JSON: one `ExportTraceServiceRequest` object, or several in a
/// row (one per line, as the Collector's file exporter writes them).
pub fn parse_json(body: &[u8]) -> Result<Ingested, serde_json::Error> {
    let mut out = Ingested::default();
    for req in serde_json::Deserializer::from_slice(body).into_iter::<ExportTraceServiceRequest>() {
        let part = convert(&req?);
        out.stats.add(part.stats);
        out.events.extend(part.events);
    }
    Ok(out)
}

/// Maps every I/O span of a request to an event.
pub fn convert(req: &ExportTraceServiceRequest) -> Ingested {
    let mut out = Ingested::default();
    for rs in &req.resource_spans {
        convert_block(rs, &mut out);
    }
    out
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn first_str<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| str_attr(attrs, k))
}

fn first_int(attrs: &[KeyValue], keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| int_attr(attrs, k))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

const CODE_KEYS: [&str; 7] = [
    "code.function.name",
    "code.function",
    "code.file.path",
    "code.filepath",
    "code.line.number",
    "code.lineno",
    "code.namespace",
];

struct Code {
    function: Option<String>,
    filepath: Option<String>,
    lineno: Option<u32>,
    namespace: Option<String>,
}

fn code_of(attrs: &[KeyValue]) -> Option<Code> {
    if !CODE_KEYS.iter().any(|k| attr(attrs, k).is_some()) {
        return None;
    }
    let new_name = str_attr(attrs, "code.function.name");
    Some(Code {
        function: new_name.or_else(|| str_attr(attrs, "code.function")).map(str::to_owned),
        filepath: first_str(attrs, &["code.file.path", "code.filepath"]).map(str::to_owned),
        lineno: first_int(attrs, &["code.line.number", "code.lineno"]).and_then(|l| u32::try_from(l).ok()),
        namespace: str_attr(attrs, "code.namespace")
            .map(str::to_owned)
            .or_else(|| new_name.and_then(|n| n.rsplit_once('.')).map(|(ns, _)| ns.to_owned())),
    })
}

/// Bound values the instrumentation recorded: `db.statement.parameters` (one
/// text value) and every `db.query.parameter.<key>`, in key order.
fn captured_parameters(attrs: &[KeyValue]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = str_attr(attrs, "db.statement.parameters") {
        out.push(p.to_owned());
    }
    let mut keyed: Vec<(&str, String)> = attrs
        .iter()
        .filter_map(|kv| {
            let key = kv.key.strip_prefix("db.query.parameter.")?;
            let text = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::DoubleValue(d) => d.to_string(),
                Value::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            Some((key, text))
        })
        .collect();
    keyed.sort();
    out.extend(keyed.into_iter().map(|(k, v)| format!("{k}={v}")));
    out
}

fn convert_block(rs: &ResourceSpans, out: &mut Ingested) {
    let res_attrs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
    let service = str_attr(res_attrs, "service.name").unwrap_or("unknown");
    let res_region = str_attr(res_attrs, "cloud.region");

    // Index span id -> (scope index, span index), bounded.
    let mut index: HashMap<&[u8], (usize, usize)> = HashMap::new();
    'outer: for (si, ss) in rs.scope_spans.iter().enumerate() {
        for (pi, sp) in ss.spans.iter().enumerate() {
            if index.len() >= MAX_INDEXED_SPANS {
                break 'outer;
            }
            index.entry(sp.span_id.as_slice()).or_insert((si, pi));
        }
    }
    let lookup = |id: &[u8]| -> Option<(&str, &Span)> {
        if id.is_empty() {
            return None;
        }
        let &(si, pi) = index.get(id)?;
        let ss = &rs.scope_spans[si];
        Some((ss.scope.as_ref().map_or("", |s| s.name.as_str()), &ss.spans[pi]))
    };

    for ss in &rs.scope_spans {
        let scope_name = ss.scope.as_ref().map_or("", |s| s.name.as_str());
        for sp in &ss.spans {
            out.stats.spans_read += 1;
            let a = &sp.attributes;
            let (kind, target) = if let Some(sql) = first_str(a, &["db.statement", "db.query.text"]) {
                (EventKind::Sql, sql)
            } else if let Some(url) = first_str(a, &["http.url", "url.full"]) {
                (EventKind::HttpOut, url)
            } else {
                out.stats.spans_without_io_attributes += 1;
                continue;
            };
            let parent = lookup(&sp.parent_span_id);
            let endpoint = parent
                .and_then(|(_, p)| first_str(&p.attributes, &["http.route", "http.url", "url.full"]))
                .unwrap_or("unknown");
            let method = match parent {
                Some((_, p)) => str_attr(&p.attributes, "code.function").unwrap_or(&p.name),
                None => &sp.name,
            };
            // Code location: own keys, else the nearest ancestor's.
            let mut code = code_of(a);
            let mut scopes: Vec<String> = Vec::new();
            if !scope_name.is_empty() {
                scopes.push(scope_name.to_owned());
            }
            let mut cur = parent;
            for _ in 0..MAX_PARENT_HOPS {
                let Some((pscope, p)) = cur else { break };
                if code.is_none() {
                    code = code_of(&p.attributes);
                }
                if !pscope.is_empty() && !scopes.iter().any(|s| s == pscope) {
                    scopes.push(pscope.to_owned());
                }
                cur = lookup(&p.parent_span_id);
            }
            let code = code.unwrap_or(Code {
                function: None,
                filepath: None,
                lineno: None,
                namespace: None,
            });
            let start = i64::try_from(sp.start_time_unix_nano).unwrap_or(i64::MAX);
            let duration_us = sp.end_time_unix_nano.saturating_sub(sp.start_time_unix_nano) / 1000;
            let (operation, status_code, response_size_bytes) = match kind {
                EventKind::Sql => (str_attr(a, "db.system").unwrap_or("sql").to_owned(), None, None),
                EventKind::HttpOut => (
                    first_str(a, &["http.method", "http.request.method"])
                        .unwrap_or("GET")
                        .to_owned(),
                    first_int(a, &["http.status_code", "http.response.status_code"])
                        .and_then(|s| u16::try_from(s).ok()),
                    first_int(a, &["http.response.body.size", "http.response_content_length"])
                        .and_then(|s| u64::try_from(s).ok()),
                ),
            };
            out.events.push(SpanEvent {
                timestamp: crate::time::format_timestamp_ms(start),
                trace_id: hex(&sp.trace_id),
                span_id: hex(&sp.span_id),
                parent_span_id: (!sp.parent_span_id.is_empty()).then(|| hex(&sp.parent_span_id)),
                service: service.to_owned(),
                cloud_region: res_region.or_else(|| str_attr(a, "cloud.region")).map(str::to_owned),
                kind,
                operation,
                target: target.to_owned(),
                duration_us,
                source: EventSource {
                    endpoint: endpoint.to_owned(),
                    method: method.to_owned(),
                },
                status_code,
                response_size_bytes,
                code_function: code.function,
                code_filepath: code.filepath,
                code_lineno: code.lineno,
                code_namespace: code.namespace,
                instrumentation_scopes: scopes,
                start_unix_nanos: Some(start),
                db_parameters: if kind == EventKind::Sql {
                    captured_parameters(a)
                } else {
                    Vec::new()
                },
            });
        }
    }
}
