//! Criterion benchmarks of every stage: ingest (per format), normalization,
//! grouping, detection, scoring, and the whole pipeline.
//!
//! ```text
//! cargo bench -p perf-sentinel-engine --bench pipeline
//! cargo bench -p perf-sentinel-engine --bench pipeline -- ingest/native
//! ```
//!
//! The data is the bundled demo (78 events, every finding type) repeated
//! with unique trace ids up to `BENCH_EVENTS` events (default 4,368, i.e.
//! 56 copies), and written in each input format.

// The built-in detectors and scorers register themselves when linked.
extern crate perf_sentinel_detectors as _;
extern crate perf_sentinel_scorers as _;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use perf_sentinel_engine::event::EventKind;
use perf_sentinel_engine::finding::Confidence;
use perf_sentinel_engine::ingest::{self, Format, IngestStats, otlp};
use perf_sentinel_engine::normalize::{DigestSink, normalize_http, normalize_sql};
use perf_sentinel_engine::registry::{self, GreenSummary, ScoreInput};
use perf_sentinel_engine::trace::{self, Interner};
use perf_sentinel_engine::{Engine, SpanEvent};
use prost::Message;
use serde_json::json;

const DEMO: &[u8] = include_bytes!("../../examples/demo-traces.json");

fn dataset() -> Vec<SpanEvent> {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_368);
    let demo = ingest::parse(DEMO, "demo").expect("demo parses").events;
    (0..n)
        .map(|i| {
            let mut e = demo[i % demo.len()].clone();
            let copy = i / demo.len();
            e.trace_id = format!("{}-{copy}", e.trace_id);
            e.span_id = format!("{}-{copy}", e.span_id);
            if let Some(p) = &mut e.parent_span_id {
                *p = format!("{p}-{copy}");
            }
            e
        })
        .collect()
}

/// The same events as a Jaeger export.
fn jaeger(events: &[SpanEvent]) -> Vec<u8> {
    let mut traces: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    for e in events {
        let (key, op_key) = match e.kind {
            EventKind::Sql => ("db.statement", "db.system"),
            EventKind::HttpOut => ("http.url", "http.method"),
        };
        let start = e.start_unix_nanos.unwrap_or(0) / 1000;
        traces.entry(&e.trace_id).or_default().push(json!({
            "traceID": e.trace_id, "spanID": e.span_id, "operationName": e.source.method,
            "startTime": start, "duration": e.duration_us, "processID": "p1",
            "references": e.parent_span_id.as_ref().map_or(vec![], |p| vec![json!({"refType": "CHILD_OF", "spanID": p})]),
            "tags": [
                {"key": key, "type": "string", "value": e.target},
                {"key": op_key, "type": "string", "value": e.operation},
                {"key": "http.route", "type": "string", "value": e.source.endpoint},
            ],
        }));
    }
    let data: Vec<_> = traces
        .into_iter()
        .map(|(id, spans)| json!({"traceID": id, "spans": spans, "processes": {"p1": {"serviceName": "svc"}}}))
        .collect();
    serde_json::to_vec(&json!({ "data": data })).unwrap()
}

/// The same events as Zipkin v2.
fn zipkin(events: &[SpanEvent]) -> Vec<u8> {
    let spans: Vec<_> = events
        .iter()
        .map(|e| {
            let mut tags = serde_json::Map::new();
            match e.kind {
                EventKind::Sql => tags.insert("db.statement".into(), e.target.clone().into()),
                EventKind::HttpOut => tags.insert("http.url".into(), e.target.clone().into()),
            };
            tags.insert("http.route".into(), e.source.endpoint.clone().into());
            json!({
                "traceId": e.trace_id, "id": e.span_id, "parentId": e.parent_span_id,
                "name": e.source.method, "timestamp": e.start_unix_nanos.unwrap_or(0) / 1000,
                "duration": e.duration_us, "localEndpoint": {"serviceName": e.service}, "tags": tags,
            })
        })
        .collect();
    serde_json::to_vec(&spans).unwrap()
}

