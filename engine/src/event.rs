//! The span event: one SQL query or outbound HTTP call, whatever format it came in.
//!
//! The native trace-file format is a JSON array of these objects, so the field
//! names, their order and their optionality are a compatibility contract
//! (spec 01 §2). Absent optional fields are omitted on output.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What kind of I/O a span performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A database statement; `target` holds the SQL text.
    Sql,
    /// An outbound HTTP call; `target` holds the URL or path.
    HttpOut,
}

impl EventKind {
    /// The spelling used in trace files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Sql => "sql",
            EventKind::HttpOut => "http_out",
        }
    }
}

/// The inbound request and the code that caused an I/O operation.
///
/// Events own their strings; normalized spans share them (`EventSource<Arc<str>>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource<S = String> {
    /// Inbound route that caused the I/O, e.g. `GET /invoices/{id}`.
    pub endpoint: S,
    /// Code-level caller (informational).
    pub method: S,
}

/// One I/O span, in the native event format.
///
/// Events read from files own their strings (`SpanEvent<String>`, the
/// default). A mapper that reads from a buffer it keeps, as the daemon does
/// with a decoded OTLP request, can borrow them instead
/// (`SpanEvent<Cow<str>>`): normalization copies only what the span keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent<S = String> {
    /// Span start, ISO-8601 UTC, canonically `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub timestamp: S,
    pub trace_id: S,
    pub span_id: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<S>,
    pub service: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_region: Option<S>,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// SQL: database system or verb; HTTP: the request method.
    pub operation: S,
    /// SQL text, or HTTP URL or path.
    pub target: S,
    pub duration_us: u64,
    pub source: EventSource<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_function: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_filepath: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_lineno: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_namespace: Option<S>,
    /// OpenTelemetry instrumentation scope names, leaf first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instrumentation_scopes: Vec<S>,
    /// Span start in nanoseconds since the epoch, at the precision the input
    /// had (OTLP: nanoseconds; Jaeger and Zipkin: microseconds). Native files
    /// carry it in `timestamp` only, so it is derived from there.
    #[serde(skip)]
    pub start_unix_nanos: Option<i64>,
    /// Bound values of a parameterized statement, when the instrumentation
    /// captured them (`db.statement.parameters`, `db.query.parameter.<key>`).
    /// Normalization folds them into the parameter digest and drops them.
    #[serde(skip)]
    pub db_parameters: Vec<S>,
}

/// Byte caps applied to every event after mapping (spec 01 §5).
mod caps {
    pub const TIMESTAMP: usize = 64;
    pub const ID: usize = 128;
    pub const NAME: usize = 256;
    pub const TARGET: usize = 65_536;
    pub const SOURCE: usize = 512;
    pub const CODE_NAME: usize = 512;
    pub const CODE_PATH: usize = 1_024;
    pub const SCOPES: usize = 8;
    pub const SCOPE: usize = 256;
    pub const REGION: usize = 64;
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    s.truncate(char_floor(s, max));
}

/// The largest character boundary of `s` at or below `max`.
fn char_floor(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// A string an event can hold: owned, or borrowed from a decoded request.
pub trait Text: AsRef<str> {
    /// Cuts the text to at most `max` bytes, on a character boundary.
    fn cut(&mut self, max: usize);
    /// The text as an inline-when-short string, reusing an owned buffer.
    fn into_compact(self) -> compact_str::CompactString;
}

impl Text for String {
    fn cut(&mut self, max: usize) {
        truncate_utf8(self, max);
    }
    fn into_compact(self) -> compact_str::CompactString {
        compact_str::CompactString::from(self)
    }
}

impl Text for Cow<'_, str> {
    fn cut(&mut self, max: usize) {
        if self.len() <= max {
            return;
        }
        let end = char_floor(self, max);
        match self {
            Cow::Borrowed(s) => *s = &s[..end],
            Cow::Owned(s) => s.truncate(end),
        }
    }
    fn into_compact(self) -> compact_str::CompactString {
        compact_str::CompactString::from(self)
    }
}

impl Text for &str {
    fn cut(&mut self, max: usize) {
        *self = &self[..char_floor(self, max)];
    }
    fn into_compact(self) -> compact_str::CompactString {
        compact_str::CompactString::from(self)
    }
}

/// Text of an event mapped from a buffer the mapper keeps (an OTLP
/// request): borrowed from it, or made for the event, as ids written in hex
/// and timestamps are. Made text up to 24 bytes is held inline, so that a
/// span id or a timestamp costs no allocation on its way to the span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventText<'a> {
    Borrowed(&'a str),
    Made(compact_str::CompactString),
}

impl AsRef<str> for EventText<'_> {
    fn as_ref(&self) -> &str {
        match self {
            EventText::Borrowed(s) => s,
            EventText::Made(s) => s,
        }
    }
}

impl std::ops::Deref for EventText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_ref()
    }
}

impl Text for EventText<'_> {
    #[inline]
    fn cut(&mut self, max: usize) {
        if self.len() <= max {
            return;
        }
        let end = char_floor(self, max);
        match self {
            EventText::Borrowed(s) => *s = &s[..end],
            EventText::Made(s) => s.truncate(end),
        }
    }
    fn into_compact(self) -> compact_str::CompactString {
        match self {
            EventText::Borrowed(s) => compact_str::CompactString::from(s),
            EventText::Made(s) => s,
        }
    }
}

impl From<EventText<'_>> for String {
    fn from(t: EventText<'_>) -> String {
        match t {
            EventText::Borrowed(s) => s.to_owned(),
            EventText::Made(s) => s.into_string(),
        }
    }
}

/// Text read from a JSON buffer: borrowed from it when the string holds no
/// escapes, owned when it does. Parsing events as `SpanEvent<InputText>`
/// from a buffer that outlives them makes no allocation for most strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputText<'a>(pub Cow<'a, str>);

