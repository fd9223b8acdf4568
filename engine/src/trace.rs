//! Normalized spans grouped into traces: what detectors see.

use std::sync::Arc;

pub use compact_str::CompactString;

use crate::event::{EventKind, EventSource, SpanEvent, Text};
use crate::normalize::{DigestSink, ParamDigest, ParamSink, normalize_http, normalize_sql, statement_verb, url_host};

/// A span after normalization: what detectors and scorers see.
///
/// The raw statement or URL is gone once normalized: what is left of it is
/// the template, the digest of its literals, the URL's host and the SQL
/// verb. Names that repeat from span to span (service, endpoint, operation,
/// code location, scopes, trace id) share one allocation, and ids and
/// timestamps of up to 24 bytes are stored inline, so a span costs about a
/// third of the event it came from.
#[derive(Debug, Clone)]
pub struct Span {
    /// The event's fields, shared where they repeat.
    pub event: SpanRecord,
    /// The normalized template, e.g. `SELECT * FROM t WHERE id = ?`.
    pub template: Arc<str>,
    /// A fingerprint of the literals removed from the target.
    pub params: ParamDigest,
}

/// The fields of a [`SpanEvent`] that outlive normalization.
///
/// Same names and meanings as in [`SpanEvent`]; `target` is replaced by
/// [`SpanRecord::host`] and [`SpanRecord::verb`], and `db_parameters` by the
/// span's [`ParamDigest`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub timestamp: CompactString,
    pub trace_id: Arc<str>,
    pub span_id: CompactString,
    pub parent_span_id: Option<CompactString>,
    pub service: Arc<str>,
    pub cloud_region: Option<Arc<str>>,
    pub kind: EventKind,
    pub operation: Arc<str>,
    pub duration_us: u64,
    pub source: EventSource<Arc<str>>,
    pub status_code: Option<u16>,
    pub response_size_bytes: Option<u64>,
    /// The `code.*` attributes, when the span has any; shared by every span
    /// made at the same place.
    pub code: Option<Arc<CodeSite>>,
    /// OpenTelemetry instrumentation scope names, leaf first.
    pub instrumentation_scopes: Arc<[Arc<str>]>,
    pub start_unix_nanos: Option<i64>,
    /// Lower-cased host of an `http://` or `https://` target, if it has one.
    pub host: Option<Arc<str>>,
    /// SQL: the statement's leading keyword, upper-cased, when it is a known
    /// one ([`statement_verb`]); `None` for HTTP.
    pub verb: Option<&'static str>,
}

/// Where in the code a span was made: its `code.*` attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeSite {
    pub function: Option<Arc<str>>,
    pub filepath: Option<Arc<str>>,
    pub lineno: Option<u32>,
    pub namespace: Option<Arc<str>>,
}

/// One shared [`CodeSite`] per place in the code.
///
/// Its names come already shared (from an [`Interner`] or a run's name
/// table), so a site is known by the addresses of its names: no text is
/// hashed or compared. Two copies of one name at two addresses only make
/// two equal sites. The set starts over past [`Interner::MAX_NAMES`] sites.
#[derive(Default)]
pub struct CodeSites {
    sites: foldhash::HashMap<SiteKey, Arc<CodeSite>>,
    last: Option<(SiteKey, Arc<CodeSite>)>,
}

/// Addresses of a site's names (0 for none) and its line number.
type SiteKey = [u64; 4];

impl CodeSites {
    /// The shared site with these names; `None` when all four are absent.
    pub fn get(
        &mut self,
        function: Option<Arc<str>>,
        filepath: Option<Arc<str>>,
        lineno: Option<u32>,
        namespace: Option<Arc<str>>,
    ) -> Option<Arc<CodeSite>> {
        if function.is_none() && filepath.is_none() && lineno.is_none() && namespace.is_none() {
            return None;
        }
        let at = |s: &Option<Arc<str>>| s.as_ref().map_or(0, |s| s.as_ptr() as usize as u64);
        // Line numbers are `u32`: above that, "none" cannot clash with one.
        let key = [
            at(&function),
            at(&filepath),
            lineno.map_or(1 << 32, u64::from),
            at(&namespace),
        ];
        if let Some((k, site)) = &self.last
            && *k == key
        {
            return Some(Arc::clone(site));
        }
        if self.sites.len() >= Interner::MAX_NAMES {
            self.sites.clear();
        }
        // The map holds the site, and the site its names: no address in a
        // key is freed, or reused, while the key stands.
        let site = Arc::clone(self.sites.entry(key).or_insert_with(|| {
            Arc::new(CodeSite {
                function,
                filepath,
                lineno,
                namespace,
            })
        }));
        self.last = Some((key, Arc::clone(&site)));
        Some(site)
    }
}

