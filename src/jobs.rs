//! Durable asynchronous jobs for `gathm serve` (PRODUCT.md §7).
//!
//! The records live in a [`JobStore`] (`state::jobs`; the embedded default
//! is SQLite at `$GATHM_HOME/jobs/jobs.db`, `state::sqlite`; with
//! `GATHM_STATE_URL=redis://…` a fleet's shared store, `state::redis`, where
//! the events live in the store, cancels asked through another instance are
//! polled, expired leases are reclaimed every poll, and nothing is written
//! under `jobs/<id>/`). A submission
//! is acknowledged only after its record is committed (concurrent
//! submissions share one commit). Each job's output lives in
//! `$GATHM_HOME/jobs/<id>/`: `stdout` and `stderr` (raw bytes, appended as
//! produced) and `events` (one `<n>\t<json>` line per output line or
//! pipeline step event, in the order produced, which the SSE stream reads).
//! Kinds: `tool` (`run::run`) and `pipeline` (`pipeline::run`).
//!
//! Workers claim the oldest `pending` job from the store (a lease and a
//! fencing token), run it through `run::run` like the CLI, and record its end
//! with that token; at most `max_concurrency` run at once. Every change of
//! state is a compare-and-set in the store, so cancel, approve, finish,
//! sweep and recovery never overwrite one another. In memory there are only
//! the running jobs' cancel handles and live output, and counters.
//!
//! On start, a `running` job left by a crash becomes `failed` (reason
//! `interrupted`) and `pending` jobs run again. A periodic sweep removes
//! terminal jobs older than the TTL with their files and fails jobs that
//! waited for approval longer than `GATHM_APPROVAL_TTL`
//! (`approval_expired`). Callbacks go through the store's outbox: delivered
//! at least once, with backoff, across restarts.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{Envelope, RunStatus};
use crate::clock;
use crate::config::Context;
use crate::error::{Error, Result};
use crate::logs::Level;
use crate::metrics::{self, Metrics};
use crate::run::{self, RunRequest};
use crate::runner::{Cancel, Sink};
use crate::state::jobs::{
    CancelRequest, Change, Finish, Idempotency, JobStore, ListQuery, StoreError, Submitted,
};
use crate::state::{self, Appender};

pub use crate::state::jobs::{ALL_STATUSES, Job, JobKind, JobStatus, STATUSES};

/// How often a fleet instance looks for cancels asked through another
/// instance and for expired leases (at most; a third of the lease if shorter).
const FLEET_POLL: f64 = 0.5;

/// `output` of a running job is read from its stdout file up to this many
/// bytes (the runner's capture limit).
const OUTPUT_LIMIT: u64 = 16 << 20;

/// Job settings from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GATHM_MAX_CONCURRENCY` (default 4).
    pub max_concurrency: usize,
    /// `GATHM_MAX_QUEUE_DEPTH` (default 100): waiting jobs at most.
    pub max_queue_depth: usize,
    /// `GATHM_JOB_TTL` seconds (default 86400); also the window of
    /// `Idempotency-Key`.
    pub ttl: f64,
    /// `GATHM_APPROVAL_TTL` seconds (default 86400): a job waits this long
    /// for approval at most, then fails with `approval_expired`.
    pub approval_ttl: f64,
    /// `GATHM_JOB_SWEEP_INTERVAL` seconds (default 60).
    pub sweep_interval: f64,
    /// `GATHM_CALLBACK_SECRET`.
    pub callback_secret: Option<Vec<u8>>,
    /// `GATHM_CALLBACK_RETRIES` (default 5 deliveries in all).
    pub callback_attempts: u32,
    /// `GATHM_CALLBACK_BACKOFF` first retry delay in seconds (default 0.5, doubling).
    pub callback_backoff: f64,
    /// `GATHM_CALLBACK_ALLOW`: hosts and CIDRs callbacks may reach even
    /// though they are loopback, private, link-local or metadata addresses.
    pub callback_allow: Vec<Allow>,
    /// `GATHM_LEASE_TTL` seconds (default 30): a claim's lease; a job whose
    /// instance died is reclaimed within it.
    pub lease: f64,
}

impl Config {
    /// Read from the environment.
    pub fn from_env() -> Config {
        Config {
            max_concurrency: crate::config::env_parse("GATHM_MAX_CONCURRENCY")
                .filter(|n| *n > 0)
                .unwrap_or(4),
            max_queue_depth: crate::config::env_parse("GATHM_MAX_QUEUE_DEPTH").unwrap_or(100),
            ttl: crate::config::env_seconds("GATHM_JOB_TTL", false, 86_400.0),
            approval_ttl: crate::config::env_seconds("GATHM_APPROVAL_TTL", false, 86_400.0),
            sweep_interval: crate::config::env_seconds("GATHM_JOB_SWEEP_INTERVAL", true, 60.0),
            callback_secret: std::env::var("GATHM_CALLBACK_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .map(String::into_bytes),
            callback_attempts: crate::config::env_parse("GATHM_CALLBACK_RETRIES")
                .filter(|n| *n > 0)
                .unwrap_or(5),
            callback_backoff: crate::config::env_seconds("GATHM_CALLBACK_BACKOFF", false, 0.5),
            callback_allow: parse_allow(&std::env::var("GATHM_CALLBACK_ALLOW").unwrap_or_default()),
            lease: crate::config::lease_ttl(),
        }
    }
}

// ---------------------------------------------------------------- live output

struct Files {
    out: Appender,
    err: Appender,
    events: Appender,
}

/// Where a shared store keeps the events (`JobStore::append_events`).
struct SharedEvents {
    store: Arc<dyn JobStore>,
    id: String,
}

struct LiveState {
    seq: u64,
    shared: Option<SharedEvents>,
    lines: [u64; 2],
    partial: [Vec<u8>; 2],
    dir: PathBuf,
    files: Option<Files>,
    done: Option<(JobStatus, Option<i32>)>,
}

/// The output of a running job: appended to its files under one lock, with
/// a condition variable that wakes SSE streams.
pub struct Live {
    state: Mutex<LiveState>,
    cond: Condvar,
    /// Bumped with every notification of `cond`, for async followers.
    tick: tokio::sync::watch::Sender<u64>,
}

/// What a stream waiting on a job learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More lines are in the events file (up to this number).
    More(u64),
    /// The job ended (after every line was written).
    Done(JobStatus, Option<i32>),
    /// Nothing happened before the timeout.
    Idle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait on `cond` for at most `left`, poisoning ignored like `lock`.
fn wait_on<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>, left: Duration) -> MutexGuard<'a, T> {
    cond.wait_timeout(guard, left)
        .map(|(g, _)| g)
        .unwrap_or_else(|e| e.into_inner().0)
}

