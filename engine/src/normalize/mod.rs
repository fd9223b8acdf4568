//! Normalization: from a raw SQL statement or URL to a template and its literals.
//!
//! The template is the grouping key of every detector, so these rules follow the
//! reference byte for byte (spec 02). The literals themselves never leave this
//! module: callers get a [`ParamDigest`], which is enough to count distinct
//! parameter lists and to compare two lists, and which cannot be turned back
//! into customer ids, e-mail addresses or tokens.

mod http;
mod sql;

use std::hash::{DefaultHasher, Hasher};

pub use http::{normalize_http, url_host};
pub use sql::{normalize_sql, statement_verb};

/// Receives the literal values removed from a statement, in order.
pub trait ParamSink {
    /// One literal, as it appeared (string quotes removed, `''` unescaped).
    fn push(&mut self, value: &str);
}

impl ParamSink for Vec<String> {
    fn push(&mut self, value: &str) {
        Vec::push(self, value.to_owned());
    }
}

/// A 128-bit fingerprint and the length of an ordered list of literals.
///
/// Two lists compare equal when their digests do (a collision needs about 2^64
/// distinct lists in one trace group). The empty list has `count == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamDigest {
    pub count: u32,
    pub hash: u128,
}

/// Builds a [`ParamDigest`] as literals are pushed.
#[derive(Clone)]
pub struct DigestSink {
    count: u32,
    a: DefaultHasher,
    b: DefaultHasher,
}

impl Default for DigestSink {
    fn default() -> Self {
        let a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        b.write_u64(0x9e37_79b9_7f4a_7c15);
        Self { count: 0, a, b }
    }
}

impl DigestSink {
    pub fn finish(self) -> ParamDigest {
        ParamDigest {
            count: self.count,
            hash: (u128::from(self.a.finish()) << 64) | u128::from(self.b.finish()),
        }
    }
}

impl ParamSink for DigestSink {
    fn push(&mut self, value: &str) {
        self.count = self.count.saturating_add(1);
        for h in [&mut self.a, &mut self.b] {
            h.write_usize(value.len());
            h.write(value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(values: &[&str]) -> ParamDigest {
        let mut s = DigestSink::default();
        for v in values {
            s.push(v);
        }
        s.finish()
    }

    #[test]
    fn digests_separate_lists_that_concatenate_alike() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&["1", "2"]), digest(&["1", "2"]));
        assert_ne!(digest(&["1", "2"]), digest(&["2", "1"]));
        assert_eq!(digest(&[]).count, 0);
    }
}
