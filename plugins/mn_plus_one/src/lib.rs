//! # perf-sentinel-plugin-mn-plus-one
//!
//! The `mn_plus_one` detector, as a separate crate that registers itself the
//! way any third-party detector does. Link it with
//! `extern crate perf_sentinel_plugin_mn_plus_one as _;`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{Detector, Settings, Tunable};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

const MIN_BLOCK: Tunable = Tunable::int(
    "detection",
    "mn_plus_one_min_block_len",
    2,
    16,
    2,
    "Fewest statements in the repeated block (at least two different templates).",
);

const MAX_BLOCK: Tunable = Tunable::int(
    "detection",
    "mn_plus_one_max_block_len",
    2,
    16,
    6,
    "Most statements in the repeated block; longer loops bodies are not looked for.",
);

const MIN_REPEATS: Tunable = Tunable::int(
    "detection",
    "mn_plus_one_min_repeats",
    2,
    100_000,
    3,
    "Fewest back-to-back repetitions of the block under one parent span that are reported.",
);

const MIN_TOTAL_MS: Tunable = Tunable::int(
    "detection",
    "mn_plus_one_min_total_duration_ms",
    0,
    3_600_000,
    0,
    "Smallest summed duration, in milliseconds, of the repeated statements; cheaper loops are ignored.",
);

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A loop whose body runs a block of several different SQL statements
    /// per item: under one parent span, the same sequence of templates
    /// (`SELECT … FROM orders WHERE id = ?`, then
    /// `SELECT … FROM customers WHERE id = ?`) repeated back to back at least
    /// `mn_plus_one_min_repeats` times. Blocks of
    /// `mn_plus_one_min_block_len` to `mn_plus_one_max_block_len` statements
    /// with at least two different templates are looked for; the block that
    /// covers the most spans wins. The template is the block's templates
    /// joined by ` ; `, and `occurrences` counts the repetitions.
    ///
    /// Severity: critical from 10 repetitions, warning below.
    ///
    /// ## Why is it slow?
    /// Each item costs one round trip per statement of the block: 50 items
    /// and 3 statements are 150 round trips where 3 batched queries would do.
    /// Per-statement N+1 detection sees the statements as unrelated groups,
    /// and misses the loop when it runs fewer times than its threshold.
    ///
    /// ## Example
    /// `GET /api/invoices` loads, for each invoice, its customer and then its
    /// lines: `SELECT * FROM customer WHERE id = ?`,
    /// `SELECT * FROM invoice_line WHERE invoice_id = ?`, four times.
    ///
    /// Prefer: load each relation once for all items (`WHERE id IN (?)`), or
    /// let the ORM fetch the associations in batches.
    ///
    /// ## Known false positives
    /// Work queues that process items one by one on purpose, inside a
    /// transaction per item.
    id: "mn_plus_one",
    label: "M+N loop",
    rank: 200,
    summary: "a loop running a block of several different queries per item",
    avoidable_io: false,
    tunables: &[MIN_BLOCK, MAX_BLOCK, MIN_REPEATS, MIN_TOTAL_MS],
    gate_rules: &[],
    build: build,
}

struct MnPlusOne {
    min_block: usize,
    max_block: usize,
    min_repeats: usize,
    min_total_us: u64,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    let (min_block, max_block) = (s.uint(MIN_BLOCK.key) as usize, s.uint(MAX_BLOCK.key) as usize);
    if min_block > max_block {
        return Err(format!(
            "[detection] mn_plus_one_min_block_len ({min_block}) is larger than mn_plus_one_max_block_len ({max_block})"
        ));
    }
    Ok(Box::new(MnPlusOne {
        min_block,
        max_block,
        min_repeats: s.uint(MIN_REPEATS.key) as usize,
        min_total_us: s.uint(MIN_TOTAL_MS.key).saturating_mul(1000),
    }))
}

/// One small number per distinct template, in order of appearance: blocks
/// are then compared as numbers instead of as statements, which often share
/// long prefixes.
fn template_ids(spans: &[&Span]) -> Vec<u32> {
    /// Past this many templates, a map replaces the scan.
    const SCAN_MAX: usize = 32;
    let mut seen: Vec<&Arc<str>> = Vec::new();
    let mut index: BTreeMap<&str, u32> = BTreeMap::new();
    spans
        .iter()
        .map(|s| {
            let t = &s.template;
            let found = if seen.len() > SCAN_MAX {
                index.get(&**t).copied()
            } else {
                seen.iter()
                    .position(|u| Arc::ptr_eq(u, t) || u[..] == t[..])
                    .map(|i| i as u32)
            };
            found.unwrap_or_else(|| {
                let id = seen.len() as u32;
                seen.push(t);
                if seen.len() > SCAN_MAX {
                    if index.is_empty() {
                        index.extend(seen.iter().enumerate().map(|(i, u)| (&***u, i as u32)));
                    } else {
                        index.insert(&**t, id);
                    }
                }
                id
            })
        })
        .collect()
}

