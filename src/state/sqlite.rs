//! The embedded job store: SQLite at `$GATHM_HOME/jobs/jobs.db` (WAL,
//! `synchronous=FULL`, a busy timeout), with each job's output and events
//! in append-only files under `$GATHM_HOME/jobs/<id>/`.
//!
//! Writes go through one writer thread that owns the write connection:
//! every change waiting when it wakes joins one transaction (each in its own
//! savepoint, so one failing statement does not undo the others) and one
//! commit, and each caller gets its answer only after that commit (group
//! commit). Reads use a small pool of read connections, which WAL lets run
//! alongside the writer. Every state change is a compare-and-set on the
//! current status.
//!
//! On first open, a home written by the journal-based store (a `journal` of
//! JSON lines plus `<id>/job.json` records) is imported, so users keep
//! their history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::clock;
use crate::state::jobs::{
    ALL_STATUSES, CancelRequest, Change, Claim, Delivery, Finish, Idempotency, Job, JobKind,
    JobStatus, JobStore, ListQuery, StoreError, StoreResult, Submitted,
};

type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Op = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// Changes waiting when the writer wakes are committed together, up to this many.
const BATCH_MAX: usize = 1024;

/// The SQLite job store.
pub struct SqliteStore {
    dir: PathBuf,
    db: PathBuf,
    read_only: bool,
    ops: Mutex<Option<Sender<Op>>>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    timeout REAL,
    callback_url TEXT,
    stdout_lines INTEGER NOT NULL DEFAULT 0,
    stderr_lines INTEGER NOT NULL DEFAULT 0,
    approved INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL,
    role TEXT NOT NULL,
    envelope TEXT,
    pipeline TEXT,
    result TEXT,
    token INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT,
    stdin TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_owner_status ON jobs (owner, status, seq);
CREATE INDEX IF NOT EXISTS jobs_tool ON jobs (tool, seq);
CREATE INDEX IF NOT EXISTS jobs_idem ON jobs (owner, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (dead, next_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

const COLS: &str = "id, kind, tool, args, status, reason, exit_code, created_at, started_at, finished_at, timeout, callback_url, stdout_lines, stderr_lines, approved, owner, role, envelope, pipeline, result, stdin";

/// The columns of a list row: no envelope, pipeline, result or stdin.
const LIGHT_COLS: &str = "id, kind, tool, args, status, reason, exit_code, created_at, started_at, finished_at, timeout, callback_url, stdout_lines, stderr_lines, approved, owner, role, NULL, NULL, NULL, NULL";

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(C::DiskFull) => StoreError::Full(text),
        Some(
            C::ReadOnly
            | C::SystemIoFailure
            | C::CannotOpen
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::PermissionDenied,
        ) => StoreError::Unavailable(text),
        _ => {
            // ENOSPC surfaces as an I/O error on some paths.
            if text.contains("disk is full") || text.contains("No space") {
                StoreError::Full(text)
            } else {
                StoreError::Other(text)
            }
        }
    }
}

fn json_text<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn row_job(r: &Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = r.get(1)?;
    let args: String = r.get(3)?;
    let status: String = r.get(4)?;
    let envelope: Option<String> = r.get(17)?;
    let pipeline: Option<String> = r.get(18)?;
    let result: Option<String> = r.get(19)?;
    let stdin: Option<String> = r.get(20)?;
    Ok(Job {
        id: r.get(0)?,
        kind: JobKind::parse(&kind).unwrap_or_default(),
        tool: r.get(2)?,
        args: serde_json::from_str(&args).unwrap_or_default(),
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        reason: r.get(5)?,
        exit_code: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        timeout: r.get(10)?,
        callback_url: r.get(11)?,
        stdout_lines: r.get::<_, i64>(12)? as u64,
        stderr_lines: r.get::<_, i64>(13)? as u64,
        approved: r.get(14)?,
        owner: r.get(15)?,
        role: r.get(16)?,
        envelope: envelope.and_then(|s| serde_json::from_str(&s).ok()),
        pipeline: pipeline.and_then(|s| serde_json::from_str(&s).ok()),
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        stdin,
        live_output: None,
    })
}

/// A database made before jobs had stdin (issue 18) gets the column.
fn add_stdin_column(c: &Connection) -> rusqlite::Result<()> {
    let has: i64 = c.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'stdin'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        c.execute_batch("ALTER TABLE jobs ADD COLUMN stdin TEXT")?;
    }
    Ok(())
}

