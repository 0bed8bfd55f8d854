//! Durable asynchronous jobs for `gathm serve` (PRODUCT.md §7).
//!
//! A submission is acknowledged once its record is in `$GATHM_HOME/jobs/journal`
//! and fdatasync'd (group commit: concurrent submissions share one sync).
//! Every job then lives in `$GATHM_HOME/jobs/<id>/`: `job.json` (the final
//! record, written when the job ends or the journal is compacted), `stdout`
//! and `stderr` (raw bytes, appended as produced) and `events` (one
//! `<n>\t<json>` line per output line or pipeline step event, in the order
//! produced, which the SSE stream reads). Kinds: `tool` (`run::run`) and
//! `pipeline` (`pipeline::run`). An in-memory index, loaded once at start, answers every
//! request: submission never scans the store. At most `max_concurrency` jobs
//! run (FIFO); jobs execute through `run::run`, like the CLI.
//!
//! On start, a `running` job left by a crash becomes `failed` (reason
//! `interrupted`) and `pending` jobs are queued again. Terminal jobs older
//! than the TTL are removed with their files by a periodic sweep.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{Envelope, RunStatus};
use crate::clock;
use crate::config::Context;
use crate::error::{Error, Result};
use crate::logs::Level;
use crate::metrics::{self, Metrics};
use crate::run::{self, RunRequest};
use crate::runner::{Cancel, Sink};
use crate::state::{self, Appender, Durability};

/// What a job runs. `pipeline` (and other kinds) can be added as variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// One tool through `run::run`.
    #[default]
    Tool,
    /// A DAG pipeline (`pipeline::run`); its SSE stream carries step events.
    Pipeline,
}

impl JobKind {
    /// Parse the `kind` field of a submission.
    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "tool" => Some(JobKind::Tool),
            "pipeline" => Some(JobKind::Pipeline),
            _ => None,
        }
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Queued.
    Pending,
    /// Waits for an admin's approval.
    AwaitingApproval,
    /// Executing.
    Running,
    /// Ran and succeeded.
    Completed,
    /// Ran and failed, or was interrupted by a crash.
    Failed,
    /// Cancelled by a client or by shutdown.
    Cancelled,
}

/// Every status, for messages.
pub const STATUSES: [&str; 6] = [
    "pending",
    "awaiting_approval",
    "running",
    "completed",
    "failed",
    "cancelled",
];

impl JobStatus {
    /// No further change will happen.
    pub fn terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::AwaitingApproval => "awaiting_approval",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        STATUSES
            .iter()
            .position(|x| *x == s)
            .map(|i| ALL_STATUSES[i])
    }
}

const ALL_STATUSES: [JobStatus; 6] = [
    JobStatus::Pending,
    JobStatus::AwaitingApproval,
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// The stored record of a job (`job.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// 32 hex characters.
    pub id: String,
    /// What it runs.
    #[serde(default)]
    pub kind: JobKind,
    /// Tool name.
    pub tool: String,
    /// Arguments, passed as they are.
    pub args: Vec<String>,
    /// State.
    pub status: JobStatus,
    /// Why it ended the way it did (`interrupted`, `timeout`, `cancelled`, …).
    pub reason: Option<String>,
    /// gathm's exit code for the run.
    pub exit_code: Option<i32>,
    /// Epoch seconds.
    pub created_at: f64,
    /// Epoch seconds.
    pub started_at: Option<f64>,
    /// Epoch seconds.
    pub finished_at: Option<f64>,
    /// Execution timeout in seconds (null: the tool's).
    pub timeout: Option<f64>,
    /// Where the final record is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Lines written to stdout.
    #[serde(default)]
    pub stdout_lines: u64,
    /// Lines written to stderr.
    #[serde(default)]
    pub stderr_lines: u64,
    /// An admin approved it.
    #[serde(default)]
    pub approved: bool,
    /// The principal that submitted it (never exposed).
    pub owner: String,
    /// The role it runs with (never exposed).
    pub role: String,
    /// The run's envelope, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
    /// The pipeline definition (kind `pipeline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Value>,
    /// The pipeline's result: every step with status, attempts and envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl Job {
    /// The JSON shown to clients: no owner or role; `line_count` for the reference's clients.
    pub fn public(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.remove("owner");
            o.remove("role");
            o.insert("line_count".into(), self.stdout_lines.into());
            if !o.contains_key("envelope") {
                o.insert("envelope".into(), Value::Null);
            }
        }
        v
    }
}

