//! The job store: the records of `gathm serve`'s durable jobs behind one
//! trait, so the embedded SQLite store (`state::sqlite`) and a distributed
//! one (Redis, `state::redis`) give the same guarantees to `jobs.rs`.
//!
//! Rules every backend follows:
//!
//! - **Store-side time.** Every timestamp a method writes (`created_at`,
//!   `started_at`, `finished_at`, lease deadlines, outbox due times) comes
//!   from [`JobStore::now`], the store's clock, never from the caller's, so
//!   machines with skewed clocks agree on leases and TTLs.
//! - **Compare-and-set.** Every state change names the states it may leave
//!   (`UPDATE … WHERE id = ? AND status IN (…)` in SQLite, a Lua script in
//!   Redis); a change whose precondition no longer holds changes nothing and
//!   says so. Cancel, approve, finish, sweep and recovery therefore never
//!   overwrite one another, and a terminal record is never rewritten.
//! - **Leases and fencing.** A worker runs a job only after [`JobStore::claim`]
//!   gave it a lease and a fencing token; heartbeats and the final record
//!   carry that token and are refused once another claim (or a reclaim) has
//!   superseded it.
//! - **Durable acknowledgement.** A method returns `Ok` only once its change
//!   is committed (SQLite: `synchronous=FULL`; concurrent writers share a
//!   commit) or, on Redis, in the AOF (`appendfsync always`, or `WAITAOF`).
//! - **Outbox.** A job that ends with a `callback_url` gets its delivery row
//!   in the same commit as its terminal state, so a callback is never lost
//!   nor sent for a state that was not stored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Envelope;

/// What a job runs.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Tool => "tool",
            JobKind::Pipeline => "pipeline",
        }
    }
}

/// A job's state.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Ran and failed, was interrupted by a crash, or its approval expired.
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

/// Every status, in the order of [`STATUSES`].
pub const ALL_STATUSES: [JobStatus; 6] = [
    JobStatus::Pending,
    JobStatus::AwaitingApproval,
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// The states a job can still leave.
pub const WAITING: [JobStatus; 2] = [JobStatus::Pending, JobStatus::AwaitingApproval];

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
        STATUSES[ALL_STATUSES.iter().position(|s| *s == self).unwrap_or(0)]
    }
    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        STATUSES
            .iter()
            .position(|x| *x == s)
            .map(|i| ALL_STATUSES[i])
    }
}

/// The stored record of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// A UUID v7 in its 32-hex-digit form (time-ordered; older homes have
    /// 32 hex digits of a hash).
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
    /// Why it ended the way it did (`interrupted`, `timeout`, `cancelled`,
    /// `approval_expired`, …).
    pub reason: Option<String>,
    /// gathm's exit code for the run.
    pub exit_code: Option<i32>,
    /// Epoch seconds (store time).
    pub created_at: f64,
    /// Epoch seconds (store time).
    pub started_at: Option<f64>,
    /// Epoch seconds (store time).
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
    /// What the tool reads on stdin (a chat prompt; UTF-8), never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// stdout so far while it runs (filled by the manager, never stored).
    #[serde(skip)]
    pub live_output: Option<String>,
}

impl Job {
    /// A pending job of `owner` with a fresh id, not yet stored: no
    /// timeout, callback, pipeline or stdin, nothing run.
    pub fn new(kind: JobKind, tool: String, args: Vec<String>, owner: &str, role: &str) -> Job {
        Job {
            id: crate::clock::new_id(),
            kind,
            tool,
            args,
            status: JobStatus::Pending,
            reason: None,
            exit_code: None,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            timeout: None,
            callback_url: None,
            stdout_lines: 0,
            stderr_lines: 0,
            approved: false,
            owner: owner.to_string(),
            role: role.to_string(),
            envelope: None,
            pipeline: None,
            result: None,
            stdin: None,
            live_output: None,
        }
    }

    /// The JSON shown to clients and POSTed to callbacks: no owner or role;
    /// the reference's `line_count`, `output` (stdout lines joined with
    /// `\n`), `error` (stderr when it failed, else empty) and `completed_at`
    /// (= `finished_at`).
    pub fn public(&self) -> Value {
        serde_json::to_value(self.to_public()).unwrap_or(Value::Null)
    }

