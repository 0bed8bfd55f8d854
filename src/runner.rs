//! The only code that spawns processes.
//!
//! A tool runs with an exact argv (never through a shell), in its own process
//! group (so a timeout or cancel kills grandchildren too: TERM, a grace period,
//! then KILL), with stdout and stderr read on separate threads, teed live to a
//! [`Sink`] and captured. Completion is the child's exit, not pipe EOF: a
//! grandchild holding the pipes open cannot hang a run.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
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

fn pump(
    mut r: impl Read,
    sink: Option<Arc<dyn Sink>>,
    is_err: bool,
    limit: usize,
    buf_out: Arc<Mutex<(Vec<u8>, bool)>>,
    done: mpsc::Sender<()>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if let Some(s) = &sink {
                    if is_err {
                        s.stderr(chunk);
                    } else {
                        s.stdout(chunk);
                    }
                }
                let mut g = buf_out.lock().unwrap_or_else(|e| e.into_inner());
                let room = limit.saturating_sub(g.0.len());
                if room < n {
                    g.1 = true;
                }
                let take = room.min(n);
                g.0.extend_from_slice(&chunk[..take]);
            }
        }
    }
    let _ = done.send(());
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
    let out_buf = Arc::new(Mutex::new((Vec::new(), false)));
    let err_buf = Arc::new(Mutex::new((Vec::new(), false)));
    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(o) = child.stdout.take() {
        let (s, b, d, lim) = (
            sink.clone(),
            Arc::clone(&out_buf),
            done_tx.clone(),
            spec.capture_limit,
        );
        thread::spawn(move || pump(o, s, false, lim, b, d));
        readers += 1;
    }
    if let Some(e) = child.stderr.take() {
        let (s, b, d, lim) = (
            sink.clone(),
            Arc::clone(&err_buf),
            done_tx.clone(),
            spec.capture_limit,
        );
        thread::spawn(move || pump(e, s, true, lim, b, d));
        readers += 1;
    }
    drop(done_tx);
    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let deadline = spec.timeout.map(|t| start + t);
    let mut forced: Option<Status> = None;
    let exit = loop {
        let mut wait = Duration::from_millis(25);
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        match exit_rx.recv_timeout(wait) {
            Ok(st) => break st.ok(),
            Err(RecvTimeoutError::Disconnected) => break None,
            Err(RecvTimeoutError::Timeout) => {
                let status = if cancel.is_cancelled() {
                    Some(Status::Cancelled { interrupted: false })
                } else if interrupted() {
                    Some(Status::Cancelled { interrupted: true })
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    Some(Status::TimedOut)
                } else {
                    None
                };
                if let Some(s) = status {
                    forced = Some(s);
                    signal_tree(pid, own_group, Signal::TERM);
                    let r = exit_rx.recv_timeout(spec.grace);
                    signal_tree(pid, own_group, Signal::KILL);
                    break match r {
                        Ok(st) => st.ok(),
                        Err(_) => exit_rx.recv().ok().and_then(|s| s.ok()),
                    };
                }
            }
        }
    };
    // Drain the pipes: wait for EOF, but not for grandchildren that keep them open.
    let drain_until =
        Instant::now() + Duration::from_millis(if forced.is_some() { 500 } else { 250 });
    for _ in 0..readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
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
    let take = |b: &Arc<Mutex<(Vec<u8>, bool)>>| {
        let mut g = b.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut g.0), g.1)
    };
    let (stdout, t1) = take(&out_buf);
    let (stderr, t2) = take(&err_buf);
    Outcome {
        status,
        stdout,
        stderr,
        truncated: t1 || t2,
        duration: start.elapsed(),
    }
}
