//! Zipkin v2 JSON: a top-level array of spans.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Ingested, TagView, TextSpan};

/// One span of a Zipkin v2 array.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ZSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    local_endpoint: Option<ZEndpoint>,
    #[serde(default)]
    tags: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZEndpoint {
    #[serde(default)]
    service_name: Option<String>,
}

pub(super) fn parse(body: &[u8]) -> Result<Ingested, serde_json::Error> {
    let spans: Vec<ZSpan> = serde_json::from_slice(body)?;
    let mut out = Ingested::default();
    for span in spans {
        map_span(span, &mut out);
    }
    Ok(out)
}

/// Maps one span to an event, or counts it when it is not I/O.
pub(super) fn map_span(span: ZSpan, out: &mut Ingested) {
    out.stats.spans_read += 1;
    let get = |k: &str| span.tags.get(k).cloned();
    let view = TagView { get: &get };
    let text = TextSpan {
        trace_id: span.trace_id.clone(),
        span_id: span.id.clone(),
        parent_span_id: span.parent_id.clone(),
        service: span
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.clone())
            .unwrap_or_default(),
        name: span.name.clone().unwrap_or_default(),
        start_us: span.timestamp,
        duration_us: span.duration,
    };
    match view.to_event(text) {
        Some(e) => out.events.push(e),
        None => out.stats.spans_without_io_attributes += 1,
    }
}