/// A block `[start, start + len)` repeated `repeats` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub len: usize,
    pub repeats: usize,
}

/// Finds non-overlapping repeated blocks in a sequence of templates, greedily
/// from the left, preferring at each position the block covering most items.
pub fn repeated_blocks<T: Eq>(seq: &[T], min_len: usize, max_len: usize, min_repeats: usize) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let mut best: Option<Block> = None;
        for len in min_len..=max_len {
            if i + len * min_repeats > seq.len() {
                break;
            }
            let block = &seq[i..i + len];
            let mut repeats = 1;
            while i + (repeats + 1) * len <= seq.len() && seq[i + repeats * len..i + (repeats + 1) * len] == *block {
                repeats += 1;
            }
            // A block of one template repeated is an N+1, not a block. Checked
            // last: most candidates do not repeat at all.
            let distinct = block.iter().any(|t| *t != block[0]);
            if repeats >= min_repeats && distinct && best.is_none_or(|b| len * repeats > b.len * b.repeats) {
                best = Some(Block { start: i, len, repeats });
            }
        }
        match best {
            Some(b) => {
                out.push(b);
                i += b.len * b.repeats;
            }
            None => i += 1,
        }
    }
    out
}

impl Detector for MnPlusOne {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        let mut by_parent: std::collections::BTreeMap<&str, Vec<&Span>> = std::collections::BTreeMap::new();
        for s in trace.spans.iter().filter(|s| s.kind() == EventKind::Sql) {
            if let Some(p) = s.event.parent_span_id.as_deref() {
                by_parent.entry(p).or_default().push(s);
            }
        }
        for children in by_parent.values() {
            let templates: Vec<&str> = children.iter().map(|s| &*s.template).collect();
            let ids = template_ids(children);
            for b in repeated_blocks(&ids, self.min_block, self.max_block, self.min_repeats) {
                let spans: Vec<&Span> = children[b.start..b.start + b.len * b.repeats].to_vec();
                let total: u64 = spans.iter().map(|s| s.event.duration_us).sum();
                if total < self.min_total_us {
                    continue;
                }
                let block = templates[b.start..b.start + b.len].join(" ; ");
                let severity = if b.repeats >= 10 {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                let mut f = finding_for_group("mn_plus_one", severity, &block, &spans);
                f.pattern.occurrences = b.repeats as u64;
                f.pattern.distinct_params = spans
                    .iter()
                    .step_by(b.len)
                    .map(|s| s.params)
                    .collect::<BTreeSet<_>>()
                    .len() as u64;
                f.suggestion = format!(
                    "a loop runs the same {} statements for each of {} items ({} queries): load each relation once for all items (`WHERE id IN (?)`) or let the ORM batch the associations",
                    b.len,
                    b.repeats,
                    b.len * b.repeats
                );
                out.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids_follow_the_text_past_the_scan() {
        // 40 distinct statements (past the scan's 32), each seen three times,
        // interleaved, parsed as separate events (no shared allocations).
        let events: Vec<perf_sentinel_engine::SpanEvent> = (0..120)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "timestamp": format!("2025-07-10T14:32:01.{:03}Z", i),
                    "trace_id": "t",
                    "span_id": format!("s{i}"),
                    "parent_span_id": "p",
                    "service": "svc",
                    "type": "sql",
                    "operation": "SELECT",
                    "target": format!("SELECT * FROM order_item_{} WHERE id = {i}", (i * 7) % 40),
                    "duration_us": 10,
                    "source": { "endpoint": "GET /x", "method": "m" }
                }))
                .unwrap()
            })
            .collect();
        let traces = perf_sentinel_engine::trace::group_traces(events);
        let spans: Vec<&Span> = traces[0].spans.iter().collect();
        let ids = template_ids(&spans);
        assert_eq!(ids.iter().max(), Some(&39));
        for (a, sa) in spans.iter().enumerate() {
            for (b, sb) in spans.iter().enumerate() {
                assert_eq!(ids[a] == ids[b], sa.template == sb.template, "{a} {b}");
            }
        }
        // First appearance order: each new id is one more than the last.
        let mut next = 0;
        for &id in &ids {
            assert!(id <= next);
            next = next.max(id + 1);
        }
    }

    #[test]
    fn finds_the_repeated_block() {
        let seq = ["a", "x", "y", "x", "y", "x", "y", "b"];
        assert_eq!(
            repeated_blocks(&seq, 2, 6, 3),
            vec![Block {
                start: 1,
                len: 2,
                repeats: 3
            }]
        );
        // One template repeated is an N+1, not a block.
        assert!(repeated_blocks(&["x", "x", "x", "x", "x", "x"], 2, 6, 3).is_empty());
        assert!(repeated_blocks(&["x", "y", "x", "y"], 2, 6, 3).is_empty());
        let seq = ["x", "y", "z", "x", "y", "z", "x", "y", "z"];
        assert_eq!(
            repeated_blocks(&seq, 2, 6, 3),
            vec![Block {
                start: 0,
                len: 3,
                repeats: 3
            }]
        );
    }
}
