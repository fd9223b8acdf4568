//! Spans sorted out to temporary files by trace id, and merged back into
//! traces: how [`SpanBatch`](crate::trace::SpanBatch) reads inputs larger
//! than it may hold.
//!
//! A batch with a budget writes its spans out each time it holds that many:
//! one *run* per write, sorted by trace id (spans of one trace keep their
//! input order) and encoded compactly, names shared by number. Reading
//! merges the runs: traces come out in trace-id order, each with its spans
//! in input order, exactly as grouping in memory makes them, while only the
//! next span of each run is held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use compact_str::CompactString;

use crate::event::{EventKind, EventSource};
use crate::normalize::{ParamDigest, statement_verb};
use crate::trace::{CodeSites, Span, SpanRecord, Trace, order_spans, same_trace_runs};

/// How many names (services, operations, templates, ...) a run's writer and
/// reader number before both start over, so that a run of distinct names
/// costs the reader no more than the spans it is reading.
const NAMES: usize = 4096;

/// Buffer of each run's writer and reader.
const BUFFER: usize = 64 * 1024;

// Bits of a span's leading flags.
const SAME_TRACE: u16 = 1;
const PARENT: u16 = 1 << 1;
const REGION: u16 = 1 << 2;
const STATUS: u16 = 1 << 3;
const RESPONSE_SIZE: u16 = 1 << 4;
const FUNCTION: u16 = 1 << 5;
const FILEPATH: u16 = 1 << 6;
const LINENO: u16 = 1 << 7;
const NAMESPACE: u16 = 1 << 8;
const START: u16 = 1 << 9;
const HOST: u16 = 1 << 10;
const VERB: u16 = 1 << 11;
const HTTP: u16 = 1 << 12;
const SAME_SCOPES: u16 = 1 << 13;

/// Spans written out to one temporary file, sorted by trace id.
#[derive(Debug)]
pub(crate) struct Run {
    file: File,
    spans: usize,
    /// How many merges the run went through: 0 when written from memory.
    pub(crate) level: u32,
}

/// How many runs of one level are merged into one of the next, so that a
/// batch keeps at most this many files open per level whatever its size
/// and budget.
pub(crate) const FAN_IN: usize = 64;

/// Writes the spans of `parts` (in input order) to a new temporary file,
/// sorted by trace id; the spans of one trace keep their order.
pub(crate) fn write_run(parts: &[Vec<Span>]) -> io::Result<Run> {
    // Spans of one trace usually lie together: the runs of them are sorted,
    // not each span. Stable, so that equal trace ids keep their input order.
    let mut segments: Vec<&[Span]> = parts.iter().flat_map(|p| same_trace_runs(p)).collect();
    segments.sort_by(|a, b| a[0].event.trace_id.cmp(&b[0].event.trace_id));
    let mut out = RunWriter::new()?;
    for span in segments.into_iter().flatten() {
        out.span(span)?;
    }
    out.finish(0)
}

/// Merges `runs` (in input order) into one run of the next level: the same
/// spans, sorted by trace id, each trace's spans in input order.
pub(crate) fn merge_runs(runs: Vec<Run>) -> io::Result<Run> {
    let level = runs.iter().map(|r| r.level).max().unwrap_or(0) + 1;
    let mut merged = Merged::new(runs)?;
    merged.order = false;
    let mut out = RunWriter::new()?;
    for trace in merged {
        for span in &trace?.spans {
            out.span(span)?;
        }
    }
    out.finish(level)
}

/// A run being written: each span one length-prefixed record.
struct RunWriter {
    out: BufWriter<File>,
    writer: Writer,
    head: Vec<u8>,
    spans: usize,
}

impl RunWriter {
    fn new() -> io::Result<RunWriter> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(BUFFER, tempfile::tempfile()?),
            writer: Writer::default(),
            head: Vec::with_capacity(10),
            spans: 0,
        })
    }

    fn span(&mut self, span: &Span) -> io::Result<()> {
        self.writer.record.clear();
        self.writer.span(span);
        self.head.clear();
        number(&mut self.head, self.writer.record.len() as u64);
        self.out.write_all(&self.head)?;
        self.out.write_all(&self.writer.record)?;
        self.spans += 1;
        Ok(())
    }

    fn finish(self, level: u32) -> io::Result<Run> {
        let mut file = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Run {
            file,
            spans: self.spans,
            level,
        })
    }
}

