//! # perf-sentinel-plugin-mn-plus-one
//!
//! The `mn_plus_one` detector, as a separate crate that registers itself the
//! way any third-party detector does. Link it with
//! `extern crate perf_sentinel_plugin_mn_plus_one as _;`.

use std::collections::BTreeSet;

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

/// A block `[start, start + len)` repeated `repeats` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub len: usize,
    pub repeats: usize,
}

/// Finds non-overlapping repeated blocks in a sequence of templates, greedily
/// from the left, preferring at each position the block covering most items.
pub fn repeated_blocks<T: Eq + Ord>(seq: &[T], min_len: usize, max_len: usize, min_repeats: usize) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let mut best: Option<Block> = None;
        for len in min_len..=max_len {
            if i + len * min_repeats > seq.len() {
                break;
            }
            let block = &seq[i..i + len];
            if block.iter().collect::<BTreeSet<_>>().len() < 2 {
                continue;
            }
            let mut repeats = 1;
            while i + (repeats + 1) * len <= seq.len() && seq[i + repeats * len..i + (repeats + 1) * len] == *block {
                repeats += 1;
            }
            if repeats >= min_repeats && best.is_none_or(|b| len * repeats > b.len * b.repeats) {
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
            for b in repeated_blocks(&templates, self.min_block, self.max_block, self.min_repeats) {
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
