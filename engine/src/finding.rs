//! Findings: what a detector reports, in the JSON report's shape (spec 05 §1).

use serde::{Deserialize, Serialize};

/// How bad a finding is. Sorts most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Where a finding was produced, which says how much to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Batch analysis of a captured file (`analyze`).
    #[default]
    CiBatch,
    /// The daemon, `[daemon] environment = "staging"`.
    DaemonStaging,
    /// The daemon, `[daemon] environment = "production"`.
    DaemonProduction,
}

/// The repeated operation behind a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Pattern {
    /// Normalized statement or `METHOD /path`; some detectors put a service,
    /// an endpoint or `parent:<id>` here (see each detector's docs).
    pub template: String,
    pub occurrences: u64,
    pub window_ms: u64,
    pub distinct_params: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_duration_us_p50: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_duration_us_p99: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_duration_cv_x1000: Option<u64>,
}

/// Source location from OpenTelemetry `code.*` attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CodeLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filepath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// GreenOps impact of one finding, filled by scorers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GreenImpact {
    pub estimated_extra_io_ops: u64,
    pub io_intensity_score: f64,
    pub io_intensity_band: String,
}

impl Confidence {
    /// The spelling used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::CiBatch => "ci_batch",
            Confidence::DaemonStaging => "daemon_staging",
            Confidence::DaemonProduction => "daemon_production",
        }
    }
}

/// A framework-specific fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestedFix {
    pub pattern: String,
    pub framework: String,
    pub recommendation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_url: Option<String>,
}

/// One detected anti-pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The detector id, e.g. `n_plus_one_sql`.
    #[serde(rename = "type")]
    pub finding_type: String,
    pub severity: Severity,
    pub trace_id: String,
    pub service: String,
    pub source_endpoint: String,
    pub pattern: Pattern,
    pub suggestion: String,
    pub first_timestamp: String,
    pub last_timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_impact: Option<GreenImpact>,
    #[serde(default)]
    pub confidence: Confidence,
    /// How the finding was classified when not by its plain rule, e.g.
    /// `sanitizer_heuristic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_location: Option<CodeLocation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instrumentation_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_fix: Option<SuggestedFix>,
    /// Stable identity across runs (spec 05 §5); filled by the engine.
    #[serde(default)]
    pub signature: String,
    /// Ids of the spans the finding is about, in trace order (for `explain`).
    #[serde(skip)]
    pub span_ids: Vec<String>,
    /// Whether the finding is about the trace as a whole (e.g. too many calls
    /// in total) rather than about its spans; `explain` shows it in the header.
    #[serde(skip)]
    pub trace_level: bool,
}

/// Characters removed from names before they go into signatures, SARIF and
/// terminal output: BiDi controls and invisible characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` without BiDi and invisible characters.
pub fn strip_invisible(s: &str) -> String {
    s.chars().filter(|&c| !is_invisible(c)).collect()
}

impl Finding {
    /// `<type>:<service>:<endpoint>:<first 16 bytes of sha256(template), hex>`.
    ///
    /// The trace id is not part of it, so every recurrence of a pattern shares
    /// one signature; acknowledgments and SARIF fingerprints rely on that.
    pub fn compute_signature(&self) -> String {
        use sha2::{Digest, Sha256};
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(self.pattern.template.as_bytes());
        let mut out =
            String::with_capacity(self.finding_type.len() + self.service.len() + self.source_endpoint.len() + 3 + 32);
        out.push_str(&self.finding_type);
        out.push(':');
        out.extend(self.service.chars().filter(|&c| !is_invisible(c)));
        out.push(':');
        out.extend(
            self.source_endpoint
                .chars()
                .map(|c| if c == '/' || c == ' ' { '_' } else { c })
                .filter(|&c| !is_invisible(c)),
        );
        out.push(':');
        for b in &digest[..16] {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_reference() {
        let f = Finding {
            finding_type: "n_plus_one_sql".into(),
            severity: Severity::Warning,
            trace_id: "t".into(),
            service: "order-svc".into(),
            source_endpoint: "POST /api/orders/42/submit".into(),
            pattern: Pattern {
                template: "SELECT * FROM order_item WHERE order_id = ?".into(),
                ..Pattern::default()
            },
            suggestion: String::new(),
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            green_impact: None,
            confidence: Confidence::CiBatch,
            classification_method: None,
            code_location: None,
            instrumentation_scopes: vec![],
            suggested_fix: None,
            signature: String::new(),
            span_ids: vec![],
            trace_level: false,
        };
        assert_eq!(
            f.compute_signature(),
            "n_plus_one_sql:order-svc:POST__api_orders_42_submit:c69d2f3ae7f5c6cdb2c6762367852ec7"
        );
    }
}
