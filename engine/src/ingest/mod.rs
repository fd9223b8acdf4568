//! Trace-file ingestion: format sniffing, parsing and mapping to [`SpanEvent`]s.
//!
//! Five formats are read, told apart from their first bytes:
//!
//! | format | recognised by |
//! |---|---|
//! | native event array | a JSON array that is not Zipkin |
//! | Jaeger JSON export | a JSON object with `"data"` and `"spans"` |
//! | Zipkin v2 | a JSON array mentioning `"traceId"` and `"localEndpoint"` |
//! | OTLP/JSON | a JSON object with `"resourceSpans"` (one per line is fine, as the Collector's file exporter writes) |
//! | OTLP protobuf | a binary `ExportTraceServiceRequest` (first byte `0x0a`) |
//!
//! A payload is all or nothing: one malformed element fails it, with an error
//! that names the origin, the line and column (or byte offset) and what was
//! expected.

mod blocks;
mod jaeger;
pub mod otlp;
mod stream;
mod view;
mod wire;
mod zipkin;

use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::event::SpanEvent;

/// Deepest `[`/`{` nesting a JSON payload may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// Default cap on one payload, in bytes (`[daemon] max_payload_size`).
pub const DEFAULT_MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// The input formats perf-sentinel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Native,
    Jaeger,
    Zipkin,
    OtlpJson,
    OtlpProtobuf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native event array",
            Format::Jaeger => "Jaeger JSON export",
            Format::Zipkin => "Zipkin v2 JSON",
            Format::OtlpJson => "OTLP/JSON",
            Format::OtlpProtobuf => "OTLP protobuf",
        }
    }
}

/// Counts of what ingestion read and what it set aside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Spans read from an OTLP, Jaeger or Zipkin payload (native events count too).
    pub spans_read: u64,
    /// Spans carrying neither a SQL (`db.statement`, `db.query.text`) nor an
    /// HTTP (`http.url`, `url.full`) attribute: not I/O, so not analyzed.
    pub spans_without_io_attributes: u64,
}

impl IngestStats {
    pub fn add(&mut self, other: IngestStats) {
        self.spans_read += other.spans_read;
        self.spans_without_io_attributes += other.spans_without_io_attributes;
    }
}

