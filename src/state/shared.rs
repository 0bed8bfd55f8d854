//! The state that a fleet shares: circuit breakers, rate-limit windows and
//! concurrency-group slots, behind one trait with two backends:
//!
//! - [`Local`]: files under `GATHM_HOME` (the embedded default; exact across
//!   the processes of one machine);
//! - `fleet::RedisShared`: one Redis for many machines (`GATHM_STATE_URL`),
//!   each operation one atomic server-side script on Redis's clock.
//!
//! [`Context::shared`](crate::config::Context::shared) picks the backend.
//! Callers decide what an error means, and the rules are the same for both
//! backends: rate limits and group slots fail closed (the run is refused and
//! says why); a breaker that cannot be read or written degrades with a
//! warning. `GATHM_STATE_FALLBACK=local` wraps Redis in [`Fallback`], which
//! uses the embedded store (with a warning) while Redis is unreachable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::breaker::{self, Config, Gate, Record};
use crate::clock;
use crate::error::{Error, Result};
use crate::ratelimit::{self, Admission, Limit};
use crate::state::groups::{self, Refusal, Slot, Wait};

/// Which backend holds the shared state, for `gathm status` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backend {
    /// `local` or `redis`.
    pub kind: &'static str,
    /// Where: the home directory, or the Redis URL without its password.
    pub location: String,
    /// Falls back to the embedded store while Redis is unreachable.
    pub fallback: bool,
}

/// One concurrency group to take a slot of.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// Name (`tool.<name>` for a tool's own `max_concurrency`).
    pub name: String,
    /// Slots.
    pub max: u32,
    /// Waiters allowed.
    pub queue: u32,
}

/// The shared-state operations (see the module doc for the error rules).
pub trait SharedState: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Whether the backend answers now (`gathm status`, `/readyz`).
    fn ping(&self) -> Result<()>;
    /// The backend's clock (Redis's `TIME`; the local clock for files), for
    /// views of records it wrote.
    fn now(&self) -> Result<f64>;
    /// The breaker gate of `tool` (`breaker::gate`), atomically.
    fn breaker_gate(&self, tool: &str, cfg: Config, holder: &str, lease_ttl: f64) -> Result<Gate>;
    /// Record an outcome of `tool`, atomically.
    fn breaker_record(&self, tool: &str, cfg: Config, success: bool) -> Result<Record>;
    /// Give up a half-open probe lease.
    fn breaker_release(&self, tool: &str, holder: &str) -> Result<()>;
    /// Reset `tool`'s breaker to closed.
    fn breaker_reset(&self, tool: &str) -> Result<()>;
    /// `tool`'s stored breaker record (default: closed).
    fn breaker_read(&self, tool: &str) -> Result<Record>;
    /// The tools that have a stored breaker record.
    fn breaker_names(&self) -> Result<Vec<String>>;
    /// Admit one call against every limit, all or nothing.
    fn admit(&self, limits: &[Limit], window: f64) -> Result<Admission>;
    /// Take a slot of a concurrency group, waiting in FIFO order as `wait`
    /// says; `on_wait` is called once if the caller has to wait.
    fn group_acquire(
        &self,
        group: &GroupSpec,
        wait: &Wait,
        on_wait: &mut dyn FnMut(),
    ) -> std::result::Result<Slot, Refusal>;
    /// Slots held and runs waiting in a group.
    fn group_occupancy(&self, group: &GroupSpec) -> Result<(u32, usize)>;
}

/// Tools whose last gate in this process found a clean closed record and
/// that no failure was recorded for since, counted per gate: their successes
/// need no write, nor even a read (a success changes nothing on a clean
/// record; a concurrent failure elsewhere is ordered after it, as if this
/// success had been recorded at the gate). Both backends keep one.
#[derive(Debug, Default)]
pub struct CleanGates(Mutex<HashMap<String, u32>>);

impl CleanGates {
    /// A gate of `tool` found its record clean, or not.
    pub fn gated(&self, tool: &str, clean: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if clean {
            *map.entry(tool.to_string()).or_default() += 1;
        } else {
            map.remove(tool);
        }
    }

