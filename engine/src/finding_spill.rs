//! Findings written to temporary files in report order and merged back:
//! how a batch with millions of findings is reported without holding them.
//!
//! A batch with a findings budget sorts its findings each time it holds
//! that many and writes them out as one *run*. Reading merges the runs
//! with a heap: findings come out in report order, equal keys in run order
//! (which is input order), exactly as sorting them all in memory orders
//! them, while only the next finding of each run is held. Runs are read
//! by position, so a report can read its findings more than once (text
//! output groups them by severity in three passes).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use crate::finding::{CodeLocation, Confidence, Finding, GreenImpact, Pattern, Severity, SuggestedFix};

/// Buffer of each run's writer and reader.
const BUFFER: usize = 64 * 1024;

/// Runs kept before they are merged into one, so that a huge batch never
/// holds more open files than this.
const FAN_IN: usize = 64;

/// One finding as a run stores it: the finding with its span ids and flags
/// (which the JSON form leaves out), its detector's rank, and the
/// acknowledgment that moved it out of the report, if any.
pub(crate) struct Stored {
    pub finding: Finding,
    pub rank: u32,
    pub ack: Option<serde_json::Value>,
}

/// The order of findings in reports, from their detectors' ranks on: see
/// [`Engine::sort_findings`](crate::Engine::sort_findings).
pub(crate) fn compare(ra: u32, a: &Finding, rb: u32, b: &Finding) -> Ordering {
    (
        ra,
        &a.finding_type,
        a.severity,
        &a.trace_id,
        &a.source_endpoint,
        &a.pattern.template,
    )
        .cmp(&(
            rb,
            &b.finding_type,
            b.severity,
            &b.trace_id,
            &b.source_endpoint,
            &b.pattern.template,
        ))
        .then_with(|| {
            (
                &a.service,
                &a.first_timestamp,
                &a.last_timestamp,
                a.pattern.occurrences,
                a.pattern.distinct_params,
            )
                .cmp(&(
                    &b.service,
                    &b.first_timestamp,
                    &b.last_timestamp,
                    b.pattern.occurrences,
                    b.pattern.distinct_params,
                ))
        })
        .then_with(|| {
            (a.pattern.window_ms, &a.suggestion, &a.span_ids).cmp(&(b.pattern.window_ms, &b.suggestion, &b.span_ids))
        })
}

/// One run: findings in report order in an unlinked temporary file.
struct Run {
    file: File,
    len: usize,
}

/// The runs of one batch, in input order.
#[derive(Default)]
pub(crate) struct Runs {
    runs: Vec<Run>,
    len: usize,
}

impl Runs {
    /// Findings in every run.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes `sorted` (in report order, after every finding already
    /// written) as the next run.
    pub(crate) fn push(&mut self, sorted: Vec<Stored>) -> io::Result<()> {
        if sorted.is_empty() {
            return Ok(());
        }
        if self.runs.len() == FAN_IN {
            let merged = write_run(self.read()?)?;
            self.runs = vec![merged];
        }
        self.len += sorted.len();
        let run = write_run(sorted.into_iter().map(Ok))?;
        self.runs.push(run);
        Ok(())
    }

    /// Every finding, in report order.
    pub(crate) fn read(&self) -> io::Result<Merged<'_>> {
        let mut merged = Merged {
            readers: self.runs.iter().map(RunReader::new).collect(),
            heap: BinaryHeap::with_capacity(self.runs.len()),
            failed: false,
        };
        for r in 0..merged.readers.len() {
            if let Some(stored) = merged.readers[r].next()? {
                merged.heap.push(Head { stored, run: r });
            }
        }
        Ok(merged)
    }
}