/// Run a pipeline job: step events go to the job's event stream; the result
/// is summarised in an envelope (tool `pipeline`, output = the result JSON).
fn run_pipeline(
    ctx: &Context,
    job: &Job,
    cancel: &Cancel,
    live: &Arc<Live>,
) -> (Envelope, Option<Value>) {
    let started = clock::now();
    let parsed: std::result::Result<crate::pipeline::Pipeline, String> = job
        .pipeline
        .clone()
        .ok_or_else(|| "no pipeline definition".to_string())
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()));
    let (exit_code, output, result) = match parsed {
        Err(e) => (
            i32::from(crate::error::code::DATA_ERR),
            format!("invalid pipeline: {e}"),
            None,
        ),
        Ok(p) => {
            let opts = crate::pipeline::Options {
                member: crate::run::Member {
                    role: job.role.clone(),
                    approved: job.approved,
                    cancel: cancel.clone(),
                    actor: job_actor(job),
                },
                ..crate::pipeline::Options::default()
            };
            let sink = Arc::clone(live);
            let on_event = move |e: &crate::pipeline::Event| {
                if let Ok(v) = serde_json::to_value(e) {
                    sink.event(v);
                }
            };
            let r = crate::pipeline::run(ctx, &p, &opts, &on_event);
            let text = serde_json::to_string(&r).unwrap_or_default();
            (r.exit_code, text, serde_json::to_value(&r).ok())
        }
    };
    let env = Envelope {
        tool: "pipeline".into(),
        run_id: job.id.clone(),
        status: if exit_code == 0 {
            RunStatus::Success
        } else {
            RunStatus::Error
        },
        reason: None,
        exit_code,
        output,
        error: String::new(),
        duration_ms: ((clock::now() - started) * 1000.0) as u64,
        cached: false,
        attempts: Vec::new(),
        timestamp: clock::rfc3339(started),
        served_by: None,
        message: None,
        rule: None,
        retry_after: None,
        warnings: Vec::new(),
    };
    (env, result)
}

/// Where a job keeps the artifacts of its isolated tool's run.
pub fn artifacts_dir(store: &dyn JobStore, id: &str) -> std::path::PathBuf {
    store.job_dir(id).join(crate::workspace::ARTIFACTS)
}

/// The audit actor of a job's runs: `job:<id>`, prefixed by the schedule
/// for scheduled jobs (`schedule:<name>/job:<id>`).
fn job_actor(job: &Job) -> String {
    if job.owner.starts_with("schedule:") {
        format!("{}/job:{}", job.owner, job.id)
    } else {
        format!("job:{}", job.id)
    }
}

/// The envelope of a job whose run panicked.
fn internal_error(job: &Job, msg: String) -> Envelope {
    Envelope {
        tool: job.tool.clone(),
        run_id: job.id.clone(),
        status: RunStatus::Error,
        reason: None,
        exit_code: i32::from(crate::error::code::INTERNAL),
        output: String::new(),
        error: format!("gathm: internal error: {msg}\n"),
        duration_ms: 0,
        cached: false,
        attempts: Vec::new(),
        timestamp: clock::rfc3339(clock::now()),
        served_by: None,
        message: Some(format!("internal error: {msg}")),
        rule: None,
        retry_after: None,
        warnings: Vec::new(),
    }
}

impl Live {
    /// A structured event (pipeline step events) in the event stream.
    fn event(&self, data: Value) {
        let mut st = lock(&self.state);
        st.seq += 1;
        let line = format!("{}\t{data}\n", st.seq);
        Self::write_events(&mut st, line.as_bytes());
        drop(st);
        self.notify();
    }

    /// Append event lines: to the shared store's events, or to the events file.
    fn write_events(st: &mut LiveState, lines: &[u8]) {
        if let Some(sh) = &st.shared {
            let _ = sh.store.append_events(&sh.id, lines);
        } else if let Some(f) = Self::files(st) {
            let _ = f.events.write(lines);
        }
    }

    fn new(dir: &Path, shared: Option<SharedEvents>) -> Live {
        Live {
            state: Mutex::new(LiveState {
                seq: 0,
                shared,
                lines: [0, 0],
                partial: [Vec::new(), Vec::new()],
                dir: dir.to_path_buf(),
                files: None,
                done: None,
            }),
            cond: Condvar::new(),
            tick: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Wake blocking waiters and async followers.
    fn notify(&self) {
        self.cond.notify_all();
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change whenever lines are appended or the job
    /// ends (SSE streams wait on it).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tick.subscribe()
    }

    /// The output files, created on the first output (a silent job creates none).
    fn files(st: &mut LiveState) -> Option<&mut Files> {
        if st.files.is_none() {
            let dir = st.dir.clone();
            st.files = (|| -> Result<Files> {
                Ok(Files {
                    out: Appender::open(&dir.join("stdout"))?,
                    err: Appender::open(&dir.join("stderr"))?,
                    events: Appender::open(&dir.join("events"))?,
                })
            })()
            .ok();
        }
        st.files.as_mut()
    }

    fn emit(st: &mut LiveState, stream: usize, line: &[u8], batch: &mut Vec<u8>) {
        st.seq += 1;
        st.lines[stream] += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let event = crate::state::jobs::OutputEvent {
            event: "output",
            line: &String::from_utf8_lossy(line),
            stream: if stream == 0 { "stdout" } else { "stderr" },
        };
        batch.extend_from_slice(st.seq.to_string().as_bytes());
        batch.push(b'\t');
        let _ = serde_json::to_writer(&mut *batch, &event);
        batch.push(b'\n');
    }

    fn feed(&self, stream: usize, chunk: &[u8]) {
        let mut st = lock(&self.state);
        // A fleet keeps no local files: the events in the store are the output.
        if st.shared.is_none()
            && let Some(f) = Self::files(&mut st)
        {
            let _ = if stream == 0 {
                f.out.write(chunk)
            } else {
                f.err.write(chunk)
            };
        }
        let mut batch = Vec::new();
        let mut partial = std::mem::take(&mut st.partial[stream]);
        partial.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = partial[start..].iter().position(|b| *b == b'\n') {
            Self::emit(&mut st, stream, &partial[start..start + pos], &mut batch);
            start += pos + 1;
        }
        partial.drain(..start);
        st.partial[stream] = partial;
        if !batch.is_empty() {
            if st.shared.is_some() {
                Self::write_events(&mut st, &batch);
            } else if let Some(f) = st.files.as_mut() {
                let _ = f.events.write(&batch);
            }
            drop(st);
            self.notify();
        }
    }

    /// Write unterminated last lines; returns the line counts.
    fn flush(&self) -> [u64; 2] {
        let mut st = lock(&self.state);
        let mut batch = Vec::new();
        for stream in 0..2 {
            let rest = std::mem::take(&mut st.partial[stream]);
            if !rest.is_empty() {
                Self::emit(&mut st, stream, &rest, &mut batch);
            }
        }
        if !batch.is_empty() {
            Self::write_events(&mut st, &batch);
        }
        st.files = None;
        st.lines
    }

    fn finish(&self, status: JobStatus, exit_code: Option<i32>) {
        lock(&self.state).done = Some((status, exit_code));
        self.notify();
    }

    /// Wait until more than `seen` lines exist, the job ends, or `timeout`.
    pub fn wait(&self, seen: u64, timeout: Duration) -> Progress {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.state);
        loop {
            if st.seq > seen {
                return Progress::More(st.seq);
            }
            if let Some((s, c)) = st.done {
                return Progress::Done(s, c);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Progress::Idle;
            }
            st = wait_on(&self.cond, st, left);
        }
    }
}

struct JobSink(Arc<Live>);

impl Sink for JobSink {
    fn stdout(&self, chunk: &[u8]) {
        self.0.feed(0, chunk);
    }
    fn stderr(&self, chunk: &[u8]) {
        self.0.feed(1, chunk);
    }
}

// ---------------------------------------------------------------- the manager

/// A job this server runs now.
struct Running {
    cancel: Cancel,
    live: Arc<Live>,
    token: u64,
    shutdown_cancel: bool,
}

#[derive(Default)]
struct State {
    running: HashMap<String, Running>,
    /// Cancels that reached the store before the claiming worker took the
    /// job in (it cancels it at once).
    cancel_pending: HashSet<String>,
    /// pending + awaiting_approval + submissions being stored.
    waiting: usize,
    /// Bumped whenever a job may have become claimable or ended.
    generation: u64,
    draining: bool,
    stopped: bool,
    /// Drain-by-group: each tool's drain group (`gathm.yaml` groups with
    /// `drain: true`) and its `drain_max`, learnt at submission.
    drain_groups: HashMap<String, (String, u32)>,
    /// The drain group of the job claimed last, and how many in a row.
    drain_last: Option<String>,
    drain_streak: u32,
}

struct Inner {
    ctx: Arc<Context>,
    cfg: Config,
    metrics: Arc<Metrics>,
    store: Arc<dyn JobStore>,
    state: Mutex<State>,
    cond: Condvar,
    /// Bumped when a job starts here or may have changed state (`kick`),
    /// for async followers.
    changes: tokio::sync::watch::Sender<u64>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sender: Mutex<Option<JoinHandle<()>>>,
    _store_lock: Option<state::Lock>,
}

/// The job manager (cheap to clone).
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

/// Why a submission was refused.
#[derive(Debug)]
pub enum SubmitError {
    /// Too many jobs waiting.
    QueueFull(usize),
    /// The server is shutting down.
    ShuttingDown,
    /// The submission is invalid (a refused `callback_url`, a bad
    /// `Idempotency-Key`): 400.
    Invalid(String),
    /// The `Idempotency-Key` names an earlier job of this owner whose
    /// request differs from this one: 422, and nothing is submitted
    /// (returning the earlier job would answer a request that was not made).
    KeyReused(String),
    /// The record could not be stored: `status` is 507 (disk full), 503
    /// (read-only or failing store) or 500. Nothing was acknowledged.
    Store {
        /// The HTTP status to answer with.
        status: u16,
        /// What went wrong.
        message: String,
    },
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        SubmitError::Store {
            status: e.http_status(),
            message: e.to_string(),
        }
    }
}

