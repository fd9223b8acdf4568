//! The registry: detectors and scorers describe themselves with a descriptor
//! and submit it to `inventory`; the engine finds them at start-up.
//!
//! A descriptor holds only constants and function pointers, so it can be
//! submitted from any crate. Its tunables are declared next to it: the config
//! loader validates them, `--help` and the man page list them, and `build`
//! receives them already typed and range-checked. Nothing here names a
//! concrete detector or scorer.

use std::collections::BTreeMap;

use crate::finding::{Finding, Severity};
use crate::trace::Trace;

/// The type of a tunable and the values it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A finite float in `min..=max`.
    Float {
        min: f64,
        max: f64,
    },
    /// Free text without control characters.
    Str,
    /// One of the listed words, trimmed and compared case-insensitively; empty
    /// means the default.
    Choice(&'static [&'static str]),
    /// A table of string keys to string values (e.g. `[green.service_regions]`).
    StrMap,
    /// An array of strings.
    StrList,
    /// A sub-table whose keys are checked by its consumer, not by the loader.
    Table,
}

/// A tunable's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'static str),
    /// Unset unless the file sets it.
    None,
}

/// One config key: where it lives, its type, default, range and documentation.
#[derive(Debug, Clone, Copy)]
pub struct Tunable {
    /// The TOML table, e.g. `detection` or `daemon.correlation`.
    pub section: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    /// A range outside which the value is accepted with a warning.
    pub advised: Option<(f64, f64)>,
    /// One or two sentences: what it bounds, what happens at the limit.
    pub doc: &'static str,
}

impl Tunable {
    /// An integer tunable with no advised range, the common case of a
    /// detector's threshold: `Tunable::int("detection", "my_min", 2, 100, 5, "...")`.
    pub const fn int(
        section: &'static str,
        key: &'static str,
        min: i64,
        max: i64,
        default: i64,
        doc: &'static str,
    ) -> Tunable {
        Tunable {
            section,
            key,
            kind: Kind::Int { min, max },
            default: DefaultValue::Int(default),
            advised: None,
            doc,
        }
    }

    /// `section.key`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The default as TOML text, for help and docs (`none` when unset).
    pub fn default_text(&self) -> String {
        match self.default {
            DefaultValue::Bool(b) => b.to_string(),
            DefaultValue::Int(i) => i.to_string(),
            DefaultValue::Float(f) => format!("{f:?}"),
            DefaultValue::Str(s) => format!("{s:?}"),
            DefaultValue::None => match self.kind {
                Kind::StrMap | Kind::Table => "{}".into(),
                Kind::StrList => "[]".into(),
                _ => "none".into(),
            },
        }
    }

    /// The accepted values, for help and docs.
    pub fn range_text(&self) -> String {
        match self.kind {
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max } => format!("{min} to {max}"),
            Kind::Float { min, max } if max == f64::MAX => format!("{min:?} or more"),
            Kind::Float { min, max } => format!("{min:?} to {max:?}"),
            Kind::Str => "text".into(),
            Kind::Choice(c) => c.join(", "),
            Kind::StrMap => "table of strings".into(),
            Kind::StrList => "array of strings".into(),
            Kind::Table => "table".into(),
        }
    }
}

/// What a quality-gate rule measures.
#[derive(Debug, Clone, Copy)]
pub enum GateMeasure {
    /// The number of findings of one type at `min_severity` or worse.
    Findings {
        finding_type: &'static str,
        min_severity: Severity,
    },
    /// A metric a scorer publishes (see [`GreenSummary::metrics`]).
    Metric(&'static str),
}

/// One `[thresholds]` rule: passes when the measured value is at most the threshold.
#[derive(Debug, Clone, Copy)]
pub struct GateRule {
    /// The `[thresholds]` key and the rule name in reports.
    pub key: &'static str,
    pub measure: GateMeasure,
    /// `Int` for counts, `Float` for ratios.
    pub kind: Kind,
    pub default: DefaultValue,
    pub doc: &'static str,
}

impl GateRule {
    /// The rule as a `[thresholds]` tunable.
    pub fn tunable(&self) -> Tunable {
        Tunable {
            section: "thresholds",
            key: self.key,
            kind: self.kind,
            default: self.default,
            advised: None,
            doc: self.doc,
        }
    }
}

/// A typed config value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    StrMap(BTreeMap<String, String>),
    StrList(Vec<String>),
    Table(toml::Table),
}

