//! Shared state on Redis for a fleet (issue 17): the circuit breaker and the
//! all-or-nothing rate-limit admission, each one atomic server-side Lua
//! script (`breaker.lua`, `ratelimit.lua`) that runs the same state machine
//! as the pure Rust code (`breaker.rs`, `ratelimit.rs`) with the Redis
//! server's clock (`TIME`), never the machines' clocks. Property tests run
//! random operation sequences against both and require identical results.
//!
//! Times in the breaker's JSON record keep 14 significant digits (Redis's
//! cjson), i.e. 0.1 ms at today's epoch: far below anything a breaker
//! decides on.
//!
//! `shared.rs` puts these (and the concurrency-group slots of `groups.lua`)
//! behind `state::shared::SharedState`, which `Context::shared` selects
//! when `GATHM_STATE_URL` is set.

use std::sync::Mutex;
use std::time::Duration;

use crate::breaker::{self, Config, Gate, Record};
use crate::ratelimit::{Admission, Limit};

const BREAKER_LUA: &str = include_str!("breaker.lua");
const RATELIMIT_LUA: &str = include_str!("ratelimit.lua");

/// An error talking to Redis, naming the URL (without its password) and the cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("redis at {url}: {cause}")]
pub struct RedisError {
    /// The URL with any password hidden.
    pub url: String,
    /// What went wrong.
    pub cause: String,
}

/// A connection to the shared state.
pub struct Redis {
    client: redis::Client,
    url: String,
    con: Mutex<Option<redis::Connection>>,
    breaker: redis::Script,
    ratelimit: redis::Script,
    timeout: Duration,
}

