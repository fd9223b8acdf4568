//! Decoding blocks of a protobuf request (`resource_spans` entries) on
//! every core, and turning a block's events into spans.

use super::IngestStats;
use crate::event::{SpanEvent, Text};
use crate::trace::{Interner, Span, SpanBatch};

/// Decodes, maps and normalizes blocks (raw JSON values or protobuf
/// messages found in the input) on every core: `each` turns one block into
/// spans. The parts are joined in block order, so the result does not
/// depend on the number of cores; the first error in block order wins.
pub(super) fn normalize_blocks<B: Sync, E: Send>(
    blocks: &[B],
    each: impl Fn(&B, &mut Interner, &mut Vec<Span>, &mut IngestStats) -> Result<(), E> + Sync,
) -> Result<(SpanBatch, IngestStats), E> {
    let parts = crate::parallel::map_chunks(blocks, 2, |chunk| {
        let (mut names, mut spans, mut stats) = (Interner::default(), Vec::new(), IngestStats::default());
        for block in chunk {
            each(block, &mut names, &mut spans, &mut stats)?;
        }
        Ok((spans, stats))
    });
    let mut stats = IngestStats::default();
    let mut all = Vec::with_capacity(parts.len());
    for part in parts {
        let (spans, part_stats) = part?;
        stats.add(part_stats);
        all.push(spans);
    }
    Ok((SpanBatch::from_parts(all), stats))
}

/// Sanitizes a block's events and appends their spans to `spans`, in order.
pub(super) fn push_sanitized<S: Text>(events: Vec<SpanEvent<S>>, names: &mut Interner, spans: &mut Vec<Span>) {
    spans.extend(events.into_iter().map(|mut e| {
        e.sanitize();
        Span::new(e, names)
    }));
}
