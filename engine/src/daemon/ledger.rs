//! Exact accounting of every span the daemon receives.
//!
//! Each span is in exactly one place at any time, and every move between
//! places happens under one lock, so a snapshot always balances:
//!
//! ```text
//! received = sampled_out + rejected + dropped + shed + analyzed
//!          + in_ingest_queue + in_window + in_analysis
//! ```
//!
//! `/metrics` renders a snapshot taken under the lock, so the equation holds
//! at every scrape, not only at rest.

use std::sync::Mutex;

/// Span and batch counts. Spans are I/O spans (SQL or HTTP) after conversion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// I/O spans decoded from accepted requests.
    pub received: u64,
    /// Spans of received requests that were not I/O (not counted in `received`).
    pub ignored_non_io: u64,
    /// Spans of traces that `sampling_rate` left out.
    pub sampled_out: u64,
    /// Spans decoded but refused because the daemon was shutting down.
    pub rejected: u64,
    /// Oldest spans dropped when a trace exceeded `max_events_per_trace`.
    pub dropped: u64,
    /// Spans of analysis batches shed because the analysis queue was full.
    pub shed: u64,
    /// Spans the analysis worker finished with.
    pub analyzed: u64,
    pub in_ingest_queue: u64,
    pub in_window: u64,
    pub in_analysis: u64,
    /// Traces and batches, for the reference's metrics.
    pub traces_analyzed: u64,
    pub traces_shed: u64,
    pub batches_shed: u64,
    /// Batches enqueued for the worker and not yet taken by it.
    pub analysis_queue_depth: u64,
    pub active_traces: u64,
}

impl Counts {
    /// Whether every received span is accounted for.
    pub fn balanced(&self) -> bool {
        self.received
            == self.sampled_out
                + self.rejected
                + self.dropped
                + self.shed
                + self.analyzed
                + self.in_ingest_queue
                + self.in_window
                + self.in_analysis
    }
}

/// The shared ledger.
#[derive(Debug, Default)]
pub struct Ledger(Mutex<Counts>);

impl Ledger {
    /// Applies one move under the lock.
    pub fn update(&self, f: impl FnOnce(&mut Counts)) {
        // A poisoned lock only means a panic elsewhere while updating plain
        // integers; the counts are still meaningful.
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c);
    }

    /// A consistent copy.
    pub fn snapshot(&self) -> Counts {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a consistent copy while holding the lock (for rendering).
    pub fn with_snapshot<T>(&self, f: impl FnOnce(&Counts) -> T) -> T {
        let c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&c)
    }
}
