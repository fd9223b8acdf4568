//! Reproducible benchmark datasets and format conversions.
//!
//! ```text
//! gen-dataset EVENTS [demo|varied-sql] [--format FORMAT] > FILE
//! gen-dataset --convert INPUT [--format FORMAT] > FILE
//! ```
//!
//! The first form writes EVENTS events made of copies of the bundled demo
//! traces (78 events, all ten finding types) with unique trace and span ids;
//! `varied-sql` also makes every copy's SQL text distinct (a new table name
//! per copy), so templates do not repeat across traces. The second converts
//! any trace file perf-sentinel reads.
//!
//! FORMAT is `native` (a JSON event array, the default), `otlp-json` (one
//! `ExportTraceServiceRequest` per line, as the Collector's file exporter
//! writes) or `otlp-protobuf` (one binary `ExportTraceServiceRequest`, written
//! as consecutive chunks, which protobuf reads as one message). Output is
//! streamed: memory stays flat whatever EVENTS is.

use std::io::Write;

use perf_sentinel_engine::event::SpanEvent;
use perf_sentinel_engine::ingest::{self, otlp};
use prost::Message;

const DEMO: &str = include_str!("../../../examples/demo-traces.json");
/// Events per OTLP request (a chunk of the output).
const CHUNK: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Out {
    Native,
    OtlpJson,
    OtlpProtobuf,
}

struct Writer<W: Write> {
    out: W,
    format: Out,
    pending: Vec<SpanEvent>,
    written: usize,
}

impl<W: Write> Writer<W> {
    fn push(&mut self, e: SpanEvent) -> std::io::Result<()> {
        if self.format == Out::Native {
            self.out.write_all(if self.written == 0 { b"[\n" } else { b",\n" })?;
            serde_json::to_writer(&mut self.out, &e)?;
        } else {
            self.pending.push(e);
            if self.pending.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        self.written += 1;
        Ok(())
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let req = otlp::request_from_events(&self.pending);
        self.pending.clear();
        match self.format {
            Out::OtlpJson => {
                serde_json::to_writer(&mut self.out, &req)?;
                self.out.write_all(b"\n")
            }
            _ => self.out.write_all(&req.encode_to_vec()),
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        match self.format {
            Out::Native if self.written == 0 => self.out.write_all(b"[]\n")?,
            Out::Native => self.out.write_all(b"\n]\n")?,
            _ => self.flush_chunk()?,
        }
        self.out.flush()
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: gen-dataset EVENTS [demo|varied-sql] [--format native|otlp-json|otlp-protobuf] > FILE\n       gen-dataset --convert INPUT [--format ...] > FILE"
    );
    std::process::exit(2);
}

fn main() {
    let mut format = Out::Native;
    let mut convert: Option<String> = None;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--format" => {
                format = match args.next().as_deref() {
                    Some("native") => Out::Native,
                    Some("otlp-json") => Out::OtlpJson,
                    Some("otlp-protobuf") => Out::OtlpProtobuf,
                    _ => usage(),
                }
            }
            "--convert" => convert = Some(args.next().unwrap_or_else(|| usage())),
            _ => positional.push(a),
        }
    }
    let stdout = std::io::stdout();
    let mut w = Writer {
        out: std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
        format,
        pending: Vec::with_capacity(CHUNK),
        written: 0,
    };
    let result = match convert {
        Some(path) => convert_file(&path, &mut w),
        None => generate(&positional, &mut w),
    };
    if let Err(e) = result.and_then(|()| w.finish()) {
        eprintln!("gen-dataset: {e}");
        std::process::exit(1);
    }
}

fn convert_file(path: &str, w: &mut Writer<impl Write>) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let input = ingest::parse(&bytes, path).map_err(std::io::Error::other)?;
    for e in input.events {
        w.push(e)?;
    }
    Ok(())
}

fn generate(args: &[String], w: &mut Writer<impl Write>) -> std::io::Result<()> {
    let Some(events) = args.first().and_then(|n| n.parse::<usize>().ok()) else {
        usage()
    };
    let varied = match args.get(1).map(String::as_str) {
        None | Some("demo") => false,
        Some("varied-sql") => true,
        Some(_) => usage(),
    };
    let demo: Vec<SpanEvent> = serde_json::from_str(DEMO).expect("the bundled demo parses");
    let mut copy = 0usize;
    while w.written < events {
        for base in &demo {
            if w.written == events {
                break;
            }
            let mut e = base.clone();
            e.trace_id = format!("{}-{copy}", e.trace_id);
            e.span_id = format!("{}-{copy}", e.span_id);
            if let Some(p) = &mut e.parent_span_id {
                *p = format!("{p}-{copy}");
            }
            if varied && e.kind == perf_sentinel_engine::event::EventKind::Sql {
                e.target = e.target.replacen(" FROM ", &format!(" FROM t{copy}_"), 1);
            }
            w.push(e)?;
        }
        copy += 1;
    }
    Ok(())
}
