//! The batch report (spec 05 §1) and its quality gate.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::finding_spill::Runs;
use crate::registry::{EndpointIo, FindingScore};

/// `analysis`: what was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AnalysisInfo {
    /// Always 0 in JSON and SARIF, so that identical input gives identical
    /// bytes; `bench` and the text output measure time.
    pub duration_ms: u64,
    pub events_processed: u64,
    pub traces_analyzed: u64,
    /// Spans of OTLP, Jaeger or Zipkin input that were not SQL or HTTP I/O.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spans_without_io_attributes: u64,
    /// Events whose timestamp does not parse as UTC ISO-8601: their window is
    /// 0 and overlap checks leave them out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_with_unparseable_timestamp: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One quality-gate rule's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub rule: String,
    pub threshold: f64,
    pub actual: f64,
    pub passed: bool,
}

/// `quality_gate`: passed when every rule passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QualityGate {
    pub passed: bool,
    pub rules: Vec<GateResult>,
}

/// An acknowledged finding and the entry that acknowledged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcknowledgedFinding {
    pub finding: Finding,
    pub acknowledgment: serde_json::Value,
}

/// The whole batch report, keys in the reference's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub analysis: AnalysisInfo,
    pub findings: Vec<Finding>,
    pub green_summary: serde_json::Map<String, serde_json::Value>,
    pub quality_gate: QualityGate,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_endpoint_io_ops: Vec<EndpointIo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledged_findings: Vec<AcknowledgedFinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_version: Option<String>,
}

impl Report {
    /// Pretty JSON, two-space indent, one trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// Writes what [`Report::to_json`] returns, without holding it in memory.
    pub fn write_json(&self, w: impl Write) -> io::Result<()> {
        BatchReport::of(self).write_json(true, w)
    }
}

/// Findings by type and severity: what the quality gate and the text
/// summary count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingCounts {
    /// type -> findings by severity (critical, warning, info).
    by_type: BTreeMap<String, [u64; 3]>,
}

impl FindingCounts {
    pub fn of(findings: &[Finding]) -> FindingCounts {
        let mut counts = FindingCounts::default();
        for f in findings {
            counts.add(f);
        }
        counts
    }

    pub fn add(&mut self, f: &Finding) {
        let slot = match self.by_type.get_mut(f.finding_type.as_str()) {
            Some(slot) => slot,
            None => self.by_type.entry(f.finding_type.clone()).or_default(),
        };
        slot[f.severity as usize] += 1;
    }

    pub fn total(&self) -> u64 {
        self.by_type.values().flatten().sum()
    }

    pub fn severity(&self, severity: Severity) -> u64 {
        self.by_type.values().map(|n| n[severity as usize]).sum()
    }

    /// Findings of `finding_type` at `min_severity` or more severe.
    pub fn at_least(&self, finding_type: &str, min_severity: Severity) -> u64 {
        self.by_type
            .get(finding_type)
            .map_or(0, |n| n[..=min_severity as usize].iter().sum())
    }

    /// Findings per type, by type.
    pub fn by_type(&self) -> impl Iterator<Item = (&str, u64)> {
        self.by_type.iter().map(|(t, n)| (t.as_str(), n.iter().sum()))
    }
}

/// The findings of a batch too large to hold, in temporary files; see
/// [`Engine::report_spans_spilling`](crate::Engine::report_spans_spilling).
pub struct SpilledFindings {
    pub(crate) kept: Runs,
    pub(crate) acked: Runs,
    pub(crate) counts: FindingCounts,
    /// Each scorer's part of a finding, applied as it is read.
    pub(crate) scores: Vec<FindingScore>,
}

impl SpilledFindings {
    fn scored(&self, mut f: Finding) -> Finding {
        for score in &self.scores {
            score(&mut f);
        }
        f
    }
}

/// An error reading findings back, naming where they are.
fn read_error(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), crate::ingest::IngestError::spill(&e, "findings"))
}

/// Findings in report order, read one at a time.
pub type FindingIter<'a, T> = Box<dyn Iterator<Item = io::Result<Cow<'a, T>>> + 'a>;

/// A batch report whose findings are held in it or, for a batch with more
/// than it may hold, read back from temporary files each time they are
/// asked for. Written to JSON, SARIF and text like a [`Report`], byte for
/// byte the same.
pub struct BatchReport<'a> {
    report: Cow<'a, Report>,
    spilled: Option<SpilledFindings>,
}

