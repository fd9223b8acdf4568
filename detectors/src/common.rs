//! Tunables and grouping helpers shared by several detectors.

use std::collections::BTreeMap;
use std::sync::Arc;

use perf_sentinel_engine::registry::{DefaultValue, GateMeasure, GateRule, Kind, Tunable};
use perf_sentinel_engine::{EventKind, Severity, Span, Trace};

const U32_MAX: i64 = u32::MAX as i64;

pub const N_PLUS_ONE_MIN_OCCURRENCES: Tunable = Tunable {
    section: "detection",
    key: "n_plus_one_min_occurrences",
    kind: Kind::Int { min: 1, max: U32_MAX },
    default: DefaultValue::Int(5),
    advised: None,
    doc: "Fewest executions of one template in a trace that can be an N+1 (and, in auto mode, the repeat count that makes an unbound parameterized statement one).",
};

pub const WINDOW_DURATION_MS: Tunable = Tunable {
    section: "detection",
    key: "window_duration_ms",
    kind: Kind::Int { min: 1, max: i64::MAX },
    default: DefaultValue::Int(500),
    advised: None,
    doc: "Longest time, in milliseconds, between the first and last execution of an N+1 group; a group spread wider is not reported.",
};

pub const SANITIZER_AWARE_CLASSIFICATION: Tunable = Tunable {
    section: "detection",
    key: "sanitizer_aware_classification",
    kind: Kind::Choice(&["auto", "strict", "always", "never"]),
    default: DefaultValue::Str("auto"),
    advised: None,
    doc: "How repeated statements whose literals were replaced by placeholders are classified: auto, strict, always or never (see explain-rule n_plus_one_sql).",
};

pub const SLOW_QUERY_THRESHOLD_MS: Tunable = Tunable {
    section: "detection",
    key: "slow_query_threshold_ms",
    kind: Kind::Int {
        min: 1,
        max: i64::MAX / 5_000,
    },
    default: DefaultValue::Int(500),
    advised: None,
    doc: "A span longer than this many milliseconds is slow; one over five times it makes the finding critical.",
};

pub const SLOW_QUERY_MIN_OCCURRENCES: Tunable = Tunable {
    section: "detection",
    key: "slow_query_min_occurrences",
    kind: Kind::Int { min: 1, max: U32_MAX },
    default: DefaultValue::Int(3),
    advised: None,
    doc: "Fewest slow executions of one template before it is reported.",
};

pub const REDUNDANT_MIN_OCCURRENCES: Tunable = Tunable {
    section: "detection",
    key: "redundant_min_occurrences",
    kind: Kind::Int { min: 2, max: U32_MAX },
    default: DefaultValue::Int(2),
    advised: None,
    doc: "Fewest identical executions (same template, same values) in one trace that are reported as redundant.",
};

pub const N_PLUS_ONE_SQL_GATE: GateRule = GateRule {
    key: "n_plus_one_sql_critical_max",
    measure: GateMeasure::Findings {
        finding_type: "n_plus_one_sql",
        min_severity: Severity::Critical,
    },
    kind: Kind::Int { min: 0, max: U32_MAX },
    default: DefaultValue::Int(0),
    doc: "Most critical n_plus_one_sql findings the quality gate accepts.",
};

pub const N_PLUS_ONE_HTTP_GATE: GateRule = GateRule {
    key: "n_plus_one_http_warning_max",
    measure: GateMeasure::Findings {
        finding_type: "n_plus_one_http",
        min_severity: Severity::Warning,
    },
    kind: Kind::Int { min: 0, max: U32_MAX },
    default: DefaultValue::Int(3),
    doc: "Most n_plus_one_http findings of severity warning or critical the quality gate accepts.",
};

/// The spans of one kind in a trace that pass `keep`, grouped by template,
/// keeping only groups of at least `min_len` spans; each group keeps trace
/// order. Groups come out in template order.
pub fn by_template_where(
    trace: &Trace,
    kind: EventKind,
    min_len: usize,
    keep: impl Fn(&Span) -> bool,
) -> Vec<(Arc<str>, Vec<&Span>)> {
    group_by_key(
        trace.spans.iter().filter(|s| s.kind() == kind && keep(s)),
        |s| (&s.template, ()),
        min_len,
    )
    .into_iter()
    .map(|((t, ()), g)| (t, g))
    .collect()
}

/// Spans sharing a (template, extra key), in trace order.
pub type Group<'a, K> = ((Arc<str>, K), Vec<&'a Span>);