impl Span {
    /// Normalizes one event, owned or borrowing its strings.
    pub fn new<S: Text>(event: SpanEvent<S>, names: &mut Interner) -> Span {
        let (template, params, host, verb) = names.normalized(
            event.kind,
            event.operation.as_ref(),
            event.target.as_ref(),
            &event.db_parameters,
        );
        let opt = |names: &mut Interner, field, v: &Option<S>| v.as_ref().map(|v| names.field(field, v.as_ref()));
        let record = SpanRecord {
            trace_id: names.trace_id(event.trace_id.as_ref()),
            service: names.field(Field::Service, event.service.as_ref()),
            cloud_region: opt(names, Field::Region, &event.cloud_region),
            kind: event.kind,
            operation: names.field(Field::Operation, event.operation.as_ref()),
            duration_us: event.duration_us,
            source: EventSource {
                endpoint: names.field(Field::Endpoint, event.source.endpoint.as_ref()),
                method: names.field(Field::Method, event.source.method.as_ref()),
            },
            status_code: event.status_code,
            response_size_bytes: event.response_size_bytes,
            code: {
                let function = opt(names, Field::Function, &event.code_function);
                let filepath = opt(names, Field::Path, &event.code_filepath);
                let namespace = opt(names, Field::Namespace, &event.code_namespace);
                names.sites.get(function, filepath, event.code_lineno, namespace)
            },
            instrumentation_scopes: names.scopes(&event.instrumentation_scopes),
            start_unix_nanos: event.start_unix_nanos,
            host,
            verb,
            timestamp: event.timestamp.into_compact(),
            span_id: event.span_id.into_compact(),
            parent_span_id: event.parent_span_id.map(Text::into_compact),
        };
        Span {
            template,
            params,
            event: record,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.event.kind
    }

    /// Start instant in nanoseconds since the epoch, if the timestamp parses.
    pub fn start_ns(&self) -> Option<i64> {
        self.event.start_unix_nanos
    }

    /// `(start, end)` in nanoseconds, if the timestamp parses.
    pub fn interval_ns(&self) -> Option<(i64, i64)> {
        let start = self.event.start_unix_nanos?;
        let dur = i64::try_from(self.event.duration_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        Some((start, start.saturating_add(dur)))
    }
}

/// Shares one allocation between equal names and templates.
///
/// One interner serves one run of spans (a worker's share of a file, an OTLP
/// request). Trace ids are shared with the previous span only, since they
/// rarely repeat once their trace is over; everything else goes through a
/// set that is emptied when it reaches [`Interner::MAX_NAMES`], so a stream
/// of distinct names costs no more than owning them would.
#[derive(Default)]
pub struct Interner {
    names: foldhash::HashSet<Arc<str>>,
    last_trace: Option<Arc<str>>,
    last_scopes: Option<Arc<[Arc<str>]>>,
    /// The last name of each [`Field`]: consecutive spans mostly share
    /// their service, endpoint and operation, and a comparison with the
    /// previous one is cheaper than hashing.
    last: [Option<Arc<str>>; Field::COUNT],
    /// What normalization made of recently seen targets.
    recent: Recent,
    sites: CodeSites,
}

/// What normalization makes of one target: the same for every span with
/// the same kind, operation and target.
#[derive(Clone)]
struct Normalized {
    template: Arc<str>,
    /// The digest of the target's literals, before any bound parameter.
    sink: DigestSink,
    /// `sink` finished: the digest of a span without bound parameters.
    digest: ParamDigest,
    host: Option<Arc<str>>,
    verb: Option<&'static str>,
}

/// What a span keeps of its target: template, digest, host and verb.
type Made = (Arc<str>, ParamDigest, Option<Arc<str>>, Option<&'static str>);

impl Normalized {
    /// The span's share, with the parameters bound to the statement.
    fn with<S: AsRef<str>>(&self, bound: &[S]) -> Made {
        let params = if bound.is_empty() {
            self.digest
        } else {
            let mut sink = self.sink.clone();
            for value in bound {
                sink.push(value.as_ref());
            }
            sink.finish()
        };
        (Arc::clone(&self.template), params, self.host.clone(), self.verb)
    }
}

/// A cache of [`Normalized`] targets: two-way set-associative, a set
/// chosen by the target's hash.
///
/// Services repeat their statements and URLs (prepared statements, the
/// same call in every request), and a lookup costs a hash and a
/// comparison where normalizing costs a pass over the text with
/// allocations. A set notes the hashes of the last two targets it missed
/// and keeps a target when it misses it again while noted, so a stream of
/// targets that never repeat (literals inlined in every statement) costs
/// only the hash and never evicts a kept target; two ways and two notes per
/// set let two frequent targets that alternate share a set. Targets over
/// [`Recent::MAX_TARGET`] bytes are never kept: the cache holds at most
/// `2 * SETS * MAX_TARGET` bytes of text.
#[derive(Default)]
struct Recent {
    sets: Vec<Set>,
}

#[derive(Default)]
struct Set {
    ways: [Option<Box<KeptTarget>>; 2],
    /// The hashes of the last two targets missed and not kept (0: none).
    seen: [u64; 2],
    /// The way that last served or kept a target.
    last: u8,
    /// The note that the next miss replaces.
    next_seen: u8,
}

struct KeptTarget {
    hash: u64,
    kind: EventKind,
    /// The operation, which HTTP templates depend on (empty for SQL).
    operation: Box<str>,
    target: Box<str>,
    made: Normalized,
}

impl Recent {
    const SETS: usize = 512;
    const MAX_TARGET: usize = 2048;

    /// The hash that picks a target's set: fixed seed, same in every run.
    fn hash(kind: EventKind, operation: &str, target: &str) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
        kind.hash(&mut h);
        operation.hash(&mut h);
        target.hash(&mut h);
        h.finish()
    }

    /// The kept normalization of this target, if any.
    fn get(&mut self, hash: u64, kind: EventKind, operation: &str, target: &str) -> Option<&Normalized> {
        if self.sets.is_empty() {
            self.sets.resize_with(Self::SETS, Set::default);
        }
        let set = &mut self.sets[hash as usize % Self::SETS];
        let way = set.ways.iter().position(|w| {
            w.as_ref()
                .is_some_and(|k| k.hash == hash && k.kind == kind && *k.target == *target && *k.operation == *operation)
        })?;
        set.last = way as u8;
        set.ways[way].as_ref().map(|k| &k.made)
    }

    /// Notes a target that [`Recent::get`] did not have: kept, in an empty
    /// way or in place of the one used less recently, if its set noted it;
    /// else noted in place of the older note.
    fn put(&mut self, hash: u64, kind: EventKind, operation: &str, target: &str, made: Normalized) {
        let set = &mut self.sets[hash as usize % Self::SETS];
        let Some(note) = set.seen.iter().position(|&h| h == hash && h != 0) else {
            set.seen[usize::from(set.next_seen)] = hash;
            set.next_seen ^= 1;
            return;
        };
        set.seen[note] = 0;
        let way = set
            .ways
            .iter()
            .position(Option::is_none)
            .unwrap_or(usize::from(1 - set.last));
        set.ways[way] = Some(Box::new(KeptTarget {
            hash,
            kind,
            operation: operation.into(),
            target: target.into(),
            made,
        }));
        set.last = way as u8;
    }
}

/// The span fields whose last name an [`Interner`] remembers.
#[derive(Clone, Copy)]
enum Field {
    Service,
    Region,
    Operation,
    Endpoint,
    Method,
    Function,
    Path,
    Namespace,
    Host,
}

impl Field {
    const COUNT: usize = Field::Host as usize + 1;
}

impl Interner {
    /// How many distinct names the set holds before it starts over.
    pub const MAX_NAMES: usize = 1 << 16;

    /// What normalization makes of a target and its bound parameters:
    /// template, digest, host and verb, from the cache when the same target
    /// came recently.
    fn normalized<S: AsRef<str>>(&mut self, kind: EventKind, operation: &str, target: &str, bound: &[S]) -> Made {
        // SQL templates do not depend on the operation.
        let operation = match kind {
            EventKind::Sql => "",
            EventKind::HttpOut => operation,
        };
        if target.len() > Recent::MAX_TARGET {
            return self.normalize(kind, operation, target).with(bound);
        }
        let hash = Recent::hash(kind, operation, target);
        if let Some(made) = self.recent.get(hash, kind, operation, target) {
            return made.with(bound);
        }
        let made = self.normalize(kind, operation, target);
        let out = made.with(bound);
        self.recent.put(hash, kind, operation, target, made);
        out
    }

    /// Normalizes a target, without the cache.
    fn normalize(&mut self, kind: EventKind, operation: &str, target: &str) -> Normalized {
        let mut sink = DigestSink::default();
        let template = match kind {
            EventKind::Sql => normalize_sql(target, &mut sink),
            EventKind::HttpOut => normalize_http(operation, target, &mut sink),
        };
        let host = url_host(target).map(|h| {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                self.intern(&h.to_ascii_lowercase())
            } else {
                self.field(Field::Host, h)
            }
        });
        let verb = match kind {
            EventKind::Sql => statement_verb(target),
            EventKind::HttpOut => None,
        };
        Normalized {
            template: self.intern_owned(template),
            digest: sink.clone().finish(),
            sink,
            host,
            verb,
        }
    }

    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(k) = self.names.get(s) {
            return Arc::clone(k);
        }
        self.insert(Arc::from(s))
    }