impl<'a> BatchReport<'a> {
    /// A report with its findings held.
    pub fn of(report: &'a Report) -> BatchReport<'a> {
        BatchReport {
            report: Cow::Borrowed(report),
            spilled: None,
        }
    }

    pub(crate) fn new(report: Report, spilled: Option<SpilledFindings>) -> BatchReport<'static> {
        BatchReport {
            report: Cow::Owned(report),
            spilled,
        }
    }

    /// Everything but the findings and acknowledged findings, which are
    /// empty here when they were written out.
    pub fn header(&self) -> &Report {
        &self.report
    }

    /// Whether the findings lie in temporary files.
    pub fn spilled(&self) -> bool {
        self.spilled.is_some()
    }

    /// The report with every finding held.
    pub fn into_report(self) -> io::Result<Report> {
        if self.spilled.is_none() {
            return Ok(self.report.into_owned());
        }
        let mut findings = Vec::new();
        for f in self.findings()? {
            findings.push(f?.into_owned());
        }
        let mut acknowledged = Vec::new();
        for a in self.acknowledged()? {
            acknowledged.push(a?.into_owned());
        }
        let mut report = self.report.into_owned();
        report.findings = findings;
        report.acknowledged_findings = acknowledged;
        Ok(report)
    }

    pub fn counts(&self) -> FindingCounts {
        match &self.spilled {
            Some(s) => s.counts.clone(),
            None => FindingCounts::of(&self.report.findings),
        }
    }

    pub fn acknowledged_len(&self) -> usize {
        match &self.spilled {
            Some(s) => s.acked.len(),
            None => self.report.acknowledged_findings.len(),
        }
    }

    /// The findings, in report order.
    pub fn findings(&self) -> io::Result<FindingIter<'_, Finding>> {
        Ok(match &self.spilled {
            Some(s) => Box::new(
                s.kept
                    .read()
                    .map_err(read_error)?
                    .map(|r| r.map(|stored| Cow::Owned(s.scored(stored.finding))).map_err(read_error)),
            ),
            None => Box::new(self.report.findings.iter().map(|f| Ok(Cow::Borrowed(f)))),
        })
    }

    /// The acknowledged findings, in report order.
    pub fn acknowledged(&self) -> io::Result<FindingIter<'_, AcknowledgedFinding>> {
        Ok(match &self.spilled {
            Some(s) => Box::new(s.acked.read().map_err(read_error)?.map(|r| {
                r.map(|stored| {
                    Cow::Owned(AcknowledgedFinding {
                        finding: s.scored(stored.finding),
                        acknowledgment: stored.ack.unwrap_or_default(),
                    })
                })
                .map_err(read_error)
            })),
            None => Box::new(self.report.acknowledged_findings.iter().map(|a| Ok(Cow::Borrowed(a)))),
        })
    }

    /// Writes the report as [`Report::to_json`] would, the acknowledged
    /// findings only if `acknowledged`, holding one slice of findings at
    /// a time.
    pub fn write_json(&self, acknowledged: bool, w: impl Write) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(1 << 16, w);
        let report = &*self.report;
        let acked = acknowledged && self.acknowledged_len() > 0;
        let frame = Frame {
            analysis: &report.analysis,
            findings: [],
            green_summary: &report.green_summary,
            quality_gate: &report.quality_gate,
            per_endpoint_io_ops: &report.per_endpoint_io_ops,
            acknowledged_findings: acked.then_some([]),
            binary_version: &report.binary_version,
        };
        let frame = serde_json::to_vec_pretty(&frame).map_err(io::Error::other)?;
        // Top-level keys are the only ones two spaces in (`analysis` holds
        // numbers only, and deeper keys sit further in).
        const FINDINGS: &[u8] = b"\n  \"findings\": []";
        const ACKED: &[u8] = b"\n  \"acknowledged_findings\": []";
        let mut from = 0;
        for (key, on) in [(FINDINGS, true), (ACKED, acked)] {
            if !on {
                continue;
            }
            let Some(at) = memchr::memmem::find(&frame[from..], key).map(|at| from + at) else {
                return Err(io::Error::other("a report key is missing from its frame"));
            };
            // Up to and with the `[`.
            let open = at + key.len() - 1;
            w.write_all(&frame[from..open])?;
            let written = if key == FINDINGS {
                write_elements(&mut w, self.findings()?)?
            } else {
                write_elements(&mut w, self.acknowledged()?)?
            };
            if written > 0 {
                w.write_all(b"\n  ")?;
            }
            from = open;
        }
        w.write_all(&frame[from..])?;
        w.write_all(b"\n")?;
        w.flush()
    }
}