/// What a submission asks for (validated by the caller).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// What it runs.
    pub kind: JobKind,
    /// Tool name.
    pub tool: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Execution timeout.
    pub timeout: Option<f64>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Wait for an admin's approval first.
    pub awaiting_approval: bool,
    /// The pipeline definition (kind `pipeline`).
    pub pipeline: Option<Value>,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// What the tool reads on stdin (kind `tool`; default nothing).
    pub stdin: Option<String>,
}

/// Why an approval failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveError {
    /// No such job.
    NotFound,
    /// The job is in this state, not awaiting approval.
    NotAwaiting(JobStatus),
}

/// The result of a cancel.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// It was cancelled now (or killed and recorded).
    Now(Job),
    /// It had already ended.
    AlreadyTerminal(Job),
}

/// The events file of a job.
pub fn events_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.home.job_dir(id).join("events")
}

/// The original job of a repeated `Idempotency-Key`, if the new submission
/// (`asked`) is the same request: tool, arguments, timeout, callback,
/// pipeline and stdin.
fn repeat_of(original: Job, asked: &Job) -> Result<Job, SubmitError> {
    let same = original.kind == asked.kind
        && original.tool == asked.tool
        && original.args == asked.args
        && original.timeout.map(f64::to_bits) == asked.timeout.map(f64::to_bits)
        && original.callback_url == asked.callback_url
        && original.pipeline == asked.pipeline
        && original.stdin == asked.stdin;
    if same {
        Ok(original)
    } else {
        Err(SubmitError::KeyReused(format!(
            "this Idempotency-Key was used for job {} with a different request; use a new key for a new request",
            original.id
        )))
    }
}

/// Check an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn idempotency_key(raw: Option<&str>) -> std::result::Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(k) if k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err("Idempotency-Key must be 1 to 255 visible ASCII characters".into()),
    }
}

/// Read the paging and filter parameters of `GET /api/v1/jobs` (`limit`
/// 1..=1000, default 100; `after` a job id; `tool`).
fn list_query(
    get: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(usize, Option<String>, Option<String>), String> {
    let limit = match get("limit").filter(|s| !s.is_empty()) {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| format!("invalid limit {s:?}: 1 to 1000"))?,
    };
    let after = get("after").filter(|s| !s.is_empty());
    let tool = get("tool").filter(|s| !s.is_empty());
    Ok((limit, after, tool))
}

/// stdout so far, up to the capture limit.
fn read_output(path: &Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(OUTPUT_LIMIT).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Internal(format!("cannot start {name}: {e}")))
}

impl Jobs {
    /// Open the store (importing an old home's records on first start),
    /// recover jobs left by a crash, start the workers, the sweeper and the
    /// callback sender. One server per `GATHM_HOME`.
    pub fn start(ctx: Arc<Context>, cfg: Config, metrics: Arc<Metrics>) -> Result<Jobs> {
        let mut warnings = Vec::new();
        let store: Arc<dyn JobStore> = match ctx.state_url() {
            None => Arc::new(crate::state::sqlite::SqliteStore::open(&ctx.home.jobs)?),
            Some(url) => {
                let volatile = std::env::var("GATHM_REDIS_VOLATILE").is_ok_and(|v| v == "1");
                let s = crate::state::redis::RedisStore::open(&url, &ctx.home.jobs, volatile)
                    .map_err(|e| Error::Usage(format!("cannot use the job store: {e}")))?;
                warnings = s.warnings().to_vec();
                Arc::new(s)
            }
        };
        // A read-only home cannot hold the lock, nor can any server change it.
        let store_lock = if store.read_only() {
            None
        } else {
            let lock_target = ctx.home.jobs.join("server");
            Some(state::try_lock(&lock_target)?.ok_or_else(|| {
                Error::Usage(format!(
                    "another gathm serve is using {} (one server per GATHM_HOME)",
                    ctx.home.jobs.display()
                ))
            })?)
        };
        let jobs = Jobs {
            inner: Arc::new(Inner {
                ctx,
                cfg,
                metrics,
                store,
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
                changes: tokio::sync::watch::Sender::new(0),
                threads: Mutex::new(Vec::new()),
                sender: Mutex::new(None),
                _store_lock: store_lock,
            }),
        };
        for w in &warnings {
            // Said at start, on stderr and in the log.
            eprintln!("gathm serve: warning: {w}");
            jobs.inner
                .ctx
                .logger
                .app(Level::Warn, "jobs", w, serde_json::Map::new());
        }
        if jobs.store().read_only() {
            // Jobs can be read; submissions get 503. Nothing runs.
            jobs.inner.ctx.logger.app(
                Level::Warn,
                "jobs",
                &format!(
                    "{} is on a read-only filesystem: jobs can be read, not submitted",
                    jobs.inner.ctx.home.jobs.display()
                ),
                serde_json::Map::new(),
            );
            return Ok(jobs);
        }
        jobs.recover()?;
        let mut threads = Vec::new();
        for i in 0..jobs.inner.cfg.max_concurrency {
            let j = jobs.clone();
            threads.push(spawn(&format!("job-worker-{i}"), move || j.worker())?);
        }
        let j = jobs.clone();
        threads.push(spawn("job-sweeper", move || j.sweeper())?);
        *lock(&jobs.inner.threads) = threads;
        let j = jobs.clone();
        *lock(&jobs.inner.sender) = Some(spawn("job-callbacks", move || j.deliver_loop())?);
        Ok(jobs)
    }

