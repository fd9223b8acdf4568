//! The batch report (spec 05 §1) and its quality gate.

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::registry::EndpointIo;

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
    ///
    /// Findings, most of the text, are serialized on every core, a batch at
    /// a time, each indented as it sits in the report; the rest is written
    /// around them.
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        let frame = Frame {
            analysis: &self.analysis,
            findings: [],
            green_summary: &self.green_summary,
            quality_gate: &self.quality_gate,
            per_endpoint_io_ops: &self.per_endpoint_io_ops,
            acknowledged_findings: &self.acknowledged_findings,
            binary_version: &self.binary_version,
        };
        let frame = serde_json::to_vec_pretty(&frame).map_err(std::io::Error::other)?;
        // `analysis` holds numbers only, so the first match is the key.
        const EMPTY: &[u8] = b"\n  \"findings\": []";
        match memchr::memmem::find(&frame, EMPTY).filter(|_| !self.findings.is_empty()) {
            None => w.write_all(&frame)?,
            Some(at) => {
                let open = at + EMPTY.len() - 1;
                w.write_all(&frame[..open])?;
                for (n, batch) in self.findings.chunks(FINDINGS_PER_BATCH).enumerate() {
                    let parts = crate::parallel::map_chunks(batch, 64, |chunk| -> serde_json::Result<Vec<u8>> {
                        let (mut out, mut one) = (Vec::new(), Vec::new());
                        for f in chunk {
                            one.clear();
                            serde_json::to_writer_pretty(&mut one, f)?;
                            if out.is_empty() {
                                // Sized on the first finding, with a margin for the
                                // indentation, instead of doubling from nothing.
                                out.reserve((one.len() + one.len() / 4 + 8) * chunk.len());
                            }
                            out.extend_from_slice(b",\n    ");
                            indent(&one, &mut out);
                        }
                        Ok(out)
                    });
                    for (i, part) in parts.into_iter().enumerate() {
                        let part = part.map_err(std::io::Error::other)?;
                        // The array's first element has no comma before it.
                        let skip = usize::from(n == 0 && i == 0);
                        w.write_all(&part[skip..])?;
                    }
                }
                w.write_all(b"\n  ]")?;
                w.write_all(&frame[open + 1..])?;
            }
        }
        w.write_all(b"\n")?;
        w.flush()
    }
}

/// Findings serialized in one parallel step of [`Report::write_json`].
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    acknowledged_findings: &'a [AcknowledgedFinding],
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
