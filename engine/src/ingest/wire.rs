//! Walking the top level of a binary `ExportTraceServiceRequest` as it is read.
//!
//! A request is a run of fields; every `resource_spans` entry (field 1) is a
//! self-contained, length-prefixed message. [`Blocks`] reads the input a
//! window at a time and hands out those entries, each with its key and
//! length and its file offset, so that a file is decoded a few megabytes at
//! a time instead of being held whole. It accepts what prost's decoder
//! accepts at this level: unknown fields of every wire type, groups
//! included, are skipped, with prost's nesting limit.

use std::io::Read;

/// Bytes read from the input at a time.
const READ_BYTES: usize = 1 << 20;
/// Most bytes read at a time for one long entry.
const MAX_STEP: usize = 16 << 20;
/// Fields nested in groups of an unknown top-level field: at this depth
/// prost refuses a field, and so does this walk.
const MAX_GROUP_DEPTH: usize = 100;

/// A problem at a byte offset of the input.
pub(super) struct WireError {
    pub offset: u64,
    pub what: String,
}

/// The input, read ahead into a window, and the `resource_spans` entries
/// found in the window so far.
pub(super) struct Blocks<'r> {
    reader: &'r mut dyn Read,
    buf: Vec<u8>,
    /// The cursor, an index into `buf`.
    pos: usize,
    /// The file offset of `buf[0]`.
    base: u64,
    /// Bytes read from the input in all.
    read: u64,
    eof: bool,
    max_bytes: u64,
    progress: &'r mut dyn FnMut(u64),
    /// Entries found since the last [`Blocks::take_window`]: ranges of `buf`.
    found: Vec<(usize, usize)>,
}

/// Why walking stopped.
pub(super) enum Stop {
    /// The input is larger than the limit.
    TooLarge,
    Io(std::io::Error),
    Invalid(WireError),
}

impl<'r> Blocks<'r> {
    /// `head` holds the first bytes of the input, already read from it.
    pub fn new(head: Vec<u8>, reader: &'r mut dyn Read, max_bytes: u64, progress: &'r mut dyn FnMut(u64)) -> Self {
        Blocks {
            reader,
            read: head.len() as u64,
            buf: head,
            pos: 0,
            base: 0,
            eof: false,
            max_bytes,
            progress,
            found: Vec::new(),
        }
    }

    /// Skips `n` bytes at the start (a byte-order mark before the message).
    pub fn skip_prefix(&mut self, n: usize) {
        self.pos = n.min(self.buf.len());
    }

    /// Walks fields until the entries found hold at least `window` bytes or
    /// the input ends. Returns false at the end of the input.
    pub fn walk(&mut self, window: usize) -> Result<bool, Stop> {
        let start = self.found.first().map_or(self.pos, |&(s, _)| s);
        while self.pos - start < window {
            self.fill(1)?;
            if self.available() == 0 {
                return Ok(false);
            }
            let (begin, at) = (self.pos, self.offset());
            let (field, wire) = self.key()?;
            match (field, wire) {
                (1, 2) => {
                    let len = self.length(at)?;
                    self.pos += len;
                    self.found.push((begin, self.pos));
                }
                (1, _) => return Err(self.invalid(at, format!("field 1 has wire type {wire}, not a message"))),
                _ => self.skip(field, wire, at, 0)?,
            }
        }
        Ok(true)
    }

    /// The entries found since the last call, each a field of a request
    /// (key, length and message) with its file offset.
    pub fn take_window(&mut self) -> Vec<(u64, &[u8])> {
        let found = std::mem::take(&mut self.found);
        found
            .into_iter()
            .map(|(s, e)| (self.base + s as u64, &self.buf[s..e]))
            .collect()
    }

