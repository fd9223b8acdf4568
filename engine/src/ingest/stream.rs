//! Streaming ingestion of JSON trace files: bounded memory, both cores.
//!
//! Every JSON format keeps its spans in an array of self-contained blocks:
//! a native file is an array of events, a Zipkin file an array of spans, a
//! Jaeger export an object whose `data` array holds traces, an OTLP/JSON
//! file one or more objects whose `resourceSpans` arrays hold resource
//! blocks. So a file can be cut into runs of whole blocks without parsing
//! them: this thread reads the input a block of bytes at a time and finds
//! block boundaries with a small scanner (strings, escapes, nesting, and
//! the keys of the outer objects), and worker threads parse and normalize
//! each run into [`Span`]s. Only the spans are kept: the raw input is held
//! a few blocks at a time, whatever the file's size. Runs are joined in
//! input order, so the result is the same as a whole-file parse; the
//! values of other keys of the outer objects are checked as JSON and
//! skipped.
//!
//! Errors name the origin, the line and column, and what was expected, like
//! the whole-file parser's. Lines are counted only when an error needs one.

use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Format, IngestError, IngestStats, Ingested, MAX_JSON_DEPTH, expected};
use crate::event::{InputText, SpanEvent};
use crate::trace::{Interner, Span, SpanBatch};

/// Bytes of whole elements handed to a worker at a time: small enough that
/// the workers start soon after the first read and finish together.
const RUN_BYTES: usize = 1 << 18;
/// Bytes read from the input at a time.
const READ_BYTES: usize = 1 << 18;

/// Line and column of the first byte of a run.
#[derive(Clone, Copy)]
struct Pos {
    line: u64,
    column: u64,
}

impl Pos {
    /// The position `n` bytes after this one, `bytes[..n]` being those bytes.
    fn advance(self, bytes: &[u8]) -> Pos {
        let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
        match memchr::memrchr(b'\n', bytes) {
            Some(last) => Pos {
                line: self.line + newlines,
                column: (bytes.len() - last) as u64,
            },
            None => Pos {
                line: self.line,
                column: self.column + bytes.len() as u64,
            },
        }
    }

    fn text(self) -> String {
        format!("line {}, column {}", self.line, self.column)
    }
}

/// Where a format keeps its blocks.
#[derive(Clone, Copy)]
struct Shape {
    /// `None`: the top-level value is the array of blocks. `Some(key)`: the
    /// top level is an object whose array under `key` holds them.
    key: Option<&'static str>,
    /// The object must have `key`.
    required: bool,
    /// Several objects may follow one another (one per line).
    many: bool,
}

fn shape(format: Format) -> Shape {
    let (key, required, many) = match format {
        Format::Jaeger => (Some("data"), true, false),
        Format::OtlpJson => (Some("resourceSpans"), false, true),
        _ => (None, false, false),
    };
    Shape { key, required, many }
}

/// A stretch of a run: a block, or the value of another key of an outer
/// object, which is only checked.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Block,
    Skipped,
}

/// A run of whole elements: their bytes and where each starts and ends.
struct Run {
    index: usize,
    bytes: Vec<u8>,
    start: Pos,
    elements: Vec<(usize, usize, Part)>,
    /// Room for the run's spans, allocated by the reading thread: the spans
    /// are later moved into traces and freed on that thread, where the
    /// allocator can reuse the memory at once (memory freed from another
    /// thread's heap comes back later).
    spans: Vec<Span>,
}

type Parsed = Result<(Vec<Span>, IngestStats), IngestError>;

