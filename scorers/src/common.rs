//! Tunables both scorers read.

use perf_sentinel_engine::registry::{DefaultValue, Kind, Tunable};

pub const ENABLED: Tunable = Tunable {
    section: "green",
    key: "enabled",
    kind: Kind::Bool,
    default: DefaultValue::Bool(true),
    advised: None,
    doc: "Compute GreenOps figures: per-finding green_impact, the I/O waste ratio and the carbon estimate.",
};

/// IIS band bounds: moderate, high, critical.
pub const IIS_BANDS: [f64; 3] = [2.0, 5.0, 10.0];
/// Waste-ratio band bounds: moderate, high, critical.
pub const WASTE_BANDS: [f64; 3] = [0.10, 0.30, 0.50];

/// `healthy`, `moderate`, `high` or `critical`: the value is at least the bound.
pub fn band(value: f64, bounds: [f64; 3]) -> &'static str {
    if value >= bounds[2] {
        "critical"
    } else if value >= bounds[1] {
        "high"
    } else if value >= bounds[0] {
        "moderate"
    } else {
        "healthy"
    }
}