fn write_run(items: impl Iterator<Item = io::Result<Stored>>) -> io::Result<Run> {
    let mut out = BufWriter::with_capacity(BUFFER, tempfile::tempfile()?);
    let mut record = Vec::new();
    let mut len = 0;
    for stored in items {
        encode(&stored?, &mut record)?;
        out.write_all(&record)?;
        len += 1;
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(Run { file, len })
}

/// A record: its length (u32, little-endian, not counting itself), then
/// the rank and every field of the finding in declaration order. Numbers
/// are little-endian, strings a u32 length then UTF-8, options a 0/1 byte
/// then the value, lists a u32 count then the items; the acknowledgment,
/// last, is JSON in a string.
fn encode(s: &Stored, out: &mut Vec<u8>) -> io::Result<()> {
    // Every field named, so that a field added to `Finding` fails to build
    // here until it is stored.
    let Finding {
        finding_type,
        severity,
        trace_id,
        service,
        source_endpoint,
        pattern,
        suggestion,
        first_timestamp,
        last_timestamp,
        green_impact,
        confidence,
        classification_method,
        code_location,
        instrumentation_scopes,
        suggested_fix,
        signature,
        span_ids,
        trace_level,
    } = &s.finding;
    let Pattern {
        template,
        occurrences,
        window_ms,
        distinct_params,
        span_duration_us_p50,
        span_duration_us_p99,
        span_duration_cv_x1000,
    } = pattern;
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&s.rank.to_le_bytes());
    let mut e = Encoder { out, failed: false };
    e.text(finding_type);
    e.byte(*severity as u8);
    e.text(trace_id);
    e.text(service);
    e.text(source_endpoint);
    e.text(template);
    e.number(*occurrences);
    e.number(*window_ms);
    e.number(*distinct_params);
    for n in [span_duration_us_p50, span_duration_us_p99, span_duration_cv_x1000] {
        e.option(n.as_ref(), |e, n| e.number(*n));
    }
    e.text(suggestion);
    e.text(first_timestamp);
    e.text(last_timestamp);
    e.option(green_impact.as_ref(), |e, g| {
        e.number(g.estimated_extra_io_ops);
        e.number(g.io_intensity_score.to_bits());
        e.text(&g.io_intensity_band);
    });
    e.byte(*confidence as u8);
    e.option(classification_method.as_ref(), |e, m| e.text(m));
    e.option(code_location.as_ref(), |e, c| {
        e.option(c.function.as_ref(), |e, t| e.text(t));
        e.option(c.filepath.as_ref(), |e, t| e.text(t));
        e.option(c.lineno.as_ref(), |e, l| e.number(u64::from(*l)));
        e.option(c.namespace.as_ref(), |e, t| e.text(t));
    });
    e.list(instrumentation_scopes);
    e.option(suggested_fix.as_ref(), |e, fix| {
        e.text(&fix.pattern);
        e.text(&fix.framework);
        e.text(&fix.recommendation);
        e.option(fix.reference_url.as_ref(), |e, t| e.text(t));
    });
    e.text(signature);
    e.list(span_ids);
    e.byte(u8::from(*trace_level));
    let ack = match &s.ack {
        Some(ack) => Some(serde_json::to_string(ack).map_err(io::Error::other)?),
        None => None,
    };
    e.option(ack.as_ref(), |e, a| e.text(a));
    if e.failed {
        return Err(io::Error::other("a finding too large for a temporary file"));
    }
    let total =
        u32::try_from(out.len() - 4).map_err(|_| io::Error::other("a finding too large for a temporary file"))?;
    out[..4].copy_from_slice(&total.to_le_bytes());
    Ok(())
}

struct Encoder<'o> {
    out: &'o mut Vec<u8>,
    failed: bool,
}

impl Encoder<'_> {
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn number(&mut self, n: u64) {
        self.out.extend_from_slice(&n.to_le_bytes());
    }

    fn count(&mut self, n: usize) {
        match u32::try_from(n) {
            Ok(n) => self.out.extend_from_slice(&n.to_le_bytes()),
            Err(_) => self.failed = true,
        }
    }

    fn text(&mut self, s: &str) {
        self.count(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn list<S: AsRef<str>>(&mut self, items: &[S]) {
        self.count(items.len());
        for s in items {
            self.text(s.as_ref());
        }
    }

    fn option<T>(&mut self, value: Option<&T>, put: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.byte(0),
            Some(v) => {
                self.byte(1);
                put(self, v);
            }
        }
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("temporary findings file damaged: {what}"),
    )
}

