//! OTLP: `ExportTraceServiceRequest` as protobuf or as OTLP/JSON, mapped to events.
//!
//! The mapping follows spec 01 §4: a span is SQL when it carries
//! `db.statement` or `db.query.text`, HTTP when it carries `http.url` or
//! `url.full`, and is otherwise counted in
//! [`IngestStats::spans_without_io_attributes`]. Parent lookups (endpoint,
//! code location, scopes) search the spans of the same `resource_spans` block.

use compact_str::CompactString;
use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::view::{Attr, Block, Request, Span as ViewSpan, Value as AttrValue};
use super::{IngestError, IngestStats, Ingested};
use crate::event::{EventKind, EventSource, EventText, SpanEvent};

/// Spans per `resource_spans` block that parent lookups index; spans past it
/// are still converted but lose parent-based enrichment.
pub const MAX_INDEXED_SPANS: usize = 100_000;
/// Ancestors walked to find a code location or scope names.
pub const MAX_PARENT_HOPS: usize = 8;

/// Events that borrow their strings from a request, and the request's counts.
pub type BorrowedEvents<'a> = (Vec<SpanEvent<EventText<'a>>>, IngestStats);

/// Decodes a binary `ExportTraceServiceRequest` and maps it to events.
pub fn parse_protobuf(body: &[u8], origin: &str) -> Result<Ingested, IngestError> {
    let (events, stats) = protobuf_events(body, origin)?;
    Ok(Ingested {
        events: events.into_iter().map(SpanEvent::into_owned).collect(),
        stats,
    })
}

/// Reads a binary `ExportTraceServiceRequest` in place and maps its I/O
/// spans to events that borrow their strings from `body` (the reader is
/// described in docs/ARCHITECTURE.md). Gives the events
/// [`convert_borrowed`] gives for prost's decoding of `body`; the daemon
/// takes the same events one at a time ([`read_protobuf`]).
pub fn protobuf_events<'a>(body: &'a [u8], origin: &str) -> Result<BorrowedEvents<'a>, IngestError> {
    let request = read_protobuf(body, origin)?;
    Ok(convert_view(&request.view))
}

/// A binary `ExportTraceServiceRequest` read in place and checked, its
/// spans not yet mapped: [`ProtobufRequest::each_event`] hands them over
/// one at a time, so that a caller that turns events into something else
/// (the daemon normalizes them) does not store them first.
#[derive(Debug)]
pub struct ProtobufRequest<'a> {
    view: Request<'a>,
}

/// Reads a binary `ExportTraceServiceRequest` in place; the error names
/// `origin` and the byte offset where the request stopped making sense.
pub fn read_protobuf<'a>(body: &'a [u8], origin: &str) -> Result<ProtobufRequest<'a>, IngestError> {
    let view = super::view::decode(body).map_err(|e| invalid_protobuf_at(origin, e.offset as u64, &e.what))?;
    Ok(ProtobufRequest { view })
}

impl<'a> ProtobufRequest<'a> {
    /// The spans of the request: at least as many as the events it maps to.
    pub fn span_count(&self) -> usize {
        self.view.spans.len()
    }

    /// Maps each I/O span to the event [`protobuf_events`] gives for it and
    /// hands it to `each`, in the same order; returns the request's counts.
    pub fn each_event(&self, mut each: impl FnMut(SpanEvent<EventText<'a>>)) -> IngestStats {
        let mut stats = IngestStats::default();
        convert_each(&self.view, &mut stats, &mut each);
        stats
    }
}

/// Decodes a binary `ExportTraceServiceRequest` into prost's owned
/// messages. [`parse_protobuf`] and the daemon read requests in place
/// instead ([`protobuf_events`]); this is for programs that want the
/// messages themselves.
pub fn decode_protobuf(body: &[u8], origin: &str) -> Result<ExportTraceServiceRequest, IngestError> {
    ExportTraceServiceRequest::decode(body).map_err(|e| invalid_protobuf(origin, e))
}

fn invalid_protobuf(origin: &str, what: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        origin,
        None,
        format!("invalid OTLP protobuf: {what}; expected an ExportTraceServiceRequest as an OTLP exporter sends it"),
    )
}

/// [`invalid_protobuf`] at a byte offset of the input.
fn invalid_protobuf_at(origin: &str, offset: u64, what: impl std::fmt::Display) -> IngestError {
    let mut e = invalid_protobuf(origin, what);
    e.position = Some(format!("byte {offset}"));
    e
}

/// Bytes of `resource_spans` entries decoded together (on every core)
/// before the next are read.
const WINDOW_BYTES: usize = 8 << 20;

