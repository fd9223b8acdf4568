//! The findings store: the newest `max_retained_findings` findings, for the
//! query API. In memory only.

use std::collections::VecDeque;
use std::sync::RwLock;

use serde::Serialize;

use crate::finding::Finding;

/// A stored finding and when it was stored (epoch milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub finding: Finding,
    pub stored_at_ms: u64,
}

/// A ring buffer of findings; capacity 0 stores nothing.
#[derive(Debug)]
pub struct FindingsStore {
    capacity: usize,
    items: RwLock<VecDeque<Stored>>,
}

impl FindingsStore {
    pub fn new(capacity: usize) -> FindingsStore {
        FindingsStore {
            capacity,
            items: RwLock::new(VecDeque::new()),
        }
    }

    /// Stores a batch's findings, in order, dropping the oldest past the
    /// capacity. They are moved in, not copied.
    pub fn push(&self, findings: Vec<Finding>, now_ms: u64) {
        if self.capacity == 0 || findings.is_empty() {
            return;
        }
        // Of a batch larger than the store, only its newest findings stay.
        let skip = findings.len().saturating_sub(self.capacity);
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        for mut finding in findings.into_iter().skip(skip) {
            if items.len() == self.capacity {
                items.pop_front();
            } else if items.len() == items.capacity() {
                // Doubling, but never past the capacity: a full store of
                // 10,000 findings would otherwise hold room for 16,384.
                let len = items.len();
                items.reserve_exact((len * 2).max(16).min(self.capacity) - len);
            }
            // Span ids serve `explain`, which the daemon answers from its
            // trace window, and are never served from here.
            finding.span_ids = Vec::new();
            items.push_back(Stored {
                finding,
                stored_at_ms: now_ms,
            });
        }
    }

    pub fn len(&self) -> usize {
        self.items.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Newest first, filtered, at most `limit`.
    pub fn newest(&self, limit: usize, keep: impl Fn(&Finding) -> bool) -> Vec<Stored> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .rev()
            .filter(|s| keep(&s.finding))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Oldest first, filtered, at most `limit`.
    pub fn oldest(&self, limit: usize, keep: impl Fn(&Finding) -> bool) -> Vec<Stored> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items.iter().filter(|s| keep(&s.finding)).take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding_spill::tests::finding;

    fn trace_ids(store: &FindingsStore) -> Vec<String> {
        store
            .oldest(usize::MAX, |_| true)
            .into_iter()
            .map(|s| s.finding.trace_id)
            .collect()
    }

    #[test]
    fn keeps_the_newest_findings_in_order() {
        let store = FindingsStore::new(3);
        store.push((0..2).map(finding).collect(), 1);
        assert_eq!(trace_ids(&store), ["trace-0", "trace-1"]);
        // A batch larger than the store: only its newest stay.
        store.push((2..7).map(finding).collect(), 2);
        assert_eq!(trace_ids(&store), ["trace-4", "trace-0", "trace-1"]);
        assert_eq!(store.newest(1, |_| true)[0].stored_at_ms, 2);
        store.push(vec![finding(7)], 3);
        assert_eq!(trace_ids(&store), ["trace-0", "trace-1", "trace-2"]);
        let none = FindingsStore::new(0);
        none.push(vec![finding(0)], 1);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn holds_no_more_room_than_its_capacity_and_no_span_ids() {
        let store = FindingsStore::new(1_000);
        let mut with_ids = finding(3);
        with_ids.span_ids = vec!["00f067aa0ba902b7".into(); 20];
        store.push(vec![with_ids], 1);
        for n in 0..30 {
            store.push((0..100).map(|i| finding(n * 100 + i)).collect(), 2);
        }
        let items = store.items.read().unwrap();
        assert_eq!((items.len(), items.capacity()), (1_000, 1_000));
        assert!(items.iter().all(|s| s.finding.span_ids.is_empty()));
        // Everything else of a finding is kept as it was.
        let newest = &items.back().unwrap().finding;
        let mut want = finding(2_999);
        want.span_ids.clear();
        assert_eq!(
            serde_json::to_value(newest).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
    }
}