/// Parsed and normalized spans of a JSON trace file of `format` (native,
/// Jaeger, Zipkin or OTLP/JSON) read from `reader`, added to `batch`.
///
/// `head` holds bytes already read from the input (the sniffed prefix);
/// `size` is the input's size when it is known: one of a single run is
/// parsed on the calling thread, where starting workers would cost more
/// than they save. Reading stops with an error past `max_bytes`.
/// `progress` is called with the number of bytes read so far after every
/// block. Runs join `batch` in input order as soon as they are parsed, so
/// that a spilling batch (see [`SpanBatch::spilling`]) writes them out
/// while the rest is read.
#[allow(clippy::too_many_arguments)]
pub fn read_json_spans(
    format: Format,
    mut head: Vec<u8>,
    reader: &mut dyn Read,
    origin: &str,
    max_bytes: u64,
    size: Option<u64>,
    batch: SpanBatch,
    progress: &mut dyn FnMut(u64),
) -> Result<(SpanBatch, IngestStats), IngestError> {
    // Enough bytes to tell a byte-order mark.
    if head.len() < 3 {
        let more = 3 - head.len() as u64;
        reader
            .take(more)
            .read_to_end(&mut head)
            .map_err(|e| IngestError::io(origin, &e))?;
        progress(head.len() as u64);
    }
    let input = Input {
        reader,
        origin,
        max_bytes,
        progress,
    };
    let mut joined = Joined {
        batch,
        stats: IngestStats::default(),
        failed: None,
    };
    if size.is_some_and(|n| n <= RUN_BYTES as u64) {
        let (_keep, no_buffers) = mpsc::channel();
        let mut templates = Interner::default();
        let mut parse = |mut run: Run| joined.add(parse_run(&mut run, format, origin, &mut templates));
        let scanned = split(format, head, input, &mut parse, &no_buffers);
        // As with workers: a run's error comes before the scanner's.
        return joined.finish(scanned);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let (work_tx, work_rx) = mpsc::sync_channel::<Run>(workers * 2);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Parsed)>();
    // Parsed runs' buffers go back to the reading thread, which fills them
    // again: no fresh memory per run.
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let recycle_tx = recycle_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                let mut templates = Interner::default();
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(mut run)) = next else { break };
                    let parsed = parse_run(&mut run, format, origin, &mut templates);
                    let _ = recycle_tx.send(std::mem::take(&mut run.bytes));
                    let failed = parsed.is_err();
                    if done_tx.send((run.index, parsed)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop((done_tx, recycle_tx));
        // Parsed runs are joined in input order as they come, on a thread
        // of their own, while the scanner reads on.
        let joiner = s.spawn(move || {
            let mut early: std::collections::BTreeMap<usize, Parsed> = std::collections::BTreeMap::new();
            let mut next = 0;
            for (index, result) in done_rx {
                early.insert(index, result);
                while let Some(result) = early.remove(&next) {
                    next += 1;
                    joined.add(result);
                }
            }
            // Runs left waiting follow a gap: a worker stopped after an
            // error in an earlier run, which is the answer.
            joined
        });
        let scanned = split(format, head, input, &mut |run| work_tx.send(run).is_ok(), &recycle_rx);
        drop(work_tx);
        match joiner.join() {
            Ok(joined) => joined.finish(scanned),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Parsed runs joined in input order; the first error in input order wins.
struct Joined {
    batch: SpanBatch,
    stats: IngestStats,
    failed: Option<IngestError>,
}

impl Joined {
    /// Adds the next run's result; false once something failed.
    fn add(&mut self, result: Parsed) -> bool {
        if self.failed.is_some() {
            return false;
        }
        match result {
            Ok((part, part_stats)) => {
                self.stats.add(part_stats);
                if let Err(e) = self.batch.push(part) {
                    self.failed = Some(IngestError::spill(&e, "spans"));
                }
            }
            Err(e) => self.failed = Some(e),
        }
        self.failed.is_none()
    }

    /// The batch, or the first error: a run's before the scanner's, which
    /// comes after every run it sent.
    fn finish(self, scanned: Result<(), IngestError>) -> Result<(SpanBatch, IngestStats), IngestError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        scanned?;
        Ok((self.batch, self.stats))
    }
}

/// A serde error in text that starts at `start`, placed in the file.
fn error_at(origin: &str, format: Format, start: Pos, e: &serde_json::Error) -> IngestError {
    let line = start.line + e.line() as u64 - 1;
    let column = if e.line() == 1 {
        start.column + e.column() as u64 - 1
    } else {
        e.column() as u64
    };
    let mut err = IngestError::json(origin, format, e);
    err.position = Some(Pos { line, column }.text());
    err
}

/// Parses one element of a run, from checked text when there is some.
fn element<'a, T: Deserialize<'a>>(text: Option<&'a str>, slice: &'a [u8]) -> Result<T, serde_json::Error> {
    match text {
        Some(text) => serde_json::from_str(text),
        None => serde_json::from_slice(slice),
    }
}

fn parse_run(run: &mut Run, format: Format, origin: &str, templates: &mut Interner) -> Parsed {
    let mut out = std::mem::take(&mut run.spans);
    let mut stats = IngestStats::default();
    // The whole file must be UTF-8, strings of unknown fields too (serde
    // skips those unchecked): one check per run, per element only to say
    // where. Elements of a checked run are parsed as text, which spares
    // serde a second check of every string.
    let text = std::str::from_utf8(&run.bytes).ok();
    for &(start, end, part) in &run.elements {
        let slice = &run.bytes[start..end];
        let at = || run.start.advance(&run.bytes[..start]);
        let checked = text.and_then(|t| t.get(start..end));
        if checked.is_none()
            && let Err(bad) = std::str::from_utf8(slice)
        {
            let pos = at().advance(&slice[..bad.valid_up_to()]);
            return Err(IngestError::new(
                origin,
                Some(pos.text()),
                "invalid UTF-8; JSON trace files must be UTF-8 text",
            ));
        }
        let fail = |e: serde_json::Error| error_at(origin, format, at(), &e);
        if part == Part::Skipped {
            element::<IgnoredAny>(checked, slice).map_err(fail)?;
            continue;
        }
        // Strings without escapes are borrowed from the run.
        let mut mapped = Ingested::default();
        match format {
            Format::Zipkin => super::zipkin::map_span(element(checked, slice).map_err(fail)?, &mut mapped),
            Format::Jaeger => super::jaeger::map_trace(element(checked, slice).map_err(fail)?, &mut mapped),
            Format::OtlpJson => {
                // OTLP events borrow from their block: normalized here.
                let block: opentelemetry_proto::tonic::trace::v1::ResourceSpans =
                    element(checked, slice).map_err(fail)?;
                let mut events = Vec::new();
                super::otlp::convert_block(&block, &mut events, &mut stats);
                super::blocks::push_sanitized(events, templates, &mut out);
                continue;
            }
            _ => {
                let mut event: SpanEvent<InputText> = element(checked, slice).map_err(fail)?;
                event.sanitize();
                out.push(Span::new(event, templates));
                stats.spans_read += 1;
                continue;
            }
        }
        stats.add(mapped.stats);
        super::blocks::push_sanitized(mapped.events, templates, &mut out);
    }
    Ok((out, stats))
}

/// The scanner's place in the input.
#[derive(Clone, Copy, PartialEq)]
enum State {
    /// Before the top-level value; `again` after a complete object of a
    /// format that allows several.
    Start { again: bool },
    /// In an outer object: a key or, when `first`, the closing `}`.
    Key { first: bool },
    /// After a key: `:`, then the value, which is the array of blocks
    /// when `blocks`.
    Colon { blocks: bool },
    /// After `:`: the value, which is the array of blocks when `blocks`.
    Value { blocks: bool },
    /// After a member's value: `,` or `}`.
    Member,
    /// In the array of blocks, after `[` or `,`: a block (or, after `[`,
    /// the closing `]`).
    Element { first: bool },
    /// Inside a block, a skipped value or a key, outside its strings.
    InElement,
    /// Inside a string of the same.
    InString,
    /// After a block: `,` or `]`.
    Separator,
    /// After the top-level value: only whitespace.
    End,
}

/// What the scanner is inside of in [`State::InElement`] and
/// [`State::InString`].
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Block,
    Skipped,
    Key,
}

