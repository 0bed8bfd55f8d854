//! The job store on Redis (`GATHM_STATE_URL=redis://…`): the records a
//! fleet of `gathm serve` instances share. Every state change is one Lua
//! script (`redis.lua`) that checks the job's status (and a worker's
//! fencing token) and takes its timestamps from the server's clock (`TIME`);
//! the queue is a sorted set by submission number (FIFO), leases a sorted
//! set by deadline, each job's events a list any instance reads.
//!
//! Durability is checked at open: `appendonly yes` with `appendfsync
//! always` makes every reply follow its fsync; with `everysec`, writes that
//! are acknowledged wait for `WAITAOF 1 0` where the server has it (Redis ≥
//! 7.2), else a crash of the Redis machine can lose about the last second of
//! acknowledged writes, which the start-up warnings say. Without AOF the
//! store refuses to open unless `GATHM_REDIS_VOLATILE=1`.
//!
//! Unlike the embedded store, [`JobStore::reclaim`] never takes a job whose
//! lease is still valid, even with `all`: other live instances hold those.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::fleet::redact;
use crate::state::jobs::{
    ALL_STATUSES, CancelRequest, Change, Claim, Delivery, Finish, Idempotency, Job, JobKind,
    JobStatus, JobStore, ListQuery, STATUSES, StoreError, StoreResult, Submitted,
};

const SCRIPT: &str = include_str!("redis.lua");
/// The key prefix of every job-store key.
const PREFIX: &str = "gathm:jobs:";
/// A claimed delivery is offered again after this many seconds (its sender died).
const DELIVERY_CLAIM: f64 = 60.0;
/// Event lines returned by one `read_events` call at most.
const EVENTS_MAX: isize = 4096;
/// Idle connections kept.
const POOL_MAX: usize = 16;
/// Tries of a call that failed on I/O (each on a new connection, after 1,
/// 2, 4, … ms). A read with a timeout cannot be restarted by the kernel:
/// any signal reaching the thread (a tool's exit sends SIGCHLD) ends it with
/// EINTR, which bursts of job ends make common under load.
const TRIES: u32 = 8;

/// How acknowledged writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `appendfsync always`: the reply follows the fsync.
    Always,
    /// `appendfsync everysec` on Redis ≥ 7.2: `WAITAOF 1 0` after each
    /// acknowledged write.
    WaitAof,
    /// No guarantee beyond the reply (said in the start-up warnings).
    BestEffort,
}

/// The Redis job store.
pub struct RedisStore {
    client: redis::Client,
    url: String,
    dir: PathBuf,
    pool: Mutex<Vec<redis::Connection>>,
    closed: std::sync::atomic::AtomicBool,
    script: redis::Script,
    timeout: Duration,
    durability: Durability,
    warnings: Vec<String>,
}

/// The durability facts read at open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFacts {
    /// `CONFIG GET appendonly` (None: CONFIG unavailable).
    pub appendonly: Option<String>,
    /// `CONFIG GET appendfsync`.
    pub appendfsync: Option<String>,
    /// `redis_version` of `INFO server`.
    pub version: Option<(u32, u32)>,
}

