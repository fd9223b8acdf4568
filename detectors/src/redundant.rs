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
    let groups = crate::common::group_by_key(
        trace.spans.iter().filter(|s| s.kind() == kind),
        |s| (&s.template, s.params),
        min,
    );
    for ((template, _), group) in groups {
        if earlier
            .iter()
            .any(|f| f.finding_type == n_plus_one_type && f.pattern.template == *template)
        {
            continue;
        }
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
