//! `serialized_calls`: independent calls run one after another.

use std::collections::BTreeSet;

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{DefaultValue, Detector, Kind, Settings, Tunable};
use perf_sentinel_engine::{Finding, Severity, Span, Trace};

use crate::common::by_parent;

const SERIALIZED_MIN_SEQUENTIAL: Tunable = Tunable {
    section: "detection",
    key: "serialized_min_sequential",
    kind: Kind::Int {
        min: 2,
        max: u32::MAX as i64,
    },
    default: DefaultValue::Int(3),
    advised: None,
    doc: "Shortest chain of strictly sequential sibling calls (with at least two distinct templates) that is reported.",
};

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// Children of one parent span that ran strictly one after another: the
    /// longest chain of non-overlapping siblings, when it holds at least
    /// `serialized_min_sequential` spans and at least two distinct templates
    /// (one template repeated is an N+1, not this). One finding per parent;
    /// its template is the endpoint.
    ///
    /// Severity: always info, since the calls may depend on each other.
    ///
    /// ## Why is it slow?
    /// Independent calls made in sequence cost the sum of their durations;
    /// made concurrently they cost about the slowest one.
    ///
    /// ## Example
    /// `GET /api/dashboard` fetches the user (40 ms), then the orders
    /// (60 ms), then the recommendations (80 ms): 180 ms where 80 would do.
    ///
    /// Prefer: start the independent calls together (`join!`,
    /// `CompletableFuture.allOf`, `Promise.all`, `asyncio.gather`, an errgroup)
    /// and wait for all of them.
    ///
    /// ## Known false positives
    /// Calls that depend on each other's results (the second needs an id from
    /// the first): the trace cannot tell.
    id: "serialized_calls",
    label: "Serialized calls",
    rank: 100,
    summary: "independent sibling calls run one after another",
    avoidable_io: false,
    tunables: &[SERIALIZED_MIN_SEQUENTIAL],
    gate_rules: &[],
    build: build,
}

struct SerializedCalls {
    min: usize,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(SerializedCalls {
        min: crate::common::as_usize(s.uint(SERIALIZED_MIN_SEQUENTIAL.key)),
    }))
}

/// The longest chain of non-overlapping intervals (weighted interval
/// scheduling with unit weights), in chronological order, as indexes into `iv`.
pub fn longest_chain(iv: &[(i64, i64)]) -> Vec<usize> {
    let n = iv.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (iv[i].1, iv[i].0, i));
    let ends: Vec<i64> = order.iter().map(|&i| iv[i].1).collect();
    // pred[k]: number of intervals (in end order) that end at or before k's start.
    let pred: Vec<usize> = order.iter().map(|&i| ends.partition_point(|&e| e <= iv[i].0)).collect();
    let mut dp = vec![0usize; n + 1];
    let mut take = vec![false; n + 1];
    for k in 1..=n {
        let include = dp[pred[k - 1].min(k - 1)] + 1;
        if include >= dp[k - 1] {
            dp[k] = include;
            take[k] = true;
        } else {
            dp[k] = dp[k - 1];
        }
    }
    let mut chain = Vec::with_capacity(dp[n]);
    let mut k = n;
    while k > 0 {
        if take[k] {
            chain.push(order[k - 1]);
            k = pred[k - 1].min(k - 1);
        } else {
            k -= 1;
        }
    }
    chain.reverse();
    chain
}

