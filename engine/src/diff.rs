//! `diff`: what changed between two analyses (spec 05 §6).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::finding::{Finding, Severity};
use crate::registry::EndpointIo;
use crate::report::BatchReport;

/// A finding whose severity changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityChange {
    /// The finding as it is after.
    pub finding: Finding,
    pub before_severity: Severity,
    pub after_severity: Severity,
}

/// I/O of one endpoint before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointDelta {
    pub service: String,
    pub endpoint: String,
    pub before_io_ops: u64,
    pub after_io_ops: u64,
    pub delta: i64,
}

/// The whole comparison; every key is always present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Diff {
    pub new_findings: Vec<Finding>,
    pub resolved_findings: Vec<Finding>,
    pub severity_changes: Vec<SeverityChange>,
    pub endpoint_metric_deltas: Vec<EndpointDelta>,
}

type Identity = (String, String, String, String);

fn identity(f: &Finding) -> Identity {
    (
        f.finding_type.clone(),
        f.service.clone(),
        f.source_endpoint.clone(),
        f.pattern.template.clone(),
    )
}

/// Collapses findings with one identity: the most severe one (the first in
/// sorted order among equals) with the sum of their occurrences. Only one
/// finding per identity is held, however many are read.
fn collapse<'a>(
    findings: impl Iterator<Item = std::io::Result<Cow<'a, Finding>>>,
) -> std::io::Result<BTreeMap<Identity, Finding>> {
    let mut out: BTreeMap<Identity, Finding> = BTreeMap::new();
    for f in findings {
        let f = f?;
        match out.get_mut(&identity(&f)) {
            Some(kept) => {
                let total = kept.pattern.occurrences + f.pattern.occurrences;
                if f.severity < kept.severity {
                    *kept = f.into_owned();
                }
                kept.pattern.occurrences = total;
            }
            None => {
                out.insert(identity(&f), f.into_owned());
            }
        }
    }
    Ok(out)
}

/// Compares two analyses' findings and endpoint I/O.
pub fn diff(engine: &Engine, before: (&[Finding], &[EndpointIo]), after: (&[Finding], &[EndpointIo])) -> Diff {
    let held = |findings: &[Finding]| match collapse(findings.iter().map(|f| Ok(Cow::Borrowed(f)))) {
        Ok(collapsed) => collapsed,
        Err(_) => unreachable!("held findings are read without I/O"),
    };
    compare(engine, (held(before.0), before.1), (held(after.0), after.1))
}

/// Like [`diff`], for batch reports whose findings may lie in temporary
/// files (as `analyze` and `diff` make them for large inputs): each side's
/// findings are read once, in report order, holding one per identity.
pub fn diff_reports(engine: &Engine, before: &BatchReport<'_>, after: &BatchReport<'_>) -> std::io::Result<Diff> {
    let a = collapse(before.findings()?)?;
    let b = collapse(after.findings()?)?;
    Ok(compare(
        engine,
        (a, &before.header().per_endpoint_io_ops),
        (b, &after.header().per_endpoint_io_ops),
    ))
}

type Side<'a> = (BTreeMap<Identity, Finding>, &'a [EndpointIo]);

fn compare(engine: &Engine, (a, before_io): Side<'_>, (b, after_io): Side<'_>) -> Diff {
    let mut new_findings: Vec<Finding> = b
        .iter()
        .filter(|(k, _)| !a.contains_key(*k))
        .map(|(_, f)| f.clone())
        .collect();
    let mut resolved_findings: Vec<Finding> = a
        .iter()
        .filter(|(k, _)| !b.contains_key(*k))
        .map(|(_, f)| f.clone())
        .collect();
    engine.sort_findings(&mut new_findings);
    engine.sort_findings(&mut resolved_findings);
    let mut severity_changes: Vec<SeverityChange> = b
        .iter()
        .filter_map(|(k, fb)| {
            let fa = a.get(k)?;
            (fa.severity != fb.severity).then(|| SeverityChange {
                finding: fb.clone(),
                before_severity: fa.severity,
                after_severity: fb.severity,
            })
        })
        .collect();
    // Regressions (more severe after) first, then by identity.
    severity_changes.sort_by(|x, y| {
        // Severity sorts most severe first, so a regression has after < before.
        let not_regression = |c: &SeverityChange| c.after_severity >= c.before_severity;
        not_regression(x)
            .cmp(&not_regression(y))
            .then_with(|| identity(&x.finding).cmp(&identity(&y.finding)))
    });
    let ops = |v: &[EndpointIo]| -> BTreeMap<(String, String), u64> {
        v.iter()
            .map(|e| ((e.service.clone(), e.endpoint.clone()), e.io_ops))
            .collect()
    };
    let (oa, ob) = (ops(before_io), ops(after_io));
    let mut keys: Vec<&(String, String)> = oa.keys().chain(ob.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut endpoint_metric_deltas: Vec<EndpointDelta> = keys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (oa.get(k).copied().unwrap_or(0), ob.get(k).copied().unwrap_or(0));
            (x != y).then(|| EndpointDelta {
                service: k.0.clone(),
                endpoint: k.1.clone(),
                before_io_ops: x,
                after_io_ops: y,
                delta: y as i64 - x as i64,
            })
        })
        .collect();
    endpoint_metric_deltas.sort_by(|x, y| {
        y.delta
            .cmp(&x.delta)
            .then_with(|| (&x.service, &x.endpoint).cmp(&(&y.service, &y.endpoint)))
    });
    Diff {
        new_findings,
        resolved_findings,
        severity_changes,
        endpoint_metric_deltas,
    }
}

impl Diff {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The text rendering: counts, then each section.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let clean = crate::render::clean;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "perf-sentinel diff: {} new, {} resolved, {} severity changes, {} endpoint deltas",
            self.new_findings.len(),
            self.resolved_findings.len(),
            self.severity_changes.len(),
            self.endpoint_metric_deltas.len()
        );
        for (title, list) in [
            ("New findings", &self.new_findings),
            ("Resolved findings", &self.resolved_findings),
        ] {
            if !list.is_empty() {
                let _ = writeln!(o, "\n{title}:");
                for f in list {
                    let _ = writeln!(
                        o,
                        "  [{}] {} {} {}: {} (x{})",
                        f.severity.as_str(),
                        f.finding_type,
                        clean(&f.service),
                        clean(&f.source_endpoint),
                        clean(&f.pattern.template),
                        f.pattern.occurrences
                    );
                }
            }
        }
        if !self.severity_changes.is_empty() {
            let _ = writeln!(o, "\nSeverity changes:");
            for c in &self.severity_changes {
                let f = &c.finding;
                let _ = writeln!(
                    o,
                    "  {} -> {} {} {} {}: {}",
                    c.before_severity.as_str(),
                    c.after_severity.as_str(),
                    f.finding_type,
                    clean(&f.service),
                    clean(&f.source_endpoint),
                    clean(&f.pattern.template)
                );
            }
        }
        if !self.endpoint_metric_deltas.is_empty() {
            let _ = writeln!(o, "\nEndpoint I/O deltas:");
            for d in &self.endpoint_metric_deltas {
                let _ = writeln!(
                    o,
                    "  {:+} {} {} ({} -> {})",
                    d.delta,
                    clean(&d.service),
                    clean(&d.endpoint),
                    d.before_io_ops,
                    d.after_io_ops
                );
            }
        }
        o
    }
}