    /// The record shown to clients (see [`Job::public`]).
    pub fn to_public(&self) -> PublicJob {
        let output = match (&self.live_output, &self.envelope) {
            (Some(s), _) => s.clone(),
            (None, Some(e)) => e.output.clone(),
            (None, None) => String::new(),
        };
        let output = output.strip_suffix('\n').unwrap_or(&output).to_string();
        let error = match (&self.envelope, self.status) {
            (Some(e), JobStatus::Failed) => e.error.clone(),
            _ => String::new(),
        };
        // Tries of the tool asked for (the manifest's `retry`), once it ran.
        let attempts = self.envelope.as_ref().map_or(0, |e| {
            e.attempts
                .iter()
                .filter(|a| a.tool == e.tool)
                .map(|a| a.try_number)
                .max()
                .unwrap_or(0)
        });
        PublicJob {
            id: self.id.clone(),
            kind: self.kind,
            tool: self.tool.clone(),
            args: self.args.clone(),
            status: self.status,
            reason: self.reason.clone(),
            exit_code: self.exit_code,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            timeout: self.timeout,
            callback_url: self.callback_url.clone(),
            stdout_lines: self.stdout_lines,
            stderr_lines: self.stderr_lines,
            approved: self.approved,
            envelope: self.envelope.clone(),
            pipeline: self.pipeline.clone(),
            result: self.result.clone(),
            line_count: self.stdout_lines,
            output,
            error,
            completed_at: self.finished_at,
            attempts,
            detail: None,
        }
    }
}

/// A job as clients see it (HTTP bodies, callbacks): the record without
/// owner, role or stdin, plus the reference's `line_count`, `output`,
/// `error`, `completed_at` and `attempts`.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct PublicJob {
    /// A UUID v7 in its 32-hex-digit form.
    pub id: String,
    /// What it runs.
    pub kind: JobKind,
    /// Tool name (`pipeline` for pipeline jobs).
    pub tool: String,
    /// Arguments, passed as they are.
    pub args: Vec<String>,
    /// State.
    pub status: JobStatus,
    /// Why it ended the way it did (`interrupted`, `timeout`, `cancelled`,
    /// `approval_expired`, `internal_error`, …).
    pub reason: Option<String>,
    /// gathm's exit code for the run.
    pub exit_code: Option<i32>,
    /// Epoch seconds.
    pub created_at: f64,
    /// Epoch seconds.
    pub started_at: Option<f64>,
    /// Epoch seconds.
    pub finished_at: Option<f64>,
    /// Execution timeout in seconds (`null`: the tool's).
    pub timeout: Option<f64>,
    /// Where the final record is POSTed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Lines written to stdout.
    pub stdout_lines: u64,
    /// Lines written to stderr.
    pub stderr_lines: u64,
    /// An admin approved it.
    pub approved: bool,
    /// The run's envelope, once it ran (`null` before).
    pub envelope: Option<Envelope>,
    /// The pipeline definition (kind `pipeline`), as submitted (see
    /// `Pipeline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pipeline: Option<Value>,
    /// A pipeline job's result once it ended: every step's status,
    /// attempts, exit code and output.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::pipeline::PipelineResult>)]
    pub result: Option<Value>,
    /// The reference's name for `stdout_lines`.
    pub line_count: u64,
    /// stdout so far (lines joined with `\n`), bounded by the capture limit.
    pub output: String,
    /// stderr of a failed job, else empty.
    pub error: String,
    /// The reference's name for `finished_at`.
    pub completed_at: Option<f64>,
    /// Tries of the tool asked for (its manifest's `retry`); 0 before it ran.
    pub attempts: u32,
    /// Set by a cancel of a job that had already ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One output line of a job in its event stream (the `events` file and the
/// SSE `data` of `/api/v1/jobs/{id}/stream`). Fields in name order, as
/// they have always been written.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct OutputEvent<'a> {
    /// `output`.
    pub event: &'static str,
    /// The line without its newline (invalid UTF-8 replaced).
    pub line: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
}

/// A claimed job: the worker holding `token` may run it until `lease_until`
/// (extended by heartbeats).
#[derive(Debug, Clone)]
pub struct Claim {
    /// The record, `running`.
    pub job: Job,
    /// The fencing token: heartbeats and the final record must carry it.
    pub token: u64,
    /// Store time at which the lease runs out.
    pub lease_until: f64,
}

/// The final record of a run.
#[derive(Debug, Clone)]
pub struct Finish {
    /// `completed`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// Why.
    pub reason: Option<String>,
    /// gathm's exit code.
    pub exit_code: Option<i32>,
    /// Lines on stdout.
    pub stdout_lines: u64,
    /// Lines on stderr.
    pub stderr_lines: u64,
    /// The run's envelope.
    pub envelope: Option<Envelope>,
    /// A pipeline's result.
    pub result: Option<Value>,
}