    /// Whether an outcome of `tool` must be recorded: a success after a
    /// clean gate need not (and uses that gate up); a failure must, and
    /// forgets every clean gate of the tool.
    pub fn must_record(&self, tool: &str, success: bool) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(tool) {
            Some(n) if success => {
                *n -= 1;
                if *n == 0 {
                    map.remove(tool);
                }
                false
            }
            Some(_) => {
                map.remove(tool);
                true
            }
            None => true,
        }
    }
}

/// The embedded store: files under `GATHM_HOME`.
#[derive(Debug, Clone)]
pub struct Local {
    /// `$GATHM_HOME/health` (breaker files `cb_<tool>.json`).
    pub health: PathBuf,
    /// `$GATHM_HOME/ratelimit`.
    pub ratelimit: PathBuf,
    /// `$GATHM_HOME/groups`.
    pub groups: PathBuf,
    /// Successes on a clean record are not read back (shared by clones).
    pub clean: Arc<CleanGates>,
}

impl Local {
    /// The embedded store of a home.
    pub fn new(home: &crate::home::Home) -> Local {
        Local {
            health: home.health.clone(),
            ratelimit: home.ratelimit.clone(),
            groups: home.root.join("groups"),
            clean: Arc::default(),
        }
    }

    fn breaker_file(&self, tool: &str) -> PathBuf {
        self.health.join(format!("cb_{tool}.json"))
    }
}

impl SharedState for Local {
    fn backend(&self) -> Backend {
        Backend {
            kind: "local",
            location: self
                .health
                .parent()
                .unwrap_or(&self.health)
                .display()
                .to_string(),
            fallback: false,
        }
    }
    fn ping(&self) -> Result<()> {
        Ok(())
    }
    fn now(&self) -> Result<f64> {
        Ok(clock::now())
    }
    fn breaker_gate(&self, tool: &str, cfg: Config, holder: &str, lease_ttl: f64) -> Result<Gate> {
        let (gate, clean) = breaker::gate_at(
            &self.breaker_file(tool),
            cfg,
            clock::now(),
            holder,
            lease_ttl,
        )?;
        self.clean.gated(tool, clean);
        Ok(gate)
    }
    fn breaker_record(&self, tool: &str, cfg: Config, success: bool) -> Result<Record> {
        if !self.clean.must_record(tool, success) {
            return Ok(Record::default());
        }
        breaker::record_at(&self.breaker_file(tool), cfg, clock::now(), success)
    }
    fn breaker_release(&self, tool: &str, holder: &str) -> Result<()> {
        breaker::release_at(&self.breaker_file(tool), holder)
    }
    fn breaker_reset(&self, tool: &str) -> Result<()> {
        breaker::reset_at(&self.breaker_file(tool))
    }
    fn breaker_read(&self, tool: &str) -> Result<Record> {
        breaker::load(&self.breaker_file(tool))
    }
    fn breaker_names(&self) -> Result<Vec<String>> {
        Ok(crate::state::list_dir(&self.health)?
            .iter()
            .filter_map(|p| {
                let f = p.file_name()?.to_str()?;
                f.strip_prefix("cb_")?
                    .strip_suffix(".json")
                    .map(String::from)
            })
            .collect())
    }
    fn admit(&self, limits: &[Limit], window: f64) -> Result<Admission> {
        ratelimit::admit(&self.ratelimit, limits, window, clock::now())
    }
    fn group_acquire(
        &self,
        group: &GroupSpec,
        wait: &Wait,
        on_wait: &mut dyn FnMut(),
    ) -> std::result::Result<Slot, Refusal> {
        groups::acquire(
            &self.groups,
            &group.name,
            group.max,
            group.queue,
            wait,
            on_wait,
        )
    }
    fn group_occupancy(&self, group: &GroupSpec) -> Result<(u32, usize)> {
        Ok(groups::occupancy(&self.groups, &group.name, group.max))
    }
}

/// A backend that cannot be used at all (a malformed `GATHM_STATE_URL`):
/// every operation fails with the same message, so limits fail closed.
#[derive(Debug, Clone)]
pub struct Broken {
    /// `redis`, or `unknown` when the configuration that names the backend
    /// does not load.
    pub kind: &'static str,
    /// What is wrong.
    pub why: String,
    /// The URL as given (password hidden).
    pub location: String,
}