/// Decide the durability mode from the server's facts (pure): the mode and
/// warnings for the start, or the refusal.
pub fn durability(
    f: &ServerFacts,
    volatile_ok: bool,
    url: &str,
) -> Result<(Durability, Vec<String>), String> {
    let waitaof = f.version.is_some_and(|v| v >= (7, 2));
    let shown = f
        .version
        .map_or("an unknown version".to_string(), |(a, b)| {
            format!("{a}.{b}")
        });
    match (f.appendonly.as_deref(), f.appendfsync.as_deref()) {
        (None, _) => Ok((
            Durability::BestEffort,
            vec![format!(
                "cannot read the configuration of redis at {url} (CONFIG is disabled or renamed): \
                 its durability is unknown; jobs are acknowledged once Redis replies, and a crash \
                 of Redis may lose acknowledged jobs unless it runs with appendonly yes and \
                 appendfsync always"
            )],
        )),
        (Some("no"), _) if volatile_ok => Ok((
            Durability::BestEffort,
            vec![format!(
                "redis at {url} runs without AOF (appendonly no) and GATHM_REDIS_VOLATILE=1 \
                 allows it: a restart or crash of Redis loses every job record written since its \
                 last RDB snapshot (all of them without one), including acknowledged jobs"
            )],
        )),
        (Some("no"), _) => Err(format!(
            "redis at {url} runs without AOF (appendonly no): a restart or crash of Redis would \
             lose acknowledged jobs. Enable it (CONFIG SET appendonly yes, appendfsync always), \
             or set GATHM_REDIS_VOLATILE=1 to accept that loss"
        )),
        (Some(_), Some("always")) => Ok((Durability::Always, Vec::new())),
        (Some(_), Some("everysec")) if waitaof => Ok((Durability::WaitAof, Vec::new())),
        (Some(_), Some("everysec")) => Ok((
            Durability::BestEffort,
            vec![format!(
                "redis at {url} ({shown}) has appendfsync everysec and no WAITAOF (Redis < 7.2): \
                 a crash of the Redis machine can lose about the last second of acknowledged job \
                 changes; set appendfsync always to make every acknowledgement durable"
            )],
        )),
        (Some(_), other) => Ok((
            Durability::BestEffort,
            vec![format!(
                "redis at {url} has appendfsync {}: the OS decides when the AOF reaches the disk, \
                 so a crash of the Redis machine can lose acknowledged job changes (about 30 s); \
                 set appendfsync always",
                other.unwrap_or("unknown")
            )],
        )),
    }
}

