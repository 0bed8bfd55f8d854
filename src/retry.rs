//! Retries: the one `retry` setting of a manifest and of a pipeline step, the
//! backoff arithmetic (pure, jitter passed in), and the one cancellable
//! backoff sleep.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::runner::{self, Cancel};

/// `retry: {attempts, delay, backoff, max_delay, on_exit_codes}` in a
/// `tool.yaml` or a pipeline step. Defaults: 1 attempt (no retry), 1 s delay
/// doubling up to 30 s, any counted failure retried. Unknown keys are an
/// error: a misspelt retry setting must not silently mean "no retry".
#[derive(
    utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts (1 = no retry).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    #[schema(minimum = 1, maximum = 100)]
    pub attempts: u32,
    /// Seconds before the first retry.
    #[serde(default = "one_f")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub delay: f64,
    /// Multiplier per retry.
    #[serde(default = "two_f")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub backoff: f64,
    /// Cap on one delay, seconds.
    #[serde(default = "thirty_f")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub max_delay: f64,
    /// Only retry these exit codes (124 = timeout); empty: any counted failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_exit_codes: Vec<i32>,
}

fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn two_f() -> f64 {
    2.0
}
fn thirty_f() -> f64 {
    30.0
}

/// The most attempts a setting may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// The longest delay, in seconds, a setting may ask for (one day).
pub const MAX_DELAY: f64 = 86_400.0;

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            delay: 1.0,
            backoff: 2.0,
            max_delay: 30.0,
            on_exit_codes: Vec::new(),
        }
    }
}

impl Retry {
    /// What is wrong with the setting, if anything (the one check shared by
    /// `validate`, `run` and pipelines).
    pub fn problem(&self) -> Option<String> {
        if self.attempts == 0 || self.attempts > MAX_ATTEMPTS {
            Some(format!(
                "retry.attempts must be 1 to {MAX_ATTEMPTS}, not {}",
                self.attempts
            ))
        } else if !(self.delay.is_finite() && (0.0..=MAX_DELAY).contains(&self.delay)) {
            Some(format!(
                "retry.delay must be a number of seconds from 0 to {MAX_DELAY}, not {}",
                self.delay
            ))
        } else if !(self.backoff.is_finite() && (1.0..=100.0).contains(&self.backoff)) {
            Some(format!(
                "retry.backoff must be from 1 to 100, not {}",
                self.backoff
            ))
        } else if !(self.max_delay.is_finite() && (0.0..=MAX_DELAY).contains(&self.max_delay)) {
            Some(format!(
                "retry.max_delay must be a number of seconds from 0 to {MAX_DELAY}, not {}",
                self.max_delay
            ))
        } else {
            None
        }
    }

    /// Whether a failure with `exit_code` may be retried under this setting
    /// (the caller has already ruled out refusals and interruptions).
    pub fn retries_exit(&self, exit_code: i32) -> bool {
        self.on_exit_codes.is_empty() || self.on_exit_codes.contains(&exit_code)
    }

    /// Seconds to wait before attempt `try_n + 1`; `jitter` in 0..=1.
    pub fn delay_after(&self, try_n: u32, jitter: f64) -> f64 {
        backoff_delay(self.delay, self.backoff, self.max_delay, try_n, jitter)
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, capped.
pub fn backoff_delay(delay: f64, backoff: f64, max_delay: f64, try_n: u32, jitter: f64) -> f64 {
    let exp = i32::try_from(try_n.saturating_sub(1)).unwrap_or(i32::MAX);
    let base = (delay * backoff.powi(exp)).min(max_delay);
    let base = if base.is_finite() { base.max(0.0) } else { 0.0 };
    base / 2.0 + base / 2.0 * jitter.clamp(0.0, 1.0)
}

/// A jitter in 0..=1 derived from a run id and an attempt number (so a retry
/// schedule is reproducible from the audit log).
pub fn jitter(seed: &str, n: u32) -> f64 {
    let h = blake3::hash(format!("{seed}{n}").as_bytes());
    f64::from(h.as_bytes()[0]) / 255.0
}

/// The end of a wait of `seconds` (clamped to 0..=MAX_DELAY; not finite: 0).
fn wait_until(seconds: f64) -> Instant {
    let secs = if seconds.is_finite() {
        seconds.clamp(0.0, MAX_DELAY)
    } else {
        0.0
    };
    Instant::now() + Duration::from_secs_f64(secs)
}

/// What is left of a wait, looked at every 25 ms at most: `None` when it
/// was cut short by Ctrl-C or `cancel`.
fn left(until: Instant, cancel: &Cancel) -> Option<Duration> {
    if runner::interrupted() || cancel.is_cancelled() {
        return None;
    }
    Some(
        until
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(25)),
    )
}

/// Sleep `seconds`, waking every 25 ms to check for Ctrl-C or `cancel`.
/// Returns `false` if the sleep was cut short.
pub fn sleep(seconds: f64, cancel: &Cancel) -> bool {
    let until = wait_until(seconds);
    loop {
        match left(until, cancel) {
            None => return false,
            Some(d) if d.is_zero() => return true,
            Some(d) => std::thread::sleep(d),
        }
    }
}

/// [`sleep`] on a tokio runtime (the thread is not blocked).
pub async fn pause(seconds: f64, cancel: &Cancel) -> bool {
    let until = wait_until(seconds);
    loop {
        match left(until, cancel) {
            None => return false,
            Some(d) if d.is_zero() => return true,
            Some(d) => tokio::time::sleep(d).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 1, 1.0), 1.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 3, 1.0), 4.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 10, 1.0), 30.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 3, 0.0), 2.0);
        assert_eq!(backoff_delay(1.0, 100.0, 30.0, u32::MAX, 1.0), 30.0);
    }

    #[test]
    fn one_setting_parses_the_same_in_a_manifest_and_a_step() {
        let r: Retry = serde_saphyr::from_str("{attempts: 3, delay: 0.5}").unwrap();
        assert_eq!(
            r,
            Retry {
                attempts: 3,
                delay: 0.5,
                ..Retry::default()
            }
        );
        assert!(serde_saphyr::from_str::<Retry>("{atempts: 3}").is_err());
        assert!(r.problem().is_none());
        assert!(
            Retry {
                attempts: 0,
                ..r.clone()
            }
            .problem()
            .is_some()
        );
        assert!(
            Retry {
                delay: 1e300,
                ..r.clone()
            }
            .problem()
            .is_some()
        );
        assert!(
            Retry {
                backoff: f64::NAN,
                ..r.clone()
            }
            .problem()
            .is_some()
        );
        assert!(r.retries_exit(7));
        let only = Retry {
            on_exit_codes: vec![124],
            ..r
        };
        assert!(only.retries_exit(124) && !only.retries_exit(1));
    }

    #[test]
    fn sleep_stops_on_cancel() {
        let c = Cancel::default();
        c.cancel();
        let t = Instant::now();
        assert!(!sleep(10.0, &c));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(sleep(0.0, &Cancel::default()));
    }
}
