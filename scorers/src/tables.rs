//! The carbon model's tables, embedded from `data/` and parsed once, and the
//! user files that extend them (hourly profiles, calibration).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

const GRID_INTENSITY: &str = include_str!("../data/grid_intensity.json");
const HOURLY_PROFILES: &str = include_str!("../data/hourly_profiles.json");

/// Largest user hourly-profile file, in bytes.
pub const MAX_PROFILE_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most profiles a user file may define.
pub const MAX_PROFILES: usize = 256;

/// Grid intensity in gCO2eq/kWh by UTC hour, for a whole year or per month.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    FlatYear(Vec<f64>),
    Monthly(Vec<Vec<f64>>),
}

impl Profile {
    /// The value at `hour` (0-23) and, for monthly profiles, `month` (1-12);
    /// without a month, the mean of the twelve months at that hour.
    pub fn at(&self, hour: usize, month: Option<usize>) -> Option<f64> {
        match self {
            Profile::FlatYear(h) => h.get(hour).copied(),
            Profile::Monthly(m) => match month {
                Some(mo) => m.get(mo.checked_sub(1)?)?.get(hour).copied(),
                None => {
                    let vals: Option<Vec<f64>> = m.iter().map(|row| row.get(hour).copied()).collect();
                    let vals = vals?;
                    Some(vals.iter().fold(0.0, |a, v| a + v) / vals.len().max(1) as f64)
                }
            },
        }
    }

    pub fn is_monthly(&self) -> bool {
        matches!(self, Profile::Monthly(_))
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawProfile {
    FlatYear { hours: Vec<f64> },
    Monthly { months: Vec<Vec<f64>> },
}

impl RawProfile {
    fn into_profile(self) -> Result<Profile, String> {
        let check = |row: &[f64]| -> Result<(), String> {
            if row.len() != 24 {
                return Err(format!("expected 24 hourly values, found {}", row.len()));
            }
            if row.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err("values must be finite and >= 0".into());
            }
            Ok(())
        };
        match self {
            RawProfile::FlatYear { hours } => {
                check(&hours)?;
                Ok(Profile::FlatYear(hours))
            }
            RawProfile::Monthly { months } => {
                if months.len() != 12 {
                    return Err(format!("expected 12 months, found {}", months.len()));
                }
                for m in &months {
                    check(m)?;
                }
                Ok(Profile::Monthly(months))
            }
        }
    }
}

#[derive(Deserialize)]
struct ProfilesFile {
    profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct GridFile {
    regions: BTreeMap<String, RegionRow>,
}

/// One row of the annual table.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RegionRow {
    #[serde(rename = "annual_gco2eq_per_kwh")]
    pub annual: f64,
    pub pue: f64,
}

/// The embedded tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub regions: BTreeMap<String, RegionRow>,
    pub profiles: BTreeMap<String, Profile>,
    pub aliases: BTreeMap<String, String>,
}

impl Tables {
    /// Parses the embedded tables. They are part of the binary, so a failure
    /// here is a build defect, reported as an error rather than a panic.
    pub fn embedded() -> Result<Tables, String> {
        let grid: GridFile = serde_json::from_str(GRID_INTENSITY).map_err(|e| format!("embedded grid table: {e}"))?;
        let prof: ProfilesFile =
            serde_json::from_str(HOURLY_PROFILES).map_err(|e| format!("embedded profile table: {e}"))?;
        let mut profiles = BTreeMap::new();
        for (k, raw) in prof.profiles {
            profiles.insert(
                k.clone(),
                raw.into_profile().map_err(|e| format!("embedded profile {k}: {e}"))?,
            );
        }
        Ok(Tables {
            regions: grid.regions,
            profiles,
            aliases: prof.aliases,
        })
    }

    /// The embedded profile a region reaches, directly or through an alias.
    pub fn profile(&self, region: &str) -> Option<&Profile> {
        self.profiles
            .get(region)
            .or_else(|| self.aliases.get(region).and_then(|a| self.profiles.get(a)))
    }
}

fn line_col_err(path: &Path, e: &serde_json::Error, what: &str) -> String {
    format!("{}:{}:{}: invalid {what}: {e}", path.display(), e.line(), e.column())
}

/// Loads a user `hourly_profiles_file`: `{"profiles": {"<region>": {...}}}`.
pub fn load_user_profiles(path: &Path) -> Result<BTreeMap<String, Profile>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot read hourly profiles: {e}", path.display()))?;
    if meta.len() > MAX_PROFILE_FILE_BYTES {
        return Err(format!(
            "{}: hourly profile file is larger than {MAX_PROFILE_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read hourly profiles: {e}", path.display()))?;
    let raw: ProfilesFile = serde_json::from_str(&text).map_err(|e| line_col_err(path, &e, "hourly profile file"))?;
    if raw.profiles.len() > MAX_PROFILES {
        return Err(format!("{}: more than {MAX_PROFILES} profiles", path.display()));
    }
    let mut out = BTreeMap::new();
    for (k, p) in raw.profiles {
        let key = k.to_ascii_lowercase();
        if !perf_sentinel_engine::event::is_region_id(&key) {
            return Err(format!(
                "{}: profile key `{k}` is not a region id (1-64 ASCII letters, digits, '-' or '_')",
                path.display()
            ));
        }
        let line = text
            .find(&format!("\"{k}\""))
            .map_or(0, |off| text[..off].lines().count().max(1));
        let profile = p
            .into_profile()
            .map_err(|e| format!("{}:{line}: profile `{k}`: {e}", path.display()))?;
        out.insert(key, profile);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    calibration: CalibrationSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationSection {
    #[serde(default)]
    #[allow(dead_code)]
    base_energy_per_io_op_kwh: Option<f64>,
    #[serde(default)]
    services: BTreeMap<String, CalibrationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationEntry {
    factor: f64,
    #[serde(default)]
    #[allow(dead_code)]
    measured_energy_per_op_kwh: Option<f64>,
}

/// Loads a calibration file: energy factor per service name.
pub fn load_calibration(path: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read calibration file: {e}", path.display()))?;
    let parsed: CalibrationFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| {
            let before = &text[..s.start.min(text.len())];
            (
                before.lines().count().max(1),
                before.rsplit('\n').next().map_or(0, str::len) + 1,
            )
        });
        format!(
            "{}:{line}:{col}: invalid calibration file: {}",
            path.display(),
            e.message()
        )
    })?;
    let mut out = BTreeMap::new();
    for (service, entry) in parsed.calibration.services {
        if !entry.factor.is_finite() || entry.factor < 0.0 {
            return Err(format!(
                "{}: calibration factor of `{service}` must be finite and >= 0",
                path.display()
            ));
        }
        out.insert(service, entry.factor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_load() {
        let t = Tables::embedded().unwrap();
        assert_eq!(t.regions.len(), 55);
        assert_eq!(t.profiles.len(), 22);
        assert_eq!(t.aliases.len(), 32);
        assert!(t.profile("fr").is_some_and(Profile::is_monthly));
        assert!(t.profile("us-central1").is_none());
        // The data README's quick check: eu-west-3, July, 18:00 UTC.
        assert_eq!(t.profile("eu-west-3").and_then(|p| p.at(18, Some(7))), Some(62.0));
    }
}