/// `redis://user:secret@host/0` → `redis://user:***@host/0`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A client for `url` as every gathm connection wants it: `TCP_NODELAY`
/// (requests are single small writes; Nagle would hold a second one back)
/// and no `CLIENT SETINFO` at connect (a round trip per CLI run, refused
/// anyway by Redis < 7.2).
pub fn client(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info
        .set_redis_settings(settings)
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

impl Redis {
    /// Prepare a client for `url` (`redis://` or `rediss://`); nothing is
    /// sent until the first call, which connects with `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Redis, RedisError> {
        let shown = redact(url);
        let client = client(url).map_err(|e| RedisError {
            url: shown.clone(),
            cause: e.to_string(),
        })?;
        Ok(Redis {
            client,
            url: shown,
            con: Mutex::new(None),
            breaker: redis::Script::new(BREAKER_LUA),
            ratelimit: redis::Script::new(RATELIMIT_LUA),
            timeout,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> RedisError {
        RedisError {
            url: self.url.clone(),
            cause: e.to_string(),
        }
    }

    /// Run `f` on the (lazily opened) connection; a failed call drops the
    /// connection so the next one reconnects.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisError> {
        let mut guard = self.con.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| self.err(e))?;
            c.set_read_timeout(Some(self.timeout))
                .map_err(|e| self.err(e))?;
            c.set_write_timeout(Some(self.timeout))
                .map_err(|e| self.err(e))?;
            *guard = Some(c);
        }
        let con = guard.as_mut().expect("connected above");
        let r = f(con);
        if r.is_err() {
            *guard = None;
        }
        r.map_err(|e| self.err(e))
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's clock (`TIME`), epoch seconds.
    pub fn time(&self) -> Result<f64, RedisError> {
        let (s, us): (u64, u64) = self.with(|c| redis::cmd("TIME").query(c))?;
        Ok(s as f64 + us as f64 / 1e6)
    }

    /// `PING`: whether the server answers.
    pub fn ping(&self) -> Result<(), RedisError> {
        self.with(|c| redis::cmd("PING").query::<String>(c).map(|_| ()))
    }

    fn breaker_op(
        &self,
        tool: &str,
        op: &str,
        cfg: Config,
        holder: &str,
        lease_ttl: f64,
        now: Option<f64>,
    ) -> Result<(String, String), RedisError> {
        let key = format!("gathm:breaker:{tool}");
        let now = now.map(|n| format!("{n}")).unwrap_or_default();
        self.with(|c| {
            self.breaker
                .key(&key)
                .arg(op)
                .arg(cfg.threshold)
                .arg(cfg.recovery_timeout)
                .arg(holder)
                .arg(lease_ttl)
                .arg(&now)
                .invoke::<(String, String)>(c)
        })
    }

    /// The breaker gate (`breaker::gate`), atomically; `now` only in tests.
    pub fn breaker_gate(
        &self,
        tool: &str,
        cfg: Config,
        holder: &str,
        lease_ttl: f64,
        now: Option<f64>,
    ) -> Result<Gate, RedisError> {
        self.breaker_gate_clean(tool, cfg, holder, lease_ttl, now)
            .map(|(g, _)| g)
    }

    /// The gate, and whether the record was closed with no failures and no
    /// probe (a success recorded now would change nothing).
    pub fn breaker_gate_clean(
        &self,
        tool: &str,
        cfg: Config,
        holder: &str,
        lease_ttl: f64,
        now: Option<f64>,
    ) -> Result<(Gate, bool), RedisError> {
        let (kind, v) = self.breaker_op(tool, "gate", cfg, holder, lease_ttl, now)?;
        Ok(match kind.as_str() {
            "allow" => (Gate::Allow, v == "clean"),
            "probe" => (Gate::Probe, false),
            _ => (
                Gate::Reject {
                    retry_in: v.parse().unwrap_or(0.0),
                },
                false,
            ),
        })
    }

    /// Record an outcome (`breaker::on_success` / `on_failure`), atomically.
    pub fn breaker_record(
        &self,
        tool: &str,
        cfg: Config,
        success: bool,
        now: Option<f64>,
    ) -> Result<Record, RedisError> {
        let op = if success { "success" } else { "failure" };
        let (_, json) = self.breaker_op(tool, op, cfg, "", 0.0, now)?;
        serde_json::from_str(&json).map_err(|e| self.err(e))
    }

    /// Give up a probe lease (`breaker::release_at`).
    pub fn breaker_release(&self, tool: &str, holder: &str) -> Result<(), RedisError> {
        self.breaker_op(tool, "release", Config::default(), holder, 0.0, Some(0.0))
            .map(|_| ())
    }

    /// Reset to closed (`breaker::reset_at`).
    pub fn breaker_reset(&self, tool: &str) -> Result<(), RedisError> {
        self.breaker_op(tool, "reset", Config::default(), "", 0.0, Some(0.0))
            .map(|_| ())
    }

    /// The stored record.
    pub fn breaker_read(&self, tool: &str) -> Result<Record, RedisError> {
        let (_, json) = self.breaker_op(tool, "read", Config::default(), "", 0.0, Some(0.0))?;
        serde_json::from_str(&json).map_err(|e| self.err(e))
    }

    /// The tools with a breaker record (`SCAN` over `gathm:breaker:*`).
    pub fn breaker_names(&self) -> Result<Vec<String>, RedisError> {
        let keys: Vec<String> = self.with(|c| {
            let it = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg("gathm:breaker:*")
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter::<String>(c)?;
            it.collect::<redis::RedisResult<Vec<String>>>()
        })?;
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("gathm:breaker:").map(String::from))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Admit one call against every limit, all or nothing
    /// (`ratelimit::admit`), atomically; `now` only in tests.
    pub fn admit(
        &self,
        limits: &[Limit],
        window: f64,
        now: Option<f64>,
    ) -> Result<Admission, RedisError> {
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
        // The same order as the file backend (by key), so ties resolve alike.
        let mut sorted: Vec<&Limit> = limits.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let now = now.map(|n| format!("{n}")).unwrap_or_default();
        let (allowed, tight, remaining, retry): (String, String, String, String) =
            self.with(|c| {
                let mut inv = self.ratelimit.prepare_invoke();
                for l in &sorted {
                    inv.key(format!("gathm:ratelimit:{}", l.key));
                }
                inv.arg(window).arg(&now);
                for l in &sorted {
                    inv.arg(l.capacity);
                }
                inv.invoke(c)
            })?;
        let idx = tight.parse::<usize>().unwrap_or(1).max(1) - 1;
        let l = sorted[idx.min(sorted.len() - 1)];
        adm.allowed = allowed == "1";
        adm.limit = l.limit;
        adm.remaining = remaining.parse().unwrap_or(0);
        adm.retry_after = retry.parse().unwrap_or(0.0);
        if !adm.allowed {
            adm.key = Some(l.key.clone());
        }
        Ok(adm)
    }
}

/// The pure model of `Redis::admit` over in-memory windows, built from
/// `ratelimit::prune`/`check` exactly as the file backend uses them (for the
/// property tests, and as the specification of the script).
pub fn admit_model(
    windows: &mut std::collections::BTreeMap<String, crate::ratelimit::Window>,
    limits: &[Limit],
    window: f64,
    now: f64,
) -> Admission {
    use crate::ratelimit::{check, prune};
    let mut adm = Admission {
        allowed: true,
        limit: u32::MAX,
        remaining: u32::MAX,
        retry_after: 0.0,
        key: None,
    };
    if limits.is_empty() {
        return adm;
    }
    let mut sorted: Vec<&Limit> = limits.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for l in &sorted {
        let w = windows.entry(l.key.clone()).or_default();
        prune(w, window, now);
        match check(w, l.capacity, window, now) {
            Ok(rem) => {
                if rem < adm.remaining {
                    adm.remaining = rem;
                    adm.limit = l.limit;
                }
            }
            Err(wait) => {
                adm.allowed = false;
                adm.limit = l.limit;
                adm.remaining = 0;
                adm.retry_after = adm.retry_after.max(wait);
                adm.key = Some(l.key.clone());
            }
        }
    }
    if adm.allowed {
        for l in &sorted {
            windows.entry(l.key.clone()).or_default().hits.push(now);
        }
    }
    adm
}

/// The pure breaker model of one operation, as the file backend applies it.
pub fn breaker_model(
    r: &mut Record,
    op: &str,
    cfg: Config,
    holder: &str,
    lease_ttl: f64,
    now: f64,
) -> Option<Gate> {
    match op {
        "gate" => {
            let (g, next) = breaker::gate(r, cfg, now, holder, lease_ttl);
            if let Some(n) = next {
                *r = n;
            }
            Some(g)
        }
        "success" => {
            if let Some(n) = breaker::on_success(r) {
                *r = n;
            }
            None
        }
        "failure" => {
            *r = breaker::on_failure(r, cfg, now);
            None
        }
        _ => None,
    }
}

pub mod shared;
#[cfg(test)]
pub(crate) mod tests;
