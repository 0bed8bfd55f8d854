//! Server-sent events for `GET /api/v1/jobs/{id}/stream`.
//!
//! One tokio task per stream reads the job's `events` file (one numbered
//! line per output line, appended under the job's output lock) from the
//! start, in bounded chunks ([`CHUNK`]), then follows it: while the job runs
//! in this server the task sleeps until the job's notification
//! ([`Live::changes`], bumped after every append and at the end) fires; a
//! job still queued is watched through the manager's notification
//! ([`Jobs::changes`], bumped when a job starts here). Every wait also ends
//! after [`FALLBACK`], so events appended by another process (a fleet
//! instance running the job) are still seen, a second late at most. Replay
//! and live follow are one continuous read of one file: no line is lost or
//! repeated between them. Every event carries `id: <line number>`, so a
//! client's `Last-Event-ID` resumes after that line. A keep-alive comment
//! goes out every 15 s; the last event is `event: done` with the status and
//! exit code. The task ends (and frees its slot) as soon as the client is
//! gone (the response body is dropped), or when an event cannot be handed
//! on within the write timeout (`GATHM_SSE_WRITE_TIMEOUT`, default 30 s: a
//! client that stopped reading); the connection itself is closed by the
//! same timeout on its socket writes (`conn.rs`).

use std::convert::Infallible;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::Event;
use futures_util::Stream;
use tokio::sync::{mpsc, watch};

use super::bodies::DoneEvent;
use crate::jobs::{Job, JobStatus, Jobs, Live, Progress};
use crate::state::jobs::JobStore;

/// Time between keep-alive comments.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a chat completion waiting in the queue looks at its job
/// (`openai.rs`).
pub const POLL: Duration = Duration::from_millis(100);
/// The longest a stream waits without looking at the events file and the
/// job's record (for events another process appends).
pub const FALLBACK: Duration = Duration::from_secs(1);
/// The default `GATHM_SSE_WRITE_TIMEOUT`: a client that takes no event for
/// this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest read of the events file at once (replay is chunked).
const CHUNK: u64 = 64 * 1024;

/// Reads complete lines appended to the events file, or (a fleet's shared
/// store) the job's events in the store (also followed by `openai.rs` for
/// chat completions).
pub(super) struct Tail {
    path: PathBuf,
    store: Option<(Arc<dyn JobStore>, String)>,
    file: Option<File>,
    buf: Vec<u8>,
    /// The number of the last line read.
    pub(super) read: u64,
}

impl Tail {
    /// A reader of `path` from its start.
    pub(super) fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            store: None,
            file: None,
            buf: Vec::new(),
            read: 0,
        }
    }

    /// Read the job's events from a fleet's shared store instead of the file.
    pub(super) fn with_store(mut self, store: Option<(Arc<dyn JobStore>, String)>) -> Tail {
        self.store = store;
        self
    }

    /// Read what is new (at most [`CHUNK`] bytes); returns complete
    /// `(n, json)` lines and whether the read was cut at the chunk size.
    pub(super) fn poll(&mut self) -> (Vec<(u64, String)>, bool) {
        if let Some((store, id)) = &self.store {
            let lines = store.read_events(id, self.read).unwrap_or_default();
            if let Some((n, _)) = lines.last() {
                self.read = *n;
            }
            let more = !lines.is_empty();
            return (lines, more);
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(f) = self.file.as_mut() else {
            return (Vec::new(), false);
        };
        let got = f.take(CHUNK).read_to_end(&mut self.buf).unwrap_or(0);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let line = &self.buf[start..start + pos];
            start += pos + 1;
            let text = String::from_utf8_lossy(line);
            if let Some((n, data)) = text.split_once('\t')
                && let Ok(n) = n.parse::<u64>()
            {
                self.read = n;
                out.push((n, data.to_string()));
            }
        }
        self.buf.drain(..start);
        (out, got as u64 == CHUNK)
    }
}

/// What a stream is about and for whom.
pub struct Source {
    /// The job as it was when the stream was requested.
    pub job: Job,
    /// Its live output, while it runs.
    pub live: Option<Arc<Live>>,
    /// The caller's principal id.
    pub owner: String,
    /// The caller sees every job.
    pub admin: bool,
    /// Lines up to this number are skipped (`Last-Event-ID`).
    pub last_id: u64,
}

/// The client left or stopped reading.
struct Gone;

struct Out {
    tx: mpsc::Sender<Result<Event, Infallible>>,
    last_sent: Instant,
    write_timeout: Duration,
}

/// What ended a wait.
enum Woke {
    Gone,
    Changed,
    Keepalive,
}