    fn store(&self) -> &dyn JobStore {
        &*self.inner.store
    }

    /// The folder holding job `id`'s artifacts (absent until its run ends).
    pub fn artifacts(&self, id: &str) -> PathBuf {
        artifacts_dir(self.store(), id)
    }

    /// The store, when it is shared with other instances (a fleet): job
    /// events are read from it rather than from local files.
    pub fn shared_store(&self) -> Option<Arc<dyn JobStore>> {
        self.store().shared().then(|| Arc::clone(&self.inner.store))
    }

    /// Jobs left `running` by a crash become `failed`/`interrupted` (their
    /// leftover processes killed); the waiting count is rebuilt.
    fn recover(&self) -> Result<()> {
        let store = self.store();
        if store.shared() {
            // Other instances run the other jobs: only expired leases are
            // taken, by the same reclaim as every sweep.
            self.reclaim();
            let counts = store.counts()?;
            lock(&self.inner.state).waiting = (counts[0] + counts[1]) as usize;
            return Ok(());
        }
        let running: Vec<String> = store
            .list(&ListQuery {
                status: Some(JobStatus::Running),
                limit: i64::MAX as usize,
                ..ListQuery::default()
            })?
            .into_iter()
            .map(|j| j.id)
            .collect();
        kill_leftovers(&running);
        let requeue = |j: &Job| self.retries_on_interrupt(j);
        for job in store
            .reclaim(true, &requeue)?
            .into_iter()
            .filter(|j| j.status == JobStatus::Failed)
        {
            let lines = count_lines(store, &job.id);
            store.transition(
                &job.id,
                &[JobStatus::Failed],
                JobStatus::Failed,
                &Change {
                    lines: Some(lines),
                    ..Change::default()
                },
            )?;
        }
        let counts = store.counts()?;
        lock(&self.inner.state).waiting = (counts[0] + counts[1]) as usize;
        Ok(())
    }

    /// The first of a tool's concurrency groups that `gathm.yaml` marks
    /// `drain: true`, with its `drain_max`.
    fn drain_group_of(&self, tool: &str) -> Option<(String, u32)> {
        let ctx = &self.inner.ctx;
        let Ok(Some((_, cfg))) = ctx.config() else {
            return None;
        };
        let t = ctx.search.find(tool).ok()??;
        t.manifest
            .concurrency_group
            .as_ref()?
            .to_vec()
            .into_iter()
            .find_map(|g| {
                cfg.groups
                    .get(&g)
                    .filter(|d| d.drain)
                    .map(|d| (g.clone(), d.drain_max.max(1)))
            })
    }

