//! [`SharedState`] on Redis: breakers and rate limits through the Lua
//! scripts of `fleet/mod.rs`, concurrency-group slots through `groups.lua`
//! as leases renewed by a heartbeat thread while the run holds them.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::breaker::{Config, Gate, Record};
use crate::error::{Error, Result};
use crate::ratelimit::{Admission, Limit};
use crate::runner;
use crate::state::groups::{Refusal, Slot, Wait};
use crate::state::shared::{Backend, CleanGates, GroupSpec, SharedState};

use super::{Redis, RedisError};

const GROUPS_LUA: &str = include_str!("groups.lua");

/// The shared state of a fleet, on one Redis.
pub struct RedisShared {
    redis: Arc<Redis>,
    groups: redis::Script,
    /// Lease of a group slot (`GATHM_LEASE_TTL`): how long the slot of a
    /// holder that stopped renewing (crashed) stays taken.
    lease_ttl: f64,
    /// Successes on a clean record need no round trip.
    clean: CleanGates,
}

fn unavailable(e: RedisError) -> Error {
    Error::StateUnavailable(e.to_string())
}

impl RedisShared {
    /// Shared state on `redis`.
    pub fn new(redis: Redis, lease_ttl: f64) -> RedisShared {
        RedisShared {
            redis: Arc::new(redis),
            groups: redis::Script::new(GROUPS_LUA),
            lease_ttl,
            clean: Default::default(),
        }
    }

    fn group_op(
        &self,
        g: &GroupSpec,
        op: &str,
        holder: &str,
        nowait: bool,
    ) -> std::result::Result<Vec<String>, RedisError> {
        group_call(
            &self.redis,
            &self.groups,
            g,
            op,
            holder,
            self.lease_ttl,
            nowait,
        )
    }
}

fn group_call(
    redis: &Redis,
    script: &redis::Script,
    g: &GroupSpec,
    op: &str,
    holder: &str,
    ttl: f64,
    nowait: bool,
) -> std::result::Result<Vec<String>, RedisError> {
    let base = format!("gathm:group:{}", g.name);
    redis.with(|c| {
        script
            .key(format!("{base}:holders"))
            .key(format!("{base}:waiters"))
            .key(format!("{base}:alive"))
            .key(format!("{base}:ticket"))
            .arg(op)
            .arg(g.max.max(1))
            .arg(g.queue)
            .arg(holder)
            .arg(ttl)
            .arg(if nowait { "1" } else { "0" })
            .invoke::<Vec<String>>(c)
    })
}

/// Renews a slot's lease every third of its TTL until dropped, then
/// releases it.
struct Lease {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RedisShared {
    fn hold(&self, g: &GroupSpec, holder: String, index: u32) -> Slot {
        let (tx, rx) = mpsc::channel::<()>();
        let redis = Arc::clone(&self.redis);
        let script = self.groups.clone();
        let spec = g.clone();
        let ttl = self.lease_ttl;
        let every = Duration::from_secs_f64((ttl / 3.0).max(0.05));
        let thread = std::thread::Builder::new()
            .name("gathm-group-lease".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    match group_call(&redis, &script, &spec, "renew", &holder, ttl, false) {
                        Ok(v) if v.first().map(String::as_str) == Some("lost") => eprintln!(
                            "gathm: warning: the lease on a slot of concurrency group {:?} lapsed (Redis did not hear from this run for {ttl} s); another run may have taken it",
                            spec.name
                        ),
                        Ok(_) => {}
                        Err(e) => eprintln!(
                            "gathm: warning: cannot renew the slot of concurrency group {:?}: {e}",
                            spec.name
                        ),
                    }
                }
                let _ = group_call(&redis, &script, &spec, "release", &holder, ttl, false);
            })
            .ok();
        Slot::held_by(
            &g.name,
            index,
            Box::new(Lease {
                stop: Some(tx),
                thread,
            }),
        )
    }
}

impl SharedState for RedisShared {
    fn backend(&self) -> Backend {
        Backend {
            kind: "redis",
            location: self.redis.url().to_string(),
            fallback: false,
        }
    }
    fn ping(&self) -> Result<()> {
        self.redis.ping().map_err(unavailable)
    }
    fn now(&self) -> Result<f64> {
        self.redis.time().map_err(unavailable)
    }
    fn breaker_gate(&self, tool: &str, cfg: Config, holder: &str, lease_ttl: f64) -> Result<Gate> {
        let (gate, clean) = self
            .redis
            .breaker_gate_clean(tool, cfg, holder, lease_ttl, None)
            .map_err(unavailable)?;
        self.clean.gated(tool, clean);
        Ok(gate)
    }
    fn breaker_record(&self, tool: &str, cfg: Config, success: bool) -> Result<Record> {
        if !self.clean.must_record(tool, success) {
            return Ok(Record::default());
        }
        self.redis
            .breaker_record(tool, cfg, success, None)
            .map_err(unavailable)
    }
    fn breaker_release(&self, tool: &str, holder: &str) -> Result<()> {
        self.redis
            .breaker_release(tool, holder)
            .map_err(unavailable)
    }
    fn breaker_reset(&self, tool: &str) -> Result<()> {
        self.redis.breaker_reset(tool).map_err(unavailable)
    }
    fn breaker_read(&self, tool: &str) -> Result<Record> {
        self.redis.breaker_read(tool).map_err(unavailable)
    }
    fn breaker_names(&self) -> Result<Vec<String>> {
        self.redis.breaker_names().map_err(unavailable)
    }
    fn admit(&self, limits: &[Limit], window: f64) -> Result<Admission> {
        self.redis.admit(limits, window, None).map_err(unavailable)
    }
    fn group_acquire(
        &self,
        g: &GroupSpec,
        wait: &Wait,
        on_wait: &mut dyn FnMut(),
    ) -> std::result::Result<Slot, Refusal> {
        let holder = crate::clock::new_id();
        let state = |e: RedisError| Refusal::State {
            group: g.name.clone(),
            error: e.to_string(),
        };
        let t0 = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut told = false;
        loop {
            let r = self
                .group_op(g, "acquire", &holder, wait.no_wait)
                .map_err(state)?;
            match r.first().map(String::as_str) {
                Some("ok") => {
                    let index = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    return Ok(self.hold(g, holder, index));
                }
                Some("busy") => {
                    return Err(Refusal::Busy {
                        group: g.name.clone(),
                    });
                }
                Some("full") => {
                    return Err(Refusal::QueueFull {
                        group: g.name.clone(),
                        waiting: r.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
                    });
                }
                _ => {}
            }
            if !told {
                told = true;
                on_wait();
            }
            let give_up = |refusal: Refusal| {
                let _ = self.group_op(g, "release", &holder, false);
                Err(refusal)
            };
            if runner::interrupted() || wait.cancel.is_cancelled() {
                return give_up(Refusal::Cancelled);
            }
            let waited = t0.elapsed().as_secs_f64();
            if let Some(limit) = wait.timeout
                && waited >= limit
            {
                return give_up(Refusal::TimedOut {
                    group: g.name.clone(),
                    waited,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
    fn group_occupancy(&self, g: &GroupSpec) -> Result<(u32, usize)> {
        let r = self
            .group_op(g, "occupancy", "", false)
            .map_err(unavailable)?;
        let n = |i: usize| r.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((n(0) as u32, n(1)))
    }
}
