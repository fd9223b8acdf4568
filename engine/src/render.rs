//! Human and code-scanning renderings of a report: text and SARIF 2.1.0.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::finding::{Confidence, Finding, Severity, is_invisible};
use crate::report::{BatchReport, Report};

/// The OASIS SARIF 2.1.0 schema address.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Removes terminal control sequences and invisible characters from untrusted text.
///
/// Printable ASCII, which is what reports almost always hold, has neither
/// and is returned as it is.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|&c| !c.is_control() && !is_invisible(c)).collect())
}

/// Width the text report keeps to.
const WIDTH: usize = 80;

/// Wraps `text` at word boundaries so that lines starting `indent` columns in
/// stay within `width`; continuation lines are indented by `indent`.
pub fn wrap(text: &str, indent: usize, width: usize) -> String {
    let avail = width.saturating_sub(indent).max(20);
    let mut out = String::with_capacity(text.len() + 16);
    let mut col = 0;
    let mut place = |word: &str, len: usize| {
        if col > 0 && col + 1 + len > avail {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
    };
    if text.is_ascii() {
        // One byte per character: words are cut on the ASCII characters
        // that `char::is_whitespace` calls white space (vertical tab too).
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b.is_ascii_whitespace() || b == 0x0B {
                if i > start {
                    place(&text[start..i], i - start);
                }
                start = i + 1;
            }
        }
        if start < bytes.len() {
            place(&text[start..], bytes.len() - start);
        }
    } else {
        for word in text.split_whitespace() {
            place(word, word.chars().count());
        }
    }
    out
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn sev(&self, s: Severity) -> String {
        let label = format!("[{}]", s.as_str().to_ascii_uppercase());
        match s {
            Severity::Critical => self.wrap("1;31", &label),
            Severity::Warning => self.wrap("33", &label),
            Severity::Info => self.wrap("36", &label),
        }
    }
}

fn label<'a>(engine: &'a Engine, f: &'a Finding) -> &'a str {
    engine
        .descriptor(&f.finding_type)
        .map_or(f.finding_type.as_str(), |d| d.label)
}

fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

/// What `write` writes, as text, for held findings: nothing is read from
/// a file, so only the buffer could fail, and it does not.
fn held_text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    let _ = write(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The text report: findings by severity, the GreenOps block and the gate.
/// `elapsed_ms` is shown in the header; `color` adds ANSI colours.
pub fn text(engine: &Engine, report: &Report, elapsed_ms: u128, color: bool) -> String {
    held_text(|out| write_text(engine, &BatchReport::of(report), elapsed_ms, color, out))
}

/// Like [`text`], written to `w` a part at a time, for a report whose
/// findings may lie in temporary files.
pub fn write_text(
    engine: &Engine,
    report: &BatchReport<'_>,
    elapsed_ms: u128,
    color: bool,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let p = Paint { on: color };
    let mut o = String::new();
    let header = report.header();
    let a = &header.analysis;
    let _ = writeln!(o, "\n{}", p.wrap("1", "=== perf-sentinel report ==="));
    let _ = writeln!(
        o,
        "Analyzed {} events in {} traces ({} ms)",
        a.events_processed, a.traces_analyzed, elapsed_ms
    );
    if a.spans_without_io_attributes > 0 {
        let note = format!(
            "Note: {} spans carried no SQL or HTTP attribute (db.statement, db.query.text, http.url, url.full) and were not analyzed",
            a.spans_without_io_attributes
        );
        let _ = writeln!(o, "{}", wrap(&note, 2, WIDTH));
    }
    if a.events_with_unparseable_timestamp > 0 {
        let note = format!(
            "Note: {} events have a timestamp that is not UTC ISO-8601 (YYYY-MM-DDTHH:MM:SS[.fff]Z): they count in windows as 0 ms and are left out of overlap checks",
            a.events_with_unparseable_timestamp
        );
        let _ = writeln!(o, "{}", wrap(&note, 2, WIDTH));
    }
    let counts = report.counts();
    let total = counts.total();
    if total == 0 {
        let _ = writeln!(o, "\nNo anti-patterns found.");
    } else {
        let _ = writeln!(o, "\nFound {total} finding(s):");
        let _ = writeln!(
            o,
            "  {} critical, {} warning, {} info",
            counts.severity(Severity::Critical),
            counts.severity(Severity::Warning),
            counts.severity(Severity::Info)
        );
        if total > 5 {
            let mut by_type: Vec<(&str, u64)> = counts.by_type().collect();
            by_type.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
            let top = if total > 10 { 3 } else { 2 };
            let list: Vec<String> = by_type.iter().take(top).map(|(t, n)| format!("{t} ({n})")).collect();
            let _ = writeln!(o, "  Most common: {}", list.join(", "));
        }
        // Grouped by severity, most severe first; report order inside a
        // group: one pass over the findings per severity.
        let mut i = 0;
        for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
            if counts.severity(severity) == 0 {
                continue;
            }
            for f in report.findings()? {
                let f = f?;
                if f.severity != severity {
                    continue;
                }
                i += 1;
                finding_text(engine, &p, i, &f, &mut o);
                if o.len() >= 1 << 16 {
                    w.write_all(o.as_bytes())?;
                    o.clear();
                }
            }
        }
    }
    green_block(&mut o, &header.green_summary);
    let g = &header.quality_gate;
    let verdict = if g.passed {
        p.wrap("1;32", "PASSED")
    } else {
        p.wrap("1;31", "FAILED")
    };
    let _ = writeln!(o, "\nQuality gate: {verdict}");
    for r in &g.rules {
        let _ = writeln!(
            o,
            "  {:<30} threshold {:<8} actual {:<8} {}",
            r.rule,
            trim_float(r.threshold),
            trim_float(r.actual),
            if r.passed { "PASS" } else { "FAIL" }
        );
    }
    if report.acknowledged_len() > 0 {
        let _ = writeln!(o, "\n{} acknowledged finding(s) not shown", report.acknowledged_len());
    }
    w.write_all(o.as_bytes())
}