/// Encodes spans one record at a time.
#[derive(Default)]
struct Writer {
    record: Vec<u8>,
    /// Names by the address and length of their text. Every text named is
    /// held in `pinned` while its number stands, so that no other text can
    /// take its address meanwhile (equal texts at two addresses only take
    /// two numbers).
    names: foldhash::HashMap<(usize, usize), u32>,
    pinned: Vec<Arc<str>>,
    last_trace: Option<Arc<str>>,
    last_scopes: Option<Arc<[Arc<str>]>>,
}

impl Writer {
    fn span(&mut self, span: &Span) {
        let e = &span.event;
        let mut flags = 0;
        let mut set = |bit: u16, on: bool| {
            if on {
                flags |= bit;
            }
        };
        let same_trace = self
            .last_trace
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &e.trace_id) || *l == e.trace_id);
        let same_scopes = self
            .last_scopes
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &e.instrumentation_scopes) || *l == e.instrumentation_scopes);
        set(SAME_TRACE, same_trace);
        set(PARENT, e.parent_span_id.is_some());
        set(REGION, e.cloud_region.is_some());
        set(STATUS, e.status_code.is_some());
        set(RESPONSE_SIZE, e.response_size_bytes.is_some());
        let code = e.code.as_deref();
        set(FUNCTION, code.is_some_and(|c| c.function.is_some()));
        set(FILEPATH, code.is_some_and(|c| c.filepath.is_some()));
        set(LINENO, code.is_some_and(|c| c.lineno.is_some()));
        set(NAMESPACE, code.is_some_and(|c| c.namespace.is_some()));
        set(START, e.start_unix_nanos.is_some());
        set(HOST, e.host.is_some());
        set(VERB, e.verb.is_some());
        set(HTTP, e.kind == EventKind::HttpOut);
        set(SAME_SCOPES, same_scopes);
        self.record.extend_from_slice(&flags.to_le_bytes());
        if !same_trace {
            text(&mut self.record, &e.trace_id);
            self.last_trace = Some(Arc::clone(&e.trace_id));
        }
        text(&mut self.record, &e.timestamp);
        text(&mut self.record, &e.span_id);
        if let Some(p) = &e.parent_span_id {
            text(&mut self.record, p);
        }
        self.name(&e.service);
        if let Some(r) = &e.cloud_region {
            self.name(r);
        }
        self.name(&e.operation);
        number(&mut self.record, e.duration_us);
        self.name(&e.source.endpoint);
        self.name(&e.source.method);
        if let Some(s) = e.status_code {
            number(&mut self.record, u64::from(s));
        }
        if let Some(n) = e.response_size_bytes {
            number(&mut self.record, n);
        }
        if let Some(c) = code {
            if let Some(f) = &c.function {
                self.name(f);
            }
            if let Some(f) = &c.filepath {
                self.name(f);
            }
            if let Some(n) = c.lineno {
                number(&mut self.record, u64::from(n));
            }
            if let Some(n) = &c.namespace {
                self.name(n);
            }
        }
        if !same_scopes {
            number(&mut self.record, e.instrumentation_scopes.len() as u64);
            for s in e.instrumentation_scopes.iter() {
                self.name(s);
            }
            self.last_scopes = Some(Arc::clone(&e.instrumentation_scopes));
        }
        if let Some(n) = e.start_unix_nanos {
            self.record.extend_from_slice(&n.to_le_bytes());
        }
        if let Some(h) = &e.host {
            self.name(h);
        }
        if let Some(v) = e.verb {
            // A static text: its address is never another's.
            self.name_at(v, None);
        }
        self.name(&span.template);
        number(&mut self.record, u64::from(span.params.count));
        self.record.extend_from_slice(&span.params.hash.to_le_bytes());
    }

    fn name(&mut self, s: &Arc<str>) {
        self.name_at(s, Some(s));
    }

    /// A name: its number if this run gave it one, else 0 and its text.
    fn name_at(&mut self, s: &str, pin: Option<&Arc<str>>) {
        let key = (s.as_ptr() as usize, s.len());
        if let Some(&n) = self.names.get(&key) {
            return number(&mut self.record, u64::from(n) + 1);
        }
        if self.names.len() == NAMES {
            self.names.clear();
            self.pinned.clear();
        }
        let n = self.names.len() as u32;
        self.names.insert(key, n);
        if let Some(pin) = pin {
            self.pinned.push(Arc::clone(pin));
        }
        number(&mut self.record, 0);
        text(&mut self.record, s);
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    number(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// LEB128: seven bits a byte, low bits first.
fn number(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("temporary span file damaged: {what}"),
    )
}

/// Reads one run back, record by record.
struct Reader {
    file: File,
    /// Bytes read from the file; `buf[at..]` is not decoded yet.
    buf: Vec<u8>,
    at: usize,
    left: usize,
    names: Vec<Arc<str>>,
    trace: Option<Arc<str>>,
    scopes: Option<Arc<[Arc<str>]>>,
    sites: CodeSites,
}

impl Reader {
    fn new(run: Run) -> Reader {
        Reader {
            file: run.file,
            buf: Vec::new(),
            at: 0,
            left: run.spans,
            names: Vec::new(),
            trace: None,
            scopes: None,
            sites: CodeSites::default(),
        }
    }

    /// Makes `buf[at..]` hold the next `n` bytes of the file, or all that
    /// is left of it when that is less.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() - self.at >= n {
            return Ok(());
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let want = n.max(BUFFER);
        let have = self.buf.len();
        // `take` bounds the read: a damaged length cannot ask for more
        // memory than the file holds.
        (&mut self.file).take((want - have) as u64).read_to_end(&mut self.buf)?;
        Ok(())
    }

    fn next(&mut self) -> io::Result<Option<Span>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        // The record's length: at most ten bytes, fewer at the file's end.
        self.fill(10)?;
        let mut head = Cursor {
            bytes: &self.buf[self.at..],
            at: 0,
        };
        let len = usize::try_from(head.number()?).map_err(|_| corrupt("record length"))?;
        self.at += head.at;
        self.fill(len)?;
        let record = self.buf[self.at..]
            .get(..len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        self.at += len;
        let mut cursor = Cursor { bytes: record, at: 0 };
        let span = decode(
            &mut cursor,
            &mut self.names,
            &mut self.trace,
            &mut self.scopes,
            &mut self.sites,
        )?;
        if cursor.at != len {
            return Err(corrupt("record longer than its span"));
        }
        Ok(Some(span))
    }
}

