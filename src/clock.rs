//! Wall-clock helpers: epoch seconds and RFC 3339 timestamps, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as a float (millisecond precision is kept).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Format epoch seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). Written digit
/// by digit: every run and log line takes a timestamp, and `format!` cost
/// ten times as much.
pub fn rfc3339(epoch: f64) -> String {
    with_rfc3339(epoch, str::to_owned)
}

/// [`rfc3339`] lent to `f` instead of returned: no allocation for a
/// timestamp that is only written into a record (years 0 to 9999).
pub fn with_rfc3339<R>(epoch: f64, f: impl FnOnce(&str) -> R) -> R {
    // The date and time of the last second are kept per thread: a run's
    // records take several timestamps within one second.
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 24])> =
            const { std::cell::Cell::new((i64::MIN, [0; 24])) };
    }
    let put = |b: &mut [u8; 24], at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    let total_ms = (epoch * 1000.0).round() as i64;
    let ms = total_ms.rem_euclid(1000);
    let secs = total_ms.div_euclid(1000);
    let mut b = match LAST.get() {
        (s, b) if s == secs => b,
        _ => {
            let days = secs.div_euclid(86_400);
            let sod = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            if !(0..=9999).contains(&y) {
                return f(&format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                    sod / 3600,
                    (sod % 3600) / 60,
                    sod % 60
                ));
            }
            let mut b = *b"0000-00-00T00:00:00.000Z";
            put(&mut b, 0, 4, y);
            put(&mut b, 5, 2, i64::from(m));
            put(&mut b, 8, 2, i64::from(d));
            put(&mut b, 11, 2, sod / 3600);
            put(&mut b, 14, 2, (sod % 3600) / 60);
            put(&mut b, 17, 2, sod % 60);
            LAST.set((secs, b));
            b
        }
    };
    put(&mut b, 20, 3, ms);
    // ASCII digits and separators only.
    f(std::str::from_utf8(&b).unwrap_or_default())
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The one run and job identifier: a UUID v7 (time-ordered, 74 random bits,
/// safe across processes and machines) as 32 hex digits, the reference's
/// id format.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_881_600.25), "2026-11-28T16:00:00.250Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(253_402_300_799.999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1.0), "1969-12-31T23:59:59.000Z");
        // The same second again (the kept date and time), then another.
        assert_eq!(rfc3339(1_795_881_600.75), "2026-11-28T16:00:00.750Z");
        assert_eq!(rfc3339(1_795_881_600.0), "2026-11-28T16:00:00.000Z");
        assert_eq!(rfc3339(1_795_881_601.5), "2026-11-28T16:00:01.500Z");
    }

    #[test]
    fn ids_are_unique() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a < b, "time-ordered: {a} < {b}");
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
    }
}