impl AsRef<str> for InputText<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Text for InputText<'_> {
    fn cut(&mut self, max: usize) {
        self.0.cut(max);
    }
    fn into_compact(self) -> compact_str::CompactString {
        self.0.into_compact()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for InputText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = InputText<'de>;
            // As `String` words it, so that errors read the same.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(InputText(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(InputText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(InputText(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

fn has_control(s: &str) -> bool {
    // ASCII text, the usual case, needs no decoding: its controls are C0 and
    // DEL. Every byte is looked at (no early exit) so that the loop runs on
    // vector registers; controls are rare.
    if s.is_ascii() {
        s.bytes().fold(false, |found, b| found | (b < 0x20) | (b == 0x7f))
    } else {
        s.chars().any(char::is_control)
    }
}

/// A valid region id: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_region_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= caps::REGION && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<S: Text> SpanEvent<S> {
    /// Applies the length caps and character rules of spec 01 §5, and derives
    /// `start_unix_nanos` from `timestamp` when the source gave none.
    pub fn sanitize(&mut self) {
        self.timestamp.cut(caps::TIMESTAMP);
        self.trace_id.cut(caps::ID);
        self.span_id.cut(caps::ID);
        if let Some(p) = &mut self.parent_span_id {
            p.cut(caps::ID);
        }
        if self.cloud_region.as_ref().is_some_and(|r| !is_region_id(r.as_ref())) {
            self.cloud_region = None;
        }
        self.service.cut(caps::NAME);
        self.operation.cut(caps::NAME);
        self.target.cut(caps::TARGET);
        self.source.endpoint.cut(caps::SOURCE);
        self.source.method.cut(caps::SOURCE);
        for (field, cap) in [
            (&mut self.code_function, caps::CODE_NAME),
            (&mut self.code_namespace, caps::CODE_NAME),
            (&mut self.code_filepath, caps::CODE_PATH),
        ] {
            if field.as_ref().is_some_and(|v| has_control(v.as_ref())) {
                *field = None;
            } else if let Some(v) = field {
                v.cut(cap);
            }
        }
        self.instrumentation_scopes.retain(|s| !has_control(s.as_ref()));
        self.instrumentation_scopes.truncate(caps::SCOPES);
        for s in &mut self.instrumentation_scopes {
            s.cut(caps::SCOPE);
        }
        if self.start_unix_nanos.is_none() {
            self.start_unix_nanos = crate::time::parse_timestamp(self.timestamp.as_ref());
        }
    }
}

impl<S: AsRef<str>> SpanEvent<S> {
    /// The same event borrowing its strings from this one, so that it can
    /// be normalized without giving it up or copying it.
    pub fn as_borrowed(&self) -> SpanEvent<&str> {
        fn text<S: AsRef<str>>(s: &S) -> &str {
            s.as_ref()
        }
        SpanEvent {
            timestamp: text(&self.timestamp),
            trace_id: text(&self.trace_id),
            span_id: text(&self.span_id),
            parent_span_id: self.parent_span_id.as_ref().map(text),
            service: text(&self.service),
            cloud_region: self.cloud_region.as_ref().map(text),
            kind: self.kind,
            operation: text(&self.operation),
            target: text(&self.target),
            duration_us: self.duration_us,
            source: EventSource {
                endpoint: text(&self.source.endpoint),
                method: text(&self.source.method),
            },
            status_code: self.status_code,
            response_size_bytes: self.response_size_bytes,
            code_function: self.code_function.as_ref().map(text),
            code_filepath: self.code_filepath.as_ref().map(text),
            code_lineno: self.code_lineno,
            code_namespace: self.code_namespace.as_ref().map(text),
            instrumentation_scopes: self.instrumentation_scopes.iter().map(text).collect(),
            start_unix_nanos: self.start_unix_nanos,
            db_parameters: self.db_parameters.iter().map(text).collect(),
        }
    }
}

impl<S: Into<String>> SpanEvent<S> {
    /// The same event with every string owned.
    pub fn into_owned(self) -> SpanEvent {
        let own = |s: S| s.into();
        SpanEvent {
            timestamp: own(self.timestamp),
            trace_id: own(self.trace_id),
            span_id: own(self.span_id),
            parent_span_id: self.parent_span_id.map(own),
            service: own(self.service),
            cloud_region: self.cloud_region.map(own),
            kind: self.kind,
            operation: own(self.operation),
            target: own(self.target),
            duration_us: self.duration_us,
            source: EventSource {
                endpoint: own(self.source.endpoint),
                method: own(self.source.method),
            },
            status_code: self.status_code,
            response_size_bytes: self.response_size_bytes,
            code_function: self.code_function.map(own),
            code_filepath: self.code_filepath.map(own),
            code_lineno: self.code_lineno,
            code_namespace: self.code_namespace.map(own),
            instrumentation_scopes: self.instrumentation_scopes.into_iter().map(own).collect(),
            start_unix_nanos: self.start_unix_nanos,
            db_parameters: self.db_parameters.into_iter().map(own).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "ééé".to_string();
        truncate_utf8(&mut s, 3);
        assert_eq!(s, "é");
    }

    #[test]
    fn control_characters() {
        for (s, want) in [
            ("plain", false),
            ("tab\there", true),
            ("del\u{7f}", true),
            ("é\u{85}", true),
            ("été", false),
        ] {
            assert_eq!(has_control(s), want, "{s:?}");
        }
    }

    #[test]
    fn region_ids() {
        assert!(is_region_id("eu-west-3"));
        assert!(!is_region_id("eu west"));
        assert!(!is_region_id(""));
        assert!(!is_region_id(&"a".repeat(65)));
    }
}