/// One finding of the text report, numbered `i`.
fn finding_text(engine: &Engine, p: &Paint, i: usize, f: &Finding, o: &mut String) {
    let _ = writeln!(o, "\n{} #{} {}", p.sev(f.severity), i, label(engine, f));
    let _ = writeln!(o, "  Trace:      {}", clean(&f.trace_id));
    let _ = writeln!(o, "  Service:    {}", clean(&f.service));
    let _ = writeln!(o, "  Endpoint:   {}", clean(&f.source_endpoint));
    if let Some(c) = &f.code_location {
        let mut src = String::new();
        if let Some(func) = &c.function {
            src.push_str(&clean(func));
        }
        if let Some(path) = &c.filepath {
            let _ = write!(src, " ({}", clean(path));
            if let Some(l) = c.lineno {
                let _ = write!(src, ":{l}");
            }
            src.push(')');
        }
        let _ = writeln!(o, "  Source:     {}", wrap(src.trim(), 14, WIDTH));
    }
    let _ = writeln!(o, "  Template:   {}", clean(&f.pattern.template));
    let _ = writeln!(
        o,
        "  Hits:       {} occurrences, {} distinct params, {} ms window",
        f.pattern.occurrences, f.pattern.distinct_params, f.pattern.window_ms
    );
    let _ = writeln!(
        o,
        "  Window:     {} -> {}",
        clean(&f.first_timestamp),
        clean(&f.last_timestamp)
    );
    if let Some(m) = &f.classification_method {
        let _ = writeln!(o, "  Classified: {m}");
    }
    let _ = writeln!(o, "  Suggestion: {}", wrap(&clean(&f.suggestion), 14, WIDTH));
    if f.confidence != Confidence::CiBatch {
        let _ = writeln!(o, "  Confidence: {}", f.confidence.as_str());
    }
    if let Some(fix) = &f.suggested_fix {
        let _ = writeln!(
            o,
            "  Suggested fix ({}): {}",
            clean(&fix.framework),
            clean(&fix.recommendation)
        );
    }
    if let Some(g) = &f.green_impact {
        let _ = writeln!(o, "  Extra I/O:  {}", g.estimated_extra_io_ops);
        let _ = writeln!(o, "  IIS:        {:.1} ({})", g.io_intensity_score, g.io_intensity_band);
    }
}

/// The acknowledged findings, for `--show-acknowledged` in text output.
pub fn acknowledged_text(report: &Report) -> String {
    held_text(|out| write_acknowledged_text(&BatchReport::of(report), out))
}