fn parse_version(info: &str) -> Option<(u32, u32)> {
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?
        .trim();
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn opt_f64(h: &HashMap<String, String>, k: &str) -> Option<f64> {
    h.get(k).and_then(|v| v.parse().ok())
}

fn json_field<T: serde::de::DeserializeOwned>(h: &HashMap<String, String>, k: &str) -> Option<T> {
    h.get(k).and_then(|v| serde_json::from_str(v).ok())
}

/// A job from the flat `HGETALL` pairs.
fn job_of(pairs: &[String]) -> Option<Job> {
    let h: HashMap<String, String> = pairs
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    Some(Job {
        id: h.get("id")?.clone(),
        kind: h
            .get("kind")
            .and_then(|k| JobKind::parse(k))
            .unwrap_or_default(),
        tool: h.get("tool").cloned().unwrap_or_default(),
        args: json_field(&h, "args").unwrap_or_default(),
        status: h
            .get("status")
            .and_then(|s| JobStatus::parse(s))
            .unwrap_or(JobStatus::Failed),
        reason: h.get("reason").cloned(),
        exit_code: h.get("exit_code").and_then(|v| v.parse().ok()),
        created_at: opt_f64(&h, "created_at").unwrap_or(0.0),
        started_at: opt_f64(&h, "started_at"),
        finished_at: opt_f64(&h, "finished_at"),
        timeout: opt_f64(&h, "timeout"),
        callback_url: h.get("callback_url").cloned(),
        stdout_lines: h
            .get("stdout_lines")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        stderr_lines: h
            .get("stderr_lines")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        approved: h.get("approved").is_some_and(|v| v == "1"),
        owner: h.get("owner").cloned().unwrap_or_default(),
        role: h.get("role").cloned().unwrap_or_default(),
        envelope: json_field(&h, "envelope"),
        pipeline: json_field(&h, "pipeline"),
        result: json_field(&h, "result"),
        stdin: h.get("stdin").cloned(),
        live_output: None,
    })
}

/// Field changes for the script's `apply`: sets, then deletes.
#[derive(Default)]
struct Fields {
    set: Vec<(&'static str, String)>,
    del: Vec<&'static str>,
}

impl Fields {
    fn put(&mut self, k: &'static str, v: Option<String>) {
        match v {
            Some(v) => self.set.push((k, v)),
            None => self.del.push(k),
        }
    }
    fn args(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.arg(self.set.len()).arg(self.del.len());
        for (k, v) in &self.set {
            inv.arg(*k).arg(v);
        }
        for k in &self.del {
            inv.arg(*k);
        }
    }
}

fn json_text<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn new_job_fields(j: &Job) -> Fields {
    let mut f = Fields::default();
    f.set.push(("id", j.id.clone()));
    f.set.push(("kind", j.kind.as_str().into()));
    f.set.push(("tool", j.tool.clone()));
    f.set.push((
        "args",
        serde_json::to_string(&j.args).unwrap_or_else(|_| "[]".into()),
    ));
    f.set.push(("owner", j.owner.clone()));
    f.set.push(("role", j.role.clone()));
    f.set.push(("stdout_lines", j.stdout_lines.to_string()));
    f.set.push(("stderr_lines", j.stderr_lines.to_string()));
    f.set
        .push(("approved", if j.approved { "1" } else { "0" }.into()));
    for (k, v) in [
        ("reason", j.reason.clone()),
        ("exit_code", j.exit_code.map(|c| c.to_string())),
        ("timeout", j.timeout.map(|t| t.to_string())),
        ("callback_url", j.callback_url.clone()),
        ("envelope", json_text(&j.envelope)),
        ("pipeline", json_text(&j.pipeline)),
        ("result", json_text(&j.result)),
        ("stdin", j.stdin.clone()),
    ] {
        if let Some(v) = v {
            f.set.push((k, v));
        }
    }
    f
}

fn finish_fields(f: &Finish) -> Fields {
    let mut out = Fields::default();
    out.put("reason", f.reason.clone());
    out.put("exit_code", f.exit_code.map(|c| c.to_string()));
    out.put("stdout_lines", Some(f.stdout_lines.to_string()));
    out.put("stderr_lines", Some(f.stderr_lines.to_string()));
    out.put("envelope", json_text(&f.envelope));
    out.put("result", json_text(&f.result));
    out
}

fn claim_of(v: &[String]) -> Option<Claim> {
    if v.len() < 3 {
        return None;
    }
    Some(Claim {
        token: v[1].parse().ok()?,
        lease_until: v[2].parse().ok()?,
        job: job_of(&v[3..])?,
    })
}

impl RedisStore {
    /// Connect to `url` (`redis://` or `rediss://`), check its durability
    /// (refusing a server without AOF unless `volatile_ok`), and keep each
    /// job's local files (stdout, stderr of the jobs run here) under
    /// `jobs_dir`.
    pub fn open(url: &str, jobs_dir: &Path, volatile_ok: bool) -> StoreResult<RedisStore> {
        let shown = redact(url);
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(StoreError::Other(format!(
                "unsupported state URL {shown}: use redis://HOST:PORT/DB or rediss://…"
            )));
        }
        let client = crate::fleet::client(url)
            .map_err(|e| StoreError::Unavailable(format!("redis at {shown}: {e}")))?;
        let mut store = RedisStore {
            client,
            url: shown.clone(),
            dir: jobs_dir.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            script: redis::Script::new(SCRIPT),
            timeout: Duration::from_secs(5),
            durability: Durability::BestEffort,
            warnings: Vec::new(),
        };
        let facts = store.facts()?;
        let (mode, warnings) =
            durability(&facts, volatile_ok, &shown).map_err(StoreError::Unavailable)?;
        store.durability = mode;
        store.warnings = warnings;
        crate::state::create_dir(jobs_dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(store)
    }

    /// What to say at start about durability (empty when every
    /// acknowledgement is durable).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The durability mode chosen at open.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn facts(&self) -> StoreResult<ServerFacts> {
        self.with(|c, _| {
            let get = |c: &mut redis::Connection, k: &str| -> Option<String> {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(k)
                    .query::<Vec<String>>(c)
                    .ok()
                    .and_then(|v| v.get(1).cloned())
            };
            let appendonly = get(c, "appendonly");
            let appendfsync = get(c, "appendfsync");
            let info: String = redis::cmd("INFO").arg("server").query(c)?;
            Ok(ServerFacts {
                appendonly,
                appendfsync,
                version: parse_version(&info),
            })
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("redis at {}: {e}", self.url))
    }

    /// Run `f` on a pooled connection (opened with a timeout); a failed
    /// call drops its connection. `f` gets a request id, the same on each
    /// try: an I/O error (a timeout, a signal interrupting the read, a
    /// dropped connection) is retried on a new connection, and a script
    /// called again with the same request id answers what it answered the
    /// first time instead of running twice.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection, &str) -> redis::RedisResult<T>,
    ) -> StoreResult<T> {
        let rid = crate::clock::new_id();
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_with(&mut f, &rid) {
                Err((_, true)) if tries < TRIES => {
                    std::thread::sleep(Duration::from_millis(1 << (tries - 1)));
                    continue;
                }
                Err((e, _)) => return Err(self.err(e)),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// One try of [`RedisStore::with`]: the error and whether to try again.
    fn try_with<T>(
        &self,
        f: &mut impl FnMut(&mut redis::Connection, &str) -> redis::RedisResult<T>,
        rid: &str,
    ) -> Result<T, (String, bool)> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(("the job store is closed".into(), false));
        }
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut con = match pooled {
            Some(c) => c,
            None => {
                // A refused connection fails at once (Redis is down); an
                // interrupted set-up is tried again.
                let fail = |e: redis::RedisError| {
                    let again = e.is_io_error() && !e.is_connection_refusal();
                    (e.to_string(), again)
                };
                let c = self
                    .client
                    .get_connection_with_timeout(self.timeout)
                    .map_err(fail)?;
                c.set_read_timeout(Some(self.timeout)).map_err(fail)?;
                c.set_write_timeout(Some(self.timeout)).map_err(fail)?;
                c
            }
        };
        match f(&mut con, rid) {
            Ok(v) => {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < POOL_MAX {
                    pool.push(con);
                }
                Ok(v)
            }
            Err(e) => {
                let again = e.is_io_error() && !e.is_connection_refusal();
                Err((e.to_string(), again))
            }
        }
    }

    /// Run a write (a script call) and make it durable before answering.
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection, &str) -> redis::RedisResult<T>,
    ) -> StoreResult<T> {
        let wait = self.durability == Durability::WaitAof;
        let ms = self.timeout.as_millis() as u64;
        self.with(|c, rid| {
            let v = f(c, rid)?;
            if wait {
                let (local, _): (i64, i64) =
                    redis::cmd("WAITAOF").arg(1).arg(0).arg(ms).query(c)?;
                if local < 1 {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "WAITAOF timed out: the change is not on disk yet",
                    )));
                }
            }
            Ok(v)
        })
    }

    /// A script call: the operation, the key prefix and the request id.
    fn inv<'a>(&'a self, op: &str, rid: &str) -> redis::ScriptInvocation<'a> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(op).arg(PREFIX).arg(rid);
        inv
    }

    fn ids_by_score(&self, key: &str, max: f64, limit: usize) -> StoreResult<Vec<String>> {
        let key = format!("{PREFIX}{key}");
        self.with(|c, _| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(format!("({max}"))
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query(c)
        })
    }

    fn claim_op(&self, lease: f64, prefer: &[String]) -> StoreResult<Option<Claim>> {
        let v: Option<Vec<String>> = self.write(|c, rid| {
            let mut inv = self.inv("claim", rid);
            inv.arg(lease);
            for p in prefer {
                inv.arg(p);
            }
            inv.invoke(c)
        })?;
        Ok(v.as_deref().and_then(claim_of))
    }

    fn finish_op(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        claim: Option<(f64, &[String])>,
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        let (done, next): (Vec<String>, Vec<String>) = self.write(|c, rid| {
            let mut inv = self.inv("finish", rid);
            inv.arg(id)
                .arg(token.to_string())
                .arg(f.status.as_str())
                .arg(if claim.is_some() { "1" } else { "0" })
                .arg(claim.map_or(0.0, |c| c.0));
            let prefer = claim.map_or(&[][..], |c| c.1);
            inv.arg(prefer.len());
            for p in prefer {
                inv.arg(p);
            }
            finish_fields(f).args(&mut inv);
            inv.invoke(c)
        })?;
        let done = (done.first().map(String::as_str) == Some("done"))
            .then(|| job_of(&done[1..]))
            .flatten();
        Ok((done, claim_of(&next)))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        JobStore::close(self);
    }
}

