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
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        serde_json::to_writer_pretty(&mut w, self).map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
        w.flush()
    }
}
