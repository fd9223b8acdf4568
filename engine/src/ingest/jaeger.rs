//! Jaeger JSON exports (`{"data": [trace, …]}`), as the Jaeger UI and query API write them.

use std::collections::HashMap;

use serde::Deserialize;

use super::{IngestStats, Ingested, TagView, TextSpan};

#[derive(Deserialize)]
struct Export {
    data: Vec<JTrace>,
}

/// One trace of an export, with the processes its spans name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JTrace {
    #[serde(rename = "traceID", default)]
    trace_id: String,
    #[serde(default)]
    spans: Vec<JSpan>,
    #[serde(default)]
    processes: HashMap<String, JProcess>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(default)]
    operation_name: String,
    #[serde(default)]
    references: Vec<JRef>,
    #[serde(default)]
    start_time: u64,
    #[serde(default)]
    duration: u64,
    #[serde(rename = "processID", default)]
    process_id: String,
    #[serde(default)]
    tags: Vec<JTag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRef {
    #[serde(default)]
    ref_type: String,
    #[serde(rename = "spanID", default)]
    span_id: String,
}

#[derive(Deserialize)]
struct JProcess {
    #[serde(rename = "serviceName", default)]
    service_name: Option<String>,
}

#[derive(Deserialize)]
struct JTag {
    key: String,
    #[serde(default)]
    value: serde_json::Value,
}

fn tag_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn parse(body: &[u8]) -> Result<Ingested, serde_json::Error> {
    let super::Object(export): super::Object<Export> = serde_json::from_slice(body)?;
    let mut out = Ingested::default();
    for trace in export.data {
        map_trace(trace, &mut out);
    }
    Ok(out)
}

/// Maps the I/O spans of one trace to events.
pub(super) fn map_trace(trace: JTrace, out: &mut Ingested) {
    for span in trace.spans {
        out.stats.add(IngestStats {
            spans_read: 1,
            spans_without_io_attributes: 0,
        });
        let get = |k: &str| span.tags.iter().find(|t| t.key == k).map(|t| tag_text(&t.value));
        let view = TagView { get: &get };
        let service = trace
            .processes
            .get(&span.process_id)
            .and_then(|p| p.service_name.clone())
            .unwrap_or_default();
        let parent = span
            .references
            .iter()
            .find(|r| r.ref_type == "CHILD_OF")
            .map(|r| r.span_id.clone());
        let text = TextSpan {
            trace_id: trace.trace_id.clone(),
            span_id: span.span_id.clone(),
            parent_span_id: parent,
            service,
            name: span.operation_name.clone(),
            start_us: span.start_time,
            duration_us: span.duration,
        };
        match view.to_event(text) {
            Some(e) => out.events.push(e),
            None => out.stats.spans_without_io_attributes += 1,
        }
    }
}
