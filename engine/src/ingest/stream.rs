//! Streaming ingestion of native event arrays: bounded memory, both cores.
//!
//! A native trace file is one JSON array of flat event objects, so it can be
//! cut into runs of whole elements without parsing them: this thread reads
//! the input in blocks and finds element boundaries with a small scanner
//! (strings, escapes and nesting only), and worker threads parse and
//! normalize each run into [`Span`]s. Only the spans are kept: the raw
//! input is held a few blocks at a time, whatever the file's size. Runs are
//! joined in input order, so the result is the same as a whole-file parse.
//!
//! Errors name the origin, the line and column, and what was expected, like
//! the whole-file parser's. Lines are counted only when an error needs one.

use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc;

use super::{Format, IngestError, IngestStats, MAX_JSON_DEPTH, expected};
use crate::event::{InputText, SpanEvent};
use crate::trace::{Interner, Span, SpanBatch};

/// Bytes of whole elements handed to a worker at a time.
const RUN_BYTES: usize = 1 << 20;
/// Bytes read from the input at a time.
const READ_BYTES: usize = 1 << 20;

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
}

/// A run of whole elements: their bytes and where each starts and ends.
struct Run {
    index: usize,
    bytes: Vec<u8>,
    start: Pos,
    elements: Vec<(usize, usize)>,
    /// Room for the run's spans, allocated by the reading thread: the spans
    /// are later moved into traces and freed on that thread, where the
    /// allocator can reuse the memory at once (memory freed from another
    /// thread's heap comes back later).
    spans: Vec<Span>,
}

type Parsed = Result<Vec<Span>, IngestError>;

/// Parsed and normalized spans of a native event array read from `reader`.
///
/// `head` holds bytes already read from the input (the sniffed prefix).
/// Reading stops with an error past `max_bytes`. `progress` is called with
/// the number of bytes read so far after every block.
pub fn read_native_spans(
    head: Vec<u8>,
    reader: &mut dyn Read,
    origin: &str,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(SpanBatch, IngestStats), IngestError> {
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
                    let parsed = parse_run(&mut run, origin, &mut templates);
                    let _ = recycle_tx.send(std::mem::take(&mut run.bytes));
                    let failed = parsed.is_err();
                    if done_tx.send((run.index, parsed)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop((done_tx, recycle_tx));
        let scanned = split(head, reader, origin, max_bytes, progress, &work_tx, &recycle_rx);
        drop(work_tx);
        let mut runs: Vec<Option<Parsed>> = Vec::new();
        for (index, result) in done_rx {
            if runs.len() <= index {
                runs.resize_with(index + 1, || None);
            }
            runs[index] = Some(result);
        }
        // The first error in input order wins; a scanner error comes after
        // every run it sent.
        let mut parts = Vec::with_capacity(runs.len());
        for r in runs {
            match r {
                Some(Ok(part)) => parts.push(part),
                Some(Err(e)) => return Err(e),
                // A worker stopped after an error in an earlier run.
                None => break,
            }
        }
        scanned?;
        let total: usize = parts.iter().map(Vec::len).sum();
        let spans = SpanBatch::from_parts(parts);
        let stats = IngestStats {
            spans_read: total as u64,
            spans_without_io_attributes: 0,
        };
        Ok((spans, stats))
    })
}

fn parse_run(run: &mut Run, origin: &str, templates: &mut Interner) -> Parsed {
    let mut out = std::mem::take(&mut run.spans);
    // The whole file must be UTF-8, strings of unknown fields too (serde
    // skips those unchecked): one check per run, per element only to say
    // where. Elements of a checked run are parsed as text, which spares
    // serde a second check of every string.
    let text = std::str::from_utf8(&run.bytes).ok();
    for &(start, end) in &run.elements {
        let slice = &run.bytes[start..end];
        let at = || run.start.advance(&run.bytes[..start]);
        let element = text.and_then(|t| t.get(start..end));
        if element.is_none()
            && let Err(bad) = std::str::from_utf8(slice)
        {
            let pos = at().advance(&slice[..bad.valid_up_to()]);
            return Err(IngestError::new(
                origin,
                Some(format!("line {}, column {}", pos.line, pos.column)),
                "invalid UTF-8; JSON trace files must be UTF-8 text",
            ));
        }
        // Strings without escapes are borrowed from the run.
        let parsed: Result<SpanEvent<InputText>, _> = match element {
            Some(element) => serde_json::from_str(element),
            None => serde_json::from_slice(slice),
        };
        let mut event = parsed.map_err(|e| {
            let pos = at();
            let line = pos.line + e.line() as u64 - 1;
            let column = if e.line() == 1 {
                pos.column + e.column() as u64 - 1
            } else {
                e.column() as u64
            };
            let mut err = IngestError::json(origin, Format::Native, &e);
            err.position = Some(format!("line {line}, column {column}"));
            err
        })?;
        event.sanitize();
        out.push(Span::new(event, templates));
    }
    Ok(out)
}