/// What a [`JobStore::transition`] sets besides the status.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The new reason (None: left as it is).
    pub reason: Option<String>,
    /// Set `approved`.
    pub approved: Option<bool>,
    /// Set the line counts.
    pub lines: Option<[u64; 2]>,
}

/// A page of [`JobStore::list`]: newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this owner's jobs (None: everyone's).
    pub owner: Option<String>,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this tool.
    pub tool: Option<String>,
    /// Only jobs older than this one (the previous page's last id).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// An idempotency key for [`JobStore::submit`].
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The client's key.
    pub key: String,
    /// A job with the same key and owner created within this many seconds
    /// is returned instead of a new one.
    pub ttl: f64,
}

/// What [`JobStore::submit`] did.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// Stored now.
    New(Job),
    /// The idempotency key named this earlier job; nothing was stored.
    Existing(Job),
}

/// What [`JobStore::request_cancel`] did.
#[derive(Debug, Clone)]
pub enum CancelRequest {
    /// No such job.
    NotFound,
    /// It was waiting: it is `cancelled` now.
    Cancelled(Job),
    /// It runs: `cancel_requested` is set; its worker records the end.
    Requested(Job),
    /// It had ended already (unchanged).
    Terminal(Job),
}

/// A callback delivery in the outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The delivery id (`X-Gathm-Delivery`): the same on every attempt.
    pub id: String,
    /// The job.
    pub job: String,
    /// Where to POST.
    pub url: String,
    /// The job's public record at its end.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk is full (507 on submission).
    #[error("the job store's disk is full: {0}")]
    Full(String),
    /// The store cannot be written now (read-only, I/O error, locked): 503.
    #[error("the job store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("job store: {0}")]
    Other(String),
}

impl StoreError {
    /// The HTTP status a submission answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            StoreError::Full(_) => 507,
            StoreError::Unavailable(_) => 503,
            StoreError::Other(_) => 500,
        }
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        crate::error::Error::Internal(e.to_string())
    }
}

/// A result of the store.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// The durable store of jobs (see the module doc for the rules every
/// method follows).
pub trait JobStore: Send + Sync {
    /// The store's clock, epoch seconds: every timestamp it writes.
    fn now(&self) -> f64;

    /// The store can only be read (its home is on a read-only
    /// filesystem): every change fails with [`StoreError::Unavailable`].
    fn read_only(&self) -> bool;

    /// The records, events and outbox are shared with other instances (a
    /// fleet on Redis): events are read through [`JobStore::read_events`]
    /// rather than from local files, cancels may come from another instance
    /// (see [`JobStore::cancel_requested`]), and [`JobStore::reclaim`] takes
    /// expired leases only.
    fn shared(&self) -> bool {
        false
    }

    /// Finish the changes already queued, flush, and stop: every later
    /// change fails with [`StoreError::Unavailable`].
    fn close(&self);

    /// Store a new job (`pending` or `awaiting_approval`); `created_at` is
    /// set to store time. Returns once committed. With `idem`, a job of the
    /// same owner with the same key created within `idem.ttl` is returned
    /// as [`Submitted::Existing`] and nothing is stored; the check and the
    /// insert are one atomic step.
    fn submit(&self, job: Job, idem: Option<&Idempotency>) -> StoreResult<Submitted>;

    /// The job `owner` created with this idempotency key within `idem.ttl`
    /// (what [`JobStore::submit`] would return as `Existing`), read only.
    fn find_idempotent(&self, owner: &str, idem: &Idempotency) -> StoreResult<Option<Job>>;

    /// Take the oldest `pending` job: it becomes `running` with a new
    /// fencing token and a lease of `lease` seconds. No two claims ever get
    /// the same job with the same token.
    fn claim(&self, lease: f64) -> StoreResult<Option<Claim>>;

    /// Like `claim`, but the oldest pending job whose tool is in `prefer`
    /// is taken before the oldest overall (drain-by-group; the first 256
    /// pending jobs are looked at). An empty `prefer` is `claim`.
    fn claim_preferring(&self, lease: f64, prefer: &[String]) -> StoreResult<Option<Claim>> {
        let _ = prefer;
        self.claim(lease)
    }

    /// `finish_and_claim` with the preference of `claim_preferring`.
    fn finish_and_claim_preferring(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
        prefer: &[String],
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        let _ = prefer;
        self.finish_and_claim(id, token, f, lease)
    }

