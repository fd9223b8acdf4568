//! Acknowledgments: findings a team has accepted, kept in a checked-in
//! `.perf-sentinel-acknowledgments.toml` (spec 05 §5).
//!
//! ```toml
//! [[acknowledged]]
//! signature = "n_plus_one_sql:billing:GET__invoices_{id}:<32 hex chars>"
//! acknowledged_by = "team-payments"
//! acknowledged_at = "2026-03-02"
//! reason = "Batch rewrite planned in ticket PAY-118"
//! expires_at = "2026-06-30"   # optional; the entry lapses after that day (UTC)
//! ```
//!
//! Matching is by exact signature. Acknowledged findings leave `findings` and
//! the quality gate; the waste ratio is not recomputed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::report::AcknowledgedFinding;

/// The file looked up in the working directory.
pub const DEFAULT_ACK_FILE: &str = ".perf-sentinel-acknowledgments.toml";
/// Largest acknowledgments file read, in bytes.
pub const MAX_ACK_BYTES: u64 = 16 * 1024 * 1024;

/// One `[[acknowledged]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgment {
    pub signature: String,
    pub acknowledged_by: String,
    pub acknowledged_at: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Deserialize)]
struct AckFile {
    #[serde(default)]
    acknowledged: Vec<Acknowledgment>,
}

/// The active acknowledgments of a file, by signature (a later duplicate wins).
#[derive(Debug, Clone, Default)]
pub struct Acknowledgments {
    active: BTreeMap<String, Acknowledgment>,
    /// Entries that have expired, for the record.
    pub expired: Vec<Acknowledgment>,
}

/// Days since the epoch of a `YYYY-MM-DD` date.
fn parse_date(s: &str) -> Option<i64> {
    let nanos = crate::time::parse_timestamp(&format!("{s}T00:00:00Z"))?;
    (s.len() == 10).then_some(nanos / 86_400_000_000_000)
}

impl Acknowledgments {
    /// Loads a file. `now_unix_secs` decides which entries have expired.
    /// Symlinks, files over 16 MiB, TOML errors, missing fields and bad
    /// `expires_at` dates are errors naming the file (and line).
    pub fn load(path: &Path, now_unix_secs: i64) -> Result<Acknowledgments, String> {
        let name = path.display();
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{name}: cannot read acknowledgments: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{name}: acknowledgments file is a symbolic link; refusing to follow it"
            ));
        }
        if meta.len() > MAX_ACK_BYTES {
            return Err(format!(
                "{name}: acknowledgments file is larger than {MAX_ACK_BYTES} bytes"
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read acknowledgments: {e}"))?;
        Acknowledgments::parse(&text, &name.to_string(), now_unix_secs)
    }

    /// Parses acknowledgments text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, now_unix_secs: i64) -> Result<Acknowledgments, String> {
        let file: AckFile = toml::from_str(text).map_err(|e| {
            let pos = e.span().map_or(String::new(), |s| {
                let before = &text[..s.start.min(text.len())];
                format!(
                    ":{}:{}",
                    before.lines().count().max(1),
                    before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1
                )
            });
            format!("{origin}{pos}: invalid acknowledgments file: {}", e.message())
        })?;
        let today = now_unix_secs.div_euclid(86_400);
        let mut out = Acknowledgments::default();
        for (i, a) in file.acknowledged.into_iter().enumerate() {
            let active = match &a.expires_at {
                None => true,
                Some(d) => {
                    let day = parse_date(d).ok_or_else(|| {
                        format!(
                            "{origin}: entry {} ({}): expires_at `{d}` is not a YYYY-MM-DD date",
                            i + 1,
                            a.signature
                        )
                    })?;
                    // Active through the whole expiry day, UTC.
                    day >= today
                }
            };
            if active {
                out.active.insert(a.signature.clone(), a);
            } else {
                out.expired.push(a);
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Splits findings into those that remain and those acknowledged.
    pub fn apply(&self, findings: Vec<Finding>) -> (Vec<Finding>, Vec<AcknowledgedFinding>) {
        let mut kept = Vec::with_capacity(findings.len());
        let mut acked = Vec::new();
        for f in findings {
            match self.active.get(&f.signature) {
                Some(a) => acked.push(AcknowledgedFinding {
                    finding: f,
                    acknowledgment: serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
                }),
                None => kept.push(f),
            }
        }
        (kept, acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn expiry_is_inclusive_of_the_day() {
        let text = "[[acknowledged]]\nsignature = \"s\"\nacknowledged_by = \"a\"\nacknowledged_at = \"x\"\nreason = \"r\"\nexpires_at = \"2026-06-30\"\n";
        let end_of_day = parse_date("2026-06-30").unwrap() * DAY + DAY - 1;
        assert_eq!(Acknowledgments::parse(text, "f", end_of_day).unwrap().len(), 1);
        assert_eq!(Acknowledgments::parse(text, "f", end_of_day + 1).unwrap().len(), 0);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = Acknowledgments::parse("[[acknowledged]]\nsignature = \"s\"\n", "acks.toml", 0).unwrap_err();
        assert!(e.starts_with("acks.toml:1:") && e.contains("missing field"), "{e}");
        let text = "[[acknowledged]]\nsignature = \"s\"\nacknowledged_by = \"a\"\nacknowledged_at = \"x\"\nreason = \"r\"\nexpires_at = \"June\"\n";
        assert!(
            Acknowledgments::parse(text, "acks.toml", 0)
                .unwrap_err()
                .contains("YYYY-MM-DD")
        );
    }
}