/// Decodes a binary `ExportTraceServiceRequest` one `resource_spans` block at
/// a time, on every core, normalizing each block's spans before decoding
/// the next, so that the decoded request is never held whole. Accepts what
/// [`parse_protobuf`] accepts and gives the same spans as [`parse_protobuf`]
/// followed by normalization.
pub fn protobuf_spans(body: &[u8], origin: &str) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    read_protobuf_spans(Vec::new(), &mut &*body, origin, u64::MAX, &mut |_| {})
}

/// [`protobuf_spans`] of a request read from `reader`, a window of a few
/// megabytes at a time: memory holds the normalized spans and one window
/// of input, whatever the input's size. `head` holds the bytes already
/// read from it (the sniffed prefix, with any byte-order mark). Reading
/// stops with an error past `max_bytes`; `progress` is called with the
/// bytes read so far.
pub fn read_protobuf_spans(
    head: Vec<u8>,
    reader: &mut dyn std::io::Read,
    origin: &str,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    read_protobuf_into(
        head,
        reader,
        origin,
        max_bytes,
        crate::trace::SpanBatch::default(),
        progress,
    )
}

/// Like [`read_protobuf_spans`], adding the spans to `batch` window by
/// window (see [`crate::trace::SpanBatch::spilling`]).
pub fn read_protobuf_into(
    head: Vec<u8>,
    reader: &mut dyn std::io::Read,
    origin: &str,
    max_bytes: u64,
    batch: crate::trace::SpanBatch,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    read_protobuf_windows(head, reader, origin, max_bytes, batch, progress, WINDOW_BYTES)
}

fn read_protobuf_windows(
    head: Vec<u8>,
    reader: &mut dyn std::io::Read,
    origin: &str,
    max_bytes: u64,
    batch: crate::trace::SpanBatch,
    progress: &mut dyn FnMut(u64),
    window_bytes: usize,
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    use super::wire::{Blocks, Stop, WireError};
    let invalid = |offset: u64, what: &dyn std::fmt::Display| invalid_protobuf_at(origin, offset, what);
    let bom = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut blocks = Blocks::new(head, reader, max_bytes, progress);
    blocks.skip_prefix(bom);
    let mut spans = batch;
    let mut stats = IngestStats::default();
    loop {
        let more = match blocks.walk(window_bytes) {
            Ok(more) => more,
            Err(Stop::TooLarge) => return Err(super::too_large(origin, max_bytes)),
            Err(Stop::Io(e)) => return Err(IngestError::io(origin, &e)),
            Err(Stop::Invalid(WireError { offset, what })) => return Err(invalid(offset, &what)),
        };
        let window = blocks.take_window();
        let (part, part_stats) = super::blocks::normalize_blocks(&window, |&(offset, value), names, spans, stats| {
            // Read as a request of one entry, as the whole request would
            // be; offsets count from the start of the input.
            let request = super::view::decode(value).map_err(|e| invalid(offset + e.offset as u64, &e.what))?;
            let mut events = Vec::new();
            convert_into(&request, &mut events, stats);
            super::blocks::push_sanitized(events, names, spans);
            Ok(())
        })?;
        drop(window);
        spans.append(part).map_err(|e| IngestError::spill(&e, "spans"))?;
        stats.add(part_stats);
        blocks.release();
        if !more {
            return Ok((spans, stats));
        }
    }
}

/// Parses OTLP/JSON: one `ExportTraceServiceRequest` object, or several in a
/// row (one per line, as the Collector's file exporter writes them).
pub fn parse_json(body: &[u8]) -> Result<Ingested, serde_json::Error> {
    let mut out = Ingested::default();
    for req in serde_json::Deserializer::from_slice(body).into_iter::<super::Object<ExportTraceServiceRequest>>() {
        let part = convert(&req?.0);
        out.stats.add(part.stats);
        out.events.extend(part.events);
    }
    Ok(out)
}

/// Maps every I/O span of a request to an event.
pub fn convert(req: &ExportTraceServiceRequest) -> Ingested {
    let (events, stats) = convert_borrowed(req);
    Ingested {
        events: events.into_iter().map(SpanEvent::into_owned).collect(),
        stats,
    }
}

/// Maps every I/O span of a request to an event that borrows its strings
/// from the request: only the ids and the timestamp are made.
pub fn convert_borrowed(req: &ExportTraceServiceRequest) -> BorrowedEvents<'_> {
    convert_view(&super::view::from_request(req))
}

