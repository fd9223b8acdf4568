//! Splitting order-independent work over the available cores with scoped
//! threads, joining the results in input order so that output never depends
//! on the number of cores.

use std::num::NonZeroUsize;

pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(16)
}

/// `f` over consecutive chunks of `items`, one chunk per core, results in
/// chunk order. Below `min` items (or on one core) it runs on this thread.
pub fn map_chunks<T: Sync, R: Send>(items: &[T], min: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let n = workers();
    if n < 2 || items.len() < min.max(2) {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(size).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Like [`map_chunks`], for owned items.
pub fn map_owned_chunks<T: Send, R: Send>(mut items: Vec<T>, min: usize, f: impl Fn(Vec<T>) -> R + Sync) -> Vec<R> {
    let n = workers();
    if n < 2 || items.len() < min.max(2) {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(n);
    let mut chunks = Vec::with_capacity(n);
    while items.len() > size {
        let tail = items.split_off(items.len() - size);
        chunks.push(tail);
    }
    chunks.push(items);
    chunks.reverse();
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = chunks.into_iter().map(|c| s.spawn(move || f(c))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `f` over consecutive mutable chunks of `items`, one per core.
pub fn for_each_chunk<T: Send>(items: &mut [T], min: usize, f: impl Fn(&mut [T]) + Sync) {
    let n = workers();
    if n < 2 || items.len() < min.max(2) {
        f(items);
        return;
    }
    let size = items.len().div_ceil(n);
    std::thread::scope(|s| {
        for c in items.chunks_mut(size) {
            let f = &f;
            s.spawn(move || f(c));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums: Vec<Vec<u32>> = map_chunks(&items, 2, |c| c.to_vec());
        assert_eq!(sums.into_iter().flatten().collect::<Vec<_>>(), items);
        let owned = map_owned_chunks(items.clone(), 2, |c| c);
        assert_eq!(owned.into_iter().flatten().collect::<Vec<_>>(), items);
        let mut v = items.clone();
        for_each_chunk(&mut v, 2, |c| c.iter_mut().for_each(|x| *x += 1));
        assert_eq!(v[9_999], 10_000);
    }
}
