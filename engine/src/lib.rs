//! # perf-sentinel-engine
//!
//! The host of perf-sentinel. It reads OpenTelemetry traces, turns each SQL
//! query and outbound HTTP call into a normalized span, groups spans by trace
//! and runs every registered [`Detector`](registry::Detector) and
//! [`Scorer`](registry::Scorer) over them.
//!
//! Detectors and scorers are not known to the engine: they submit a
//! [`DetectorDescriptor`](registry::DetectorDescriptor) or
//! [`ScorerDescriptor`](registry::ScorerDescriptor) through `inventory`, with
//! [`declare_detector!`] and [`declare_scorer!`]. A crate that registers
//! detectors must be linked into the final binary: name it once with
//! `extern crate my_detectors as _;`.
//!
//! ```no_run
//! // Link the built-in detectors and scorers.
//! extern crate perf_sentinel_detectors as _;
//! extern crate perf_sentinel_scorers as _;
//!
//! use perf_sentinel_engine::{Engine, config::Config, ingest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let schema = Engine::schema()?;
//! let config = Config::discover(None, schema)?;
//! let engine = Engine::new(config)?;
//! let bytes = std::fs::read("traces.json")?;
//! let input = ingest::parse(&bytes, "traces.json")?;
//! let report = engine.report(input.events, input.stats);
//! print!("{}", report.to_json());
//! # Ok(())
//! # }
//! ```

pub mod ack;
pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod daemon_config;
pub mod diff;
pub mod engine;
pub mod event;
pub mod explain;
pub mod finding;
mod finding_spill;
pub mod group;
pub mod ingest;
pub mod normalize;
mod parallel;
pub mod registry;
pub mod render;
pub mod report;
mod spill;
pub mod testing;
pub mod time;
pub mod trace;

pub use engine::{Analysis, Engine, EngineError};
pub use event::{EventKind, SpanEvent};
pub use finding::{Confidence, Finding, Severity};
pub use trace::{Span, SpanRecord, Trace};

/// Re-exports for the registration macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