impl Detector for SerializedCalls {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        for (parent_id, children) in by_parent(trace) {
            if children.len() < self.min {
                continue;
            }
            // A chain takes its templates from the children: children of one
            // template (a loop, N+1's business) cannot make one.
            let first = &children[0].template;
            if children.iter().all(|s| s.template == *first) {
                continue;
            }
            let timed: Vec<(&Span, (i64, i64))> = children
                .iter()
                .filter_map(|s| s.interval_ns().map(|i| (*s, i)))
                .collect();
            if timed.len() < self.min {
                continue;
            }
            let iv: Vec<(i64, i64)> = timed.iter().map(|(_, i)| *i).collect();
            let chain: Vec<&Span> = longest_chain(&iv).into_iter().map(|i| timed[i].0).collect();
            let templates: BTreeSet<&str> = chain.iter().map(|s| &*s.template).collect();
            if chain.len() < self.min || templates.len() < 2 {
                continue;
            }
            let (service, endpoint) = match trace.span(parent_id) {
                Some(p) => (p.event.service.clone(), p.event.source.endpoint.clone()),
                None => (chain[0].event.service.clone(), chain[0].event.source.endpoint.clone()),
            };
            let mut f = finding_for_group("serialized_calls", Severity::Info, &endpoint, &chain);
            f.service = String::from(&*service);
            f.source_endpoint = String::from(&*endpoint);
            f.pattern.distinct_params = templates.len() as u64;
            f.code_location = None;
            f.instrumentation_scopes.clear();
            let steps: Vec<String> = chain
                .iter()
                .map(|s| format!("{} ({} ms)", s.template, s.event.duration_us / 1000))
                .collect();
            let total: u64 = chain.iter().map(|s| s.event.duration_us).sum();
            let longest = chain.iter().map(|s| s.event.duration_us).max().unwrap_or(0);
            f.suggestion = format!(
                "{} independent calls ran one after another: {} = {} ms in sequence, about {} ms if run concurrently (join!, CompletableFuture.allOf, Promise.all, asyncio.gather)",
                chain.len(),
                steps.join(" -> "),
                total / 1000,
                longest / 1000
            );
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SerializedCalls, longest_chain};
    use perf_sentinel_engine::registry::Detector;
    use perf_sentinel_engine::testing::findings_in;

    /// Findings for children of one parent, each `(statement, start ms)`
    /// and 10 ms long.
    fn findings(children: &[(&str, i64)]) -> Vec<perf_sentinel_engine::Finding> {
        let events = children
            .iter()
            .enumerate()
            .map(|(i, (sql, start_ms))| {
                let mut e = perf_sentinel_engine::testing::sql_event("t", &format!("s{i}"), sql);
                e.parent_span_id = Some("p".to_owned());
                e.start_unix_nanos = Some(1_700_000_000_000_000_000 + start_ms * 1_000_000);
                e.duration_us = 10_000;
                e
            })
            .collect();
        findings_in(events, |trace, out| SerializedCalls { min: 3 }.detect(trace, &[], out))
    }

    #[test]
    fn a_chain_needs_two_templates() {
        // One statement in a loop, in turn: N+1's business, not this rule's.
        let one: Vec<(&str, i64)> = (0..6).map(|i| ("SELECT * FROM a WHERE id = 1", i * 10)).collect();
        assert!(findings(&one).is_empty());
        let one_with_literals = [
            ("SELECT * FROM a WHERE id = 1", 0),
            ("SELECT * FROM a WHERE id = 2", 10),
            ("SELECT * FROM a WHERE id = 3", 20),
        ];
        assert!(findings(&one_with_literals).is_empty());
        // Two templates in turn: reported, whichever comes first.
        for two in [
            [
                ("SELECT * FROM a WHERE id = 1", 0),
                ("SELECT * FROM b", 10),
                ("SELECT * FROM a WHERE id = 2", 20),
            ],
            [
                ("SELECT * FROM b", 0),
                ("SELECT * FROM a WHERE id = 1", 10),
                ("SELECT * FROM a WHERE id = 2", 20),
            ],
        ] {
            let f = findings(&two);
            assert_eq!(f.len(), 1, "{two:?}");
            assert_eq!((f[0].pattern.occurrences, f[0].pattern.distinct_params), (3, 2));
        }
        // Two templates, but at once: no chain of three.
        let at_once = [
            ("SELECT * FROM a WHERE id = 1", 0),
            ("SELECT * FROM b", 0),
            ("SELECT * FROM c", 0),
        ];
        assert!(findings(&at_once).is_empty());
    }

    #[test]
    fn picks_the_longest_sequence() {
        // 0-10, 10-20, 5-25, 20-30: the chain is 0, 1, 3.
        assert_eq!(longest_chain(&[(0, 10), (10, 20), (5, 25), (20, 30)]), vec![0, 1, 3]);
        assert_eq!(longest_chain(&[(0, 10), (1, 11), (2, 12)]).len(), 1);
    }
}
