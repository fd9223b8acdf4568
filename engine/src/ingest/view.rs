//! An OTLP trace request read in place: the fields the mapping uses, as
//! slices of the request's bytes.
//!
//! prost decodes a request into owned messages: a `String` for every
//! attribute key and value, a `Vec` for every span's attributes, events and
//! links. The mapping then keeps a few of those strings per span. [`decode`]
//! instead walks the protobuf once and records, per span, its ids, name,
//! times and attributes as borrowed slices, all spans' attributes in one
//! vector: a request costs a handful of allocations, whatever its size.
//!
//! What it reads, it checks as prost does: wire types, lengths, varints,
//! UTF-8 of every string it keeps (text values, span and scope names), and
//! the merge rules of protobuf (a repeated message field
//! adds up, a repeated scalar keeps its last value, an attribute's value
//! keeps the last variant set). A request prost decodes gives the same view
//! as [`from_request`] of prost's message. Fields it does not read (span
//! events and links, trace state, schema URLs, array and map values) are
//! skipped by their wire type and length without looking inside them, and
//! attribute keys are compared as bytes with the keys the mapping knows
//! (all ASCII), so one that is not UTF-8 is never matched rather than
//! refused.
//!
//! JSON requests are decoded by serde into prost's messages; [`from_request`]
//! and [`from_block`] view those, so that one mapping serves both.

use std::ops::Range;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// Group nesting accepted in a skipped field, as prost's recursion limit.
const MAX_DEPTH: usize = 100;

/// The value of an attribute, as far as the mapping reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    /// No value, or an `AnyValue` with no variant set.
    Absent,
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// An array, a map, bytes or a string-table index.
    Other,
}

/// A key and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Attr<'a> {
    /// The key's bytes: compared with the keys the mapping looks for, which
    /// are ASCII, so a key that is not UTF-8 is never matched.
    pub key: &'a [u8],
    pub value: Value<'a>,
}

/// One span: ids, name, times and a range of [`Request::attrs`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attrs: Range<usize>,
    /// Index of its scope in [`Request::scopes`].
    pub scope: usize,
}

/// One `scope_spans` entry: the scope's name and a range of [`Request::spans`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scope<'a> {
    pub name: &'a str,
    pub spans: Range<usize>,
}

/// One `resource_spans` entry: ranges of [`Request::resource_attrs`] and
/// [`Request::scopes`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub resource_attrs: Range<usize>,
    pub scopes: Range<usize>,
}

/// A request's blocks, scopes, spans and attributes, in input order.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Request<'a> {
    pub blocks: Vec<Block>,
    pub scopes: Vec<Scope<'a>>,
    pub spans: Vec<Span<'a>>,
    pub attrs: Vec<Attr<'a>>,
    pub resource_attrs: Vec<Attr<'a>>,
}

impl<'a> Request<'a> {
    /// The spans of `block`.
    pub fn block_spans(&self, block: &Block) -> &[Span<'a>] {
        let first = self.scopes[block.scopes.clone()].first().map_or(0, |s| s.spans.start);
        let end = self.scopes[block.scopes.clone()].last().map_or(0, |s| s.spans.end);
        &self.spans[first..end]
    }

    /// The attributes of `span`.
    pub fn span_attrs(&self, span: &Span<'a>) -> &[Attr<'a>] {
        &self.attrs[span.attrs.clone()]
    }
}

/// Where a request stopped making sense: a byte offset into it and what
/// was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.what)
    }
}

/// A [`DecodeError`] as the reader passes it on: one pointer, so that
/// every field read returns its value in registers.
type Fail = Box<DecodeError>;

/// Reads a binary `ExportTraceServiceRequest` in place.
pub(crate) fn decode(bytes: &[u8]) -> Result<Request<'_>, DecodeError> {
    read_request(bytes).map_err(|e| *e)
}