    /// The tools to prefer at the next claim: those of the group that ran
    /// last, while it has run fewer than `drain_max` in a row (then FIFO
    /// again, so no group starves).
    fn drain_preference(&self) -> Vec<String> {
        let st = lock(&self.inner.state);
        let Some(last) = &st.drain_last else {
            return Vec::new();
        };
        let max = st
            .drain_groups
            .values()
            .find(|(g, _)| g == last)
            .map_or(1, |(_, m)| *m);
        if st.drain_streak >= max {
            return Vec::new();
        }
        st.drain_groups
            .iter()
            .filter(|(_, (g, _))| g == last)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Whether an interrupted job runs again: its tool's manifest says
    /// `retry_on_interrupt: true` (pipeline jobs never do).
    fn retries_on_interrupt(&self, j: &Job) -> bool {
        j.kind == JobKind::Tool
            && matches!(self.inner.ctx.search.find(&j.tool), Ok(Some(t)) if t.manifest.retry_on_interrupt == Some(true))
    }

    /// Wake workers, streams and the callback sender.
    fn kick(&self) {
        lock(&self.inner.state).generation += 1;
        self.inner.cond.notify_all();
        self.changed();
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change when a job starts here or may have
    /// changed state (SSE streams waiting for a job to start).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Accept a job: committed to the store, then queued (or left awaiting
    /// approval). With an `Idempotency-Key` seen from the same owner within
    /// the TTL, the original job is returned instead.
    pub fn submit(&self, owner: &str, role: &str, s: Submission) -> Result<Job, SubmitError> {
        if let Some(url) = &s.callback_url {
            check_callback(url, &self.inner.cfg.callback_allow).map_err(SubmitError::Invalid)?;
        }
        let key = idempotency_key(s.idempotency_key.as_deref()).map_err(SubmitError::Invalid)?;
        let idem = key.map(|key| Idempotency {
            key,
            ttl: self.inner.cfg.ttl,
        });
        let job = Job {
            status: if s.awaiting_approval {
                JobStatus::AwaitingApproval
            } else {
                JobStatus::Pending
            },
            timeout: s.timeout,
            callback_url: s.callback_url,
            pipeline: s.pipeline,
            stdin: s.stdin,
            ..Job::new(s.kind, s.tool, s.args, owner, role)
        };
        {
            let mut st = lock(&self.inner.state);
            if st.draining {
                return Err(SubmitError::ShuttingDown);
            }
            if st.waiting >= self.inner.cfg.max_queue_depth {
                drop(st);
                // A retry of a submission that was stored gets its job, full queue or not.
                if let Some(i) = &idem
                    && let Ok(Some(original)) = self.store().find_idempotent(owner, i)
                {
                    return repeat_of(original, &job);
                }
                return Err(SubmitError::QueueFull(self.inner.cfg.max_queue_depth));
            }
            st.waiting += 1;
        }
        if job.kind == JobKind::Tool
            && let Some(g) = self.drain_group_of(&job.tool)
        {
            lock(&self.inner.state)
                .drain_groups
                .insert(job.tool.clone(), g);
        }
        // Kept to compare with the original when the key was seen before.
        let asked = idem.as_ref().map(|_| job.clone());
        match self.store().submit(job, idem.as_ref()) {
            Ok(Submitted::New(job)) => {
                self.kick();
                Ok(job)
            }
            Ok(Submitted::Existing(job)) => {
                let mut st = lock(&self.inner.state);
                st.waiting = st.waiting.saturating_sub(1);
                drop(st);
                match asked {
                    Some(asked) => repeat_of(job, &asked),
                    None => Ok(job),
                }
            }
            Err(e) => {
                {
                    let mut st = lock(&self.inner.state);
                    st.waiting = st.waiting.saturating_sub(1);
                }
                self.log_error("submit", &e.clone().into());
                Err(e.into())
            }
        }
    }

    fn visible(job: &Job, owner: &str, admin: bool) -> bool {
        admin || job.owner == owner
    }

    /// The live output of a job this server runs.
    fn live_of(&self, id: &str) -> Option<Arc<Live>> {
        lock(&self.inner.state)
            .running
            .get(id)
            .map(|r| Arc::clone(&r.live))
    }

    /// A job the caller may see, with its envelope when it has ended and
    /// its output so far while it runs.
    pub fn get(&self, id: &str, owner: &str, admin: bool) -> Option<Job> {
        let live = self.live_of(id);
        let mut job = self.store().get(id).ok()??;
        if !Self::visible(&job, owner, admin) {
            return None;
        }
        if job.status == JobStatus::Running
            && let Some(live) = live
            && !self.store().shared()
        {
            let ls = lock(&live.state);
            job.stdout_lines = ls.lines[0];
            job.stderr_lines = ls.lines[1];
            drop(ls);
            job.live_output = Some(read_output(&self.store().job_dir(id).join("stdout")));
        } else if job.status == JobStatus::Running && self.store().shared() {
            // A fleet (this instance or another runs it): the output so far
            // is in the shared events.
            let out = output_of_events(self.store(), id);
            job.stdout_lines = out.matches('\n').count() as u64;
            job.live_output = Some(out);
        }
        Some(job)
    }

    /// The job and its live output (while it runs), for streaming.
    pub fn stream_source(
        &self,
        id: &str,
        owner: &str,
        admin: bool,
    ) -> Option<(Job, Option<Arc<Live>>)> {
        // The live handle first: a job whose handle is gone has its final
        // record in the store already.
        let live = self.live_of(id);
        let job = self.store().get(id).ok()??;
        if !Self::visible(&job, owner, admin) {
            return None;
        }
        Some((job, live))
    }

    /// Wait for a job that has not started yet to start or end (for streams).
    pub fn wait_started(&self, id: &str, timeout: Duration) -> Option<(Job, Option<Arc<Live>>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.live_of(id);
            let job = self.store().get(id).ok()??;
            if live.is_some() || job.status.terminal() {
                return Some((job, live));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some((job, None));
            }
            let st = lock(&self.inner.state);
            drop(wait_on(
                &self.inner.cond,
                st,
                left.min(Duration::from_millis(100)),
            ));
        }
    }

    /// The caller's jobs (all for admins), newest first, without envelopes:
    /// the first 100.
    pub fn list(&self, owner: &str, admin: bool, status: Option<JobStatus>) -> Vec<Job> {
        self.list_page(owner, admin, status, &|_| None)
            .map(|(v, _)| v)
            .unwrap_or_default()
    }

    /// A page of the caller's jobs (all for admins), newest first, without
    /// envelopes; `get` reads the query parameters `limit`, `after` and
    /// `tool`. Returns the page and the cursor of the next one.
    pub fn list_page(
        &self,
        owner: &str,
        admin: bool,
        status: Option<JobStatus>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<(Vec<Job>, Option<String>), String> {
        let (limit, after, tool) = list_query(get)?;
        let q = ListQuery {
            owner: (!admin).then(|| owner.to_string()),
            status,
            tool,
            after,
            limit,
        };
        let v = self.store().list(&q).map_err(|e| e.to_string())?;
        let next = (v.len() == limit)
            .then(|| v.last().map(|j| j.id.clone()))
            .flatten();
        Ok((v, next))
    }

    /// Cancel a job: a queued one ends at once; a running one has its process
    /// group killed and the call waits (bounded) for the record.
    pub fn cancel(&self, id: &str, owner: &str, admin: bool) -> Option<Cancelled> {
        let job = self.store().get(id).ok()??;
        if !Self::visible(&job, owner, admin) {
            return None;
        }
        if job.status.terminal() {
            return Some(Cancelled::AlreadyTerminal(job));
        }
        // Held across the store's answer, so a worker taking the job in
        // sees the request (`cancel_pending`) or is seen (`running`).
        let mut st = lock(&self.inner.state);
        let r = match self.store().request_cancel(id) {
            Ok(r) => r,
            Err(e) => {
                drop(st);
                self.log_error(id, &e.into());
                return Some(Cancelled::Now(job));
            }
        };
        match r {
            CancelRequest::NotFound => None,
            CancelRequest::Terminal(j) => Some(Cancelled::AlreadyTerminal(j)),
            CancelRequest::Cancelled(j) => {
                st.waiting = st.waiting.saturating_sub(1);
                st.generation += 1;
                drop(st);
                self.inner.cond.notify_all();
                Some(Cancelled::Now(j))
            }
            CancelRequest::Requested(j) => {
                match st.running.get(id) {
                    Some(r) => r.cancel.cancel(),
                    // Another instance runs it (it polls the request), or it
                    // is being taken in here.
                    None if !self.store().shared() => {
                        st.cancel_pending.insert(id.to_string());
                    }
                    None => {}
                }
                drop(st);
                let wait = Duration::from_secs_f64(self.inner.ctx.settings.kill_grace + 3.0);
                let deadline = Instant::now() + wait;
                let mut last = j;
                loop {
                    if let Ok(Some(j)) = self.store().get(id) {
                        last = j;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if last.status.terminal() || left.is_zero() {
                        return Some(Cancelled::Now(last));
                    }
                    let st = lock(&self.inner.state);
                    drop(wait_on(
                        &self.inner.cond,
                        st,
                        left.min(Duration::from_millis(50)),
                    ));
                }
            }
        }
    }

    /// Approve a job that awaits approval: it is queued with `approved`.
    pub fn approve(&self, id: &str) -> std::result::Result<Job, ApproveError> {
        let change = Change {
            approved: Some(true),
            ..Change::default()
        };
        match self.store().transition(
            id,
            &[JobStatus::AwaitingApproval],
            JobStatus::Pending,
            &change,
        ) {
            Ok(Some(job)) => {
                self.kick();
                Ok(job)
            }
            Ok(None) | Err(_) => match self.store().get(id) {
                Ok(Some(j)) => Err(ApproveError::NotAwaiting(j.status)),
                _ => Err(ApproveError::NotFound),
            },
        }
    }

    /// (pending, running, count by status) for metrics.
    pub fn counts(&self) -> (usize, usize, Vec<(&'static str, usize)>) {
        let by = self.store().counts().unwrap_or_default();
        let running = lock(&self.inner.state).running.len();
        (
            by[0] as usize,
            running,
            STATUSES
                .iter()
                .copied()
                .zip(by.iter().map(|n| *n as usize))
                .collect(),
        )
    }

    /// Whether the manager is draining for shutdown.
    pub fn draining(&self) -> bool {
        lock(&self.inner.state).draining
    }

    /// Wait until no job runs or the deadline passes.
    fn wait_idle<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Instant,
    ) -> MutexGuard<'a, State> {
        while !st.running.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = wait_on(&self.inner.cond, st, left);
        }
        st
    }

    /// Stop starting jobs, give running ones `grace`, then cancel them and
    /// wait for their records. Queued jobs stay `pending` in the store;
    /// callbacks not delivered stay in the outbox for the next start.
    pub fn shutdown(&self, grace: Duration) {
        let mut st = lock(&self.inner.state);
        st.draining = true;
        self.inner.cond.notify_all();
        st = self.wait_idle(st, Instant::now() + grace);
        if !st.running.is_empty() {
            for r in st.running.values_mut() {
                r.shutdown_cancel = true;
                r.cancel.cancel();
            }
            let kill = Duration::from_secs_f64(self.inner.ctx.settings.kill_grace + 5.0);
            st = self.wait_idle(st, Instant::now() + kill);
        }
        st.stopped = true;
        drop(st);
        self.inner.cond.notify_all();
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for t in threads {
            let _ = t.join();
        }
        if let Some(t) = lock(&self.inner.sender).take() {
            let _ = t.join();
        }
        self.store().close();
    }

    fn log_error(&self, id: &str, err: &Error) {
        let mut extra = serde_json::Map::new();
        extra.insert("job".into(), id.into());
        self.inner
            .ctx
            .logger
            .app(Level::Error, "jobs", &format!("job {id}: {err}"), extra);
    }

    /// Claim the next job, waiting while there is none; None when stopping.
    fn next(&self) -> Option<(Job, u64, Cancel, Arc<Live>)> {
        loop {
            let seen = {
                let st = lock(&self.inner.state);
                if st.stopped || st.draining {
                    return None;
                }
                st.generation
            };
            let prefer = self.drain_preference();
            let claim = match self.store().claim_preferring(self.inner.cfg.lease, &prefer) {
                Ok(c) => c,
                Err(e) => {
                    self.log_error("claim", &e.into());
                    None
                }
            };
            let Some(c) = claim else {
                let mut st = lock(&self.inner.state);
                // Other instances' submissions wake nobody here: poll sooner.
                let poll = if self.store().shared() { 0.2 } else { 1.0 };
                let deadline = Instant::now() + Duration::from_secs_f64(poll);
                while st.generation == seen && !st.stopped && !st.draining {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = wait_on(&self.inner.cond, st, left);
                }
                continue;
            };
            return self.take_in(c);
        }
    }

    /// Register a claimed job as running here (or give it back when the
    /// drain began meanwhile).
    fn take_in(&self, c: crate::state::jobs::Claim) -> Option<(Job, u64, Cancel, Arc<Live>)> {
        let id = c.job.id.clone();
        let mut st = lock(&self.inner.state);
        let group = st.drain_groups.get(&c.job.tool).map(|(g, _)| g.clone());
        if group.is_some() && group == st.drain_last {
            st.drain_streak += 1;
        } else {
            st.drain_streak = u32::from(group.is_some());
            st.drain_last = group;
        }
        if st.draining || st.stopped {
            drop(st);
            // Claimed as the drain began: back to the queue, untouched.
            let _ = self.store().transition(
                &id,
                &[JobStatus::Running],
                JobStatus::Pending,
                &Change::default(),
            );
            return None;
        }
        let shared = self.store().shared().then(|| SharedEvents {
            store: Arc::clone(&self.inner.store),
            id: id.clone(),
        });
        let live = Arc::new(Live::new(&self.store().job_dir(&id), shared));
        let cancel = Cancel::new();
        if st.cancel_pending.remove(&id) {
            cancel.cancel();
        }
        st.running.insert(
            id,
            Running {
                cancel: cancel.clone(),
                live: Arc::clone(&live),
                token: c.token,
                shutdown_cancel: false,
            },
        );
        st.waiting = st.waiting.saturating_sub(1);
        st.generation += 1;
        drop(st);
        self.inner.cond.notify_all();
        self.changed();
        Some((c.job, c.token, cancel, live))
    }

    fn worker(&self) {
        let mut next = self.next();
        while let Some((mut job, token, cancel, live)) = next {
            let ctx = &self.inner.ctx;
            // A panic in a run fails this job (`internal_error`) and the
            // worker goes on with the queue.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job.kind {
                JobKind::Tool => {
                    let mut req = RunRequest::new(
                        &job.tool,
                        job.args.iter().map(OsString::from).collect(),
                        &job.role,
                    );
                    req.approved = job.approved;
                    req.timeout = job.timeout;
                    req.sink = Some(Arc::new(JobSink(Arc::clone(&live))));
                    req.cancel = cancel.clone();
                    req.rate_limit = false;
                    req.actor = job_actor(&job);
                    if let Some(input) = &job.stdin {
                        req.stdin = crate::runner::Stdin::Bytes(input.clone().into_bytes());
                    }
                    // Lets a restarted server find this job's processes if
                    // the server dies while it runs (see `kill_leftovers`).
                    req.env.push(("GATHM_JOB_ID".into(), job.id.clone().into()));
                    // An isolated tool's artifacts outlive its workspace
                    // here, until the job is swept (`serve/artifacts.rs`).
                    req.artifacts_to = Some(artifacts_dir(self.store(), &job.id));
                    run::run(ctx, &req)
                }
                JobKind::Pipeline => {
                    let (env, result) = run_pipeline(ctx, &job, &cancel, &live);
                    job.result = result;
                    env
                }
            }));
            let (env, panicked) = match ran {
                Ok(env) => (env, false),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    self.log_error(
                        &job.id,
                        &Error::Internal(format!("the job panicked: {msg}")),
                    );
                    (internal_error(&job, msg), true)
                }
            };
            self.inner.metrics.execution(&env);
            let lines = live.flush();
            let shutdown = lock(&self.inner.state)
                .running
                .get(&job.id)
                .is_some_and(|r| r.shutdown_cancel);
            let (status, reason) = if panicked {
                (JobStatus::Failed, Some("internal_error".into()))
            } else if cancel.is_cancelled() {
                (
                    JobStatus::Cancelled,
                    Some(if shutdown { "shutdown" } else { "cancelled" }.into()),
                )
            } else if env.status == RunStatus::Success {
                (JobStatus::Completed, None)
            } else {
                (
                    JobStatus::Failed,
                    Some(match env.reason {
                        Some(_) => metrics::outcome(&env),
                        None => "exit_code".into(),
                    }),
                )
            };
            let code = Some(env.exit_code);
            let f = Finish {
                status,
                reason,
                exit_code: code,
                stdout_lines: lines[0],
                stderr_lines: lines[1],
                envelope: Some(env),
                result: job.result.take(),
            };
            // The end and the next claim share one commit, unless draining.
            let draining = lock(&self.inner.state).draining;
            let (done, claim) = if draining {
                (self.store().finish(&job.id, token, &f), None)
            } else {
                let prefer = self.drain_preference();
                match self.store().finish_and_claim_preferring(
                    &job.id,
                    token,
                    &f,
                    self.inner.cfg.lease,
                    &prefer,
                ) {
                    Ok((d, c)) => (Ok(d), c),
                    Err(e) => (Err(e), None),
                }
            };
            match done {
                Ok(Some(_)) => {}
                Ok(None) => self.log_error(
                    &job.id,
                    &Error::Internal("its claim was superseded: the end is not recorded".into()),
                ),
                Err(e) => self.log_error(&job.id, &e.into()),
            }
            {
                let mut st = lock(&self.inner.state);
                st.running.remove(&job.id);
                st.generation += 1;
            }
            live.finish(status, code);
            self.inner.cond.notify_all();
            next = match claim {
                Some(c) => self.take_in(c),
                None => self.next(),
            };
        }
    }

    fn sweeper(&self) {
        let every = self.inner.cfg.sweep_interval;
        let beat = self.inner.cfg.lease / 3.0;
        let shared = self.store().shared();
        let tick = if shared {
            every.min(beat).min(FLEET_POLL)
        } else {
            every.min(beat)
        };
        let tick = Duration::from_secs_f64(tick);
        let mut last_sweep = Instant::now();
        let mut last_beat = Instant::now();
        loop {
            {
                let st = lock(&self.inner.state);
                let (st, _) = self
                    .inner
                    .cond
                    .wait_timeout_while(st, tick, |s| !s.stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if st.stopped {
                    return;
                }
            }
            if !shared || last_beat.elapsed().as_secs_f64() >= beat - tick.as_secs_f64() / 2.0 {
                self.heartbeat();
                last_beat = Instant::now();
            }
            if shared {
                // Cancels asked through other instances; jobs of instances
                // that died; the fleet's queue depth (other instances submit
                // and claim too), for `GATHM_MAX_QUEUE_DEPTH`.
                self.poll_cancels();
                self.reclaim();
                if let Ok(c) = self.store().counts() {
                    lock(&self.inner.state).waiting = (c[0] + c[1]) as usize;
                }
            }
            if last_sweep.elapsed().as_secs_f64() >= every {
                self.sweep();
                last_sweep = Instant::now();
            }
        }
    }

    /// Kill the jobs running here whose cancel was asked through another
    /// instance (the store's `cancel_requested`).
    fn poll_cancels(&self) {
        let ids: Vec<String> = lock(&self.inner.state)
            .running
            .iter()
            .filter(|(_, r)| !r.cancel.is_cancelled())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Ok(true) = self.store().cancel_requested(&id)
                && let Some(r) = lock(&self.inner.state).running.get(&id)
            {
                r.cancel.cancel();
            }
        }
    }

    /// Jobs whose lease ran out (their instance died or stalled) become
    /// `failed`/`interrupted`, or `pending` again with `retry_on_interrupt`.
    fn reclaim(&self) {
        let requeue = |j: &Job| self.retries_on_interrupt(j);
        match self.store().reclaim(false, &requeue) {
            Ok(v) => {
                let failed: Vec<String> = v
                    .iter()
                    .filter(|j| j.status == JobStatus::Failed)
                    .map(|j| j.id.clone())
                    .collect();
                if self.store().shared() {
                    // Their instance is gone: processes it left on this
                    // machine go too.
                    kill_leftovers(&failed);
                }
                let again = v.iter().filter(|j| j.status == JobStatus::Pending).count();
                if again > 0 {
                    lock(&self.inner.state).waiting += again;
                    self.kick();
                }
            }
            Err(e) => self.log_error("sweep", &e.into()),
        }
    }

    /// Extend the leases of the jobs this server runs.
    fn heartbeat(&self) {
        let tokens: Vec<(String, u64)> = lock(&self.inner.state)
            .running
            .iter()
            .map(|(id, r)| (id.clone(), r.token))
            .collect();
        for (id, token) in tokens {
            match self.store().heartbeat(&id, token, self.inner.cfg.lease) {
                Ok(true) => {}
                Ok(false) => {
                    // Reclaimed meanwhile: stop running it.
                    if let Some(r) = lock(&self.inner.state).running.get(&id) {
                        r.cancel.cancel();
                    }
                }
                Err(e) => self.log_error(&id, &e.into()),
            }
        }
    }

    /// Fail jobs whose approval expired, reclaim expired leases, and remove
    /// terminal jobs older than the TTL with their files. Returns how many
    /// were removed.
    pub fn sweep(&self) -> usize {
        let store = self.store();
        let now = store.now();
        match store.expire_approvals(now - self.inner.cfg.approval_ttl) {
            Ok(v) if !v.is_empty() => {
                let mut st = lock(&self.inner.state);
                st.waiting = st.waiting.saturating_sub(v.len());
                st.generation += 1;
                drop(st);
                self.inner.cond.notify_all();
            }
            Ok(_) => {}
            Err(e) => self.log_error("sweep", &e.into()),
        }
        self.reclaim();
        let old = match store.sweep(now - self.inner.cfg.ttl) {
            Ok(v) => v,
            Err(e) => {
                self.log_error("sweep", &e.into());
                return 0;
            }
        };
        for id in &old {
            if let Err(e) = state::remove_dir_all(&store.job_dir(id)) {
                self.log_error(id, &e);
            }
        }
        let work = self.inner.ctx.home.work();
        if let Err(e) = crate::workspace::sweep(&work, now, crate::workspace::ttl()) {
            self.log_error("sweep", &e);
        }
        old.len()
    }

    /// Deliver the outbox's due callbacks until shutdown; after it, one
    /// last pass over what is due, bounded; the rest waits for the next start.
    fn deliver_loop(&self) {
        let cfg = &self.inner.cfg;
        loop {
            let stopped = lock(&self.inner.state).stopped;
            let due = self.store().outbox_due(32).unwrap_or_default();
            let pass = Instant::now();
            for d in &due {
                if stopped && pass.elapsed() > Duration::from_secs(2) {
                    break; // Shutting down: the rest waits for the next start.
                }
                let outcome = deliver(d, cfg);
                let r = match outcome {
                    Ok(()) => self.store().outbox_done(&d.id),
                    Err(why) => {
                        let attempt = d.attempts + 1;
                        let delay =
                            (cfg.callback_backoff * 2f64.powi(attempt as i32 - 1)).min(300.0);
                        self.store().outbox_retry(
                            &d.id,
                            delay,
                            &why,
                            attempt >= cfg.callback_attempts,
                        )
                    }
                };
                if let Err(e) = r {
                    self.log_error(&d.job, &e.into());
                }
            }
            if stopped {
                return;
            }
            if due.len() == 32 {
                continue;
            }
            let wait = self
                .store()
                .outbox_next()
                .ok()
                .flatten()
                .unwrap_or(5.0)
                .clamp(0.0, 5.0);
            // Polled (an indexed query) rather than woken by every job's end.
            let st = lock(&self.inner.state);
            let _ = self.inner.cond.wait_timeout_while(
                st,
                Duration::from_secs_f64(wait.min(0.2)),
                |s| !s.stopped,
            );
        }
    }
}