/// Reads the fields of one record.
struct Cursor<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    fn take(&mut self, n: usize) -> io::Result<&'b [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt("record ends early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn number(&mut self) -> io::Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("number too long"))
    }

    fn text(&mut self) -> io::Result<&'b str> {
        let len = usize::try_from(self.number()?).map_err(|_| corrupt("text length"))?;
        std::str::from_utf8(self.take(len)?).map_err(|_| corrupt("text is not UTF-8"))
    }
}

/// The names a run's reader has numbered so far.
fn name(c: &mut Cursor<'_>, names: &mut Vec<Arc<str>>) -> io::Result<Arc<str>> {
    match c.number()? {
        0 => {
            if names.len() == NAMES {
                names.clear();
            }
            let name: Arc<str> = Arc::from(c.text()?);
            names.push(Arc::clone(&name));
            Ok(name)
        }
        n => usize::try_from(n - 1)
            .ok()
            .and_then(|i| names.get(i))
            .map(Arc::clone)
            .ok_or_else(|| corrupt("name number")),
    }
}

fn decode(
    c: &mut Cursor<'_>,
    names: &mut Vec<Arc<str>>,
    trace: &mut Option<Arc<str>>,
    scopes: &mut Option<Arc<[Arc<str>]>>,
    sites: &mut CodeSites,
) -> io::Result<Span> {
    let flags = u16::from_le_bytes(c.array()?);
    let has = |bit: u16| flags & bit != 0;
    let trace_id = match (&*trace, has(SAME_TRACE)) {
        (Some(t), true) => Arc::clone(t),
        (None, true) => return Err(corrupt("a span continues a trace before any")),
        (_, false) => {
            let t: Arc<str> = Arc::from(c.text()?);
            *trace = Some(Arc::clone(&t));
            t
        }
    };
    let timestamp = CompactString::new(c.text()?);
    let span_id = CompactString::new(c.text()?);
    let parent_span_id = match has(PARENT) {
        true => Some(CompactString::new(c.text()?)),
        false => None,
    };
    let name_if = |c: &mut Cursor<'_>, names: &mut Vec<Arc<str>>, present: bool| match present {
        true => name(c, names).map(Some),
        false => Ok(None),
    };
    let service = name(c, names)?;
    let cloud_region = name_if(c, names, has(REGION))?;
    let operation = name(c, names)?;
    let duration_us = c.number()?;
    let endpoint = name(c, names)?;
    let method = name(c, names)?;
    let status_code = match has(STATUS) {
        true => Some(u16::try_from(c.number()?).map_err(|_| corrupt("status code"))?),
        false => None,
    };
    let response_size_bytes = if has(RESPONSE_SIZE) { Some(c.number()?) } else { None };
    let code_function = name_if(c, names, has(FUNCTION))?;
    let code_filepath = name_if(c, names, has(FILEPATH))?;
    let code_lineno = match has(LINENO) {
        true => Some(u32::try_from(c.number()?).map_err(|_| corrupt("line number"))?),
        false => None,
    };
    let code_namespace = name_if(c, names, has(NAMESPACE))?;
    let code = sites.get(code_function, code_filepath, code_lineno, code_namespace);
    let instrumentation_scopes = match (&*scopes, has(SAME_SCOPES)) {
        (Some(s), true) => Arc::clone(s),
        (None, true) => return Err(corrupt("scopes repeated before any")),
        (_, false) => {
            let n = c.number()?;
            let list = (0..n)
                .map(|_| name(c, names))
                .collect::<io::Result<Arc<[Arc<str>]>>>()?;
            *scopes = Some(Arc::clone(&list));
            list
        }
    };
    let start_unix_nanos = match has(START) {
        true => Some(i64::from_le_bytes(c.array()?)),
        false => None,
    };
    let host = name_if(c, names, has(HOST))?;
    let verb = match name_if(c, names, has(VERB))? {
        Some(v) => Some(statement_verb(&v).ok_or_else(|| corrupt("SQL verb"))?),
        None => None,
    };
    let template = name(c, names)?;
    let count = u32::try_from(c.number()?).map_err(|_| corrupt("literal count"))?;
    let hash = u128::from_le_bytes(c.array()?);
    Ok(Span {
        event: SpanRecord {
            timestamp,
            trace_id,
            span_id,
            parent_span_id,
            service,
            cloud_region,
            kind: if has(HTTP) { EventKind::HttpOut } else { EventKind::Sql },
            operation,
            duration_us,
            source: EventSource { endpoint, method },
            status_code,
            response_size_bytes,
            code,
            instrumentation_scopes,
            start_unix_nanos,
            host,
            verb,
        },
        template,
        params: ParamDigest { count, hash },
    })
}