fn read_request(bytes: &[u8]) -> Result<Request<'_>, Fail> {
    // Sized from the request, on the generous side: a span with a few
    // attributes takes 150 to 300 bytes, an attribute 30 to 60, a
    // `resource_spans` block a few kilobytes. Each doubling of a guess too
    // low copies everything read so far (a tenth of the decoding with the
    // old guesses of 512 and 96 bytes); a guess too high costs at most about
    // twice the request's size for as long as it is read, most of it never
    // touched.
    let mut out = Request {
        blocks: Vec::with_capacity(bytes.len() / 2048 + 1),
        scopes: Vec::with_capacity(bytes.len() / 2048 + 1),
        spans: Vec::with_capacity(bytes.len() / 160),
        attrs: Vec::with_capacity(bytes.len() / 40),
        resource_attrs: Vec::with_capacity(bytes.len() / 1024 + 1),
    };
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        base: 0,
    };
    while let Some((field, wire, at)) = r.key()? {
        match field {
            1 => {
                let block = r.message(wire, at, "ExportTraceServiceRequest.resource_spans")?;
                read_block(&mut out, block)?;
            }
            _ => r.skip(field, wire, at, 0)?,
        }
    }
    Ok(out)
}

fn read_block<'a>(out: &mut Request<'a>, mut r: Reader<'a>) -> Result<(), Fail> {
    let attrs_start = out.resource_attrs.len();
    let scopes_start = out.scopes.len();
    while let Some((field, wire, at)) = r.key()? {
        match field {
            1 => {
                let mut res = r.message(wire, at, "ResourceSpans.resource")?;
                while let Some((field, wire, at)) = res.key()? {
                    match field {
                        1 => {
                            let attr = read_attr(res.message(wire, at, "Resource.attributes")?)?;
                            out.resource_attrs.push(attr);
                        }
                        _ => res.skip(field, wire, at, 0)?,
                    }
                }
            }
            2 => {
                let scope = r.message(wire, at, "ResourceSpans.scope_spans")?;
                read_scope(out, scope)?;
            }
            _ => r.skip(field, wire, at, 0)?,
        }
    }
    out.blocks.push(Block {
        resource_attrs: attrs_start..out.resource_attrs.len(),
        scopes: scopes_start..out.scopes.len(),
    });
    Ok(())
}

fn read_scope<'a>(out: &mut Request<'a>, mut r: Reader<'a>) -> Result<(), Fail> {
    let index = out.scopes.len();
    let spans_start = out.spans.len();
    let mut name = "";
    while let Some((field, wire, at)) = r.key()? {
        match field {
            1 => {
                let mut scope = r.message(wire, at, "ScopeSpans.scope")?;
                while let Some((field, wire, at)) = scope.key()? {
                    match field {
                        1 => name = scope.string(wire, at, "InstrumentationScope.name")?,
                        _ => scope.skip(field, wire, at, 0)?,
                    }
                }
            }
            2 => {
                let span = r.message(wire, at, "ScopeSpans.spans")?;
                let span = read_span(out, index, span)?;
                out.spans.push(span);
            }
            _ => r.skip(field, wire, at, 0)?,
        }
    }
    out.scopes.push(Scope {
        name,
        spans: spans_start..out.spans.len(),
    });
    Ok(())
}

fn read_span<'a>(out: &mut Request<'a>, scope: usize, mut r: Reader<'a>) -> Result<Span<'a>, Fail> {
    let attrs_start = out.attrs.len();
    let mut span = Span {
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        name: "",
        start_time_unix_nano: 0,
        end_time_unix_nano: 0,
        attrs: 0..0,
        scope,
    };
    while let Some((field, wire, at)) = r.key()? {
        match field {
            1 => span.trace_id = r.bytes(wire, at, "Span.trace_id")?,
            2 => span.span_id = r.bytes(wire, at, "Span.span_id")?,
            4 => span.parent_span_id = r.bytes(wire, at, "Span.parent_span_id")?,
            5 => span.name = r.string(wire, at, "Span.name")?,
            7 => span.start_time_unix_nano = r.fixed64(wire, at, "Span.start_time_unix_nano")?,
            8 => span.end_time_unix_nano = r.fixed64(wire, at, "Span.end_time_unix_nano")?,
            9 => {
                let attr = read_attr(r.message(wire, at, "Span.attributes")?)?;
                out.attrs.push(attr);
            }
            _ => r.skip(field, wire, at, 0)?,
        }
    }
    span.attrs = attrs_start..out.attrs.len();
    Ok(span)
}

