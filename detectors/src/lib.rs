//! # perf-sentinel-detectors
//!
//! The ten built-in detectors of perf-sentinel, one file per finding type.
//! Each registers itself with the engine through `declare_detector!`; the
//! engine never names them. Link this crate into a binary with
//! `extern crate perf_sentinel_detectors as _;` and they are all available.
//!
//! This crate is not a library API: its items are private. Read a detector's
//! documentation with `perf-sentinel explain-rule <id>`.

mod common;
mod n_plus_one;
mod redundant;
mod slow;

mod chatty_service;
mod excessive_fanout;
mod n_plus_one_http;
mod n_plus_one_sql;
mod pool_saturation;
mod redundant_http;
mod redundant_sql;
mod serialized_calls;
mod slow_http;
mod slow_sql;
