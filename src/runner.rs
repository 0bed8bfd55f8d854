//! The only code that spawns processes.
//!
//! A tool runs with an exact argv (never through a shell), in its own process
//! group (so a timeout or cancel kills grandchildren too: TERM, a grace period,
//! then KILL). One thread polls both pipes and a pidfd: output is teed live to
//! a [`Sink`] and captured. Completion is the child's exit, not pipe EOF: a
//! grandchild holding the pipes open cannot hang a run (its output is drained
//! for at most 250 ms after the exit).
//!
//! Exception: when the tool inherits a terminal on stdin it stays in gathm's
//! foreground process group (a background group would be stopped by SIGTTIN
//! when it reads the terminal); then a timeout kills the child and all its
//! descendants found through `/proc`.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Where the child's stdin comes from.
#[derive(Debug, Clone)]
pub enum Stdin {
    /// `/dev/null`.
    Null,
    /// gathm's own stdin.
    Inherit,
    /// These bytes, then EOF.
    Bytes(Vec<u8>),
}

/// Receives output chunks as they are produced.
pub trait Sink: Send + Sync {
    /// A chunk of stdout.
    fn stdout(&self, chunk: &[u8]);
    /// A chunk of stderr.
    fn stderr(&self, chunk: &[u8]);
}

/// Tee to gathm's own stdout and stderr (text mode). A broken pipe is ignored.
pub struct StdSink;

impl Sink for StdSink {
    fn stdout(&self, chunk: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk).and_then(|()| out.flush());
    }
    fn stderr(&self, chunk: &[u8]) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(chunk).and_then(|()| err.flush());
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments, passed as they are.
    pub args: Vec<OsString>,
    /// Extra environment (names are mostly gathm's own, hence borrowed).
    pub env: Vec<(Cow<'static, OsStr>, OsString)>,
    /// Variables removed from the inherited environment.
    pub env_remove: &'static [&'static str],
    /// Working directory (default: inherited).
    pub cwd: Option<PathBuf>,
    /// Kill the process group after this long.
    pub timeout: Option<Duration>,
    /// Where stdin comes from.
    pub stdin: Stdin,
    /// Time between TERM and KILL.
    pub grace: Duration,
    /// Bytes captured per stream at most (the rest is still streamed).
    pub capture_limit: usize,
}

