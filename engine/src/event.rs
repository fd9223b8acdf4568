//! The span event: one SQL query or outbound HTTP call, whatever format it came in.
//!
//! The native trace-file format is a JSON array of these objects, so the field
//! names, their order and their optionality are a compatibility contract
//! (spec 01 §2). Absent optional fields are omitted on output.

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// Span start, ISO-8601 UTC, canonically `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub timestamp: String,
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_region: Option<String>,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// SQL: database system or verb; HTTP: the request method.
    pub operation: String,
    /// SQL text, or HTTP URL or path.
    pub target: String,
    pub duration_us: u64,
    pub source: EventSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_filepath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_lineno: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_namespace: Option<String>,
    /// OpenTelemetry instrumentation scope names, leaf first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instrumentation_scopes: Vec<String>,
    /// Span start in nanoseconds since the epoch, at the precision the input
    /// had (OTLP: nanoseconds; Jaeger and Zipkin: microseconds). Native files
    /// carry it in `timestamp` only, so it is derived from there.
    #[serde(skip)]
    pub start_unix_nanos: Option<i64>,
    /// Bound values of a parameterized statement, when the instrumentation
    /// captured them (`db.statement.parameters`, `db.query.parameter.<key>`).
    /// Normalization folds them into the parameter digest and drops them.
    #[serde(skip)]
    pub db_parameters: Vec<String>,
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
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// A valid region id: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_region_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= caps::REGION && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SpanEvent {
    /// Applies the length caps and character rules of spec 01 §5, and derives
    /// `start_unix_nanos` from `timestamp` when the source gave none.
    pub fn sanitize(&mut self) {
        truncate_utf8(&mut self.timestamp, caps::TIMESTAMP);
        truncate_utf8(&mut self.trace_id, caps::ID);
        truncate_utf8(&mut self.span_id, caps::ID);
        if let Some(p) = &mut self.parent_span_id {
            truncate_utf8(p, caps::ID);
        }
        if self.cloud_region.as_deref().is_some_and(|r| !is_region_id(r)) {
            self.cloud_region = None;
        }
        truncate_utf8(&mut self.service, caps::NAME);
        truncate_utf8(&mut self.operation, caps::NAME);
        truncate_utf8(&mut self.target, caps::TARGET);
        truncate_utf8(&mut self.source.endpoint, caps::SOURCE);
        truncate_utf8(&mut self.source.method, caps::SOURCE);
        for (field, cap) in [
            (&mut self.code_function, caps::CODE_NAME),
            (&mut self.code_namespace, caps::CODE_NAME),
            (&mut self.code_filepath, caps::CODE_PATH),
        ] {
            if field.as_deref().is_some_and(has_control) {
                *field = None;
            } else if let Some(v) = field {
                truncate_utf8(v, cap);
            }
        }
        self.instrumentation_scopes.retain(|s| !has_control(s));
        self.instrumentation_scopes.truncate(caps::SCOPES);
        for s in &mut self.instrumentation_scopes {
            truncate_utf8(s, caps::SCOPE);
        }
        if self.start_unix_nanos.is_none() {
            self.start_unix_nanos = crate::time::parse_timestamp(&self.timestamp);
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
    fn region_ids() {
        assert!(is_region_id("eu-west-3"));
        assert!(!is_region_id("eu west"));
        assert!(!is_region_id(""));
        assert!(!is_region_id(&"a".repeat(65)));
    }
}
