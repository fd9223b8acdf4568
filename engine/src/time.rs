//! UTC timestamps: the one textual form perf-sentinel reads and writes.
//!
//! Spans carry their start as an ISO-8601 UTC string (`2026-03-02T09:15:00.120Z`).
//! Detectors need instants, so [`parse_timestamp`] turns the string into
//! nanoseconds since the Unix epoch. Unlike the reference, which keeps only
//! milliseconds, every fraction digit the input has is kept: two spans that run
//! one after the other within the same millisecond stay sequential.

/// Nanoseconds in one millisecond.
pub const NANOS_PER_MS: i64 = 1_000_000;

/// Parses `YYYY-MM-DD(T| )HH:MM:SS[.fraction]Z` (1 to 9 fraction digits, year
/// 1970 or later, trailing `Z` required) into nanoseconds since the epoch.
///
/// Offsets such as `+02:00` are refused: `None` means "no usable instant", and
/// each caller documents its fallback.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v: i64 = 0;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let rest = &b[19..b.len() - 1];
    let mut frac_nanos: i64 = 0;
    if !rest.is_empty() {
        let digits = rest.strip_prefix(b".")?;
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // The place value of each fraction digit, tenths first.
        const PLACE: [i64; 9] = [100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];
        for (&c, place) in digits.iter().zip(PLACE) {
            frac_nanos += i64::from(c - b'0') * place;
        }
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(secs * 1_000_000_000 + frac_nanos)
}

/// Formats nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// truncating below the millisecond (the reference's canonical form).
/// Negative instants clamp to the epoch.
pub fn format_timestamp_ms(nanos: i64) -> String {
    timestamp_ms_compact(nanos).into_string()
}

/// [`format_timestamp_ms`] as an inline string: no allocation.
pub fn timestamp_ms_compact(nanos: i64) -> compact_str::CompactString {
    let nanos = nanos.max(0);
    let ms_total = nanos / NANOS_PER_MS;
    let secs = ms_total / 1000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    // Digits written in place: `format!` cost ten times as much, a tenth of
    // all the work of reading an OTLP file (docs/PERFORMANCE.md). An i64 of
    // nanoseconds ends in 2262, so the year always has four digits.
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, y),
        (5, 2, m),
        (8, 2, d),
        (11, 2, sod / 3600),
        (14, 2, (sod / 60) % 60),
        (17, 2, sod % 60),
        (20, 3, ms_total % 1000),
    ] {
        let mut v = value;
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    compact_str::CompactString::from(std::str::from_utf8(&text).unwrap_or_default())
}

/// `"000Z"` to `"999Z"`, four bytes each: the end of a timestamp by its
/// milliseconds.
const MILLIS: &str = {
    const BYTES: [u8; 4000] = {
        let mut out = [0u8; 4000];
        let mut ms = 0;
        while ms < 1000 {
            out[ms * 4] = b'0' + (ms / 100) as u8;
            out[ms * 4 + 1] = b'0' + (ms / 10 % 10) as u8;
            out[ms * 4 + 2] = b'0' + (ms % 10) as u8;
            out[ms * 4 + 3] = b'Z';
            ms += 1;
        }
        out
    };
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("the table is ASCII"),
    }
};

/// [`timestamp_ms_compact`] for a run of instants that mostly share their
/// second, as the spans of one request do: the date and time of day are
/// worked out once per second, and each instant adds its milliseconds.
#[derive(Debug, Default)]
pub struct TimestampWriter {
    /// The second last formatted and its text up to the `.` included.
    last: Option<(i64, compact_str::CompactString)>,
}

impl TimestampWriter {
    /// The same text as [`timestamp_ms_compact`].
    pub fn format(&mut self, nanos: i64) -> compact_str::CompactString {
        let ms_total = nanos.max(0) / NANOS_PER_MS;
        let secs = ms_total / 1000;
        let mut text = match &self.last {
            Some((s, prefix)) if *s == secs => prefix.clone(),
            _ => {
                let mut prefix = timestamp_ms_compact(nanos);
                prefix.truncate(20);
                self.last = Some((secs, prefix.clone()));
                prefix
            }
        };
        let ms = (ms_total % 1000) as usize;
        text.push_str(&MILLIS[ms * 4..ms * 4 + 4]);
        text
    }
}