/// Reads a record's body (after its length) field by field.
struct Decoder<'b> {
    body: &'b [u8],
    at: usize,
}

impl<'b> Decoder<'b> {
    fn take(&mut self, n: usize) -> io::Result<&'b [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| corrupt("a length overflows"))?;
        let part = self
            .body
            .get(self.at..end)
            .ok_or_else(|| corrupt("a record ends early"))?;
        self.at = end;
        Ok(part)
    }

    fn byte(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn word(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn number(&mut self) -> io::Result<u64> {
        let b = self.take(8)?;
        let mut n = [0; 8];
        n.copy_from_slice(b);
        Ok(u64::from_le_bytes(n))
    }

    fn text(&mut self) -> io::Result<String> {
        let n = self.word()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| corrupt("a text is not UTF-8"))
    }

    fn list<S: From<String>>(&mut self) -> io::Result<Vec<S>> {
        let n = self.word()? as usize;
        // Each item takes at least its 4-byte length.
        let mut items = Vec::with_capacity(n.min((self.body.len() - self.at) / 4));
        for _ in 0..n {
            items.push(S::from(self.text()?));
        }
        Ok(items)
    }

    fn option<T>(&mut self, get: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<Option<T>> {
        match self.byte()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            _ => Err(corrupt("an option flag is neither 0 nor 1")),
        }
    }
}

/// Decodes one record's body (after its length).
fn decode(body: &[u8]) -> io::Result<Stored> {
    let mut d = Decoder { body, at: 0 };
    let rank = d.word()?;
    let finding_type = d.text()?;
    let severity = match d.byte()? {
        0 => Severity::Critical,
        1 => Severity::Warning,
        2 => Severity::Info,
        _ => return Err(corrupt("a severity is out of range")),
    };
    let trace_id = d.text()?;
    let service = d.text()?;
    let source_endpoint = d.text()?;
    let pattern = Pattern {
        template: d.text()?,
        occurrences: d.number()?,
        window_ms: d.number()?,
        distinct_params: d.number()?,
        span_duration_us_p50: d.option(Decoder::number)?,
        span_duration_us_p99: d.option(Decoder::number)?,
        span_duration_cv_x1000: d.option(Decoder::number)?,
    };
    let suggestion = d.text()?;
    let first_timestamp = d.text()?;
    let last_timestamp = d.text()?;
    let green_impact = d.option(|d| {
        Ok(GreenImpact {
            estimated_extra_io_ops: d.number()?,
            io_intensity_score: f64::from_bits(d.number()?),
            io_intensity_band: d.text()?,
        })
    })?;
    let confidence = match d.byte()? {
        0 => Confidence::CiBatch,
        1 => Confidence::DaemonStaging,
        2 => Confidence::DaemonProduction,
        _ => return Err(corrupt("a confidence is out of range")),
    };
    let classification_method = d.option(Decoder::text)?;
    let code_location = d.option(|d| {
        Ok(CodeLocation {
            function: d.option(Decoder::text)?,
            filepath: d.option(Decoder::text)?,
            lineno: d
                .option(Decoder::number)?
                .map(|l| u32::try_from(l).map_err(|_| corrupt("a line number is out of range")))
                .transpose()?,
            namespace: d.option(Decoder::text)?,
        })
    })?;
    let instrumentation_scopes = d.list()?;
    let suggested_fix = d.option(|d| {
        Ok(SuggestedFix {
            pattern: d.text()?,
            framework: d.text()?,
            recommendation: d.text()?,
            reference_url: d.option(Decoder::text)?,
        })
    })?;
    let signature = d.text()?;
    let span_ids = d.list()?;
    let trace_level = d.byte()? != 0;
    let ack = match d.option(Decoder::text)? {
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| corrupt(&format!("an acknowledgment: {e}")))?),
        None => None,
    };
    if d.at != body.len() {
        return Err(corrupt("a record is longer than its fields"));
    }
    let finding = Finding {
        finding_type,
        severity,
        trace_id,
        service,
        source_endpoint,
        pattern,
        suggestion,
        first_timestamp,
        last_timestamp,
        green_impact,
        confidence,
        classification_method,
        code_location,
        instrumentation_scopes,
        suggested_fix,
        signature,
        span_ids,
        trace_level,
    };
    Ok(Stored { finding, rank, ack })
}