/// Job settings from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GATHM_MAX_CONCURRENCY` (default 4).
    pub max_concurrency: usize,
    /// `GATHM_MAX_QUEUE_DEPTH` (default 100): waiting jobs at most.
    pub max_queue_depth: usize,
    /// `GATHM_JOB_TTL` seconds (default 86400).
    pub ttl: f64,
    /// `GATHM_JOB_SWEEP_INTERVAL` seconds (default 60).
    pub sweep_interval: f64,
    /// `GATHM_CALLBACK_SECRET`.
    pub callback_secret: Option<Vec<u8>>,
    /// `GATHM_CALLBACK_RETRIES` (default 5 deliveries in all).
    pub callback_attempts: u32,
    /// `GATHM_CALLBACK_BACKOFF` first retry delay in seconds (default 0.5, doubling).
    pub callback_backoff: f64,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Config {
    /// Read from the environment.
    pub fn from_env() -> Config {
        Config {
            max_concurrency: env_num("GATHM_MAX_CONCURRENCY")
                .filter(|n| *n > 0)
                .unwrap_or(4),
            max_queue_depth: env_num("GATHM_MAX_QUEUE_DEPTH").unwrap_or(100),
            ttl: env_num("GATHM_JOB_TTL")
                .filter(|n: &f64| *n >= 0.0)
                .unwrap_or(86_400.0),
            sweep_interval: env_num("GATHM_JOB_SWEEP_INTERVAL")
                .filter(|n: &f64| *n > 0.0)
                .unwrap_or(60.0),
            callback_secret: std::env::var("GATHM_CALLBACK_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .map(String::into_bytes),
            callback_attempts: env_num("GATHM_CALLBACK_RETRIES")
                .filter(|n| *n > 0)
                .unwrap_or(5),
            callback_backoff: env_num("GATHM_CALLBACK_BACKOFF")
                .filter(|n: &f64| *n >= 0.0)
                .unwrap_or(0.5),
        }
    }
}

// ---------------------------------------------------------------- live output

struct Files {
    out: Appender,
    err: Appender,
    events: Appender,
}

struct LiveState {
    seq: u64,
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
                role: job.role.clone(),
                approved: job.approved,
                cancel: cancel.clone(),
                actor: format!("job:{}", job.id),
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
    };
    (env, result)
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
    }
}

impl Live {
    /// A structured event (pipeline step events) in the event stream.
    fn event(&self, data: Value) {
        let mut st = lock(&self.state);
        st.seq += 1;
        let line = format!("{}\t{data}\n", st.seq);
        if let Some(f) = Self::files(&mut st) {
            let _ = f.events.write(line.as_bytes());
        }
        drop(st);
        self.cond.notify_all();
    }

    fn new(dir: &Path) -> Live {
        Live {
            state: Mutex::new(LiveState {
                seq: 0,
                lines: [0, 0],
                partial: [Vec::new(), Vec::new()],
                dir: dir.to_path_buf(),
                files: None,
                done: None,
            }),
            cond: Condvar::new(),
        }
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
        let data = json!({
            "event": "output",
            "stream": if stream == 0 { "stdout" } else { "stderr" },
            "line": String::from_utf8_lossy(line),
        });
        batch.extend_from_slice(format!("{}\t{data}\n", st.seq).as_bytes());
    }

