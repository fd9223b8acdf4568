//! Scale-out the way the Helm chart documents it: three daemons, and spans
//! routed to a shard by a hash of their trace id, as the OpenTelemetry
//! Collector's `loadbalancing` exporter does with `routing_key: traceID`.
//! Every trace must be analyzed exactly once, and the findings of all
//! shards together must be complete.

use std::collections::BTreeMap;

use perf_sentinel_tests::{Daemon, eventually, http_request, otlp_json_trace};
use serde_json::Value;

/// 64-bit FNV-1a: any stable hash of the trace id routes the same way.
fn shard_of(trace_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

#[test]
fn three_shards_analyze_every_trace_exactly_once() {
    let shards: Vec<Daemon> = (0..3)
        .map(|_| Daemon::watch("[daemon]\ntrace_ttl_ms = 500\njson_socket = \"\"\n"))
        .collect();
    let traces = 60;
    let mut sent_per_shard = [0usize; 3];
    for t in 0..traces {
        let id = format!("{:032x}", 0x5eed_0000_u64 + t);
        let shard = shard_of(&id, shards.len());
        sent_per_shard[shard] += 1;
        // Each trace arrives in two requests (as two exporter batches would);
        // routing by trace id keeps both halves on one shard.
        let body = otlp_json_trace(&id, "orders", 6, 1_700_000_000_000_000_000 + t * 1_000_000_000);
        let v: Value = serde_json::from_str(&body).unwrap();
        let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .clone();
        for half in [&spans[..4], &spans[4..]] {
            let mut part = v.clone();
            part["resourceSpans"][0]["scopeSpans"][0]["spans"] = Value::Array(half.to_vec());
            let (status, _) = http_request(
                shards[shard].http,
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/json")],
                part.to_string().as_bytes(),
            );
            assert_eq!(status, 200);
        }
    }
    assert!(sent_per_shard.iter().all(|&n| n > 0), "{sent_per_shard:?}");
    let analyzed: Vec<f64> = eventually(10, || {
        let counts: Vec<f64> = shards
            .iter()
            .map(|d| d.metrics()["perf_sentinel_traces_analyzed_total"])
            .collect();
        (counts.iter().sum::<f64>() >= traces as f64).then_some(counts)
    })
    .expect("every trace analyzed");
    assert_eq!(analyzed.iter().sum::<f64>(), traces as f64, "{analyzed:?}");
    for (i, d) in shards.iter().enumerate() {
        assert_eq!(analyzed[i], sent_per_shard[i] as f64, "shard {i}");
        let m = d.metrics();
        assert_eq!(
            m["perf_sentinel_spans_analyzed_total"],
            (sent_per_shard[i] * 7 - sent_per_shard[i]) as f64
        );
    }
    // Findings across shards: exactly one N+1 per trace, none analyzed twice.
    let mut per_trace: BTreeMap<String, usize> = BTreeMap::new();
    for d in &shards {
        let (_, body) = d.get("/api/findings?limit=1000&type=n_plus_one_sql");
        for item in serde_json::from_str::<Vec<Value>>(&body).unwrap() {
            *per_trace
                .entry(item["finding"]["trace_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
            assert_eq!(item["finding"]["pattern"]["occurrences"], 6);
        }
    }
    assert_eq!(per_trace.len(), traces as usize);
    assert!(
        per_trace.values().all(|&n| n == 1),
        "a trace was analyzed twice: {per_trace:?}"
    );
    eprintln!("traces per shard: {sent_per_shard:?}; analyzed: {analyzed:?}");
}