/// Like [`acknowledged_text`], written to `w` a part at a time.
pub fn write_acknowledged_text(report: &BatchReport<'_>, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut o = String::new();
    for a in report.acknowledged()? {
        let a = a?;
        let f = &a.finding;
        let get = |k: &str| {
            a.acknowledgment
                .get(k)
                .and_then(Value::as_str)
                .map(clean)
                .unwrap_or_default()
        };
        let _ = writeln!(
            o,
            "  acknowledged: {} {} {}: {} (by {} on {}: {}{})",
            f.finding_type,
            clean(&f.service),
            clean(&f.source_endpoint),
            clean(&f.pattern.template),
            get("acknowledged_by"),
            get("acknowledged_at"),
            get("reason"),
            a.acknowledgment
                .get("expires_at")
                .and_then(Value::as_str)
                .map_or(String::new(), |e| format!(", until {}", clean(e)))
        );
        if o.len() >= 1 << 16 {
            w.write_all(o.as_bytes())?;
            o.clear();
        }
    }
    w.write_all(o.as_bytes())
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

fn green_block(o: &mut String, g: &serde_json::Map<String, Value>) {
    if g.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n--- GreenOps Summary ---");
    let _ = writeln!(
        o,
        "  I/O ops: {} total, {} avoidable",
        num(g.get("total_io_ops")),
        num(g.get("avoidable_io_ops"))
    );
    let _ = writeln!(
        o,
        "  Waste ratio: {:.1}% ({})",
        num(g.get("io_waste_ratio")) * 100.0,
        g.get("io_waste_ratio_band").and_then(Value::as_str).unwrap_or("")
    );
    if let Some(co2) = g.get("co2") {
        let mid = |k: &str| num(co2.get(k).and_then(|v| v.get("mid")));
        let model = co2
            .get("total")
            .and_then(|t| t.get("model"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let _ = writeln!(
            o,
            "  CO2: {:.6} g total, {:.6} g avoidable (model {model})",
            mid("total"),
            mid("avoidable")
        );
        let _ = writeln!(
            o,
            "    operational {:.6} g, embodied {:.6} g{}",
            num(co2.get("operational_gco2")),
            num(co2.get("embodied_gco2")),
            co2.get("transport_gco2")
                .map_or(String::new(), |t| format!(", transport {:.6} g", num(Some(t))))
        );
        let _ = writeln!(
            o,
            "    estimates carry a 2x uncertainty either way (low = mid / 2, high = mid x 2)"
        );
    }
    if let Some(Value::Array(regions)) = g.get("regions") {
        for r in regions {
            let _ = writeln!(
                o,
                "  Region {}: {} ops, {:.1} gCO2/kWh ({}), {:.6} g",
                clean(r.get("region").and_then(Value::as_str).unwrap_or("")),
                num(r.get("io_ops")),
                num(r.get("grid_intensity_gco2_kwh")),
                r.get("intensity_source").and_then(Value::as_str).unwrap_or(""),
                num(r.get("co2_gco2"))
            );
        }
    }
    if let Some(Value::Array(regions)) = g.get("regions") {
        for r in regions
            .iter()
            .filter(|r| r.get("status").and_then(Value::as_str) == Some("out_of_table"))
        {
            let note = format!(
                "Note: region {} is not in the carbon table: its operations count as zero carbon",
                clean(r.get("region").and_then(Value::as_str).unwrap_or(""))
            );
            let _ = writeln!(o, "  {}", wrap(&note, 4, WIDTH));
        }
    }
    if let Some(Value::Array(top)) = g.get("top_offenders") {
        if !top.is_empty() {
            let _ = writeln!(o, "  Top offenders (I/O intensity score = I/O ops per request):");
            for t in top.iter().take(10) {
                let _ = writeln!(
                    o,
                    "    {:.1} ({}) {} {}",
                    num(t.get("io_intensity_score")),
                    t.get("io_intensity_band").and_then(Value::as_str).unwrap_or(""),
                    clean(t.get("service").and_then(Value::as_str).unwrap_or("")),
                    clean(t.get("endpoint").and_then(Value::as_str).unwrap_or(""))
                );
            }
            let _ = writeln!(
                o,
                "    bands are fixed: moderate >= 2, high >= 5, critical >= 10 ops per request"
            );
        }
    }
}

/// Whether a `code.filepath` may be shown as a SARIF artifact location: a
/// relative path with no traversal, encoding tricks or invisible characters.
pub fn safe_sarif_path(p: &str) -> bool {
    if p.is_empty() || p.starts_with('/') || p.starts_with('\\') || p.contains(':') {
        return false;
    }
    if p.split(['/', '\\']).any(|seg| seg == "..") {
        return false;
    }
    // Every encoded form refused below starts with `%`.
    if p.contains('%') {
        let lower = p.to_ascii_lowercase();
        if ["%2e%2e", ".%2e", "%2e.", "%25", "%c0", "%c1", "%e0%80"]
            .iter()
            .any(|t| lower.contains(t))
        {
            return false;
        }
    }
    if p.is_ascii() {
        return !p.bytes().any(|b| b.is_ascii_control());
    }
    !p.chars().any(|c| c.is_control() || is_invisible(c))
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn rank(c: Confidence) -> u32 {
    match c {
        Confidence::CiBatch => 30,
        Confidence::DaemonStaging => 60,
        Confidence::DaemonProduction => 90,
    }
}

/// One SARIF result, borrowing from its finding; fields in the order the
/// log has always written them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    level: &'static str,
    message: SarifMessage,
    properties: SarifProperties<'a>,
    rank: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    locations: Option<[SarifLocation<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partial_fingerprints: Option<Fingerprints<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprints: Option<Fingerprints<'a>>,
}

#[derive(Serialize)]
struct SarifMessage {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifProperties<'a> {
    confidence: Confidence,
    #[serde(skip_serializing_if = "str::is_empty")]
    signature: &'a str,
    trace_id: &'a str,
    /// SARIF `fixes` require artifact changes; a textual recommendation goes here.
    #[serde(skip_serializing_if = "Option::is_none")]
    suggested_fix: Option<&'a crate::finding::SuggestedFix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledgment_reason: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledgment_by: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledgment_at: Option<&'a Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation<'a> {
    physical_location: PhysicalLocation<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation<'a> {
    artifact_location: ArtifactLocation<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize)]
struct ArtifactLocation<'a> {
    uri: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
}

#[derive(Serialize, Clone, Copy)]
struct Fingerprints<'a> {
    #[serde(rename = "perfsentinel/v1")]
    v1: &'a str,
}

impl<'a> SarifResult<'a> {
    /// The result for `f`; `acked` is its acknowledgment, if it has one.
    fn new(f: &'a Finding, acked: Option<&'a Value>) -> SarifResult<'a> {
        let text = format!(
            "{} in {} on {}: {} ({} occurrences, {}ms window). {}",
            f.finding_type,
            clean(&f.service),
            clean(&f.source_endpoint),
            clean(&f.pattern.template),
            f.pattern.occurrences,
            f.pattern.window_ms,
            clean(&f.suggestion)
        );
        let ack_field = |key: &str| acked.and_then(|a| a.get(key));
        let code = f.code_location.as_ref();
        let locations = code
            .and_then(|c| c.filepath.as_deref())
            .filter(|p| safe_sarif_path(p))
            .map(|uri| {
                [SarifLocation {
                    physical_location: PhysicalLocation {
                        artifact_location: ArtifactLocation { uri },
                        region: code
                            .and_then(|c| c.lineno)
                            .filter(|&l| l >= 1)
                            .map(|start_line| Region { start_line }),
                    },
                }]
            });
        let signed = (!f.signature.is_empty()).then_some(Fingerprints { v1: &f.signature });
        SarifResult {
            rule_id: &f.finding_type,
            level: level(f.severity),
            message: SarifMessage { text },
            properties: SarifProperties {
                confidence: f.confidence,
                signature: &f.signature,
                trace_id: &f.trace_id,
                suggested_fix: f.suggested_fix.as_ref(),
                acknowledged: acked.map(|_| true),
                acknowledgment_reason: ack_field("reason"),
                acknowledgment_by: ack_field("acknowledged_by"),
                acknowledgment_at: ack_field("acknowledged_at"),
            },
            rank: rank(f.confidence),
            locations,
            partial_fingerprints: signed,
            fingerprints: signed,
        }
    }
}