fn get_job(c: &Connection, id: &str) -> rusqlite::Result<Option<Job>> {
    c.prepare_cached(&format!("SELECT {COLS} FROM jobs WHERE id = ?1"))?
        .query_row([id], row_job)
        .optional()
}

fn insert_job(c: &Connection, j: &Job, idem_key: Option<&str>) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO jobs (id, kind, tool, args, status, reason, exit_code, created_at, started_at, finished_at, timeout, callback_url, stdout_lines, stderr_lines, approved, owner, role, envelope, pipeline, result, idem_key, stdin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        j.id,
        j.kind.as_str(),
        j.tool,
        serde_json::to_string(&j.args).unwrap_or_else(|_| "[]".into()),
        j.status.as_str(),
        j.reason,
        j.exit_code,
        j.created_at,
        j.started_at,
        j.finished_at,
        j.timeout,
        j.callback_url,
        j.stdout_lines as i64,
        j.stderr_lines as i64,
        j.approved,
        j.owner,
        j.role,
        json_text(&j.envelope),
        json_text(&j.pipeline),
        json_text(&j.result),
        idem_key,
        j.stdin,
    ])?;
    Ok(())
}

/// Queue the callback of a job that just ended (same transaction).
fn enqueue_callback(c: &Connection, j: &Job, now: f64) -> rusqlite::Result<()> {
    let Some(url) = &j.callback_url else {
        return Ok(());
    };
    let body = serde_json::to_vec(&j.public()).unwrap_or_default();
    c.prepare_cached(
        "INSERT INTO outbox (id, job, url, body, attempts, next_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )?
    .execute(params![new_id(), j.id, url, body, now])?;
    Ok(())
}

fn claim_in(
    c: &Connection,
    now: f64,
    lease: f64,
    prefer: &[String],
) -> rusqlite::Result<Option<Claim>> {
    let preferred: Option<String> = if prefer.is_empty() {
        None
    } else {
        let mut st = c.prepare_cached(
            "SELECT id, tool FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 256",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut found = None;
        for row in rows {
            let (id, tool) = row?;
            if prefer.contains(&tool) {
                found = Some(id);
                break;
            }
        }
        found
    };
    let id: Option<String> = match preferred {
        Some(id) => Some(id),
        None => c
            .prepare_cached("SELECT id FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?,
    };
    let Some(id) = id else {
        return Ok(None);
    };
    let token: i64 = c
        .prepare_cached(
            "UPDATE jobs SET status = 'running', started_at = ?2, token = token + 1,
             lease_until = ?3, cancel_requested = 0
             WHERE id = ?1 AND status = 'pending' RETURNING token",
        )?
        .query_row(params![id, now, now + lease], |r| r.get(0))?;
    let job = get_job(c, &id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Some(Claim {
        job,
        token: token as u64,
        lease_until: now + lease,
    }))
}

fn finish_in(
    c: &Connection,
    now: f64,
    id: &str,
    token: u64,
    f: &Finish,
) -> rusqlite::Result<Option<Job>> {
    let n = c
        .prepare_cached(
            "UPDATE jobs SET status = ?3, reason = ?4, exit_code = ?5, finished_at = ?6,
             stdout_lines = ?7, stderr_lines = ?8, envelope = ?9, result = ?10, lease_until = NULL
             WHERE id = ?1 AND status = 'running' AND token = ?2",
        )?
        .execute(params![
            id,
            token as i64,
            f.status.as_str(),
            f.reason,
            f.exit_code,
            now,
            f.stdout_lines as i64,
            f.stderr_lines as i64,
            json_text(&f.envelope),
            json_text(&f.result),
        ])?;
    if n != 1 {
        return Ok(None);
    }
    let job = get_job(c, id)?;
    if let Some(j) = &job {
        enqueue_callback(c, j, now)?;
    }
    Ok(job)
}

// Delivery ids: the one id generator.
use crate::clock::new_id;

fn in_list(statuses: &[JobStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

fn open_conn(db: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    if read_only {
        use rusqlite::OpenFlags as F;
        let flags = F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX;
        // With its -wal and -shm files, a WAL database opens read-only as
        // it is; without them (a clean shutdown) only as immutable.
        let c = Connection::open_with_flags(db, flags).and_then(|c| {
            c.query_row("SELECT count(*) FROM jobs", [], |_| Ok(()))?;
            Ok(c)
        });
        let c = match c {
            Ok(c) => c,
            Err(_) => {
                Connection::open_with_flags(format!("file:{}?immutable=1", db.display()), flags)?
            }
        };
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        return Ok(c);
    }
    let c = Connection::open(db)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

fn savepoint<R>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    c.execute_batch("SAVEPOINT op")?;
    match f(c) {
        Ok(v) => {
            c.execute_batch("RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

fn writer_loop(conn: Connection, rx: Receiver<Op>) {
    writer_batches(&conn, rx);
    // Stopping: fold the WAL into the database, so a home made read-only
    // afterwards still shows every job.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn writer_batches(conn: &Connection, rx: Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = map_err(e);
            for op in batch {
                // Not run: answer with the error without touching the database.
                let done = op_failed(op, &err);
                done(Some(&err));
            }
            continue;
        }
        let done: Vec<Completion> = batch.into_iter().map(|op| op(conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(map_err);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for d in done {
            d(commit.as_ref().err());
        }
    }
}

/// Answer an op that could not run (its transaction did not begin).
fn op_failed(op: Op, _err: &StoreError) -> Completion {
    // Dropping the op drops its reply channel: the caller sees the error
    // passed to the completion below instead.
    drop(op);
    Box::new(|_| {})
}

impl SqliteStore {
    /// Open (creating) `<jobs_dir>/jobs.db`, importing an old home's
    /// journal and `job.json` records on first open. On a read-only
    /// filesystem the store opens read-only: reads work, every change fails
    /// with [`StoreError::Unavailable`].
    pub fn open(jobs_dir: &Path) -> StoreResult<SqliteStore> {
        let read_only = read_only_fs(jobs_dir);
        if !read_only {
            // Mode 0700, like the rest of the home.
            crate::state::create_dir(jobs_dir)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let db = jobs_dir.join("jobs.db");
        if !read_only {
            // Mode 0600 (SQLite gives its -wal and -shm files the same).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&db)
                .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", db.display())))?;
        }
        let conn = open_conn(&db, read_only).map_err(map_err)?;
        if !read_only {
            conn.execute_batch(SCHEMA).map_err(map_err)?;
            add_stdin_column(&conn).map_err(map_err)?;
            import_legacy(&conn, jobs_dir).map_err(map_err)?;
        }
        let (tx, rx) = mpsc::channel::<Op>();
        let writer = std::thread::Builder::new()
            .name("job-store".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Other(format!("cannot start the store writer: {e}")))?;
        Ok(SqliteStore {
            dir: jobs_dir.to_path_buf(),
            db,
            read_only,
            ops: Mutex::new(Some(tx)),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Run `f` in the next group commit; its answer comes after the commit.
    fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, f64) -> rusqlite::Result<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (tx, rx) = mpsc::sync_channel::<StoreResult<R>>(1);
        let op: Op = Box::new(move |c: &Connection| -> Completion {
            let r = savepoint(c, |c| f(c, clock::now())).map_err(map_err);
            Box::new(move |commit: Option<&StoreError>| {
                let _ = tx.send(match (r, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(e)) => Err(e.clone()),
                    (Ok(v), None) => Ok(v),
                });
            })
        });
        let sent = self
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.send(op).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(StoreError::Unavailable("the job store is closed".into()));
        }
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the job store could not begin a transaction".into(),
            ))
        })
    }

    /// Run `f` on a read connection.
    fn read<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> StoreResult<R> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.db, self.read_only).map_err(map_err)?,
        };
        let r = f(&conn).map_err(map_err);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        r
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        JobStore::close(self);
    }
}

/// Whether the nearest existing directory of `dir` is on a read-only mount.
fn read_only_fs(dir: &Path) -> bool {
    let mut d = Some(dir);
    while let Some(p) = d {
        if let Ok(v) = rustix::fs::statvfs(p) {
            return v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY);
        }
        d = p.parent();
    }
    false
}

impl JobStore for SqliteStore {
    fn now(&self) -> f64 {
        clock::now()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn close(&self) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    fn submit(&self, job: Job, idem: Option<&Idempotency>) -> StoreResult<Submitted> {
        let idem = idem.cloned();
        self.write(move |c, now| {
            if let Some(i) = &idem {
                let existing: Option<(String, f64)> = c
                    .prepare_cached(
                        "SELECT id, created_at FROM jobs WHERE owner = ?1 AND idem_key = ?2",
                    )?
                    .query_row(params![job.owner, i.key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((id, created)) = existing {
                    if created >= now - i.ttl
                        && let Some(j) = get_job(c, &id)?
                    {
                        return Ok(Submitted::Existing(j));
                    }
                    // Expired: the key is free again.
                    c.prepare_cached("UPDATE jobs SET idem_key = NULL WHERE id = ?1")?
                        .execute([&id])?;
                }
            }
            let mut job = job;
            job.created_at = now;
            insert_job(c, &job, idem.as_ref().map(|i| i.key.as_str()))?;
            Ok(Submitted::New(job))
        })
    }

    fn find_idempotent(&self, owner: &str, idem: &Idempotency) -> StoreResult<Option<Job>> {
        let since = self.now() - idem.ttl;
        self.read(|c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT id FROM jobs WHERE owner = ?1 AND idem_key = ?2 AND created_at >= ?3",
                )?
                .query_row(params![owner, idem.key, since], |r| r.get(0))
                .optional()?;
            match id {
                Some(id) => get_job(c, &id),
                None => Ok(None),
            }
        })
    }

    fn claim(&self, lease: f64) -> StoreResult<Option<Claim>> {
        self.write(move |c, now| claim_in(c, now, lease, &[]))
    }

    fn claim_preferring(&self, lease: f64, prefer: &[String]) -> StoreResult<Option<Claim>> {
        let prefer = prefer.to_vec();
        self.write(move |c, now| claim_in(c, now, lease, &prefer))
    }

    fn heartbeat(&self, id: &str, token: u64, lease: f64) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |c, now| {
            let n = c
                .prepare_cached(
                    "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND status = 'running' AND token = ?2",
                )?
                .execute(params![id, token as i64, now + lease])?;
            Ok(n == 1)
        })
    }

    fn finish(&self, id: &str, token: u64, f: &Finish) -> StoreResult<Option<Job>> {
        let id = id.to_string();
        let f = f.clone();
        self.write(move |c, now| finish_in(c, now, &id, token, &f))
    }

    fn finish_and_claim(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        let id = id.to_string();
        let f = f.clone();
        self.write(move |c, now| {
            let done = finish_in(c, now, &id, token, &f)?;
            Ok((done, claim_in(c, now, lease, &[])?))
        })
    }

    fn finish_and_claim_preferring(
        &self,
        id: &str,
        token: u64,
        f: &Finish,
        lease: f64,
        prefer: &[String],
    ) -> StoreResult<(Option<Job>, Option<Claim>)> {
        let id = id.to_string();
        let f = f.clone();
        let prefer = prefer.to_vec();
        self.write(move |c, now| {
            let done = finish_in(c, now, &id, token, &f)?;
            Ok((done, claim_in(c, now, lease, &prefer)?))
        })
    }

    fn transition(
        &self,
        id: &str,
        from: &[JobStatus],
        to: JobStatus,
        change: &Change,
    ) -> StoreResult<Option<Job>> {
        let id = id.to_string();
        let from_terminal = from.iter().all(|s| s.terminal());
        let sql = format!(
            "UPDATE jobs SET status = ?2, reason = COALESCE(?3, reason), approved = COALESCE(?4, approved),
             stdout_lines = COALESCE(?5, stdout_lines), stderr_lines = COALESCE(?6, stderr_lines),
             finished_at = CASE WHEN ?7 THEN ?8 ELSE finished_at END,
             lease_until = CASE WHEN ?7 THEN NULL ELSE lease_until END
             WHERE id = ?1 AND status IN ({})",
            in_list(from)
        );
        let change = change.clone();
        self.write(move |c, now| {
            let ends = to.terminal() && !from_terminal;
            let n = c.prepare_cached(&sql)?.execute(params![
                id,
                to.as_str(),
                change.reason,
                change.approved,
                change.lines.map(|l| l[0] as i64),
                change.lines.map(|l| l[1] as i64),
                ends,
                now,
            ])?;
            if n != 1 {
                return Ok(None);
            }
            let job = get_job(c, &id)?;
            if ends && let Some(j) = &job {
                enqueue_callback(c, j, now)?;
            }
            Ok(job)
        })
    }

    fn request_cancel(&self, id: &str) -> StoreResult<CancelRequest> {
        let id = id.to_string();
        self.write(move |c, now| {
            let Some(job) = get_job(c, &id)? else {
                return Ok(CancelRequest::NotFound);
            };
            match job.status {
                s if s.terminal() => Ok(CancelRequest::Terminal(job)),
                JobStatus::Running => {
                    c.prepare_cached(
                        "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running'",
                    )?
                    .execute([&id])?;
                    Ok(CancelRequest::Requested(job))
                }
                _ => {
                    let n = c
                        .prepare_cached(
                            "UPDATE jobs SET status = 'cancelled', reason = 'cancelled', finished_at = ?2
                             WHERE id = ?1 AND status IN ('pending', 'awaiting_approval')",
                        )?
                        .execute(params![id, now])?;
                    let job = get_job(c, &id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    if n == 1 {
                        enqueue_callback(c, &job, now)?;
                    }
                    Ok(CancelRequest::Cancelled(job))
                }
            }
        })
    }

    fn cancel_requested(&self, id: &str) -> StoreResult<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT cancel_requested FROM jobs WHERE id = ?1")?
                .query_row([id], |r| r.get::<_, bool>(0))
                .optional()
                .map(|v| v.unwrap_or(false))
        })
    }

    fn get(&self, id: &str) -> StoreResult<Option<Job>> {
        self.read(|c| get_job(c, id))
    }

    fn list(&self, q: &ListQuery) -> StoreResult<Vec<Job>> {
        self.read(|c| {
            let mut sql = format!("SELECT {LIGHT_COLS} FROM jobs WHERE 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(o) = &q.owner {
                args.push(o.clone().into());
                sql.push_str(&format!(" AND owner = ?{}", args.len()));
            }
            if let Some(s) = q.status {
                args.push(s.as_str().to_string().into());
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(t) = &q.tool {
                args.push(t.clone().into());
                sql.push_str(&format!(" AND tool = ?{}", args.len()));
            }
            if let Some(a) = &q.after {
                args.push(a.clone().into());
                sql.push_str(&format!(
                    " AND seq < COALESCE((SELECT seq FROM jobs WHERE id = ?{}), -1)",
                    args.len()
                ));
            }
            args.push((q.limit as i64).into());
            sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), row_job)?;
            rows.collect()
        })
    }

    fn counts(&self) -> StoreResult<[u64; 6]> {
        self.read(|c| {
            let mut out = [0u64; 6];
            let mut st = c.prepare_cached("SELECT status, count(*) FROM jobs GROUP BY status")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (s, n) = row?;
                if let Some(i) =
                    JobStatus::parse(&s).and_then(|s| ALL_STATUSES.iter().position(|x| *x == s))
                {
                    out[i] = n as u64;
                }
            }
            Ok(out)
        })
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn append_events(&self, id: &str, lines: &[u8]) -> StoreResult<()> {
        crate::state::append(&self.job_dir(id).join("events"), lines)
            .map(|_| ())
            .map_err(|e| StoreError::Other(e.to_string()))
    }

    fn read_events(&self, id: &str, after: u64) -> StoreResult<Vec<(u64, String)>> {
        let bytes = crate::state::read_bytes(&self.job_dir(id).join("events"))
            .map_err(|e| StoreError::Other(e.to_string()))?
            .unwrap_or_default();
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| {
                let text = String::from_utf8_lossy(l);
                let (n, data) = text.split_once('\t')?;
                let n: u64 = n.parse().ok()?;
                (n > after).then(|| (n, data.to_string()))
            })
            .collect())
    }

    fn reclaim(&self, all: bool, requeue: &dyn Fn(&Job) -> bool) -> StoreResult<Vec<Job>> {
        // Decide outside the writer (it may read manifests), then CAS inside.
        let candidates: Vec<String> = {
            let ids = self.read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT id FROM jobs WHERE status = 'running' AND (?1 OR lease_until IS NULL OR lease_until < ?2)",
                )?;
                st.query_map(params![all, clock::now()], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })?;
            ids.into_iter()
                .filter(|id| self.get(id).ok().flatten().is_some_and(|j| requeue(&j)))
                .collect()
        };
        self.write(move |c, now| {
            let ids: Vec<String> = {
                let mut st = c.prepare_cached(
                    "SELECT id FROM jobs WHERE status = 'running' AND (?1 OR lease_until IS NULL OR lease_until < ?2)",
                )?;
                st.query_map(params![all, now], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for id in ids {
                if candidates.contains(&id) {
                    let n = c
                        .prepare_cached(
                            "UPDATE jobs SET status = 'pending', started_at = NULL,
                             lease_until = NULL, envelope = NULL WHERE id = ?1 AND status = 'running'",
                        )?
                        .execute(params![id])?;
                    if n == 1
                        && let Some(j) = get_job(c, &id)?
                    {
                        out.push(j);
                    }
                    continue;
                }
                let n = c
                    .prepare_cached(
                        "UPDATE jobs SET status = 'failed', reason = 'interrupted', finished_at = ?2,
                         lease_until = NULL, envelope = NULL WHERE id = ?1 AND status = 'running'",
                    )?
                    .execute(params![id, now])?;
                if n == 1
                    && let Some(j) = get_job(c, &id)?
                {
                    enqueue_callback(c, &j, now)?;
                    out.push(j);
                }
            }
            Ok(out)
        })
    }

    fn expire_approvals(&self, before: f64) -> StoreResult<Vec<Job>> {
        self.write(move |c, now| {
            let ids: Vec<String> = {
                let mut st = c.prepare_cached(
                    "SELECT id FROM jobs WHERE status = 'awaiting_approval' AND created_at < ?1",
                )?;
                st.query_map([before], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for id in ids {
                let n = c
                    .prepare_cached(
                        "UPDATE jobs SET status = 'failed', reason = 'approval_expired', finished_at = ?2
                         WHERE id = ?1 AND status = 'awaiting_approval'",
                    )?
                    .execute(params![id, now])?;
                if n == 1
                    && let Some(j) = get_job(c, &id)?
                {
                    enqueue_callback(c, &j, now)?;
                    out.push(j);
                }
            }
            Ok(out)
        })
    }

    fn sweep(&self, before: f64) -> StoreResult<Vec<String>> {
        self.write(move |c, _| {
            // Deliveries that gave up are kept for a TTL too.
            c.prepare_cached("DELETE FROM outbox WHERE dead = 1 AND next_at < ?1")?
                .execute([before])?;
            let mut st = c.prepare_cached(
                "DELETE FROM jobs WHERE finished_at < ?1 AND status IN ('completed', 'failed', 'cancelled') RETURNING id",
            )?;
            st.query_map([before], |r| r.get(0))?.collect()
        })
    }

    fn outbox_due(&self, limit: usize) -> StoreResult<Vec<Delivery>> {
        let now = self.now();
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, job, url, body, attempts FROM outbox WHERE dead = 0 AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
            )?;
            st.query_map(params![now, limit as i64], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    url: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get::<_, i64>(4)? as u32,
                })
            })?
            .collect()
        })
    }

    fn outbox_next(&self) -> StoreResult<Option<f64>> {
        let now = self.now();
        self.read(|c| {
            c.prepare_cached("SELECT min(next_at) FROM outbox WHERE dead = 0")?
                .query_row([], |r| r.get::<_, Option<f64>>(0))
                .map(|t| t.map(|t| (t - now).max(0.0)))
        })
    }

    fn outbox_done(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([&id])?;
            Ok(())
        })
    }

    fn outbox_retry(&self, id: &str, delay: f64, error: &str, give_up: bool) -> StoreResult<()> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |c, now| {
            c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3, dead = ?4 WHERE id = ?1",
            )?
            .execute(params![id, now + delay, error, give_up])?;
            Ok(())
        })
    }
}