    /// The shared copy of `s`, reusing its buffer when it is new.
    pub fn intern_owned(&mut self, s: String) -> Arc<str> {
        if let Some(k) = self.names.get(s.as_str()) {
            return Arc::clone(k);
        }
        self.insert(Arc::from(s))
    }

    /// The shared copy of `s`, a name of `field`.
    fn field(&mut self, field: Field, s: &str) -> Arc<str> {
        if let Some(k) = &self.last[field as usize]
            && **k == *s
        {
            return Arc::clone(k);
        }
        let k = self.intern(s);
        self.last[field as usize] = Some(Arc::clone(&k));
        k
    }

    fn insert(&mut self, k: Arc<str>) -> Arc<str> {
        if self.names.len() >= Self::MAX_NAMES {
            self.names.clear();
        }
        self.names.insert(Arc::clone(&k));
        k
    }

    fn trace_id(&mut self, id: &str) -> Arc<str> {
        match &self.last_trace {
            Some(last) if **last == *id => Arc::clone(last),
            _ => {
                let k: Arc<str> = Arc::from(id);
                self.last_trace = Some(Arc::clone(&k));
                k
            }
        }
    }

    fn scopes<S: AsRef<str>>(&mut self, scopes: &[S]) -> Arc<[Arc<str>]> {
        if let Some(last) = &self.last_scopes
            && last.len() == scopes.len()
            && last.iter().zip(scopes).all(|(a, b)| **a == *b.as_ref())
        {
            return Arc::clone(last);
        }
        let list: Arc<[Arc<str>]> = scopes.iter().map(|s| self.intern(s.as_ref())).collect();
        self.last_scopes = Some(Arc::clone(&list));
        list
    }
}