/// Maps one `resource_spans` entry prost decoded (OTLP/JSON read block by
/// block), adding its events to `events`.
pub(super) fn convert_block<'a>(
    block: &'a ResourceSpans,
    events: &mut Vec<SpanEvent<EventText<'a>>>,
    stats: &mut IngestStats,
) {
    convert_into(&super::view::from_block(block), events, stats);
}

fn convert_view<'a>(req: &Request<'a>) -> BorrowedEvents<'a> {
    let mut events = Vec::new();
    let mut stats = IngestStats::default();
    convert_into(req, &mut events, &mut stats);
    (events, stats)
}

fn convert_into<'a>(req: &Request<'a>, events: &mut Vec<SpanEvent<EventText<'a>>>, stats: &mut IngestStats) {
    // At most one event per span: reserved at once, since an event is large
    // and doubling the vector copied every event made so far each time.
    events.reserve(req.spans.len());
    convert_each(req, stats, &mut |e| events.push(e));
}

fn convert_each<'a>(req: &Request<'a>, stats: &mut IngestStats, each: &mut impl FnMut(SpanEvent<EventText<'a>>)) {
    let mut times = crate::time::TimestampWriter::default();
    for block in &req.blocks {
        convert_block_view(req, block, each, stats, &mut times);
    }
}

fn attr<'v, 'a>(attrs: &'v [Attr<'a>], key: &str) -> Option<&'v AttrValue<'a>> {
    // The first attribute with the key decides, value or not.
    match &attrs.iter().find(|kv| kv.key == key.as_bytes())?.value {
        AttrValue::Absent => None,
        v => Some(v),
    }
}

fn str_attr<'a>(attrs: &[Attr<'a>], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(AttrValue::Str(s)) => Some(s),
        _ => None,
    }
}

fn int_attr(attrs: &[Attr<'_>], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(AttrValue::Int(i)) => Some(*i),
        _ => None,
    }
}

fn first_str<'a>(attrs: &[Attr<'a>], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| str_attr(attrs, k))
}

fn first_int(attrs: &[Attr<'_>], keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| int_attr(attrs, k))
}

fn hex(bytes: &[u8]) -> CompactString {
    // Ids are 8 or 16 bytes: written on the stack by `const_hex` (vector
    // instructions where the CPU has them) and copied once; a span id stays
    // inline, a trace id takes one allocation of its size.
    if let Ok(id) = <&[u8; 16]>::try_from(bytes) {
        return CompactString::new(const_hex::Buffer::<16>::new().format(id));
    }
    if let Ok(id) = <&[u8; 8]>::try_from(bytes) {
        return CompactString::new(const_hex::Buffer::<8>::new().format(id));
    }
    CompactString::from(const_hex::encode(bytes))
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

struct Code<'a> {
    function: Option<&'a str>,
    filepath: Option<&'a str>,
    lineno: Option<u32>,
    namespace: Option<&'a str>,
}

fn code_of<'a>(attrs: &[Attr<'a>]) -> Option<Code<'a>> {
    // Every key of CODE_KEYS starts with `code.`: one look at each key
    // settles most spans.
    if !attrs.iter().any(|kv| kv.key.starts_with(b"code.")) || !CODE_KEYS.iter().any(|k| attr(attrs, k).is_some()) {
        return None;
    }
    let new_name = str_attr(attrs, "code.function.name");
    Some(Code {
        function: new_name.or_else(|| str_attr(attrs, "code.function")),
        filepath: first_str(attrs, &["code.file.path", "code.filepath"]),
        lineno: first_int(attrs, &["code.line.number", "code.lineno"]).and_then(|l| u32::try_from(l).ok()),
        namespace: str_attr(attrs, "code.namespace")
            .or_else(|| new_name.and_then(|n| n.rsplit_once('.')).map(|(ns, _)| ns)),
    })
}

/// Bound values the instrumentation recorded: `db.statement.parameters` (one
/// text value) and every `db.query.parameter.<key>`, in key order.
fn captured_parameters<'a>(attrs: &[Attr<'a>]) -> Vec<EventText<'a>> {
    let mut out = Vec::new();
    if let Some(p) = str_attr(attrs, "db.statement.parameters") {
        out.push(EventText::Borrowed(p));
    }
    let mut keyed: Vec<(&str, String)> = attrs
        .iter()
        .filter_map(|kv| {
            let key = std::str::from_utf8(kv.key.strip_prefix(b"db.query.parameter.")?).ok()?;
            let text = match kv.value {
                AttrValue::Str(s) => s.to_owned(),
                AttrValue::Int(i) => i.to_string(),
                AttrValue::Double(d) => d.to_string(),
                AttrValue::Bool(b) => b.to_string(),
                AttrValue::Absent | AttrValue::Other => return None,
            };
            Some((key, text))
        })
        .collect();
    keyed.sort();
    out.extend(
        keyed
            .into_iter()
            .map(|(k, v)| EventText::Made(compact_str::format_compact!("{k}={v}"))),
    );
    out
}

