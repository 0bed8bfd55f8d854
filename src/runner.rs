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

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Extra environment.
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<OsString>,
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
            env_remove: Vec::new(),
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

/// Run a process to completion (or timeout, or cancel).
pub fn run(spec: &Spec, sink: Option<Arc<dyn Sink>>, cancel: &Cancel) -> Outcome {
    let start = Instant::now();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let inherit_tty = matches!(spec.stdin, Stdin::Inherit) && std::io::stdin().is_terminal();
    let own_group = !inherit_tty;
    if own_group {
        cmd.process_group(0);
    }
    cmd.stdin(match spec.stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Inherit => Stdio::inherit(),
        Stdin::Bytes(_) => Stdio::piped(),
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                status: Status::SpawnFailed {
                    message: format!("cannot execute {}: {e}", spec.program.display()),
                },
                stdout: Vec::new(),
                stderr: Vec::new(),
                truncated: false,
                duration: start.elapsed(),
            };
        }
    };
    let pid = child.id() as i32;
    if let (Stdin::Bytes(bytes), Some(mut w)) = (&spec.stdin, child.stdin.take()) {
        let bytes = bytes.clone();
        thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
    }
    // One thread does everything: poll(2) over both pipes and a pidfd.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let pidfd = Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let mut cap = [
        Capture {
            buf: Vec::new(),
            limit: spec.capture_limit,
            truncated: false,
        },
        Capture {
            buf: Vec::new(),
            limit: spec.capture_limit,
            truncated: false,
        },
    ];
    let deadline = spec.timeout.map(|t| start + t);
    let mut forced: Option<Status> = None;
    let mut kill_at: Option<Instant> = None;
    let mut exit: Option<std::process::ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    // Start with one page and grow while reads fill it: a quiet tool costs
    // one page fault instead of sixteen, a noisy one still reads 64 KiB at a
    // time.
    let mut buf = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if exit.is_some()
            && (out.is_none() && err.is_none() || drain_until.is_some_and(|d| now >= d))
        {
            break;
        }
        let mut wait = Duration::from_millis(25);
        for t in [deadline, kill_at, drain_until].into_iter().flatten() {
            wait = wait.min(t.saturating_duration_since(now));
        }
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
            if exit.is_none()
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
            match pipe.read_some(&mut buf) {
                Some(0) | None => pipe.close(),
                Some(n) => {
                    let chunk = &buf[..n];
                    if let Some(s) = &sink {
                        if idx == 0 {
                            s.stdout(chunk);
                        } else {
                            s.stderr(chunk);
                        }
                    }
                    cap[idx].push(chunk);
                    if n == buf.len() && buf.len() < 64 * 1024 {
                        buf.resize(buf.len() * 2, 0);
                    }
                }
            }
        }
        if exit.is_none()
            && (r_pid || pidfd.is_none())
            && let Ok(Some(st)) = child.try_wait()
        {
            exit = Some(st);
            if forced.is_some() {
                // Grandchildren that ignored TERM die with the group now.
                signal_tree(pid, own_group, Signal::KILL);
            }
            let grace = if forced.is_some() { 500 } else { 250 };
            drain_until = Some(Instant::now() + Duration::from_millis(grace));
            continue;
        }
        if exit.is_none() {
            let now = Instant::now();
            if forced.is_none() {
                let status = if cancel.is_cancelled() {
                    Some(Status::Cancelled { interrupted: false })
                } else if interrupted() {
                    Some(Status::Cancelled { interrupted: true })
                } else if deadline.is_some_and(|d| now >= d) {
                    Some(Status::TimedOut)
                } else {
                    None
                };
                if let Some(st) = status {
                    forced = Some(st);
                    signal_tree(pid, own_group, Signal::TERM);
                    kill_at = Some(now + spec.grace);
                }
            } else if kill_at.is_some_and(|k| now >= k) {
                signal_tree(pid, own_group, Signal::KILL);
                kill_at = None;
            }
        }
    }
    let status = forced.unwrap_or_else(|| match exit {
        Some(st) => match (st.code(), st.signal()) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(s)) => Status::Signaled(s),
            _ => Status::Exited(1),
        },
        None => Status::Exited(1),
    });
    let [o, e] = cap;
    let (stdout, t1) = (o.buf, o.truncated);
    let (stderr, t2) = (e.buf, e.truncated);
    Outcome {
        status,
        stdout,
        stderr,
        truncated: t1 || t2,
        duration: start.elapsed(),
    }
}
