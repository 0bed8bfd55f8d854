//! The per-tool circuit breaker: a pure state machine over an explicit `now`
//! (epoch seconds), plus thin persisted wrappers over `state`.
//!
//! closed --(threshold consecutive counted failures)--> open
//! open --(recovery_timeout elapsed)--> half-open (derived, never stored)
//! half-open: exactly one caller holds the probe lease; success closes,
//! failure re-opens. A lease expires, so a crashed probe never wedges it.
//! Timestamps are wall-clock; a stamp far in the future (the clock stepped
//! back) counts as elapsed rather than blocking for the size of the step.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state::{self, Durability};

/// Stored phase (half-open is derived from time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Calls pass.
    #[default]
    Closed,
    /// Calls are refused until the recovery timeout.
    Open,
}

/// The half-open probe lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Run id of the prober.
    pub holder: String,
    /// When it was granted (epoch s).
    pub granted_at: f64,
    /// How long it lasts (s).
    pub ttl: f64,
}

/// The persisted record of one tool's breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// File format version.
    #[serde(default = "one")]
    pub schema_version: u32,
    /// Stored phase.
    #[serde(default)]
    pub state: Phase,
    /// Consecutive counted failures.
    #[serde(default)]
    pub failures: u32,
    /// Counted failures ever recorded.
    #[serde(default)]
    pub total_failures: u64,
    /// When it last opened (epoch s).
    #[serde(default)]
    pub opened_at: Option<f64>,
    /// Last counted failure (epoch s).
    #[serde(default)]
    pub last_failure: Option<f64>,
    /// The current probe lease, if any.
    #[serde(default)]
    pub probe: Option<Lease>,
}

fn one() -> u32 {
    1
}

impl Default for Record {
    fn default() -> Record {
        Record {
            schema_version: 1,
            state: Phase::Closed,
            failures: 0,
            total_failures: 0,
            opened_at: None,
            last_failure: None,
            probe: None,
        }
    }
}

/// Thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Consecutive counted failures that open the circuit.
    pub threshold: u32,
    /// Seconds before a probe is allowed.
    pub recovery_timeout: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            threshold: 3,
            recovery_timeout: 60.0,
        }
    }
}

/// What a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum View {
    /// Calls pass.
    Closed,
    /// Refused for `retry_in` more seconds.
    Open {
        /// Seconds until a probe is allowed.
        retry_in: f64,
    },
    /// A probe may run (or is running).
    HalfOpen {
        /// A live lease is held by someone.
        probing: bool,
    },
}

impl View {
    /// `closed`, `open` or `half_open`.
    pub fn name(&self) -> &'static str {
        match self {
            View::Closed => "closed",
            View::Open { .. } => "open",
            View::HalfOpen { .. } => "half_open",
        }
    }
}

/// The decision at the gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// Closed: run.
    Allow,
    /// Half-open and this caller holds the probe lease: run.
    Probe,
    /// Refused; a probe may be possible in `retry_in` seconds.
    Reject {
        /// Seconds until a probe could be allowed.
        retry_in: f64,
    },
}

fn lease_live(l: &Lease, now: f64) -> bool {
    now >= l.granted_at - 1.0 && now < l.granted_at + l.ttl
}

fn remaining_open(r: &Record, cfg: Config, now: f64) -> f64 {
    let opened = r.opened_at.unwrap_or(0.0);
    let elapsed = now - opened;
    if elapsed < -cfg.recovery_timeout.max(1.0) {
        // The clock stepped back a long way: don't block for the size of the step.
        return 0.0;
    }
    (cfg.recovery_timeout - elapsed).max(0.0)
}

/// The state as seen at `now`.
pub fn view(r: &Record, cfg: Config, now: f64) -> View {
    match r.state {
        Phase::Closed => View::Closed,
        Phase::Open => {
            let left = remaining_open(r, cfg, now);
            if left > 0.0 {
                View::Open { retry_in: left }
            } else {
                View::HalfOpen {
                    probing: r.probe.as_ref().is_some_and(|l| lease_live(l, now)),
                }
            }
        }
    }
}

/// Decide whether a call may run; returns the new record if it must be stored.
pub fn gate(
    r: &Record,
    cfg: Config,
    now: f64,
    holder: &str,
    lease_ttl: f64,
) -> (Gate, Option<Record>) {
    match view(r, cfg, now) {
        View::Closed => (Gate::Allow, None),
        View::Open { retry_in } => (Gate::Reject { retry_in }, None),
        View::HalfOpen { probing: true } => {
            let l = r
                .probe
                .as_ref()
                .map(|l| l.granted_at + l.ttl - now)
                .unwrap_or(1.0);
            (
                Gate::Reject {
                    retry_in: l.max(0.0),
                },
                None,
            )
        }
        View::HalfOpen { probing: false } => {
            let mut next = r.clone();
            next.probe = Some(Lease {
                holder: holder.to_string(),
                granted_at: now,
                ttl: lease_ttl,
            });
            (Gate::Probe, Some(next))
        }
    }
}

/// Record a success; `None` when nothing needs to be written (healthy tool).
pub fn on_success(r: &Record) -> Option<Record> {
    if r.state == Phase::Closed && r.failures == 0 && r.probe.is_none() {
        return None;
    }
    Some(Record {
        state: Phase::Closed,
        failures: 0,
        opened_at: None,
        probe: None,
        ..r.clone()
    })
}

/// Record a counted failure.
pub fn on_failure(r: &Record, cfg: Config, now: f64) -> Record {
    let mut next = r.clone();
    next.failures = r.failures.saturating_add(1);
    next.total_failures = r.total_failures.saturating_add(1);
    next.last_failure = Some(now);
    next.probe = None;
    if next.failures >= cfg.threshold {
        next.state = Phase::Open;
        next.opened_at = Some(now);
    }
    next
}