impl JobStore for RedisStore {
    fn now(&self) -> f64 {
        self.with(|c, rid| self.inv("now", rid).invoke::<String>(c))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(crate::clock::now)
    }

    fn read_only(&self) -> bool {
        false
    }

    fn shared(&self) -> bool {
        true
    }

    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn submit(&self, job: Job, idem: Option<&Idempotency>) -> StoreResult<Submitted> {
        let r: Vec<String> = self.write(|c, rid| {
            let mut inv = self.inv("submit", rid);
            inv.arg(&job.id)
                .arg(&job.owner)
                .arg(&job.tool)
                .arg(job.status.as_str())
                .arg(idem.map_or("", |i| i.key.as_str()))
                .arg(idem.map_or(0.0, |i| i.ttl));
            new_job_fields(&job).args(&mut inv);
            inv.invoke(c)
        })?;
        match r.first().map(String::as_str) {
            Some("existing") => {
                let id = r.get(1).cloned().unwrap_or_default();
                match self.get(&id)? {
                    Some(j) => Ok(Submitted::Existing(j)),
                    None => Err(StoreError::Other(format!("job {id} vanished"))),
                }
            }
            _ => {
                let mut job = job;
                job.created_at = r.get(1).and_then(|t| t.parse().ok()).unwrap_or(0.0);
                Ok(Submitted::New(job))
            }
        }
    }