impl Broken {
    fn err(&self) -> Error {
        Error::StateUnavailable(self.why.clone())
    }
}

impl SharedState for Broken {
    fn backend(&self) -> Backend {
        Backend {
            kind: self.kind,
            location: self.location.clone(),
            fallback: false,
        }
    }
    fn ping(&self) -> Result<()> {
        Err(self.err())
    }
    fn now(&self) -> Result<f64> {
        Err(self.err())
    }
    fn breaker_gate(&self, _: &str, _: Config, _: &str, _: f64) -> Result<Gate> {
        Err(self.err())
    }
    fn breaker_record(&self, _: &str, _: Config, _: bool) -> Result<Record> {
        Err(self.err())
    }
    fn breaker_release(&self, _: &str, _: &str) -> Result<()> {
        Err(self.err())
    }
    fn breaker_reset(&self, _: &str) -> Result<()> {
        Err(self.err())
    }
    fn breaker_read(&self, _: &str) -> Result<Record> {
        Err(self.err())
    }
    fn breaker_names(&self) -> Result<Vec<String>> {
        Err(self.err())
    }
    fn admit(&self, _: &[Limit], _: f64) -> Result<Admission> {
        Err(self.err())
    }
    fn group_acquire(
        &self,
        group: &GroupSpec,
        _: &Wait,
        _: &mut dyn FnMut(),
    ) -> std::result::Result<Slot, Refusal> {
        Err(Refusal::State {
            group: group.name.clone(),
            error: self.why.clone(),
        })
    }
    fn group_occupancy(&self, _: &GroupSpec) -> Result<(u32, usize)> {
        Err(self.err())
    }
}

/// Redis first, the embedded store while Redis cannot be reached
/// (`GATHM_STATE_FALLBACK=local`): availability over fleet-wide limits, with
/// a warning on stderr the first time it happens in a process.
pub struct Fallback {
    /// The shared backend.
    pub primary: Arc<dyn SharedState>,
    /// The embedded store.
    pub local: Local,
    warned: AtomicBool,
}

impl Fallback {
    /// Wrap `primary`.
    pub fn new(primary: Arc<dyn SharedState>, local: Local) -> Fallback {
        Fallback {
            primary,
            local,
            warned: AtomicBool::new(false),
        }
    }

    /// Say once per process that the embedded store stands in.
    fn warn(&self, why: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "gathm: warning: {why}; using the local state under GATHM_HOME instead (GATHM_STATE_FALLBACK=local): limits, breakers and groups are per machine until it is back"
            );
        }
    }

    fn or_local<T>(&self, r: Result<T>, local: impl FnOnce(&Local) -> Result<T>) -> Result<T> {
        match r {
            Err(Error::StateUnavailable(why)) => {
                self.warn(&why);
                local(&self.local)
            }
            other => other,
        }
    }
}