/// A finding to write as a SARIF result, with its acknowledgment if it has one.
type SarifItem<'a> = std::io::Result<(Cow<'a, Finding>, Option<Cow<'a, Value>>)>;

/// A SARIF 2.1.0 log with one run: every registered detector as a rule, then
/// one result per finding (acknowledged ones after, when given).
pub fn sarif(engine: &Engine, findings: &[Finding], acknowledged: &[(Finding, Value)]) -> String {
    let results = findings.iter().map(|f| Ok((Cow::Borrowed(f), None))).chain(
        acknowledged
            .iter()
            .map(|(f, a)| Ok((Cow::Borrowed(f), Some(Cow::Borrowed(a))))),
    );
    held_text(|out| write_sarif_results(engine, results, out))
}

/// Like [`sarif`] for a report, written to `w` a result at a time; the
/// acknowledged findings only if `acknowledged`.
pub fn write_sarif(
    engine: &Engine,
    report: &BatchReport<'_>,
    acknowledged: bool,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let results = report.findings()?.map(|f| f.map(|f| (f, None)));
    let acked = if acknowledged {
        Some(report.acknowledged()?.map(|a| {
            a.map(|a| match a {
                Cow::Borrowed(a) => (Cow::Borrowed(&a.finding), Some(Cow::Borrowed(&a.acknowledgment))),
                Cow::Owned(a) => (Cow::Owned(a.finding), Some(Cow::Owned(a.acknowledgment))),
            })
        }))
    } else {
        None
    };
    write_sarif_results(engine, results.chain(acked.into_iter().flatten()), w)
}

