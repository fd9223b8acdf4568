//! A progress line on stderr for long `analyze` runs.
//!
//! Drawn only when stderr is a terminal and `CI` is not set, and only once a
//! run has taken half a second, so short runs, pipes and CI logs stay quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How long a run goes before the line appears.
const DELAY: Duration = Duration::from_millis(500);
/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    enabled: bool,
    label: String,
    total: Option<u64>,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A progress line for reading `label`, of `total` bytes when known.
    pub fn new(label: String, total: Option<u64>) -> Progress {
        let enabled = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress {
            enabled,
            label,
            total,
            started: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// Bytes read so far.
    pub fn read(&mut self, bytes: u64) {
        if !self.enabled || self.started.elapsed() < DELAY || self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let line = line(&self.label, bytes, self.total, self.started.elapsed().as_secs_f64());
        self.draw(&line);
    }

    /// The reading is over; the rest of the run is analysis.
    pub fn analyzing(&mut self, spans: usize) {
        if self.enabled && self.started.elapsed() >= DELAY {
            self.draw(&format!("analyzing {spans} spans of {}", self.label));
        }
    }

    /// The analysis is over and the report is being written: said only
    /// when the report goes elsewhere than the terminal, which the line
    /// would otherwise garble.
    pub fn writing(&mut self, findings: impl FnOnce() -> u64) {
        self.finish();
        if self.enabled && self.started.elapsed() >= DELAY && !std::io::stdout().is_terminal() {
            let line = format!("writing the report: {} findings of {}", findings(), self.label);
            self.draw(&line);
        }
    }

    fn draw(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// The progress line: a bar when the total is known, else bytes and rate.
fn line(label: &str, bytes: u64, total: Option<u64>, secs: f64) -> String {
    let mb = bytes as f64 / 1e6;
    let rate = mb / secs.max(1e-3);
    match total {
        Some(total) if total > 0 => {
            let frac = (bytes as f64 / total as f64).min(1.0);
            let width = 30;
            let filled = ((frac * width as f64) as usize).min(width);
            format!(
                "reading {label} [{}{}] {:3.0} % {mb:.0}/{:.0} MB, {rate:.0} MB/s",
                "#".repeat(filled),
                " ".repeat(width - filled),
                frac * 100.0,
                total as f64 / 1e6,
            )
        }
        _ => format!("reading {label}: {mb:.0} MB, {rate:.0} MB/s"),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn a_bar_when_the_size_is_known() {
        assert_eq!(
            line("big.json", 50_000_000, Some(200_000_000), 0.5),
            "reading big.json [#######                       ]  25 % 50/200 MB, 100 MB/s"
        );
        // A file that grew while read never overflows the bar.
        assert!(line("f", 300, Some(200), 1.0).contains("[##############################] 100 %"));
    }

    #[test]
    fn bytes_and_rate_from_stdin() {
        assert_eq!(line("<stdin>", 3_000_000, None, 2.0), "reading <stdin>: 3 MB, 2 MB/s");
    }
}