fn benches(c: &mut Criterion) {
    let events = dataset();
    let n = events.len() as u64;
    let engine = Engine::with_defaults().expect("registry loads");

    let inputs: Vec<(&str, Format, Vec<u8>)> = vec![
        ("native", Format::Native, serde_json::to_vec(&events).unwrap()),
        ("jaeger", Format::Jaeger, jaeger(&events)),
        ("zipkin", Format::Zipkin, zipkin(&events)),
        (
            "otlp_json",
            Format::OtlpJson,
            serde_json::to_vec(&otlp::request_from_events(&events)).unwrap(),
        ),
        (
            "otlp_protobuf",
            Format::OtlpProtobuf,
            otlp::request_from_events(&events).encode_to_vec(),
        ),
    ];
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(n));
    for (name, format, bytes) in &inputs {
        let parsed = ingest::parse_format(*format, bytes, name).expect("bench input parses");
        assert_eq!(parsed.events.len() as u64, n, "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| ingest::parse_format(*format, black_box(bytes), name).unwrap())
        });
    }
    // The streaming reader `analyze` uses: parse and normalize, every core.
    let native = &inputs[0].2;
    g.bench_function("native_streamed_and_normalized", |b| {
        b.iter(|| {
            let path = std::env::temp_dir().join(format!("ps-bench-{}.json", std::process::id()));
            std::fs::write(&path, native).unwrap();
            let r = ingest::read_spans(Some(&path), u64::MAX, &mut |_| {}).unwrap();
            let _ = std::fs::remove_file(&path);
            r
        })
    });
    g.finish();

    // What the daemon does with one OTLP protobuf request: decode, map to
    // events, sanitize and normalize. prost's messages mapped to owned
    // events, or to events borrowing from them; and the request read in
    // place, events borrowing from its bytes (what the daemon does).
    let mut g = c.benchmark_group("daemon_request");
    g.throughput(Throughput::Elements(n));
    let proto = &inputs[4].2;
    g.bench_function("owned_events", |b| {
        b.iter(|| {
            let req = otlp::decode_protobuf(black_box(proto), "bench").unwrap();
            let mut names = Interner::default();
            otlp::convert(&req)
                .events
                .into_iter()
                .map(|mut e| {
                    e.sanitize();
                    trace::Span::new(e, &mut names)
                })
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("borrowed_events", |b| {
        b.iter(|| {
            let req = otlp::decode_protobuf(black_box(proto), "bench").unwrap();
            let mut names = Interner::default();
            otlp::convert_borrowed(&req)
                .0
                .into_iter()
                .map(|mut e| {
                    e.sanitize();
                    trace::Span::new(e, &mut names)
                })
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("read_in_place", |b| {
        b.iter(|| {
            let mut names = Interner::default();
            otlp::protobuf_events(black_box(proto), "bench")
                .unwrap()
                .0
                .into_iter()
                .map(|mut e| {
                    e.sanitize();
                    trace::Span::new(e, &mut names)
                })
                .collect::<Vec<_>>()
        })
    });
    // What the listeners do: each event normalized as it is mapped.
    g.bench_function("each_in_place", |b| {
        b.iter(|| {
            let mut names = Interner::default();
            let request = otlp::read_protobuf(black_box(proto), "bench").unwrap();
            let mut spans = Vec::with_capacity(request.span_count());
            request.each_event(|mut e| {
                e.sanitize();
                spans.push(trace::Span::new(e, &mut names));
            });
            spans
        })
    });
    g.finish();

    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(n));
    g.bench_function("sql_and_http", |b| {
        b.iter(|| {
            for e in &events {
                let mut sink = DigestSink::default();
                let t = match e.kind {
                    EventKind::Sql => normalize_sql(black_box(&e.target), &mut sink),
                    EventKind::HttpOut => normalize_http(&e.operation, black_box(&e.target), &mut sink),
                };
                black_box((t, sink.finish()));
            }
        })
    });
    g.bench_function("spans_interned", |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                let mut templates = Interner::default();
                events
                    .into_iter()
                    .map(|e| trace::Span::new(e, &mut templates))
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("group_traces", |b| {
        b.iter_batched(|| events.clone(), trace::group_traces, BatchSize::LargeInput)
    });
    // Grouping through temporary files, as `analyze` does past its spans
    // budget: normalized spans sorted out in runs of a quarter of the
    // dataset, then merged back into traces.
    let spans: Vec<trace::Span> = {
        let mut templates = Interner::default();
        events
            .iter()
            .cloned()
            .map(|e| trace::Span::new(e, &mut templates))
            .collect()
    };
    g.bench_function("group_spans_held", |b| {
        b.iter_batched(
            || trace::SpanBatch::from(spans.clone()),
            |batch| trace::group_spans(batch).expect("held in memory"),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("group_spans_spilled", |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| {
                let mut batch = trace::SpanBatch::spilling(spans.len().div_ceil(4));
                for part in spans.chunks(1024) {
                    batch.push(part.to_vec()).expect("temporary file written");
                }
                batch
                    .into_traces()
                    .expect("temporary files read")
                    .collect::<std::io::Result<Vec<_>>>()
                    .expect("temporary files read")
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let traces = trace::group_traces(events.clone());
    let mut g = c.benchmark_group("analysis");
    g.throughput(Throughput::Elements(n));
    g.bench_function("detect", |b| {
        b.iter(|| {
            let mut found = Vec::new();
            let mut fresh = Vec::new();
            for t in &traces {
                let start = found.len();
                for d in engine.detectors() {
                    d.detector.detect(t, &found[start..], &mut fresh);
                    found.append(&mut fresh);
                }
            }
            for d in engine.detectors() {
                if let Some(mut batch) = d.detector.batch() {
                    for t in &traces {
                        batch.observe(t);
                    }
                    batch.finish(&mut found);
                }
            }
            found
        })
    });
    let findings = engine.analyze(&traces, Confidence::CiBatch).findings;
    let by_id: BTreeMap<&'static str, &'static registry::DetectorDescriptor> =
        registry::detectors().unwrap().into_iter().map(|d| (d.id, d)).collect();
    let endpoint_io = perf_sentinel_engine::engine::endpoint_io(&traces);
    // Scorers take findings trace by trace, as the engine finds them.
    let mut findings = findings;
    findings.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let cross_trace: Vec<&'static str> = engine
        .detectors()
        .iter()
        .filter(|d| d.detector.batch().is_some())
        .map(|d| d.descriptor.id)
        .collect();
    let start = registry::BatchStart {
        detectors: &by_id,
        cross_trace: &cross_trace,
    };
    g.bench_function("score", |b| {
        b.iter_batched(
            || findings.clone(),
            |mut findings| {
                let mut summary = GreenSummary::default();
                let input = ScoreInput {
                    traces: traces.len(),
                    endpoint_io: &endpoint_io,
                    detectors: &by_id,
                };
                for s in engine.scorers() {
                    let mut batch = s.scorer.batch(&start);
                    for t in &traces {
                        batch.observe(t);
                    }
                    batch.tally(&findings);
                    if let Some(score) = batch.finish(&input, &mut summary) {
                        for f in &mut findings {
                            score(f);
                        }
                    }
                }
                (findings, summary)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("detect_score_sort", |b| {
        b.iter(|| engine.analyze(black_box(&traces), Confidence::CiBatch))
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(n));
    g.bench_function("report", |b| {
        b.iter_batched(
            || events.clone(),
            |events| engine.report(events, IngestStats::default()),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("report_json", |b| {
        b.iter_batched(
            || events.clone(),
            |events| engine.report(events, IngestStats::default()).to_json(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = pipeline;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(pipeline);