    /// Lets go of the bytes before the cursor.
    pub fn release(&mut self) {
        debug_assert!(self.found.is_empty());
        self.buf.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn available(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads until `n` bytes are available past the cursor or the input ends.
    fn fill(&mut self, n: usize) -> Result<(), Stop> {
        while self.available() < n && !self.eof {
            // A length is only a claim until its bytes are there: room is
            // made a step at a time, within what the limit still allows.
            let room =
                usize::try_from(self.max_bytes.saturating_add(1).saturating_sub(self.read)).unwrap_or(usize::MAX);
            let want = (n - self.available()).clamp(READ_BYTES, MAX_STEP).min(room.max(1));
            self.buf.reserve(want);
            let got = (&mut *self.reader)
                .take(want as u64)
                .read_to_end(&mut self.buf)
                .map_err(Stop::Io)?;
            self.read += got as u64;
            (self.progress)(self.read);
            if self.read > self.max_bytes {
                return Err(Stop::TooLarge);
            }
            self.eof = got == 0;
        }
        Ok(())
    }

    fn invalid(&self, offset: u64, what: impl Into<String>) -> Stop {
        Stop::Invalid(WireError {
            offset,
            what: what.into(),
        })
    }

    /// A base-128 varint of at most ten bytes, as prost reads it.
    fn varint(&mut self, what: &str) -> Result<u64, Stop> {
        let at = self.offset();
        self.fill(10)?;
        match super::view::varint(&self.buf[self.pos..]) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(super::view::Varint::Truncated) => Err(self.invalid(at, format!("truncated {what}"))),
            Err(super::view::Varint::Invalid) => Err(self.invalid(at, format!("{what} is not a valid varint"))),
        }
    }

    /// A field key: the field number and the wire type.
    fn key(&mut self) -> Result<(u32, u8), Stop> {
        let at = self.offset();
        let key = self.varint("field key")?;
        let field = key >> 3;
        if field == 0 || key > u64::from(u32::MAX) {
            return Err(self.invalid(at, format!("invalid field number {field}")));
        }
        Ok((field as u32, (key & 7) as u8))
    }

    /// The length of a length-delimited field whose key is at `at`, its
    /// bytes read into the window.
    fn length(&mut self, at: u64) -> Result<usize, Stop> {
        let len = self.varint("length")?;
        self.need(usize::try_from(len).unwrap_or(usize::MAX), at)
    }

    /// `len`, once that many bytes past the cursor are in the window; an
    /// error naming the field whose key is at `at` if the input ends first.
    fn need(&mut self, len: usize, at: u64) -> Result<usize, Stop> {
        self.fill(len)?;
        if self.available() < len {
            return Err(self.invalid(at, "a field runs past the end of the input"));
        }
        Ok(len)
    }

    /// Skips the value of an unknown field whose key is at `at`, `depth`
    /// groups deep.
    fn skip(&mut self, field: u32, wire: u8, at: u64, depth: usize) -> Result<(), Stop> {
        if depth >= MAX_GROUP_DEPTH {
            return Err(self.invalid(at, "groups nested too deeply"));
        }
        let len = match wire {
            0 => {
                self.varint("varint")?;
                0
            }
            1 => self.need(8, at)?,
            2 => self.length(at)?,
            3 => return self.skip_group(field, at, depth),
            5 => self.need(4, at)?,
            _ => return Err(self.invalid(at, format!("unexpected wire type {wire} for field {field}"))),
        };
        self.pos += len;
        Ok(())
    }

    /// Skips the fields of a group up to its end tag.
    fn skip_group(&mut self, field: u32, at: u64, depth: usize) -> Result<(), Stop> {
        loop {
            self.fill(1)?;
            if self.available() == 0 {
                return Err(self.invalid(at, format!("group of field {field} has no end")));
            }
            let inner_at = self.offset();
            let (inner, wire) = self.key()?;
            if wire == 4 {
                if inner == field {
                    return Ok(());
                }
                return Err(self.invalid(inner_at, format!("end of group {inner} inside group {field}")));
            }
            self.skip(inner, wire, inner_at, depth + 1)?;
        }
    }
}
