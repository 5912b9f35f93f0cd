//! Times in the journal and the timeline, as people read them.

use vfguard_model::Millis;

/// A time for people: UTC date and time when it is wall-clock (a daemon's), seconds since the
/// start, right-aligned, when it is a simulation's virtual clock (anything before 2001).
pub fn at(ms: Millis) -> String {
    const WALL_CLOCK_FROM: Millis = 1_000_000_000_000;
    if ms < WALL_CLOCK_FROM {
        return format!("{:>9.3}s", ms as f64 / 1000.0);
    }
    let days = i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX);
    let rem = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::at as secs;

    #[test]
    fn wall_clock_times_are_utc_and_virtual_times_are_seconds() {
        assert_eq!(secs(1_795_981_799_191), "2026-11-29T19:49:59.191Z");
        assert_eq!(secs(1_000_000_000_000), "2001-09-09T01:46:40.000Z");
        assert_eq!(secs(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(secs(12_345), "   12.345s");
    }
}
