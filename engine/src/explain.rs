//! `explain`: one trace as a span tree, with findings anchored on their spans.
//!
//! The JSON shape is the reference's (`GET /api/explain/{trace_id}`):
//! `{trace_id, trace_level_findings?, roots: [node]}`, a node being
//! `{span_id, parent_span_id, service, template, operation, duration_us,
//! timestamp, children, findings?}`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::finding::{CodeLocation, Finding, Severity, SuggestedFix};
use crate::render::clean;
use crate::trace::Trace;

/// A finding as shown inside the tree.
#[derive(Debug, Clone, Serialize)]
pub struct InlineFinding {
    #[serde(rename = "type")]
    pub finding_type: String,
    pub severity: Severity,
    pub occurrences: u64,
    pub suggestion: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_fix: Option<SuggestedFix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_location: Option<CodeLocation>,
}

impl From<&Finding> for InlineFinding {
    fn from(f: &Finding) -> Self {
        InlineFinding {
            finding_type: f.finding_type.clone(),
            severity: f.severity,
            occurrences: f.pattern.occurrences,
            suggestion: f.suggestion.clone(),
            suggested_fix: f.suggested_fix.clone(),
            code_location: f.code_location.clone(),
        }
    }
}

/// A span and its children.
#[derive(Debug, Clone, Serialize)]
pub struct SpanNode {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub template: String,
    pub operation: String,
    pub duration_us: u64,
    pub timestamp: String,
    pub children: Vec<SpanNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<InlineFinding>,
}

/// The explanation of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub trace_id: String,
    /// Findings about the trace as a whole (chatty service, pool saturation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace_level_findings: Vec<InlineFinding>,
    /// Spans whose parent is not in the trace, with their descendants.
    pub roots: Vec<SpanNode>,
}

/// Deepest tree rendered; deeper spans are cut (a parent cycle cannot loop).
const MAX_DEPTH: usize = 256;

fn is_trace_level(f: &Finding) -> bool {
    f.trace_level || f.span_ids.is_empty()
}

/// Builds the span tree of `trace` and anchors `findings` on it.
pub fn explain(trace: &Trace, findings: &[Finding]) -> Explanation {
    let present: BTreeSet<&str> = trace.spans.iter().map(|s| s.event.span_id.as_str()).collect();
    let mut anchored: BTreeMap<&str, Vec<InlineFinding>> = BTreeMap::new();
    for f in findings.iter().filter(|f| !is_trace_level(f)) {
        // A finding shows on the first of its spans; the rest carry no copy.
        if let Some(first) = f.span_ids.first() {
            anchored.entry(first.as_str()).or_default().push(f.into());
        }
    }
    let mut children: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut roots: Vec<usize> = Vec::new();
    for (i, s) in trace.spans.iter().enumerate() {
        match s.event.parent_span_id.as_deref() {
            Some(p) if present.contains(p) && p != s.event.span_id => children.entry(p).or_default().push(i),
            _ => roots.push(i),
        }
    }
    struct Ctx<'a> {
        trace: &'a Trace,
        children: BTreeMap<&'a str, Vec<usize>>,
        anchored: BTreeMap<&'a str, Vec<InlineFinding>>,
        seen: BTreeSet<usize>,
    }
    fn build(ctx: &mut Ctx<'_>, i: usize, depth: usize) -> SpanNode {
        ctx.seen.insert(i);
        let s = &ctx.trace.spans[i];
        let id = s.event.span_id.as_str();
        let kids: Vec<usize> = ctx.children.get(id).cloned().unwrap_or_default();
        let children = if depth < MAX_DEPTH {
            kids.into_iter()
                .filter(|k| !ctx.seen.contains(k))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|k| build(ctx, k, depth + 1))
                .collect()
        } else {
            Vec::new()
        };
        SpanNode {
            span_id: id.to_owned(),
            parent_span_id: s.event.parent_span_id.as_ref().map(|p| p.to_string()),
            service: s.event.service.to_string(),
            template: s.template.to_string(),
            operation: s.event.operation.to_string(),
            duration_us: s.event.duration_us,
            timestamp: s.event.timestamp.to_string(),
            children,
            findings: ctx.anchored.remove(id).unwrap_or_default(),
        }
    }
    let mut ctx = Ctx {
        trace,
        children,
        anchored,
        seen: BTreeSet::new(),
    };
    let roots = roots.into_iter().map(|i| build(&mut ctx, i, 0)).collect();
    Explanation {
        trace_id: trace.trace_id.clone(),
        trace_level_findings: findings
            .iter()
            .filter(|f| is_trace_level(f))
            .map(InlineFinding::from)
            .collect(),
        roots,
    }
}

impl Explanation {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The tree as indented text, findings after their spans.
    pub fn to_text(&self) -> String {
        let mut o = format!("Trace {}\n", clean(&self.trace_id));
        for f in &self.trace_level_findings {
            let _ = writeln!(
                o,
                "  ! [{}] {} (x{}): {}",
                f.severity.as_str(),
                f.finding_type,
                f.occurrences,
                clean(&f.suggestion)
            );
        }
        fn node(o: &mut String, n: &SpanNode, depth: usize) {
            let pad = "  ".repeat(depth + 1);
            let _ = writeln!(
                o,
                "{pad}{} {:.1} ms  {}",
                clean(&n.service),
                n.duration_us as f64 / 1000.0,
                clean(&n.template)
            );
            for f in &n.findings {
                let _ = writeln!(
                    o,
                    "{pad}  <- [{}] {} (x{})",
                    f.severity.as_str(),
                    f.finding_type,
                    f.occurrences
                );
            }
            for c in &n.children {
                node(o, c, depth + 1);
            }
        }
        let mut last_parent: Option<&str> = None;
        for r in &self.roots {
            if let Some(p) = r.parent_span_id.as_deref() {
                if last_parent != Some(p) {
                    let _ = writeln!(o, "  (parent {} is not in the trace)", clean(p));
                }
            }
            last_parent = r.parent_span_id.as_deref();
            node(&mut o, r, 0);
        }
        o
    }
}