/// Traces merged from runs, in trace-id order: see the module's notes.
pub(crate) struct Merged {
    readers: Vec<Reader>,
    /// The next span of each run, if any is left.
    heads: Vec<Option<Span>>,
    /// Runs by their next span's trace id; equal ids in run order, which
    /// is input order.
    queue: BinaryHeap<Reverse<(Arc<str>, usize)>>,
    /// Whether each trace's spans are ordered as grouping orders them
    /// (false: input order, to write a merged run).
    order: bool,
    failed: bool,
}

impl Merged {
    pub(crate) fn new(runs: Vec<Run>) -> io::Result<Merged> {
        let mut merged = Merged {
            readers: runs.into_iter().map(Reader::new).collect(),
            heads: Vec::new(),
            queue: BinaryHeap::new(),
            order: true,
            failed: false,
        };
        for r in 0..merged.readers.len() {
            let head = merged.readers[r].next()?;
            if let Some(s) = &head {
                merged.queue.push(Reverse((Arc::clone(&s.event.trace_id), r)));
            }
            merged.heads.push(head);
        }
        Ok(merged)
    }

    /// Moves run `r`'s spans of trace `id` into `spans`.
    fn take(&mut self, r: usize, id: &str, spans: &mut Vec<Span>) -> io::Result<()> {
        while let Some(span) = self.heads[r].take() {
            if *span.event.trace_id != *id {
                self.queue.push(Reverse((Arc::clone(&span.event.trace_id), r)));
                self.heads[r] = Some(span);
                break;
            }
            spans.push(span);
            self.heads[r] = self.readers[r].next()?;
        }
        Ok(())
    }

