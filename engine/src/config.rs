//! `.perf-sentinel.toml`: lookup, parsing and validation.
//!
//! Every key is declared once as a [`Tunable`]: the engine declares the
//! `[daemon]` and `[reporting]` keys, detectors and scorers declare theirs in
//! their descriptors, and quality-gate rules become `[thresholds]` keys. The
//! loader checks a file against that schema: a wrong type, an out-of-range
//! value or an unknown key is an error that names the file, the line and the
//! key, with a suggestion when the key looks like a typo. (The reference
//! ignores unknown keys, and falls back to all defaults on an invalid implicit
//! file; both hide mistakes in a quality gate's configuration.)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::registry::{self, DefaultValue, Kind, RegistryError, Settings, Tunable, Value};

/// The file looked up in the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = ".perf-sentinel.toml";

/// Largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// A config problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    /// 1-based line and column, when the problem is in the text.
    pub position: Option<(usize, usize)>,
    /// `section.key`, when one key is at fault.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((l, c)) = self.position {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every key the loader knows.
#[derive(Debug, Clone)]
pub struct Schema {
    pub tunables: Vec<Tunable>,
}

impl Schema {
    /// The engine's own keys plus every registered detector's and scorer's.
    pub fn from_registry() -> Result<Schema, RegistryError> {
        let mut tunables: Vec<Tunable> = crate::daemon_config::TUNABLES.to_vec();
        tunables.extend_from_slice(REPORTING_TUNABLES);
        tunables.extend_from_slice(ANALYZE_TUNABLES);
        let detectors = registry::detectors()?;
        let scorers = registry::scorers()?;
        for d in &detectors {
            tunables.extend(d.gate_rules.iter().map(|g| g.tunable()));
        }
        for s in &scorers {
            tunables.extend(s.gate_rules.iter().map(|g| g.tunable()));
        }
        for d in &detectors {
            tunables.extend_from_slice(d.tunables);
        }
        for s in &scorers {
            tunables.extend_from_slice(s.tunables);
        }
        // The same key may be declared by several descriptors (both N+1
        // detectors read `n_plus_one_min_occurrences`): they must agree.
        let mut seen: BTreeMap<String, Tunable> = BTreeMap::new();
        let mut unique = Vec::new();
        for t in tunables {
            match seen.get(&t.path()) {
                Some(prev) if prev.kind != t.kind || prev.default != t.default => {
                    return Err(RegistryError::ConflictingTunable(t.path()));
                }
                Some(_) => {}
                None => {
                    seen.insert(t.path(), t);
                    unique.push(t);
                }
            }
        }
        Ok(Schema { tunables: unique })
    }

    pub fn find(&self, section: &str, key: &str) -> Option<&Tunable> {
        self.tunables.iter().find(|t| t.section == section && t.key == key)
    }

    /// Every table name, including parents of dotted ones (`green` for `green.scaphandre`).
    fn sections(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in &self.tunables {
            let mut acc = String::new();
            for part in t.section.split('.') {
                if !acc.is_empty() {
                    acc.push('.');
                }
                acc.push_str(part);
                out.insert(acc.clone());
            }
        }
        out
    }
}

/// `[reporting]`: periodic disclosure settings. Parsed and validated so that
/// existing files load; `analyze` does not use them.
/// Keys of `[analyze]`, read by the batch commands (`analyze`, `diff`, `explain`).
pub const ANALYZE_TUNABLES: &[Tunable] = &[Tunable {
    section: "analyze",
    key: "max_input_size",
    kind: Kind::Int {
        min: 1_024,
        max: 1_099_511_627_776,
    },
    default: DefaultValue::None,
    advised: None,
    doc: "Largest trace file or stdin input that analyze, diff and explain read, in bytes (up to 1 TiB). Unset: [daemon] max_payload_size, as in the reference. Native event arrays are streamed, so memory follows the number of spans, not the size of the file.",
}];

