//! Timestamps on the two clocks every frame carries.

/// Nanoseconds on the given POSIX clock.
fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// CLOCK_MONOTONIC in nanoseconds: what latency is measured on.
pub fn monotonic_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch: wall time, for correlation.
pub fn realtime_ns() -> u64 {
    now_ns(libc::CLOCK_REALTIME)
}

/// The instant `realtime_ns` (nanoseconds since the epoch) as a [`jiff::Timestamp`]. Every
/// `u64` of nanoseconds (up to the year 2554) is within jiff's range, so this cannot fail.
pub fn timestamp(realtime_ns: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(realtime_ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// `2024-05-01 12:34:56.789` (UTC, milliseconds truncated), for overlays and sidecars.
pub fn format_utc(realtime_ns: u64) -> String {
    timestamp(realtime_ns).strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// `20240501T123456.789Z` (UTC, milliseconds truncated), for file names: sorts
/// chronologically, no `:`.
pub fn format_utc_compact(realtime_ns: u64) -> String {
    timestamp(realtime_ns).strftime("%Y%m%dT%H%M%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00.000");
        // 2024-02-29 23:59:58.123 UTC (a leap day).
        let ns = 1_709_251_198_123_000_000;
        assert_eq!(format_utc(ns), "2024-02-29 23:59:58.123");
        assert_eq!(format_utc_compact(ns), "20240229T235958.123Z");
        assert_eq!(format_utc_compact(0), "19700101T000000.000Z");
    }

    #[test]
    fn milliseconds_are_truncated_not_rounded() {
        // 1999-12-31 23:59:59.9999999 stays in 1999 (rounding would carry into the year 2000).
        let ns = 946_684_799_999_999_900;
        assert_eq!(format_utc(ns), "1999-12-31 23:59:59.999");
        assert_eq!(format_utc_compact(ns), "19991231T235959.999Z");
        // Whole seconds still print three digits.
        assert_eq!(format_utc(1_700_000_000_000_000_000), "2023-11-14 22:13:20.000");
    }

    #[test]
    fn the_largest_u64_instant_formats() {
        assert_eq!(format_utc(u64::MAX), "2554-07-21 23:34:33.709");
    }
}