/// Maps the I/O spans of one `resource_spans` block to events borrowing from it.
fn convert_block_view<'a>(
    req: &Request<'a>,
    block: &Block,
    each: &mut impl FnMut(SpanEvent<EventText<'a>>),
    stats: &mut IngestStats,
    times: &mut crate::time::TimestampWriter,
) {
    let res_attrs = &req.resource_attrs[block.resource_attrs.clone()];
    let service = str_attr(res_attrs, "service.name").unwrap_or("unknown");
    let res_region = str_attr(res_attrs, "cloud.region");
    let spans = req.block_spans(block);

    // Index span id -> span, bounded.
    // Span ids come from clients: the hasher is seeded per map.
    let mut index: foldhash::HashMap<&[u8], &ViewSpan<'a>> = foldhash::HashMap::default();
    for sp in spans.iter().take(MAX_INDEXED_SPANS) {
        index.entry(sp.span_id).or_insert(sp);
    }
    let lookup = |id: &[u8]| -> Option<(&'a str, &ViewSpan<'a>)> {
        if id.is_empty() {
            return None;
        }
        let p = *index.get(id)?;
        Some((req.scopes[p.scope].name, p))
    };

    for sp in spans {
        stats.spans_read += 1;
        let a = req.span_attrs(sp);
        let (kind, target) = if let Some(sql) = first_str(a, &["db.statement", "db.query.text"]) {
            (EventKind::Sql, sql)
        } else if let Some(url) = first_str(a, &["http.url", "url.full"]) {
            (EventKind::HttpOut, url)
        } else {
            stats.spans_without_io_attributes += 1;
            continue;
        };
        let scope_name = req.scopes[sp.scope].name;
        let parent = lookup(sp.parent_span_id);
        let endpoint = parent
            .and_then(|(_, p)| first_str(req.span_attrs(p), &["http.route", "http.url", "url.full"]))
            .unwrap_or("unknown");
        let method = match parent {
            Some((_, p)) => str_attr(req.span_attrs(p), "code.function").unwrap_or(p.name),
            None => sp.name,
        };
        // Code location: own keys, else the nearest ancestor's.
        let mut code = code_of(a);
        let mut scopes: Vec<EventText<'a>> = Vec::new();
        if !scope_name.is_empty() {
            scopes.push(EventText::Borrowed(scope_name));
        }
        let mut cur = parent;
        for _ in 0..MAX_PARENT_HOPS {
            let Some((pscope, p)) = cur else { break };
            if code.is_none() {
                code = code_of(req.span_attrs(p));
            }
            if !pscope.is_empty() && !scopes.iter().any(|s| &**s == pscope) {
                scopes.push(EventText::Borrowed(pscope));
            }
            cur = lookup(p.parent_span_id);
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
            EventKind::Sql => (str_attr(a, "db.system").unwrap_or("sql"), None, None),
            EventKind::HttpOut => (
                first_str(a, &["http.method", "http.request.method"]).unwrap_or("GET"),
                first_int(a, &["http.status_code", "http.response.status_code"]).and_then(|s| u16::try_from(s).ok()),
                first_int(a, &["http.response.body.size", "http.response_content_length"])
                    .and_then(|s| u64::try_from(s).ok()),
            ),
        };
        each(SpanEvent {
            timestamp: EventText::Made(times.format(start)),
            trace_id: EventText::Made(hex(sp.trace_id)),
            span_id: EventText::Made(hex(sp.span_id)),
            parent_span_id: (!sp.parent_span_id.is_empty()).then(|| EventText::Made(hex(sp.parent_span_id))),
            service: EventText::Borrowed(service),
            cloud_region: res_region
                .or_else(|| str_attr(a, "cloud.region"))
                .map(EventText::Borrowed),
            kind,
            operation: EventText::Borrowed(operation),
            target: EventText::Borrowed(target),
            duration_us,
            source: EventSource {
                endpoint: EventText::Borrowed(endpoint),
                method: EventText::Borrowed(method),
            },
            status_code,
            response_size_bytes,
            code_function: code.function.map(EventText::Borrowed),
            code_filepath: code.filepath.map(EventText::Borrowed),
            code_lineno: code.lineno,
            code_namespace: code.namespace.map(EventText::Borrowed),
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

/// Builds an `ExportTraceServiceRequest` that reads back as `events`.
///
/// The inverse of [`convert`], for tools that turn trace files into OTLP
/// (load generators, fuzz seeds, format benchmarks). Events are grouped into
/// one `resource_spans` block per service and region. [`convert`] reads an
/// event's endpoint and caller from its parent span, so every span carries
/// `http.route` and has the caller as its name, and a parent the input does
/// not hold (or one per trace, endpoint and caller for events without a
/// parent) is made as a server span. Made spans carry no I/O attribute, so
/// reading the request back counts them in `spans_without_io_attributes`.
/// Ids that are not hex are replaced by a stable hash of their text.
pub fn request_from_events(events: &[SpanEvent]) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, span::SpanKind};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }
    fn s(v: &str) -> Value {
        Value::StringValue(v.to_owned())
    }

    // Blocks keyed by (service, region), in order of first appearance.
    type BlockKey = (String, Option<String>);
    let mut blocks: Vec<(BlockKey, Vec<Span>)> = Vec::new();
    let mut block_of: HashMap<BlockKey, usize> = HashMap::new();
    let mut block_index = Vec::with_capacity(events.len());
    for e in events {
        let key = (e.service.clone(), e.cloud_region.clone());
        let bi = *block_of.entry(key.clone()).or_insert_with(|| {
            blocks.push((key, Vec::new()));
            blocks.len() - 1
        });
        block_index.push(bi);
    }
    // Span ids of the I/O events, per block: parents that need no made-up span.
    let io_ids: std::collections::HashSet<(usize, Vec<u8>)> = events
        .iter()
        .zip(&block_index)
        .map(|(e, &bi)| (bi, id_bytes(&e.span_id, 8)))
        .collect();
    let mut made: std::collections::HashSet<(usize, Vec<u8>)> = std::collections::HashSet::new();
    for (e, &bi) in events.iter().zip(&block_index) {
        let trace_id = id_bytes(&e.trace_id, 16);
        let start = e
            .start_unix_nanos
            .or_else(|| crate::time::parse_timestamp(&e.timestamp))
            .unwrap_or(0)
            .max(0) as u64;
        let end = start.saturating_add(e.duration_us.saturating_mul(1000));
        // The parent: the event's own when it names one (an I/O event of the
        // input, or a span the input does not hold, made here), else one
        // made per (trace, endpoint, caller).
        let parent_id = match &e.parent_span_id {
            Some(p) => id_bytes(p, 8),
            None => id_bytes(
                &format!("parent:{}:{}:{}", e.trace_id, e.source.endpoint, e.source.method),
                8,
            ),
        };
        if !io_ids.contains(&(bi, parent_id.clone())) && made.insert((bi, parent_id.clone())) {
            blocks[bi].1.push(Span {
                trace_id: trace_id.clone(),
                span_id: parent_id.clone(),
                name: e.source.method.clone(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: vec![kv("http.route", s(&e.source.endpoint))],
                ..Default::default()
            });
        }
        // `http.route` and the caller as the name: what a child event of this
        // one reads as its endpoint and caller.
        let mut attributes = Vec::with_capacity(9);
        attributes.push(kv("http.route", s(&e.source.endpoint)));
        match e.kind {
            EventKind::Sql => {
                attributes.push(kv("db.statement", s(&e.target)));
                attributes.push(kv("db.system", s(&e.operation)));
            }
            EventKind::HttpOut => {
                attributes.push(kv("http.url", s(&e.target)));
                attributes.push(kv("http.method", s(&e.operation)));
                if let Some(code) = e.status_code {
                    attributes.push(kv("http.status_code", Value::IntValue(i64::from(code))));
                }
                if let Some(size) = e.response_size_bytes {
                    attributes.push(kv("http.response.body.size", Value::IntValue(size as i64)));
                }
            }
        }
        if let Some(f) = &e.code_function {
            attributes.push(kv("code.function", s(f)));
        }
        if let Some(f) = &e.code_filepath {
            attributes.push(kv("code.filepath", s(f)));
        }
        if let Some(l) = e.code_lineno {
            attributes.push(kv("code.lineno", Value::IntValue(i64::from(l))));
        }
        if let Some(n) = &e.code_namespace {
            attributes.push(kv("code.namespace", s(n)));
        }
        if !e.db_parameters.is_empty() {
            attributes.push(kv("db.statement.parameters", s(&e.db_parameters.join(","))));
        }
        blocks[bi].1.push(Span {
            trace_id,
            span_id: id_bytes(&e.span_id, 8),
            parent_span_id: parent_id,
            name: e.source.method.clone(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: blocks
            .into_iter()
            .map(|((service, region), spans)| {
                let mut attributes = vec![kv("service.name", s(&service))];
                if let Some(r) = region {
                    attributes.push(kv("cloud.region", s(&r)));
                }
                ResourceSpans {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "perf-sentinel".into(),
                            ..Default::default()
                        }),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// The bytes of a hex id of `len` bytes, or a stable hash of the text when it
/// is not one (native files may use any string as an id).
fn id_bytes(id: &str, len: usize) -> Vec<u8> {
    let b = id.as_bytes();
    if b.len() == 2 * len && b.iter().all(u8::is_ascii_hexdigit) {
        let nib = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        return b.chunks(2).map(|p| nib(p[0]) << 4 | nib(p[1])).collect();
    }
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes())[..len].to_vec()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    use super::*;

    #[test]
    fn ids_are_lower_case_hex_at_any_length() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 32, 33, 70] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex(&bytes), want, "{len} bytes");
        }
        // Ids of 8 and 16 bytes take their own path: every byte value at
        // every position, and seeded random ids.
        let mut cases = crate::testing::Cases::new(3);
        for round in 0..20_000u32 {
            let len = if round % 2 == 0 { 8 } else { 16 };
            let bytes: Vec<u8> = (0..len)
                .map(|i| match round {
                    0..512 => (round / 2) as u8 ^ (i as u8 * 17),
                    _ => cases.below(256) as u8,
                })
                .collect();
            let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex(&bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn code_location_endpoint_and_caller_come_from_the_nearest_span_that_has_them() {
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

        fn kv(key: &str, value: Value) -> KeyValue {
            KeyValue {
                key: key.to_owned(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
        }
        fn text(key: &str, v: &str) -> KeyValue {
            kv(key, Value::StringValue(v.to_owned()))
        }
        fn span(id: u8, parent: u8, name: &str, attributes: Vec<KeyValue>) -> Span {
            Span {
                trace_id: vec![7; 16],
                span_id: vec![id; 8],
                parent_span_id: if parent == 0 { Vec::new() } else { vec![parent; 8] },
                name: name.to_owned(),
                start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1_000_000,
                end_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1_000_000 + 500_000,
                attributes,
                ..Default::default()
            }
        }
        let spans = vec![
            // The inbound request: route and code location.
            span(
                1,
                0,
                "GET /orders/{id}",
                vec![
                    text("http.route", "/orders/{id}"),
                    text("code.function", "show"),
                    kv("code.lineno", Value::IntValue(12)),
                    text("code.namespace", "orders.web"),
                ],
            ),
            // An internal span: no route, no code, a URL.
            span(2, 1, "load", vec![text("http.url", "http://inner/load")]),
            // SQL under the internal span: code from two hops up.
            span(
                3,
                2,
                "SELECT",
                vec![text("db.statement", "SELECT 1"), text("db.system", "postgresql")],
            ),
            // A span whose parent names its code the new way.
            span(4, 0, "job", vec![text("code.function.name", "billing.jobs.run")]),
            // HTTP under it, its own code location first; a duplicate key
            // whose first value is not a string hides the second.
            span(
                5,
                4,
                "POST",
                vec![
                    text("url.full", "http://pay/charge"),
                    kv("http.request.method", Value::IntValue(1)),
                    text("http.request.method", "POST"),
                    text("http.method", "PUT"),
                    kv("http.response.status_code", Value::IntValue(502)),
                    text("code.filepath", "pay.py"),
                ],
            ),
        ];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "shop")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let got = convert(&req);
        assert_eq!(got.stats.spans_read, 5);
        assert_eq!(got.stats.spans_without_io_attributes, 2);
        let [inner, sql, http] = &got.events[..] else {
            panic!("{} events", got.events.len())
        };
        assert_eq!(
            (inner.kind, inner.target.as_str()),
            (EventKind::HttpOut, "http://inner/load")
        );
        assert_eq!(inner.source.endpoint, "/orders/{id}");
        assert_eq!(inner.source.method, "show");
        assert_eq!(inner.code_lineno, Some(12));

        assert_eq!((sql.kind, sql.operation.as_str()), (EventKind::Sql, "postgresql"));
        assert_eq!(sql.source.endpoint, "http://inner/load");
        assert_eq!(sql.source.method, "load");
        assert_eq!(
            (
                sql.code_function.as_deref(),
                sql.code_lineno,
                sql.code_namespace.as_deref()
            ),
            (Some("show"), Some(12), Some("orders.web"))
        );

        assert_eq!(http.operation, "PUT", "http.request.method's first value is not text");
        assert_eq!(http.status_code, Some(502));
        assert_eq!(http.source.endpoint, "unknown");
        assert_eq!(http.source.method, "job");
        assert_eq!(
            (
                http.code_function.as_deref(),
                http.code_filepath.as_deref(),
                http.code_namespace.as_deref()
            ),
            (None, Some("pay.py"), None),
            "its own code location, not its parent's"
        );
    }

    #[test]
    fn request_from_events_reads_back_as_the_same_events() {
        let demo = include_bytes!("../../../examples/demo-traces.json");
        let native = crate::ingest::parse(demo, "demo").unwrap();
        let req = request_from_events(&native.events);
        let back = parse_protobuf(&req.encode_to_vec(), "encoded").unwrap();
        assert_eq!(back.events.len(), native.events.len());
        for (a, b) in native.events.iter().zip(&back.events) {
            assert_eq!((a.kind, &a.target, &a.operation), (b.kind, &b.target, &b.operation));
            assert_eq!((&a.service, &a.cloud_region), (&b.service, &b.cloud_region));
            assert_eq!(
                (&a.source, a.duration_us, a.status_code),
                (&b.source, b.duration_us, b.status_code)
            );
            assert_eq!(a.timestamp, b.timestamp);
            assert_eq!(b.trace_id.len(), 32);
        }
        // One parent per (trace, endpoint, caller): not I/O, counted as such.
        assert_eq!(
            back.stats.spans_read,
            native.events.len() as u64 + back.stats.spans_without_io_attributes
        );
        assert!(back.stats.spans_without_io_attributes > 0);
    }

    #[test]
    fn borrowed_events_normalize_as_owned_ones() {
        use opentelemetry_proto::tonic::common::v1::AnyValue;
        let demo = include_bytes!("../../../examples/demo-traces.json");
        let native = crate::ingest::parse(demo, "demo").unwrap();
        let mut req = request_from_events(&native.events);
        // Give the SQL spans captured parameters, a code location and a
        // statement longer than the cap, so every borrowed path is taken.
        let kv = |key: &str, value: Value| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        };
        for sp in req
            .resource_spans
            .iter_mut()
            .flat_map(|rs| &mut rs.scope_spans)
            .flat_map(|ss| &mut ss.spans)
        {
            if sp.attributes.iter().any(|a| a.key == "db.statement") {
                sp.attributes
                    .push(kv("db.statement.parameters", Value::StringValue("[42]".into())));
                sp.attributes.push(kv("db.query.parameter.id", Value::IntValue(7)));
                sp.attributes.push(kv(
                    "code.function.name",
                    Value::StringValue("com.example.Repo.find".into()),
                ));
                sp.attributes.push(kv("code.line.number", Value::IntValue(12)));
                sp.attributes
                    .push(kv("cloud.region", Value::StringValue("eu-west-3".into())));
            }
        }
        let long = format!("SELECT '{}é' FROM t", "x".repeat(70_000));
        if let Some(a) = req
            .resource_spans
            .iter_mut()
            .flat_map(|rs| &mut rs.scope_spans)
            .flat_map(|ss| &mut ss.spans)
            .flat_map(|sp| &mut sp.attributes)
            .find(|a| a.key == "db.statement")
        {
            a.value = Some(AnyValue {
                value: Some(Value::StringValue(long)),
            });
        }
        let owned = convert(&req);
        assert!(owned.events.iter().any(|e| e.db_parameters.len() == 2
            && e.code_namespace.as_deref() == Some("com.example.Repo")
            && e.cloud_region.is_some()));
        assert!(owned.events.iter().any(|e| e.target.len() > 70_000));
        let (borrowed, stats) = convert_borrowed(&req);
        assert_eq!(stats.spans_read, owned.stats.spans_read);
        assert_eq!(borrowed.len(), owned.events.len());
        let (mut a, mut b) = (crate::trace::Interner::default(), crate::trace::Interner::default());
        for (mut o, mut w) in owned.events.into_iter().zip(borrowed) {
            o.sanitize();
            w.sanitize();
            assert_eq!(w.clone().into_owned(), o);
            let (x, y) = (crate::trace::Span::new(o, &mut a), crate::trace::Span::new(w, &mut b));
            assert_eq!((&x.event, &x.template, x.params), (&y.event, &y.template, y.params));
        }
    }

    #[test]
    fn events_handed_over_one_at_a_time_are_the_events_of_the_request() {
        let demo = include_bytes!("../../../examples/demo-traces.json");
        let native = crate::ingest::parse(demo, "demo").unwrap();
        let body = request_from_events(&native.events).encode_to_vec();
        let (whole, whole_stats) = protobuf_events(&body, "demo").unwrap();
        let request = read_protobuf(&body, "demo").unwrap();
        let mut each = Vec::new();
        let stats = request.each_event(|e| each.push(e));
        assert_eq!(each, whole);
        assert_eq!(stats, whole_stats);
        // The parents are spans too, not events.
        assert_eq!(request.span_count() as u64, stats.spans_read);
        assert!(request.span_count() > each.len());
        let err = read_protobuf(&body[..body.len() - 1], "cut.pb")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.pb") && err.contains("byte "), "{err}");
    }

    #[test]
    fn block_reader_gives_the_whole_decode_spans() {
        let demo = include_bytes!("../../../examples/demo-traces.json");
        let native = crate::ingest::parse(demo, "demo").unwrap();
        let mut req = request_from_events(&native.events);
        // An unknown top-level field of each scalar wire type, between blocks.
        let mut bytes = Vec::new();
        for (i, rs) in std::mem::take(&mut req.resource_spans).into_iter().enumerate() {
            let one = ExportTraceServiceRequest {
                resource_spans: vec![rs],
            };
            bytes.extend(one.encode_to_vec());
            match i % 3 {
                0 => bytes.extend([0x10, 0x96, 0x01]),             // field 2, varint
                1 => bytes.extend([0x19, 0, 0, 0, 0, 0, 0, 0, 0]), // field 3, 64-bit
                _ => bytes.extend([0x2a, 0x02, 0xff, 0xfe]),       // field 5, 2 bytes
            }
        }
        // An unknown group (field 6, holding a varint and a nested group)
        // at the end.
        bytes.extend([0x33, 0x08, 0x01, 0x3b, 0x3c, 0x34]);
        let whole = parse_protobuf(&bytes, "t").unwrap();
        let whole_spans = crate::trace::normalize_events(whole.events);
        // Read whole, and read a byte at a time with every block its own
        // window.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut seen = 0;
        let trickled = read_protobuf_windows(
            bytes[..2].to_vec(),
            &mut Trickle(&bytes[2..]),
            "t",
            u64::MAX,
            crate::trace::SpanBatch::default(),
            &mut |n| seen = n,
            1,
        );
        assert_eq!(seen, bytes.len() as u64);
        for (spans, stats) in [protobuf_spans(&bytes, "t").unwrap(), trickled.unwrap()] {
            assert_eq!(stats.spans_read, whole.stats.spans_read);
            assert_eq!(
                stats.spans_without_io_attributes,
                whole.stats.spans_without_io_attributes
            );
            assert_eq!(spans.len(), whole_spans.len());
            assert_eq!(spans.len(), native.events.len());
            for (a, b) in spans.iter().zip(whole_spans.iter()) {
                assert_eq!((&a.event, &a.template, a.params), (&b.event, &b.template, b.params));
            }
        }
        // Groups nested at prost's limit and one past it.
        for n in [99, 100] {
            let mut nested = vec![0x13; n];
            nested.extend([0x08, 0x01]);
            nested.extend(vec![0x14; n]);
            let whole = decode_protobuf(&nested, "t").is_ok();
            assert_eq!(whole, n == 99);
            assert_eq!(protobuf_spans(&nested, "t").is_ok(), whole, "{n} groups");
        }
        let small = read_protobuf_spans(Vec::new(), &mut &bytes[..], "t", 100, &mut |_| {});
        assert!(small.unwrap_err().to_string().contains("larger than 100 bytes"));
        // Refused by both, with where: truncated, field 0, field 1 as a
        // group or a varint, a group with another's end, one without an end,
        // an eleven-byte varint.
        for (bad, at) in [
            (&bytes[..10], 0),
            (b"\x00\x01".as_slice(), 0),
            (b"\x0b\x0c", 0),
            (b"\x08\x01", 0),
            (b"\x33\x3c", 1),
            (b"\x33\x08\x01", 0),
            (b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 1),
            // Found by fuzzing: a length near 2^63 in an unknown field.
            (b"\x1a\xfe\xff\xfb\xff\xff\xff\xff\xff\xff\x01re\x1a", 0),
        ] {
            assert!(decode_protobuf(bad, "t").is_err(), "{bad:?}");
            let e = protobuf_spans(bad, "t").unwrap_err();
            assert_eq!(e.position, Some(format!("byte {at}")), "{bad:?}: {e}");
            assert!(e.to_string().contains("invalid OTLP protobuf"), "{e}");
        }
    }
}