/// Reads a file from a position of its own, so that several readers of
/// one file never move each other.
struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

struct RunReader<'f> {
    input: BufReader<At<'f>>,
    left: usize,
    body: Vec<u8>,
}

impl<'f> RunReader<'f> {
    fn new(run: &'f Run) -> RunReader<'f> {
        RunReader {
            input: BufReader::with_capacity(
                BUFFER,
                At {
                    file: &run.file,
                    pos: 0,
                },
            ),
            left: run.len,
            body: Vec::new(),
        }
    }

    fn next(&mut self) -> io::Result<Option<Stored>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut len = [0; 4];
        self.input
            .read_exact(&mut len)
            .map_err(|_| corrupt("a run ends early"))?;
        self.body.resize(u32::from_le_bytes(len) as usize, 0);
        self.input
            .read_exact(&mut self.body)
            .map_err(|_| corrupt("a run ends early"))?;
        decode(&self.body).map(Some)
    }
}

/// The next finding of one run.
struct Head {
    stored: Stored,
    run: usize,
}

impl Ord for Head {
    /// Reversed, for a max-heap to give the first finding in report order;
    /// equal findings in run order.
    fn cmp(&self, other: &Head) -> Ordering {
        compare(
            other.stored.rank,
            &other.stored.finding,
            self.stored.rank,
            &self.stored.finding,
        )
        .then(other.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Findings merged from runs, in report order.
pub(crate) struct Merged<'f> {
    readers: Vec<RunReader<'f>>,
    heap: BinaryHeap<Head>,
    failed: bool,
}

impl Merged<'_> {
    fn step(&mut self) -> io::Result<Option<Stored>> {
        let Some(Head { stored, run }) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.readers[run].next()? {
            self.heap.push(Head { stored: next, run });
        }
        Ok(Some(stored))
    }
}

impl Iterator for Merged<'_> {
    type Item = io::Result<Stored>;