/// Kill the process groups of tools still running for jobs that a crashed
/// server left `running` (found through `GATHM_JOB_ID` in `/proc/*/environ`).
fn kill_leftovers(ids: &[String]) -> usize {
    use rustix::process::{Pid, Signal};
    if ids.is_empty() {
        return 0;
    }
    let wanted: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| format!("GATHM_JOB_ID={id}").into_bytes())
        .collect();
    let own_group = rustix::process::getpgid(None).ok();
    let mut killed = 0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in rd.flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if !env
            .split(|b| *b == 0)
            .any(|var| wanted.iter().any(|w| w == var))
        {
            continue;
        }
        if let Ok(group) = rustix::process::getpgid(Some(pid))
            && Some(group) != own_group
        {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        killed += 1;
    }
    killed
}

/// The stdout and stderr lines in a job's events.
fn count_lines(store: &dyn JobStore, id: &str) -> [u64; 2] {
    let mut n = [0u64; 2];
    let mut after = 0;
    while let Ok(v) = store.read_events(id, after) {
        let Some(last) = v.last().map(|(k, _)| *k) else {
            break;
        };
        for (_, line) in &v {
            if line.contains("\"stream\":\"stderr\"") {
                n[1] += 1;
            } else {
                n[0] += 1;
            }
        }
        after = last;
    }
    n
}

