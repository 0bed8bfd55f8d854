//! Cron expressions in a time zone (`croner` over `jiff`): next fire times
//! and the slots due between two instants. Pure: every function takes the
//! instants it works from. DST follows croner's documented rules: in a gap
//! (spring forward) a fixed-time job runs at the first valid time after the
//! gap and interval jobs skip the missing times; in a repeat (fall back) a
//! fixed-time job runs once, interval jobs run in both.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds};
use jiff::{Timestamp, Zoned, tz::TimeZone};

/// A parsed cron expression and the zone its fields are read in.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
    zone: TimeZone,
}

/// The most slots one call lists (a bound on catch-up after long downtime
/// and on `schedule next -n`).
pub const MAX_SLOTS: usize = 10_000;

impl Cron {
    /// Parse `expr` (5 fields, 6 with seconds first, or `@hourly` …) in the
    /// IANA zone `zone`.
    pub fn parse(expr: &str, zone: &str) -> Result<Cron, String> {
        let zone = TimeZone::get(zone).map_err(|e| format!("time zone {zone:?}: {e}"))?;
        let expr = expr.trim();
        if expr.is_empty() {
            return Err("empty expression".into());
        }
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), found {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .or_else(|_| croner::Cron::from_str(expr))
            .map_err(|e| e.to_string())?;
        Ok(Cron { cron, zone })
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|n: Zoned| n.timestamp())
    }

    /// The next `n` fire times strictly after `t` (at most `MAX_SLOTS`).
    pub fn upcoming(&self, t: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut at = t;
        while out.len() < n.min(MAX_SLOTS) {
            match self.next_after(at) {
                Some(x) if x > at => {
                    out.push(x);
                    at = x;
                }
                _ => break,
            }
        }
        out
    }

    /// The fire times in `(after, upto]`, oldest first, at most `MAX_SLOTS`
    /// (the newest ones are kept when there are more).
    pub fn between(&self, after: Timestamp, upto: Timestamp) -> Vec<Timestamp> {
        let mut out = std::collections::VecDeque::new();
        let mut at = after;
        while let Some(x) = self.next_after(at) {
            if x > upto || x <= at {
                break;
            }
            if out.len() == MAX_SLOTS {
                out.pop_front();
            }
            out.push_back(x);
            at = x;
        }
        out.into()
    }

    /// The latest fire time at or before `t`, searching back at most `within`
    /// seconds.
    pub fn latest_at_or_before(&self, t: Timestamp, within: f64) -> Option<Timestamp> {
        let from = t
            .checked_sub(jiff::SignedDuration::from_secs_f64(within.max(0.0)))
            .ok()?;
        // Step back one second so a slot exactly at `from` counts.
        let from = from.checked_sub(jiff::SignedDuration::from_secs(1)).ok()?;
        self.between(from, t).last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_fire_times_table() {
        // (expression, zone, after, expected next) — UTC instants.
        let table = [
            (
                "0 3 * * *",
                "UTC",
                "2026-11-30T10:00:00Z",
                "2026-12-01T03:00:00Z",
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-11-30T10:07:00Z",
                "2026-11-30T10:15:00Z",
            ),
            (
                "@hourly",
                "UTC",
                "2026-11-30T10:00:00Z",
                "2026-11-30T11:00:00Z",
            ),
            (
                "@daily",
                "UTC",
                "2026-11-30T10:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                "30 * * * * *",
                "UTC",
                "2026-11-30T10:00:00Z",
                "2026-11-30T10:00:30Z",
            ),
            (
                "0 9 * * 1",
                "UTC",
                "2026-11-30T10:00:00Z",
                "2026-12-07T09:00:00Z",
            ),
            // 03:00 in Paris is 02:00 UTC in winter (CET, +01:00).
            (
                "0 3 * * *",
                "Europe/Paris",
                "2026-11-30T10:00:00Z",
                "2026-12-01T02:00:00Z",
            ),
            // New York, 9:00 local: EST (-05:00) in December.
            (
                "0 9 * * *",
                "America/New_York",
                "2026-12-01T00:00:00Z",
                "2026-12-01T14:00:00Z",
            ),
            // Spring forward in Paris: 2027-03-28 02:00 -> 03:00. A job at
            // 02:30 local runs at the first valid time after the gap (03:00
            // CEST = 01:00 UTC).
            (
                "30 2 * * *",
                "Europe/Paris",
                "2027-03-27T12:00:00Z",
                "2027-03-28T01:00:00Z",
            ),
            // Fall back in Paris: 2026-10-25 03:00 -> 02:00. A fixed job at
            // 02:30 local runs once (the first 02:30, CEST = 00:30 UTC).
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-24T12:00:00Z",
                "2026-10-25T00:30:00Z",
            ),
        ];
        for (expr, zone, after, want) in table {
            let c = Cron::parse(expr, zone).unwrap();
            assert_eq!(
                c.next_after(ts(after)),
                Some(ts(want)),
                "{expr} in {zone} after {after}"
            );
        }
        // The repeated 02:30 does not run a second time that night.
        let c = Cron::parse("30 2 * * *", "Europe/Paris").unwrap();
        let n = c.upcoming(ts("2026-10-24T12:00:00Z"), 2);
        assert_eq!(
            n,
            vec![ts("2026-10-25T00:30:00Z"), ts("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn slots_between_and_latest() {
        let c = Cron::parse("*/10 * * * *", "UTC").unwrap();
        let s = c.between(ts("2026-11-30T10:00:00Z"), ts("2026-11-30T10:35:00Z"));
        assert_eq!(
            s,
            vec![
                ts("2026-11-30T10:10:00Z"),
                ts("2026-11-30T10:20:00Z"),
                ts("2026-11-30T10:30:00Z")
            ]
        );
        assert_eq!(
            c.latest_at_or_before(ts("2026-11-30T10:30:00Z"), 60.0),
            Some(ts("2026-11-30T10:30:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(ts("2026-11-30T10:35:00Z"), 60.0),
            None
        );
        // Bounded after very long downtime.
        let every_second = Cron::parse("* * * * * *", "UTC").unwrap();
        let s = every_second.between(ts("2026-11-30T00:00:00Z"), ts("2026-11-30T10:00:00Z"));
        assert_eq!(s.len(), MAX_SLOTS);
        assert_eq!(*s.last().unwrap(), ts("2026-11-30T10:00:00Z"));
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(
            Cron::parse("0 3 * *", "UTC")
                .unwrap_err()
                .contains("5 fields")
        );
        assert!(Cron::parse("61 * * * *", "UTC").is_err());
        assert!(
            Cron::parse("@daily", "Nowhere/City")
                .unwrap_err()
                .contains("time zone")
        );
        assert!(Cron::parse("", "UTC").is_err());
    }
}
