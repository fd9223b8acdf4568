//! `explain`: one trace as a span tree, with findings anchored on their spans.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::finding::Finding;
use crate::render::clean;
use crate::trace::Trace;

/// A span and its children.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub span_id: String,
    pub service: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub template: String,
    pub timestamp: String,
    pub duration_us: u64,
    /// Finding types anchored on this span, in report order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// Spans whose parent is not in the trace, grouped under that parent id.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// `None` for spans without a parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_parent: Option<String>,
    pub spans: Vec<Node>,
}

/// The explanation of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub trace_id: String,
    /// Findings not tied to particular spans (or tied to many): chatty
    /// service, pool saturation, fanout.
    pub trace_findings: Vec<Finding>,
    pub roots: Vec<Root>,
    /// Every finding of the trace, sorted as in reports.
    pub findings: Vec<Finding>,
}

fn is_trace_level(f: &Finding) -> bool {
    f.trace_level || f.span_ids.is_empty()
}

/// Builds the span tree of `trace` and anchors `findings` on it.
pub fn explain(trace: &Trace, findings: Vec<Finding>) -> Explanation {
    let present: BTreeSet<&str> = trace.spans.iter().map(|s| s.event.span_id.as_str()).collect();
    let mut anchored: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in findings.iter().filter(|f| !is_trace_level(f)) {
        for id in &f.span_ids {
            anchored.entry(id.as_str()).or_default().push(f.finding_type.clone());
        }
    }
    let mut children: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut roots: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, s) in trace.spans.iter().enumerate() {
        match s.event.parent_span_id.as_deref() {
            Some(p) if present.contains(p) && p != s.event.span_id => children.entry(p).or_default().push(i),
            other => roots.entry(other).or_default().push(i),
        }
    }
    fn build(
        trace: &Trace,
        i: usize,
        children: &BTreeMap<&str, Vec<usize>>,
        anchored: &BTreeMap<&str, Vec<String>>,
        depth: usize,
    ) -> Node {
        let s = &trace.spans[i];
        let id = s.event.span_id.as_str();
        let kids = if depth < 64 {
            children.get(id).map_or_else(Vec::new, |k| {
                k.iter()
                    .map(|&c| build(trace, c, children, anchored, depth + 1))
                    .collect()
            })
        } else {
            Vec::new()
        };
        let mut findings = anchored.get(id).cloned().unwrap_or_default();
        findings.dedup();
        Node {
            span_id: id.to_owned(),
            service: s.event.service.clone(),
            kind: s.event.kind.as_str().to_owned(),
            template: s.template.to_string(),
            timestamp: s.event.timestamp.clone(),
            duration_us: s.event.duration_us,
            findings,
            children: kids,
        }
    }
    let roots = roots
        .into_iter()
        .map(|(parent, idx)| Root {
            missing_parent: parent.map(str::to_owned),
            spans: idx
                .into_iter()
                .map(|i| build(trace, i, &children, &anchored, 0))
                .collect(),
        })
        .collect();
    let trace_findings = findings.iter().filter(|f| is_trace_level(f)).cloned().collect();
    Explanation {
        trace_id: trace.trace_id.clone(),
        trace_findings,
        roots,
        findings,
    }
}

impl Explanation {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The tree as indented text, findings in brackets after their spans.
    pub fn to_text(&self) -> String {
        let mut o = format!("Trace {}\n", clean(&self.trace_id));
        for f in &self.trace_findings {
            let _ = writeln!(
                o,
                "  ! [{}] {} on {}: {} (x{})",
                f.severity.as_str(),
                f.finding_type,
                clean(&f.service),
                clean(&f.pattern.template),
                f.pattern.occurrences
            );
        }
        fn node(o: &mut String, n: &Node, depth: usize) {
            let mark = if n.findings.is_empty() {
                String::new()
            } else {
                format!("  <- {}", n.findings.join(", "))
            };
            let _ = writeln!(
                o,
                "{}{} {} {:.1} ms  {}{}",
                "  ".repeat(depth + 1),
                n.kind,
                clean(&n.service),
                n.duration_us as f64 / 1000.0,
                clean(&n.template),
                mark
            );
            for c in &n.children {
                node(o, c, depth + 1);
            }
        }
        for r in &self.roots {
            match &r.missing_parent {
                Some(p) => {
                    let _ = writeln!(o, "  parent {} (not in the trace)", clean(p));
                    for n in &r.spans {
                        node(&mut o, n, 1);
                    }
                }
                None => {
                    for n in &r.spans {
                        node(&mut o, n, 0);
                    }
                }
            }
        }
        for f in &self.findings {
            let _ = writeln!(
                o,
                "\n[{}] {}: {}\n  {}",
                f.severity.as_str(),
                f.finding_type,
                clean(&f.pattern.template),
                clean(&f.suggestion)
            );
        }
        o
    }
}
