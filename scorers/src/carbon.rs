//! `carbon`: energy and carbon of a batch, in the shape of the SCI v1.0 numerator.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use perf_sentinel_engine::event::is_region_id;
use perf_sentinel_engine::registry::{
    BatchStart, DefaultValue, FindingScore, GreenSummary, Kind, ScoreBatch, ScoreInput, Scorer, Settings, Tunable,
};
use perf_sentinel_engine::{EventKind, Span, Trace};
use serde_json::{Map, Value, json};

use crate::common::ENABLED;
use crate::tables::{Profile, Tables, load_calibration, load_user_profiles};

/// Energy of one I/O operation, in kWh (0.1 µWh): an order-of-magnitude proxy.
pub const ENERGY_PER_IO_OP_KWH: f64 = 1e-7;
/// PUE of regions outside the table that have a user profile.
const GENERIC_PUE: f64 = 1.2;
/// Distinct region buckets per batch; further regions fold into `unknown`.
const MAX_REGIONS: usize = 256;
/// Entries allowed in `[green.service_regions]`.
const MAX_SERVICE_REGIONS: usize = 1024;
/// The uncertainty bracket: low = mid × 0.5, high = mid × 2.
const LOW: f64 = 0.5;
const HIGH: f64 = 2.0;

const fn green(key: &'static str, kind: Kind, default: DefaultValue, doc: &'static str) -> Tunable {
    Tunable {
        section: "green",
        key,
        kind,
        default,
        advised: None,
        doc,
    }
}

const TUNABLES: &[Tunable] = &[
    ENABLED,
    green(
        "default_region",
        Kind::Str,
        DefaultValue::None,
        "Region of spans that carry no cloud.region and whose service is not in [green.service_regions], e.g. eu-west-3. Unset: such spans count only toward embodied carbon.",
    ),
    green(
        "service_regions",
        Kind::StrMap,
        DefaultValue::None,
        "Table of service = \"region\" (up to 1024 entries; names and regions of ASCII letters, digits, '-' and '_').",
    ),
    green(
        "embodied_carbon_per_request_gco2",
        Kind::Float {
            min: 0.0,
            max: f64::MAX,
        },
        DefaultValue::Float(0.001),
        "Embodied (hardware manufacturing) carbon charged per trace, in gCO2eq.",
    ),
    green(
        "use_hourly_profiles",
        Kind::Bool,
        DefaultValue::Bool(true),
        "Use the grid intensity of the span's UTC hour (and month, where known) instead of the annual average.",
    ),
    green(
        "hourly_profiles_file",
        Kind::Str,
        DefaultValue::None,
        "JSON file of hourly profiles that take precedence over the embedded ones; relative to the working directory. A broken file is a config error.",
    ),
    green(
        "per_operation_coefficients",
        Kind::Bool,
        DefaultValue::Bool(true),
        "Weigh energy by operation: SELECT 0.5, INSERT and UPDATE 1.5, DELETE 1.2; HTTP by response size (0.8, 1.2 or 2.0).",
    ),
    green(
        "include_network_transport",
        Kind::Bool,
        DefaultValue::Bool(false),
        "Add the energy of moving HTTP response bytes between regions (needs response sizes and [green.service_regions] for the callee host).",
    ),
    green(
        "network_energy_per_byte_kwh",
        Kind::Float {
            min: 0.0,
            max: f64::MAX,
        },
        DefaultValue::Float(4e-11),
        "Energy per byte moved between regions, in kWh (0.04 kWh/GB).",
    ),
    green(
        "calibration_file",
        Kind::Str,
        DefaultValue::None,
        "TOML file of per-service energy factors written by `perf-sentinel calibrate`. A broken file is an error (the reference ignores it).",
    ),
    green(
        "scaphandre",
        Kind::Table,
        DefaultValue::None,
        "Scaphandre RAPL energy scraping (daemon only).",
    ),
    green(
        "kepler",
        Kind::Table,
        DefaultValue::None,
        "Kepler eBPF energy scraping (daemon only).",
    ),
    green(
        "redfish",
        Kind::Table,
        DefaultValue::None,
        "Redfish BMC power scraping (daemon only).",
    ),
    green(
        "cloud",
        Kind::Table,
        DefaultValue::None,
        "Cloud instance power from SPECpower tables (daemon only).",
    ),
    green(
        "electricity_maps",
        Kind::Table,
        DefaultValue::None,
        "Real-time grid intensity from Electricity Maps (daemon only).",
    ),
];

