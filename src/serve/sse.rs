//! Server-sent events for `GET /api/v1/jobs/{id}/stream`.
//!
//! The stream reads the job's `events` file (one numbered line per output
//! line, appended under the job's output lock) from the start and, while the
//! job runs, waits on the job's condition variable for more. Replay and live
//! follow are therefore one continuous read of one file: no line is lost or
//! repeated between them. Every event carries `id: <line number>`, so a
//! client's `Last-Event-ID` resumes after that line. A `: keepalive` comment
//! goes out every 15 s; the last event is `event: done` with the status and
//! exit code. The response is written as a chunked body, each event flushed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::jobs::{Job, JobStatus, Jobs, Live, Progress};

/// Seconds between keep-alive comments.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Writes SSE events as HTTP/1.1 chunks.
struct Out<W: Write> {
    w: W,
}

impl<W: Write> Out<W> {
    fn chunk(&mut self, data: &str) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        write!(self.w, "{:x}\r\n{data}\r\n", data.len())?;
        self.w.flush()
    }
    fn end(&mut self) -> std::io::Result<()> {
        self.w.write_all(b"0\r\n\r\n")?;
        self.w.flush()
    }
}

/// Reads complete lines appended to the events file.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    /// The number of the last line read.
    read: u64,
}

impl Tail {
    /// Read what is new; returns complete `(n, json)` lines.
    fn poll(&mut self) -> Vec<(u64, String)> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        let _ = f.read_to_end(&mut self.buf);
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
        out
    }
}

/// Headers of the stream response (before the caller's security headers).
pub fn head(extra: &[(String, String)]) -> String {
    let mut h = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n",
    );
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}

fn emit_lines<W: Write>(
    out: &mut Out<W>,
    lines: Vec<(u64, String)>,
    after: u64,
) -> std::io::Result<()> {
    let mut s = String::new();
    for (n, data) in lines {
        if n > after {
            s.push_str(&format!("id: {n}\ndata: {data}\n\n"));
        }
    }
    out.chunk(&s)
}

fn done<W: Write>(
    out: &mut Out<W>,
    n: u64,
    status: JobStatus,
    code: Option<i32>,
) -> std::io::Result<()> {
    let data = json!({"event": "done", "status": status.as_str(), "exit_code": code});
    out.chunk(&format!("id: {}\nevent: done\ndata: {data}\n\n", n + 1))?;
    out.end()
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

/// Stream a job's output to `w` (the raw connection, headers already
/// written) until it ends or the client leaves.
pub fn stream<W: Write>(w: W, jobs: &Jobs, events: PathBuf, src: Source) -> std::io::Result<()> {
    let Source {
        job,
        live,
        owner,
        admin,
        last_id,
    } = src;
    let owner = owner.as_str();
    let mut out = Out { w };
    let mut tail = Tail {
        path: events,
        file: None,
        buf: Vec::new(),
        read: 0,
    };
    out.chunk(&format!(": job {}\n\n", job.id))?;
    let (mut job, mut live) = (job, live);
    // Not started yet: wait (with keep-alives) until it runs or ends.
    while live.is_none() && !job.status.terminal() {
        match jobs.wait_started(&job.id, KEEPALIVE) {
            Some((j, l)) => {
                let unchanged =
                    l.is_none() && !j.status.terminal() && j.status != JobStatus::Running;
                job = j;
                live = l;
                if job.status == JobStatus::Running && live.is_none() {
                    // It ended between the two looks: re-read the record.
                    if let Some((j, l)) = jobs.stream_source(&job.id, owner, admin) {
                        job = j;
                        live = l;
                    }
                }
                if unchanged {
                    out.chunk(": keepalive\n\n")?;
                }
            }
            None => return out.end(),
        }
    }
    if let Some(live) = live {
        loop {
            emit_lines(&mut out, tail.poll(), last_id)?;
            match live.wait(tail.read, KEEPALIVE) {
                Progress::More(_) => continue,
                Progress::Idle => out.chunk(": keepalive\n\n")?,
                Progress::Done(status, code) => {
                    emit_lines(&mut out, tail.poll(), last_id)?;
                    return done(&mut out, tail.read, status, code);
                }
            }
        }
    }
    emit_lines(&mut out, tail.poll(), last_id)?;
    done(&mut out, tail.read, job.status, job.exit_code)
}