/// Groups spans on (template, extra key), in first-seen order within a
/// group and key order between groups.
///
/// A trace holds few distinct templates, and spans normalized by the same
/// worker share one template allocation, so a linear scan that compares
/// pointers before text beats a tree or hash map keyed on the text; past
/// `SCAN_MAX` groups a hash index takes over, so the cost stays linear. A
/// template is shared (its count touched) once per group, not per span.
///
/// Only groups of at least `min_len` spans are kept. Groups left out are
/// never sorted nor given a vector of their own: a group's first span is
/// held apart until a second one comes, and most groups keyed on
/// parameters (one per distinct call) stay single.
pub fn group_by_key<'a, K: Ord + Copy + std::hash::Hash>(
    spans: impl Iterator<Item = &'a Span>,
    key: impl Fn(&'a Span) -> (&'a Arc<str>, K),
    min_len: usize,
) -> Vec<Group<'a, K>> {
    /// Past this many groups, an index replaces the scan (no quadratic cost).
    const SCAN_MAX: usize = 32;
    type Building<'a, K> = (&'a Arc<str>, K, &'a Span, Vec<&'a Span>);
    let mut groups: Vec<Building<'a, K>> = Vec::new();
    let mut index: Option<foldhash::HashMap<(&'a str, K), usize>> = None;
    for s in spans {
        let (t, k) = key(s);
        let found = match &index {
            Some(ix) => ix.get(&(&**t, k)).copied(),
            None => groups
                .iter()
                .rposition(|&(gt, gk, _, _)| gk == k && (Arc::ptr_eq(gt, t) || **gt == **t)),
        };
        match found {
            Some(i) => groups[i].3.push(s),
            None => {
                if let Some(ix) = &mut index {
                    ix.insert((&**t, k), groups.len());
                }
                groups.push((t, k, s, Vec::new()));
                if index.is_none() && groups.len() > SCAN_MAX {
                    index = Some(
                        groups
                            .iter()
                            .enumerate()
                            .map(|(i, &(gt, gk, _, _))| ((&**gt, gk), i))
                            .collect(),
                    );
                }
            }
        }
    }
    groups.retain(|g| 1 + g.3.len() >= min_len);
    groups.sort_by(|a, b| (&**a.0, a.1).cmp(&(&**b.0, b.1)));
    groups
        .into_iter()
        .map(|(t, k, first, mut rest)| {
            rest.insert(0, first);
            ((Arc::clone(t), k), rest)
        })
        .collect()
}

/// Spans grouped by parent span id, in trace order; spans without a parent are left out.
pub fn by_parent(trace: &Trace) -> BTreeMap<&str, Vec<&Span>> {
    let mut groups: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &trace.spans {
        if let Some(p) = s.event.parent_span_id.as_deref() {
            groups.entry(p).or_default().push(s);
        }
    }
    groups
}

/// `u32` settings are declared within `u32` range; this narrows them.
pub fn as_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_sentinel_engine::trace::Interner;

    fn spans(targets: &[String]) -> Vec<Span> {
        let mut names = Interner::default();
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let e = perf_sentinel_engine::testing::sql_event("t", &format!("s{i}"), t);
                Span::new(e, &mut names)
            })
            .collect()
    }

    /// Span ids of each group, with its template.
    fn ids<K>(groups: Vec<Group<'_, K>>) -> Vec<(String, Vec<String>)> {
        groups
            .into_iter()
            .map(|((t, _), g)| (t.to_string(), g.iter().map(|s| s.event.span_id.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_minimum_leaves_out_small_groups_and_nothing_else() {
        // Few groups (the scan) and many (the index past 32 groups), with
        // single spans, pairs and triples, templates out of order.
        for distinct in [5usize, 60] {
            let targets: Vec<String> = (0..distinct * 3)
                .map(|i| {
                    let t = (i * 7) % distinct;
                    let value = if t % 3 == 0 { i } else { t };
                    format!("SELECT * FROM t{} WHERE id = {value}", distinct - t)
                })
                .collect();
            let spans = spans(&targets);
            fn key(s: &Span) -> (&Arc<str>, perf_sentinel_engine::normalize::ParamDigest) {
                (&s.template, s.params)
            }
            let all = ids(group_by_key(spans.iter(), key, 1));
            for min in [1, 2, 3, 4] {
                let want: Vec<_> = all.iter().filter(|(_, g)| g.len() >= min).cloned().collect();
                assert_eq!(
                    ids(group_by_key(spans.iter(), key, min)),
                    want,
                    "{distinct} templates, at least {min}"
                );
            }
            assert!(all.iter().any(|(_, g)| g.len() == 1) && all.iter().any(|(_, g)| g.len() == 3));
            // With no minimum, every span is in exactly one group, groups
            // come in template order and keep trace order.
            let mut seen: Vec<String> = all.iter().flat_map(|(_, g)| g.clone()).collect();
            let mut every: Vec<String> = (0..targets.len()).map(|i| format!("s{i}")).collect();
            seen.sort();
            every.sort();
            assert_eq!(seen, every);
            assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
            let index = |id: &String| id[1..].parse::<usize>().unwrap();
            assert!(
                all.iter()
                    .all(|(_, g)| g.windows(2).all(|w| index(&w[0]) < index(&w[1])))
            );
        }
    }
}
