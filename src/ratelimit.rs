//! Rate limits as a sliding window log: the arithmetic is pure (explicit
//! `now`); the persisted check locks every involved window (in a fixed order)
//! and commits only when all admit, so concurrent processes are exact.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state;

/// The stored window of one key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Format version.
    #[serde(default)]
    pub schema_version: u32,
    /// Admitted calls (epoch s) inside the window.
    #[serde(default)]
    pub hits: Vec<f64>,
}

/// Drop hits outside `[now - window, now + window]` (the upper bound guards
/// against stamps from a clock that has since stepped back).
pub fn prune(w: &mut Window, window: f64, now: f64) {
    w.hits.retain(|t| now - t < window && *t <= now + window);
}

/// Would a call be admitted? `Ok(remaining after it)` or `Err(seconds to wait)`.
pub fn check(w: &Window, capacity: u32, window: f64, now: f64) -> std::result::Result<u32, f64> {
    let mut w = w.clone();
    prune(&mut w, window, now);
    let used = w.hits.len() as u32;
    if used < capacity {
        Ok(capacity - used - 1)
    } else {
        let oldest = w.hits.iter().copied().fold(f64::INFINITY, f64::min);
        Err((oldest + window - now).max(0.0))
    }
}

/// One limit to enforce.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Key (`role-<r>`, `tool-<t>`, `principal-<hash>`): the file
    /// `<key>.json` in the embedded store, `gathm:ratelimit:<key>` on Redis.
    pub key: String,
    /// The nominal limit (for headers and messages).
    pub limit: u32,
    /// Limit plus burst.
    pub capacity: u32,
}

/// The result of an admission check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admission {
    /// Admitted.
    pub allowed: bool,
    /// The tightest nominal limit involved.
    pub limit: u32,
    /// Calls left in the tightest window.
    pub remaining: u32,
    /// Seconds until the next call would be admitted (0 when allowed).
    pub retry_after: f64,
    /// Which key refused (when refused).
    pub key: Option<String>,
}

/// Admit one call against every limit atomically across processes, with
/// the windows stored as files in `dir`. A window that cannot be read or
/// written is an error: the caller refuses the call (fail closed).
pub fn admit(dir: &Path, limits: &[Limit], window: f64, now: f64) -> Result<Admission> {
    let mut adm = Admission {
        allowed: true,
        limit: u32::MAX,
        remaining: u32::MAX,
        retry_after: 0.0,
        key: None,
    };
    if limits.is_empty() {
        return Ok(adm);
    }
    let mut sorted: Vec<&Limit> = limits.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    // Lock every window in a fixed order, decide on all, commit only if all admit.
    admit_nested(dir, &sorted, window, now, &mut adm)?;
    Ok(adm)
}

fn window_file(dir: &Path, key: &str) -> std::path::PathBuf {
    dir.join(format!("{key}.json"))
}

/// Recursively hold each window's slot lock while deciding on the next, so
/// the decision and the commit are atomic across every window involved.
fn admit_nested(
    dir: &Path,
    limits: &[&Limit],
    window: f64,
    now: f64,
    adm: &mut Admission,
) -> Result<bool> {
    let Some((first, rest)) = limits.split_first() else {
        return Ok(adm.allowed);
    };
    state::update_slots(&window_file(dir, &first.key), |cur: Option<Window>| {
        let mut w = cur.unwrap_or_default();
        prune(&mut w, window, now);
        match check(&w, first.capacity, window, now) {
            Ok(rem) => {
                if rem < adm.remaining {
                    adm.remaining = rem;
                    adm.limit = first.limit;
                }
            }
            Err(wait) => {
                adm.allowed = false;
                adm.limit = first.limit;
                adm.remaining = 0;
                adm.retry_after = adm.retry_after.max(wait);
                adm.key = Some(first.key.clone());
            }
        }
        // Decide on the remaining windows while this one stays locked; an
        // inner window that cannot be used fails the whole admission.
        match admit_nested(dir, rest, window, now, adm) {
            Ok(true) if adm.allowed => {
                w.schema_version = 1;
                w.hits.push(now);
                (Some(w), Ok(true))
            }
            Ok(_) => (None, Ok(false)),
            Err(e) => (None, Err(e)),
        }
    })?
}

/// The current window of a key in `dir` (for status displays).
pub fn peek(dir: &Path, key: &str) -> Window {
    state::read_slots(&window_file(dir, key)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_admits_capacity_then_waits() {
        let mut w = Window::default();
        for i in 0..5 {
            let r = check(&w, 5, 60.0, 10.0 + i as f64).unwrap();
            assert_eq!(r, 4 - i);
            w.hits.push(10.0 + i as f64);
        }
        assert_eq!(check(&w, 5, 60.0, 20.0), Err(50.0));
        // It slides: the first hit leaves the window at t=70.
        assert_eq!(check(&w, 5, 60.0, 70.0), Ok(0));
    }

    #[test]
    fn future_stamps_are_dropped() {
        let mut w = Window {
            schema_version: 1,
            hits: vec![10_000.0; 5],
        };
        prune(&mut w, 60.0, 100.0);
        assert!(w.hits.is_empty());
    }

    #[test]
    fn admit_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = Limit {
            key: "a".into(),
            limit: 10,
            capacity: 10,
        };
        let b = Limit {
            key: "b".into(),
            limit: 1,
            capacity: 1,
        };
        let d = dir.path();
        assert!(
            admit(d, &[a.clone(), b.clone()], 60.0, 1.0)
                .unwrap()
                .allowed
        );
        let second = admit(d, &[a.clone(), b.clone()], 60.0, 2.0).unwrap();
        assert!(!second.allowed);
        assert_eq!(second.retry_after, 59.0);
        assert_eq!(second.key.as_deref(), Some("b"));
        let w: Window = peek(d, "a");
        assert_eq!(w.hits.len(), 1, "a refused call consumes nothing");
    }

    #[test]
    fn a_window_that_cannot_be_written_fails_the_admission() {
        let dir = tempfile::tempdir().unwrap();
        // `b.json.lock` cannot be created: `b.json.lock` is a directory
        // with a child, so neither open nor replace works.
        std::fs::create_dir_all(dir.path().join("b.json.lock").join("x")).unwrap();
        let l = |k: &str| Limit {
            key: k.into(),
            limit: 5,
            capacity: 5,
        };
        assert!(admit(dir.path(), &[l("a"), l("b")], 60.0, 1.0).is_err());
        assert!(peek(dir.path(), "a").hits.is_empty(), "nothing consumed");
    }
}