    fn find_idempotent(&self, owner: &str, idem: &Idempotency) -> StoreResult<Option<Job>> {
        let key = format!("{PREFIX}idem:{}:{owner}:{}", owner.len(), idem.key);
        let id: Option<String> = self.with(|c, _| redis::cmd("GET").arg(&key).query(c))?;
        let Some(id) = id else { return Ok(None) };
        let since = self.now() - idem.ttl;
        Ok(self.get(&id)?.filter(|j| j.created_at >= since))
    }

    fn claim(&self, lease: f64) -> StoreResult<Option<Claim>> {
        self.claim_op(lease, &[])
    }

    fn claim_preferring(&self, lease: f64, prefer: &[String]) -> StoreResult<Option<Claim>> {
        self.claim_op(lease, prefer)
    }

    fn finish_and_claim_preferring(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
        prefer: &[String],
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        self.finish_op(id, token, f, Some((lease, prefer)))
    }

    fn heartbeat(&self, id: &str, token: u64, lease: f64) -> StoreResult<bool> {
        let r: String = self.with(|c, rid| {
            self.inv("heartbeat", rid)
                .arg(id)
                .arg(token.to_string())
                .arg(lease)
                .invoke(c)
        })?;
        Ok(r == "1")
    }

    fn finish(&self, id: &str, token: u64, f: &Finish) -> StoreResult<Option<Job>> {
        self.finish_op(id, token, f, None).map(|(d, _)| d)
    }

    fn finish_and_claim(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        self.finish_op(id, token, f, Some((lease, &[])))
    }

    fn transition(
        &self,
        id: &str,
        from: &[JobStatus],
        to: JobStatus,
        change: &Change,
    ) -> StoreResult<Option<Job>> {
        let ends = to.terminal() && !from.iter().all(|s| s.terminal());
        let mut fields = Fields::default();
        if let Some(r) = &change.reason {
            fields.set.push(("reason", r.clone()));
        }
        if let Some(a) = change.approved {
            fields
                .set
                .push(("approved", if a { "1" } else { "0" }.into()));
        }
        if let Some([o, e]) = change.lines {
            fields.set.push(("stdout_lines", o.to_string()));
            fields.set.push(("stderr_lines", e.to_string()));
        }
        let r: Option<Vec<String>> = self.write(|c, rid| {
            let mut inv = self.inv("transition", rid);
            inv.arg(id)
                .arg(to.as_str())
                .arg(if ends { "1" } else { "0" })
                .arg(from.len());
            for s in from {
                inv.arg(s.as_str());
            }
            fields.args(&mut inv);
            inv.invoke(c)
        })?;
        Ok(r.as_deref().and_then(job_of))
    }

    fn request_cancel(&self, id: &str) -> StoreResult<CancelRequest> {
        let r: Vec<String> = self.write(|c, rid| self.inv("cancel", rid).arg(id).invoke(c))?;
        let job =
            || job_of(&r[1..]).ok_or_else(|| StoreError::Other(format!("job {id} has no record")));
        Ok(match r.first().map(String::as_str) {
            Some("terminal") => CancelRequest::Terminal(job()?),
            Some("requested") => CancelRequest::Requested(job()?),
            Some("cancelled") => CancelRequest::Cancelled(job()?),
            _ => CancelRequest::NotFound,
        })
    }

    fn cancel_requested(&self, id: &str) -> StoreResult<bool> {
        let v: Option<String> = self.with(|c, _| {
            redis::cmd("HGET")
                .arg(format!("{PREFIX}job:{id}"))
                .arg("cancel")
                .query(c)
        })?;
        Ok(v.as_deref() == Some("1"))
    }

