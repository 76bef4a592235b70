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

/// CPU time this process has used so far (all threads, user + system), in nanoseconds: what
/// capture's per-frame CPU cost is measured on.
pub fn process_cpu_ns() -> u64 {
    now_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Civil UTC date and time of `realtime_ns` (nanoseconds since the epoch):
/// `(year, month, day, hour, minute, second, millisecond)`.
pub fn utc_parts(realtime_ns: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = (realtime_ns / 1_000_000_000) as i64;
    let millis = ((realtime_ns / 1_000_000) % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, of_day / 3600, of_day / 60 % 60, of_day % 60, millis)
}

/// `2024-05-01 12:34:56.789` (UTC), for overlays and logs.
pub fn format_utc(realtime_ns: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(realtime_ns);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03}")
}

/// `20240501T123456.789Z` (UTC), for file names: sorts chronologically, no `:`.
pub fn format_utc_compact(realtime_ns: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(realtime_ns);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{ms:03}Z")
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
    }
}