/// All spans of one trace id, in input order.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

impl Trace {
    /// The span with this id, if the trace holds it (first one wins).
    pub fn span(&self, span_id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.event.span_id == span_id)
    }
}

/// Groups events by exact trace id.
///
/// The result does not depend on the order of the input: traces come out
/// sorted by id, and the spans of a trace by start instant, then span id
/// (spans whose timestamp does not parse go last, in span-id order). For the
/// usual input, written in time order, this is the input order the reference
/// uses to pick a group's "first span"; for shuffled input it is the same
/// answer instead of a different one.
pub fn group_traces(events: Vec<SpanEvent>) -> Vec<Trace> {
    group_parts(normalize_events(events).parts)
}

/// Normalized spans in input order, kept in the parts they were made in
/// (one per worker or per run of input), so that grouping them into traces
/// frees each part as it goes instead of holding every span twice.
///
/// A batch made with [`SpanBatch::spilling`] holds at most about its budget
/// of spans: past it, the spans are sorted by trace id into a temporary
/// file (see the `spill` module) and merged back by
/// [`SpanBatch::into_traces`], so that a file of any size is analyzed in
/// bounded memory with the same result.
#[derive(Debug, Default)]
pub struct SpanBatch {
    pub(crate) parts: Vec<Vec<Span>>,
    held: usize,
    spill: Option<Box<Spilled>>,
}

/// What a spilling batch has written out.
#[derive(Debug)]
struct Spilled {
    budget: usize,
    runs: Vec<crate::spill::Run>,
    /// The last run, while a thread of its own writes it.
    writing: Option<std::thread::JoinHandle<std::io::Result<crate::spill::Run>>>,
    spans: usize,
    unparseable: usize,
}

impl Spilled {
    fn new(budget: usize) -> Box<Spilled> {
        Box::new(Spilled {
            budget,
            runs: Vec::new(),
            writing: None,
            spans: 0,
            unparseable: 0,
        })
    }