fn read_attr(r: Reader<'_>) -> Result<Attr<'_>, Fail> {
    match plain_attr(r.buf) {
        Some(attr) => Ok(attr),
        None => read_attr_fields(r),
    }
}

/// A `KeyValue` read field by field, as protobuf allows it to be written.
fn read_attr_fields(mut r: Reader<'_>) -> Result<Attr<'_>, Fail> {
    let mut attr = Attr {
        key: &[],
        value: Value::Absent,
    };
    while let Some((field, wire, at)) = r.key()? {
        match field {
            1 => attr.key = r.bytes(wire, at, "KeyValue.key")?,
            2 => {
                // A repeated message field merges: a variant set in the
                // second occurrence replaces the first's; none keeps it.
                let mut v = r.message(wire, at, "KeyValue.value")?;
                while let Some((field, wire, at)) = v.key()? {
                    attr.value = match field {
                        1 => Value::Str(v.string(wire, at, "AnyValue.string_value")?),
                        2 => Value::Bool(v.varint_field(wire, at, "AnyValue.bool_value")? != 0),
                        3 => Value::Int(v.varint_field(wire, at, "AnyValue.int_value")? as i64),
                        4 => Value::Double(f64::from_bits(v.fixed64(wire, at, "AnyValue.double_value")?)),
                        // Arrays, maps and bytes are not looked into.
                        5..=7 => v.bytes(wire, at, "AnyValue").map(|_| Value::Other)?,
                        8 => v
                            .varint_field(wire, at, "AnyValue.string_value_strindex")
                            .map(|_| Value::Other)?,
                        _ => {
                            v.skip(field, wire, at, 0)?;
                            continue;
                        }
                    };
                }
            }
            _ => r.skip(field, wire, at, 0)?,
        }
    }
    Ok(attr)
}

/// An attribute as exporters write it: its key, then at most one value
/// holding at most one text, integer or boolean, nothing else. Read with
/// a few byte comparisons; anything else (another field, a repeated one, a
/// double, an array, a text that is not UTF-8, a length past the end)
/// gives `None` and goes through [`read_attr`]'s general reading, which
/// gives the same attribute or the error. Attributes are most of a
/// request's fields.
#[inline]
fn plain_attr(buf: &[u8]) -> Option<Attr<'_>> {
    const KEY: u8 = 1 << 3 | LEN;
    const VALUE: u8 = 2 << 3 | LEN;
    const STRING: u8 = 1 << 3 | LEN;
    const BOOL: u8 = 2 << 3 | VARINT;
    const INT: u8 = 3 << 3 | VARINT;
    let (key, rest) = len_field(buf, KEY)?;
    if rest.is_empty() {
        return Some(Attr {
            key,
            value: Value::Absent,
        });
    }
    let (v, rest) = len_field(rest, VALUE)?;
    if !rest.is_empty() {
        return None;
    }
    let value = match v.first() {
        None => Value::Absent,
        Some(&STRING) => match len_field(v, STRING)? {
            (text, []) => Value::Str(std::str::from_utf8(text).ok()?),
            _ => return None,
        },
        Some(&tag @ (BOOL | INT)) => match varint(&v[1..]) {
            Ok((n, len)) if 1 + len == v.len() => match tag {
                BOOL => Value::Bool(n != 0),
                _ => Value::Int(n as i64),
            },
            _ => return None,
        },
        Some(_) => return None,
    };
    Some(Attr { key, value })
}

/// A length-delimited field with the one-byte key `tag` at the start of
/// `buf`: its bytes and what follows them.
#[inline(always)]
fn len_field(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = buf.split_first()?;
    if first != tag {
        return None;
    }
    let (len, n) = varint(rest).ok()?;
    let rest = &rest[n..];
    let len = usize::try_from(len).ok().filter(|&l| l <= rest.len())?;
    Some(rest.split_at(len))
}

/// Why a varint could not be read.
pub(super) enum Varint {
    /// The bytes end inside it.
    Truncated,
    /// Its tenth byte is past the 64 bits.
    Invalid,
}

/// A base-128 varint of at most ten bytes at the start of `buf`, as prost
/// reads it, and its length.
#[inline]
pub(super) fn varint(buf: &[u8]) -> Result<(u64, usize), Varint> {
    if let Some(&b) = buf.first()
        && b < 0x80
    {
        return Ok((u64::from(b), 1));
    }
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(10).enumerate() {
        if i == 9 && b > 1 {
            return Err(Varint::Invalid);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(Varint::Invalid)
    } else {
        Err(Varint::Truncated)
    }
}

/// A cursor over one message's bytes; `base` is the message's offset in the
/// whole request, for errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const GROUP_START: u8 = 3;
const GROUP_END: u8 = 4;
const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    #[cold]
    #[inline(never)]
    fn error(&self, at: usize, what: impl Into<String>) -> Fail {
        Box::new(DecodeError {
            offset: self.base + at,
            what: what.into(),
        })
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Fail> {
        // Keys and short lengths are one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, Fail> {
        match varint(&self.buf[self.pos..]) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(Varint::Truncated) => Err(self.error(self.pos, "a varint runs past the end of its message")),
            Err(Varint::Invalid) => Err(self.error(self.pos, "invalid varint")),
        }
    }

    /// The next field's number, wire type and offset, or `None` at the end
    /// of the message.
    #[inline]
    fn key(&mut self) -> Result<Option<(u32, u8, usize)>, Fail> {
        let at = self.pos;
        let Some(&b) = self.buf.get(at) else {
            return Ok(None);
        };
        // Fields 1 to 15 have one-byte keys: nothing more to check.
        if (8..0x80).contains(&b) {
            self.pos += 1;
            return Ok(Some((u32::from(b >> 3), b & 7, at)));
        }
        self.long_key(at)
    }

    #[inline(never)]
    fn long_key(&mut self, at: usize) -> Result<Option<(u32, u8, usize)>, Fail> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || key > u64::from(u32::MAX) {
            return Err(self.error(at, format!("invalid field number {field}")));
        }
        Ok(Some((field as u32, (key & 7) as u8, at)))
    }

    #[inline(always)]
    fn wire(&self, wire: u8, want: u8, at: usize, name: &str) -> Result<(), Fail> {
        if wire == want {
            return Ok(());
        }
        Err(self.error(at, format!("{name} has wire type {wire}, expected {want}")))
    }

    /// `n` bytes past the cursor, for the field whose key is at `at`.
    #[inline(always)]
    fn take(&mut self, n: usize, at: usize, name: &str) -> Result<&'a [u8], Fail> {
        let rest = self.buf.len() - self.pos;
        if n > rest {
            return Err(self.error(at, format!("{name} runs past the end of its message")));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    #[inline(always)]
    fn bytes(&mut self, wire: u8, at: usize, name: &str) -> Result<&'a [u8], Fail> {
        self.wire(wire, LEN, at, name)?;
        let len = self.varint()?;
        self.take(usize::try_from(len).unwrap_or(usize::MAX), at, name)
    }

    /// A reader of a nested message.
    #[inline(always)]
    fn message(&mut self, wire: u8, at: usize, name: &str) -> Result<Reader<'a>, Fail> {
        let buf = self.bytes(wire, at, name)?;
        Ok(Reader {
            buf,
            pos: 0,
            base: self.base + self.pos - buf.len(),
        })
    }

    #[inline(always)]
    fn string(&mut self, wire: u8, at: usize, name: &str) -> Result<&'a str, Fail> {
        let bytes = self.bytes(wire, at, name)?;
        std::str::from_utf8(bytes).map_err(|e| self.error(at, format!("{name} is not UTF-8: {e}")))
    }

    #[inline]
    fn fixed64(&mut self, wire: u8, at: usize, name: &str) -> Result<u64, Fail> {
        self.wire(wire, FIXED64, at, name)?;
        let b = self.take(8, at, name)?;
        Ok(u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }

    fn varint_field(&mut self, wire: u8, at: usize, name: &str) -> Result<u64, Fail> {
        self.wire(wire, VARINT, at, name)?;
        self.varint()
    }

    /// Skips the value of a field the mapping does not read.
    fn skip(&mut self, field: u32, wire: u8, at: usize, depth: usize) -> Result<(), Fail> {
        match wire {
            VARINT => {
                self.varint()?;
            }
            FIXED64 => {
                self.take(8, at, "a 64-bit field")?;
            }
            LEN => {
                let len = self.varint()?;
                self.take(usize::try_from(len).unwrap_or(usize::MAX), at, "a field")?;
            }
            FIXED32 => {
                self.take(4, at, "a 32-bit field")?;
            }
            GROUP_START => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(at, "groups nested too deeply"));
                }
                loop {
                    let Some((inner, wire, inner_at)) = self.key()? else {
                        return Err(self.error(at, format!("group of field {field} has no end")));
                    };
                    if wire == GROUP_END {
                        if inner == field {
                            return Ok(());
                        }
                        return Err(self.error(inner_at, format!("end of group {inner} inside group {field}")));
                    }
                    self.skip(inner, wire, inner_at, depth + 1)?;
                }
            }
            _ => return Err(self.error(at, format!("unexpected wire type {wire} for field {field}"))),
        }
        Ok(())
    }
}