/// What one payload gave.
#[derive(Debug, Default, PartialEq)]
pub struct Ingested {
    pub events: Vec<SpanEvent>,
    pub stats: IngestStats,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub struct IngestError {
    /// The file path, or `<stdin>`, or a peer address.
    pub origin: String,
    /// Where in the payload, e.g. `line 3, column 7` or `byte 12`.
    pub position: Option<String>,
    pub message: String,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "{}: {}: {}", self.origin, p, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl IngestError {
    fn new(origin: &str, position: Option<String>, message: impl Into<String>) -> Self {
        IngestError {
            origin: origin.to_owned(),
            position,
            message: message.into(),
        }
    }

    /// The position and the message, for a reply to the peer that sent
    /// the payload.
    pub fn without_origin(&self) -> String {
        match &self.position {
            Some(p) => format!("{p}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The input could not be read (a missing file, a failing pipe).
    fn io(origin: &str, e: &std::io::Error) -> Self {
        IngestError::new(origin, None, format!("cannot read: {e}"))
    }

    /// A temporary file of spans (see [`crate::trace::SpanBatch::spilling`])
    /// could not be written or read back.
    pub(crate) fn spill(e: &std::io::Error, of: &str) -> Self {
        use std::io::ErrorKind;
        let dir = std::env::temp_dir();
        let hint = match e.kind() {
            ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::StorageFull
            | ErrorKind::ReadOnlyFilesystem => " (set TMPDIR to a writable directory with room)",
            _ => "",
        };
        IngestError::new(
            &dir.display().to_string(),
            None,
            format!("cannot write or read a temporary file of {of}: {e}{hint}"),
        )
    }

    fn json(origin: &str, format: Format, e: &serde_json::Error) -> Self {
        let text = e.to_string();
        let text = match text.rfind(" at line ") {
            Some(p) => text[..p].to_owned(),
            None => text,
        };
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the file ends early (truncated JSON?)".to_owned(),
            _ => text,
        };
        IngestError::new(
            origin,
            Some(format!("line {}, column {}", e.line(), e.column())),
            format!("invalid {} input: {what}; expected {}", format.name(), expected(format)),
        )
    }
}

fn expected(format: Format) -> &'static str {
    match format {
        Format::Native => {
            "a JSON array of span events with timestamp, trace_id, span_id, service, type (\"sql\" or \"http_out\"), operation, target, duration_us and source {endpoint, method}"
        }
        Format::Jaeger => "a Jaeger export: {\"data\": [{\"traceID\", \"spans\": [...], \"processes\": {...}}]}",
        Format::Zipkin => "a Zipkin v2 array of spans with traceId, id and string-valued tags",
        Format::OtlpJson => "an OTLP/JSON ExportTraceServiceRequest: {\"resourceSpans\": [...]}",
        Format::OtlpProtobuf => "an OTLP protobuf ExportTraceServiceRequest",
    }
}

/// Reads a whole file, or stdin when `path` is `None`, refusing more than `max_bytes`.
pub fn read_input(path: Option<&Path>, max_bytes: u64) -> Result<Vec<u8>, IngestError> {
    let origin = origin_of(path);
    let mut buf = Vec::new();
    let res = match path {
        Some(p) => std::fs::File::open(p).and_then(|f| f.take(max_bytes.saturating_add(1)).read_to_end(&mut buf)),
        None => std::io::stdin()
            .lock()
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut buf),
    };
    if let Err(e) = res {
        return Err(IngestError::io(&origin, &e));
    }
    if buf.len() as u64 > max_bytes {
        return Err(too_large(&origin, max_bytes));
    }
    Ok(buf)
}

/// Bytes read before the format is sniffed.
const HEAD_BYTES: usize = 64 * 1024;

/// Reads, parses and normalizes a trace file, or stdin when `path` is `None`.
///
/// Every format is streamed (see the `stream` module and
/// [`otlp::read_protobuf_spans`]): memory holds the normalized spans and a
/// window of input, whatever the file's size, and parsing runs on every
/// core. Only a JSON file that opens with a newline, which may also be
/// protobuf, is read whole first (see [`parse`]). More than `max_bytes` of
/// input is an error.
/// `progress` is called with the bytes read so far.
pub fn read_spans(
    path: Option<&Path>,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    read_spans_into(path, max_bytes, crate::trace::SpanBatch::default(), progress)
}

/// Like [`read_spans`], adding the spans to `batch`: a batch made with
/// [`SpanBatch::spilling`](crate::trace::SpanBatch::spilling) holds a
/// bounded number of spans in memory, whatever the input's size.
pub fn read_spans_into(
    path: Option<&Path>,
    max_bytes: u64,
    batch: crate::trace::SpanBatch,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    let origin = origin_of(path);
    let cannot = |e: std::io::Error| IngestError::io(&origin, &e);
    match path {
        Some(p) => {
            let mut file = std::fs::File::open(p).map_err(cannot)?;
            let size = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            read_spans_sized(&mut file, &origin, max_bytes, size, batch, progress)
        }
        None => read_spans_sized(&mut std::io::stdin().lock(), &origin, max_bytes, None, batch, progress),
    }
}

/// [`read_spans`] from any reader; `origin` names it in messages.
pub fn read_spans_from(
    reader: &mut dyn Read,
    origin: &str,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    read_spans_sized(
        reader,
        origin,
        max_bytes,
        None,
        crate::trace::SpanBatch::default(),
        progress,
    )
}

/// [`read_spans_into`] from any reader, with the input's size when it is
/// known (a regular file): a format read whole gets one buffer of that size
/// instead of one that doubles as it fills, which would briefly hold the
/// input about three times.
fn read_spans_sized(
    reader: &mut dyn Read,
    origin: &str,
    max_bytes: u64,
    size: Option<u64>,
    mut batch: crate::trace::SpanBatch,
    progress: &mut dyn FnMut(u64),
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    let origin = origin.to_owned();
    let cannot = |e: std::io::Error| IngestError::io(&origin, &e);
    let mut head = Vec::with_capacity(HEAD_BYTES);
    reader.take(HEAD_BYTES as u64).read_to_end(&mut head).map_err(cannot)?;
    // Input that opens with a newline may also be protobuf (see `parse`):
    // it takes the whole-file path, which tries both.
    let format = sniff(&head, &origin)?;
    // Protobuf is told by its first two bytes: the head's answer holds.
    if format == Format::OtlpProtobuf {
        return otlp::read_protobuf_into(head, reader, &origin, max_bytes, batch, progress);
    }
    if strip_bom(&head).first() != Some(&0x0a) {
        return stream::read_json_spans(format, head, reader, &origin, max_bytes, size, batch, progress);
    }
    let mut bytes = head;
    if let Some(size) = size.filter(|&n| n <= max_bytes) {
        // One byte more, so that reading to the end needs no second buffer.
        let rest = usize::try_from(size).unwrap_or(0).saturating_sub(bytes.len());
        bytes.reserve_exact(rest.saturating_add(1));
    }
    reader
        .take(max_bytes.saturating_add(1).saturating_sub(bytes.len() as u64))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    progress(bytes.len() as u64);
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(&origin, max_bytes));
    }
    // Read as JSON block by block; what that refuses may be protobuf, which
    // the whole-payload parser tries next.
    let (spans, stats) = match json_spans(format, &bytes, &origin) {
        Ok(read) => read,
        Err(_) => {
            let input = parse(&bytes, &origin)?;
            drop(bytes);
            (crate::trace::normalize_events(input.events), input.stats)
        }
    };
    batch.append(spans).map_err(|e| IngestError::spill(&e, "spans"))?;
    Ok((batch, stats))
}