/// The input cap of the batch commands: `[analyze] max_input_size`, else
/// `[daemon] max_payload_size`.
pub fn max_input_size(config: &Config) -> u64 {
    let int = |section, key| match config.get(section, key) {
        Some(Value::Int(n)) => u64::try_from(n).ok(),
        _ => None,
    };
    int("analyze", "max_input_size")
        .or_else(|| int("daemon", "max_payload_size"))
        .unwrap_or(crate::ingest::DEFAULT_MAX_PAYLOAD)
}

pub const REPORTING_TUNABLES: &[Tunable] = &[
    Tunable {
        section: "reporting",
        key: "intent",
        kind: Kind::Choice(&["internal", "official", "audited"]),
        default: DefaultValue::None,
        advised: None,
        doc: "Intended use of periodic disclosure reports.",
    },
    Tunable {
        section: "reporting",
        key: "confidentiality_level",
        kind: Kind::Choice(&["internal", "public"]),
        default: DefaultValue::None,
        advised: None,
        doc: "Who may read disclosure reports.",
    },
    Tunable {
        section: "reporting",
        key: "org_config_path",
        kind: Kind::Str,
        default: DefaultValue::None,
        advised: None,
        doc: "Organisation description file; required when intent is official.",
    },
    Tunable {
        section: "reporting",
        key: "disclose_output_path",
        kind: Kind::Str,
        default: DefaultValue::None,
        advised: None,
        doc: "Reserved.",
    },
    Tunable {
        section: "reporting",
        key: "disclose_period",
        kind: Kind::Str,
        default: DefaultValue::None,
        advised: None,
        doc: "Disclosure period hint.",
    },
    Tunable {
        section: "reporting.sigstore",
        key: "rekor_url",
        kind: Kind::Str,
        default: DefaultValue::Str("https://rekor.sigstore.dev"),
        advised: None,
        doc: "Transparency log used to sign disclosures.",
    },
    Tunable {
        section: "reporting.sigstore",
        key: "fulcio_url",
        kind: Kind::Str,
        default: DefaultValue::Str("https://fulcio.sigstore.dev"),
        advised: None,
        doc: "Certificate authority used to sign disclosures.",
    },
];

/// Top-level keys of 0.5.x that moved; a file that still has one is refused.
const REMOVED_TOP_LEVEL: &[(&str, &str)] = &[
    ("n_plus_one_threshold", "[detection] n_plus_one_min_occurrences"),
    ("window_duration_ms", "[detection] window_duration_ms"),
    ("listen_addr", "[daemon] listen_address"),
    ("listen_port", "[daemon] listen_port_http"),
    ("max_active_traces", "[daemon] max_active_traces"),
    ("trace_ttl_ms", "[daemon] trace_ttl_ms"),
    ("max_events_per_trace", "[daemon] max_events_per_trace"),
    ("max_payload_size", "[daemon] max_payload_size"),
];

/// Tables that the reference documents but does not read; accepted with a warning.
const IGNORED_TABLES: &[&str] = &["tempo"];

/// Keys that the reference ignores inside a section; accepted with a warning.
const IGNORED_KEYS: &[(&str, &str, &str)] = &[("detection", "n_plus_one_threshold", "use n_plus_one_min_occurrences")];

/// Keys whose string values may hold Windows paths with lone backslashes.
const PATH_KEYS: &[&str] = &[
    "hourly_profiles_file",
    "calibration_file",
    "json_socket",
    "tls_cert_path",
    "tls_key_path",
    "storage_path",
    "toml_path",
];

/// A loaded configuration: the values a file set, over the schema's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
    schema: Schema,
    set: BTreeMap<String, Value>,
    /// Accepted but doubtful values (outside the advised range, ignored tables).
    pub warnings: Vec<String>,
}

