//! Server-sent events for `GET /api/v1/jobs/{id}/stream`.
//!
//! One tokio task per stream reads the job's `events` file (one numbered
//! line per output line, appended under the job's output lock) from the
//! start, in bounded chunks, and while the job runs looks for more every
//! [`POLL`] (the job store's progress check, never a blocking wait). Replay
//! and live follow are therefore one continuous read of one file: no line is
//! lost or repeated between them. Every event carries `id: <line number>`, so
//! a client's `Last-Event-ID` resumes after that line. A keep-alive comment
//! goes out every 15 s; the last event is `event: done` with the status and
//! exit code. The task ends (and frees its slot) as soon as the client is
//! gone, or when a client stops reading for [`WRITE_TIMEOUT`].

use std::convert::Infallible;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::Event;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::mpsc;

use crate::jobs::{Job, JobStatus, Jobs, Live, Progress};
use crate::state::jobs::JobStore;

/// Time between keep-alive comments.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a stream looks for new output of a running job.
pub const POLL: Duration = Duration::from_millis(100);
/// A client that takes no event for this long is dropped.
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
}

impl Out {
    async fn send(&mut self, e: Event) -> Result<(), Gone> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.tx.send(Ok(e))).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            _ => Err(Gone),
        }
    }

    /// A keep-alive comment when nothing went out for [`KEEPALIVE`]; `Gone`
    /// as soon as the client has closed the stream.
    async fn idle(&mut self) -> Result<(), Gone> {
        if self.tx.is_closed() {
            return Err(Gone);
        }
        if self.last_sent.elapsed() >= KEEPALIVE {
            self.send(Event::default().comment("keepalive")).await?;
        }
        tokio::time::sleep(POLL).await;
        Ok(())
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
        let data = json!({"event": "done", "status": status.as_str(), "exit_code": code});
        self.send(
            Event::default()
                .id((n + 1).to_string())
                .event("done")
                .data(data.to_string()),
        )
        .await
    }
}

/// Start the stream's task; `slot` is held until the task ends. The
/// returned stream is the response body.
pub fn start<S: Send + 'static>(
    jobs: Jobs,
    events: PathBuf,
    src: Source,
    slot: S,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut out = Out {
            tx,
            last_sent: Instant::now(),
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
    let shared = jobs.shared_store();
    let mut tail = Tail::new(events).with_store(shared.clone().map(|s| (s, job.id.clone())));
    out.send(Event::default().comment(format!("job {}", job.id)))
        .await?;
    let (mut job, mut live) = (job, live);
    // Not started yet: wait (with keep-alives) until it runs or ends (or,
    // in a fleet, runs on another instance).
    let remote = |job: &Job| shared.is_some() && job.status == JobStatus::Running;
    while live.is_none() && !job.status.terminal() && !remote(&job) {
        match jobs.wait_started(&job.id, Duration::ZERO) {
            Some((j, l)) => {
                job = j;
                live = l;
                if job.status == JobStatus::Running && live.is_none() {
                    // It ended between the two looks: re-read the record.
                    if let Some((j, l)) = jobs.stream_source(&job.id, &owner, admin) {
                        job = j;
                        live = l;
                    }
                }
                if live.is_none() && !job.status.terminal() && !remote(&job) {
                    out.idle().await?;
                }
            }
            None => return Ok(()),
        }
    }
    if let Some(live) = live {
        loop {
            let before = tail.read;
            if out.lines(&mut tail, last_id).await? {
                continue;
            }
            match live.wait(tail.read, Duration::ZERO) {
                Progress::More(_) if tail.read != before => continue,
                Progress::More(_) | Progress::Idle => out.idle().await?,
                Progress::Done(status, code) => {
                    out.drain(&mut tail, last_id).await?;
                    return out.done(tail.read, status, code).await;
                }
            }
        }
    }
    if live.is_none() && remote(&job) {
        // Another instance runs it: follow its events in the store until
        // its record is terminal (its last events are stored before that).
        loop {
            if out.lines(&mut tail, last_id).await? {
                continue;
            }
            match jobs.stream_source(&job.id, &owner, admin) {
                Some((j, _)) if j.status.terminal() => {
                    job = j;
                    break;
                }
                Some(_) => out.idle().await?,
                None => return Ok(()),
            }
        }
    }
    out.drain(&mut tail, last_id).await?;
    out.done(tail.read, job.status, job.exit_code).await
}