/// UTC hour of day (0-23) and month (1-12) of an instant.
pub fn hour_and_month(nanos: i64) -> (u32, u32) {
    let secs = nanos.max(0) / 1_000_000_000;
    let (_, m, _) = civil_from_days(secs / 86_400);
    (((secs % 86_400) / 3600) as u32, m as u32)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let s = "2025-07-10T14:32:01.250Z";
        let n = parse_timestamp(s).unwrap();
        assert_eq!(n, 1_752_157_921_250_000_000);
        assert_eq!(format_timestamp_ms(n), s);
    }

    #[test]
    fn keeps_sub_millisecond_precision() {
        let a = parse_timestamp("2025-07-10T14:32:01.000100Z").unwrap();
        let b = parse_timestamp("2025-07-10T14:32:01.0009Z").unwrap();
        assert_eq!(b - a, 800_000);
        assert_eq!(
            parse_timestamp("2025-07-10 14:32:01.5Z").unwrap() % 1_000_000_000,
            500_000_000
        );
        // Every fraction length, one to nine digits.
        for n in 1..=9 {
            let digits = &"123456789"[..n];
            let nanos = parse_timestamp(&format!("2025-07-10T14:32:01.{digits}Z")).unwrap() % 1_000_000_000;
            assert_eq!(
                nanos,
                digits.parse::<i64>().unwrap() * 10_i64.pow(9 - n as u32),
                "{digits}"
            );
        }
    }

    #[test]
    fn refuses_offsets_and_old_years() {
        for bad in [
            "2025-07-10T14:32:01+02:00",
            "1969-12-31T23:59:59Z",
            "2025-02-30T00:00:00Z",
            "2025-07-10T14:32:01.Z",
            "2025-07-10T14:32:01.1234567891Z",
            "not a time",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_as_the_standard_formatter_would() {
        let reference = |nanos: i64| {
            let ms_total = nanos.max(0) / NANOS_PER_MS;
            let secs = ms_total / 1000;
            let (days, sod) = (secs / 86_400, secs % 86_400);
            let (y, m, d) = civil_from_days(days);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                sod / 3600,
                (sod / 60) % 60,
                sod % 60,
                ms_total % 1000
            )
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases = vec![
            i64::MIN,
            -1,
            0,
            1,
            999_999,
            1_000_000,
            951_782_400_000_000_000,
            i64::MAX,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x >> 1) as i64);
        }
        for nanos in cases {
            assert_eq!(format_timestamp_ms(nanos), reference(nanos), "{nanos}");
        }
        assert_eq!(format_timestamp_ms(i64::MAX), "2262-04-11T23:47:16.854Z");
    }

    #[test]
    fn the_writer_gives_what_the_formatter_gives() {
        // Runs within one second, steps to the next second and back, jumps,
        // clamped negatives and the extremes, in a seeded order.
        let mut cases = crate::testing::Cases::new(7);
        let mut writer = TimestampWriter::default();
        let mut nanos: i64 = 1_752_157_921_250_000_000;
        let fixed = [
            i64::MIN,
            -1,
            0,
            999_999,
            1_000_000,
            999_999_999,
            1_000_000_000,
            i64::MAX,
        ];
        for i in 0..50_000 {
            nanos = match cases.below(6) {
                0 | 1 => nanos.saturating_add(cases.below(3_000_000) as i64),
                2 => nanos.saturating_sub(cases.below(2_000_000_000) as i64),
                3 => nanos.saturating_add(cases.below(1 << 40) as i64),
                4 => fixed[i % fixed.len()],
                _ => {
                    (nanos / 1_000_000_000 * 1_000_000_000).saturating_add(999_000_000 + cases.below(2_000_000) as i64)
                }
            };
            assert_eq!(writer.format(nanos), timestamp_ms_compact(nanos), "{nanos}");
        }
    }

    #[test]
    fn hour_and_month_of_instant() {
        let n = parse_timestamp("2026-03-02T09:15:00Z").unwrap();
        assert_eq!(hour_and_month(n), (9, 3));
    }
}
