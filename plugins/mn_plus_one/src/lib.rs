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
            // A block of one template repeated is an N+1, not a block: such
            // a block is skipped before its repeats are counted, as a run
            // of one template repeats at every length.
            if block.iter().all(|t| *t == block[0]) {
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
        // A block needs two templates, repeated: a trace too small to hold
        // one, or whose statements all share one template, holds none.
        let shortest = self.min_block.saturating_mul(self.min_repeats);
        let mut sql = trace.spans.iter().filter(|s| s.kind() == EventKind::Sql);
        let Some(first) = sql.next() else { return };
        let (mut n, mut one_template) = (1, true);
        for s in sql {
            n += 1;
            // `Arc<str>` equality compares addresses before text.
            one_template &= s.template == first.template;
        }
        if n < shortest || one_template {
            return;
        }
        let mut by_parent: std::collections::BTreeMap<&str, Vec<&Span>> = std::collections::BTreeMap::new();
        for s in trace.spans.iter().filter(|s| s.kind() == EventKind::Sql) {
            if let Some(p) = s.event.parent_span_id.as_deref() {
                by_parent.entry(p).or_default().push(s);
            }
        }
        for children in by_parent.values().filter(|c| c.len() >= shortest) {
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

    /// Blocks found in one trace of SQL statements, `(statement, parent)`
    /// in order, with the default settings.
    fn blocks_in(statements: &[(&str, &str)]) -> Vec<(String, u64)> {
        let events = statements
            .iter()
            .enumerate()
            .map(|(i, (sql, parent))| {
                let mut e = perf_sentinel_engine::testing::sql_event("t", &format!("s{i:03}"), sql);
                e.parent_span_id = Some((*parent).to_owned());
                e.start_unix_nanos = Some(1_700_000_000_000_000_000 + i as i64 * 1_000_000);
                e
            })
            .collect();
        let detector = MnPlusOne {
            min_block: 2,
            max_block: 6,
            min_repeats: 3,
            min_total_us: 0,
        };
        perf_sentinel_engine::testing::findings_in(events, |trace, out| detector.detect(trace, &[], out))
            .into_iter()
            .map(|f| (f.pattern.template, f.pattern.occurrences))
            .collect()
    }

    #[test]
    fn a_trace_too_small_or_of_one_template_holds_no_block() {
        let (a, b) = ("SELECT * FROM a WHERE id = 1", "SELECT * FROM b WHERE a_id = 1");
        let block = (
            "SELECT * FROM a WHERE id = ? ; SELECT * FROM b WHERE a_id = ?".to_owned(),
            3,
        );
        assert_eq!(blocks_in(&[(a, "p"), (b, "p")].repeat(3)), vec![block.clone()]);
        // One short of three repeats; then one template only.
        assert!(blocks_in(&[(a, "p"), (b, "p"), (a, "p"), (b, "p"), (a, "p")]).is_empty());
        assert!(blocks_in(&[(a, "p"); 12]).is_empty());
        // Six statements in all, but split between two parents.
        assert!(blocks_in(&[(a, "p"), (b, "p"), (a, "p"), (b, "q"), (a, "q"), (b, "q")]).is_empty());
        // The block under one parent, another parent's statements around it.
        let mut mixed = vec![(a, "q"); 2];
        mixed.extend([(a, "p"), (b, "p")].repeat(3));
        mixed.push((b, "q"));
        assert_eq!(blocks_in(&mixed), vec![block]);
    }

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

    /// `repeated_blocks` spelled out: at each position, every length, its
    /// repeats counted, then kept if its templates differ and it covers more.
    fn blocks_by_the_rule(seq: &[u8], min_len: usize, max_len: usize, min_repeats: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < seq.len() {
            let mut best: Option<Block> = None;
            for len in min_len..=max_len {
                if i + len * min_repeats > seq.len() {
                    break;
                }
                let repeats = (1..)
                    .take_while(|r| {
                        i + (r + 1) * len <= seq.len() && seq[i + r * len..i + (r + 1) * len] == seq[i..i + len]
                    })
                    .count()
                    + 1;
                let distinct = seq[i..i + len].iter().any(|t| *t != seq[i]);
                if repeats >= min_repeats && distinct && best.is_none_or(|b| len * repeats > b.len * b.repeats) {
                    best = Some(Block { start: i, len, repeats });
                }
            }
            i += best.map_or(1, |b| b.len * b.repeats);
            out.extend(best);
        }
        out
    }

    #[test]
    fn blocks_follow_the_rule_on_varied_sequences() {
        let mut cases = perf_sentinel_engine::testing::Cases::new(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| cases.below(n) as usize;
        let mut found = 0;
        for _ in 0..5_000 {
            // Loops of a few templates, runs of one template, and noise.
            let mut seq = Vec::new();
            while seq.len() < 40 {
                match next(3) {
                    0 => {
                        let body: Vec<u8> = (0..1 + next(4)).map(|_| next(3) as u8).collect();
                        for _ in 0..1 + next(5) {
                            seq.extend(&body);
                        }
                    }
                    1 => seq.extend(std::iter::repeat_n(next(3) as u8, 1 + next(8))),
                    _ => seq.push(next(5) as u8),
                }
            }
            let (min_len, min_repeats) = (2 + next(2), 2 + next(3));
            let max_len = min_len + next(5);
            let want = blocks_by_the_rule(&seq, min_len, max_len, min_repeats);
            assert_eq!(repeated_blocks(&seq, min_len, max_len, min_repeats), want, "{seq:?}");
            found += want.len();
        }
        assert!(found > 1_000, "{found}");
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