fn too_large(origin: &str, max_bytes: u64) -> IngestError {
    IngestError::new(
        origin,
        None,
        format!(
            "input is larger than {max_bytes} bytes; raise [analyze] max_input_size, or [daemon] max_payload_size (at most 104857600), or split the file"
        ),
    )
}

/// The name used in messages for a file path or stdin.
pub fn origin_of(path: Option<&Path>) -> String {
    path.map_or_else(|| "<stdin>".to_owned(), |p| p.display().to_string())
}

/// Tells the format of a payload from its first bytes.
pub fn sniff(bytes: &[u8], origin: &str) -> Result<Format, IngestError> {
    let body = strip_bom(bytes);
    // An OTLP request starts with field 1 (resource_spans), length-delimited:
    // byte 0x0a. JSON that starts with a newline is told apart by what follows.
    if body.first() == Some(&0x0a)
        && !body
            .get(1)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'[' || *b == b'{')
    {
        return Ok(Format::OtlpProtobuf);
    }
    let Some(first) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(IngestError::new(
            origin,
            None,
            "empty input; expected a JSON trace file (native, Jaeger, Zipkin or OTLP/JSON) or an OTLP protobuf file",
        ));
    };
    let head = &body[first..body.len().min(first + 4096)];
    let peek = &head[..head.len().min(1024)];
    match body[first] {
        b'{' => {
            if contains(head, b"\"resourceSpans\"") || contains(head, b"\"resource_spans\"") {
                Ok(Format::OtlpJson)
            } else if contains(peek, b"\"data\"") && contains(head, b"\"spans\"") {
                Ok(Format::Jaeger)
            } else {
                Err(IngestError::new(
                    origin,
                    Some("line 1".into()),
                    "a JSON object that is neither a Jaeger export (no \"data\" with \"spans\") nor OTLP/JSON (no \"resourceSpans\"); native files are JSON arrays",
                ))
            }
        }
        b'[' => {
            if contains(peek, b"\"traceId\"") && contains(peek, b"\"localEndpoint\"") {
                Ok(Format::Zipkin)
            } else {
                Ok(Format::Native)
            }
        }
        other => Err(IngestError::new(
            origin,
            Some(format!("byte {first}")),
            format!(
                "not a trace file: found byte 0x{other:02x}; expected JSON ('[' or '{{') or an OTLP protobuf ExportTraceServiceRequest"
            ),
        )),
    }
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Checks the `[`/`{` nesting depth outside JSON strings.
fn check_depth(bytes: &[u8], origin: &str) -> Result<(), IngestError> {
    let (mut depth, mut in_str, mut esc, mut line) = (0usize, false, false, 1usize);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            line += 1;
        }
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(IngestError::new(
                        origin,
                        Some(format!("line {line}, byte {i}")),
                        format!("JSON nested deeper than {MAX_JSON_DEPTH} levels; trace files are never that deep"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What every JSON payload is checked for before it is parsed: nesting depth
/// and UTF-8.
fn check_json_text<'a>(body: &'a [u8], origin: &str) -> Result<&'a str, IngestError> {
    check_depth(body, origin)?;
    std::str::from_utf8(body).map_err(|e| {
        // serde_json reports bad UTF-8 only inside strings; say where it is.
        let valid = e.valid_up_to();
        let line = 1 + body[..valid].iter().filter(|&&b| b == b'\n').count();
        IngestError::new(
            origin,
            Some(format!("line {line}, byte {valid}")),
            "invalid UTF-8; JSON trace files must be UTF-8 text",
        )
    })
}

/// Parses and normalizes a JSON payload of `format` (native, Jaeger, Zipkin
/// or OTLP/JSON) one block at a time (an event, a Jaeger trace, a Zipkin
/// span, an OTLP `resourceSpans` entry) on every core, as [`read_spans`]
/// does for files, so that the decoded payload is never held whole. A
/// leading byte-order mark is skipped, as [`parse_format`] skips it.
///
/// Accepts what [`parse_format`] accepts and gives the same spans as it
/// followed by normalization; errors may be worded differently.
pub fn json_spans(
    format: Format,
    body: &[u8],
    origin: &str,
) -> Result<(crate::trace::SpanBatch, IngestStats), IngestError> {
    if format == Format::OtlpProtobuf {
        return Err(IngestError::new(
            origin,
            None,
            "OTLP protobuf is not JSON; read it with otlp::protobuf_spans",
        ));
    }
    let size = Some(body.len() as u64);
    stream::read_json_spans(
        format,
        Vec::new(),
        &mut &*body,
        origin,
        u64::MAX,
        size,
        crate::trace::SpanBatch::default(),
        &mut |_| {},
    )
}

/// Parses one payload of any supported format into sanitized events.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Ingested, IngestError> {
    let format = sniff(bytes, origin)?;
    let body = strip_bom(bytes);
    let mut out = match parse_as(format, body, origin) {
        // `\n[` or `\n{` may also open a protobuf whose first length is 91 or 123.
        Err(e) if body.first() == Some(&0x0a) && format != Format::OtlpProtobuf => {
            otlp::parse_protobuf(body, origin).map_err(|_| e)?
        }
        other => other?,
    };
    for e in &mut out.events {
        e.sanitize();
    }
    Ok(out)
}

