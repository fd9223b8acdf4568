//! Decoding a JSON array one element at a time.
//!
//! Jaeger, Zipkin and OTLP/JSON files hold their spans in arrays of
//! self-contained blocks (a trace, a span, a `resourceSpans` entry). These
//! seeds hand each element to a callback as soon as it is decoded, so that
//! the decoded file is never held whole: the caller maps and normalizes the
//! block, and the next one reuses its memory.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

impl<'de, T: DeserializeOwned, F: FnMut(T)> DeserializeSeed<'de> for Elements<'_, T, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for Elements<'_, T, F> {
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

impl<'de, T: DeserializeOwned, F: FnMut(T)> DeserializeSeed<'de> for ArrayField<'_, T, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for ArrayField<'_, T, F> {
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
