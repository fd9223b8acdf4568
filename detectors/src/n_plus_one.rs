//! The N+1 rule shared by `n_plus_one_sql` and `n_plus_one_http`, and the
//! sanitizer-aware classification of groups whose literals are not visible.

use perf_sentinel_engine::group::{coefficient_of_variation, distinct_params, finding_for_group, with_timing};
use perf_sentinel_engine::registry::Settings;
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

use crate::common::{
    N_PLUS_ONE_MIN_OCCURRENCES, SANITIZER_AWARE_CLASSIFICATION, WINDOW_DURATION_MS, by_template_where,
};

/// Occurrences from which an N+1 is critical (independent of the threshold).
const CRITICAL_OCCURRENCES: u64 = 10;

/// `classification_method` of a group the reference's sanitizer heuristic accepts.
pub const SANITIZER_HEURISTIC: &str = "sanitizer_heuristic";
/// `classification_method` of a parameterized statement with no bound values
/// in the span, repeated past the threshold: an N+1 whose parameters are unknown.
pub const PARAMS_UNKNOWN: &str = "params_unknown";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Strict,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy)]
pub struct NPlusOneConfig {
    pub min_occurrences: usize,
    pub window_ms: u64,
    pub mode: Mode,
}

impl NPlusOneConfig {
    pub fn from_settings(s: &Settings) -> NPlusOneConfig {
        let mode = match s.str(SANITIZER_AWARE_CLASSIFICATION.key) {
            Some("strict") => Mode::Strict,
            Some("always") => Mode::Always,
            Some("never") => Mode::Never,
            _ => Mode::Auto,
        };
        NPlusOneConfig {
            min_occurrences: crate::common::as_usize(s.uint(N_PLUS_ONE_MIN_OCCURRENCES.key)),
            window_ms: s.uint(WINDOW_DURATION_MS.key),
            mode,
        }
    }
}

const ORM_MARKERS: &[&str] = &[
    "spring-data",
    "hibernate",
    "jpa",
    "micronaut-data",
    "jdbi",
    "r2dbc",
    "entityframeworkcore",
    "entity-framework",
    "sqlalchemy",
    "django",
    "active-record",
    "activerecord",
    "gorm",
    "sequelize",
    "prisma",
    "typeorm",
    "mongoose",
    "sea-orm",
    "diesel",
];