/// Parses one payload as the given format, without sniffing, into sanitized events.
///
/// For callers that know the format (an OTLP endpoint, a fuzz target).
pub fn parse_format(format: Format, bytes: &[u8], origin: &str) -> Result<Ingested, IngestError> {
    let mut out = parse_as(format, strip_bom(bytes), origin)?;
    for e in &mut out.events {
        e.sanitize();
    }
    Ok(out)
}

fn parse_as(format: Format, body: &[u8], origin: &str) -> Result<Ingested, IngestError> {
    Ok(match format {
        Format::OtlpProtobuf => otlp::parse_protobuf(body, origin)?,
        json_format => {
            check_json_text(body, origin)?;
            match json_format {
                Format::Native => {
                    let events: Vec<SpanEvent> =
                        serde_json::from_slice(body).map_err(|e| IngestError::json(origin, Format::Native, &e))?;
                    let n = events.len() as u64;
                    Ingested {
                        events,
                        stats: IngestStats {
                            spans_read: n,
                            spans_without_io_attributes: 0,
                        },
                    }
                }
                Format::Jaeger => jaeger::parse(body).map_err(|e| IngestError::json(origin, Format::Jaeger, &e))?,
                Format::Zipkin => zipkin::parse(body).map_err(|e| IngestError::json(origin, Format::Zipkin, &e))?,
                _ => otlp::parse_json(body).map_err(|e| IngestError::json(origin, Format::OtlpJson, &e))?,
            }
        }
    })
}

/// A struct written as a JSON object. serde alone would also take a
/// struct written as an array of its fields, which neither a Jaeger export
/// nor an OTLP/JSON request is (and which the streaming reader does not
/// take either).
pub(crate) struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Tag lookups shared by the Jaeger and Zipkin mappers, which read the same keys.
pub(crate) struct TagView<'a> {
    pub get: &'a dyn Fn(&str) -> Option<String>,
}