    fn feed(&self, stream: usize, chunk: &[u8]) {
        let mut st = lock(&self.state);
        if let Some(f) = Self::files(&mut st) {
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
            if let Some(f) = st.files.as_mut() {
                let _ = f.events.write(&batch);
            }
            drop(st);
            self.cond.notify_all();
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
        if !batch.is_empty()
            && let Some(f) = Self::files(&mut st)
        {
            let _ = f.events.write(&batch);
        }
        st.files = None;
        st.lines
    }

    fn finish(&self, status: JobStatus, exit_code: Option<i32>) {
        lock(&self.state).done = Some((status, exit_code));
        self.cond.notify_all();
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

struct Entry {
    job: Job,
    cancel: Cancel,
    live: Option<Arc<Live>>,
    shutdown_cancel: bool,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Entry>,
    queue: VecDeque<String>,
    running: usize,
    /// pending + awaiting_approval + submissions being written.
    waiting: usize,
    draining: bool,
    stopped: bool,
}

struct Inner {
    ctx: Arc<Context>,
    cfg: Config,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    cond: Condvar,
    callbacks: Mutex<Option<std::sync::mpsc::Sender<Delivery>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    journal: state::Journal,
    _store_lock: state::Lock,
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
    /// The record could not be stored.
    Store(Error),
}

/// What a submission asks for (validated by the caller).
#[derive(Debug, Clone)]
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

fn record_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.home.job_dir(id).join("job.json")
}

/// The events file of a job.
pub fn events_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.home.job_dir(id).join("events")
}

fn journal_path(ctx: &Context) -> PathBuf {
    ctx.home.jobs.join("journal")
}

/// Journal records larger than this (big envelopes) are fsynced on their own.
const JOURNAL_RECORD_MAX: usize = 64 * 1024;

/// Compact the journal once it is this large.
const JOURNAL_COMPACT_AT: u64 = 8 << 20;

fn rank(s: JobStatus) -> u8 {
    match s {
        JobStatus::Pending | JobStatus::AwaitingApproval => 0,
        JobStatus::Running => 1,
        _ => 2,
    }
}

fn persist(ctx: &Context, job: &Job, d: Durability) -> Result<()> {
    state::write_json(&record_path(ctx, &job.id), job, d)
}

impl Jobs {
    /// Load the store, recover jobs left by a crash, start the workers, the
    /// sweeper and the callback sender. One server per `GATHM_HOME`.
    pub fn start(ctx: Arc<Context>, cfg: Config, metrics: Arc<Metrics>) -> Result<Jobs> {
        let lock_target = ctx.home.jobs.join("server");
        let store_lock = state::try_lock(&lock_target)?.ok_or_else(|| {
            Error::Usage(format!(
                "another gathm serve is using {} (one server per GATHM_HOME)",
                ctx.home.jobs.display()
            ))
        })?;
        let journal = state::Journal::open(&journal_path(&ctx))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                ctx,
                cfg,
                metrics,
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
                callbacks: Mutex::new(Some(tx)),
                threads: Mutex::new(Vec::new()),
                journal,
                _store_lock: store_lock,
            }),
        };
        jobs.recover()?;
        let mut threads = Vec::new();
        for i in 0..jobs.inner.cfg.max_concurrency {
            let j = jobs.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("job-worker-{i}"))
                    .spawn(move || j.worker())
                    .map_err(|e| Error::Internal(format!("cannot start a job worker: {e}")))?,
            );
        }
        let j = jobs.clone();
        threads.push(
            thread::Builder::new()
                .name("job-sweeper".into())
                .spawn(move || j.sweeper())
                .map_err(|e| Error::Internal(format!("cannot start the job sweeper: {e}")))?,
        );
        let cfg = jobs.inner.cfg.clone();
        thread::Builder::new()
            .name("job-callbacks".into())
            .spawn(move || deliver_loop(rx, cfg))
            .map_err(|e| Error::Internal(format!("cannot start the callback sender: {e}")))?;
        *lock(&jobs.inner.threads) = threads;
        Ok(jobs)
    }

    /// Rebuild the index from the job directories and the journal: the more
    /// advanced record of each job wins (a record in the journal whose
    /// `job.json` was lost in a power cut is written back); `running` jobs
    /// become `failed`/`interrupted`, `pending` ones are queued again. The
    /// journal is then compacted.
    fn recover(&self) -> Result<()> {
        let ctx = &self.inner.ctx;
        let now = clock::now();
        let mut journaled: HashMap<String, Job> = HashMap::new();
        if let Some(bytes) = state::read_bytes(&journal_path(ctx))? {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(v) = serde_json::from_slice::<Value>(line) else {
                    continue; // a torn last line
                };
                if let Some(id) = v.get("evicted").and_then(Value::as_str) {
                    journaled.remove(id);
                } else if let Ok(job) = serde_json::from_value::<Job>(v) {
                    journaled.insert(job.id.clone(), job);
                }
            }
        }
        let mut found: Vec<Job> = Vec::new();
        for dir in state::list_dir(&ctx.home.jobs)? {
            if !dir.is_dir() {
                continue;
            }
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let on_disk = state::read_json::<Job>(&dir.join("job.json"))?;
            let from_journal = journaled.remove(&id);
            match (on_disk, from_journal) {
                (Some(d), Some(j)) if rank(j.status) > rank(d.status) => {
                    persist(ctx, &j, Durability::Atomic)?;
                    found.push(j);
                }
                (Some(d), _) => found.push(d),
                (None, Some(j)) => {
                    persist(ctx, &j, Durability::Atomic)?;
                    found.push(j);
                }
                // Never acknowledged (a crash before the record was stored).
                (None, None) => {
                    let _ = state::remove_dir_all(&dir);
                }
            }
        }
        for (_, j) in journaled {
            persist(ctx, &j, Durability::Atomic)?;
            found.push(j);
        }
        let interrupted: Vec<String> = found
            .iter()
            .filter(|j| j.status == JobStatus::Running)
            .map(|j| j.id.clone())
            .collect();
        kill_leftovers(&interrupted);
        let mut pending: Vec<Job> = Vec::new();
        let mut st = lock(&self.inner.state);
        for mut job in found {
            job.envelope = None;
            match job.status {
                JobStatus::Running => {
                    job.status = JobStatus::Failed;
                    job.reason = Some("interrupted".into());
                    job.finished_at = Some(now);
                    let counts = count_lines(&events_path(ctx, &job.id));
                    job.stdout_lines = counts[0];
                    job.stderr_lines = counts[1];
                    persist(ctx, &job, Durability::Atomic)?;
                    self.callback(&job);
                }
                JobStatus::Pending => pending.push(job.clone()),
                JobStatus::AwaitingApproval => st.waiting += 1,
                _ => {}
            }
            st.jobs.insert(
                job.id.clone(),
                Entry {
                    job,
                    cancel: Cancel::new(),
                    live: None,
                    shutdown_cancel: false,
                },
            );
        }
        pending.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        st.waiting += pending.len();
        st.queue.extend(pending.into_iter().map(|j| j.id));
        drop(st);
        // Everything recovered is in job.json files now: flush and start afresh.
        self.inner.journal.compact()
    }

    /// Append a record to the journal and wait until it is on disk.
    fn journal_record_durable(&self, job: &Job) -> Result<()> {
        let mut line = serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        self.inner.journal.append_durable(&line)
    }

    /// Append a record to the journal without waiting for the disk.
    fn journal_record(&self, job: &Job) -> Result<()> {
        let mut line = serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        self.inner.journal.append(&line)
    }

    /// Store a record durably: `job.json` by atomic rename, plus one journal
    /// line whose fsync is shared with concurrent writers (group commit).
    /// Records too large for the journal are fsynced on their own.
    fn store(&self, job: &Job) -> Result<()> {
        let ctx = &self.inner.ctx;
        let mut line = serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?;
        if line.len() > JOURNAL_RECORD_MAX {
            return persist(ctx, job, Durability::Durable);
        }
        persist(ctx, job, Durability::Atomic)?;
        line.push(b'\n');
        self.inner.journal.append_durable(&line)
    }

    /// Accept a job: stored durably, then queued (or left awaiting approval).
    pub fn submit(&self, owner: &str, role: &str, s: Submission) -> Result<Job, SubmitError> {
        {
            let mut st = lock(&self.inner.state);
            if st.draining {
                return Err(SubmitError::ShuttingDown);
            }
            if st.waiting >= self.inner.cfg.max_queue_depth {
                return Err(SubmitError::QueueFull(self.inner.cfg.max_queue_depth));
            }
            st.waiting += 1;
        }
        let job = Job {
            id: clock::new_id(),
            kind: s.kind,
            tool: s.tool,
            args: s.args,
            status: if s.awaiting_approval {
                JobStatus::AwaitingApproval
            } else {
                JobStatus::Pending
            },
            reason: None,
            exit_code: None,
            created_at: clock::now(),
            started_at: None,
            finished_at: None,
            timeout: s.timeout,
            callback_url: s.callback_url,
            stdout_lines: 0,
            stderr_lines: 0,
            approved: false,
            owner: owner.to_string(),
            role: role.to_string(),
            envelope: None,
            pipeline: s.pipeline,
            result: None,
        };
        let ctx = &self.inner.ctx;
        // Durable once its journal line is synced: no file is created per
        // submission (the directory and job.json appear when it ends, or at
        // the next compaction).
        let stored = self.journal_record_durable(&job);
        let mut st = lock(&self.inner.state);
        if let Err(e) = stored {
            st.waiting -= 1;
            drop(st);
            let _ = state::remove_dir_all(&ctx.home.job_dir(&job.id));
            return Err(SubmitError::Store(e));
        }
        if job.status == JobStatus::Pending {
            st.queue.push_back(job.id.clone());
        }
        st.jobs.insert(
            job.id.clone(),
            Entry {
                job: job.clone(),
                cancel: Cancel::new(),
                live: None,
                shutdown_cancel: false,
            },
        );
        drop(st);
        self.inner.cond.notify_all();
        Ok(job)
    }

    fn visible(job: &Job, owner: &str, admin: bool) -> bool {
        admin || job.owner == owner
    }

    /// A job the caller may see, with its envelope when it has ended.
    pub fn get(&self, id: &str, owner: &str, admin: bool) -> Option<Job> {
        let job = {
            let st = lock(&self.inner.state);
            let e = st.jobs.get(id)?;
            if !Self::visible(&e.job, owner, admin) {
                return None;
            }
            let mut job = e.job.clone();
            if let Some(live) = &e.live {
                let ls = lock(&live.state);
                job.stdout_lines = ls.lines[0];
                job.stderr_lines = ls.lines[1];
            }
            job
        };
        if job.status.terminal()
            && job.envelope.is_none()
            && let Ok(Some(stored)) = state::read_json::<Job>(&record_path(&self.inner.ctx, id))
        {
            return Some(Job {
                envelope: stored.envelope,
                ..job
            });
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
        let st = lock(&self.inner.state);
        let e = st.jobs.get(id)?;
        if !Self::visible(&e.job, owner, admin) {
            return None;
        }
        Some((e.job.clone(), e.live.clone()))
    }

    /// Wait for a job that has not started yet to start or end (for streams).
    pub fn wait_started(&self, id: &str, timeout: Duration) -> Option<(Job, Option<Arc<Live>>)> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.inner.state);
        loop {
            let e = st.jobs.get(id)?;
            if e.live.is_some() || e.job.status.terminal() || e.job.status == JobStatus::Running {
                return Some((e.job.clone(), e.live.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some((e.job.clone(), None));
            }
            st = wait_on(&self.inner.cond, st, left);
        }
    }

    /// The caller's jobs (all for admins), oldest first, without envelopes.
    pub fn list(&self, owner: &str, admin: bool, status: Option<JobStatus>) -> Vec<Job> {
        let st = lock(&self.inner.state);
        let mut v: Vec<Job> = st
            .jobs
            .values()
            .filter(|e| Self::visible(&e.job, owner, admin))
            .filter(|e| status.is_none_or(|s| e.job.status == s))
            .map(|e| e.job.clone())
            .collect();
        drop(st);
        v.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        v
    }

    /// Cancel a job: a queued one ends at once; a running one has its process
    /// group killed and the call waits (bounded) for the record.
    pub fn cancel(&self, id: &str, owner: &str, admin: bool) -> Option<Cancelled> {
        let mut st = lock(&self.inner.state);
        let e = st.jobs.get_mut(id)?;
        if !Self::visible(&e.job, owner, admin) {
            return None;
        }
        match e.job.status {
            s if s.terminal() => Some(Cancelled::AlreadyTerminal(e.job.clone())),
            JobStatus::Pending | JobStatus::AwaitingApproval => {
                e.job.status = JobStatus::Cancelled;
                e.job.reason = Some("cancelled".into());
                e.job.finished_at = Some(clock::now());
                let job = e.job.clone();
                st.queue.retain(|x| x != id);
                st.waiting = st.waiting.saturating_sub(1);
                drop(st);
                if let Err(err) = persist(&self.inner.ctx, &job, Durability::Durable) {
                    self.log_error(&job.id, &err);
                }
                self.callback(&job);
                self.inner.cond.notify_all();
                Some(Cancelled::Now(job))
            }
            _ => {
                e.cancel.cancel();
                let wait = Duration::from_secs_f64(self.inner.ctx.settings.kill_grace + 3.0);
                let deadline = Instant::now() + wait;
                loop {
                    let job = st.jobs.get(id)?.job.clone();
                    let left = deadline.saturating_duration_since(Instant::now());
                    if job.status.terminal() || left.is_zero() {
                        return Some(Cancelled::Now(job));
                    }
                    st = wait_on(&self.inner.cond, st, left);
                }
            }
        }
    }

    /// Approve a job that awaits approval: it is queued with `approved`.
    pub fn approve(&self, id: &str) -> std::result::Result<Job, ApproveError> {
        let mut st = lock(&self.inner.state);
        let Some(e) = st.jobs.get_mut(id) else {
            return Err(ApproveError::NotFound);
        };
        if e.job.status != JobStatus::AwaitingApproval {
            return Err(ApproveError::NotAwaiting(e.job.status));
        }
        e.job.status = JobStatus::Pending;
        e.job.approved = true;
        let job = e.job.clone();
        drop(st);
        if let Err(err) = persist(&self.inner.ctx, &job, Durability::Durable) {
            self.log_error(id, &err);
        }
        let mut st = lock(&self.inner.state);
        st.queue.push_back(job.id.clone());
        drop(st);
        self.inner.cond.notify_all();
        Ok(job)
    }

    /// (waiting, running, count by status) for metrics.
    pub fn counts(&self) -> (usize, usize, Vec<(&'static str, usize)>) {
        let st = lock(&self.inner.state);
        let mut by = [0usize; 6];
        for e in st.jobs.values() {
            if let Some(i) = ALL_STATUSES.iter().position(|s| *s == e.job.status) {
                by[i] += 1;
            }
        }
        (
            st.queue.len(),
            st.running,
            STATUSES.iter().copied().zip(by).collect(),
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
        while st.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = wait_on(&self.inner.cond, st, left);
        }
        st
    }

    /// Stop starting jobs, give running ones `grace`, then cancel them and
    /// wait for their records. Queued jobs stay `pending` on disk.
    pub fn shutdown(&self, grace: Duration) {
        let mut st = lock(&self.inner.state);
        st.draining = true;
        self.inner.cond.notify_all();
        st = self.wait_idle(st, Instant::now() + grace);
        if st.running > 0 {
            for e in st.jobs.values_mut() {
                if e.job.status == JobStatus::Running {
                    e.shutdown_cancel = true;
                    e.cancel.cancel();
                }
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
        // Let queued callbacks go out (bounded by their own retries).
        lock(&self.inner.callbacks).take();
    }

    fn log_error(&self, id: &str, err: &Error) {
        let mut extra = serde_json::Map::new();
        extra.insert("job".into(), id.into());
        self.inner
            .ctx
            .logger
            .app(Level::Error, "jobs", &format!("job {id}: {err}"), extra);
    }

    fn callback(&self, job: &Job) {
        let Some(url) = job.callback_url.clone() else {
            return;
        };
        let body = serde_json::to_vec(&job.public()).unwrap_or_default();
        if let Some(tx) = lock(&self.inner.callbacks).as_ref() {
            let _ = tx.send(Delivery {
                url,
                job: job.id.clone(),
                body,
                attempt: 1,
                due: Instant::now(),
            });
        }
    }

    fn next(&self) -> Option<(Job, Cancel, Arc<Live>)> {
        let mut st = lock(&self.inner.state);
        loop {
            if st.stopped || st.draining {
                return None;
            }
            while let Some(id) = st.queue.pop_front() {
                let dir = self.inner.ctx.home.job_dir(&id);
                let Some(e) = st.jobs.get_mut(&id) else {
                    continue;
                };
                if e.job.status != JobStatus::Pending {
                    continue;
                }
                e.job.status = JobStatus::Running;
                e.job.started_at = Some(clock::now());
                let live = Arc::new(Live::new(&dir));
                e.live = Some(Arc::clone(&live));
                let out = (e.job.clone(), e.cancel.clone(), live);
                st.running += 1;
                st.waiting = st.waiting.saturating_sub(1);
                drop(st);
                self.inner.cond.notify_all();
                return Some(out);
            }
            st = self.inner.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn worker(&self) {
        while let Some((mut job, cancel, live)) = self.next() {
            let ctx = &self.inner.ctx;
            // `running` goes to the journal only (no new file per job): after
            // a crash, recovery sees it there and marks the job interrupted.
            if let Err(e) = self.journal_record(&job) {
                self.log_error(&job.id, &e);
            }
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
                    req.actor = format!("job:{}", job.id);
                    // Lets a restarted server find this job's processes if
                    // the server dies while it runs (see `kill_leftovers`).
                    req.env.push(("GATHM_JOB_ID".into(), job.id.clone().into()));
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
                .jobs
                .get(&job.id)
                .is_some_and(|e| e.shutdown_cancel);
            job.stdout_lines = lines[0];
            job.stderr_lines = lines[1];
            job.finished_at = Some(clock::now());
            job.exit_code = Some(env.exit_code);
            (job.status, job.reason) = if panicked {
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
            job.envelope = Some(env);
            if let Err(e) = self.store(&job) {
                self.log_error(&job.id, &e);
            }
            self.callback(&job);
            let status = job.status;
            let code = job.exit_code;
            job.envelope = None;
            {
                let mut st = lock(&self.inner.state);
                if let Some(e) = st.jobs.get_mut(&job.id) {
                    e.job = job;
                    e.live = None;
                }
                st.running -= 1;
            }
            live.finish(status, code);
            self.inner.cond.notify_all();
        }
    }

    fn sweeper(&self) {
        let every = Duration::from_secs_f64(self.inner.cfg.sweep_interval);
        loop {
            {
                let st = lock(&self.inner.state);
                let (st, _) = self
                    .inner
                    .cond
                    .wait_timeout_while(st, every, |s| !s.stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if st.stopped {
                    return;
                }
            }
            self.sweep();
            if self.inner.journal.len() > JOURNAL_COMPACT_AT {
                self.compact();
            }
        }
    }

    /// Write `job.json` for every job that is not over yet (their records
    /// may live only in the journal), flush the filesystem and empty the
    /// journal. Transitions wait meanwhile.
    fn compact(&self) {
        let st = lock(&self.inner.state);
        for e in st.jobs.values() {
            if !e.job.status.terminal()
                && let Err(err) = persist(&self.inner.ctx, &e.job, Durability::Atomic)
            {
                self.log_error(&e.job.id, &err);
                return;
            }
        }
        if let Err(e) = self.inner.journal.compact() {
            self.log_error("journal", &e);
        }
    }

    /// Remove terminal jobs older than the TTL, with their files.
    pub fn sweep(&self) -> usize {
        let cutoff = clock::now() - self.inner.cfg.ttl;
        let old: Vec<String> = {
            let mut st = lock(&self.inner.state);
            let ids: Vec<String> = st
                .jobs
                .values()
                .filter(|e| {
                    e.job.status.terminal() && e.job.finished_at.is_some_and(|f| f < cutoff)
                })
                .map(|e| e.job.id.clone())
                .collect();
            for id in &ids {
                st.jobs.remove(id);
            }
            ids
        };
        if !old.is_empty() {
            let mut t = Vec::new();
            for id in &old {
                t.extend_from_slice(json!({ "evicted": id }).to_string().as_bytes());
                t.push(b'\n');
            }
            if let Err(e) = self.inner.journal.append(&t) {
                self.log_error("sweep", &e);
            }
        }
        for id in &old {
            if let Err(e) = state::remove_dir_all(&self.inner.ctx.home.job_dir(id)) {
                self.log_error(id, &e);
            }
        }
        old.len()
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

fn count_lines(events: &Path) -> [u64; 2] {
    let mut n = [0u64; 2];
    if let Ok(Some(bytes)) = state::read_bytes(events) {
        for line in bytes.split(|b| *b == b'\n') {
            if memfind(line, b"\"stream\":\"stderr\"") {
                n[1] += 1;
            } else if !line.is_empty() {
                n[0] += 1;
            }
        }
    }
    n
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- callbacks

struct Delivery {
    url: String,
    job: String,
    body: Vec<u8>,
    attempt: u32,
    due: Instant,
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

fn deliver_loop(rx: std::sync::mpsc::Receiver<Delivery>, cfg: Config) {
    let mut client: Option<reqwest::blocking::Client> = None;
    let mut queue: Vec<Delivery> = Vec::new();
    let mut open = true;
    while open || !queue.is_empty() {
        let now = Instant::now();
        let next_due = queue.iter().map(|d| d.due).min();
        let wait = next_due.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(now)
        });
        if open {
            match rx.recv_timeout(wait) {
                Ok(d) => queue.push(d),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        } else {
            thread::sleep(wait.min(Duration::from_secs(1)));
        }
        let now = Instant::now();
        let (due, later): (Vec<Delivery>, Vec<Delivery>) =
            queue.drain(..).partition(|d| d.due <= now);
        queue = later;
        for mut d in due {
            if client.is_none() {
                client = crate::client::build(Duration::from_secs(10));
            }
            let ok = client.as_ref().is_some_and(|c| {
                let mut rb = c
                    .post(&d.url)
                    .header("Content-Type", "application/json")
                    .header("X-Gathm-Job", &d.job)
                    .header("X-Gathm-Delivery-Attempt", d.attempt.to_string());
                if let Some(secret) = &cfg.callback_secret {
                    rb = rb.header("X-Gathm-Signature", signature(secret, &d.body));
                }
                rb.body(d.body.clone())
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            });
            if !ok && d.attempt < cfg.callback_attempts {
                let delay = cfg.callback_backoff * 2f64.powi(d.attempt as i32 - 1);
                d.attempt += 1;
                d.due = Instant::now() + Duration::from_secs_f64(delay.min(300.0));
                queue.push(d);
            }
        }
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
    fn live_output_is_split_into_numbered_lines() {
        let dir = tempfile::tempdir().unwrap();
        let live = Live::new(dir.path());
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