/// Writes pretty JSON elements of a top-level array after its `[` (each on
/// a new line, four spaces in, commas between), a slice at a time
/// serialized over the cores. Gives how many bytes it wrote.
fn write_elements<T: Serialize + Clone + Sync>(w: &mut impl Write, items: FindingIter<'_, T>) -> io::Result<usize> {
    let mut batch: Vec<Cow<'_, T>> = Vec::with_capacity(FINDINGS_PER_BATCH);
    let mut written = 0;
    let mut items = items.peekable();
    while items.peek().is_some() {
        batch.clear();
        for item in items.by_ref().take(FINDINGS_PER_BATCH) {
            batch.push(item?);
        }
        let parts = crate::parallel::map_chunks(&batch, 64, |chunk| -> serde_json::Result<Vec<u8>> {
            let (mut out, mut one) = (Vec::new(), Vec::new());
            for item in chunk {
                one.clear();
                serde_json::to_writer_pretty(&mut one, &**item)?;
                if out.is_empty() {
                    // Sized on the first one, with a margin for the
                    // indentation, instead of doubling from nothing.
                    out.reserve((one.len() + one.len() / 4 + 8) * chunk.len());
                }
                out.extend_from_slice(b",\n    ");
                indent(&one, &mut out);
            }
            Ok(out)
        });
        for part in parts {
            let part = part.map_err(io::Error::other)?;
            // The array's first element has no comma before it.
            let skip = usize::from(written == 0);
            w.write_all(&part[skip..])?;
            written += part.len();
        }
    }
    Ok(written)
}

/// Findings serialized in one parallel step of [`BatchReport::write_json`].
const FINDINGS_PER_BATCH: usize = 256;

/// [`Report`] without its findings, field for field, to write them apart.
#[derive(Serialize)]
struct Frame<'a> {
    analysis: &'a AnalysisInfo,
    findings: [Finding; 0],
    green_summary: &'a serde_json::Map<String, serde_json::Value>,
    quality_gate: &'a QualityGate,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    per_endpoint_io_ops: &'a [EndpointIo],
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledged_findings: Option<[AcknowledgedFinding; 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_version: &'a Option<String>,
}

/// Copies pretty JSON text four spaces further in: a finding as it sits
/// in the report's `findings` array. (Pretty JSON breaks lines only
/// between tokens; newlines inside strings are escaped.)
fn indent(json: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for at in memchr::memchr_iter(b'\n', json) {
        out.extend_from_slice(&json[from..=at]);
        out.extend_from_slice(b"    ");
        from = at + 1;
    }
    out.extend_from_slice(&json[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_json_is_the_pretty_json() {
        let finding: Finding = serde_json::from_str(
            r#"{"type": "slow_sql", "severity": "warning", "trace_id": "t", "service": "reports-svc",
            "source_endpoint": "GET /api/reports/monthly", "pattern": {"template": "SELECT * FROM r WHERE m = ?",
            "occurrences": 3, "window_ms": 1600, "distinct_params": 3, "span_duration_us_p50": 720000},
            "suggestion": "line one\nline two, été", "first_timestamp": "2025-07-10T14:32:05.000Z",
            "last_timestamp": "2025-07-10T14:32:06.600Z", "green_impact": {"estimated_extra_io_ops": 0,
            "io_intensity_score": 3.0, "io_intensity_band": "moderate"}, "confidence": "ci_batch",
            "code_location": {"function": "R.aggregate", "filepath": "r/R.java", "lineno": 128},
            "instrumentation_scopes": ["io.opentelemetry.jdbc"], "signature": "slow_sql:x"}"#,
        )
        .unwrap();
        let mut report = Report {
            analysis: AnalysisInfo::default(),
            findings: Vec::new(),
            green_summary: serde_json::from_str(r#"{"total_io_ops": 3, "top_offenders": [{"a": 1}], "x": {}}"#)
                .unwrap(),
            quality_gate: QualityGate::default(),
            per_endpoint_io_ops: vec![EndpointIo {
                service: "reports-svc".into(),
                endpoint: "GET /api/reports/monthly".into(),
                io_ops: 3,
            }],
            acknowledged_findings: vec![AcknowledgedFinding {
                finding: finding.clone(),
                acknowledgment: serde_json::json!({"reason": "known"}),
            }],
            binary_version: Some("0.8.6".into()),
        };
        let many: Vec<Finding> = (0..2 * FINDINGS_PER_BATCH + 7)
            .map(|i| Finding {
                trace_id: format!("t{i}"),
                ..finding.clone()
            })
            .collect();
        for findings in [Vec::new(), vec![finding.clone()], many] {
            report.findings = findings;
            let mut written = Vec::new();
            report.write_json(&mut written).unwrap();
            let n = report.findings.len();
            assert_eq!(String::from_utf8(written).unwrap(), report.to_json(), "{n} findings");
        }
    }
}