impl Config {
    /// All defaults.
    pub fn defaults(schema: Schema) -> Config {
        Config {
            source: None,
            schema,
            set: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Loads `path`, or `./.perf-sentinel.toml` when `path` is `None` and it
    /// exists, else the defaults.
    pub fn discover(path: Option<&Path>, schema: Schema) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p, schema),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Config::load(Path::new(DEFAULT_CONFIG_FILE), schema),
            None => Ok(Config::defaults(schema)),
        }
    }

    /// Reads and validates one file.
    pub fn load(path: &Path, schema: Schema) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let err = |message: String| ConfigError {
            origin: origin.clone(),
            position: None,
            key: None,
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read config file: {e}")))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(err(format!("config file is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read config file: {e}")))?;
        let text =
            String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
        let mut cfg = Config::parse(&text, &origin, schema)?;
        cfg.source = Some(path.to_owned());
        Ok(cfg)
    }

    /// Validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, schema: Schema) -> Result<Config, ConfigError> {
        match parse_checked(text, origin, &schema) {
            Ok(c) => Ok(c),
            Err(first) => {
                // Windows paths with lone backslashes are invalid TOML escapes;
                // the reference accepts them for path keys, so retry doubled.
                let rewritten = double_path_backslashes(text);
                if rewritten != text {
                    if let Ok(c) = parse_checked(&rewritten, origin, &schema) {
                        return Ok(c);
                    }
                }
                Err(first)
            }
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The value of a tunable: what the file set, else the default (`None`
    /// when it has no default).
    pub fn value(&self, t: &Tunable) -> Option<Value> {
        if let Some(v) = self.set.get(&t.path()) {
            return Some(v.clone());
        }
        match t.default {
            DefaultValue::Bool(b) => Some(Value::Bool(b)),
            DefaultValue::Int(i) => Some(Value::Int(i)),
            DefaultValue::Float(f) => Some(Value::Float(f)),
            DefaultValue::Str(s) => Some(Value::Str(s.to_owned())),
            DefaultValue::None => match t.kind {
                Kind::StrMap => Some(Value::StrMap(BTreeMap::new())),
                Kind::StrList => Some(Value::StrList(Vec::new())),
                Kind::Table => Some(Value::Table(toml::Table::new())),
                _ => None,
            },
        }
    }

    /// Whether the file set this key.
    pub fn is_set(&self, section: &str, key: &str) -> bool {
        self.set.contains_key(&format!("{section}.{key}"))
    }

    /// Looks a value up by section and key (declared or not: `None` if unknown).
    pub fn get(&self, section: &str, key: &str) -> Option<Value> {
        self.schema.find(section, key).and_then(|t| self.value(t))
    }

    /// The values of these tunables, for a descriptor's `build`.
    pub fn settings_for(&self, tunables: &'static [Tunable]) -> Settings {
        let mut m = BTreeMap::new();
        for t in tunables {
            if let Some(v) = self.value(t) {
                m.insert(t.key, v);
            }
        }
        Settings::new(m)
    }

    /// Sets a value from outside the file (CLI overrides), checked like a file value.
    pub fn override_value(&mut self, section: &str, key: &str, v: Value) -> Result<(), String> {
        let t = *self
            .schema
            .find(section, key)
            .ok_or_else(|| format!("unknown key {section}.{key}"))?;
        check_range(&t, &v)?;
        self.set.insert(t.path(), v);
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.chars().count(), |p| before[p + 1..].chars().count())
        + 1;
    (line, col)
}

struct Walker<'a> {
    text: &'a str,
    origin: &'a str,
    schema: &'a Schema,
    sections: BTreeSet<String>,
    set: BTreeMap<String, Value>,
    warnings: Vec<String>,
    errors: Vec<(usize, ConfigError)>,
    owned: toml::Table,
}