    fn get(&self, id: &str) -> StoreResult<Option<Job>> {
        let v: Vec<String> = self.with(|c, _| {
            redis::cmd("HGETALL")
                .arg(format!("{PREFIX}job:{id}"))
                .query(c)
        })?;
        Ok(job_of(&v))
    }

    fn list(&self, q: &ListQuery) -> StoreResult<Vec<Job>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        // The most selective index, then the other filters here.
        let index = if let Some(s) = q.status {
            format!("{PREFIX}st:{}", s.as_str())
        } else if let Some(o) = &q.owner {
            format!("{PREFIX}own:{o}")
        } else if let Some(t) = &q.tool {
            format!("{PREFIX}tool:{t}")
        } else {
            format!("{PREFIX}all")
        };
        let mut max = "+inf".to_string();
        if let Some(after) = &q.after {
            let seq: Option<String> = self.with(|c, _| {
                redis::cmd("HGET")
                    .arg(format!("{PREFIX}job:{after}"))
                    .arg("seq")
                    .query(c)
            })?;
            match seq {
                Some(s) => max = format!("({s}"),
                None => return Ok(Vec::new()),
            }
        }
        const LIGHT: [&str; 17] = [
            "id",
            "kind",
            "tool",
            "args",
            "status",
            "reason",
            "exit_code",
            "created_at",
            "started_at",
            "finished_at",
            "timeout",
            "callback_url",
            "stdout_lines",
            "stderr_lines",
            "approved",
            "owner",
            "role",
        ];
        let chunk = q.limit.clamp(16, 1000);
        let mut out = Vec::new();
        loop {
            let page: Vec<(String, f64)> = self.with(|c, _| {
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&index)
                    .arg(&max)
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(chunk)
                    .query(c)
            })?;
            if page.is_empty() {
                return Ok(out);
            }
            let rows: Vec<Vec<Option<String>>> = self.with(|c, _| {
                let mut p = redis::pipe();
                for (id, _) in &page {
                    p.cmd("HMGET")
                        .arg(format!("{PREFIX}job:{id}"))
                        .arg(&LIGHT[..]);
                }
                p.query(c)
            })?;
            for row in rows {
                let pairs: Vec<String> = LIGHT
                    .iter()
                    .zip(row)
                    .filter_map(|(k, v)| v.map(|v| [k.to_string(), v]))
                    .flatten()
                    .collect();
                let Some(j) = job_of(&pairs) else { continue };
                if q.owner.as_ref().is_some_and(|o| *o != j.owner)
                    || q.status.is_some_and(|s| s != j.status)
                    || q.tool.as_ref().is_some_and(|t| *t != j.tool)
                {
                    continue;
                }
                out.push(j);
                if out.len() >= q.limit {
                    return Ok(out);
                }
            }
            if page.len() < chunk {
                return Ok(out);
            }
            max = format!("({}", page[page.len() - 1].1);
        }
    }

    fn counts(&self) -> StoreResult<[u64; 6]> {
        let v: Vec<u64> = self.with(|c, _| {
            let mut p = redis::pipe();
            for s in STATUSES {
                p.cmd("ZCARD").arg(format!("{PREFIX}st:{s}"));
            }
            p.query(c)
        })?;
        let mut out = [0u64; 6];
        for (i, n) in v.into_iter().enumerate().take(ALL_STATUSES.len()) {
            out[i] = n;
        }
        Ok(out)
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn append_events(&self, id: &str, lines: &[u8]) -> StoreResult<()> {
        let items: Vec<&[u8]> = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        // A script, so a retried append (same request id) is not doubled.
        self.with(|c, rid| {
            let mut inv = self.inv("events", rid);
            inv.arg(id);
            for l in &items {
                inv.arg(*l);
            }
            inv.invoke::<()>(c)
        })
    }

    fn read_events(&self, id: &str, after: u64) -> StoreResult<Vec<(u64, String)>> {
        let key = format!("{PREFIX}ev:{id}");
        let parse = |v: Vec<String>| -> Vec<(u64, String)> {
            v.into_iter()
                .filter_map(|l| {
                    let (n, data) = l.split_once('\t')?;
                    let n: u64 = n.parse().ok()?;
                    (n > after).then(|| (n, data.to_string()))
                })
                .collect()
        };
        // Line n is at index n-1 when every number was appended once, in order.
        let start = after as isize;
        let v: Vec<String> = self.with(|c, _| {
            redis::cmd("LRANGE")
                .arg(&key)
                .arg(start)
                .arg(start + EVENTS_MAX - 1)
                .query(c)
        })?;
        let first = v
            .first()
            .and_then(|l| l.split_once('\t'))
            .and_then(|(n, _)| n.parse::<u64>().ok());
        if v.is_empty() || first == Some(after + 1) {
            // Nothing new (a follower polls here), or the lines after `after`.
            return Ok(parse(v));
        }
        // Numbered otherwise (not written by `Live`): look at them all.
        let all: Vec<String> =
            self.with(|c, _| redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c))?;
        Ok(parse(all).into_iter().take(EVENTS_MAX as usize).collect())
    }

    fn reclaim(&self, _all: bool, requeue: &dyn Fn(&Job) -> bool) -> StoreResult<Vec<Job>> {
        // Only expired leases, whatever `all` says: live instances hold the others.
        let now = self.now();
        let ids = self.ids_by_score("leases", now, 1000)?;
        let mut out = Vec::new();
        for id in ids {
            let Some(job) = self.get(&id)? else { continue };
            let again = requeue(&job);
            let r: Option<Vec<String>> = self.write(|c, rid| {
                self.inv("reclaim", rid)
                    .arg(&id)
                    .arg(if again { "1" } else { "0" })
                    .invoke(c)
            })?;
            if let Some(j) = r.as_deref().and_then(job_of) {
                out.push(j);
            }
        }
        Ok(out)
    }

    fn expire_approvals(&self, before: f64) -> StoreResult<Vec<Job>> {
        let key = format!("{PREFIX}st:awaiting_approval");
        let ids: Vec<String> =
            self.with(|c, _| redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query(c))?;
        let mut out = Vec::new();
        for id in ids {
            let r: Option<Vec<String>> =
                self.write(|c, rid| self.inv("expire", rid).arg(&id).arg(before).invoke(c))?;
            if let Some(j) = r.as_deref().and_then(job_of) {
                out.push(j);
            }
        }
        Ok(out)
    }

    fn sweep(&self, before: f64) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let ids = self.ids_by_score("fin", before, 1000)?;
            let n = ids.len();
            let dropped: Vec<String> = self.write(|c, rid| {
                let mut inv = self.inv("drop", rid);
                inv.arg(before);
                for id in &ids {
                    inv.arg(id);
                }
                inv.invoke(c)
            })?;
            out.extend(dropped);
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    fn outbox_due(&self, limit: usize) -> StoreResult<Vec<Delivery>> {
        let rows: Vec<Vec<String>> = self.write(|c, rid| {
            self.inv("outbox_due", rid)
                .arg(limit)
                .arg(DELIVERY_CLAIM)
                .invoke(c)
        })?;
        let mut out = Vec::new();
        for r in rows {
            let [id, job, url, attempts] = <[String; 4]>::try_from(r)
                .map_err(|_| StoreError::Other("a malformed outbox entry".into()))?;
            // The body is the job's public record at its end (terminal
            // records are never rewritten); a job swept meanwhile is not sent.
            let Some(j) = self.get(&job)? else {
                self.outbox_done(&id)?;
                continue;
            };
            out.push(Delivery {
                id,
                job,
                url,
                body: serde_json::to_vec(&j.public()).unwrap_or_default(),
                attempts: attempts.parse().unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn outbox_next(&self) -> StoreResult<Option<f64>> {
        let v: Option<String> = self.with(|c, rid| self.inv("outbox_next", rid).invoke(c))?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    fn outbox_done(&self, id: &str) -> StoreResult<()> {
        self.write(|c, _| {
            redis::pipe()
                .atomic()
                .cmd("ZREM")
                .arg(format!("{PREFIX}outbox"))
                .arg(id)
                .ignore()
                .cmd("DEL")
                .arg(format!("{PREFIX}dlv:{id}"))
                .ignore()
                .query::<()>(c)
        })
    }

    fn outbox_retry(&self, id: &str, delay: f64, error: &str, give_up: bool) -> StoreResult<()> {
        self.write(|c, rid| {
            self.inv("outbox_retry", rid)
                .arg(id)
                .arg(delay)
                .arg(error)
                .arg(if give_up { "1" } else { "0" })
                .invoke::<Option<bool>>(c)
        })
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::tests::RedisServer;

    fn facts(aof: &str, fsync: &str, v: (u32, u32)) -> ServerFacts {
        ServerFacts {
            appendonly: Some(aof.into()),
            appendfsync: Some(fsync.into()),
            version: Some(v),
        }
    }

    #[test]
    fn durability_follows_the_aof_settings() {
        let u = "redis://h/0";
        assert_eq!(
            durability(&facts("yes", "always", (7, 0)), false, u)
                .unwrap()
                .0,
            Durability::Always
        );
        assert_eq!(
            durability(&facts("yes", "everysec", (7, 2)), false, u)
                .unwrap()
                .0,
            Durability::WaitAof
        );
        let (d, w) = durability(&facts("yes", "everysec", (7, 0)), false, u).unwrap();
        assert_eq!(d, Durability::BestEffort);
        assert!(w[0].contains("last second"), "{w:?}");
        let refused = durability(&facts("no", "always", (7, 0)), false, u).unwrap_err();
        assert!(refused.contains("GATHM_REDIS_VOLATILE=1"), "{refused}");
        assert!(refused.contains("redis://h/0"), "{refused}");
        let (d, w) = durability(&facts("no", "always", (7, 0)), true, u).unwrap();
        assert_eq!(d, Durability::BestEffort);
        assert!(w[0].contains("loses"), "{w:?}");
        let (_, w) = durability(&ServerFacts::default(), false, u).unwrap();
        assert!(w[0].contains("CONFIG"), "{w:?}");
        assert_eq!(
            parse_version("# Server\r\nredis_version:7.0.15\r\n"),
            Some((7, 0))
        );
    }

    #[test]
    fn a_server_without_aof_is_refused_unless_volatile() {
        let server = RedisServer::start_with(&["--appendonly", "no"]);
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = RedisStore::open(&server.url, dir.path(), false) else {
            panic!("opened without AOF")
        };
        assert_eq!(e.http_status(), 503);
        assert!(e.to_string().contains("appendonly no"), "{e}");
        let s = RedisStore::open(&server.url, dir.path(), true).unwrap();
        assert_eq!(s.durability(), Durability::BestEffort);
        assert_eq!(s.warnings().len(), 1);
        let on = RedisServer::start();
        let s = RedisStore::open(&on.url, dir.path(), false).unwrap();
        assert_eq!(s.durability(), Durability::Always);
        assert!(s.warnings().is_empty());
    }

    #[test]
    fn a_retried_call_answers_the_first_answer() {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let s = RedisStore::open(&server.url, dir.path(), false).unwrap();
        for _ in 0..2 {
            s.submit(
                crate::state::conformance::job("u", JobStatus::Pending),
                None,
            )
            .unwrap();
        }
        // The same request id twice (a retry after a lost reply): one claim.
        let claim = |rid: &str| -> Vec<String> {
            s.with(|c, _| s.inv("claim", rid).arg(60.0).invoke(c))
                .unwrap()
        };
        let first = claim("r1");
        assert_eq!(claim("r1"), first);
        assert_eq!(s.counts().unwrap()[0], 1);
        let other = claim("r2");
        assert_ne!(other[0], first[0]);
        assert_eq!(s.counts().unwrap()[0], 0);
        // Events appended twice with one request id are stored once.
        let append = |rid: &str| {
            s.with(|c, _| {
                s.inv("events", rid)
                    .arg(&first[0])
                    .arg("1\t{}")
                    .invoke::<()>(c)
            })
            .unwrap()
        };
        append("e1");
        append("e1");
        assert_eq!(s.read_events(&first[0], 0).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_redacted_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("redis://u:hunter2@127.0.0.1:{port}/0");
        let Err(e) = RedisStore::open(&url, dir.path(), false) else {
            panic!()
        };
        let text = e.to_string();
        assert!(text.contains("redis://u:***@127.0.0.1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(e.http_status(), 503);
        let Err(e) = RedisStore::open("http://x", dir.path(), false) else {
            panic!()
        };
        assert!(e.to_string().contains("redis://"), "{e}");
    }
}