perf_sentinel_engine::declare_scorer! {
    /// ## What it computes
    /// An estimate of the batch's carbon in the shape of the SCI v1.0
    /// numerator, (E × I) + M, per region:
    ///
    /// - **Region** of each span: its `cloud.region`, else
    ///   `[green.service_regions]` for its service (lower-cased), else
    ///   `[green] default_region`; else the `unknown` bucket, which has no
    ///   operational carbon.
    /// - **I**, grid intensity (gCO2eq/kWh): the hourly profile value for the
    ///   span's UTC hour (and month for monthly profiles) when
    ///   `use_hourly_profiles` is on and the region has a profile, else the
    ///   annual value of the embedded table (55 regions and country codes).
    ///   PUE: AWS 1.15, GCP 1.09, Azure 1.17, country codes 1.2.
    /// - **E**, energy per operation: 1e-7 kWh, weighed by operation when
    ///   `per_operation_coefficients` is on, times the service's calibration
    ///   factor.
    /// - **M**, embodied carbon: `embodied_carbon_per_request_gco2` per trace.
    ///
    /// The avoidable estimate is operational carbon times the share of
    /// avoidable operations. Every figure carries a 2× bracket (low = mid / 2,
    /// high = mid × 2): it is a proxy for comparing endpoints and releases,
    /// not a measurement.
    ///
    /// ## Output
    /// `green_summary.co2`, `regions`, `energy_kwh`, `energy_model` and the
    /// `per_service_*` maps. Model tags: `io_proxy_v1` (annual values),
    /// `io_proxy_v2` (a flat hourly profile was used), `io_proxy_v3` (a
    /// monthly one), with `+cal` when a calibration factor applied.
    ///
    /// ## References
    /// - Software Carbon Intensity specification v1.0: <https://sci.greensoftware.foundation/>
    /// - Table sources: `scorers/data/README.md`.
    id: "carbon",
    rank: 20,
    summary: "energy and carbon per region, in the shape of the SCI v1.0 numerator",
    tunables: TUNABLES,
    gate_rules: &[],
    build: build,
}

/// Everything built once from the config and shared by every batch.
#[derive(Debug)]
struct CarbonContext {
    tables: Tables,
    default_region: Option<String>,
    service_regions: BTreeMap<String, String>,
    user_profiles: BTreeMap<String, Profile>,
    calibration: BTreeMap<String, f64>,
    embodied_per_trace: f64,
    use_hourly: bool,
    per_op: bool,
    transport: bool,
    per_byte_kwh: f64,
}

struct Carbon {
    enabled: bool,
    ctx: Arc<CarbonContext>,
}

fn build(s: &Settings) -> Result<Box<dyn Scorer>, String> {
    let region = |what: &str, r: &str| -> Result<String, String> {
        if is_region_id(r) {
            Ok(r.to_ascii_lowercase())
        } else {
            Err(format!(
                "{what}: `{r}` is not a region id (1-64 ASCII letters, digits, '-' or '_')"
            ))
        }
    };
    let default_region = s
        .str("default_region")
        .map(|r| region("[green] default_region", r))
        .transpose()?;
    let raw_map = s.str_map("service_regions");
    if raw_map.len() > MAX_SERVICE_REGIONS {
        return Err(format!(
            "[green.service_regions] has more than {MAX_SERVICE_REGIONS} entries"
        ));
    }
    let mut service_regions = BTreeMap::new();
    for (svc, r) in raw_map {
        let key = region("[green.service_regions] service name", &svc)?;
        service_regions.insert(key, region(&format!("[green.service_regions] {svc}"), &r)?);
    }
    let user_profiles = match s.str("hourly_profiles_file") {
        Some(p) => load_user_profiles(Path::new(p))?,
        None => BTreeMap::new(),
    };
    let calibration = match s.str("calibration_file") {
        Some(p) => load_calibration(Path::new(p))?,
        None => BTreeMap::new(),
    };
    let ctx = CarbonContext {
        tables: Tables::embedded()?,
        default_region,
        service_regions,
        user_profiles,
        calibration,
        embodied_per_trace: s.float("embodied_carbon_per_request_gco2"),
        use_hourly: s.bool("use_hourly_profiles"),
        per_op: s.bool("per_operation_coefficients"),
        transport: s.bool("include_network_transport"),
        per_byte_kwh: s.float("network_energy_per_byte_kwh"),
    };
    Ok(Box::new(Carbon {
        enabled: s.bool(ENABLED.key),
        ctx: Arc::new(ctx),
    }))
}

