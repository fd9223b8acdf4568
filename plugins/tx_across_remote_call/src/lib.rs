//! # perf-sentinel-plugin-tx-across-remote-call
//!
//! The `tx_across_remote_call` detector, as a separate crate that registers
//! itself the way any third-party detector does. Link it with
//! `extern crate perf_sentinel_plugin_tx_across_remote_call as _;`.

use std::collections::{BTreeMap, BTreeSet};

use perf_sentinel_engine::group::finding_for_group;
use perf_sentinel_engine::registry::{Detector, Settings, Tunable};
use perf_sentinel_engine::{EventKind, Finding, Severity, Span, Trace};

const MIN_REMOTE_MS: Tunable = Tunable::int(
    "detection",
    "tx_across_remote_call_min_remote_ms",
    0,
    3_600_000,
    0,
    "Shortest outgoing call, in milliseconds, that counts when made inside an open transaction.",
);

const CRITICAL_MS: Tunable = Tunable::int(
    "detection",
    "tx_across_remote_call_critical_ms",
    1,
    3_600_000,
    1000,
    "Milliseconds of remote calls inside one transaction from which the finding is critical.",
);

perf_sentinel_engine::declare_detector! {
    /// ## What it detects
    /// A database transaction that stays open across an outgoing HTTP or RPC
    /// call: in one service of a trace, a `BEGIN` or `START TRANSACTION`
    /// statement, then an outbound call of that service that starts before
    /// the transaction's `COMMIT` or `ROLLBACK` ends. Calls shorter than
    /// `tx_across_remote_call_min_remote_ms` are ignored. The template is
    /// `BEGIN … COMMIT around <call templates>`, and `occurrences` counts the
    /// calls made inside the transaction.
    ///
    /// Severity: critical when the calls inside one transaction add up to
    /// `tx_across_remote_call_critical_ms` or more, warning below.
    ///
    /// ## Why is it slow?
    /// A transaction holds its row locks and its pooled connection until it
    /// ends. Waiting on the network inside it stretches lock time to the
    /// remote service's latency: other requests queue on the locks, the pool
    /// drains, and a slow or failing dependency turns into database
    /// contention.
    ///
    /// ## Example
    /// `POST /api/orders` runs `BEGIN`, `UPDATE stock …`, calls
    /// `POST /payments/authorize` (300 ms), then `COMMIT`.
    ///
    /// Prefer: make the remote call before the transaction or after it
    /// (outbox pattern, saga), and keep transactions to database work only.
    ///
    /// ## Known false positives
    /// Transactions that must span the call for correctness and are
    /// protected otherwise (short lock timeouts); calls to a local sidecar.
    id: "tx_across_remote_call",
    label: "Transaction across a remote call",
    rank: 210,
    summary: "a database transaction held open across an outgoing HTTP or RPC call",
    avoidable_io: false,
    tunables: &[MIN_REMOTE_MS, CRITICAL_MS],
    gate_rules: &[],
    build: build,
}

struct TxAcrossRemoteCall {
    min_remote_us: u64,
    critical_us: u64,
}

fn build(s: &Settings) -> Result<Box<dyn Detector>, String> {
    Ok(Box::new(TxAcrossRemoteCall {
        min_remote_us: s.uint(MIN_REMOTE_MS.key).saturating_mul(1000),
        critical_us: s.uint(CRITICAL_MS.key).saturating_mul(1000),
    }))
}

/// The statement's first word, as written.
fn first_word(template: &str) -> &str {
    template
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("")
}

fn opens(template: &str) -> bool {
    let w = first_word(template);
    w.eq_ignore_ascii_case("BEGIN")
        || (w.eq_ignore_ascii_case("START")
            && template
                .trim_start()
                .as_bytes()
                .get(..17)
                .is_some_and(|head| head.eq_ignore_ascii_case(b"START TRANSACTION")))
}

fn closes(template: &str) -> bool {
    let w = first_word(template);
    ["COMMIT", "ROLLBACK", "END"].iter().any(|c| w.eq_ignore_ascii_case(c))
}

impl Detector for TxAcrossRemoteCall {
    fn detect(&self, trace: &Trace, _earlier: &[Finding], out: &mut Vec<Finding>) {
        // Most traces open no transaction: nothing to group.
        if !trace
            .spans
            .iter()
            .any(|s| s.kind() == EventKind::Sql && opens(&s.template))
        {
            return;
        }
        let mut by_service: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
        for s in &trace.spans {
            by_service.entry(&s.event.service).or_default().push(s);
        }
        for spans in by_service.values() {
            // Spans are in start order; walk the transactions of this service.
            let mut open: Option<&Span> = None;
            for s in spans.iter().filter(|s| s.kind() == EventKind::Sql) {
                if opens(&s.template) {
                    open = Some(s);
                } else if closes(&s.template) {
                    if let Some(begin) = open.take() {
                        self.check(begin, s, spans, out);
                    }
                }
            }
        }
    }
}

impl TxAcrossRemoteCall {
    fn check(&self, begin: &Span, end: &Span, spans: &[&Span], out: &mut Vec<Finding>) {
        let (Some((tx_start, _)), Some((_, tx_end))) = (begin.interval_ns(), end.interval_ns()) else {
            return;
        };
        let calls: Vec<&Span> = spans
            .iter()
            .filter(|s| s.kind() == EventKind::HttpOut && s.event.duration_us >= self.min_remote_us)
            .filter(|s| s.interval_ns().is_some_and(|(a, _)| a >= tx_start && a < tx_end))
            .copied()
            .collect();
        if calls.is_empty() {
            return;
        }
        let remote_us: u64 = calls.iter().map(|s| s.event.duration_us).sum();
        let names: BTreeSet<&str> = calls.iter().map(|s| &*s.template).collect();
        let template = format!(
            "{} … {} around {}",
            first_word(&begin.template).to_ascii_uppercase(),
            first_word(&end.template).to_ascii_uppercase(),
            names.iter().copied().collect::<Vec<_>>().join(", ")
        );
        let severity = if remote_us >= self.critical_us {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut group: Vec<&Span> = vec![begin];
        group.extend(calls.iter().copied());
        group.push(end);
        let mut f = finding_for_group("tx_across_remote_call", severity, &template, &group);
        f.pattern.occurrences = calls.len() as u64;
        f.pattern.distinct_params = names.len() as u64;
        f.suggestion = format!(
            "a transaction stayed open for {:.1} ms of outgoing calls ({}): make the calls before or after the transaction (outbox pattern, saga)",
            remote_us as f64 / 1000.0,
            names.iter().copied().collect::<Vec<_>>().join(", ")
        );
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_statements() {
        assert!(opens("BEGIN") && opens("begin transaction") && opens("START TRANSACTION READ WRITE"));
        assert!(!opens("START SLAVE") && !opens("SELECT ?"));
        assert!(closes("COMMIT") && closes("rollback;") && !closes("COMMENT ON x"));
        assert!(opens("  Start Transaction") && !opens("START TRANS") && !opens("STARTx TRANSACTION"));
        assert!(closes("end") && !closes("ending") && !closes("ÉND"));
    }
}