    fn next_trace(&mut self) -> io::Result<Option<Trace>> {
        let Some(Reverse((id, r))) = self.queue.pop() else {
            return Ok(None);
        };
        let mut spans = Vec::new();
        self.take(r, &id, &mut spans)?;
        while let Some(Reverse((next, _))) = self.queue.peek() {
            if **next != *id {
                break;
            }
            let Some(Reverse((_, r))) = self.queue.pop() else {
                break;
            };
            self.take(r, &id, &mut spans)?;
        }
        if self.order {
            order_spans(&mut spans);
        }
        Ok(Some(Trace {
            trace_id: String::from(&*id),
            spans,
        }))
    }
}

impl Iterator for Merged {
    type Item = io::Result<Trace>;

    fn next(&mut self) -> Option<io::Result<Trace>> {
        if self.failed {
            return None;
        }
        let next = self.next_trace();
        self.failed = next.is_err();
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SpanEvent;
    use crate::trace::{Interner, SpanBatch, group_spans};

    fn event(i: usize, trace: usize) -> SpanEvent {
        let http = i % 5 == 0;
        let even = i % 2 == 0;
        let some = |on: bool, s: &str| on.then(|| s.to_owned());
        SpanEvent {
            timestamp: if i % 11 == 0 {
                "not a time".to_owned()
            } else {
                format!("2026-11-27T10:00:{:02}.{:03}Z", i % 60, i % 1000)
            },
            trace_id: format!("trace-{trace:04}"),
            span_id: format!("s{i}"),
            parent_span_id: even.then(|| format!("p{}", i / 2)),
            service: ["order", "billing", "stock"][i % 3].to_owned(),
            cloud_region: some(even, "eu-west-3"),
            kind: if http { EventKind::HttpOut } else { EventKind::Sql },
            operation: if http { "GET" } else { "postgresql" }.to_owned(),
            target: if http {
                format!("https://Api.Example.com/users/{i}")
            } else {
                format!("SELECT * FROM t{} WHERE id = {i}", i % 7)
            },
            duration_us: (i as u64 * 37) % 5000,
            source: EventSource {
                endpoint: format!("GET /orders/{{id}}/{}", i % 4),
                method: "OrderController.show".to_owned(),
            },
            status_code: even.then_some(200),
            response_size_bytes: even.then_some(i as u64 * 1000),
            code_function: some(even, "load"),
            code_filepath: some(http, "src/api.rs"),
            code_lineno: even.then_some(i as u32),
            code_namespace: some(http, "api"),
            instrumentation_scopes: if even {
                vec!["io.opentelemetry.jdbc".to_owned(), "é".to_owned()]
            } else {
                Vec::new()
            },
            start_unix_nanos: (i % 11 != 0).then_some(1_795_000_000_000_000_000 + i as i64 * 1_000_000),
            db_parameters: if i % 3 == 0 { vec![i.to_string()] } else { Vec::new() },
        }
    }

    /// Spans of `traces` traces, interleaved, in parts of `per_part`.
    fn parts(n: usize, traces: usize, per_part: usize) -> Vec<Vec<Span>> {
        let mut names = Interner::default();
        let spans: Vec<Span> = (0..n)
            .map(|i| Span::new(event(i, (i * 7919) % traces), &mut names))
            .collect();
        spans.chunks(per_part).map(<[Span]>::to_vec).collect()
    }

    fn same(a: &[Trace], b: &[Trace]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.trace_id, y.trace_id);
            assert_eq!(x.spans.len(), y.spans.len());
            for (s, t) in x.spans.iter().zip(&y.spans) {
                assert_eq!(s.event, t.event);
                assert_eq!(s.template, t.template);
                assert_eq!(s.params, t.params);
            }
        }
    }

    #[test]
    fn a_run_reads_back_what_was_written_sorted_by_trace() {
        let parts = parts(3000, 40, 700);
        let run = write_run(&parts).unwrap();
        assert_eq!(run.spans, 3000);
        let mut reader = Reader::new(run);
        let mut expected: Vec<&Span> = parts.iter().flatten().collect();
        expected.sort_by(|a, b| a.event.trace_id.cmp(&b.event.trace_id));
        for want in expected {
            let got = reader.next().unwrap().unwrap();
            assert_eq!(got.event, want.event);
            assert_eq!(got.template, want.template);
            assert_eq!(got.params, want.params);
        }
        assert!(reader.next().unwrap().is_none());
    }

    #[test]
    fn names_past_the_shared_count_read_back() {
        // Every span a template of its own: the name numbers start over
        // several times within the run.
        let mut names = Interner::default();
        let spans: Vec<Span> = (0..3 * NAMES + 17)
            .map(|i| {
                let mut e = event(i, i % 9);
                e.target = format!("SELECT c FROM table_{i}");
                Span::new(e, &mut names)
            })
            .collect();
        let parts = vec![spans];
        let mut reader = Reader::new(write_run(&parts).unwrap());
        let mut expected: Vec<&Span> = parts.iter().flatten().collect();
        expected.sort_by(|a, b| a.event.trace_id.cmp(&b.event.trace_id));
        for want in expected {
            let got = reader.next().unwrap().unwrap();
            assert_eq!(got.event, want.event);
            assert_eq!(got.template, want.template);
        }
    }

    /// A batch with `budget` that `parts` were pushed into.
    fn spilling(parts: &[Vec<Span>], budget: usize) -> SpanBatch {
        let mut batch = SpanBatch::spilling(budget);
        for p in parts {
            batch.push(p.clone()).unwrap();
        }
        batch
    }

    fn traces_of(batch: SpanBatch) -> Vec<Trace> {
        batch.into_traces().unwrap().collect::<io::Result<_>>().unwrap()
    }

    #[test]
    fn merged_runs_give_the_traces_of_grouping_in_memory() {
        for (traces, per_part, budget) in [(1, 50, 100), (40, 130, 400), (500, 97, 1000), (3000, 64, 256)] {
            let parts = parts(4000, traces, per_part);
            let held = group_spans(SpanBatch::from_parts(parts.clone())).unwrap();
            let batch = spilling(&parts, budget);
            assert!(batch.spilled(), "{traces} traces, budget {budget}");
            assert_eq!(batch.len(), 4000);
            same(&traces_of(batch), &held);
        }
    }

    #[test]
    fn runs_past_the_fan_in_are_merged_and_give_the_same_traces() {
        // One run per part: 700 runs, merged 64 at a time into 10 runs of
        // the next level, with at most 63 of the first level beside them.
        let parts = parts(4900, 300, 7);
        let held = group_spans(SpanBatch::from_parts(parts.clone())).unwrap();
        let mut batch = SpanBatch::spilling(1);
        let mut most = 0;
        for p in parts {
            batch.push(p).unwrap();
            most = most.max(batch.files());
        }
        assert!(most <= 2 * FAN_IN, "{most} files open for 700 runs");
        same(&traces_of(batch), &held);
    }

    #[test]
    fn appended_batches_keep_their_order() {
        // Spilled, held and spilled again: the result is that of every
        // span grouped in memory, in the order appended.
        let all = parts(3000, 120, 100);
        let held = group_spans(SpanBatch::from_parts(all.clone())).unwrap();
        let (a, rest) = all.split_at(10);
        let (b, c) = rest.split_at(5);
        let mut first = spilling(a, 250);
        first.append(SpanBatch::from_parts(b.to_vec())).unwrap();
        first.append(spilling(c, 400)).unwrap();
        assert_eq!(first.len(), 3000);
        same(&traces_of(first), &held);
    }

    #[test]
    fn a_damaged_run_is_an_error_not_a_panic() {
        let parts = parts(200, 5, 200);
        let run = write_run(&parts).unwrap();
        let len = run.file.metadata().unwrap().len();
        for cut in [0, 1, 2, 5, len / 2, len - 1] {
            let mut copy = tempfile::tempfile().unwrap();
            let mut original = &run.file;
            original.seek(SeekFrom::Start(0)).unwrap();
            io::copy(&mut original.take(cut), &mut copy).unwrap();
            copy.seek(SeekFrom::Start(0)).unwrap();
            let mut merged = match Merged::new(vec![Run {
                file: copy,
                spans: 200,
                level: 0,
            }]) {
                Ok(m) => m,
                Err(_) => continue,
            };
            let results: Vec<io::Result<Trace>> = merged.by_ref().collect();
            assert!(results.last().is_some_and(Result::is_err), "cut at {cut}");
            assert!(merged.next().is_none());
        }
    }
}
