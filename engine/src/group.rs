//! Helpers that detectors share: building a finding from a group of spans,
//! window bounds, timing statistics and parameter counts (spec 03 §0).

use crate::finding::{CodeLocation, Confidence, Finding, Pattern, Severity};
use crate::time::{NANOS_PER_MS, parse_timestamp};
use crate::trace::Span;

/// The first and last timestamps of a set of spans and the milliseconds between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub window_ms: u64,
}

/// Lexicographic min and max of the spans' timestamps, and the window between
/// them. One span, or a timestamp that does not parse, gives a 0 window.
pub fn bounds<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Bounds {
    timestamp_bounds(spans.into_iter().map(|s| s.event.timestamp.as_str()))
}

/// [`bounds`] of timestamps kept without their spans.
pub fn timestamp_bounds<'a>(timestamps: impl IntoIterator<Item = &'a str>) -> Bounds {
    let mut it = timestamps.into_iter();
    let Some(first) = it.next() else {
        return Bounds {
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            window_ms: 0,
        };
    };
    let (mut min, mut max) = (first, first);
    for t in it {
        if t < min {
            min = t;
        }
        if t > max {
            max = t;
        }
    }
    let window_ms = match (parse_timestamp(min), parse_timestamp(max)) {
        (Some(a), Some(b)) => u64::try_from(b.saturating_sub(a) / NANOS_PER_MS).unwrap_or(0),
        _ => 0,
    };
    Bounds {
        first_timestamp: min.to_owned(),
        last_timestamp: max.to_owned(),
        window_ms,
    }
}

/// Nearest-rank index: `max(ceil(p·n/100) − 1, 0)`, capped at `n − 1`.
pub fn rank_index(n: usize, p: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (p * n).div_ceil(100).saturating_sub(1).min(n - 1)
}

/// p50, p99 and the coefficient of variation × 1000 of span durations.
pub fn timing_stats<'a>(spans: impl IntoIterator<Item = &'a Span>) -> (u64, u64, u64) {
    let mut d: Vec<u64> = spans.into_iter().map(|s| s.event.duration_us).collect();
    if d.is_empty() {
        return (0, 0, 0);
    }
    d.sort_unstable();
    let n = d.len();
    let (p50, p99) = (d[rank_index(n, 50)], d[rank_index(n, 99)]);
    let cv = coefficient_of_variation(&d).map_or(0, |cv| (cv * 1000.0).round() as u64);
    (p50, p99, cv)
}

/// Population σ / μ of durations; `None` for fewer than two values or μ = 0.
pub fn coefficient_of_variation(d: &[u64]) -> Option<f64> {
    if d.len() < 2 {
        return None;
    }
    let n = d.len() as f64;
    let mean = d.iter().map(|&x| x as f64).sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let var = d.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    Some(var.sqrt() / mean)
}

/// Number of distinct parameter lists among the spans.
pub fn distinct_params<'a>(spans: impl IntoIterator<Item = &'a Span>) -> u64 {
    // Sorted in one vector rather than inserted into a set: one allocation
    // for the group instead of tree nodes.
    let mut params: Vec<_> = spans.into_iter().map(|s| s.params).collect();
    params.sort_unstable();
    params.dedup();
    params.len() as u64
}

/// The code location of a span, when it has any `code.*` attribute.
pub fn code_location(span: &Span) -> Option<CodeLocation> {
    span.event.code.as_deref().map(|c| CodeLocation {
        function: c.function.as_deref().map(str::to_owned),
        filepath: c.filepath.as_deref().map(str::to_owned),
        lineno: c.lineno,
        namespace: c.namespace.as_deref().map(str::to_owned),
    })
}

/// A finding about a group of spans (in trace order): service, endpoint, code
/// location and scopes come from the first span; bounds and occurrences from
/// the whole group. `distinct_params` is left at 0 and timing stats unset.
pub fn finding_for_group(finding_type: &str, severity: Severity, template: &str, group: &[&Span]) -> Finding {
    let b = bounds(group.iter().copied());
    let first = group.first();
    Finding {
        finding_type: finding_type.to_owned(),
        severity,
        trace_id: first.map(|s| String::from(&*s.event.trace_id)).unwrap_or_default(),
        service: first.map(|s| String::from(&*s.event.service)).unwrap_or_default(),
        source_endpoint: first
            .map(|s| String::from(&*s.event.source.endpoint))
            .unwrap_or_default(),
        pattern: Pattern {
            template: template.to_owned(),
            occurrences: group.len() as u64,
            window_ms: b.window_ms,
            ..Pattern::default()
        },
        suggestion: String::new(),
        first_timestamp: b.first_timestamp,
        last_timestamp: b.last_timestamp,
        green_impact: None,
        confidence: Confidence::CiBatch,
        classification_method: None,
        code_location: first.and_then(|s| code_location(s)),
        instrumentation_scopes: first
            .map(|s| {
                s.event
                    .instrumentation_scopes
                    .iter()
                    .map(|sc| String::from(&**sc))
                    .collect()
            })
            .unwrap_or_default(),
        suggested_fix: None,
        signature: String::new(),
        span_ids: group.iter().map(|s| s.event.span_id.clone()).collect(),
        trace_level: false,
    }
}

/// Fills the timing statistics of a finding from its group.
pub fn with_timing(mut f: Finding, group: &[&Span]) -> Finding {
    let (p50, p99, cv) = timing_stats(group.iter().copied());
    f.pattern.span_duration_us_p50 = Some(p50);
    f.pattern.span_duration_us_p99 = Some(p99);
    f.pattern.span_duration_cv_x1000 = Some(cv);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(rank_index(6, 50), 2);
        assert_eq!(rank_index(6, 99), 5);
        assert_eq!(rank_index(1, 50), 0);
        assert_eq!(rank_index(10, 50), 4);
    }

    #[test]
    fn distinct_parameter_lists_are_counted_once_each() {
        let mut names = crate::trace::Interner::default();
        let spans: Vec<Span> = [
            ("1", None),
            ("2", None),
            ("1", None),
            ("3", None),
            ("2", None),
            ("?", Some("1")),
            ("?", Some("4")),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (literal, bound))| {
            let sql = format!("SELECT * FROM t WHERE id = {literal}");
            let mut e = crate::testing::sql_event("t", &format!("s{i}"), &sql);
            e.db_parameters = bound.into_iter().map(str::to_owned).collect();
            Span::new(e, &mut names)
        })
        .collect();
        // A bound value counts as the same value written in the statement.
        assert_eq!(distinct_params(&spans), 4);
        assert_eq!(distinct_params(&spans[..6]), 3);
        assert_eq!(distinct_params(&spans[..3]), 2);
        assert_eq!(distinct_params(&spans[..0]), 0);
    }

    #[test]
    fn cv_of_constant_is_zero() {
        assert_eq!(coefficient_of_variation(&[5, 5, 5]), Some(0.0));
        assert_eq!(coefficient_of_variation(&[5]), None);
        assert_eq!(coefficient_of_variation(&[0, 0]), None);
    }
}
