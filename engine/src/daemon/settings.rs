//! The `[daemon]` tunables, typed and checked once at start-up.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::finding::Confidence;
use crate::registry::Value;

/// Cross-trace correlation settings (`[daemon.correlation]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationSettings {
    pub enabled: bool,
    pub window_ms: u64,
    pub lag_threshold_ms: u64,
    pub min_co_occurrences: u64,
    pub min_confidence: f64,
    pub max_tracked_pairs: usize,
}

/// Everything the daemon reads from the config.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub listen_address: IpAddr,
    /// 0 lets the system pick a free port (the bound one is logged).
    pub port_http: u16,
    pub port_grpc: u16,
    pub json_socket: Option<PathBuf>,
    pub max_active_traces: usize,
    pub trace_ttl: Duration,
    pub sampling_rate: f64,
    pub max_events_per_trace: usize,
    pub max_payload: usize,
    pub confidence: Confidence,
    pub api_enabled: bool,
    pub max_retained_findings: usize,
    pub ingest_queue_capacity: usize,
    pub analysis_queue_capacity: usize,
    pub correlation: CorrelationSettings,
    /// `[detection] slow_query_threshold_ms` in microseconds, for the slow-span histogram.
    pub slow_threshold_us: u64,
    /// `[daemon.ack] toml_path`, when the acknowledgments baseline is enabled.
    pub ack_toml: Option<PathBuf>,
    /// Most concurrent connections per HTTP listener.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a request may take in all.
    pub request_timeout: Duration,
}

fn int(cfg: &Config, section: &str, key: &str) -> Result<i64, String> {
    match cfg.get(section, key) {
        Some(Value::Int(i)) => Ok(i),
        other => Err(format!("[{section}] {key}: expected an integer, found {other:?}")),
    }
}

fn usize_of(cfg: &Config, section: &str, key: &str) -> Result<usize, String> {
    usize::try_from(int(cfg, section, key)?).map_err(|_| format!("[{section}] {key} is out of range"))
}

fn string(cfg: &Config, section: &str, key: &str) -> Option<String> {
    match cfg.get(section, key) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn boolean(cfg: &Config, section: &str, key: &str) -> bool {
    matches!(cfg.get(section, key), Some(Value::Bool(true)))
}

impl DaemonSettings {
    /// Reads and checks the daemon's keys. Ranges were checked by the config
    /// loader; this adds the cross-key rules.
    pub fn from_config(cfg: &Config) -> Result<DaemonSettings, String> {
        let addr_text = string(cfg, "daemon", "listen_address").unwrap_or_else(|| "127.0.0.1".into());
        let listen_address: IpAddr = addr_text
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("[daemon] listen_address: `{addr_text}` is not an IP address"))?;
        if string(cfg, "daemon", "tls_cert_path").is_some() || string(cfg, "daemon", "tls_key_path").is_some() {
            return Err(
                "[daemon] tls_cert_path / tls_key_path: TLS is not supported by this build; \
                 terminate TLS in front of the daemon (a sidecar or the Collector)"
                    .into(),
            );
        }
        let correlation = CorrelationSettings {
            enabled: boolean(cfg, "daemon.correlation", "enabled"),
            window_ms: u64::try_from(int(cfg, "daemon.correlation", "window_minutes")?)
                .unwrap_or(0)
                .saturating_mul(60_000),
            lag_threshold_ms: u64::try_from(int(cfg, "daemon.correlation", "lag_threshold_ms")?).unwrap_or(0),
            min_co_occurrences: u64::try_from(int(cfg, "daemon.correlation", "min_co_occurrences")?).unwrap_or(0),
            min_confidence: match cfg.get("daemon.correlation", "min_confidence") {
                Some(Value::Float(f)) => f,
                _ => 0.7,
            },
            max_tracked_pairs: usize_of(cfg, "daemon.correlation", "max_tracked_pairs")?,
        };
        let origins = match cfg.get("daemon.cors", "allowed_origins") {
            Some(Value::StrList(v)) => v,
            _ => Vec::new(),
        };
        if !origins.is_empty() {
            return Err("[daemon.cors] allowed_origins: CORS is not supported by this build yet".into());
        }
        let environment = string(cfg, "daemon", "environment").unwrap_or_else(|| "staging".into());
        let slow_ms = match cfg.get("detection", "slow_query_threshold_ms") {
            Some(Value::Int(i)) => u64::try_from(i).unwrap_or(500),
            _ => 500,
        };
        let ack_toml = if matches!(cfg.get("daemon.ack", "enabled"), Some(Value::Bool(false))) {
            None
        } else {
            string(cfg, "daemon.ack", "toml_path").map(PathBuf::from)
        };
        Ok(DaemonSettings {
            listen_address,
            port_http: u16::try_from(int(cfg, "daemon", "listen_port_http")?).map_err(|_| "listen_port_http")?,
            port_grpc: u16::try_from(int(cfg, "daemon", "listen_port_grpc")?).map_err(|_| "listen_port_grpc")?,
            json_socket: string(cfg, "daemon", "json_socket")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            max_active_traces: usize_of(cfg, "daemon", "max_active_traces")?,
            trace_ttl: Duration::from_millis(u64::try_from(int(cfg, "daemon", "trace_ttl_ms")?).unwrap_or(30_000)),
            sampling_rate: match cfg.get("daemon", "sampling_rate") {
                Some(Value::Float(f)) => f,
                _ => 1.0,
            },
            max_events_per_trace: usize_of(cfg, "daemon", "max_events_per_trace")?,
            max_payload: usize_of(cfg, "daemon", "max_payload_size")?,
            confidence: if environment == "production" {
                Confidence::DaemonProduction
            } else {
                Confidence::DaemonStaging
            },
            api_enabled: !matches!(cfg.get("daemon", "api_enabled"), Some(Value::Bool(false))),
            max_retained_findings: usize_of(cfg, "daemon", "max_retained_findings")?,
            ingest_queue_capacity: usize_of(cfg, "daemon", "ingest_queue_capacity")?,
            analysis_queue_capacity: usize_of(cfg, "daemon", "analysis_queue_capacity")?,
            correlation,
            slow_threshold_us: slow_ms.saturating_mul(1000),
            ack_toml,
            max_connections: usize_of(cfg, "daemon", "max_connections")?,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        })
    }

    /// The TTL ticker period: half the TTL, at least 100 ms.
    pub fn tick_period(&self) -> Duration {
        (self.trace_ttl / 2).max(Duration::from_millis(100))
    }
}

/// 64-bit FNV-1a of the trace id: the sampling decision is per trace.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether a trace is kept at this sampling rate.
pub fn keep_trace(trace_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    (fnv1a(trace_id.as_bytes()) as f64 / u64::MAX as f64) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn sampling_bounds() {
        assert!(keep_trace("x", 1.0));
        assert!(!keep_trace("x", 0.0));
        // Real trace ids are random 128-bit hex strings.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let kept = (0..10_000)
            .filter(|_| keep_trace(&format!("{:016x}{:016x}", next(), next()), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }
}