impl Spec {
    /// A spec with defaults: null stdin, no timeout, 2 s grace, 16 MiB capture.
    pub fn new(program: PathBuf, args: Vec<OsString>) -> Spec {
        Spec {
            program,
            args,
            env: Vec::new(),
            env_remove: &[],
            cwd: None,
            timeout: None,
            stdin: Stdin::Null,
            grace: Duration::from_secs(2),
            capture_limit: 16 << 20,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exited with a code.
    Exited(i32),
    /// Killed by a signal it did not expect.
    Signaled(i32),
    /// The timeout fired and the group was killed.
    TimedOut,
    /// Cancelled (by a cancel token or an interrupt) and killed.
    Cancelled {
        /// The cancel came from SIGINT/SIGTERM/SIGHUP.
        interrupted: bool,
    },
    /// Could not be started.
    SpawnFailed {
        /// Why.
        message: String,
    },
}

impl Status {
    /// The conventional exit code: the code, 128+signal, 124, 130, or 126.
    pub fn code(&self) -> i32 {
        match self {
            Status::Exited(c) => *c,
            Status::Signaled(s) => 128 + s,
            Status::TimedOut => 124,
            Status::Cancelled { .. } => 130,
            Status::SpawnFailed { .. } => 126,
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Captured stdout (up to the limit).
    pub stdout: Vec<u8>,
    /// Captured stderr (up to the limit).
    pub stderr: Vec<u8>,
    /// A stream exceeded the capture limit.
    pub truncated: bool,
    /// Wall time.
    pub duration: Duration,
}

static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Set the interrupt flag on SIGINT, SIGTERM and SIGHUP (no thread, no cost).
pub fn install_signal_flags() {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
}

/// Keep SIGCHLD pending in this thread and every thread it starts (call it
/// before starting any): a long-lived server never takes it, so a tool's end
/// cannot interrupt another thread's socket read that has a timeout (the
/// kernel cannot restart those: EINTR, which failed Redis calls under load).
/// Ends of runs are seen through pidfds and `wait`, never through the
/// signal; tools start with an empty mask (std resets it in the child).
pub fn hold_sigchld() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// Whether gathm received an interrupt.
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// A cancel token shared between a run and whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A fresh token.
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// Request cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Captured bytes of one stream, up to a limit.
struct Capture {
    buf: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Capture {
    fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.buf.len());
        if room < chunk.len() {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }
}

/// A pipe that may already be closed.
trait PipeSlot {
    fn read_some(&mut self, buf: &mut [u8]) -> Option<usize>;
    fn close(&mut self);
}

impl<R: Read> PipeSlot for Option<R> {
    fn read_some(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.as_mut()?.read(buf) {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }
    fn close(&mut self) {
        *self = None;
    }
}

/// All descendants of a pid, from `/proc` (Linux); empty elsewhere.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(e.path().join("stat"))
                && let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..])
                && let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (c, pp) in &parent_of {
            if *pp == p && !out.contains(c) {
                out.push(*c);
                frontier.push(*c);
            }
        }
    }
    out
}

fn signal_tree(pid: i32, own_group: bool, sig: Signal) {
    let Some(p) = Pid::from_raw(pid) else { return };
    if own_group {
        let _ = rustix::process::kill_process_group(p, sig);
    } else {
        for d in descendants(pid) {
            if let Some(dp) = Pid::from_raw(d) {
                let _ = rustix::process::kill_process(dp, sig);
            }
        }
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// What a run has seen so far and what it must do next: the timeout, a
/// cancel or interrupt (TERM, then KILL after the grace period), the child's
/// exit and the drain after it. Both drivers ([`run`] and [`run_async`])
/// keep their state here, so they end runs by the same rules.
struct Watch {
    start: Instant,
    pid: i32,
    own_group: bool,
    grace: Duration,
    deadline: Option<Instant>,
    forced: Option<Status>,
    kill_at: Option<Instant>,
    exit: Option<(Option<i32>, Option<i32>)>,
    drain_until: Option<Instant>,
    cap: [Capture; 2],
}

impl Watch {
    fn new(spec: &Spec, start: Instant, pid: i32, own_group: bool) -> Watch {
        let capture = || Capture {
            buf: Vec::new(),
            limit: spec.capture_limit,
            truncated: false,
        };
        Watch {
            start,
            pid,
            own_group,
            grace: spec.grace,
            deadline: spec.timeout.map(|t| start + t),
            forced: None,
            kill_at: None,
            exit: None,
            drain_until: None,
            cap: [capture(), capture()],
        }
    }

    /// The run is over: the child was reaped and its pipes are closed (or
    /// the drain after its exit is over: a grandchild may hold them).
    fn done(&self, pipes_closed: bool, now: Instant) -> bool {
        self.exit.is_some() && (pipes_closed || self.drain_until.is_some_and(|d| now >= d))
    }

    /// How long to wait for output or the exit before looking again.
    fn wait(&self, now: Instant) -> Duration {
        let mut wait = Duration::from_millis(25);
        for t in [self.deadline, self.kill_at, self.drain_until]
            .into_iter()
            .flatten()
        {
            wait = wait.min(t.saturating_duration_since(now));
        }
        wait
    }

    /// A chunk of stdout (`idx` 0) or stderr (1): teed, then captured.
    fn output(&mut self, idx: usize, chunk: &[u8], sink: Option<&Arc<dyn Sink>>) {
        if let Some(s) = sink {
            if idx == 0 {
                s.stdout(chunk);
            } else {
                s.stderr(chunk);
            }
        }
        self.cap[idx].push(chunk);
    }

    /// The child was reaped: drain the pipes for a while (longer after a
    /// forced end, whose grandchildren die with the group now).
    fn exited(&mut self, st: (Option<i32>, Option<i32>)) {
        self.exit = Some(st);
        if self.forced.is_some() {
            signal_tree(self.pid, self.own_group, Signal::KILL);
        }
        let grace = if self.forced.is_some() { 500 } else { 250 };
        self.drain_until = Some(Instant::now() + Duration::from_millis(grace));
    }

    /// Before the exit: start a forced end (cancel, interrupt, timeout) with
    /// TERM, and send KILL once the grace period is over.
    fn tick(&mut self, cancel: &Cancel) {
        if self.exit.is_some() {
            return;
        }
        let now = Instant::now();
        if self.forced.is_none() {
            let status = if cancel.is_cancelled() {
                Some(Status::Cancelled { interrupted: false })
            } else if interrupted() {
                Some(Status::Cancelled { interrupted: true })
            } else if self.deadline.is_some_and(|d| now >= d) {
                Some(Status::TimedOut)
            } else {
                None
            };
            if let Some(st) = status {
                self.forced = Some(st);
                signal_tree(self.pid, self.own_group, Signal::TERM);
                self.kill_at = Some(now + self.grace);
            }
        } else if self.kill_at.is_some_and(|k| now >= k) {
            signal_tree(self.pid, self.own_group, Signal::KILL);
            self.kill_at = None;
        }
    }

    fn outcome(self) -> Outcome {
        let status = self.forced.unwrap_or(match self.exit {
            Some((Some(c), _)) => Status::Exited(c),
            Some((None, Some(s))) => Status::Signaled(s),
            _ => Status::Exited(1),
        });
        let [o, e] = self.cap;
        Outcome {
            status,
            truncated: o.truncated || e.truncated,
            stdout: o.buf,
            stderr: e.buf,
            duration: self.start.elapsed(),
        }
    }
}

fn spawn_failed(spec: &Spec, e: &std::io::Error, start: Instant) -> Outcome {
    Outcome {
        status: Status::SpawnFailed {
            message: format!("cannot execute {}: {e}", spec.program.display()),
        },
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
        duration: start.elapsed(),
    }
}

/// Start the child (in its own process group unless it keeps the terminal)
/// and the thread that writes [`Stdin::Bytes`] to it.
fn start(spec: &Spec) -> std::io::Result<(Started, bool)> {
    let inherit_tty = matches!(spec.stdin, Stdin::Inherit) && std::io::stdin().is_terminal();
    let own_group = !inherit_tty;
    let mut started = match spawn_direct(spec, own_group) {
        Some(s) => s,
        None => spawn_std(spec, own_group),
    }?;
    if let (Stdin::Bytes(bytes), Some(mut w)) = (&spec.stdin, started.stdin.take()) {
        let bytes = bytes.clone();
        thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
    }
    Ok((started, own_group))
}

/// Run a process to completion (or timeout, or cancel), blocking the
/// calling thread.
pub fn run(spec: &Spec, sink: Option<Arc<dyn Sink>>, cancel: &Cancel) -> Outcome {
    let t0 = Instant::now();
    let (
        Started {
            mut child,
            stdout: mut out,
            stderr: mut err,
            ..
        },
        own_group,
    ) = match start(spec) {
        Ok(s) => s,
        Err(e) => return spawn_failed(spec, &e, t0),
    };
    let pid = child.pid();
    let mut w = Watch::new(spec, t0, pid, own_group);
    // One thread does everything: poll(2) over both pipes and a pidfd.
    let pidfd = Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    // Start with one page on the stack and grow on the heap while reads
    // fill it: a quiet tool costs no allocation, a noisy one still reads
    // 64 KiB at a time.
    let mut small = [0u8; 4096];
    let mut big: Vec<u8> = Vec::new();
    loop {
        let now = Instant::now();
        if w.done(out.is_none() && err.is_none(), now) {
            break;
        }
        let wait = w.wait(now);
        let (mut r_out, mut r_err, mut r_pid) = (false, false, false);
        {
            use rustix::event::{PollFd, PollFlags};
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            if let Some(o) = &out {
                fds.push(PollFd::new(o, PollFlags::IN));
                which.push(0);
            }
            if let Some(e) = &err {
                fds.push(PollFd::new(e, PollFlags::IN));
                which.push(1);
            }
            if w.exit.is_none()
                && let Some(p) = &pidfd
            {
                fds.push(PollFd::new(p, PollFlags::IN));
                which.push(2);
            }
            let ts = rustix::event::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            if fds.is_empty() {
                thread::sleep(wait);
            } else if rustix::event::poll(&mut fds, Some(&ts)).is_ok() {
                for (fd, w) in fds.iter().zip(&which) {
                    if !fd.revents().is_empty() {
                        match w {
                            0 => r_out = true,
                            1 => r_err = true,
                            _ => r_pid = true,
                        }
                    }
                }
            }
        }
        for (ready, pipe, idx) in [
            (r_out, &mut out as &mut dyn PipeSlot, 0usize),
            (r_err, &mut err as &mut dyn PipeSlot, 1),
        ] {
            if !ready {
                continue;
            }
            let buf: &mut [u8] = if big.is_empty() { &mut small } else { &mut big };
            let full = buf.len();
            match pipe.read_some(buf) {
                Some(0) | None => pipe.close(),
                Some(n) => {
                    w.output(idx, &buf[..n], sink.as_ref());
                    if n == full && full < 64 * 1024 {
                        big.resize(full * 2, 0);
                    }
                }
            }
        }
        if w.exit.is_none()
            && (r_pid || pidfd.is_none())
            && let Some(st) = child.try_wait()
        {
            w.exited(st);
            continue;
        }
        w.tick(cancel);
    }
    w.outcome()
}

/// Wait until an output pipe can be read; never ready once it is closed.
async fn readable(pipe: &Option<tokio::net::unix::pipe::Receiver>) {
    match pipe {
        Some(p) => {
            // An error is seen by the read that follows.
            let _ = p.readable().await;
        }
        None => std::future::pending().await,
    }
}

/// The read end of an output pipe, non-blocking, on the reactor.
fn reactor_pipe(f: Option<File>) -> Option<tokio::net::unix::pipe::Receiver> {
    let fd = OwnedFd::from(f?);
    rustix::io::ioctl_fionbio(&fd, true).ok()?;
    tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd).ok()
}

/// [`run`] for a tokio runtime (`gathm serve`): the run is started on the
/// calling task and awaited on the reactor, with no thread of its own and
/// no hand-off to a pool. Same rules as [`run`]; the end of the child is
/// seen when its pipes close (then it is reaped, normally at once) or, if a
/// grandchild keeps them open, at the next look (every 25 ms at most).
/// Must be called within a tokio runtime with I/O and time enabled.
pub async fn run_async(spec: &Spec, sink: Option<Arc<dyn Sink>>, cancel: &Cancel) -> Outcome {
    let t0 = Instant::now();
    let (
        Started {
            mut child,
            stdout,
            stderr,
            ..
        },
        own_group,
    ) = match start(spec) {
        Ok(s) => s,
        Err(e) => return spawn_failed(spec, &e, t0),
    };
    let mut w = Watch::new(spec, t0, child.pid(), own_group);
    let mut pipes = [reactor_pipe(stdout), reactor_pipe(stderr)];
    let mut big: Vec<u8> = Vec::new();
    // Looks at the exit while both pipes are closed and the child is not
    // reaped yet: soon after the close, then backing off to 25 ms.
    let mut backoff = Duration::from_micros(200);
    let mut next_look = t0 + Duration::from_millis(25);
    loop {
        let now = Instant::now();
        let closed = pipes.iter().all(Option::is_none);
        if w.done(closed, now) {
            break;
        }
        let mut wait = w.wait(now);
        if closed && w.exit.is_none() {
            wait = wait.min(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(25));
        }
        // Readiness only: the buffer is not part of the future's state.
        let ready = tokio::select! {
            biased;
            () = readable(&pipes[0]) => Some(0),
            () = readable(&pipes[1]) => Some(1),
            () = tokio::time::sleep(wait) => None,
        };
        if let Some(idx) = ready
            && let Some(p) = &pipes[idx]
        {
            // As in `run`: a small buffer first, a larger one while reads
            // fill it (a quiet tool reads only its EOF).
            let mut small = [0u8; 1024];
            let buf: &mut [u8] = if big.is_empty() { &mut small } else { &mut big };
            let full = buf.len();
            match p.try_read(buf) {
                Ok(0) => pipes[idx] = None,
                Ok(n) => {
                    w.output(idx, &buf[..n], sink.as_ref());
                    if n == full && full < 64 * 1024 {
                        big.resize(full * 2, 0);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => pipes[idx] = None,
            }
        }
        // Look for the exit when the pipes are closed, when nothing came,
        // and at least every 25 ms while output keeps coming (a grandchild
        // may hold the pipes and write on after the tool has exited).
        let looked = Instant::now();
        if w.exit.is_none()
            && (pipes.iter().all(Option::is_none) || ready.is_none() || looked >= next_look)
        {
            next_look = looked + Duration::from_millis(25);
            if let Some(st) = child.try_wait() {
                w.exited(st);
                continue;
            }
        }
        w.tick(cancel);
    }
    w.outcome()
}

/// A started child, its stdin writer (for [`Stdin::Bytes`]) and the read
/// ends of its output pipes.
struct Started {
    child: Child,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
}

/// A child started by std's `Command` or by `posix_spawn` directly.
enum Child {
    Std(std::process::Child),
    Direct(i32),
}

impl Child {
    fn pid(&self) -> i32 {
        match self {
            Child::Std(c) => c.id() as i32,
            Child::Direct(p) => *p,
        }
    }

    /// The exit code and killing signal, once the child has ended (reaped).
    fn try_wait(&mut self) -> Option<(Option<i32>, Option<i32>)> {
        match self {
            Child::Std(c) => {
                let st = c.try_wait().ok()??;
                Some((st.code(), st.signal()))
            }
            Child::Direct(p) => loop {
                let pid = Pid::from_raw(*p)?;
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
                    Ok(Some((_, st))) => {
                        break Some((st.exit_status(), st.terminating_signal()));
                    }
                    Ok(None) => break None,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break Some((None, None)),
                }
            },
        }
    }
}

/// The process environment as `KEY=value` strings, read once: gathm never
/// changes its own environment (the crate has no `unsafe`, and `set_var`
/// needs it), and copying it for every run was the largest part of a
/// spawn's cost (std's `Command` rebuilds the whole map once one variable is
/// set).
fn base_env() -> &'static [(OsString, CString)] {
    static ENV: OnceLock<Vec<(OsString, CString)>> = OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let c = key_value(&k, &v)?;
                Some((k, c))
            })
            .collect()
    })
}

