//! Cross-trace correlation (`[daemon.correlation]`, spec 03 §11): which
//! findings of one service tend to follow findings of another within a short
//! lag, over a rolling window.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::settings::{CorrelationSettings, fnv1a};
use crate::finding::Finding;
use crate::time::format_timestamp_ms;

/// Lag samples kept per pair (reservoir sampling).
const RESERVOIR: usize = 256;
/// Correlations returned by a query.
pub const MAX_REPORTED: usize = 1000;

/// `(finding type, service, template)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    pub finding_type: String,
    pub service: String,
    pub template: String,
}

impl Endpoint {
    fn of(f: &Finding) -> Endpoint {
        Endpoint {
            finding_type: f.finding_type.clone(),
            service: f.service.clone(),
            template: f.pattern.template.clone(),
        }
    }

    fn hash(&self) -> u64 {
        fnv1a(format!("{}\u{1f}{}\u{1f}{}", self.finding_type, self.service, self.template).as_bytes())
    }
}

struct Pair {
    count: u64,
    lags: Vec<u64>,
    offered: u64,
    rng: u64,
    first_seen: u64,
    last_seen: u64,
    sample_trace_id: Option<String>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One reported correlation.
#[derive(Debug, Clone, Serialize)]
pub struct Correlation {
    pub source: Endpoint,
    pub target: Endpoint,
    pub co_occurrence_count: u64,
    pub source_total_occurrences: u64,
    pub confidence: f64,
    pub median_lag_ms: f64,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_trace_id: Option<String>,
}

/// The correlator's state.
pub struct Correlator {
    settings: CorrelationSettings,
    window: VecDeque<(u64, Endpoint)>,
    totals: BTreeMap<Endpoint, u64>,
    pairs: BTreeMap<(Endpoint, Endpoint), Pair>,
}

impl Correlator {
    pub fn new(settings: CorrelationSettings) -> Correlator {
        Correlator {
            settings,
            window: VecDeque::new(),
            totals: BTreeMap::new(),
            pairs: BTreeMap::new(),
        }
    }

    /// Adds one batch of findings seen at `now_ms`.
    pub fn ingest(&mut self, findings: &[Finding], now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.settings.window_ms);
        while self.window.front().is_some_and(|(ts, _)| *ts < cutoff) {
            if let Some((_, ep)) = self.window.pop_front() {
                if let Some(t) = self.totals.get_mut(&ep) {
                    *t = t.saturating_sub(1);
                    if *t == 0 {
                        self.totals.remove(&ep);
                    }
                }
            }
        }
        self.pairs.retain(|_, p| p.last_seen >= cutoff);
        for f in findings {
            let target = Endpoint::of(f);
            for (ts, source) in self.window.iter().rev() {
                let lag = now_ms.saturating_sub(*ts);
                if lag > self.settings.lag_threshold_ms {
                    break;
                }
                if source.service == target.service {
                    continue;
                }
                let key = (source.clone(), target.clone());
                let seed = now_ms ^ source.hash().rotate_left(17) ^ target.hash();
                let pair = self.pairs.entry(key).or_insert_with(|| Pair {
                    count: 0,
                    lags: Vec::new(),
                    offered: 0,
                    rng: seed,
                    first_seen: now_ms,
                    last_seen: now_ms,
                    sample_trace_id: None,
                });
                pair.count += 1;
                pair.offered += 1;
                if pair.lags.len() < RESERVOIR {
                    pair.lags.push(lag);
                } else {
                    let j = splitmix(&mut pair.rng) % pair.offered;
                    if let Ok(j) = usize::try_from(j) {
                        if j < RESERVOIR {
                            pair.lags[j] = lag;
                        }
                    }
                }
                pair.last_seen = now_ms;
                let mut id = f.trace_id.clone();
                crate::event::truncate_utf8(&mut id, 128);
                pair.sample_trace_id = Some(id);
            }
            self.window.push_back((now_ms, target.clone()));
            *self.totals.entry(target).or_default() += 1;
        }
        let cap = self.settings.max_tracked_pairs;
        if self.pairs.len() > cap {
            let keep = cap * 9 / 10;
            let mut by_count: Vec<(u64, (Endpoint, Endpoint))> =
                self.pairs.iter().map(|(k, p)| (p.count, k.clone())).collect();
            by_count.sort();
            for (_, k) in by_count.into_iter().take(self.pairs.len() - keep) {
                self.pairs.remove(&k);
            }
        }
    }

    /// Pairs above both thresholds, by confidence then count, at most 1000.
    pub fn report(&self) -> Vec<Correlation> {
        let mut out: Vec<Correlation> = self
            .pairs
            .iter()
            .filter_map(|((source, target), p)| {
                let total = *self.totals.get(source)?;
                if total == 0 || p.count < self.settings.min_co_occurrences {
                    return None;
                }
                let confidence = p.count as f64 / total as f64;
                if confidence < self.settings.min_confidence {
                    return None;
                }
                let mut lags = p.lags.clone();
                lags.sort_unstable();
                let median = match lags.len() {
                    0 => 0.0,
                    n if n % 2 == 1 => lags[n / 2] as f64,
                    n => (lags[n / 2 - 1] + lags[n / 2]) as f64 / 2.0,
                };
                let ms = |v: u64| format_timestamp_ms(i64::try_from(v).unwrap_or(0).saturating_mul(1_000_000));
                Some(Correlation {
                    source: source.clone(),
                    target: target.clone(),
                    co_occurrence_count: p.count,
                    source_total_occurrences: total,
                    confidence,
                    median_lag_ms: median,
                    first_seen: ms(p.first_seen),
                    last_seen: ms(p.last_seen),
                    sample_trace_id: p.sample_trace_id.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(b.co_occurrence_count.cmp(&a.co_occurrence_count))
                .then_with(|| (&a.source, &a.target).cmp(&(&b.source, &b.target)))
        });
        out.truncate(MAX_REPORTED);
        out
    }
}