/// Views a request prost decoded (from JSON or protobuf).
pub(crate) fn from_request(req: &ExportTraceServiceRequest) -> Request<'_> {
    let mut out = Request::default();
    for block in &req.resource_spans {
        push_block(&mut out, block);
    }
    out
}

/// Views one `resource_spans` entry prost decoded.
pub(crate) fn from_block(block: &ResourceSpans) -> Request<'_> {
    let mut out = Request::default();
    push_block(&mut out, block);
    out
}

fn push_block<'a>(out: &mut Request<'a>, rs: &'a ResourceSpans) {
    let attrs_start = out.resource_attrs.len();
    let scopes_start = out.scopes.len();
    if let Some(resource) = &rs.resource {
        out.resource_attrs.extend(resource.attributes.iter().map(attr_of));
    }
    for ss in &rs.scope_spans {
        let scope = out.scopes.len();
        let spans_start = out.spans.len();
        for sp in &ss.spans {
            let start = out.attrs.len();
            out.attrs.extend(sp.attributes.iter().map(attr_of));
            out.spans.push(Span {
                trace_id: &sp.trace_id,
                span_id: &sp.span_id,
                parent_span_id: &sp.parent_span_id,
                name: &sp.name,
                start_time_unix_nano: sp.start_time_unix_nano,
                end_time_unix_nano: sp.end_time_unix_nano,
                attrs: start..out.attrs.len(),
                scope,
            });
        }
        out.scopes.push(Scope {
            name: ss.scope.as_ref().map_or("", |s| s.name.as_str()),
            spans: spans_start..out.spans.len(),
        });
    }
    out.blocks.push(Block {
        resource_attrs: attrs_start..out.resource_attrs.len(),
        scopes: scopes_start..out.scopes.len(),
    });
}