// ---------------------------------------------------------------- import

fn rank(s: JobStatus) -> u8 {
    match s {
        JobStatus::Pending | JobStatus::AwaitingApproval => 0,
        JobStatus::Running => 1,
        _ => 2,
    }
}

/// Read a home written by the journal-based store: the `journal` (one JSON
/// record per line, `{"evicted": id}` lines for swept jobs, maybe a torn
/// last line) and the `<id>/job.json` records; the more advanced record of
/// each job wins. Oldest first.
pub fn read_legacy(jobs_dir: &Path) -> Vec<Job> {
    let mut journaled: HashMap<String, Job> = HashMap::new();
    if let Ok(bytes) = std::fs::read(jobs_dir.join("journal")) {
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if let Some(id) = v.get("evicted").and_then(Value::as_str) {
                journaled.remove(id);
            } else if let Ok(job) = serde_json::from_value::<Job>(v) {
                journaled.insert(job.id.clone(), job);
            }
        }
    }
    let mut found: Vec<Job> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(jobs_dir) {
        for e in rd.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let id = e.file_name().to_string_lossy().into_owned();
            let on_disk = std::fs::read(path.join("job.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Job>(&b).ok());
            match (on_disk, journaled.remove(&id)) {
                (Some(d), Some(j)) if rank(j.status) > rank(d.status) => found.push(j),
                (Some(d), _) => found.push(d),
                (None, Some(j)) => found.push(j),
                (None, None) => {}
            }
        }
    }
    found.extend(journaled.into_values());
    found.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    found
}