impl SharedState for Fallback {
    fn backend(&self) -> Backend {
        Backend {
            fallback: true,
            ..self.primary.backend()
        }
    }
    fn ping(&self) -> Result<()> {
        self.primary.ping()
    }
    fn now(&self) -> Result<f64> {
        self.or_local(self.primary.now(), |l| l.now())
    }
    fn breaker_gate(&self, tool: &str, cfg: Config, holder: &str, lease_ttl: f64) -> Result<Gate> {
        self.or_local(
            self.primary.breaker_gate(tool, cfg, holder, lease_ttl),
            |l| l.breaker_gate(tool, cfg, holder, lease_ttl),
        )
    }
    fn breaker_record(&self, tool: &str, cfg: Config, success: bool) -> Result<Record> {
        self.or_local(self.primary.breaker_record(tool, cfg, success), |l| {
            l.breaker_record(tool, cfg, success)
        })
    }
    fn breaker_release(&self, tool: &str, holder: &str) -> Result<()> {
        self.or_local(self.primary.breaker_release(tool, holder), |l| {
            l.breaker_release(tool, holder)
        })
    }
    fn breaker_reset(&self, tool: &str) -> Result<()> {
        self.or_local(self.primary.breaker_reset(tool), |l| l.breaker_reset(tool))
    }
    fn breaker_read(&self, tool: &str) -> Result<Record> {
        self.or_local(self.primary.breaker_read(tool), |l| l.breaker_read(tool))
    }
    fn breaker_names(&self) -> Result<Vec<String>> {
        self.or_local(self.primary.breaker_names(), |l| l.breaker_names())
    }
    fn admit(&self, limits: &[Limit], window: f64) -> Result<Admission> {
        self.or_local(self.primary.admit(limits, window), |l| {
            l.admit(limits, window)
        })
    }
    fn group_acquire(
        &self,
        group: &GroupSpec,
        wait: &Wait,
        on_wait: &mut dyn FnMut(),
    ) -> std::result::Result<Slot, Refusal> {
        match self.primary.group_acquire(group, wait, on_wait) {
            Err(Refusal::State { error, .. }) => {
                self.warn(&error);
                self.local.group_acquire(group, wait, on_wait)
            }
            other => other,
        }
    }
    fn group_occupancy(&self, group: &GroupSpec) -> Result<(u32, usize)> {
        self.or_local(self.primary.group_occupancy(group), |l| {
            l.group_occupancy(group)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, Local) {
        let d = tempfile::tempdir().unwrap();
        let l = Local {
            health: d.path().join("health"),
            ratelimit: d.path().join("ratelimit"),
            groups: d.path().join("groups"),
            clean: Arc::default(),
        };
        (d, l)
    }

    #[test]
    fn a_success_after_a_clean_gate_reads_and_writes_nothing() {
        let (_d, l) = local();
        let cfg = Config {
            threshold: 3,
            recovery_timeout: 60.0,
        };
        assert_eq!(l.breaker_gate("t", cfg, "run1", 30.0).unwrap(), Gate::Allow);
        // Another process records a failure meanwhile: this success is
        // ordered before it (as at the gate), so the failure stays.
        let file = l.health.join("cb_t.json");
        breaker::record_at(&file, cfg, clock::now(), false).unwrap();
        l.breaker_record("t", cfg, true).unwrap();
        assert_eq!(l.breaker_read("t").unwrap().failures, 1);
        // The next gate sees the failure: its success is recorded.
        assert_eq!(l.breaker_gate("t", cfg, "run2", 30.0).unwrap(), Gate::Allow);
        l.breaker_record("t", cfg, true).unwrap();
        assert_eq!(l.breaker_read("t").unwrap().failures, 0);
        // A failure after a clean gate is always recorded.
        l.breaker_gate("t", cfg, "run3", 30.0).unwrap();
        l.breaker_record("t", cfg, false).unwrap();
        assert_eq!(l.breaker_read("t").unwrap().failures, 1);
    }

    #[test]
    fn broken_backend_fails_every_limit_closed() {
        let b = Broken {
            kind: "redis",
            why: "redis at redis://x: bad url".into(),
            location: "redis://x".into(),
        };
        let l = Limit {
            key: "tool-a".into(),
            limit: 1,
            capacity: 1,
        };
        assert!(matches!(
            b.admit(&[l], 60.0),
            Err(Error::StateUnavailable(_))
        ));
        let g = GroupSpec {
            name: "g".into(),
            max: 1,
            queue: 1,
        };
        let r = b.group_acquire(&g, &Wait::default(), &mut || {});
        assert!(matches!(r, Err(Refusal::State { .. })));
        assert!(b.ping().is_err());
    }

    #[test]
    fn fallback_uses_the_local_store_while_the_primary_is_down() {
        let (_d, l) = local();
        let f = Fallback::new(
            Arc::new(Broken {
                kind: "redis",
                why: "down".into(),
                location: "redis://x".into(),
            }),
            l.clone(),
        );
        let lim = Limit {
            key: "tool-a".into(),
            limit: 1,
            capacity: 1,
        };
        assert!(f.admit(std::slice::from_ref(&lim), 60.0).unwrap().allowed);
        assert!(!f.admit(&[lim], 60.0).unwrap().allowed, "counted locally");
        let cfg = Config {
            threshold: 1,
            recovery_timeout: 60.0,
        };
        f.breaker_record("a", cfg, false).unwrap();
        assert!(matches!(
            l.breaker_gate("a", cfg, "h", 10.0).unwrap(),
            Gate::Reject { .. }
        ));
        assert!(f.backend().fallback);
        assert!(f.ping().is_err(), "readiness still reports the primary");
    }
}