    /// Waits for the run being written, if any.
    fn settle(&mut self) -> std::io::Result<()> {
        if let Some(writing) = self.writing.take() {
            match writing.join() {
                Ok(run) => self.add(run?)?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(())
    }

    /// Adds a run after the others; whenever the last
    /// [`FAN_IN`](crate::spill::FAN_IN) runs are of one level, they are
    /// merged into one of the next, so that the files open stay few.
    fn add(&mut self, run: crate::spill::Run) -> std::io::Result<()> {
        use crate::spill::FAN_IN;
        self.runs.push(run);
        while let Some(last) = self.runs.last().map(|r| r.level) {
            let n = self.runs.len();
            if n < FAN_IN || self.runs[n - FAN_IN..].iter().any(|r| r.level != last) {
                break;
            }
            let tail: Vec<crate::spill::Run> = self.runs.drain(n - FAN_IN..).collect();
            self.runs.push(crate::spill::merge_runs(tail)?);
        }
        Ok(())
    }
}

impl SpanBatch {
    pub fn from_parts(parts: Vec<Vec<Span>>) -> SpanBatch {
        let held = parts.iter().map(Vec::len).sum();
        SpanBatch {
            parts,
            held,
            spill: None,
        }
    }

    /// An empty batch that writes its spans out to temporary files each
    /// time it holds `budget` of them (at least one).
    pub fn spilling(budget: usize) -> SpanBatch {
        SpanBatch {
            spill: Some(Spilled::new(budget.max(1))),
            ..SpanBatch::default()
        }
    }

    /// Adds `part`'s spans after these; a spilling batch past its budget
    /// writes what it holds out first.
    pub fn push(&mut self, part: Vec<Span>) -> std::io::Result<()> {
        if part.is_empty() {
            return Ok(());
        }
        self.held += part.len();
        self.parts.push(part);
        match &self.spill {
            Some(s) if self.held >= s.budget => self.write_out(),
            _ => Ok(()),
        }
    }

    /// Writes the spans held out as one run, on a thread of its own while
    /// the batch fills again (one run at a time: the previous one is waited
    /// for first), so that a reader filling the batch from one thread does
    /// not wait for the disk.
    fn write_out(&mut self) -> std::io::Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if self.held == 0 {
            return Ok(());
        }
        spill.settle()?;
        let parts = std::mem::take(&mut self.parts);
        spill.spans += self.held;
        spill.unparseable += unparseable(&parts);
        self.held = 0;
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<Span>>>();
        let spawned = std::thread::Builder::new()
            .name("span-spill".into())
            .spawn(move || match rx.recv() {
                Ok(parts) => crate::spill::write_run(&parts),
                Err(_) => Err(std::io::Error::other("no spans to write")),
            });
        match spawned {
            Ok(writing) => {
                // The thread exists: the spans go to it.
                let _ = tx.send(parts);
                spill.writing = Some(writing);
            }
            // No thread to be had: written here instead.
            Err(_) => spill.add(crate::spill::write_run(&parts)?)?,
        }
        Ok(())
    }

    /// Adds `other`'s spans after these.
    pub fn append(&mut self, mut other: SpanBatch) -> std::io::Result<()> {
        if let Some(mut theirs) = other.spill.take() {
            // Their runs come after ours: what this batch holds goes out first.
            theirs.settle()?;
            let budget = theirs.budget;
            self.spill.get_or_insert_with(|| Spilled::new(budget));
            self.write_out()?;
            if let Some(ours) = self.spill.as_mut() {
                ours.settle()?;
                for run in theirs.runs {
                    ours.add(run)?;
                }
                ours.spans += theirs.spans;
                ours.unparseable += theirs.unparseable;
            }
        }
        for part in other.parts {
            self.push(part)?;
        }
        Ok(())
    }

    /// How many spans the batch has, held or written out.
    pub fn len(&self) -> usize {
        self.held + self.spill.as_ref().map_or(0, |s| s.spans)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some spans were written out to temporary files.
    pub fn spilled(&self) -> bool {
        self.spill
            .as_ref()
            .is_some_and(|s| !s.runs.is_empty() || s.writing.is_some())
    }

    /// How many temporary files the batch has open.
    #[cfg(test)]
    pub(crate) fn files(&self) -> usize {
        self.spill
            .as_ref()
            .map_or(0, |s| s.runs.len() + usize::from(s.writing.is_some()))
    }

    /// How many spans have a timestamp that does not parse.
    pub fn unparseable_timestamps(&self) -> usize {
        unparseable(&self.parts) + self.spill.as_ref().map_or(0, |s| s.unparseable)
    }

    /// The spans held in memory, in input order: all of them unless the
    /// batch [spilled](SpanBatch::spilled).
    pub fn iter(&self) -> impl Iterator<Item = &Span> {
        self.parts.iter().flatten()
    }

    /// The batch's traces in trace-id order, as [`group_spans`] makes them.
    /// Spans held in memory are grouped there; a batch that spilled merges
    /// its runs, holding about one trace per run at a time, and may meet
    /// an I/O error on the way.
    pub fn into_traces(mut self) -> std::io::Result<Traces> {
        if !self.spilled() {
            return Ok(Traces(TracesFrom::Held(group_parts(self.parts).into_iter())));
        }
        self.write_out()?;
        let mut runs = Vec::new();
        if let Some(mut spill) = self.spill.take() {
            spill.settle()?;
            runs = spill.runs;
        }
        Ok(Traces(TracesFrom::Merged(crate::spill::Merged::new(runs)?)))
    }
}

fn unparseable(parts: &[Vec<Span>]) -> usize {
    parts
        .iter()
        .flatten()
        .filter(|s| s.event.start_unix_nanos.is_none())
        .count()
}

/// A batch's traces, one at a time: see [`SpanBatch::into_traces`].
pub struct Traces(TracesFrom);

enum TracesFrom {
    Held(std::vec::IntoIter<Trace>),
    Merged(crate::spill::Merged),
}

impl Iterator for Traces {
    type Item = std::io::Result<Trace>;

    fn next(&mut self) -> Option<std::io::Result<Trace>> {
        match &mut self.0 {
            TracesFrom::Held(traces) => traces.next().map(Ok),
            TracesFrom::Merged(merged) => merged.next(),
        }
    }
}

impl From<Vec<Span>> for SpanBatch {
    fn from(spans: Vec<Span>) -> SpanBatch {
        SpanBatch::from_parts(vec![spans])
    }
}

/// Normalizes events into spans, in input order; large inputs are spread
/// over the cores.
pub fn normalize_events(events: Vec<SpanEvent>) -> SpanBatch {
    SpanBatch::from_parts(crate::parallel::map_owned_chunks(events, 4096, |chunk| {
        let mut templates = Interner::default();
        chunk
            .into_iter()
            .map(|e| Span::new(e, &mut templates))
            .collect::<Vec<_>>()
    }))
}

/// Like [`normalize_events`], for events the caller keeps: each is read in
/// place, and only what a span keeps is copied.
pub fn normalize_borrowed(events: &[SpanEvent]) -> SpanBatch {
    SpanBatch::from_parts(crate::parallel::map_chunks(events, 4096, |chunk| {
        let mut templates = Interner::default();
        chunk
            .iter()
            .map(|e| Span::new(e.as_borrowed(), &mut templates))
            .collect::<Vec<_>>()
    }))
}

/// Groups normalized spans by exact trace id, as [`group_traces`] does.
///
/// Two passes: the first cuts each part into segments of consecutive spans
/// of one trace (files usually hold a trace's spans together) and counts
/// the spans of every trace; the second moves each segment into a vector of
/// exactly its trace's size, reserved when the trace's first segment
/// arrives, while the batch is freed part by part. The spans are never held
/// twice and no vector grows past what it needs.
pub fn group_spans(spans: SpanBatch) -> std::io::Result<Vec<Trace>> {
    spans.into_traces()?.collect()
}

/// Cuts `spans` into runs of consecutive spans of one trace (never empty).
pub(crate) fn same_trace_runs(spans: &[Span]) -> impl Iterator<Item = &[Span]> {
    let mut rest = spans;
    std::iter::from_fn(move || {
        let id = &rest.first()?.event.trace_id;
        // Spans of one run of input share their trace id's allocation.
        let len = rest
            .iter()
            .position(|s| !Arc::ptr_eq(&s.event.trace_id, id) && *s.event.trace_id != **id)
            .unwrap_or(rest.len());
        let (run, after) = rest.split_at(len);
        rest = after;
        Some(run)
    })
}

/// Cuts `spans` into runs of consecutive spans of one service and source
/// endpoint (never empty), which per-endpoint counters add at once: spans
/// of one request mostly come together and share those names.
pub fn endpoint_runs(spans: &[Span]) -> impl Iterator<Item = &[Span]> {
    let mut rest = spans;
    std::iter::from_fn(move || {
        let first = &rest.first()?.event;
        let len = rest
            .iter()
            .position(|s| s.event.service != first.service || s.event.source.endpoint != first.source.endpoint)
            .unwrap_or(rest.len());
        let (run, after) = rest.split_at(len);
        rest = after;
        Some(run)
    })
}

/// [`group_spans`] for spans held in memory.
pub(crate) fn group_parts(parts: Vec<Vec<Span>>) -> Vec<Trace> {
    /// Consecutive spans of one trace: how many, and the trace's slot.
    struct Segment {
        len: usize,
        slot: usize,
    }
    let mut index: foldhash::HashMap<Arc<str>, usize> = foldhash::HashMap::default();
    let mut ids: Vec<Arc<str>> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut segments: Vec<Vec<Segment>> = Vec::with_capacity(parts.len());
    let mut last: Option<usize> = None;
    for part in &parts {
        let mut cuts = Vec::new();
        for segment in same_trace_runs(part) {
            let id = &segment[0].event.trace_id;
            let len = segment.len();
            let slot = match last {
                Some(i) if *ids[i] == **id => i,
                _ => match index.get(&**id) {
                    Some(&i) => i,
                    None => {
                        let i = ids.len();
                        index.insert(Arc::clone(id), i);
                        ids.push(Arc::clone(id));
                        counts.push(0);
                        i
                    }
                },
            };
            counts[slot] += len;
            cuts.push(Segment { len, slot });
            last = Some(slot);
        }
        segments.push(cuts);
    }
    drop(index);
    let mut traces: Vec<Trace> = ids
        .iter()
        .map(|id| Trace {
            trace_id: String::from(&**id),
            spans: Vec::new(),
        })
        .collect();
    drop(ids);
    for (part, cuts) in parts.into_iter().zip(segments) {
        let mut part = part.into_iter();
        for Segment { len, slot } in cuts {
            let spans = &mut traces[slot].spans;
            // Reserved on first use, so that the traces grow as the batch shrinks.
            if spans.capacity() == 0 {
                spans.reserve_exact(counts[slot]);
            }
            spans.extend(part.by_ref().take(len));
        }
    }
    traces.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    for t in &mut traces {
        order_spans(&mut t.spans);
    }
    traces
}

/// Orders a trace's spans by start instant, then span id; spans whose
/// timestamp does not parse go last.
pub fn order_spans(spans: &mut [Span]) {
    let order = |a: &Span, b: &Span| {
        let key = |s: &Span| (s.event.start_unix_nanos.is_none(), s.event.start_unix_nanos);
        key(a).cmp(&key(b)).then_with(|| a.event.span_id.cmp(&b.event.span_id))
    };
    // Spans are large and usually already in order: check before moving any.
    if !spans.is_sorted_by(|a, b| order(a, b).is_le()) {
        spans.sort_by(order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Targets that repeat, differ only in literals, case or method, and
    /// one past the cache's length limit.
    fn target() -> impl Strategy<Value = (EventKind, String, String)> {
        let long = format!(
            "SELECT * FROM t WHERE a IN ({})",
            vec!["1"; Recent::MAX_TARGET].join(",")
        );
        prop_oneof![
            (0u32..4).prop_map(|n| (
                EventKind::Sql,
                "sql".to_owned(),
                format!("SELECT * FROM t WHERE id = {n}")
            )),
            (0u32..3).prop_map(|n| (
                EventKind::Sql,
                "query".to_owned(),
                format!("UPDATE t SET a = 'x{n}' WHERE b = ?")
            )),
            (prop_oneof![Just("GET"), Just("POST")], 0u32..3, any::<bool>()).prop_map(|(m, n, upper)| {
                let host = if upper { "API.Example.com" } else { "api.example.com" };
                (
                    EventKind::HttpOut,
                    m.to_owned(),
                    format!("https://{host}/users/{n}?q={n}"),
                )
            }),
            Just((EventKind::Sql, "sql".to_owned(), long)),
            // Many distinct targets, so that slots are reused.
            (0u32..1500).prop_map(|n| (EventKind::Sql, "sql".to_owned(), format!("SELECT c{n} FROM t{n}"))),
        ]
    }

    fn event((kind, operation, target): (EventKind, String, String), bound: Vec<String>) -> SpanEvent {
        SpanEvent {
            kind,
            operation,
            db_parameters: bound,
            ..crate::testing::sql_event("t", "s", &target)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Spans made through one interner, whose cache hits, equal spans
        /// each made by a fresh one, and both hold what the normalization
        /// functions make of the event.
        #[test]
        fn cached_normalization_equals_fresh(
            events in prop::collection::vec((target(), prop::collection::vec("[a-c]{0,2}", 0..3)), 1..800)
        ) {
            let mut shared = Interner::default();
            for (t, bound) in events {
                let e = event(t, bound);
                let cached = Span::new(e.as_borrowed(), &mut shared);
                let fresh = Span::new(e.as_borrowed(), &mut Interner::default());
                prop_assert_eq!(&cached.event, &fresh.event);
                prop_assert_eq!(&cached.template, &fresh.template);
                prop_assert_eq!(cached.params, fresh.params);
                let mut sink = DigestSink::default();
                let template = match e.kind {
                    EventKind::Sql => normalize_sql(&e.target, &mut sink),
                    EventKind::HttpOut => normalize_http(&e.operation, &e.target, &mut sink),
                };
                for v in &e.db_parameters {
                    sink.push(v);
                }
                prop_assert_eq!(&*cached.template, template.as_str());
                prop_assert_eq!(cached.params, sink.finish());
                let host = url_host(&e.target).map(str::to_ascii_lowercase);
                prop_assert_eq!(cached.event.host.as_deref(), host.as_deref());
                let verb = if e.kind == EventKind::Sql { statement_verb(&e.target) } else { None };
                prop_assert_eq!(cached.event.verb, verb);
            }
        }
    }

    #[test]
    fn spans_made_at_one_place_share_its_code_site() {
        let mut names = Interner::default();
        let at = |function: Option<&str>, lineno: Option<u32>, namespace: Option<&str>| {
            let mut e = crate::testing::sql_event("t", "s", "SELECT 1");
            e.code_function = function.map(str::to_owned);
            e.code_filepath = function.map(|_| "src/orders.rs".to_owned());
            e.code_lineno = lineno;
            e.code_namespace = namespace.map(str::to_owned);
            e
        };
        let mut made = |e| Span::new(e, &mut names).event.code;
        let a = made(at(Some("load"), Some(42), Some("orders"))).unwrap();
        let site = CodeSite {
            function: Some("load".into()),
            filepath: Some("src/orders.rs".into()),
            lineno: Some(42),
            namespace: Some("orders".into()),
        };
        assert_eq!(*a, site);
        // The same place again, right after and after another one: one site.
        let again = made(at(Some("load"), Some(42), Some("orders"))).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let other = made(at(Some("load"), Some(43), Some("orders"))).unwrap();
        assert_eq!(other.lineno, Some(43));
        assert!(Arc::ptr_eq(
            &a,
            &made(at(Some("load"), Some(42), Some("orders"))).unwrap()
        ));
        // Any field differing, absent included, is another place.
        let places = [
            at(Some("load"), None, Some("orders")),
            at(Some("load"), Some(0), Some("orders")),
            at(Some("save"), Some(42), Some("orders")),
            at(Some("load"), Some(42), None),
            at(None, Some(42), Some("orders")),
            at(None, None, Some("orders")),
        ];
        let sites: Vec<Arc<CodeSite>> = places.into_iter().map(|e| made(e).unwrap()).collect();
        for (i, x) in sites.iter().enumerate() {
            assert_ne!(**x, site);
            for y in &sites[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(sites[0].lineno, None);
        assert_eq!(sites[1].lineno, Some(0));
        // No `code.*` attribute at all: no site.
        assert!(made(at(None, None, None)).is_none());
    }

    #[test]
    fn a_target_is_kept_on_its_second_sighting() {
        let mut names = Interner::default();
        let e = crate::testing::sql_event("t", "s", "SELECT * FROM t WHERE id = 7");
        let first = Span::new(e.as_borrowed(), &mut names);
        let kept = |names: &Interner| {
            let ways = names.recent.sets.iter().flat_map(|s| &s.ways);
            ways.filter(|w| w.is_some()).count()
        };
        assert_eq!(kept(&names), 0);
        let second = Span::new(e.as_borrowed(), &mut names);
        assert_eq!(kept(&names), 1);
        let third = Span::new(e.as_borrowed(), &mut names);
        assert!(Arc::ptr_eq(&second.template, &third.template));
        assert_eq!((&first.template, first.params), (&third.template, third.params));
        assert_eq!(&*third.template, "SELECT * FROM t WHERE id = ?");
    }

    /// Whether `names` keeps the normalization of this SQL statement.
    fn keeps(names: &Interner, sql: &str) -> bool {
        let hash = Recent::hash(EventKind::Sql, "", sql);
        let set = &names.recent.sets[hash as usize % Recent::SETS];
        set.ways.iter().flatten().any(|k| *k.target == *sql)
    }

    #[test]
    fn two_targets_of_one_set_are_both_kept_and_new_ones_evict_neither() {
        let set_of = |sql: &str| Recent::hash(EventKind::Sql, "", sql) as usize % Recent::SETS;
        let a = "SELECT * FROM a WHERE id = 0".to_owned();
        let b = (1..)
            .map(|n| format!("SELECT * FROM b WHERE id = {n}"))
            .find(|b| set_of(b) == set_of(&a))
            .unwrap_or_default();
        let mut names = Interner::default();
        let mut span = |sql: &str| Span::new(crate::testing::sql_event("t", "s", sql).as_borrowed(), &mut names);
        // In turn, as two calls of one loop: both kept, side by side.
        for sql in [&a, &b, &a, &b] {
            span(sql);
        }
        // Targets that never repeat, some in the same set.
        for n in 0..5_000 {
            span(&format!("SELECT {n} FROM c"));
        }
        assert!(keeps(&names, &a) && keeps(&names, &b));
    }

    #[test]
    fn endpoint_runs_cut_where_service_or_endpoint_changes() {
        let mut names = Interner::default();
        let spans: Vec<Span> = [
            ("a", "GET /x"),
            ("a", "GET /x"),
            ("a", "GET /y"),
            ("b", "GET /y"),
            ("a", "GET /x"),
        ]
        .iter()
        .map(|&(service, endpoint)| {
            let mut e = crate::testing::sql_event("t", "s", "SELECT 1");
            e.service = service.to_owned();
            e.source.endpoint = endpoint.to_owned();
            Span::new(e, &mut names)
        })
        .collect();
        let lens: Vec<usize> = endpoint_runs(&spans).map(<[Span]>::len).collect();
        assert_eq!(lens, [2, 1, 1, 1]);
        assert_eq!(endpoint_runs(&[]).count(), 0);
    }
}