/// Import an old home once (marked in `meta`); the journal is kept, renamed
/// `journal.imported`.
fn import_legacy(c: &Connection, jobs_dir: &Path) -> rusqlite::Result<()> {
    let done: Option<String> = c
        .query_row("SELECT value FROM meta WHERE key = 'imported'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if done.is_some() {
        return Ok(());
    }
    let jobs = read_legacy(jobs_dir);
    c.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| {
        for j in &jobs {
            insert_job(c, j, None)?;
        }
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('imported', ?1)",
            [jobs.len().to_string()],
        )?;
        Ok(())
    })();
    match r {
        Ok(()) => c.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    let journal = jobs_dir.join("journal");
    if journal.exists() {
        let _ = std::fs::rename(&journal, jobs_dir.join("journal.imported"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::conformance::job;

    #[test]
    fn stdin_is_stored_and_an_older_database_gets_its_column() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The schema before jobs had stdin.
            let c = Connection::open(dir.path().join("jobs.db")).unwrap();
            c.execute_batch(&SCHEMA.replace(",\n    stdin TEXT", ""))
                .unwrap();
            let cols: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'stdin'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(cols, 0);
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let mut j = job("u", JobStatus::Pending);
        j.stdin = Some("user:\nhello".into());
        // The round trip itself is in the conformance suite; here: the
        // migrated column works, and list rows leave it out.
        let Submitted::New(a) = s.submit(j, None).unwrap() else {
            panic!()
        };
        let got = s.get(&a.id).unwrap().unwrap();
        assert_eq!(got.stdin.as_deref(), Some("user:\nhello"));
        let listed = s
            .list(&ListQuery {
                limit: 10,
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(listed[0].stdin, None);
        s.close();
        // Opening again does not add it twice.
        SqliteStore::open(dir.path()).unwrap().close();
    }

    #[test]
    fn the_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        let s = SqliteStore::open(&jobs).unwrap();
        s.submit(job("u", JobStatus::Pending), None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&jobs), 0o700);
        assert_eq!(mode(&jobs.join("jobs.db")), 0o600);
        assert_eq!(mode(&jobs.join("jobs.db-wal")), 0o600);
    }

    #[test]
    fn imports_an_old_home() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut done_job = job("u", JobStatus::Completed);
        done_job.created_at = 1.0;
        done_job.finished_at = Some(2.0);
        let mut queued = job("u", JobStatus::Pending);
        queued.created_at = 3.0;
        let mut evicted = job("u", JobStatus::Completed);
        evicted.created_at = 0.5;
        std::fs::create_dir_all(d.join(&done_job.id)).unwrap();
        std::fs::write(
            d.join(&done_job.id).join("job.json"),
            serde_json::to_vec(&done_job).unwrap(),
        )
        .unwrap();
        let mut journal = Vec::new();
        for j in [&queued, &evicted] {
            journal.extend(serde_json::to_vec(j).unwrap());
            journal.push(b'\n');
        }
        journal.extend(format!("{{\"evicted\":\"{}\"}}\n{{\"torn", evicted.id).as_bytes());
        std::fs::write(d.join("journal"), journal).unwrap();
        let s = SqliteStore::open(d).unwrap();
        let all = s
            .list(&ListQuery {
                limit: 10,
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, queued.id);
        assert_eq!(all[1].id, done_job.id);
        assert_eq!(all[1].created_at, 1.0);
        assert!(d.join("journal.imported").exists());
        drop(s);
        // Not imported twice.
        let s = SqliteStore::open(d).unwrap();
        assert_eq!(s.counts().unwrap().iter().sum::<u64>(), 2);
    }
}