impl Out {
    async fn send(&mut self, e: Event) -> Result<(), Gone> {
        match tokio::time::timeout(self.write_timeout, self.tx.send(Ok(e))).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            _ => Err(Gone),
        }
    }

    /// Wait until `changes` fires, [`FALLBACK`] passes, a keep-alive is due
    /// (sent here) or the client is gone.
    async fn wait(&mut self, changes: &mut watch::Receiver<u64>) -> Result<(), Gone> {
        let keepalive = tokio::time::Instant::from_std(self.last_sent + KEEPALIVE);
        let woke = tokio::select! {
            _ = self.tx.closed() => Woke::Gone,
            r = changes.changed() => {
                if r.is_err() {
                    // The notifier is gone: only the fallback wakes us.
                    tokio::time::sleep(FALLBACK).await;
                }
                Woke::Changed
            }
            _ = tokio::time::sleep(FALLBACK) => Woke::Changed,
            _ = tokio::time::sleep_until(keepalive) => Woke::Keepalive,
        };
        match woke {
            Woke::Gone => Err(Gone),
            Woke::Changed => Ok(()),
            Woke::Keepalive => self.send(Event::default().comment("keepalive")).await,
        }
    }

    /// Send every line after `after`; whether the read was cut short.
    async fn lines(&mut self, tail: &mut Tail, after: u64) -> Result<bool, Gone> {
        let (lines, more) = tail.poll();
        for (n, data) in lines {
            if n > after {
                self.send(Event::default().id(n.to_string()).data(data))
                    .await?;
            }
        }
        Ok(more)
    }

    /// Send everything written so far, chunk by chunk.
    async fn drain(&mut self, tail: &mut Tail, after: u64) -> Result<(), Gone> {
        while self.lines(tail, after).await? {}
        Ok(())
    }

    async fn done(&mut self, n: u64, status: JobStatus, code: Option<i32>) -> Result<(), Gone> {
        let data = DoneEvent {
            event: "done",
            exit_code: code,
            status,
        };
        let data = serde_json::to_string(&data).unwrap_or_default();
        self.send(
            Event::default()
                .id((n + 1).to_string())
                .event("done")
                .data(data),
        )
        .await
    }

    /// Follow a job running in this server until it ends.
    async fn live(&mut self, tail: &mut Tail, live: &Live, after: u64) -> Result<(), Gone> {
        let mut changes = live.changes();
        loop {
            // Marked seen before looking: a change after this wakes the wait.
            changes.borrow_and_update();
            let before = tail.read;
            if self.lines(tail, after).await? {
                continue;
            }
            match live.wait(tail.read, Duration::ZERO) {
                Progress::More(_) if tail.read != before => continue,
                Progress::More(_) | Progress::Idle => self.wait(&mut changes).await?,
                Progress::Done(status, code) => {
                    self.drain(tail, after).await?;
                    return self.done(tail.read, status, code).await;
                }
            }
        }
    }
}

/// Start the stream's task; `slot` is held until the task ends. The
/// returned stream is the response body.
pub fn start<S: Send + 'static>(
    jobs: Jobs,
    events: PathBuf,
    src: Source,
    slot: S,
    write_timeout: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut out = Out {
            tx,
            last_sent: Instant::now(),
            write_timeout,
        };
        let _ = follow(&mut out, &jobs, events, src).await;
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn follow(out: &mut Out, jobs: &Jobs, events: PathBuf, src: Source) -> Result<(), Gone> {
    let Source {
        job,
        live,
        owner,
        admin,
        last_id,
    } = src;
    // In a fleet the events are read from the shared store (another
    // instance may run the job).
    let shared = jobs.shared_store().map(|s| (s, job.id.clone()));
    let mut tail = Tail::new(events).with_store(shared);
    out.send(Event::default().comment(format!("job {}", job.id)))
        .await?;
    let mut changes = jobs.changes();
    let (mut job, mut live) = (job, live);
    if live.is_none() && !job.status.terminal() {
        // Looked at again now that a start would notify us.
        match jobs.stream_source(&job.id, &owner, admin) {
            Some((j, l)) => (job, live) = (j, l),
            None => return Ok(()),
        }
    }
    loop {
        if let Some(live) = live {
            return out.live(&mut tail, &live, last_id).await;
        }
        if job.status.terminal() {
            break;
        }
        if job.status == JobStatus::Running {
            // Running without a handle here: another process runs it (or it
            // ended a moment ago); what it appended is in the file.
            out.drain(&mut tail, last_id).await?;
        }
        out.wait(&mut changes).await?;
        // Marked seen before looking: a job starting after this wakes the wait.
        changes.borrow_and_update();
        match jobs.stream_source(&job.id, &owner, admin) {
            Some((j, l)) => (job, live) = (j, l),
            None => return Ok(()),
        }
    }
    out.drain(&mut tail, last_id).await?;
    out.done(tail.read, job.status, job.exit_code).await
}