/// The validated values of the tunables a descriptor declared, handed to its
/// `build` function. A detector never sees the rest of the config.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
}

impl Settings {
    pub fn new(values: BTreeMap<&'static str, Value>) -> Self {
        Settings { values }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// An integer tunable. Panics if the key was not declared as an integer:
    /// that is a bug in the descriptor, caught by the registry tests.
    pub fn int(&self, key: &str) -> i64 {
        match self.values.get(key) {
            Some(Value::Int(i)) => *i,
            other => panic!("tunable {key} is not a declared integer: {other:?}"),
        }
    }

    /// An integer tunable as `u64` (declared ranges of unsigned keys start at 0 or more).
    pub fn uint(&self, key: &str) -> u64 {
        u64::try_from(self.int(key)).unwrap_or(0)
    }

    pub fn float(&self, key: &str) -> f64 {
        match self.values.get(key) {
            Some(Value::Float(f)) => *f,
            Some(Value::Int(i)) => *i as f64,
            other => panic!("tunable {key} is not a declared float: {other:?}"),
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.values.get(key) {
            Some(Value::Bool(b)) => *b,
            other => panic!("tunable {key} is not a declared bool: {other:?}"),
        }
    }

    /// A string or choice tunable; `None` when unset. Choices come lower-cased.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn str_map(&self, key: &str) -> BTreeMap<String, String> {
        match self.values.get(key) {
            Some(Value::StrMap(m)) => m.clone(),
            _ => BTreeMap::new(),
        }
    }
}

/// Finds anti-patterns in traces. Implementations are pure: no I/O, clock,
/// randomness or global state, and the same input gives the same findings in
/// the same order.
pub trait Detector: Send + Sync {
    /// Findings in one trace. `earlier` holds what detectors of lower rank
    /// already reported on this trace (a redundancy check can skip what an
    /// N+1 check claimed).
    fn detect(&self, trace: &Trace, earlier: &[Finding], out: &mut Vec<Finding>);

    /// Starts a cross-trace pass over one batch, for detectors whose rule
    /// spans traces; `None` (the default) when there is none.
    ///
    /// The engine shows the state every trace of the batch once, in batch
    /// order, and may free each trace right after, so the state keeps what
    /// it needs (a slow-query rule keeps its slow spans, not every span).
    fn batch(&self) -> Option<Box<dyn BatchDetector + '_>> {
        None
    }
}

/// The cross-trace state of a detector over one batch; see [`Detector::batch`].
pub trait BatchDetector: Send {
    /// One trace of the batch, after every per-trace detector ran on it.
    fn observe(&mut self, trace: &Trace);

    /// Findings across the traces observed, pushed to `out` (which starts
    /// empty: the per-trace findings may already be on disk). Called once,
    /// and only for a batch of two or more traces.
    fn finish(self: Box<Self>, out: &mut Vec<Finding>);
}

/// Describes a detector to the engine. Submit one with [`crate::declare_detector!`].
pub struct DetectorDescriptor {
    /// The finding `type` this detector emits; stable forever.
    pub id: &'static str,
    /// Short display label, e.g. `N+1 SQL`.
    pub label: &'static str,
    /// Orders detectors (they run in rank order) and findings in reports.
    pub rank: u32,
    /// One line, lowercase, no trailing period.
    pub summary: &'static str,
    /// The user documentation (the doc comment of the declaration).
    pub docs: &'static str,
    /// The crate that registered it.
    pub crate_name: &'static str,
    /// Whether each occurrence beyond the first is an avoidable I/O operation
    /// (counted in the waste ratio by scorers).
    pub avoidable_io: bool,
    pub tunables: &'static [Tunable],
    pub gate_rules: &'static [GateRule],
    /// Builds the detector from its validated tunables.
    pub build: fn(&Settings) -> Result<Box<dyn Detector>, String>,
}