impl Walker<'_> {
    fn error(&mut self, offset: usize, key: Option<String>, message: String) {
        let pos = line_col(self.text, offset);
        self.errors.push((
            offset,
            ConfigError {
                origin: self.origin.to_owned(),
                position: Some(pos),
                key,
                message,
            },
        ));
    }

    fn suggestion(&self, section: &str, key: &str) -> String {
        // The same key in another table?
        let elsewhere: Vec<&str> = self
            .schema
            .tunables
            .iter()
            .filter(|t| t.key == key)
            .map(|t| t.section)
            .collect();
        if let Some(s) = elsewhere.first() {
            return format!("; `{key}` belongs in [{s}]");
        }
        let mut candidates: Vec<String> = self
            .schema
            .tunables
            .iter()
            .filter(|t| t.section == section)
            .map(|t| t.key.to_owned())
            .collect();
        let prefix = if section.is_empty() {
            String::new()
        } else {
            format!("{section}.")
        };
        candidates.extend(self.sections.iter().filter_map(|s| {
            s.strip_prefix(&prefix)
                .filter(|rest| !rest.contains('.'))
                .map(str::to_owned)
        }));
        let best = candidates
            .iter()
            .map(|c| (strsim::jaro_winkler(c, key), c))
            .filter(|(score, _)| *score > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)));
        match best {
            Some((_, c)) => format!("; did you mean `{c}`?"),
            None if section.is_empty() => format!(
                "; known tables are {}",
                self.sections
                    .iter()
                    .filter(|s| !s.contains('.'))
                    .map(|s| format!("[{s}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        }
    }

    fn walk(&mut self, section: &str, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let key = k.get_ref().as_ref();
            let full = if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            };
            if section.is_empty() {
                if let Some((_, to)) = REMOVED_TOP_LEVEL.iter().find(|(from, _)| *from == key) {
                    self.error(
                        k.span().start,
                        Some(key.to_owned()),
                        format!("this 0.5.x key was removed; use {to}"),
                    );
                    continue;
                }
                if IGNORED_TABLES.contains(&key) {
                    self.warnings.push(format!(
                        "{}: [{key}] is not read; pass these options as command-line flags",
                        self.origin
                    ));
                    continue;
                }
            }
            if let Some((_, _, hint)) = IGNORED_KEYS.iter().find(|(s, kk, _)| *s == section && *kk == key) {
                self.warnings
                    .push(format!("{}: `{full}` is ignored; {hint}", self.origin));
                continue;
            }
            if let Some(t) = self.schema.find(section, key).copied() {
                match convert(&t, v.get_ref(), &self.owned, &full) {
                    Ok(val) => {
                        if let Err(msg) = check_range(&t, &val) {
                            self.error(v.span().start, Some(full), msg);
                        } else {
                            if let Some(w) = advice(&t, &val) {
                                self.warnings.push(format!("{}: `{full}` = {w}", self.origin));
                            }
                            self.set.insert(full, val);
                        }
                    }
                    Err(msg) => self.error(v.span().start, Some(full), msg),
                }
            } else if self.sections.contains(&full) {
                match v.get_ref() {
                    DeValue::Table(t) => self.walk(&full, t),
                    other => self.error(
                        v.span().start,
                        Some(full),
                        format!("expected a table, found {}", other.type_str()),
                    ),
                }
            } else {
                let hint = self.suggestion(section, key);
                let what = if section.is_empty() {
                    "unknown table or key".to_owned()
                } else {
                    format!("unknown key in [{section}]")
                };
                self.error(k.span().start, Some(full), format!("{what}{hint}"));
            }
        }
    }
}

fn parse_checked(text: &str, origin: &str, schema: &Schema) -> Result<Config, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| ConfigError {
        origin: origin.to_owned(),
        position: e.span().map(|s| line_col(text, s.start)),
        key: None,
        message: format!("invalid TOML: {}", e.message()),
    })?;
    let owned: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
        origin: origin.to_owned(),
        position: e.span().map(|s| line_col(text, s.start)),
        key: None,
        message: format!("invalid TOML: {}", e.message()),
    })?;
    let mut w = Walker {
        text,
        origin,
        schema,
        sections: schema.sections(),
        set: BTreeMap::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
        owned,
    };
    w.walk("", doc.get_ref());
    if let Some((_, e)) = w.errors.into_iter().min_by_key(|(off, _)| *off) {
        return Err(e);
    }
    Ok(Config {
        source: None,
        schema: schema.clone(),
        set: w.set,
        warnings: w.warnings,
    })
}