/// Whether a template holds a bind placeholder: `?`, `%s`, `@name`, `:name` or `$1`.
pub fn has_placeholder(t: &str) -> bool {
    let b = t.as_bytes();
    if t.contains('?') || t.contains("%s") {
        return true;
    }
    b.iter().enumerate().any(|(i, &c)| {
        let next = b.get(i + 1).copied().unwrap_or(0);
        let prev = if i == 0 { 0 } else { b[i - 1] };
        match c {
            b'@' => next.is_ascii_alphanumeric() && prev != b'@',
            b':' => next.is_ascii_alphabetic() && prev != b':',
            b'$' => next.is_ascii_digit(),
            _ => false,
        }
    })
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether a scope name mentions an ORM, delimited on both sides.
pub fn is_orm_scope(scope: &str) -> bool {
    let lower = scope.to_ascii_lowercase();
    let b = lower.as_bytes();
    ORM_MARKERS.iter().any(|m| {
        lower.match_indices(m).any(|(i, _)| {
            let before_ok = i == 0 || !is_word(b[i - 1]);
            let end = i + m.len();
            let after_ok = end >= b.len() || !is_word(b[end]);
            before_ok && after_ok
        })
    })
}

struct Signals {
    looks_sanitized: bool,
    orm_scope: bool,
    variance: bool,
    high_occurrence: bool,
    sequential_siblings: bool,
}

fn signals(kind: EventKind, template: &str, group: &[&Span], threshold: usize) -> Signals {
    let looks_sanitized =
        kind == EventKind::Sql && group.iter().all(|s| s.params.count == 0) && has_placeholder(template);
    let orm_scope = group
        .iter()
        .any(|s| s.event.instrumentation_scopes.iter().any(|sc| is_orm_scope(sc)));
    let durations: Vec<u64> = group.iter().map(|s| s.event.duration_us).collect();
    let variance = group.len() >= 3 && coefficient_of_variation(&durations).is_some_and(|cv| cv > 0.5);
    let high_occurrence = group.len() >= threshold.saturating_mul(3);
    let sequential_siblings = sequential_siblings(group);
    Signals {
        looks_sanitized,
        orm_scope,
        variance,
        high_occurrence,
        sequential_siblings,
    }
}

/// At least three spans, all children of the first span's (non-empty)
/// parent, that ran strictly one after another.
fn sequential_siblings(group: &[&Span]) -> bool {
    if group.len() < 3 {
        return false;
    }
    let Some(parent) = group[0].event.parent_span_id.as_deref().filter(|p| !p.is_empty()) else {
        return false;
    };
    if group.iter().any(|s| s.event.parent_span_id.as_deref() != Some(parent)) {
        return false;
    }
    let mut iv: Vec<(i64, i64)> = group.iter().filter_map(|s| s.interval_ns()).collect();
    if iv.len() < 3 {
        return false;
    }
    iv.sort_unstable();
    iv.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// The classification of a group below the distinct-parameter threshold:
/// `None` when it is not an N+1.
fn classify(kind: EventKind, template: &str, group: &[&Span], cfg: &NPlusOneConfig) -> Option<&'static str> {
    let s = signals(kind, template, group, cfg.min_occurrences);
    let reference_verdict = match (cfg.mode, kind) {
        (Mode::Never, _) => false,
        (Mode::Always, EventKind::Sql) => s.looks_sanitized,
        (Mode::Always, EventKind::HttpOut) => true,
        (Mode::Auto, EventKind::Sql) => s.looks_sanitized && (s.orm_scope || s.variance),
        (Mode::Auto, EventKind::HttpOut) => s.variance,
        (Mode::Strict, EventKind::Sql) => {
            s.looks_sanitized
                && (s.orm_scope || s.high_occurrence || s.sequential_siblings)
                && (s.variance || s.high_occurrence)
        }
        (Mode::Strict, EventKind::HttpOut) => {
            (template.contains('{') || s.high_occurrence || s.sequential_siblings) && s.variance
        }
    };
    if reference_verdict {
        return Some(SANITIZER_HEURISTIC);
    }
    // Real instrumentation records `WHERE id = ?` without the bound value
    // unless parameter capture is on: a parameterized statement run this
    // often in one trace is a loop, whatever its durations look like.
    (cfg.mode == Mode::Auto && s.looks_sanitized).then_some(PARAMS_UNKNOWN)
}

/// N+1 findings of one kind in a trace.
pub fn detect(trace: &Trace, kind: EventKind, finding_type: &str, cfg: &NPlusOneConfig, out: &mut Vec<Finding>) {
    for (template, group) in by_template_where(trace, kind, cfg.min_occurrences, |_| true) {
        let distinct = distinct_params(group.iter().copied());
        let method = if distinct as usize >= cfg.min_occurrences {
            None
        } else {
            match classify(kind, &template, &group, cfg) {
                Some(m) => Some(m),
                None => continue,
            }
        };
        let mut f = finding_for_group(finding_type, Severity::Warning, &template, &group);
        if f.pattern.window_ms > cfg.window_ms {
            continue;
        }
        if f.pattern.occurrences >= CRITICAL_OCCURRENCES {
            f.severity = Severity::Critical;
        }
        f.pattern.distinct_params = match (method, kind) {
            (Some(_), EventKind::Sql) => 1,
            _ => distinct,
        };
        f.classification_method = method.map(str::to_owned);
        let n = f.pattern.occurrences;
        f.suggestion = match kind {
            EventKind::Sql => format!(
                "{n} executions of the same statement in one request: load the rows in one query (`WHERE ... IN (?)` or a join) instead of one per item"
            ),
            EventKind::HttpOut => format!(
                "{n} calls to the same endpoint in one request: call a batch endpoint that takes the list of ids, or fetch them together"
            ),
        };
        out.push(with_timing(f, &group));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for t in ["a = ?", "a = %s", "a = @p1", "a = :id", "a = $1"] {
            assert!(has_placeholder(t), "{t}");
        }
        for t in ["a = 1", "a::int", "@@version", "x = $"] {
            assert!(!has_placeholder(t), "{t}");
        }
    }

    #[test]
    fn orm_scopes_are_delimited() {
        assert!(is_orm_scope("io.opentelemetry.hibernate-6.0"));
        assert!(is_orm_scope("opentelemetry.instrumentation.sqlalchemy"));
        assert!(!is_orm_scope("myjpatool"));
        assert!(!is_orm_scope("jpa_x"));
    }
}