impl TagView<'_> {
    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| (self.get)(k))
    }

    /// Maps a Jaeger or Zipkin span to an event, or `None` when it is not I/O.
    pub(crate) fn to_event(&self, span: TextSpan) -> Option<SpanEvent> {
        use crate::event::{EventKind, EventSource};
        let (kind, target) = if let Some(sql) = self.first(&["db.statement", "db.query.text"]) {
            (EventKind::Sql, sql)
        } else {
            (EventKind::HttpOut, self.first(&["http.url", "url.full"])?)
        };
        let operation = match kind {
            EventKind::Sql => self.first(&["db.system"]).unwrap_or_else(|| "unknown".into()),
            EventKind::HttpOut => self
                .first(&["http.method", "http.request.method"])
                .unwrap_or_else(|| "GET".into()),
        };
        let status_code = match kind {
            EventKind::HttpOut => self
                .first(&["http.status_code", "http.response.status_code"])
                .and_then(|s| s.parse().ok()),
            EventKind::Sql => None,
        };
        let start_ns = i64::try_from(span.start_us)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        Some(SpanEvent {
            timestamp: crate::time::format_timestamp_ms(start_ns),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            service: span.service,
            cloud_region: None,
            kind,
            operation,
            target,
            duration_us: span.duration_us,
            source: EventSource {
                endpoint: self.first(&["http.route", "http.target"]).unwrap_or_default(),
                method: self.first(&["code.function"]).unwrap_or(span.name),
            },
            status_code,
            response_size_bytes: None,
            code_function: self.first(&["code.function"]),
            code_filepath: self.first(&["code.filepath"]),
            code_lineno: self.first(&["code.lineno"]).and_then(|s| s.parse().ok()),
            code_namespace: self.first(&["code.namespace"]),
            instrumentation_scopes: Vec::new(),
            start_unix_nanos: Some(start_ns),
            db_parameters: Vec::new(),
        })
    }
}

