//! # perf-sentinel-scorers
//!
//! The built-in GreenOps scorers: `io_intensity` and `carbon`. They register
//! with the engine through `declare_scorer!`; link the crate with
//! `extern crate perf_sentinel_scorers as _;`. No public API.

mod carbon;
mod common;
mod io_intensity;
mod tables;
