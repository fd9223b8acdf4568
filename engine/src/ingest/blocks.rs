//! Decoding files of self-contained blocks one block at a time.
//!
//! Jaeger, Zipkin and OTLP files hold their spans in arrays of
//! self-contained blocks (a trace, a span, a `resource_spans` entry). The
//! seeds here hand each element of a JSON array to a callback as it is
//! read, so that the file is never decoded whole; [`normalize_blocks`]
//! then decodes, maps and normalizes the blocks on every core.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::IngestStats;
use crate::event::{SpanEvent, Text};
use crate::trace::{Interner, Span, SpanBatch};

/// Calls `each` with every element of a JSON array, in order.
pub(super) struct Elements<'f, T, F> {
    pub each: &'f mut F,
    pub what: &'static str,
    pub element: PhantomData<T>,
}

impl<'f, T, F: FnMut(T)> Elements<'f, T, F> {
    pub fn new(what: &'static str, each: &'f mut F) -> Self {
        Elements {
            each,
            what,
            element: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>, F: FnMut(T)> DeserializeSeed<'de> for Elements<'_, T, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>, F: FnMut(T)> Visitor<'de> for Elements<'_, T, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of {}", self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<T>()? {
            (self.each)(element);
        }
        Ok(())
    }
}

/// A JSON object whose array under `key` is decoded element by element
/// (through [`Elements`]); every other key is skipped unread, as a derived
/// `Deserialize` skips unknown fields. A second `key` is an error, and so is
/// a missing one unless `optional`.
pub(super) struct ArrayField<'f, T, F> {
    pub key: &'static str,
    pub optional: bool,
    pub object: &'static str,
    pub elements: Elements<'f, T, F>,
}

impl<'de, T: Deserialize<'de>, F: FnMut(T)> DeserializeSeed<'de> for ArrayField<'_, T, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>, F: FnMut(T)> Visitor<'de> for ArrayField<'_, T, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", self.object)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ArrayField {
            key,
            optional,
            elements,
            ..
        } = self;

        let mut elements = Some(elements);
        while let Some(name) = map.next_key::<String>()? {
            if name != key {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let Some(seed) = elements.take() else {
                return Err(de::Error::duplicate_field(key));
            };
            map.next_value_seed(seed)?;
        }
        if elements.is_some() && !optional {
            return Err(de::Error::missing_field(key));
        }
        Ok(())
    }
}

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