fn attr_of(kv: &KeyValue) -> Attr<'_> {
    use any_value::Value as V;
    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        None => Value::Absent,
        Some(V::StringValue(s)) => Value::Str(s),
        Some(V::IntValue(i)) => Value::Int(*i),
        Some(V::DoubleValue(d)) => Value::Double(*d),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(_) => Value::Other,
    };
    Attr {
        key: kv.key.as_bytes(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span as PbSpan, Status, span::Event};
    use proptest::prelude::*;
    use prost::Message as _;

    /// What prost makes of `bytes`, viewed; `None` if prost refuses them.
    fn prost_view(bytes: &[u8]) -> Option<ExportTraceServiceRequest> {
        ExportTraceServiceRequest::decode(bytes).ok()
    }

    /// The view of `bytes` is what prost decodes, viewed, whenever prost
    /// accepts them.
    fn agrees_with_prost(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Some(req) = prost_view(bytes) {
            prop_assert_eq!(decode(bytes), Ok(from_request(&req)));
        }
        Ok(())
    }

    fn value() -> impl Strategy<Value = Option<AnyValue>> {
        use any_value::Value as V;
        prop_oneof![
            Just(None),
            Just(Some(AnyValue { value: None })),
            "[a-z=é\u{200b} ]{0,6}".prop_map(|s| Some(AnyValue {
                value: Some(V::StringValue(s))
            })),
            any::<i64>().prop_map(|i| Some(AnyValue {
                value: Some(V::IntValue(i))
            })),
            any::<f64>().prop_map(|d| Some(AnyValue {
                value: Some(V::DoubleValue(d))
            })),
            any::<bool>().prop_map(|b| Some(AnyValue {
                value: Some(V::BoolValue(b))
            })),
            Just(Some(AnyValue {
                value: Some(V::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(V::IntValue(1))
                    }],
                })),
            })),
            Just(Some(AnyValue {
                value: Some(V::BytesValue(vec![0xff, 0]))
            })),
        ]
    }

    fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        let key = prop_oneof![
            Just("service.name"),
            Just("db.statement"),
            Just("http.url"),
            Just("http.route"),
            Just("db.query.parameter.id"),
            Just(""),
            Just("x"),
        ];
        proptest::collection::vec(
            (key, value()).prop_map(|(k, value)| KeyValue {
                key: k.to_owned(),
                value,
                ..Default::default()
            }),
            0..4,
        )
    }

    fn span() -> impl Strategy<Value = PbSpan> {
        let id = proptest::collection::vec(0u8..3, 0..3);
        (
            id.clone(),
            id.clone(),
            id,
            "[a-zA-Z /]{0,8}",
            any::<u64>(),
            any::<u64>(),
            attrs(),
            attrs(),
            any::<bool>(),
        )
            .prop_map(
                |(trace_id, span_id, parent_span_id, name, start, end, attributes, event_attrs, status)| PbSpan {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes,
                    trace_state: "k=v".to_owned(),
                    events: vec![Event {
                        name: "e".to_owned(),
                        attributes: event_attrs,
                        ..Default::default()
                    }],
                    status: status.then(|| Status {
                        message: "m".to_owned(),
                        code: 2,
                    }),
                    kind: 3,
                    flags: 1,
                    ..Default::default()
                },
            )
    }

    fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
        let scope = (
            proptest::option::of("[a-z.]{0,6}"),
            proptest::collection::vec(span(), 0..4),
        )
            .prop_map(|(name, spans)| ScopeSpans {
                scope: name.map(|name| InstrumentationScope {
                    name,
                    version: "1".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: "s".to_owned(),
            });
        let block = (proptest::option::of(attrs()), proptest::collection::vec(scope, 0..3)).prop_map(
            |(resource, scope_spans)| ResourceSpans {
                resource: resource.map(|attributes| Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans,
                schema_url: String::new(),
            },
        );
        proptest::collection::vec(block, 0..3).prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn views_what_prost_decodes(req in request()) {
            let bytes = req.encode_to_vec();
            prop_assert_eq!(decode(&bytes), Ok(from_request(&req)));
        }

        /// Two requests one after the other are one request (protobuf
        /// merging); any byte changed, or the bytes cut short, either both
        /// readers refuse or both read the same.
        #[test]
        fn agrees_with_prost_on_changed_bytes(
            a in request(),
            b in request(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = a.encode_to_vec();
            bytes.extend(b.encode_to_vec());
            agrees_with_prost(&bytes)?;
            if !bytes.is_empty() {
                let mut changed = bytes.clone();
                changed[at.index(bytes.len())] = byte;
                agrees_with_prost(&changed)?;
                agrees_with_prost(&bytes[..cut.index(bytes.len())])?;
            }
        }
    }

    /// Wraps `body` as field `field` of a message (length-delimited).
    fn field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    fn text(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.to_owned())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_message_given_twice_is_merged_as_prost_merges_it() {
        let first = PbSpan {
            span_id: vec![1],
            name: "first".to_owned(),
            attributes: vec![text("a", "1")],
            ..Default::default()
        };
        let second = PbSpan {
            span_id: vec![2],
            attributes: vec![text("b", "2")],
            ..Default::default()
        };
        // One span whose fields come in two runs; the last name and ids win,
        // the attributes add up.
        let mut span = first.encode_to_vec();
        span.extend(second.encode_to_vec());
        // An attribute whose value is given twice, the second empty: the
        // first value stays.
        let mut kv = text("c", "3").encode_to_vec();
        kv.extend(field(2, &[]));
        span.extend(field(9, &kv));
        // A scope message after the spans, and a second one without a name.
        let mut scope_spans = field(2, &span);
        scope_spans.extend(field(1, &field(1, b"lib")));
        scope_spans.extend(field(1, &field(2, b"1.0")));
        // The resource given twice, around the scope.
        let mut block = field(1, &field(1, &text("service.name", "one").encode_to_vec()));
        block.extend(field(2, &scope_spans));
        block.extend(field(1, &field(1, &text("cloud.region", "eu").encode_to_vec())));
        let bytes = field(1, &block);

        let view = decode(&bytes).expect("a valid request");
        let req = prost_view(&bytes).expect("prost reads it");
        assert_eq!(view, from_request(&req));
        let span = &view.spans[0];
        assert_eq!((span.span_id, span.name), (&[2u8][..], "first"));
        let keys: Vec<_> = view.span_attrs(span).iter().map(|a| (a.key, a.value)).collect();
        let want: [(&[u8], _); 3] = [
            (b"a", Value::Str("1")),
            (b"b", Value::Str("2")),
            (b"c", Value::Str("3")),
        ];
        assert_eq!(keys, want);
        assert_eq!(view.scopes[0].name, "lib");
        assert_eq!(view.resource_attrs.len(), 2);
    }

    #[test]
    fn what_is_read_is_checked_and_the_error_says_where() {
        let name = field(5, b"\xff");
        let bytes = field(1, &field(2, &field(2, &name)));
        assert!(prost_view(&bytes).is_none());
        let e = decode(&bytes).expect_err("a name that is not UTF-8");
        assert_eq!(e.offset, 6, "{e}");
        assert!(e.to_string().contains("Span.name is not UTF-8"), "{e}");

        // A start time sent as a varint.
        let bytes = field(1, &field(2, &field(2, &[7 << 3, 1])));
        assert!(prost_view(&bytes).is_none());
        let e = decode(&bytes).expect_err("wrong wire type");
        assert!(
            e.to_string()
                .contains("Span.start_time_unix_nano has wire type 0, expected 1"),
            "{e}"
        );

        // A length past the end of the enclosing message, not of the input.
        let mut inner = field(9, b"\x0a\x05ab");
        inner.extend(b"cdef");
        let bytes = field(1, &field(2, &field(2, &inner)));
        assert!(prost_view(&bytes).is_none());
        assert!(
            decode(&bytes)
                .expect_err("overrun")
                .what
                .contains("KeyValue.key runs past")
        );
    }

    #[test]
    fn plain_attributes_read_as_the_general_reading_reads_them() {
        // Attributes assembled from pieces, some of them damaged: whatever
        // the short reading accepts, the field-by-field reading gives too.
        let mut cases = crate::testing::Cases::new(11);
        let mut taken = 0;
        for _ in 0..50_000 {
            let pick = |cases: &mut crate::testing::Cases, n: u64| cases.below(n) as usize;
            let text = |cases: &mut crate::testing::Cases| -> Vec<u8> {
                let pool: [&[u8]; 5] = [b"", b"db.statement", b"SELECT 1", &[0xc3, 0xa9], &[0xff, b'a']];
                pool[pick(cases, 5)].to_vec()
            };
            let field = |tag: u8, body: &[u8]| {
                let mut out = vec![tag];
                prost::encoding::encode_varint(body.len() as u64, &mut out);
                out.extend(body);
                out
            };
            let mut buf = Vec::new();
            for _ in 0..1 + pick(&mut cases, 3) {
                match pick(&mut cases, 4) {
                    0 | 1 => buf.extend(field(0x0a, &text(&mut cases))),
                    2 => {
                        let mut value = Vec::new();
                        for _ in 0..pick(&mut cases, 3) {
                            match pick(&mut cases, 5) {
                                0 => value.extend(field(0x0a, &text(&mut cases))),
                                1 => value.extend([0x10, pick(&mut cases, 3) as u8]),
                                2 => {
                                    value.push(0x18);
                                    prost::encoding::encode_varint(cases.below(u64::MAX), &mut value);
                                }
                                3 => value.extend([0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]),
                                _ => value.extend(field(0x2a, b"\x0a\x00")),
                            }
                        }
                        buf.extend(field(0x12, &value));
                    }
                    _ => buf.extend([0x18, 0x01]),
                }
            }
            if !buf.is_empty() && pick(&mut cases, 4) == 0 {
                let at = pick(&mut cases, buf.len() as u64);
                buf[at] = cases.below(256) as u8;
            }
            if pick(&mut cases, 8) == 0 {
                buf.truncate(pick(&mut cases, buf.len() as u64 + 1));
            }
            if let Some(attr) = plain_attr(&buf) {
                taken += 1;
                let general = read_attr_fields(Reader {
                    buf: &buf,
                    pos: 0,
                    base: 0,
                });
                assert_eq!(general.ok(), Some(attr), "{buf:x?}");
            }
        }
        assert!(taken > 5_000, "{taken}");
    }

    #[test]
    fn fields_it_does_not_read_are_skipped_whole() {
        // A span event whose name is not UTF-8: prost refuses the request,
        // the view skips the event without looking inside it.
        let span = [field(5, b"ok"), field(11, &field(2, b"\xff"))].concat();
        let bytes = field(1, &field(2, &field(2, &span)));
        assert!(prost_view(&bytes).is_none());
        let view = decode(&bytes).expect("the event is not read");
        assert_eq!(view.spans[0].name, "ok");
        // An attribute key that is not UTF-8 is kept as bytes, matched by
        // no key the mapping looks for.
        let bytes = field(1, &field(2, &field(2, &field(9, &field(1, b"db.\xff")))));
        assert!(prost_view(&bytes).is_none());
        assert_eq!(decode(&bytes).expect("keys are bytes").attrs[0].key, b"db.\xff");
        // Unknown fields of every wire type, a group included.
        let mut unknown: Vec<u8> = vec![15 << 3, 1, 14 << 3 | 1];
        unknown.extend([0; 8]);
        unknown.extend([13 << 3 | 5, 0, 0, 0, 0, 12 << 3 | 3, 11 << 3, 7, 12 << 3 | 4]);
        let bytes = [
            field(1, &[unknown.clone(), field(2, &field(2, &span))].concat()),
            unknown,
        ]
        .concat();
        assert_eq!(decode(&bytes).expect("unknown fields skipped").spans.len(), 1);
    }
}