fn int_of(v: &DeValue<'_>) -> Option<Result<i64, String>> {
    let DeValue::Integer(i) = v else { return None };
    Some(i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| format!("integer {i} is out of range")))
}

fn convert(t: &Tunable, v: &DeValue<'_>, owned: &toml::Table, full: &str) -> Result<Value, String> {
    let found = || format!("expected {}, found {}", expected_type(t.kind), v.type_str());
    match t.kind {
        Kind::Bool => v.as_bool().map(Value::Bool).ok_or_else(found),
        Kind::Int { .. } => int_of(v).ok_or_else(found)?.map(Value::Int),
        Kind::Float { .. } => {
            if let Some(i) = int_of(v) {
                return i.map(|i| Value::Float(i as f64));
            }
            let DeValue::Float(f) = v else {
                return Err(found());
            };
            let x: f64 = f.as_str().parse().map_err(|_| found())?;
            if !x.is_finite() {
                return Err("must be a finite number".into());
            }
            Ok(Value::Float(x))
        }
        Kind::Str => {
            let s = v.as_str().ok_or_else(found)?;
            if s.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            Ok(Value::Str(s.to_owned()))
        }
        Kind::Choice(choices) => {
            let s = v.as_str().ok_or_else(found)?.trim().to_ascii_lowercase();
            if s.is_empty() {
                return match t.default {
                    DefaultValue::Str(d) => Ok(Value::Str(d.to_owned())),
                    _ => Err(format!("expected one of {}", choices.join(", "))),
                };
            }
            if choices.contains(&s.as_str()) {
                Ok(Value::Str(s))
            } else {
                Err(format!("`{s}` is not one of {}", choices.join(", ")))
            }
        }
        Kind::StrMap => {
            let table = v.as_table().ok_or_else(found)?;
            let mut m = BTreeMap::new();
            for (k, val) in table.iter() {
                let s = val.get_ref().as_str().ok_or_else(|| {
                    format!(
                        "entry `{}` must be a string, found {}",
                        k.get_ref(),
                        val.get_ref().type_str()
                    )
                })?;
                m.insert(k.get_ref().to_string(), s.to_owned());
            }
            Ok(Value::StrMap(m))
        }
        Kind::StrList => {
            let arr = v.as_array().ok_or_else(found)?;
            arr.iter()
                .map(|x| {
                    x.get_ref()
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "every entry must be a string".to_owned())
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::StrList)
        }
        Kind::Table => {
            if !v.is_table() {
                return Err(found());
            }
            let mut cur: Option<&toml::Value> = None;
            for (i, part) in full.split('.').enumerate() {
                cur = if i == 0 {
                    owned.get(part)
                } else {
                    cur.and_then(|c| c.get(part))
                };
            }
            match cur {
                Some(toml::Value::Table(t)) => Ok(Value::Table(t.clone())),
                _ => Err(found()),
            }
        }
    }
}

fn expected_type(k: Kind) -> &'static str {
    match k {
        Kind::Bool => "a boolean",
        Kind::Int { .. } => "an integer",
        Kind::Float { .. } => "a number",
        Kind::Str | Kind::Choice(_) => "a string",
        Kind::StrMap => "a table of strings",
        Kind::StrList => "an array of strings",
        Kind::Table => "a table",
    }
}

/// Checks a typed value against the tunable's range.
fn check_range(t: &Tunable, v: &Value) -> Result<(), String> {
    match (t.kind, v) {
        (Kind::Int { min, max }, Value::Int(i)) if *i < min || *i > max => {
            Err(format!("{i} is out of range ({min} to {max})"))
        }
        (Kind::Float { min, max }, Value::Float(f)) if !f.is_finite() || *f < min || *f > max => {
            Err(format!("{f} is out of range ({})", t.range_text()))
        }
        _ => Ok(()),
    }
}