inventory::collect!(DetectorDescriptor);

/// An endpoint's I/O count, the input of several scorers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointIo {
    pub service: String,
    pub endpoint: String,
    pub io_ops: u64,
}

/// What scorers read once every trace of the batch was observed.
pub struct ScoreInput<'a> {
    /// Traces in the batch.
    pub traces: usize,
    /// I/O spans per (service, endpoint) over the batch, sorted.
    pub endpoint_io: &'a [EndpointIo],
    /// Descriptors of the findings' detectors, by id.
    pub detectors: &'a BTreeMap<&'static str, &'static DetectorDescriptor>,
}

/// What scorers write: the `green_summary` object, in insertion order, and
/// named metrics the quality gate can test.
#[derive(Debug, Clone, Default)]
pub struct GreenSummary {
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub metrics: BTreeMap<String, f64>,
}

/// What a scorer knows as a batch starts.
pub struct BatchStart<'a> {
    /// Descriptors of every registered detector, by id.
    pub detectors: &'a BTreeMap<&'static str, &'static DetectorDescriptor>,
    /// Ids of the detectors with a cross-trace pass; their findings reach
    /// [`ScoreBatch::tally`] last, after every per-trace finding.
    pub cross_trace: &'a [&'static str],
}

/// Fills one finding's share of a scorer's result (e.g. its
/// `green_impact`); see [`ScoreBatch::finish`].
pub type FindingScore = Box<dyn Fn(&mut Finding) + Send + Sync>;

/// Scores batches: fills `green_summary` and per-finding impact.
pub trait Scorer: Send + Sync {
    /// Starts scoring one batch.
    fn batch(&self, start: &BatchStart<'_>) -> Box<dyn ScoreBatch + '_>;
}

/// A scorer's state over one batch; see [`Scorer::batch`].
///
/// The engine shows it every trace once, in batch order, and may free each
/// trace right after; it shows it every finding once, and may write each
/// to a temporary file right after (a batch of millions of findings is
/// never held whole). Then it calls [`ScoreBatch::finish`]. Scorers finish
/// in rank order, so a scorer reads the metrics of those ranked before it
/// in `summary`.
pub trait ScoreBatch: Send {
    /// One trace of the batch. The default ignores it.
    fn observe(&mut self, _trace: &Trace) {}

    /// Findings of the batch, each once: the per-trace findings in batch
    /// order, those of one trace together in one call (a call may hold
    /// several traces, each carrying its trace's id), then those of the
    /// cross-trace detectors. The default ignores them.
    fn tally(&mut self, _findings: &[Finding]) {}

    /// Writes the summary; returns what to fill in each finding, if
    /// anything. The engine applies it to every finding as it reports it,
    /// in any order and on any thread: what it fills depends on that
    /// finding and on the batch's totals only.
    fn finish(self: Box<Self>, input: &ScoreInput<'_>, summary: &mut GreenSummary) -> Option<FindingScore>;
}

/// Describes a scorer to the engine. Submit one with [`crate::declare_scorer!`].
pub struct ScorerDescriptor {
    pub id: &'static str,
    /// Scorers run in rank order; their summary fields appear in that order.
    pub rank: u32,
    pub summary: &'static str,
    pub docs: &'static str,
    pub crate_name: &'static str,
    pub tunables: &'static [Tunable],
    pub gate_rules: &'static [GateRule],
    pub build: fn(&Settings) -> Result<Box<dyn Scorer>, String>,
}

inventory::collect!(ScorerDescriptor);

/// A registry problem found at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("two registered detectors or scorers use the id `{id}`: one from crate {first}, one from crate {second}")]
    DuplicateId {
        id: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("tunable `{0}` is declared twice with different types or defaults")]
    ConflictingTunable(String),
}

/// What the registry needs to order descriptors and refuse duplicates.
trait Registered: 'static {
    fn key(&self) -> (u32, &'static str, &'static str);
}

impl Registered for DetectorDescriptor {
    fn key(&self) -> (u32, &'static str, &'static str) {
        (self.rank, self.id, self.crate_name)
    }
}

