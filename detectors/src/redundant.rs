//! The redundancy rule shared by `redundant_sql` and `redundant_http`.

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::{EventKind, Finding, Severity, Trace};

/// Occurrences from which a redundant call is a warning rather than info.
const WARNING_OCCURRENCES: u64 = 5;

/// Identical operations (same template, same parameters) run twice or more in
/// one trace, except templates an N+1 finding of the same kind already claimed.
pub fn detect(
    trace: &Trace,
    kind: EventKind,
    finding_type: &str,
    n_plus_one_type: &str,
    min_occurrences: usize,
    earlier: &[Finding],
    out: &mut Vec<Finding>,
) {
    let min = min_occurrences.max(2);
    // A template already reported as an N+1 is not reported again here:
    // its spans are left out before grouping, as most of a trace's
    // repeated calls are often that loop.
    let n_plus_one: Vec<&str> = earlier
        .iter()
        .filter(|f| f.finding_type == n_plus_one_type)
        .map(|f| f.pattern.template.as_str())
        .collect();
    let groups = crate::common::group_by_key(
        trace
            .spans
            .iter()
            .filter(|s| s.kind() == kind && !n_plus_one.contains(&&*s.template)),
        |s| (&s.template, s.params),
        min,
    );
    for ((template, _), group) in groups {
        let n = group.len() as u64;
        let severity = if n >= WARNING_OCCURRENCES {
            Severity::Warning
        } else {
            Severity::Info
        };
        let mut f = finding_for_group(finding_type, severity, &template, &group);
        f.pattern.distinct_params = 1;
        f.suggestion = match kind {
            EventKind::Sql => format!(
                "the same statement with the same values ran {n} times in one request: keep the first result (request-scoped cache, memoization) instead of querying again"
            ),
            EventKind::HttpOut => format!(
                "the same call with the same parameters ran {n} times in one request: reuse the first response or cache it for the request"
            ),
        };
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_sentinel_engine::testing::findings_in;

    /// `(template, occurrences)` of the redundancy findings of one trace,
    /// given the `(type, template)` of the findings made before.
    fn redundant(statements: &[&str], earlier: &[(&str, &str)]) -> Vec<(String, u64)> {
        let events = statements
            .iter()
            .enumerate()
            .map(|(i, sql)| perf_sentinel_engine::testing::sql_event("t", &format!("s{i:02}"), sql))
            .collect();
        let earlier: Vec<Finding> = earlier
            .iter()
            .map(|(kind, t)| finding_for_group(kind, Severity::Warning, t, &[]))
            .collect();
        findings_in(events, |trace, out| {
            detect(
                trace,
                EventKind::Sql,
                "redundant_sql",
                "n_plus_one_sql",
                2,
                &earlier,
                out,
            )
        })
        .into_iter()
        .map(|f| (f.pattern.template, f.pattern.occurrences))
        .collect()
    }

    #[test]
    fn templates_reported_as_n_plus_one_are_left_to_it() {
        let (a, b) = ("SELECT * FROM a WHERE id = ?", "SELECT * FROM b WHERE id = ?");
        let mut statements = vec!["SELECT * FROM a WHERE id = 1"; 3];
        statements.extend((2..8).map(|i| {
            if i % 2 == 0 {
                "SELECT * FROM a WHERE id = 2"
            } else {
                "SELECT * FROM a WHERE id = 3"
            }
        }));
        statements.extend(["SELECT * FROM b WHERE id = 1"; 2]);
        statements.push("SELECT * FROM b WHERE id = 2");
        // Alone, both templates repeat values.
        let all = vec![
            (a.to_owned(), 3),
            (a.to_owned(), 3),
            (a.to_owned(), 3),
            (b.to_owned(), 2),
        ];
        assert_eq!(redundant(&statements, &[]), all);
        // Once `a` is an N+1, only `b` is left; an N+1 of another template
        // (or of another type) changes nothing.
        let n1 = "n_plus_one_sql";
        assert_eq!(redundant(&statements, &[(n1, a)]), [(b.to_owned(), 2)]);
        assert_eq!(redundant(&statements, &[(n1, "SELECT 1")]), all);
        assert_eq!(redundant(&statements, &[("slow_sql", a)]), all);
        assert!(redundant(&statements, &[(n1, a), ("slow_sql", "x"), (n1, b)]).is_empty());
    }
}
