//! Prometheus metrics: the reference's names (spec 08 §4.3) plus the span
//! ledger that makes every loss accountable.
//!
//! Recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus`. Ledger values are copied into the registry
//! under the ledger's lock right before rendering, so one scrape always sees
//! a balanced ledger.

use std::sync::OnceLock;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ledger::{Counts, Ledger};

/// Buckets of `perf_sentinel_slow_duration_seconds`, in seconds.
pub const SLOW_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];

pub const FINDINGS_TOTAL: &str = "perf_sentinel_findings_total";
pub const OTLP_REJECTED: &str = "perf_sentinel_otlp_rejected_total";
pub const SLOW_DURATION: &str = "perf_sentinel_slow_duration_seconds";
pub const EXPORT_REQUESTS: &str = "perf_sentinel_export_report_requests_total";
pub const TOTAL_IO_OPS: &str = "perf_sentinel_total_io_ops";
pub const AVOIDABLE_IO_OPS: &str = "perf_sentinel_avoidable_io_ops";
pub const IO_WASTE_RATIO: &str = "perf_sentinel_io_waste_ratio";
pub const SERVICE_IO_OPS: &str = "perf_sentinel_service_io_ops_total";
pub const CONNECTIONS_REFUSED: &str = "perf_sentinel_connections_refused_total";

/// Reasons of `perf_sentinel_otlp_rejected_total`.
pub const REJECT_REASONS: &[&str] = &[
    "unsupported_media_type",
    "parse_error",
    "channel_full",
    "payload_too_large",
    "unsupported_encoding",
];

/// The process-wide recorder (the `metrics` facade has one global recorder).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(SLOW_DURATION.to_owned()), SLOW_BUCKETS)
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may already be installed by an embedding program;
        // then our series go to it and this handle renders an empty registry.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Installs the recorder and registers the series that must exist from
/// start-up with value 0.
pub fn prewarm() {
    let _ = handle();
    for reason in REJECT_REASONS {
        counter!(OTLP_REJECTED, "reason" => *reason).increment(0);
    }
    for kind in ["sql", "http_out"] {
        let _ = metrics::histogram!(SLOW_DURATION, "type" => kind);
    }
    counter!(EXPORT_REQUESTS).increment(0);
    counter!(TOTAL_IO_OPS).increment(0);
    counter!(AVOIDABLE_IO_OPS).increment(0);
    gauge!(IO_WASTE_RATIO).set(0.0);
    counter!(CONNECTIONS_REFUSED).increment(0);
    // Energy scrapers and the acknowledgment API are not part of this build;
    // their series exist (at 0) so that dashboards built on the reference's
    // names keep working.
    for scraper in ["scaphandre", "kepler", "redfish"] {
        for status in ["success", "failed"] {
            counter!(format!("perf_sentinel_{scraper}_scrape_total"), "status" => status).increment(0);
        }
        let mut reasons = vec![
            "unreachable",
            "timeout",
            "http_error",
            "body_read_error",
            "request_error",
            "invalid_utf8",
        ];
        if scraper == "redfish" {
            reasons.extend(["invalid_json", "path_missing", "invalid_value"]);
        }
        for reason in reasons {
            counter!(format!("perf_sentinel_{scraper}_scrape_failed_total"), "reason" => reason).increment(0);
        }
    }
    for action in ["ack", "unack"] {
        counter!("perf_sentinel_ack_operations_total", "action" => action).increment(0);
    }
    for reason in [
        "already_acked",
        "unauthorized",
        "no_store",
        "invalid_signature",
        "limit_reached",
        "file_too_large",
        "entry_too_large",
        "internal_error",
    ] {
        counter!("perf_sentinel_ack_operations_failed_total", "action" => "ack", "reason" => reason).increment(0);
    }
    for reason in [
        "not_acked",
        "unauthorized",
        "no_store",
        "invalid_signature",
        "internal_error",
    ] {
        counter!("perf_sentinel_ack_operations_failed_total", "action" => "unack", "reason" => reason).increment(0);
    }
    process_collector().describe();
    for name in [
        "perf_sentinel_scaphandre_last_scrape_age_seconds",
        "perf_sentinel_kepler_last_scrape_age_seconds",
        "perf_sentinel_redfish_last_scrape_age_seconds",
        "perf_sentinel_cloud_energy_last_scrape_age_seconds",
    ] {
        gauge!(name).set(0.0);
    }
}

fn publish(c: &Counts) {
    // The reference's names.
    counter!("perf_sentinel_events_processed_total").absolute(c.received - c.sampled_out - c.rejected);
    counter!("perf_sentinel_traces_analyzed_total").absolute(c.traces_analyzed);
    gauge!("perf_sentinel_active_traces").set(c.active_traces as f64);
    gauge!("perf_sentinel_analysis_queue_depth").set(c.analysis_queue_depth as f64);
    counter!("perf_sentinel_analysis_shed_batches_total").absolute(c.batches_shed);
    counter!("perf_sentinel_analysis_shed_traces_total").absolute(c.traces_shed);
    // The span ledger.
    counter!("perf_sentinel_spans_received_total").absolute(c.received);
    counter!("perf_sentinel_spans_ignored_total", "reason" => "no_io_attributes").absolute(c.ignored_non_io);
    counter!("perf_sentinel_spans_sampled_out_total").absolute(c.sampled_out);
    counter!("perf_sentinel_spans_rejected_total").absolute(c.rejected);
    counter!("perf_sentinel_spans_dropped_total", "reason" => "max_events_per_trace").absolute(c.dropped);
    counter!("perf_sentinel_spans_shed_total").absolute(c.shed);
    counter!("perf_sentinel_spans_analyzed_total").absolute(c.analyzed);
    gauge!("perf_sentinel_spans_in_ingest_queue").set(c.in_ingest_queue as f64);
    gauge!("perf_sentinel_spans_in_window").set(c.in_window as f64);
    gauge!("perf_sentinel_spans_in_analysis").set(c.in_analysis as f64);
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The Prometheus text exposition, with the ledger copied in consistently
/// and the process metrics (`process_*`) refreshed.
pub fn render(ledger: &Ledger) -> String {
    let h = handle();
    process_collector().collect();
    ledger.with_snapshot(|c| {
        publish(c);
        h.render()
    })
}