    /// Extend the lease of a running job; false when `token` is no longer
    /// the job's (it was reclaimed or ended): the worker must stop.
    fn heartbeat(&self, id: &str, token: u64, lease: f64) -> StoreResult<bool>;

    /// Record the end of a run: only if the job is still `running` with
    /// this `token`; sets `finished_at` and queues its callback in the same
    /// commit. `None`: the claim was superseded and nothing changed.
    fn finish(&self, id: &str, token: u64, f: &Finish) -> StoreResult<Option<Job>>;

    /// [`JobStore::finish`] and then [`JobStore::claim`] in one commit: a
    /// worker records its job's end and takes the next one with one
    /// durable write.
    fn finish_and_claim(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
    ) -> StoreResult<(Option<Job>, Option<Claim>)>;

    /// Compare-and-set: move the job from one of `from` to `to` with
    /// `change`; a terminal `to` sets `finished_at` (and queues its callback)
    /// unless `from` is terminal itself. `None` when the job does not exist
    /// or is not in `from`.
    fn transition(
        &self,
        id: &str,
        from: &[JobStatus],
        to: JobStatus,
        change: &Change,
    ) -> StoreResult<Option<Job>>;

    /// Cancel: a waiting job becomes `cancelled` (reason `cancelled`); a
    /// running one gets `cancel_requested` for its worker; a terminal one is
    /// left alone. Atomic with respect to every other change.
    fn request_cancel(&self, id: &str) -> StoreResult<CancelRequest>;

    /// Whether a cancel was requested for this running job.
    fn cancel_requested(&self, id: &str) -> StoreResult<bool>;

    /// A job by id, with its envelope.
    fn get(&self, id: &str) -> StoreResult<Option<Job>>;

    /// A page of jobs, newest first, without envelopes or pipeline results;
    /// served by an index (milliseconds with 100,000 jobs stored).
    fn list(&self, q: &ListQuery) -> StoreResult<Vec<Job>>;

    /// The number of jobs in each state, in the order of [`ALL_STATUSES`].
    fn counts(&self) -> StoreResult<[u64; 6]>;

    /// The directory of a job's append-only files: `stdout`, `stderr` and
    /// `events` (`<n>\t<json>` lines, read by SSE streams). In the embedded
    /// store they are plain files under `$GATHM_HOME/jobs/<id>/`, appended
    /// by the running job's output lock.
    fn job_dir(&self, id: &str) -> PathBuf;

    /// Append numbered event lines (`<n>\t<json>\n`) to a job's events.
    fn append_events(&self, id: &str, lines: &[u8]) -> StoreResult<()>;

    /// The events of a job numbered above `after`, in order (a shared store
    /// may return a bounded prefix: call again after its last number).
    fn read_events(&self, id: &str, after: u64) -> StoreResult<Vec<(u64, String)>>;

    /// Running jobs whose lease ran out (every running job with `all`: on
    /// the start of the one server that owns an embedded store; a shared
    /// store ignores `all` and takes expired leases only, since other live
    /// instances hold the rest) become
    /// `failed` with reason `interrupted` (callbacks queued), or `pending`
    /// again when `requeue` says so (the manifest's `retry_on_interrupt`:
    /// at-least-once). Each is a compare-and-set from `running`; the old
    /// claim's fencing token can no longer finish it. Returns them, with
    /// their new status.
    fn reclaim(&self, all: bool, requeue: &dyn Fn(&Job) -> bool) -> StoreResult<Vec<Job>>;

    /// Jobs still `awaiting_approval` created before `before` become
    /// `failed` with reason `approval_expired`. Returns them.
    fn expire_approvals(&self, before: f64) -> StoreResult<Vec<Job>>;

    /// Delete terminal jobs that finished before `before` (their files are
    /// the caller's to remove), and deliveries that gave up before then.
    /// Returns the jobs' ids.
    fn sweep(&self, before: f64) -> StoreResult<Vec<String>>;

    /// Deliveries due now (attempts left), oldest first, at most `limit`.
    fn outbox_due(&self, limit: usize) -> StoreResult<Vec<Delivery>>;

    /// Seconds until the next delivery is due (None: none left).
    fn outbox_next(&self) -> StoreResult<Option<f64>>;

    /// A delivery succeeded: it leaves the outbox.
    fn outbox_done(&self, id: &str) -> StoreResult<()>;

    /// A delivery failed: count the attempt and retry `delay` seconds from
    /// now; with `give_up` it stays in the outbox, marked dead.
    fn outbox_retry(&self, id: &str, delay: f64, error: &str, give_up: bool) -> StoreResult<()>;
}