/// Read a tool's breaker record without locking (writes are atomic renames).
pub fn load(path: &Path) -> Result<Record> {
    Ok(state::read_json(path)?.unwrap_or_default())
}

/// The gate, persisted: closed breakers cost one read and no lock.
/// Also says whether the record was clean: closed, and a success would
/// change nothing in it.
pub fn gate_at(
    path: &Path,
    cfg: Config,
    now: f64,
    holder: &str,
    lease_ttl: f64,
) -> Result<(Gate, bool)> {
    let r = load(path)?;
    if view(&r, cfg, now) == View::Closed {
        return Ok((Gate::Allow, on_success(&r).is_none()));
    }
    state::update_json(path, Durability::Atomic, |cur: Option<Record>| {
        let cur = cur.unwrap_or_default();
        let (g, next) = gate(&cur, cfg, now, holder, lease_ttl);
        (next, (g, false))
    })
}

/// Record an outcome, persisted. A success on a healthy tool writes nothing.
pub fn record_at(path: &Path, cfg: Config, now: f64, success: bool) -> Result<Record> {
    if success {
        let r = load(path)?;
        if on_success(&r).is_none() {
            return Ok(r);
        }
    }
    state::update_json(path, Durability::Atomic, |cur: Option<Record>| {
        let cur = cur.unwrap_or_default();
        let next = if success {
            on_success(&cur).unwrap_or(cur)
        } else {
            on_failure(&cur, cfg, now)
        };
        (Some(next.clone()), next)
    })
}

/// Give up a probe lease without an outcome (an uncounted result).
pub fn release_at(path: &std::path::Path, holder: &str) -> Result<()> {
    state::update_json(path, Durability::Atomic, |cur: Option<Record>| {
        let mut cur = cur.unwrap_or_default();
        if cur.probe.as_ref().is_some_and(|l| l.holder == holder) {
            cur.probe = None;
            (Some(cur), ())
        } else {
            (None, ())
        }
    })
}

/// Reset to closed.
pub fn reset_at(path: &Path) -> Result<()> {
    state::update_json(path, Durability::Atomic, |cur: Option<Record>| {
        let cur = cur.unwrap_or_default();
        (
            Some(Record {
                state: Phase::Closed,
                failures: 0,
                opened_at: None,
                probe: None,
                ..cur
            }),
            (),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: Config = Config {
        threshold: 3,
        recovery_timeout: 60.0,
    };

    fn fail_n(n: u32, at: f64) -> Record {
        (0..n).fold(Record::default(), |r, _| on_failure(&r, CFG, at))
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        assert_eq!(view(&fail_n(2, 100.0), CFG, 100.0), View::Closed);
        let r = fail_n(3, 100.0);
        assert_eq!(view(&r, CFG, 100.0), View::Open { retry_in: 60.0 });
        assert!(matches!(
            gate(&r, CFG, 130.0, "a", 10.0).0,
            Gate::Reject { .. }
        ));
    }

    #[test]
    fn success_resets_the_count() {
        let r = fail_n(2, 1.0);
        let r = on_success(&r).unwrap();
        assert_eq!(r.failures, 0);
        assert_eq!(r.total_failures, 2);
        assert_eq!(on_success(&r), None, "a healthy success writes nothing");
        assert_eq!(view(&on_failure(&r, CFG, 2.0), CFG, 2.0), View::Closed);
    }

    #[test]
    fn half_open_grants_exactly_one_probe_lease() {
        let r = fail_n(3, 0.0);
        let (g, next) = gate(&r, CFG, 61.0, "a", 10.0);
        assert_eq!(g, Gate::Probe);
        let next = next.unwrap();
        assert!(matches!(
            gate(&next, CFG, 62.0, "b", 10.0).0,
            Gate::Reject { .. }
        ));
        // The lease expires: a crashed prober does not wedge the breaker.
        assert_eq!(gate(&next, CFG, 72.0, "c", 10.0).0, Gate::Probe);
        // Probe outcomes.
        assert_eq!(on_success(&next).unwrap().state, Phase::Closed);
        let reopened = on_failure(&next, CFG, 63.0);
        assert_eq!(view(&reopened, CFG, 63.0), View::Open { retry_in: 60.0 });
    }

    #[test]
    fn clock_step_back_does_not_block_forever() {
        let r = fail_n(3, 10_000.0);
        // Clock stepped back by an hour.
        assert!(matches!(
            view(&r, CFG, 10_000.0 - 3600.0),
            View::HalfOpen { .. }
        ));
        // A small step back still waits.
        assert!(matches!(view(&r, CFG, 9_990.0), View::Open { .. }));
    }

    #[test]
    fn random_sequences_keep_invariants() {
        // A small deterministic pseudo-random walk over outcomes and time.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut r = Record::default();
        let mut now = 0.0;
        let mut consecutive = 0u32;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            now += (seed % 50) as f64;
            match gate(&r, CFG, now, "x", 5.0) {
                (Gate::Reject { .. }, _) => {
                    assert_eq!(r.state, Phase::Open);
                    continue;
                }
                (_, next) => {
                    if let Some(n) = next {
                        r = n;
                    }
                }
            }
            if seed.is_multiple_of(3) {
                r = on_success(&r).unwrap_or(r);
                consecutive = 0;
            } else {
                r = on_failure(&r, CFG, now);
                consecutive += 1;
            }
            assert_eq!(r.failures, consecutive);
            assert_eq!(r.state == Phase::Open, consecutive >= CFG.threshold);
            assert!(r.probe.is_none());
        }
    }
}
