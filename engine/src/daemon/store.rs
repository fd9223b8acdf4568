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
        for finding in findings.into_iter().skip(skip) {
            if items.len() == self.capacity {
                items.pop_front();
            }
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
}
