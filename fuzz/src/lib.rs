//! What the ingest fuzz targets share: parse one input as a given format and,
//! when it parses, run the whole analysis and render every report format, so
//! that a panic anywhere downstream of a parser is found too.

// The built-in detectors and scorers register themselves when linked.
extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use std::sync::OnceLock;

use perf_sentinel_engine::Engine;
use perf_sentinel_engine::ingest::{self, Format, Ingested};
use perf_sentinel_engine::trace;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::with_defaults().expect("the built-in registry loads"))
}

/// Parses `data` as `format` (or sniffs it when `None`) and analyzes what it gives.
pub fn ingest_and_analyze(format: Option<Format>, data: &[u8]) {
    let parsed = match format {
        Some(f) => ingest::parse_format(f, data, "fuzz-input"),
        None => ingest::parse(data, "fuzz-input"),
    };
    match parsed {
        Ok(Ingested { events, stats }) => {
            assert!(stats.spans_read >= events.len() as u64, "more events than spans read");
            let report = engine().report(events, stats);
            let json = report.to_json();
            assert!(!json.is_empty());
            let _ = perf_sentinel_engine::render::sarif(engine(), &report.findings, &[]);
            let _ = perf_sentinel_engine::render::text(engine(), &report, 0, false);
        }
        Err(e) => {
            // Every refusal names where it came from.
            assert!(e.to_string().starts_with("fuzz-input: "), "{e}");
        }
    }
}

/// Checks the streaming block reader that `analyze` uses for JSON files
/// against the whole-payload parser: both accept or both refuse, and what
/// both accept gives the same spans.
pub fn blocks_match_whole(format: Format, data: &[u8]) {
    let whole = ingest::parse_format(format, data, "fuzz-input");
    let blocks = ingest::json_spans(format, data, "fuzz-input");
    match (whole, blocks) {
        (Ok(whole), Ok((spans, stats))) => {
            assert_eq!(stats, whole.stats);
            let whole = trace::normalize_events(whole.events);
            assert_eq!(spans.len(), whole.len());
            for (a, b) in spans.iter().zip(whole.iter()) {
                assert_eq!((&a.event, &a.template, a.params), (&b.event, &b.template, b.params));
            }
        }
        (Err(_), Ok(_)) => panic!("the block reader accepts what the whole parser refuses"),
        (Ok(_), Err(e)) => panic!("the block reader refuses what the whole parser accepts: {e}"),
        (Err(_), Err(_)) => {}
    }
}
