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

    pub fn push(&self, findings: &[Finding], now_ms: u64) {
        if self.capacity == 0 || findings.is_empty() {
            return;
        }
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        for f in findings {
            if items.len() == self.capacity {
                items.pop_front();
            }
            items.push_back(Stored {
                finding: f.clone(),
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