/// Where an intensity came from, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Annual,
    Hourly,
    MonthlyHourly,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Annual => "annual",
            Source::Hourly => "hourly",
            Source::MonthlyHourly => "monthly_hourly",
        }
    }
}

#[derive(Default)]
struct Bucket {
    io_ops: u64,
    co2: f64,
    intensity_sum: f64,
    source: Option<Source>,
    pue: f64,
    known: bool,
}

#[derive(Default)]
struct ServiceAcc {
    energy: f64,
    carbon: f64,
    region: String,
}

/// UTC hour and month from a timestamp string, read the reference's way:
/// characters 11-12 and 5-6, only when the string ends with `Z`.
fn hour_month(ts: &str) -> (Option<usize>, Option<usize>) {
    let b = ts.as_bytes();
    if !ts.is_ascii() || b.last() != Some(&b'Z') || b.len() < 13 || !(b[10] == b'T' || b[10] == b' ') {
        return (None, None);
    }
    let two = |i: usize| -> Option<usize> {
        let (a, c) = (b[i], b[i + 1]);
        (a.is_ascii_digit() && c.is_ascii_digit()).then(|| usize::from(a - b'0') * 10 + usize::from(c - b'0'))
    };
    let hour = two(11).filter(|h| *h < 24);
    let month = if b[4] == b'-' {
        two(5).filter(|m| (1..=12).contains(m))
    } else {
        None
    };
    (hour, month)
}

impl CarbonContext {
    fn region_of(&self, span: &Span) -> Option<String> {
        if let Some(r) = &span.event.cloud_region {
            return Some(r.to_ascii_lowercase());
        }
        if let Some(r) = self.service_regions.get(&span.event.service.to_ascii_lowercase()) {
            return Some(r.clone());
        }
        self.default_region.clone()
    }

    /// Intensity, its source and the PUE for a span in `region`.
    fn intensity(&self, region: &str, ts: &str) -> (f64, Source, f64) {
        let row = self.tables.regions.get(region);
        let user = self.user_profiles.get(region);
        let pue = match (row, user) {
            (Some(r), _) => r.pue,
            (None, Some(_)) => GENERIC_PUE,
            (None, None) => 0.0,
        };
        if self.use_hourly {
            if let Some(p) = user.or_else(|| self.tables.profile(region)) {
                let (hour, month) = hour_month(ts);
                if let Some(v) = hour.and_then(|h| p.at(h, month)) {
                    let src = if p.is_monthly() {
                        Source::MonthlyHourly
                    } else {
                        Source::Hourly
                    };
                    return (v, src, pue);
                }
            }
        }
        (row.map_or(0.0, |r| r.annual), Source::Annual, pue)
    }

    fn energy(&self, span: &Span) -> (f64, bool) {
        let mut e = ENERGY_PER_IO_OP_KWH;
        if self.per_op {
            e *= match span.kind() {
                EventKind::Sql => match span.event.verb {
                    Some("SELECT") => 0.5,
                    Some("INSERT" | "UPDATE") => 1.5,
                    Some("DELETE") => 1.2,
                    _ => 1.0,
                },
                EventKind::HttpOut => match span.event.response_size_bytes {
                    Some(b) if b > 1_048_576 => 2.0,
                    Some(b) if b >= 10_240 => 1.2,
                    Some(_) => 0.8,
                    None => 1.0,
                },
            };
        }
        match self.calibration.get(&*span.event.service) {
            Some(f) => (e * f, true),
            None => (e, false),
        }
    }
}

fn bracket(mid: f64, model: &str, methodology: &str) -> Value {
    json!({ "low": mid * LOW, "mid": mid, "high": mid * HIGH, "model": model, "methodology": methodology })
}

impl Scorer for Carbon {
    fn batch(&self, _start: &BatchStart<'_>) -> Box<dyn ScoreBatch + '_> {
        Box::new(CarbonBatch {
            carbon: self,
            buckets: BTreeMap::new(),
            unknown: Bucket::default(),
            services: BTreeMap::new(),
            transport: 0.0,
            calibrated: false,
            any_region_attr: false,
            total_ops: 0,
            last_region: None,
        })
    }
}

/// Energy and carbon summed span by span over one batch.
struct CarbonBatch<'a> {
    carbon: &'a Carbon,
    /// Per region, at most [`MAX_REGIONS`]; spans past them go to `unknown`.
    buckets: BTreeMap<String, Bucket>,
    unknown: Bucket,
    services: BTreeMap<String, ServiceAcc>,
    transport: f64,
    calibrated: bool,
    any_region_attr: bool,
    total_ops: u64,
    /// The last span's service and cloud region, and the region they
    /// resolved to: consecutive spans mostly share them (and their
    /// allocations), so the resolution is done once per run.
    last_region: Option<LastRegion>,
}