/// The format-independent parts of a Jaeger or Zipkin span.
pub(crate) struct TextSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub start_us: u64,
    pub duration_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_every_format() {
        let o = "t";
        assert_eq!(sniff(b"  []", o).unwrap(), Format::Native);
        assert_eq!(
            sniff(br#"[{"traceId":"a","localEndpoint":{}}]"#, o).unwrap(),
            Format::Zipkin
        );
        assert_eq!(sniff(br#"{"data":[{"spans":[]}]}"#, o).unwrap(), Format::Jaeger);
        assert_eq!(sniff(br#"{"resourceSpans":[]}"#, o).unwrap(), Format::OtlpJson);
        assert_eq!(sniff(b"\x0a\x00", o).unwrap(), Format::OtlpProtobuf);
        assert!(sniff(b"", o).is_err());
        assert!(sniff(b"\x00\x01", o).is_err());
        assert!(sniff(b"{}", o).is_err());
    }

    #[test]
    fn depth_cap() {
        let deep = "[".repeat(33) + &"]".repeat(33);
        assert!(check_depth(deep.as_bytes(), "t").is_err());
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(check_depth(ok.as_bytes(), "t").is_ok());
        assert!(check_depth(br#"["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]"#, "t").is_ok());
    }

    /// Spans of the whole-payload parser, normalized.
    fn whole(bytes: &[u8]) -> Vec<crate::trace::Span> {
        let parsed = parse(bytes, "t").unwrap();
        crate::trace::normalize_events(parsed.events)
            .parts
            .into_iter()
            .flatten()
            .collect()
    }

    fn same_spans(a: &crate::trace::SpanBatch, b: &[crate::trace::Span]) {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            assert_eq!((&a.event, &a.template, a.params), (&b.event, &b.template, b.params));
        }
    }

    #[test]
    fn block_readers_give_the_whole_parse() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/");
        for (file, format) in [
            ("jaeger_export.json", Format::Jaeger),
            ("zipkin_export.json", Format::Zipkin),
        ] {
            let bytes = std::fs::read(format!("{root}{file}")).unwrap();
            let (spans, stats) = json_spans(format, &bytes, "t").unwrap();
            assert_eq!(stats, parse(&bytes, "t").unwrap().stats, "{file}");
            assert!(!spans.is_empty(), "{file}");
            same_spans(&spans, &whole(&bytes));
        }
        // OTLP/JSON: several requests in a row, blocks of several services.
        let demo: Vec<SpanEvent> = serde_json::from_str(include_str!("../../../examples/demo-traces.json")).unwrap();
        let (first, second) = demo.split_at(demo.len() / 2);
        let mut bytes = Vec::new();
        for part in [first, second] {
            let request = otlp::request_from_events(part);
            bytes.extend(serde_json::to_vec(&request).unwrap());
            bytes.push(b'\n');
        }
        let (spans, stats) = json_spans(Format::OtlpJson, &bytes, "t").unwrap();
        assert_eq!(stats, parse(&bytes, "t").unwrap().stats);
        assert_eq!(spans.len(), demo.len());
        same_spans(&spans, &whole(&bytes));
    }

    #[test]
    fn block_readers_refuse_what_the_whole_parse_refuses() {
        for (format, input) in [
            (Format::Jaeger, &br#"{"traces": []}"#[..]),
            (Format::Jaeger, br#"{"data": [], "data": []}"#),
            (Format::Jaeger, br#"{"data": null}"#),
            (Format::Zipkin, br#"[{"traceId": "a"}]"#),
            (Format::Zipkin, br#"[] []"#),
            (Format::OtlpJson, br#"{"resourceSpans": [], "resourceSpans": []}"#),
            (Format::OtlpJson, br#"{"resourceSpans": [{"scopeSpans": 3}]}"#),
            (Format::OtlpJson, br#"{"resourceSpans": []} x"#),
            (Format::OtlpJson, b"{\"resourceSpans\": [], \"x\": \"\xff\"}"),
            (Format::Jaeger, br#"{}"#),
            (Format::Jaeger, br#"{"data": [], "total": tru}"#),
            (Format::Jaeger, br#"{"data": [], "total": 1,}"#),
            (Format::Jaeger, br#"{data: []}"#),
            (Format::Jaeger, br#"{"data" []}"#),
            (Format::Jaeger, br#"{"d\u0061ta": [], "data": []}"#),
            (Format::Jaeger, br#"{"data": []} {"data": []}"#),
            (Format::Jaeger, br#"{"data": [1]}"#),
            // Not OTLP/JSON: a request written as an array of its fields,
            // which serde alone would take.
            (Format::OtlpJson, br#"{"resourceSpans": []}[[]]"#),
            // Found by fuzzing: the same for a Jaeger export.
            (Format::Jaeger, br#"[[]]"#),
        ] {
            let text = String::from_utf8_lossy(input);
            assert!(parse_format(format, input, "t").is_err(), "{text}");
            let e = json_spans(format, input, "t").map(|_| ()).unwrap_err().to_string();
            assert!(e.starts_with("t: "), "{text}: {e}");
        }
        // Taken by both: an escaped key, other keys of every kind around the
        // blocks, requests with no resourceSpans.
        for (format, input) in [
            (
                Format::Jaeger,
                &br#"{"total": {"a": [1, "]"]}, "d\u0061ta": [], "errors": null}"#[..],
            ),
            (Format::OtlpJson, br#"{}{"resourceSpans": []} {"x": "}"}"#),
            // Found by fuzzing: a byte-order mark.
            (Format::Zipkin, b"\xEF\xBB\xBF[]"),
            (Format::OtlpJson, b"\xEF\xBB\xBF{}"),
            (Format::OtlpJson, b""),
            (Format::OtlpJson, b" \n"),
        ] {
            let text = String::from_utf8_lossy(input);
            assert!(parse_format(format, input, "t").is_ok(), "{text}");
            assert!(json_spans(format, input, "t").is_ok(), "{text}");
        }
    }

    #[test]
    fn errors_name_origin_and_position() {
        let e = parse(b"[{\"timestamp\": 3}]", "f.json").unwrap_err().to_string();
        assert!(
            e.starts_with("f.json: line 1, column 16: invalid native event array input"),
            "{e}"
        );
        let e = parse(b"[{\"timestamp\": \"x\"", "f.json").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