/// The scanner's place in the array.
#[derive(Clone, Copy, PartialEq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[` or `,`: an element (or, after `[`, the closing `]`).
    Element { first: bool },
    /// Inside an element, outside its strings.
    InElement,
    /// Inside a string of an element.
    InString,
    /// After an element: `,` or `]`.
    Separator,
    /// After the closing `]`: only whitespace.
    End,
}

/// Reads the input and sends runs of whole elements to the workers.
fn split(
    mut buf: Vec<u8>,
    reader: &mut dyn Read,
    origin: &str,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64),
    work: &mpsc::SyncSender<Run>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<(), IngestError> {
    // The position of buf[0], where the next run starts.
    let mut base = Pos { line: 1, column: 1 };
    let mut pos = 0usize;
    let mut state = State::Start;
    let mut depth = 0usize;
    let mut elements: Vec<(usize, usize)> = Vec::new();
    let mut elem_start = 0usize;
    let mut index = 0usize;
    let mut eof = false;
    let mut total = buf.len() as u64;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        pos = 3;
    }
    loop {
        let here = |buf: &[u8], pos: usize| {
            let p = base.advance(&buf[..pos]);
            format!("line {}, column {}", p.line, p.column)
        };
        while pos < buf.len() {
            match state {
                State::InString | State::InElement => {
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
                            // bytes are still in the buffer, so the count
                            // can look back across blocks).
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
                                // The top-level array is one level.
                                if depth + 1 > MAX_JSON_DEPTH {
                                    return Err(IngestError::new(
                                        origin,
                                        Some(here(&buf, i)),
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
                                    elements.push((elem_start, i));
                                    ended = true;
                                    break;
                                }
                            }
                            b',' | b']' if depth == 0 => {
                                // A scalar element ends here; the separator is read next.
                                elements.push((elem_start, i));
                                ended = true;
                                break;
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    pos = i;
                    state = if ended {
                        State::Separator
                    } else if in_string {
                        State::InString
                    } else {
                        State::InElement
                    };
                    continue;
                }
                _ => {}
            }
            let b = buf[pos];
            // JSON whitespace only: `is_ascii_whitespace` also takes form feed.
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                let fail = |msg: String| Err(IngestError::new(origin, Some(here(&buf, pos)), msg));
                match state {
                    State::Start => {
                        if b != b'[' {
                            return fail(format!("expected `[`; {}", expected(Format::Native)));
                        }
                        state = State::Element { first: true };
                    }
                    State::Element { first } => {
                        if b == b']' {
                            if !first {
                                return fail("trailing comma before `]`".into());
                            }
                            state = State::End;
                        } else {
                            elem_start = pos;
                            (state, depth) = match b {
                                b'{' | b'[' => (State::InElement, 1),
                                b'"' => (State::InString, 0),
                                _ => (State::InElement, 0),
                            };
                        }
                    }
                    State::Separator => match b {
                        b',' => state = State::Element { first: false },
                        b']' => state = State::End,
                        _ => return fail("expected `,` or `]` after an event".into()),
                    },
                    _ => return fail("trailing characters after the event array".into()),
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
            if work.send(run).is_err() {
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
            .map_err(|e| IngestError::new(origin, None, format!("cannot read: {e}")))?;
        total += n as u64;
        progress(total);
        if total > max_bytes {
            return Err(super::too_large(origin, max_bytes));
        }
        eof = n == 0;
    }
    let end = base.advance(&buf[..pos.min(buf.len())]);
    match state {
        State::End => Ok(()),
        State::Start => Err(IngestError::new(
            origin,
            None,
            "empty input; expected a JSON trace file (native, Jaeger, Zipkin or OTLP/JSON) or an OTLP protobuf file",
        )),
        _ => Err(IngestError::new(
            origin,
            Some(format!("line {}, column {}", end.line, end.column)),
            format!(
                "invalid {} input: the file ends early (truncated JSON?); expected {}",
                Format::Native.name(),
                expected(Format::Native)
            ),
        )),
    }
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

    fn read(bytes: &[u8]) -> Result<(SpanBatch, IngestStats), IngestError> {
        let mut calls = 0;
        let r = read_native_spans(Vec::new(), &mut &bytes[..], "t.json", u64::MAX, &mut |_| calls += 1);
        assert!(calls > 0);
        r
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