fn advice(t: &Tunable, v: &Value) -> Option<String> {
    let (lo, hi) = t.advised?;
    let x = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => return None,
    };
    (x < lo || x > hi).then(|| format!("{x} is outside the advised range {lo} to {hi}"))
}

/// Doubles lone backslashes in `key = "…"` lines of path keys (a leading `\\`
/// becomes four, for UNC paths); runs of two or more are kept.
fn double_path_backslashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let is_path_line = PATH_KEYS.iter().any(|k| {
            trimmed
                .strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with('=') && rest.contains('"'))
        });
        if !is_path_line {
            out.push_str(line);
            continue;
        }
        let Some(q) = line.find('"') else {
            out.push_str(line);
            continue;
        };
        out.push_str(&line[..=q]);
        let body = &line[q + 1..];
        if body.starts_with("\\\\") && !body.starts_with("\\\\\\") {
            out.push_str("\\\\\\\\");
            out.push_str(&double_lone(&body[2..]));
        } else {
            out.push_str(&double_lone(body));
        }
    }
    out
}

fn double_lone(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            let mut j = i;
            while j < chars.len() && chars[j] == '\\' {
                j += 1;
            }
            let run = j - i;
            out.extend(std::iter::repeat_n('\\', if run == 1 { 2 } else { run }));
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let mut tunables = crate::daemon_config::TUNABLES.to_vec();
        tunables.push(Tunable {
            section: "detection",
            key: "max_fanout",
            kind: Kind::Int { min: 1, max: 100_000 },
            default: DefaultValue::Int(20),
            advised: Some((5.0, 1000.0)),
            doc: "",
        });
        tunables.push(Tunable {
            section: "green",
            key: "service_regions",
            kind: Kind::StrMap,
            default: DefaultValue::None,
            advised: None,
            doc: "",
        });
        Schema { tunables }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "c.toml", schema())
    }

    #[test]
    fn defaults_and_values() {
        let c = parse("[detection]\nmax_fanout = 30\n").unwrap();
        assert_eq!(c.get("detection", "max_fanout"), Some(Value::Int(30)));
        assert_eq!(c.get("daemon", "listen_port_grpc"), Some(Value::Int(4317)));
        let c = parse("").unwrap();
        assert_eq!(c.get("detection", "max_fanout"), Some(Value::Int(20)));
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse("[detection]\n\nmax_fanout = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml:3:14: `detection.max_fanout`: 0 is out of range (1 to 100000)"
        );
        let e = parse("[detection]\nmax_fanot = 3\n").unwrap_err();
        assert!(e.to_string().contains("did you mean `max_fanout`?"), "{e}");
        let e = parse("[detection]\nmax_fanout = \"3\"\n").unwrap_err();
        assert!(e.to_string().contains("expected an integer, found string"), "{e}");
        let e = parse("n_plus_one_threshold = 3\n").unwrap_err();
        assert!(e.to_string().contains("[detection] n_plus_one_min_occurrences"), "{e}");
        let e = parse("[detection]\nlisten_port_http = 1\n").unwrap_err();
        assert!(e.to_string().contains("belongs in [daemon]"), "{e}");
        let e = parse("[detection\n").unwrap_err();
        assert!(e.to_string().starts_with("c.toml:1:"), "{e}");
    }

    #[test]
    fn warnings_for_advised_ranges_and_ignored_tables() {
        let c = parse("[detection]\nmax_fanout = 2000\n[tempo]\nendpoint = \"x\"\n").unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn string_maps() {
        let c = parse("[green.service_regions]\nledger = \"us-east-1\"\n").unwrap();
        let Some(Value::StrMap(m)) = c.get("green", "service_regions") else {
            panic!()
        };
        assert_eq!(m.get("ledger").map(String::as_str), Some("us-east-1"));
    }

    #[test]
    fn windows_paths() {
        let c = parse("[daemon]\njson_socket = \"C:\\tmp\\ps.sock\"\n").unwrap();
        assert_eq!(
            c.get("daemon", "json_socket"),
            Some(Value::Str("C:\\tmp\\ps.sock".into()))
        );
    }
}