impl Ctx {
    /// Whether `b`, outside any nesting, ends a scalar here.
    fn ends_scalar(self, b: u8) -> bool {
        match self {
            Ctx::Block => b == b',' || b == b']',
            Ctx::Skipped => b == b',' || b == b'}',
            Ctx::Key => b == b':',
        }
    }
}

/// Where the scanner reads from.
struct Input<'a> {
    reader: &'a mut dyn Read,
    origin: &'a str,
    max_bytes: u64,
    progress: &'a mut dyn FnMut(u64),
}

/// Reads the input and hands runs of whole elements to `work`, which says
/// whether to go on; buffers of parsed runs come back on `recycled`.
fn split(
    format: Format,
    mut buf: Vec<u8>,
    input: Input<'_>,
    work: &mut dyn FnMut(Run) -> bool,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<(), IngestError> {
    let Input {
        reader,
        origin,
        max_bytes,
        progress,
    } = input;
    let shape = shape(format);
    // The position of buf[0], where the next run starts.
    let mut base = Pos { line: 1, column: 1 };
    let mut pos = 0usize;
    let mut state = State::Start { again: false };
    let mut ctx = Ctx::Block;
    let mut depth = 0usize;
    // Levels around the element being scanned: the top-level array, or the
    // outer object and, for blocks, its array.
    let mut outer = 1usize;
    // Whether the current outer object has had its key.
    let mut seen_key = false;
    let mut elements: Vec<(usize, usize, Part)> = Vec::new();
    let mut elem_start = 0usize;
    let mut index = 0usize;
    let mut eof = false;
    let mut total = buf.len() as u64;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        pos = 3;
    }
    let what = if shape.key.is_some() { "JSON object" } else { "array" };
    loop {
        let here = |buf: &[u8], pos: usize| base.advance(&buf[..pos]);
        while pos < buf.len() {
            if matches!(state, State::InString | State::InElement) {
                // Inside an element, in one tight loop: strings are
                // skipped, brackets counted, until the element ends or
                // the block does.
                let len = buf.len();
                let mut i = pos;
                let mut in_string = state == State::InString;
                let mut ended = false;
                while i < len {
                    if in_string {
                        // The next quote ends the string unless an odd
                        // number of backslashes escapes it (the string's
                        // bytes are still in the buffer, so the count can
                        // look back across blocks).
                        match memchr::memchr(b'"', &buf[i..]) {
                            None => {
                                i = len;
                                break;
                            }
                            Some(k) => {
                                let quote = i + k;
                                let escapes = buf[..quote].iter().rev().take_while(|&&b| b == b'\\').count();
                                i = quote + 1;
                                in_string = escapes % 2 == 1;
                            }
                        }
                        continue;
                    }
                    match buf[i] {
                        b'"' => in_string = true,
                        b'{' | b'[' => {
                            depth += 1;
                            if depth + outer > MAX_JSON_DEPTH {
                                return Err(IngestError::new(
                                    origin,
                                    Some(here(&buf, i).text()),
                                    format!(
                                        "JSON nested deeper than {MAX_JSON_DEPTH} levels; trace files are never that deep"
                                    ),
                                ));
                            }
                        }
                        b'}' | b']' if depth > 0 => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                ended = true;
                                break;
                            }
                        }
                        // A scalar ends here; the separator is read next.
                        b if depth == 0 && ctx.ends_scalar(b) => {
                            ended = true;
                            break;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                pos = i;
                if !ended {
                    state = if in_string { State::InString } else { State::InElement };
                    continue;
                }
                state = match ctx {
                    Ctx::Block => {
                        elements.push((elem_start, i, Part::Block));
                        State::Separator
                    }
                    Ctx::Skipped => {
                        elements.push((elem_start, i, Part::Skipped));
                        State::Member
                    }
                    Ctx::Key => {
                        let key: String = serde_json::from_slice(&buf[elem_start..i])
                            .map_err(|e| error_at(origin, format, here(&buf, elem_start), &e))?;
                        let blocks = shape.key == Some(key.as_str());
                        if blocks && std::mem::replace(&mut seen_key, true) {
                            return Err(IngestError::new(
                                origin,
                                Some(here(&buf, elem_start).text()),
                                format!("invalid {} input: duplicate field `{key}`", format.name()),
                            ));
                        }
                        State::Colon { blocks }
                    }
                };
                continue;
            }
            let b = buf[pos];
            // JSON whitespace only: `is_ascii_whitespace` also takes form feed.
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                let fail = |msg: String| IngestError::new(origin, Some(here(&buf, pos).text()), msg);
                // A block, a skipped value or a key starts on this byte.
                let enter = |c: Ctx, levels: usize| {
                    let (state, depth) = match b {
                        b'{' | b'[' => (State::InElement, 1),
                        b'"' => (State::InString, 0),
                        _ => (State::InElement, 0),
                    };
                    (c, levels, state, depth, pos)
                };
                // The outer object closes on this byte.
                let close = || {
                    if shape.required && !seen_key {
                        return Err(fail(format!(
                            "invalid {} input: missing field `{}`; {}",
                            format.name(),
                            shape.key.unwrap_or_default(),
                            expected(format)
                        )));
                    }
                    Ok(if shape.many {
                        State::Start { again: true }
                    } else {
                        State::End
                    })
                };
                match state {
                    State::Start { again } => match (b, shape.key) {
                        (b'[', None) if !again => state = State::Element { first: true },
                        (b'{', Some(_)) if !again || shape.many => {
                            seen_key = false;
                            state = State::Key { first: true };
                        }
                        (_, None) => return Err(fail(format!("expected `[`; {}", expected(format)))),
                        (_, Some(_)) if again => {
                            return Err(fail(format!(
                                "expected `{{` or the end of the input; {}",
                                expected(format)
                            )));
                        }
                        _ => return Err(fail(format!("expected `{{`; {}", expected(format)))),
                    },
                    State::Key { first } => match b {
                        b'"' => (ctx, outer, state, depth, elem_start) = enter(Ctx::Key, 1),
                        b'}' if first => state = close()?,
                        _ => return Err(fail("expected a key (a string) in the object".into())),
                    },
                    State::Colon { blocks } => {
                        if b != b':' {
                            return Err(fail("expected `:` after a key".into()));
                        }
                        state = State::Value { blocks };
                    }
                    State::Value { blocks: true } => {
                        if b != b'[' {
                            return Err(fail(format!(
                                "expected `[` after \"{}\"; {}",
                                shape.key.unwrap_or_default(),
                                expected(format)
                            )));
                        }
                        state = State::Element { first: true };
                    }
                    State::Value { blocks: false } => (ctx, outer, state, depth, elem_start) = enter(Ctx::Skipped, 1),
                    State::Member => match b {
                        b',' => state = State::Key { first: false },
                        b'}' => state = close()?,
                        _ => return Err(fail("expected `,` or `}` after a value".into())),
                    },
                    State::Element { first } => {
                        if b == b']' {
                            if !first {
                                return Err(fail("trailing comma before `]`".into()));
                            }
                            state = after_array(shape);
                        } else {
                            let levels = if shape.key.is_some() { 2 } else { 1 };
                            (ctx, outer, state, depth, elem_start) = enter(Ctx::Block, levels);
                        }
                    }
                    State::Separator => match b {
                        b',' => state = State::Element { first: false },
                        b']' => state = after_array(shape),
                        _ => return Err(fail("expected `,` or `]` after an element".into())),
                    },
                    _ => return Err(fail(format!("trailing characters after the {what}"))),
                }
            }
            pos += 1;
        }
        // Hand off a full run, or the last one.
        let run_end = if matches!(state, State::InElement | State::InString) {
            elem_start
        } else {
            pos
        };
        if (run_end >= RUN_BYTES || eof) && !elements.is_empty() {
            // The run keeps the buffer; what follows its last element (part
            // of the next one) moves to a recycled buffer.
            let mut next = recycled.try_recv().unwrap_or_default();
            next.clear();
            // Room for two reads after the carried-over bytes, and a page
            // more: `read_to_end` grows a full buffer before it asks for more.
            next.reserve(RUN_BYTES + READ_BYTES + (buf.len() - run_end) + 4096);
            next.extend_from_slice(&buf[run_end..]);
            buf.truncate(run_end);
            let bytes = std::mem::replace(&mut buf, next);
            let start = base;
            base = base.advance(&bytes);
            pos -= run_end;
            elem_start = elem_start.saturating_sub(run_end);
            let run = Run {
                index,
                bytes,
                start,
                spans: Vec::with_capacity(elements.len()),
                elements: std::mem::take(&mut elements),
            };
            index += 1;
            if !work(run) {
                // A worker failed: its error is reported.
                return Ok(());
            }
        }
        if eof {
            break;
        }
        // Read the next block after what is there (`read_to_end` leaves the
        // new bytes uninitialized until the reader fills them).
        let n = reader
            .take(READ_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(|e| IngestError::io(origin, &e))?;
        total += n as u64;
        progress(total);
        if total > max_bytes {
            return Err(super::too_large(origin, max_bytes));
        }
        eof = n == 0;
    }
    let end = base.advance(&buf[..pos.min(buf.len())]);
    match state {
        State::End | State::Start { again: true } => Ok(()),
        // Zero OTLP requests, as the whole-payload parser reads them (a
        // file that holds nothing is refused by sniffing first).
        State::Start { again: false } if shape.many => Ok(()),
        State::Start { again: false } => Err(IngestError::new(
            origin,
            None,
            "empty input; expected a JSON trace file (native, Jaeger, Zipkin or OTLP/JSON) or an OTLP protobuf file",
        )),
        _ => Err(IngestError::new(
            origin,
            Some(end.text()),
            format!(
                "invalid {} input: the file ends early (truncated JSON?); expected {}",
                format.name(),
                expected(format)
            ),
        )),
    }
}

/// The state after the array of blocks closes.
fn after_array(shape: Shape) -> State {
    if shape.key.is_some() { State::Member } else { State::End }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` demo events, one per line, with unique trace ids.
    fn events(n: usize) -> Vec<u8> {
        let demo: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../../examples/demo-traces.json")).unwrap();
        let mut out = b"[\n".to_vec();
        for i in 0..n {
            let mut e = demo[i % demo.len()].clone();
            e["trace_id"] = format!("{}-{}", e["trace_id"].as_str().unwrap(), i / demo.len()).into();
            if i > 0 {
                out.extend_from_slice(b",\n");
            }
            out.extend(serde_json::to_vec(&e).unwrap());
        }
        out.extend_from_slice(b"\n]\n");
        out
    }

    /// Reads with workers, and on this thread as a small input is read:
    /// both must give the same.
    fn read(bytes: &[u8]) -> Result<(SpanBatch, IngestStats), IngestError> {
        let mut calls = 0;
        let mut read_sized = |size| {
            let r = read_json_spans(
                Format::Native,
                Vec::new(),
                &mut &bytes[..],
                "t.json",
                u64::MAX,
                size,
                SpanBatch::default(),
                &mut |_| {
                    calls += 1;
                },
            );
            let outcome = match &r {
                Ok((spans, stats)) => Ok((spans.len(), *stats)),
                Err(e) => Err(e.to_string()),
            };
            (r, outcome)
        };
        let (threaded, a) = read_sized(None);
        let (_, b) = read_sized(Some(bytes.len() as u64));
        assert_eq!(a, b);
        assert!(calls > 1);
        threaded
    }

    #[test]
    fn many_runs_give_the_whole_file_parse() {
        let bytes = events(12_000);
        assert!(bytes.len() > 4 * RUN_BYTES, "{} bytes", bytes.len());
        let (spans, stats) = read(&bytes).unwrap();
        let whole = crate::ingest::parse(&bytes, "t.json").unwrap();
        assert_eq!(stats.spans_read, 12_000);
        assert_eq!(spans.len(), whole.events.len());
        let whole = crate::trace::normalize_events(whole.events);
        for (s, w) in spans.iter().zip(whole.iter()) {
            assert_eq!((&s.event, &s.template, s.params), (&w.event, &w.template, w.params));
        }
    }

    #[test]
    fn exports_across_many_runs_give_the_whole_file_parse() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/");
        let fixture = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(format!("{root}{name}")).unwrap()).unwrap()
        };
        let copies = |value: &serde_json::Value, n: usize| -> Vec<serde_json::Value> {
            let one = value.as_array().unwrap();
            (0..n).flat_map(|_| one.iter().cloned()).collect()
        };
        // Jaeger: the fixture's traces many times over, between other keys.
        let jaeger = fixture("jaeger_export.json");
        let traces = copies(&jaeger["data"], 600);
        let jaeger = serde_json::json!({"total": {"n": [1, "]}"]}, "data": traces, "errors": null});
        // Zipkin: the fixture's spans many times over.
        let zipkin = serde_json::Value::Array(copies(&fixture("zipkin_export.json"), 2_000));
        // OTLP/JSON: the demo as one request per line, and as pretty-printed
        // requests.
        let demo: Vec<SpanEvent> = serde_json::from_str(include_str!("../../../examples/demo-traces.json")).unwrap();
        let request = serde_json::to_vec(&crate::ingest::otlp::request_from_events(&demo)).unwrap();
        let pretty = serde_json::to_vec_pretty(&crate::ingest::otlp::request_from_events(&demo)).unwrap();
        let (mut lines, mut pretty_lines) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            lines.extend_from_slice(&request);
            lines.push(b'\n');
            pretty_lines.extend_from_slice(&pretty);
        }
        for (format, bytes) in [
            (Format::Jaeger, serde_json::to_vec_pretty(&jaeger).unwrap()),
            (Format::Zipkin, serde_json::to_vec(&zipkin).unwrap()),
            (Format::OtlpJson, lines),
            (Format::OtlpJson, pretty_lines),
        ] {
            assert!(bytes.len() > 2 * RUN_BYTES, "{} bytes", bytes.len());
            let (spans, stats) = read_json_spans(
                format,
                Vec::new(),
                &mut &bytes[..],
                "t",
                u64::MAX,
                None,
                SpanBatch::default(),
                &mut |_| {},
            )
            .unwrap();
            let whole = crate::ingest::parse_format(format, &bytes, "t").unwrap();
            assert_eq!(stats, whole.stats);
            assert!(!spans.is_empty());
            assert_eq!(spans.len(), whole.events.len());
            let whole = crate::trace::normalize_events(whole.events);
            for (s, w) in spans.iter().zip(whole.iter()) {
                assert_eq!((&s.event, &s.template, s.params), (&w.event, &w.template, w.params));
            }
        }
    }

    #[test]
    fn escaped_quotes_and_backslashes_at_every_block_edge() {
        // Targets ending in runs of backslashes, and quotes escaped or not
        // after them, land on every offset of the scanner's read blocks: the
        // spans must be those of the whole-file parse.
        let mut bytes = b"[".to_vec();
        let mut n = 0;
        while bytes.len() < 3 * READ_BYTES {
            let slashes = "\\\\".repeat(n % 5);
            let target = format!("SELECT '{slashes}\\\"{}' FROM t WHERE a = {n}", "x".repeat(n % 97));
            let event = serde_json::json!({
                "timestamp": "2025-07-10T14:32:01.000Z", "trace_id": format!("t{}", n / 7),
                "span_id": format!("s{n}"), "service": "svc", "type": "sql", "operation": "postgresql",
                "target": target, "duration_us": 10, "source": {"endpoint": "GET /x", "method": "m"},
            });
            if n > 0 {
                bytes.push(b',');
            }
            bytes.extend(serde_json::to_vec(&event).unwrap());
            n += 1;
        }
        bytes.push(b']');
        let (spans, _) = read(&bytes).unwrap();
        let whole = crate::ingest::parse(&bytes, "t.json").unwrap();
        assert_eq!(spans.len(), n);
        let whole = crate::trace::normalize_events(whole.events);
        for (s, w) in spans.iter().zip(whole.iter()) {
            assert_eq!((&s.event, &s.template, s.params), (&w.event, &w.template, w.params));
        }
    }

    #[test]
    fn an_error_deep_in_the_file_names_its_line_and_column() {
        let mut bytes = events(12_000);
        // Line 9,001 holds event 9,000 (line 1 is the `[`).
        let line_start = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(8_999)
            .map(|(i, _)| i + 1)
            .unwrap();
        let at = line_start + memchr::memmem::find(&bytes[line_start..], b"\"duration_us\":").unwrap();
        let digit = at + "\"duration_us\":".len();
        bytes[digit] = b'x';
        let e = read(&bytes).unwrap_err().to_string();
        assert!(e.starts_with("t.json: line 9001, column "), "{e}");
        let column: usize = e["t.json: line 9001, column ".len()..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // serde_json points just past the offending token.
        assert!((digit - line_start..digit - line_start + 12).contains(&column), "{e}");
    }

    #[test]
    fn structural_errors() {
        for (input, want) in [
            (&b"[{} {}]"[..], "line 1, column 5: expected `,` or `]`"),
            (b"[\n  {\"a\": \"\xff\"}]", "line 2, column 10: invalid UTF-8"),
            (b"[{\"a\": 1},]", "trailing comma"),
            (b"[]x", "trailing characters"),
            (b"[{\"a\": \"b", "ends early"),
            (b"  {", "expected `[`"),
        ] {
            let e = read(input).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(input));
        }
        assert_eq!(read(b"[ ]").unwrap().0.len(), 0);
        // Found by the native_stream fuzz target: form feed is not JSON
        // whitespace, and the whole-file parser refuses it.
        let e = read(b"\x0c[]").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("line 1, column 1: expected `[`"), "{e}");
        assert!(crate::ingest::parse(b"\x0c[]", "t.json").is_err());
        // Found by fuzzing: a BOM, then a newline, may open protobuf; such
        // input takes the whole-file path, as `parse` does.
        let odd = b"\xef\xbb\xbf\n[ / \xd4{ \x00pppp\x00";
        let whole = crate::ingest::parse(odd, "t")
            .map(|i| i.events.len())
            .map_err(|e| e.to_string());
        let streamed = crate::ingest::read_spans_from(&mut &odd[..], "t", u64::MAX, &mut |_| {});
        assert_eq!(streamed.map(|(s, _)| s.len()).map_err(|e| e.to_string()), whole);
        // Also found by fuzzing: invalid UTF-8 in a field serde skips.
        let e = read(b"[\n{\"x\": \"\xff\"}]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("line 2, column 8: invalid UTF-8"), "{e}");
    }
}
