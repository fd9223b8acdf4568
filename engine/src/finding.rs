//! Findings: what a detector reports, in the JSON report's shape (spec 05 §1).

use std::borrow::Cow;

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
    pub span_ids: Vec<crate::trace::CompactString>,
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
        self.signature_of(&Sha256::digest(self.pattern.template.as_bytes())[..16])
    }

    /// [`Finding::compute_signature`], with the template's digest taken
    /// from `signer` when it has seen the template before.
    pub fn signature_with(&self, signer: &mut Signer) -> String {
        self.signature_of(&signer.digest(&self.pattern.template))
    }

    /// The signature, given the first 16 bytes of the template's digest.
    fn signature_of(&self, digest: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let underscore = |b: u8| if b == b'/' || b == b' ' { b'_' } else { b };
        let mut out: Vec<u8> =
            Vec::with_capacity(self.finding_type.len() + self.service.len() + self.source_endpoint.len() + 3 + 32);
        out.extend_from_slice(self.finding_type.as_bytes());
        out.push(b':');
        // Every invisible character is outside ASCII: ASCII text is kept whole.
        fn visible(s: &str) -> Cow<'_, str> {
            if s.is_ascii() {
                Cow::Borrowed(s)
            } else {
                Cow::Owned(strip_invisible(s))
            }
        }
        out.extend_from_slice(visible(&self.service).as_bytes());
        out.push(b':');
        out.extend(visible(&self.source_endpoint).bytes().map(underscore));
        out.push(b':');
        for b in digest {
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        // Whole UTF-8 texts and ASCII bytes: the conversion cannot fail.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// Signs findings, remembering the digest of each template it has hashed:
/// a batch's findings share few templates, and a lookup costs a fraction
/// of a SHA-256.
#[derive(Default)]
pub struct Signer {
    digests: foldhash::HashMap<String, [u8; 16]>,
}

impl Signer {
    /// Templates remembered before the memory starts over.
    const MAX_TEMPLATES: usize = 4096;

    fn digest(&mut self, template: &str) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        if let Some(d) = self.digests.get(template) {
            return *d;
        }
        let mut d = [0; 16];
        d.copy_from_slice(&Sha256::digest(template.as_bytes())[..16]);
        if self.digests.len() >= Self::MAX_TEMPLATES {
            self.digests.clear();
        }
        self.digests.insert(template.to_owned(), d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Finding {
        Finding {
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
        }
    }

    #[test]
    fn signature_matches_the_reference() {
        let f = sample();
        assert_eq!(
            f.compute_signature(),
            "n_plus_one_sql:order-svc:POST__api_orders_42_submit:c69d2f3ae7f5c6cdb2c6762367852ec7"
        );
        let mut signer = Signer::default();
        assert_eq!(f.signature_with(&mut signer), f.compute_signature());
        assert_eq!(
            f.signature_with(&mut signer),
            f.compute_signature(),
            "remembered digest"
        );
    }

    #[test]
    fn signature_drops_invisible_characters_outside_ascii() {
        let mut f = sample();
        f.service = "order\u{200b}-svc".into();
        f.source_endpoint = "POST /api/caf\u{e9}\u{202e}s/{id}".into();
        assert_eq!(
            f.compute_signature(),
            "n_plus_one_sql:order-svc:POST__api_caf\u{e9}s_{id}:c69d2f3ae7f5c6cdb2c6762367852ec7"
        );
    }

    #[test]
    fn a_signer_signs_as_the_finding_does_past_its_memory() {
        let mut signer = Signer::default();
        let n = Signer::MAX_TEMPLATES + 10;
        // Each template three times, in an order that revisits old ones
        // after the memory has started over.
        for round in 0..3 {
            for i in 0..n {
                let i = (i * 7 + round * 13) % n;
                let mut f = sample();
                f.service = "s\u{200b}vc".into();
                f.pattern.template = format!("SELECT {i} FROM t WHERE id = ?");
                assert_eq!(f.signature_with(&mut signer), f.compute_signature(), "template {i}");
            }
        }
        assert!(signer.digests.len() <= Signer::MAX_TEMPLATES);
    }
}