struct LastRegion {
    service: Arc<str>,
    cloud_region: Option<Arc<str>>,
    region: Option<Arc<str>>,
}

impl LastRegion {
    fn matches(&self, span: &Span) -> bool {
        Arc::ptr_eq(&self.service, &span.event.service)
            && match (&self.cloud_region, &span.event.cloud_region) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl ScoreBatch for CarbonBatch<'_> {
    fn observe(&mut self, trace: &Trace) {
        if !self.carbon.enabled {
            return;
        }
        // Borrowed from the scorer, not from `self`, so the fields stay free.
        let carbon: &Carbon = self.carbon;
        let ctx = &*carbon.ctx;
        for span in &trace.spans {
            self.total_ops += 1;
            self.any_region_attr |= span.event.cloud_region.is_some();
            let last = match &self.last_region {
                Some(last) if last.matches(span) => last,
                _ => self.last_region.insert(LastRegion {
                    service: Arc::clone(&span.event.service),
                    cloud_region: span.event.cloud_region.clone(),
                    region: ctx.region_of(span).map(Arc::from),
                }),
            };
            let region = last
                .region
                .as_deref()
                .filter(|r| self.buckets.contains_key(*r) || self.buckets.len() < MAX_REGIONS);
            let Some(region) = region else {
                self.unknown.io_ops += 1;
                continue;
            };
            let (intensity, source, pue) = ctx.intensity(region, &span.event.timestamp);
            let (energy, cal) = ctx.energy(span);
            self.calibrated |= cal;
            let op = energy * intensity * pue;
            let b = match self.buckets.get_mut(region) {
                Some(b) => b,
                None => self.buckets.entry(region.to_owned()).or_default(),
            };
            b.io_ops += 1;
            b.co2 += op;
            b.intensity_sum += intensity;
            b.source = b.source.max(Some(source));
            b.pue = pue;
            b.known = ctx.tables.regions.contains_key(region);
            let s = match self.services.get_mut(&*span.event.service) {
                Some(s) => s,
                None => self
                    .services
                    .entry(String::from(&*span.event.service))
                    .or_insert_with(|| ServiceAcc {
                        region: region.to_owned(),
                        ..ServiceAcc::default()
                    }),
            };
            s.energy += energy;
            s.carbon += op;
            if ctx.transport && span.kind() == EventKind::HttpOut {
                if let (Some(bytes), Some(host)) = (span.event.response_size_bytes, &span.event.host) {
                    if let Some(callee) = ctx.service_regions.get(&**host) {
                        if !callee.eq_ignore_ascii_case(region) {
                            self.transport += bytes as f64 * ctx.per_byte_kwh * intensity * pue;
                        }
                    }
                }
            }
        }
    }

    fn finish(self: Box<Self>, input: &ScoreInput<'_>, summary: &mut GreenSummary) -> Option<FindingScore> {
        let CarbonBatch {
            carbon,
            buckets,
            unknown,
            services,
            transport,
            calibrated,
            any_region_attr,
            total_ops,
            last_region: _,
        } = *self;
        let ctx = &*carbon.ctx;
        if !carbon.enabled || input.traces == 0 {
            summary.fields.insert("energy_kwh".into(), json!(0.0));
            summary.fields.insert("energy_model".into(), json!(""));
            return None;
        }
        let operational = buckets.values().fold(0.0_f64, |acc, b| acc + b.co2);
        let embodied = input.traces as f64 * ctx.embodied_per_trace;
        let total_mid = operational + embodied + transport;
        let accounted = total_ops - unknown.io_ops;
        let avoidable_ops = summary.metrics.get("avoidable_io_ops").copied().unwrap_or(0.0);
        let avoidable_mid = if accounted == 0 {
            0.0
        } else {
            operational * (avoidable_ops / accounted as f64).min(1.0)
        };
        let best = buckets.values().filter_map(|b| b.source).max();
        let mut model = match best {
            Some(Source::MonthlyHourly) => "io_proxy_v3",
            Some(Source::Hourly) => "io_proxy_v2",
            _ => "io_proxy_v1",
        }
        .to_owned();
        if calibrated {
            model.push_str("+cal");
        }
        let methodology = if transport > 0.0 {
            "sci_v1_numerator+transport"
        } else {
            "sci_v1_numerator"
        };
        let mut co2 = Map::new();
        co2.insert("total".into(), bracket(total_mid, &model, methodology));
        co2.insert(
            "avoidable".into(),
            bracket(avoidable_mid, &model, "sci_v1_operational_ratio"),
        );
        co2.insert("operational_gco2".into(), json!(operational));
        co2.insert("embodied_gco2".into(), json!(embodied));
        if transport > 0.0 {
            co2.insert("transport_gco2".into(), json!(transport));
        }
        let mut rows: Vec<(f64, String, Value)> = buckets
            .iter()
            .map(|(name, b)| {
                let row = json!({
                    "status": if b.known { "known" } else { "out_of_table" },
                    "region": name,
                    "grid_intensity_gco2_kwh": b.intensity_sum / b.io_ops.max(1) as f64,
                    "pue": b.pue,
                    "io_ops": b.io_ops,
                    "co2_gco2": b.co2,
                    "intensity_source": b.source.unwrap_or(Source::Annual).as_str(),
                });
                (b.co2, name.clone(), row)
            })
            .collect();
        if unknown.io_ops > 0 {
            rows.push((
                0.0,
                "unknown".into(),
                json!({
                    "status": "unresolved", "region": "unknown", "grid_intensity_gco2_kwh": 0.0, "pue": 0.0,
                    "io_ops": unknown.io_ops, "co2_gco2": 0.0, "intensity_source": "annual",
                }),
            ));
        }
        rows.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        // Per-endpoint grams for the simplest setup only (a default region in
        // the table and nothing that varies per span), as the reference does.
        if let Some(row) = ctx
            .default_region
            .as_ref()
            .and_then(|r| ctx.tables.regions.get(r))
            .filter(|_| !any_region_attr && ctx.service_regions.is_empty() && !ctx.per_op && ctx.calibration.is_empty())
        {
            let per_op = ENERGY_PER_IO_OP_KWH * row.annual * row.pue;
            let io: BTreeMap<(&str, &str), u64> = input
                .endpoint_io
                .iter()
                .map(|e| ((e.service.as_str(), e.endpoint.as_str()), e.io_ops))
                .collect();
            if let Some(Value::Array(top)) = summary.fields.get_mut("top_offenders") {
                for t in top.iter_mut() {
                    let key = (
                        t.get("service").and_then(Value::as_str).unwrap_or(""),
                        t.get("endpoint").and_then(Value::as_str).unwrap_or(""),
                    );
                    let ops = io.get(&key).copied();
                    if let (Some(ops), Some(obj)) = (ops, t.as_object_mut()) {
                        obj.insert("co2_grams".into(), json!(ops as f64 * per_op));
                    }
                }
            }
        }
        let energy = services.values().fold(0.0_f64, |acc, s| acc + s.energy);
        let f = &mut summary.fields;
        f.insert("co2".into(), Value::Object(co2));
        f.insert("regions".into(), Value::Array(rows.into_iter().map(|r| r.2).collect()));
        if transport > 0.0 {
            f.insert("transport_gco2".into(), json!(transport));
        }
        f.insert("energy_kwh".into(), json!(energy));
        f.insert(
            "energy_model".into(),
            json!(if energy > 0.0 { model.as_str() } else { "" }),
        );
        if !services.is_empty() {
            let map = |g: &dyn Fn(&String, &ServiceAcc) -> Value| -> Value {
                Value::Object(services.iter().map(|(k, v)| (k.clone(), g(k, v))).collect())
            };
            f.insert(
                "per_service_carbon_kgco2eq".into(),
                map(&|_, s| json!(s.carbon / 1000.0)),
            );
            f.insert("per_service_energy_kwh".into(), map(&|_, s| json!(s.energy)));
            f.insert("per_service_region".into(), map(&|_, s| json!(s.region)));
            f.insert("per_service_energy_model".into(), map(&|_, _| json!(model)));
            // No measured energy in batch mode: every span is proxy-estimated.
            f.insert("per_service_measured_ratio".into(), map(&|_, _| json!(0.0)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_and_month_like_the_reference() {
        assert_eq!(hour_month("2025-07-10T18:05:00.000Z"), (Some(18), Some(7)));
        assert_eq!(hour_month("2025-07-10T18:05:00+02:00"), (None, None));
        assert_eq!(hour_month("2025-07-10 03:05:00Z"), (Some(3), Some(7)));
    }
}