    fn next(&mut self) -> Option<io::Result<Stored>> {
        if self.failed {
            return None;
        }
        let next = self.step();
        self.failed = next.is_err();
        next.transpose()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finding with every field set, varied by `i` (other modules' tests
    /// use it too).
    pub(crate) fn finding(i: usize) -> Finding {
        let some = |on: bool, s: String| on.then_some(s);
        Finding {
            finding_type: ["n_plus_one_sql", "slow_sql", "redundant_http"][i % 3].to_owned(),
            severity: [Severity::Critical, Severity::Warning, Severity::Info][i % 3],
            trace_id: format!("trace-{}", i % 5),
            service: "order-svc".to_owned(),
            source_endpoint: "POST /api/orders/{id}/submit".to_owned(),
            pattern: Pattern {
                template: format!("SELECT * FROM t WHERE id = ? -- {}", i % 4),
                occurrences: i as u64,
                window_ms: 7,
                distinct_params: u64::MAX,
                span_duration_us_p50: (i % 2 == 0).then_some(12),
                span_duration_us_p99: None,
                span_duration_cv_x1000: Some(0),
            },
            suggestion: "batch it\nwith \"IN\" été".to_owned(),
            first_timestamp: "2025-07-10T14:32:05.000Z".to_owned(),
            last_timestamp: String::new(),
            green_impact: (i % 2 == 1).then(|| GreenImpact {
                estimated_extra_io_ops: 3,
                io_intensity_score: 0.1 + i as f64,
                io_intensity_band: "high".to_owned(),
            }),
            confidence: [
                Confidence::CiBatch,
                Confidence::DaemonStaging,
                Confidence::DaemonProduction,
            ][i % 3],
            classification_method: some(i % 2 == 0, "sanitizer_heuristic".to_owned()),
            code_location: (i % 3 != 0).then(|| CodeLocation {
                function: some(i % 2 == 0, "O.submit".to_owned()),
                filepath: Some("o/O.java".to_owned()),
                lineno: Some(u32::MAX),
                namespace: None,
            }),
            instrumentation_scopes: (0..i % 3).map(|k| format!("scope-{k}")).collect(),
            suggested_fix: (i % 2 == 0).then(|| SuggestedFix {
                pattern: "p".to_owned(),
                framework: "f".to_owned(),
                recommendation: "r".to_owned(),
                reference_url: some(i % 4 == 0, "https://example.org".to_owned()),
            }),
            signature: format!("sig-{i}"),
            span_ids: (0..i % 4).map(|k| compact_str::format_compact!("{k:016x}")).collect(),
            trace_level: i % 2 == 0,
        }
    }

    fn stored(i: usize) -> Stored {
        Stored {
            finding: finding(i),
            rank: (i % 2) as u32,
            ack: (i % 3 == 0).then(|| serde_json::json!({"reason": "known", "n": i})),
        }
    }

    #[test]
    fn a_record_reads_back_every_field() {
        let mut record = Vec::new();
        for i in 0..12 {
            let s = stored(i);
            encode(&s, &mut record).unwrap();
            let len = u32::from_le_bytes([record[0], record[1], record[2], record[3]]) as usize;
            assert_eq!(len, record.len() - 4);
            let back = decode(&record[4..]).unwrap();
            assert_eq!(back.finding, s.finding, "finding {i}");
            assert_eq!(back.finding.span_ids, s.finding.span_ids);
            assert_eq!(back.finding.trace_level, s.finding.trace_level);
            assert_eq!((back.rank, back.ack), (s.rank, s.ack));
        }
    }

    /// Runs of sorted findings, read back in the order of sorting them all,
    /// equal findings in input order; past `FAN_IN` runs, merged into one.
    #[test]
    fn runs_merge_in_report_order_with_ties_in_input_order() {
        // Many equal keys (i % 60 repeats), so ties across runs are common.
        let all: Vec<(usize, Stored)> = (0..700).map(|i| (i, stored(i % 60))).collect();
        for per_run in [1, 3, 50, 700] {
            let mut runs = Runs::default();
            for chunk in all.chunks(per_run) {
                let mut chunk: Vec<&(usize, Stored)> = chunk.iter().collect();
                chunk.sort_by(|(i, a), (j, b)| compare(a.rank, &a.finding, b.rank, &b.finding).then(i.cmp(j)));
                runs.push(chunk.iter().map(|(_, s)| stored_copy(s)).collect()).unwrap();
                assert!(runs.runs.len() <= FAN_IN);
            }
            assert_eq!(runs.len(), all.len());
            let mut want: Vec<&(usize, Stored)> = all.iter().collect();
            want.sort_by(|(i, a), (j, b)| compare(a.rank, &a.finding, b.rank, &b.finding).then(i.cmp(j)));
            // Read twice: reading does not consume the runs.
            for _ in 0..2 {
                let got: Vec<Stored> = runs.read().unwrap().map(Result::unwrap).collect();
                assert_eq!(got.len(), want.len());
                for (g, (_, w)) in got.iter().zip(&want) {
                    assert_eq!(
                        (&g.finding, g.rank, &g.ack),
                        (&w.finding, w.rank, &w.ack),
                        "{per_run} per run"
                    );
                }
            }
        }
    }

    fn stored_copy(s: &Stored) -> Stored {
        Stored {
            finding: s.finding.clone(),
            rank: s.rank,
            ack: s.ack.clone(),
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let mut record = Vec::new();
        encode(&stored(4), &mut record).unwrap();
        let body = &record[4..];
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_err());
        // Every byte flipped in turn: an error or some finding, never a panic.
        for at in 0..body.len() {
            let mut bad = body.to_vec();
            bad[at] ^= 0xff;
            let _ = decode(&bad);
        }
    }
}