/// Writes the SARIF log with `results` in its run, as pretty JSON.
fn write_sarif_results<'a>(
    engine: &Engine,
    results: impl Iterator<Item = SarifItem<'a>>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let rules: Vec<Value> = engine
        .detectors()
        .iter()
        .map(|d| {
            let desc = d.descriptor;
            json!({
                "id": desc.id,
                "name": desc.label,
                "shortDescription": { "text": desc.summary },
                "fullDescription": { "text": desc.summary },
                "help": { "text": crate::render::doc_text(desc.docs) },
                "defaultConfiguration": { "level": "warning" },
            })
        })
        .collect();
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "perf-sentinel",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/perf-sentinel/perf-sentinel",
                "rules": rules,
            }},
            "results": [],
        }]
    });
    let frame = serde_json::to_vec_pretty(&log).map_err(std::io::Error::other)?;
    // The run's keys are the only ones six spaces in that hold an empty
    // array (rules sit deeper; newlines in strings are escaped).
    const RESULTS: &[u8] = b"\n      \"results\": []";
    let Some(at) = memchr::memmem::find(&frame, RESULTS) else {
        return Err(std::io::Error::other("the SARIF frame has no results"));
    };
    let open = at + RESULTS.len() - 1;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    w.write_all(&frame[..open])?;
    let mut one = Vec::new();
    let mut any = false;
    for result in results {
        let (finding, acked) = result?;
        one.clear();
        serde_json::to_writer_pretty(&mut one, &SarifResult::new(&finding, acked.as_deref()))
            .map_err(std::io::Error::other)?;
        w.write_all(if any { b",\n        " } else { b"\n        " })?;
        let mut from = 0;
        for nl in memchr::memchr_iter(b'\n', &one) {
            w.write_all(&one[from..=nl])?;
            w.write_all(b"        ")?;
            from = nl + 1;
        }
        w.write_all(&one[from..])?;
        any = true;
    }
    if any {
        w.write_all(b"\n      ")?;
    }
    w.write_all(&frame[open..])?;
    w.write_all(b"\n")?;
    w.flush()
}

/// A descriptor's captured doc comment as plain text: the one leading space
/// that `///` leaves on each line removed.
pub fn doc_text(docs: &str) -> String {
    let mut out = String::with_capacity(docs.len());
    for line in docs.lines() {
        out.push_str(line.strip_prefix(' ').unwrap_or(line));
        out.push('\n');
    }
    out.trim_end().to_owned() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sarif_path_filter() {
        assert!(safe_sarif_path("src/main/java/A.java"));
        for bad in [
            "/etc/passwd",
            "..\\x",
            "a/../b",
            "C:/x",
            "a/%2E%2e/b",
            "a\u{202E}b",
            "a%25b",
            "a\nb",
        ] {
            assert!(!safe_sarif_path(bad), "{bad}");
        }
    }

    #[test]
    fn wrapping_keeps_within_width() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
        let w = wrap(text, 14, 40);
        let mut lines = w.lines();
        assert!(lines.next().unwrap().len() + 14 <= 40, "{w}");
        assert!(lines.all(|l| l.len() <= 40 && l.starts_with(&" ".repeat(14))), "{w}");
        assert_eq!(w.split_whitespace().count(), 14);
    }

    #[test]
    fn clean_strips_escapes() {
        assert_eq!(clean("a\x1b[31mb\u{200B}c"), "a[31mbc");
    }
}