/// A running job's stdout lines so far, from its events (a job another
/// instance runs).
fn output_of_events(store: &dyn JobStore, id: &str) -> String {
    let mut out = String::new();
    let mut after = 0;
    while let Ok(v) = store.read_events(id, after) {
        let Some(last) = v.last().map(|(k, _)| *k) else {
            break;
        };
        for (_, line) in &v {
            if let Ok(e) = serde_json::from_str::<Value>(line)
                && e["stream"] == "stdout"
                && let Some(l) = e["line"].as_str()
                && out.len() < OUTPUT_LIMIT as usize
            {
                out.push_str(l);
                out.push('\n');
            }
        }
        after = last;
    }
    out
}

// ---------------------------------------------------------------- callbacks

/// An entry of `GATHM_CALLBACK_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// A host name, compared case-insensitively.
    Host(String),
    /// A network: address and prefix length (a bare address is /32 or /128).
    Net(IpAddr, u8),
}

/// Parse `GATHM_CALLBACK_ALLOW`: hosts and CIDRs separated by commas or spaces.
pub fn parse_allow(s: &str) -> Vec<Allow> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            let (addr, bits) = match x.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (x, None),
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    Allow::Net(ip, bits.unwrap_or(max).min(max))
                }
                Err(_) => Allow::Host(x.to_ascii_lowercase()),
            }
        })
        .collect()
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = u32::from(bits);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// Loopback, private, link-local (cloud metadata), shared, unspecified,
/// broadcast or multicast: not a place a callback may reach by default.
pub fn internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if let Some(v4) = a.to_ipv4_mapped() {
                return internal_address(IpAddr::V4(v4));
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Check a callback URL: http(s), and every address its host resolves to
/// outside loopback/private/link-local/metadata ranges unless
/// `GATHM_CALLBACK_ALLOW` allows the host or the address. Returns the
/// addresses to connect to (empty: let the client resolve, the host is
/// allowed by name or did not resolve now).
pub fn check_callback(url: &str, allow: &[Allow]) -> std::result::Result<Vec<SocketAddr>, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid callback_url: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("callback_url must be an http:// or https:// URL".into());
    }
    let host = u
        .host_str()
        .ok_or("callback_url has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if allow
        .iter()
        .any(|a| matches!(a, Allow::Host(h) if *h == host))
    {
        return Ok(Vec::new());
    }
    let port = u.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match (host.as_str(), port).to_socket_addrs() {
            Ok(a) => a.collect(),
            // Does not resolve now: re-checked when it is delivered.
            Err(_) => return Ok(Vec::new()),
        },
    };
    for a in &addrs {
        let ip = a.ip();
        let allowed = allow
            .iter()
            .any(|x| matches!(x, Allow::Net(n, b) if in_net(ip, *n, *b)));
        if internal_address(ip) && !allowed {
            return Err(format!(
                "callback_url {host:?} is a loopback, private, link-local or metadata address ({ip}); GATHM_CALLBACK_ALLOW can allow it"
            ));
        }
    }
    Ok(addrs)
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST one delivery: the destination is checked again after resolution
/// and the connection pinned to the checked addresses; redirects are not
/// followed; any 2xx is success.
fn deliver(d: &crate::state::jobs::Delivery, cfg: &Config) -> std::result::Result<(), String> {
    let addrs = check_callback(&d.url, &cfg.callback_allow)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gathm/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = reqwest::Url::parse(&d.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        && !addrs.is_empty()
        && host.parse::<IpAddr>().is_err()
    {
        b = b.resolve_to_addrs(&host, &addrs);
    }
    let client = b.build().map_err(|e| e.to_string())?;
    let mut rb = client
        .post(&d.url)
        .header("Content-Type", "application/json")
        .header("X-Gathm-Job", &d.job)
        .header("X-Gathm-Delivery", &d.id)
        .header("X-Gathm-Delivery-Attempt", (d.attempts + 1).to_string());
    if let Some(secret) = &cfg.callback_secret {
        rb = rb.header("X-Gathm-Signature", signature(secret, &d.body));
    }
    match rb.body(d.body.clone()).send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status().as_u16())),
        Err(e) => Err(crate::client::describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in STATUSES {
            assert_eq!(JobStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(JobStatus::parse("done").is_none());
        assert!(JobStatus::Cancelled.terminal());
        assert!(!JobStatus::AwaitingApproval.terminal());
    }

    #[test]
    fn signature_is_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn callbacks_to_internal_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]:80/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://localhost:8080/",
        ] {
            assert!(check_callback(url, &[]).is_err(), "{url}");
        }
        assert!(check_callback("ftp://example.com/", &[]).is_err());
        assert!(check_callback("http://93.184.215.14/hook", &[]).is_ok());
        let allow = parse_allow("127.0.0.0/8, hooks.internal 10.0.0.0/8,[::1]");
        assert_eq!(allow[1], Allow::Host("hooks.internal".into()));
        assert!(check_callback("http://127.0.0.1:9/x", &allow).is_ok());
        assert!(check_callback("http://10.9.9.9/x", &allow).is_ok());
        assert!(check_callback("http://[::1]:9/x", &allow).is_ok());
        assert!(check_callback("http://hooks.internal/x", &allow).is_ok());
        assert!(check_callback("http://169.254.169.254/", &allow).is_err());
    }

    #[test]
    fn idempotency_keys_and_list_queries_are_checked() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some(" k-1 ")), Ok(Some("k-1".into())));
        assert!(idempotency_key(Some("a b")).is_err());
        assert!(idempotency_key(Some(&"x".repeat(256))).is_err());
        let q = |k: &str| match k {
            "limit" => Some("5".to_string()),
            "tool" => Some("t".to_string()),
            _ => None,
        };
        assert_eq!(list_query(&q).unwrap(), (5, None, Some("t".into())));
        assert!(list_query(&|_| Some("0".into())).is_err());
    }

    #[test]
    fn live_output_is_split_into_numbered_lines() {
        let dir = tempfile::tempdir().unwrap();
        let live = Live::new(dir.path(), None);
        live.feed(0, b"a\nb");
        live.feed(1, b"e\n");
        live.feed(0, b"c\n");
        assert_eq!(live.wait(0, Duration::ZERO), Progress::More(3));
        assert_eq!(live.flush(), [2, 1]);
        live.finish(JobStatus::Completed, Some(0));
        assert_eq!(
            live.wait(3, Duration::ZERO),
            Progress::Done(JobStatus::Completed, Some(0))
        );
        let ev = std::fs::read_to_string(dir.path().join("events")).unwrap();
        let lines: Vec<&str> = ev.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("1\t") && lines[0].contains("\"line\":\"a\""));
        assert!(lines[1].contains("\"stderr\""));
        assert!(lines[2].starts_with("3\t") && lines[2].contains("\"line\":\"bc\""));
        assert_eq!(
            std::fs::read(dir.path().join("stdout")).unwrap(),
            b"a\nbc\n"
        );
    }
}