impl Registered for ScorerDescriptor {
    fn key(&self) -> (u32, &'static str, &'static str) {
        (self.rank, self.id, self.crate_name)
    }
}

/// Sorts by rank then id, after refusing two descriptors with one id.
fn sorted_unique<T: Registered>(mut all: Vec<&'static T>) -> Result<Vec<&'static T>, RegistryError> {
    all.sort_by_key(|d| {
        let (_, id, krate) = d.key();
        (id, krate)
    });
    if let Some(w) = all.windows(2).find(|w| w[0].key().1 == w[1].key().1) {
        let ((_, id, first), (_, _, second)) = (w[0].key(), w[1].key());
        return Err(RegistryError::DuplicateId { id, first, second });
    }
    all.sort_by_key(|d| {
        let (rank, id, _) = d.key();
        (rank, id)
    });
    Ok(all)
}

/// Every registered detector, sorted by rank then id.
pub fn detectors() -> Result<Vec<&'static DetectorDescriptor>, RegistryError> {
    sorted_unique(inventory::iter::<DetectorDescriptor>.into_iter().collect())
}

/// Every registered scorer, sorted by rank then id.
pub fn scorers() -> Result<Vec<&'static ScorerDescriptor>, RegistryError> {
    sorted_unique(inventory::iter::<ScorerDescriptor>.into_iter().collect())
}

/// Declares a detector and submits its descriptor. The doc comment becomes
/// its user documentation.
///
/// ```
/// use perf_sentinel_engine::registry::{Detector, Settings};
/// use perf_sentinel_engine::{Finding, Trace};
///
/// perf_sentinel_engine::declare_detector! {
///     /// ## What it detects
///     /// Traces with no I/O at all.
///     id: "empty_trace",
///     label: "Empty trace",
///     rank: 1000,
///     summary: "a trace without spans",
///     avoidable_io: false,
///     tunables: &[],
///     gate_rules: &[],
///     build: build,
/// }
///
/// struct EmptyTrace;
///
/// fn build(_: &Settings) -> Result<Box<dyn Detector>, String> {
///     Ok(Box::new(EmptyTrace))
/// }
///
/// impl Detector for EmptyTrace {
///     fn detect(&self, trace: &Trace, _earlier: &[Finding], _out: &mut Vec<Finding>) {
///         let _ = trace.spans.is_empty();
///     }
/// }
///
/// let ids: Vec<&str> = perf_sentinel_engine::registry::detectors().unwrap().iter().map(|d| d.id).collect();
/// assert!(ids.contains(&"empty_trace"));
/// ```
#[macro_export]
macro_rules! declare_detector {
    (
        $(#[doc = $doc:literal])*
        id: $id:literal,
        label: $label:literal,
        rank: $rank:expr,
        summary: $summary:literal,
        avoidable_io: $avoidable:expr,
        tunables: $tunables:expr,
        gate_rules: $gates:expr,
        build: $build:expr $(,)?
    ) => {
        $crate::__private::inventory::submit! {
            $crate::registry::DetectorDescriptor {
                id: $id,
                label: $label,
                rank: $rank,
                summary: $summary,
                docs: concat!($($doc, "\n"),*),
                crate_name: env!("CARGO_PKG_NAME"),
                avoidable_io: $avoidable,
                tunables: $tunables,
                gate_rules: $gates,
                build: $build,
            }
        }
    };
}

/// Declares a scorer and submits its descriptor; see [`declare_detector!`].
#[macro_export]
macro_rules! declare_scorer {
    (
        $(#[doc = $doc:literal])*
        id: $id:literal,
        rank: $rank:expr,
        summary: $summary:literal,
        tunables: $tunables:expr,
        gate_rules: $gates:expr,
        build: $build:expr $(,)?
    ) => {
        $crate::__private::inventory::submit! {
            $crate::registry::ScorerDescriptor {
                id: $id,
                rank: $rank,
                summary: $summary,
                docs: concat!($($doc, "\n"),*),
                crate_name: env!("CARGO_PKG_NAME"),
                tunables: $tunables,
                gate_rules: $gates,
                build: $build,
            }
        }
    };
}