fn key_value(k: &OsStr, v: &OsStr) -> Option<CString> {
    // Room for the `=` and for the NUL `CString::new` appends (one byte
    // short, it reallocates).
    let mut b = Vec::with_capacity(k.len() + v.len() + 2);
    b.extend_from_slice(k.as_bytes());
    b.push(b'=');
    b.extend_from_slice(v.as_bytes());
    CString::new(b).ok()
}

/// The inherited variables a child gets: the environment without the names
/// dropped or set for it, appended to `envp`. The names are the same run
/// after run (a server runs the same tools), so each thread keeps the last
/// answer and its names.
fn inherited<'a>(remove: &[&str], set: &[(&OsStr, CString)], envp: &mut Vec<&'a CStr>) {
    type Last = (Vec<OsString>, Vec<&'static CStr>);
    thread_local! {
        static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let names = || {
        remove
            .iter()
            .map(OsStr::new)
            .chain(set.iter().map(|(k, _)| *k))
    };
    LAST.with_borrow_mut(|(last_names, kept)| {
        if !last_names.iter().map(OsString::as_os_str).eq(names()) {
            let drop: Vec<&OsStr> = names().collect();
            kept.clear();
            kept.extend(
                base_env()
                    .iter()
                    .filter(|(k, _)| !drop.contains(&k.as_os_str()))
                    .map(|(_, c)| c.as_c_str()),
            );
            last_names.clear();
            last_names.extend(drop.iter().map(|k| k.to_os_string()));
        }
        envp.extend(kept.iter().map(|c| -> &'a CStr { c }));
    });
}

/// `/dev/null`, opened once (close-on-exec), for children's stdin.
fn dev_null() -> Option<&'static OwnedFd> {
    static NULL: OnceLock<Option<OwnedFd>> = OnceLock::new();
    NULL.get_or_init(|| {
        rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()
    })
    .as_ref()
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} contains a NUL byte"),
    )
}

/// Start the child with `posix_spawn` and a prepared environment, as std
/// would (an empty signal mask, SIGPIPE back to its default, its own process
/// group unless it keeps the terminal) but without copying the environment.
/// `None` when std must do it: a working directory (no portable
/// `posix_spawn` action) or a program name to look up in `PATH`.
fn spawn_direct(spec: &Spec, own_group: bool) -> Option<std::io::Result<Started>> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    if spec.cwd.is_some() || !spec.program.as_os_str().as_bytes().contains(&b'/') {
        return None;
    }
    let null = match spec.stdin {
        Stdin::Null => Some(dev_null()?),
        _ => None,
    };
    let program = match CString::new(spec.program.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => return Some(Err(invalid("the program path"))),
    };
    let mut argv: Vec<CString> = Vec::with_capacity(spec.args.len() + 1);
    argv.push(program.clone());
    for a in &spec.args {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return Some(Err(invalid("an argument"))),
        }
    }
    // Later settings of a variable win, as with `Command::env`.
    let mut set: Vec<(&OsStr, CString)> = Vec::with_capacity(spec.env.len());
    for (k, v) in &spec.env {
        let Some(c) = key_value(k, v) else {
            return Some(Err(invalid("an environment variable")));
        };
        set.retain(|(old, _)| *old != &**k);
        set.push((k, c));
    }
    let mut envp: Vec<&CStr> = Vec::with_capacity(base_env().len() + set.len());
    inherited(spec.env_remove, &set, &mut envp);
    envp.extend(set.iter().map(|(_, c)| c.as_c_str()));
    Some((|| {
        let io = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin_pipe = match spec.stdin {
            Stdin::Bytes(_) => Some(pipe()?),
            _ => None,
        };
        let mut actions = PosixSpawnFileActions::init().map_err(io)?;
        if let Some(n) = null {
            actions.add_dup2(n.as_raw_fd(), 0).map_err(io)?;
        }
        if let Some((r, _)) = &stdin_pipe {
            actions.add_dup2(r.as_raw_fd(), 0).map_err(io)?;
        }
        actions.add_dup2(out_w.as_raw_fd(), 1).map_err(io)?;
        actions.add_dup2(err_w.as_raw_fd(), 2).map_err(io)?;
        let mut attr = PosixSpawnAttr::init().map_err(io)?;
        let mut flags =
            PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF;
        if own_group {
            flags |= PosixSpawnFlags::POSIX_SPAWN_SETPGROUP;
            attr.set_pgroup(nix::unistd::Pid::from_raw(0)).map_err(io)?;
        }
        attr.set_flags(flags).map_err(io)?;
        attr.set_sigmask(&nix::sys::signal::SigSet::empty())
            .map_err(io)?;
        let mut default = nix::sys::signal::SigSet::empty();
        default.add(nix::sys::signal::Signal::SIGPIPE);
        attr.set_sigdefault(&default).map_err(io)?;
        let pid = posix_spawn(program.as_c_str(), &actions, &attr, &argv, &envp).map_err(io)?;
        Ok(Started {
            child: Child::Direct(pid.as_raw()),
            stdin: stdin_pipe.map(|(_, w)| File::from(w)),
            stdout: Some(File::from(out_r)),
            stderr: Some(File::from(err_r)),
        })
    })())
}

/// Start the child with std's `Command`.
fn spawn_std(spec: &Spec, own_group: bool) -> std::io::Result<Started> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
    for k in spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if own_group {
        cmd.process_group(0);
    }
    cmd.stdin(match spec.stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Inherit => Stdio::inherit(),
        Stdin::Bytes(_) => Stdio::piped(),
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    Ok(Started {
        stdin: child.stdin.take().map(|w| File::from(OwnedFd::from(w))),
        stdout: child.stdout.take().map(|r| File::from(OwnedFd::from(r))),
        stderr: child.stderr.take().map(|r| File::from(OwnedFd::from(r))),
        child: Child::Std(child),
    })
}
