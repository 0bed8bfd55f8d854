//! `gathm serve`: the HTTP API (PRODUCT.md §7) on tokio + hyper through axum.
//!
//! A small multi-thread tokio runtime accepts connections (at most
//! `GATHM_MAX_CONNECTIONS`) and serves HTTP/1.1 through hyper with limits on
//! the request head (431), URL (414), body (413), header read and keep-alive
//! idle time (`GATHM_HEADER_TIMEOUT`). One axum fallback handler routes by
//! path template (`route`), so 404/405 and auth keep one order. Each request
//! is checked in this order: cross-origin refusal, route (public routes skip
//! auth and answer on the async side at once), authentication (bearer keys,
//! or loopback-only without keys), the principal's rate limit, then the
//! route's permission from the policies. Everything else runs on tokio's
//! blocking pool; tool runs (execute, parallel, chain, health probes) also
//! take one of `GATHM_MAX_EXECUTIONS` slots (429 beyond). Every answer is
//! JSON (`{"error": …}` for errors) with the security headers; a panic in a
//! handler becomes a 500 JSON error. Executions go through `run::run` and
//! return the same envelope as `gathm run --json`. SSE streams are tokio
//! tasks (`sse.rs`), bounded per principal and in total. SIGTERM/SIGINT
//! drain: `/readyz` turns 503, no new executions or jobs, running jobs get a
//! grace period.

pub mod artifacts;
pub mod auth;
pub mod bodies;
mod conn;
pub mod http;
mod mcp;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod sse;

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response, Sse};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;

use self::auth::{Keys, Principal};
use self::http::{Reply, Req, error, error_with};
use self::metrics::Metrics;
use crate::api::{Envelope, Reason};
use crate::chain;
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::health;
use crate::jobs::{
    self, ApproveError, Cancelled, Config as JobConfig, JobKind, JobStatus, Jobs, Submission,
    SubmitError,
};
use crate::logs::{Level, Logger};
use crate::manifest;
use crate::ops;
use crate::parallel;
use crate::policy::{self, Action, Verdict};
use crate::ratelimit::{self, Limit};
use crate::run::{self, RunRequest};
use crate::runner::Cancel;

/// Largest request head (request line and headers): 431 beyond.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest request target (path and query): 414 beyond.
pub const MAX_URL: usize = 8 * 1024;
/// Longest time to receive a request body once its head is in: 408 beyond.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Server settings from the command line and the environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
    /// `GATHM_HTTP_WORKERS` async worker threads (default 2).
    pub workers: usize,
    /// `GATHM_MAX_STREAMS` concurrent SSE streams in total (default 1024).
    pub max_streams: usize,
    /// `GATHM_MAX_STREAMS_PER_CLIENT` concurrent SSE streams per principal
    /// (default 16).
    pub max_streams_per_client: usize,
    /// `GATHM_MAX_CONNECTIONS` open connections (default 1024).
    pub max_connections: usize,
    /// `GATHM_MAX_EXECUTIONS` tool runs at once from requests (default 32).
    pub max_executions: usize,
    /// `GATHM_HEADER_TIMEOUT` seconds to send a request head, and to start
    /// the next one on a kept-alive connection (default 10).
    pub header_timeout: Duration,
    /// `GATHM_SHUTDOWN_GRACE` seconds (default 30).
    pub grace: f64,
    /// `GATHM_SSE_WRITE_TIMEOUT` seconds a write to a client may make no
    /// progress before the client is dropped (default 30).
    pub write_timeout: Duration,
}

fn env_count(name: &str, default: usize, max: usize) -> usize {
    crate::config::env_parse(name)
        .filter(|n| (1..=max).contains(n))
        .unwrap_or(default)
}

impl Options {
    /// Options for a host and port, the rest from the environment (values
    /// out of range fall back to the default).
    pub fn new(host: String, port: u16) -> Options {
        Options {
            host,
            port,
            workers: env_count("GATHM_HTTP_WORKERS", 2, 64),
            max_streams: env_count("GATHM_MAX_STREAMS", 1024, 1 << 20),
            max_streams_per_client: env_count("GATHM_MAX_STREAMS_PER_CLIENT", 16, 1 << 20),
            max_connections: env_count("GATHM_MAX_CONNECTIONS", 1024, 1 << 20),
            max_executions: env_count("GATHM_MAX_EXECUTIONS", 32, 4096),
            header_timeout: Duration::from_secs_f64(
                crate::config::env_parse("GATHM_HEADER_TIMEOUT")
                    .filter(|n: &f64| (0.1..=3600.0).contains(n))
                    .unwrap_or(10.0),
            ),
            grace: crate::config::env_parse("GATHM_SHUTDOWN_GRACE")
                .filter(|n: &f64| (0.0..=86_400.0).contains(n))
                .unwrap_or(30.0),
            write_timeout: Duration::from_secs_f64(
                crate::config::env_parse("GATHM_SSE_WRITE_TIMEOUT")
                    .filter(|n: &f64| (0.1..=3600.0).contains(n))
                    .unwrap_or(sse::WRITE_TIMEOUT.as_secs_f64()),
            ),
        }
    }
}

/// The routes. Add `AgentParallel` / `AgentChain` (one arm each in `route`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    AgentAsk,
    AgentParallel,
    AgentChain,
    Ping,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Tools,
    Tool(String),
    Execute(String),
    Health,
    HealthTool(String),
    AgentStatus,
    JobsList,
    JobsSubmit,
    JobGet(String),
    JobCancel(String),
    JobStream(String),
    JobApprove(String),
    Models,
    ChatCompletions,
    JobArtifacts(String),
    JobArtifact(String, String),
}

impl Route {
    fn public(&self) -> bool {
        matches!(self, Route::Ping | Route::Healthz | Route::Readyz)
    }
}

/// Where a request went: a route, or an error status (404 / 405 + Allow).
enum Routed {
    Found(Route, &'static str),
    NotFound,
    Method(&'static str, &'static str),
}

fn route(method: &Method, path: &str) -> Routed {
    // At most six segments, the sixth holding the rest of the path (an
    // artifact's name): no route has more, and no vector is allocated.
    let mut buf = [""; 6];
    let mut n = 0;
    for seg in path.trim_matches('/').splitn(buf.len(), '/') {
        buf[n] = seg;
        n += 1;
    }
    let segs = &buf[..n];
    let m = method.as_str();
    let one = |allowed: &'static str, tpl: &'static str, r: Route| {
        if allowed == m {
            Routed::Found(r, tpl)
        } else {
            Routed::Method(allowed, tpl)
        }
    };
    let s = |x: &str| x.to_string();
    match segs {
        ["api", "v1", "ping"] => one("GET", "/api/v1/ping", Route::Ping),
        ["healthz"] => one("GET", "/healthz", Route::Healthz),
        ["readyz"] => one("GET", "/readyz", Route::Readyz),
        ["metrics"] => one("GET", "/metrics", Route::Metrics),
        ["api", "openapi.json"] => one("GET", "/api/openapi.json", Route::OpenApi),
        ["api", "v1", "tools"] => one("GET", "/api/v1/tools", Route::Tools),
        ["api", "v1", "tools", n] => one("GET", "/api/v1/tools/{name}", Route::Tool(s(n))),
        ["api", "v1", "tools", n, "execute"] => {
            one("POST", "/api/v1/tools/{name}/execute", Route::Execute(s(n)))
        }
        ["api", "v1", "health"] => one("GET", "/api/v1/health", Route::Health),
        ["api", "v1", "health", t] => one("GET", "/api/v1/health/{tool}", Route::HealthTool(s(t))),
        ["api", "v1", "agent", "status"] => one("GET", "/api/v1/agent/status", Route::AgentStatus),
        ["api", "v1", "agent", "parallel"] => {
            one("POST", "/api/v1/agent/parallel", Route::AgentParallel)
        }
        ["api", "v1", "agent", "chain"] => one("POST", "/api/v1/agent/chain", Route::AgentChain),
        ["api", "v1", "agent", "ask"] => one("POST", "/api/v1/agent/ask", Route::AgentAsk),
        ["api", "v1", "jobs"] => match m {
            "GET" => Routed::Found(Route::JobsList, "/api/v1/jobs"),
            "POST" => Routed::Found(Route::JobsSubmit, "/api/v1/jobs"),
            _ => Routed::Method("GET, POST", "/api/v1/jobs"),
        },
        ["api", "v1", "jobs", id] => match m {
            "GET" => Routed::Found(Route::JobGet(s(id)), "/api/v1/jobs/{id}"),
            "DELETE" => Routed::Found(Route::JobCancel(s(id)), "/api/v1/jobs/{id}"),
            _ => Routed::Method("GET, DELETE", "/api/v1/jobs/{id}"),
        },
        ["api", "v1", "jobs", id, "stream"] => {
            one("GET", "/api/v1/jobs/{id}/stream", Route::JobStream(s(id)))
        }
        ["api", "v1", "jobs", id, "approve"] => one(
            "POST",
            "/api/v1/jobs/{id}/approve",
            Route::JobApprove(s(id)),
        ),
        ["v1", "models"] => one("GET", "/v1/models", Route::Models),
        ["v1", "chat", "completions"] => {
            one("POST", "/v1/chat/completions", Route::ChatCompletions)
        }
        ["api", "v1", "jobs", id, "artifacts"] => one(
            "GET",
            "/api/v1/jobs/{id}/artifacts",
            Route::JobArtifacts(s(id)),
        ),
        ["api", "v1", "jobs", id, "artifacts", name] => one(
            "GET",
            "/api/v1/jobs/{id}/artifacts/{name}",
            Route::JobArtifact(s(id), s(name)),
        ),
        _ => Routed::NotFound,
    }
}

struct Access {
    method: Method,
    path: String,
    route: &'static str,
    status: u16,
    ms: f64,
    role: Option<String>,
}

struct App {
    ctx: Arc<Context>,
    keys: Keys,
    jobs: Jobs,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    streams: AtomicUsize,
    streams_by: Mutex<HashMap<String, usize>>,
    executions: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    conn_notes: Notes,
    opts: Options,
    sync_runs: Mutex<HashMap<u64, Cancel>>,
    next_run: AtomicU64,
    access: AccessLog,
    /// The access log is written (`GATHM_LOG_LEVEL` is `INFO` or lower).
    access_on: bool,
    /// `/mcp` (`mcp.rs`), made on its first request.
    mcp: std::sync::OnceLock<mcp::Mcp>,
    /// State is local files: sync executes are checked on the async worker
    /// and, when [`run::awaitable`], run on the reactor (`SyncRun`).
    reactor_runs: bool,
}

/// A sync execute whose checks passed, run by [`entry`]: awaited on the
/// reactor, or on the blocking pool when the tool may do slow work.
struct SyncRun {
    rr: RunRequest,
    on_reactor: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _cancel: CancelOnShutdown,
}

/// A run awaited where it was asked for (no task of its own, no hand-over
/// when it ends), which becomes a task of its own if it is dropped before
/// its end: hyper drops a request's future when the client leaves, and the
/// run must still end, be reaped and be recorded.
struct Detachable<F: Future<Output = Envelope> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = Envelope> + Send + 'static> Future for Detachable<F> {
    type Output = Envelope;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Envelope> {
        let Some(run) = self.0.as_mut() else {
            return Poll::Pending; // Not polled again after its end.
        };
        let out = std::task::ready!(run.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(out)
    }
}

impl<F: Future<Output = Envelope> + Send + 'static> Drop for Detachable<F> {
    fn drop(&mut self) {
        // Not while unwinding: a run that panicked is not polled again (the
        // panic is answered as a 500 by tower-http's CatchPanic).
        if let Some(run) = self.0.take()
            && !std::thread::panicking()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(run);
        }
    }
}

/// A sync run's cancel token, registered for the shutdown (which cancels
/// what is still running after the grace period) while this lives.
struct CancelOnShutdown(Arc<App>, u64);

impl CancelOnShutdown {
    fn register(app: &Arc<App>, cancel: &Cancel) -> CancelOnShutdown {
        let n = app.next_run.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = app.sync_runs.lock() {
            m.insert(n, cancel.clone());
        }
        CancelOnShutdown(Arc::clone(app), n)
    }
}

impl Drop for CancelOnShutdown {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.sync_runs.lock() {
            m.remove(&self.1);
        }
    }
}

/// What a handler produced.
enum Outcome {
    Reply(Reply),
    Stream(Box<sse::Source>),
    /// A chat completion whose job is queued (`openai.rs`).
    Chat(Box<openai::Pending>),
    File(Box<artifacts::Download>),
    /// A sync execute to run (`SyncRun`).
    Run(Box<SyncRun>),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Outcome {
        Outcome::Reply(r)
    }
}

type HResult = std::result::Result<Outcome, Reply>;

/// Run the server until SIGTERM/SIGINT; returns the exit code.
pub fn serve(mut ctx: Context, opts: Options) -> Result<i32> {
    crate::runner::hold_sigchld();
    ctx.logger.keep_open();
    crate::parsed::memoise();
    let keys = Keys::parse(
        std::env::var("GATHM_API_KEYS").ok().as_deref(),
        std::env::var("GATHM_API_KEY").ok().as_deref(),
    )
    .map_err(|m| Error::Usage(format!("refusing to start: {m}")))?;
    ctx.policies()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        // Tool runs are bounded by `executions`; the rest is quick work.
        .max_blocking_threads(opts.max_executions + 64)
        .thread_name("gathm-http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((
            opts.host.as_str(),
            opts.port,
        )))
        .map_err(|e| {
            Error::Usage(format!(
                "cannot listen on {}:{}: {e} (use another --port, or --port 0 for any free one)",
                opts.host, opts.port
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("the server has no address: {e}")))?;
    let ctx = Arc::new(ctx);
    let metrics = Arc::new(Metrics::default());
    let jobs = Jobs::start(
        Arc::clone(&ctx),
        JobConfig::from_env(),
        Arc::clone(&metrics),
    )?;
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| Error::Internal(format!("cannot install signal handlers: {e}")))?;
    let app = Arc::new(App {
        ctx: Arc::clone(&ctx),
        keys,
        jobs,
        metrics,
        ready: AtomicBool::new(true),
        streams: AtomicUsize::new(0),
        streams_by: Mutex::new(HashMap::new()),
        executions: Arc::new(Semaphore::new(opts.max_executions)),
        connections: Arc::new(Semaphore::new(opts.max_connections)),
        conn_notes: Notes::new(),
        opts: opts.clone(),
        sync_runs: Mutex::new(HashMap::new()),
        next_run: AtomicU64::new(0),
        access: AccessLog::default(),
        access_on: ctx.logger.enabled(Level::Info),
        mcp: std::sync::OnceLock::new(),
        reactor_runs: ctx.shared().backend().kind == "local",
    });
    {
        let (app, logger) = (Arc::clone(&app), ctx.logger.clone());
        thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                loop {
                    thread::sleep(ACCESS_FLUSH);
                    app.access.flush(&logger);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the access log: {e}")))?;
    }
    // Schedules from gathm.yaml: each due slot becomes a job (schedule/serve.rs).
    let scheduler_stop = Arc::new(AtomicBool::new(false));
    match ctx.config() {
        Ok(Some((path, cfg))) if !cfg.schedules.is_empty() => {
            let m = Arc::clone(&app.metrics);
            crate::schedule::serve::spawn(
                Arc::clone(&ctx),
                app.jobs.clone(),
                cfg.schedules.clone(),
                Arc::clone(&scheduler_stop),
                Box::new(move |name, outcome, lag| m.schedule_slot(name, outcome, lag)),
            )
            .map_err(|e| Error::Internal(format!("cannot start the scheduler: {e}")))?;
            ctx.logger.app(
                Level::Info,
                "schedule",
                &format!(
                    "scheduler: {} schedules from {}",
                    cfg.schedules.len(),
                    path.display()
                ),
                Map::new(),
            );
        }
        Ok(_) => {}
        Err(d) => {
            let all: Vec<String> = d.iter().map(ToString::to_string).collect();
            return Err(Error::InvalidData(format!(
                "the configuration file is invalid:\n{}",
                all.join("\n")
            )));
        }
    }
    // `GATHM_MONITOR_INTERVAL`: periodic health checks that feed the
    // breakers, with their transitions logged and counted in /metrics.
    if let Some(interval) = crate::monitor::env_interval() {
        let app = Arc::clone(&app);
        thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                let stop = || !app.ready.load(Ordering::SeqCst);
                let mut on_round = |r: &crate::monitor::Round| {
                    for t in &r.transitions {
                        app.metrics.monitor_transition(&t.tool, t.what, &t.to);
                    }
                };
                if let Err(e) =
                    crate::monitor::run_loop(&app.ctx, None, interval, false, &stop, &mut on_round)
                {
                    app.ctx.logger.app(
                        Level::Error,
                        "monitor",
                        &format!("monitor stopped: {e}"),
                        Map::new(),
                    );
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the monitor: {e}")))?;
    }
    // In a fleet, say where the shared state is and whether it answers now;
    // an unreachable Redis does not stop the server (/readyz says 503 and
    // every call reconnects).
    let shared = ctx.shared();
    if shared.backend().kind != "local" {
        let b = shared.backend();
        let (level, msg) = match shared.ping() {
            Ok(()) => (
                Level::Info,
                format!("shared state: {} at {}", b.kind, b.location),
            ),
            Err(e) => (
                Level::Warn,
                format!(
                    "shared state: {} is unreachable, not ready until it answers: {e}",
                    b.kind
                ),
            ),
        };
        eprintln!("gathm serve: {msg}");
        ctx.logger.app(level, "state", &msg, Map::new());
    }
    rt.spawn(accept_loop(listener, Arc::clone(&app)));
    let mut extra = Map::new();
    extra.insert("address".into(), addr.to_string().into());
    extra.insert("auth".into(), app.keys.enabled().into());
    ctx.logger.app(
        Level::Info,
        "http",
        &format!("listening on http://{addr}"),
        extra,
    );
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    let mut signals = signals;
    let sig = signals.forever().next();
    // Drain: not ready, no new work, running jobs get the grace period.
    app.ready.store(false, Ordering::SeqCst);
    scheduler_stop.store(true, Ordering::SeqCst);
    ctx.logger.app(
        Level::Info,
        "http",
        &format!(
            "signal {}: shutting down (grace {} s)",
            sig.unwrap_or(0),
            opts.grace
        ),
        Map::new(),
    );
    let grace = Duration::from_secs_f64(opts.grace);
    let t0 = Instant::now();
    app.jobs.shutdown(grace);
    // Synchronous executions get what is left of the grace period.
    while !app.sync_runs.lock().map(|m| m.is_empty()).unwrap_or(true) && t0.elapsed() < grace {
        thread::sleep(Duration::from_millis(20));
    }
    if let Ok(m) = app.sync_runs.lock() {
        for c in m.values() {
            c.cancel();
        }
    }
    let settle = Instant::now() + Duration::from_secs_f64(ctx.settings.kill_grace + 2.0);
    while !app.sync_runs.lock().map(|m| m.is_empty()).unwrap_or(true) && Instant::now() < settle {
        thread::sleep(Duration::from_millis(20));
    }
    // Chat completions send their last event (their jobs ended or were
    // cancelled): at most 2 s, then a moment for the bytes to go out.
    if openai::following() > 0 {
        let settle = Instant::now() + Duration::from_secs(2);
        while openai::following() > 0 && Instant::now() < settle {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(100));
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    app.access.flush(&ctx.logger);
    ctx.logger
        .app(Level::Info, "http", "stopped; job state saved", Map::new());
    Ok(0)
}

/// How often buffered access-log lines are written.
const ACCESS_FLUSH: Duration = Duration::from_millis(50);
/// Most access-log lines buffered; beyond, lines are dropped and counted.
const ACCESS_MAX: usize = 8192;

/// Access-log lines waiting for the writer thread, which takes them every
/// [`ACCESS_FLUSH`] and writes each batch at once: a request only appends
/// under a short lock and never wakes a thread.
#[derive(Default)]
struct AccessLog {
    lines: Mutex<Vec<Access>>,
}

impl AccessLog {
    /// Buffer a line; false when the buffer is full.
    fn push(&self, a: Access) -> bool {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() >= ACCESS_MAX {
            return false;
        }
        l.push(a);
        true
    }

    fn flush(&self, logger: &Logger) {
        let batch = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        // The fields every line shares, escaped once.
        let mut common = Vec::with_capacity(96);
        common.extend_from_slice(b",\"hostname\":");
        let _ = serde_json::to_writer(&mut common, &crate::logs::hostname());
        let mut tail = Vec::with_capacity(48);
        tail.extend_from_slice(b",\"timestamp\":");
        let _ = serde_json::to_writer(&mut tail, &crate::clock::rfc3339(crate::clock::now()));
        tail.extend_from_slice(b"}\n");
        let pid = std::process::id();
        let mut buf = Vec::with_capacity(batch.len() * 300);
        let mut msg = String::new();
        for a in &batch {
            access_line(&mut buf, &mut msg, a, &common, pid, &tail);
        }
        logger.app_raw(Level::Info, &buf);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One access-log line of `gathm.log`, written as `Logger::app` writes a
/// line (fields by name): component, hostname, level, message, method, ms,
/// path, pid, role, route, status, timestamp. `common` is the hostname
/// field, `tail` the timestamp field and the end of the line.
fn access_line(
    buf: &mut Vec<u8>,
    msg: &mut String,
    a: &Access,
    common: &[u8],
    pid: u32,
    tail: &[u8],
) {
    // Numbers through `itoa`, not `fmt`: this is most of a line's cost.
    let mut n = itoa::Buffer::new();
    let method = clip(a.method.as_str(), 32);
    // "GET /path 200 1.5ms" (the duration to a tenth of a millisecond).
    let tenths = (a.ms * 10.0).round() as u64;
    msg.clear();
    for part in [method, " ", &a.path, " ", n.format(a.status), " "] {
        msg.push_str(part);
    }
    msg.push_str(n.format(tenths / 10));
    msg.push('.');
    msg.push_str(n.format(tenths % 10));
    msg.push_str("ms");
    buf.extend_from_slice(b"{\"component\":\"http\"");
    buf.extend_from_slice(common);
    buf.extend_from_slice(b",\"level\":\"INFO\",\"message\":");
    crate::jsonline::push_str(buf, msg);
    buf.extend_from_slice(b",\"method\":");
    crate::jsonline::push_str(buf, method);
    buf.extend_from_slice(b",\"ms\":");
    let _ = serde_json::to_writer(&mut *buf, &((a.ms * 1000.0).round() / 1000.0));
    buf.extend_from_slice(b",\"path\":");
    crate::jsonline::push_str(buf, &a.path);
    buf.extend_from_slice(b",\"pid\":");
    buf.extend_from_slice(n.format(pid).as_bytes());
    if let Some(r) = &a.role {
        buf.extend_from_slice(b",\"role\":");
        crate::jsonline::push_str(buf, r);
    }
    buf.extend_from_slice(b",\"route\":");
    crate::jsonline::push_str(buf, a.route);
    buf.extend_from_slice(b",\"status\":");
    buf.extend_from_slice(n.format(a.status).as_bytes());
    buf.extend_from_slice(tail);
}

/// Accept connections (at most `max_connections` open) and serve each with
/// hyper's HTTP/1.1 under the head-size and header-timeout limits.
async fn accept_loop(listener: tokio::net::TcpListener, app: Arc<App>) {
    let conns = Arc::clone(&app.connections);
    // The layer is cloned for every request: share the logger, not copies.
    let logger = Arc::new(app.ctx.logger.clone());
    // tower-http catches a handler's panic (a 500, logged); no router: the
    // one handler routes itself, and the peer address is an argument.
    let panics = CatchPanicLayer::custom(PanicReply(logger));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.opts.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
            app.metrics.connections_refused.inc();
            app.conn_notes.note(
                &app.ctx.logger,
                &format!(
                    "refused a connection from {peer}: {} open (GATHM_MAX_CONNECTIONS)",
                    app.opts.max_connections
                ),
            );
            tokio::spawn(refuse(sock));
            continue;
        };
        let _ = sock.set_nodelay(true);
        let app_c = Arc::clone(&app);
        let handler = panics.layer(tower::service_fn(
            move |req: hyper::Request<hyper::body::Incoming>| {
                let app = Arc::clone(&app_c);
                async move { Ok::<_, Infallible>(entry(app, peer, req).await) }
            },
        ));
        let svc = hyper::service::service_fn(move |req| handler.clone().call(req));
        let sock = conn::WriteTimeout::new(sock, app.opts.write_timeout);
        let conn = http.serve_connection(TokioIo::new(sock), svc);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                let stalled = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
                if stalled {
                    app.conn_notes.note(
                        &app.ctx.logger,
                        &format!("dropped the connection from {peer}: it read nothing for GATHM_SSE_WRITE_TIMEOUT"),
                    );
                } else if e.is_timeout() || e.is_parse() || e.is_parse_too_large() {
                    app.conn_notes.note(
                        &app.ctx.logger,
                        &format!("closed the connection from {peer}: {e}"),
                    );
                }
            }
            drop(permit);
        });
    }
}

/// Answer a connection over `GATHM_MAX_CONNECTIONS` with a 503 and close it.
async fn refuse(mut sock: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":"too many open connections; try again later"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

/// Connection-level events (refusals, header timeouts, malformed heads) go
/// to the app log at most once a second, with a count of the rest, so a
/// flood cannot flood the log.
struct Notes {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Notes {
    fn new() -> Notes {
        Notes {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    fn note(&self, logger: &Logger, msg: &str) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        let mut extra = Map::new();
        extra.insert(
            "suppressed".into(),
            self.suppressed.swap(0, Ordering::Relaxed).into(),
        );
        logger.app(Level::Warn, "http", msg, extra);
    }
}

/// tower-http's answer to a handler's panic: [`panic_reply`].
#[derive(Clone)]
struct PanicReply(Arc<Logger>);

impl tower_http::catch_panic::ResponseForPanic for PanicReply {
    type ResponseBody = Body;
    fn response_for_panic(&mut self, p: Box<dyn Any + Send + 'static>) -> Response {
        panic_reply(&self.0, p.as_ref())
    }
}

/// A panic in a handler: logged with its message, answered with a 500.
fn panic_reply(logger: &Logger, p: &(dyn Any + Send)) -> Response {
    let msg = p
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| p.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    let mut extra = Map::new();
    extra.insert("panic".into(), msg.into());
    logger.app(Level::Error, "http", "a request handler panicked", extra);
    respond(error_with(
        500,
        "internal error",
        json!({"reason": "internal_error"}),
    ))
}

/// Whether a request is answered on the async side (no slow file work, no
/// network, no process run on the worker).
fn quick(app: &App, routed: &Routed) -> bool {
    match routed {
        // The checks of a sync execute read local files only; its run is
        // awaited or sent to the blocking pool (`SyncRun`).
        Routed::Found(Route::Execute(_), _) => app.reactor_runs,
        // /readyz pings the shared state (Redis in a fleet): blocking pool.
        Routed::Found(r, _) => r.public() && *r != Route::Readyz,
        Routed::NotFound | Routed::Method(..) => true,
    }
}

/// Headers a request must not repeat (a proxy and gathm could read
/// different values).
const SINGLE_HEADERS: [HeaderName; 4] = [
    axum::http::header::HOST,
    axum::http::header::CONTENT_LENGTH,
    http::SEC_FETCH_SITE,
    axum::http::header::ORIGIN,
];

/// Checks on the request head before routing: URL length, head size,
/// repeated headers.
fn head_checks(parts: &axum::http::request::Parts) -> std::result::Result<(), Reply> {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target > MAX_URL {
        return Err(error_with(
            414,
            "URI too long",
            json!({"max_bytes": MAX_URL}),
        ));
    }
    // hyper bounds what it buffers (about `MAX_HEAD`, headers at most 100);
    // this makes the documented limit exact.
    let head: usize = target
        + parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head > MAX_HEAD {
        return Err(error_with(
            431,
            "request header fields too large",
            json!({"max_bytes": MAX_HEAD}),
        )
        .header("Connection", "close"));
    }
    for h in &SINGLE_HEADERS {
        if parts.headers.get_all(h).iter().nth(1).is_some() {
            return Err(error(400, &format!("duplicate {h} header")).header("Connection", "close"));
        }
    }
    Ok(())
}

/// Read the body: at most [`http::MAX_BODY`] bytes (413 beyond, whatever
/// the framing), within [`BODY_TIMEOUT`] (408 beyond).
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: Body,
) -> std::result::Result<Vec<u8>, Reply> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > http::MAX_BODY as u64) {
        return Err(http::too_large());
    }
    if axum::body::HttpBody::is_end_stream(&body) {
        return Ok(Vec::new());
    }
    let limited = http_body_util::Limited::new(body, http::MAX_BODY);
    let mut collect = std::pin::pin!(limited.collect());
    // A small body has usually come with the head: no timer for it.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let read = match first {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => tokio::time::timeout(BODY_TIMEOUT, collect).await,
    };
    match read {
        Err(_) => {
            Err(error(408, "timed out reading the request body").header("Connection", "close"))
        }
        Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(http::too_large()),
        Ok(Err(e)) => Err(error(400, &format!("could not read the request body: {e}"))
            .header("Connection", "close")),
    }
}

/// The one handler: route, read the body, dispatch (on the blocking pool
/// unless quick), answer, count and log.
async fn entry(
    app: Arc<App>,
    peer: SocketAddr,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let t0 = Instant::now();
    let (parts, body) = req.into_parts();
    let body = Body::new(body);
    let path = parts.uri.path().to_string();
    if mcp::is_mcp(&path) {
        let method = parts.method.clone();
        let (resp, role) = match head_checks(&parts) {
            Err(r) => (respond(r), None),
            Ok(()) => mcp::handle(&app, peer, parts, body).await,
        };
        return finish(&app, t0, &method, path, "/mcp", role, resp);
    }
    let routed = route(&parts.method, &path);
    let tpl = match &routed {
        Routed::Found(_, t) | Routed::Method(_, t) => *t,
        Routed::NotFound => "unmatched",
    };
    let mut role = None;
    let outcome = match head_checks(&parts) {
        Err(r) => Outcome::Reply(r),
        Ok(()) => {
            let body = read_body(&parts.headers, body).await;
            let mut req = Req {
                method: parts.method.clone(),
                path: path.clone(),
                query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                peer,
                body,
            };
            if quick(&app, &routed) {
                dispatch(&app, &mut req, routed, &mut role)
            } else {
                let app2 = Arc::clone(&app);
                let work = tokio::task::spawn_blocking(move || {
                    let mut role = None;
                    let out = dispatch(&app2, &mut req, routed, &mut role);
                    (out, role)
                });
                match work.await {
                    Ok((out, r)) => {
                        role = r;
                        out
                    }
                    Err(e) => match e.try_into_panic() {
                        Ok(p) => {
                            return finish(
                                &app,
                                t0,
                                &parts.method,
                                path,
                                tpl,
                                None,
                                panic_reply(&app.ctx.logger, p.as_ref()),
                            );
                        }
                        Err(_) => Outcome::Reply(error(500, "the request was cancelled")),
                    },
                }
            }
        }
    };
    let resp = match outcome {
        // The OpenAI-compatible routes answer errors in OpenAI's shape.
        Outcome::Reply(r) if path.starts_with("/v1/") => respond(openai::reshape(r)),
        Outcome::Reply(r) => respond(r),
        Outcome::Stream(src) => start_stream(&app, *src),
        Outcome::Chat(p) => openai::answer(Arc::clone(&app), *p).await,
        Outcome::File(d) => artifacts::respond(*d),
        Outcome::Run(run) => sync_run(&app, run).await,
    };
    finish(&app, t0, &parts.method, path, tpl, role, resp)
}

/// Count and log an answered request.
fn finish(
    app: &App,
    t0: Instant,
    method: &Method,
    path: String,
    tpl: &'static str,
    role: Option<String>,
    resp: Response,
) -> Response {
    let status = resp.status().as_u16();
    let secs = t0.elapsed().as_secs_f64();
    app.metrics.request(method, tpl, status, secs);
    if !app.access_on {
        return resp;
    }
    let mut path = path;
    let keep = clip(&path, 512).len();
    path.truncate(keep);
    let rec = Access {
        method: method.clone(),
        path,
        route: tpl,
        status,
        ms: secs * 1000.0,
        role,
    };
    if !app.access.push(rec) {
        app.metrics.access_log_dropped.inc();
    }
    resp
}

fn respond(r: Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.reserve(1 + http::SECURITY_HEADERS.len() + r.headers.len());
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    // Parsed once: a response clones them (no allocation).
    static SECURITY: std::sync::LazyLock<Vec<(HeaderName, HeaderValue)>> =
        std::sync::LazyLock::new(|| {
            http::SECURITY_HEADERS
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_static(v),
                    ))
                })
                .collect()
        });
    for (k, v) in SECURITY.iter() {
        h.append(k.clone(), v.clone());
    }
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

/// Holds one stream slot (in total and for its principal) until dropped.
struct StreamSlot {
    app: Arc<App>,
    owner: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.app.streams.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut m) = self.app.streams_by.lock()
            && let Some(n) = m.get_mut(&self.owner)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.owner);
            }
        }
    }
}

/// Take a stream slot: 503 when every slot is taken, 429 when the
/// principal holds its share.
fn stream_slot(app: &Arc<App>, owner: &str) -> std::result::Result<StreamSlot, Reply> {
    let mut m = app
        .streams_by
        .lock()
        .map_err(|_| error(500, "stream accounting failed"))?;
    let mine = m.get(owner).copied().unwrap_or(0);
    if mine >= app.opts.max_streams_per_client {
        return Err(error_with(
            429,
            "too many open streams for this client; close one first",
            json!({"max_streams_per_client": app.opts.max_streams_per_client}),
        )
        .header("Retry-After", "5"));
    }
    if app.streams.fetch_add(1, Ordering::SeqCst) >= app.opts.max_streams {
        app.streams.fetch_sub(1, Ordering::SeqCst);
        return Err(error(503, "too many open streams; try again later").header("Retry-After", "5"));
    }
    m.insert(owner.to_string(), mine + 1);
    Ok(StreamSlot {
        app: Arc::clone(app),
        owner: owner.to_string(),
    })
}

fn start_stream(app: &Arc<App>, src: sse::Source) -> Response {
    let slot = match stream_slot(app, &src.owner) {
        Ok(s) => s,
        Err(r) => return respond(r),
    };
    let events = jobs::events_path(&app.ctx, &src.job.id);
    sse_response(Sse::new(sse::start(
        app.jobs.clone(),
        events,
        src,
        slot,
        app.opts.write_timeout,
    )))
}

/// An SSE answer with the security headers, an explicit charset and no
/// proxy buffering (job streams and streamed chat completions).
fn sse_response(sse: impl IntoResponse) -> Response {
    let mut resp = sse.into_response();
    let h = resp.headers_mut();
    for (k, v) in http::SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    resp
}

fn is_admin(ctx: &Context, role: &str) -> bool {
    ctx.policies()
        .map(|p| policy::decide(&p, role, "", Action::Admin, false).allowed())
        .unwrap_or(false)
}

fn permit(ctx: &Context, principal: &Principal, action: Action) -> std::result::Result<(), Reply> {
    let p = ctx
        .policies()
        .map_err(|e| error(500, &format!("invalid policies: {e}")))?;
    let d = policy::decide(&p, &principal.role, "", action, false);
    if d.allowed() {
        Ok(())
    } else {
        Err(error_with(
            403,
            "forbidden",
            json!({"detail": d.message, "rule": d.rule}),
        ))
    }
}

fn rate_headers(mut r: Reply, adm: &ratelimit::Admission) -> Reply {
    if adm.limit != u32::MAX {
        r = r
            .header("X-RateLimit-Limit", adm.limit.to_string())
            .header("X-RateLimit-Remaining", adm.remaining.to_string());
    }
    r
}

fn too_many(adm: &ratelimit::Admission, what: Value) -> Reply {
    let wait = adm.retry_after.ceil().max(1.0);
    let r = error_with(
        429,
        "rate_limited",
        json!({"limit": adm.limit, "retry_after": wait, "scope": what}),
    )
    .header("Retry-After", format!("{wait:.0}"));
    rate_headers(r, adm)
}

/// The principal's own window (`principal-<hash>`), persisted and shared
/// between server processes.
fn principal_limit(
    ctx: &Context,
    pol: &policy::Policies,
    p: &Principal,
) -> std::result::Result<Option<ratelimit::Admission>, Reply> {
    let Some((_, limit, capacity)) = policy::limits_for(pol, &p.role, "")
        .into_iter()
        .find(|(k, _, _)| k.starts_with("role-"))
    else {
        return Ok(None);
    };
    let key = format!("principal-{}", &p.id[..p.id.len().min(32)]);
    let l = Limit {
        key,
        limit,
        capacity,
    };
    let window = pol.rate_limiting.window_seconds.max(1) as f64;
    match ctx.shared().admit(&[l], window) {
        Ok(adm) if !adm.allowed => Err(too_many(&adm, json!("principal"))),
        Ok(adm) => Ok(Some(adm)),
        Err(e) => Err(limit_unavailable(&e)),
    }
}

/// A rate-limit window that cannot be read or written refuses the request
/// (fail closed): 507 on a full disk, else 503, with the cause.
fn limit_unavailable(e: &crate::error::Error) -> Reply {
    let (status, code) = if e.is_storage_full() {
        (507, "storage_full")
    } else {
        (503, "state_unavailable")
    };
    error_with(
        status,
        code,
        json!({"message": format!("the rate limit cannot be enforced, so the request is refused: {e}")}),
    )
    .header("Retry-After", "5")
}

/// Policies that cannot be loaded refuse the request (fail closed).
fn policies_unavailable(e: &crate::error::Error) -> Reply {
    error_with(
        500,
        "invalid_configuration",
        json!({"message": format!("the policies cannot be loaded, so the request is refused: {e}")}),
    )
}

/// The per-tool window (`tool-<name>`, shared with the CLI).
fn tool_limit(ctx: &Context, role: &str, tool: &str) -> std::result::Result<(), Reply> {
    let pol = ctx.policies().map_err(|e| policies_unavailable(&e))?;
    let pol = &*pol;
    let limits: Vec<Limit> = policy::limits_for(pol, role, tool)
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("tool-"))
        .map(|(k, limit, capacity)| Limit {
            key: k,
            limit,
            capacity,
        })
        .collect();
    if limits.is_empty() {
        return Ok(());
    }
    let window = pol.rate_limiting.window_seconds.max(1) as f64;
    match ctx.shared().admit(&limits, window) {
        Ok(adm) if !adm.allowed => Err(too_many(&adm, json!({"tool": tool}))),
        Ok(_) => Ok(()),
        Err(e) => Err(limit_unavailable(&e)),
    }
}

/// A tool's own limit for an execute, counted only for requests the policy
/// allows (the run refuses the others with their reason); a tool without
/// such a limit needs no decision here.
fn allowed_tool_limit(
    ctx: &Context,
    pol: &policy::Policies,
    role: &str,
    tool: &str,
) -> std::result::Result<(), Reply> {
    if policy::tool_limit(pol, tool).is_some()
        && policy::decide(pol, role, tool, Action::Execute, false).allowed()
    {
        tool_limit(ctx, role, tool)?;
    }
    Ok(())
}

fn peer_is_loopback(req: &Req) -> bool {
    req.peer.ip().is_loopback()
}

fn dispatch(
    app: &Arc<App>,
    req: &mut Req,
    routed: Routed,
    role_out: &mut Option<String>,
) -> Outcome {
    // Debug builds only: the tests make a handler panic on purpose, on the
    // async side (a public route) and on the blocking pool (any other).
    #[cfg(debug_assertions)]
    if std::env::var("GATHM_DEBUG_PANIC").is_ok_and(|v| v.split(',').any(|p| p == req.path)) {
        panic!("GATHM_DEBUG_PANIC at {}", req.path);
    }
    let host = http::header(req, axum::http::header::HOST).map(str::to_string);
    if let Some(why) = auth::cross_origin(
        http::header(req, axum::http::header::ORIGIN),
        http::header(req, http::SEC_FETCH_SITE),
        host.as_deref(),
    ) {
        return error(403, why).into();
    }
    let (route, _tpl) = match routed {
        Routed::Found(r, t) => (r, t),
        Routed::NotFound | Routed::Method(..)
            if !app.keys.enabled()
                && !local_ok(req, &host)
                && !matches!(
                    routed,
                    Routed::Method(_, "/api/v1/ping" | "/healthz" | "/readyz")
                ) =>
        {
            return error(403, "API keys are required for remote access").into();
        }
        Routed::NotFound => {
            if app.keys.enabled()
                && app
                    .keys
                    .authenticate(http::header(req, axum::http::header::AUTHORIZATION))
                    .is_none()
            {
                return unauthorized().into();
            }
            return error(404, "Not found").into();
        }
        Routed::Method(allow, tpl) => {
            let public = matches!(tpl, "/api/v1/ping" | "/healthz" | "/readyz");
            if !public
                && app.keys.enabled()
                && app
                    .keys
                    .authenticate(http::header(req, axum::http::header::AUTHORIZATION))
                    .is_none()
            {
                return unauthorized().into();
            }
            return error(405, "Method not allowed")
                .header("Allow", allow)
                .into();
        }
    };
    if route.public() {
        return public(app, &route).into();
    }
    let principal = if app.keys.enabled() {
        match app
            .keys
            .authenticate(http::header(req, axum::http::header::AUTHORIZATION))
        {
            Some(p) => p,
            None => return unauthorized().into(),
        }
    } else if local_ok(req, &host) {
        auth::local()
    } else {
        return error(403, "API keys are required for remote access").into();
    };
    *role_out = Some(principal.role.clone());
    // One load (one `stat`) of the policies per request: the principal's
    // limit, an execute's own checks and its run use this snapshot.
    let pol = match app.ctx.policies() {
        Ok(p) => p,
        Err(e) => return policies_unavailable(&e).into(),
    };
    let adm = match principal_limit(&app.ctx, &pol, &principal) {
        Ok(a) => a,
        Err(r) => return r.into(),
    };
    let out = match handle_route(app, req, route, &principal, &pol) {
        Ok(o) => o,
        Err(r) => Outcome::Reply(r),
    };
    match (out, adm) {
        (Outcome::Reply(r), Some(adm)) => Outcome::Reply(rate_headers(r, &adm)),
        (o, _) => o,
    }
}

fn local_ok(req: &Req, host: &Option<String>) -> bool {
    peer_is_loopback(req) && host.as_deref().is_some_and(auth::is_loopback_host)
}

fn unauthorized() -> Reply {
    error(401, "Unauthorized").header("WWW-Authenticate", "Bearer")
}

fn public(app: &App, route: &Route) -> Reply {
    match route {
        Route::Ping => Reply::json(
            200,
            &bodies::Ping {
                status: "ok",
                service: "gathm-api",
                version: env!("CARGO_PKG_VERSION"),
            },
        ),
        Route::Healthz => Reply::json(200, &json!({"status": "ok"})),
        Route::Readyz if app.ready.load(Ordering::SeqCst) => {
            // In a fleet, an instance that cannot reach the shared state is
            // not ready (the load balancer sends traffic elsewhere); it keeps
            // answering /healthz and reconnects on the next call.
            match app.ctx.shared().ping() {
                Ok(()) => Reply::json(200, &json!({"status": "ready"})),
                Err(e) => error_with(
                    503,
                    "state_unavailable",
                    json!({"status": "not_ready", "message": e.to_string()}),
                ),
            }
        }
        Route::Readyz => error_with(503, "shutting down", json!({"status": "shutting_down"})),
        _ => error(404, "Not found"),
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hexval(b[i + 1]), hexval(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn valid_tool(name: &str) -> std::result::Result<(), Reply> {
    if manifest::valid_name(name) {
        Ok(())
    } else {
        Err(error(400, "Invalid tool name"))
    }
}

fn op_error(e: Error) -> Reply {
    match e {
        Error::NotFound(m) => error(404, &m),
        Error::Denied(m) => error_with(403, "forbidden", json!({"detail": m})),
        Error::Usage(m) => error(400, &m),
        Error::InvalidData(m) => error_with(500, "invalid configuration", json!({"detail": m})),
        e => error(500, &e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Reply {
    Reply::json(200, v)
}

fn handle_route(
    app: &Arc<App>,
    req: &mut Req,
    route: Route,
    p: &Principal,
    pol: &Arc<policy::Policies>,
) -> HResult {
    let ctx = &*app.ctx;
    let query = req.query.clone();
    let query = query.as_str();
    match route {
        Route::Ping | Route::Healthz | Route::Readyz => Ok(error(404, "Not found").into()),
        Route::OpenApi => Ok(to_json(&openapi::spec()).into()),
        Route::Metrics => {
            permit(ctx, p, Action::Healthcheck)?;
            Ok(Reply::text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics_text(app),
            )
            .into())
        }
        Route::Tools => {
            permit(ctx, p, Action::Discover)?;
            let cat = query_param(query, "category");
            let (list, _) = ops::list(ctx, &p.role, cat.as_deref()).map_err(op_error)?;
            Ok(to_json(&list).into())
        }
        Route::Tool(name) => {
            permit(ctx, p, Action::Discover)?;
            valid_tool(&name)?;
            Ok(to_json(&ops::show(ctx, &p.role, &name).map_err(op_error)?).into())
        }
        Route::Execute(name) => execute(app, req, &name, p, pol),
        Route::Health => {
            permit(ctx, p, Action::Healthcheck)?;
            let _slot = execution_slot(app)?;
            let tools = ctx.search.scan().tools;
            Ok(to_json(&health::check_all(ctx, &tools)).into())
        }
        Route::HealthTool(name) => {
            permit(ctx, p, Action::Healthcheck)?;
            valid_tool(&name)?;
            let t = ops::find(ctx, &name).map_err(op_error)?;
            let _slot = execution_slot(app)?;
            let h = health::check_all(ctx, &[t]);
            match h.first() {
                Some(h) => Ok(to_json(h).into()),
                None => Err(error(500, "no health result")),
            }
        }
        Route::AgentStatus => {
            permit(ctx, p, Action::Discover)?;
            Ok(to_json(&ops::status(ctx, &p.role).map_err(op_error)?).into())
        }
        Route::JobsSubmit => submit(app, req, p),
        Route::Models => openai::models(app, p),
        Route::ChatCompletions => openai::completions(app, req, p),
        Route::AgentParallel => agent_parallel(app, req, p),
        Route::AgentAsk => agent_ask(app, req, p),
        Route::AgentChain => agent_chain(app, req, p),
        Route::JobsList => {
            permit(ctx, p, Action::Discover)?;
            let status = match query_param(query, "status").filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
                    error_with(
                        400,
                        &format!("invalid status {s:?}"),
                        json!({"allowed": jobs::STATUSES}),
                    )
                })?),
            };
            let (list, next) = app
                .jobs
                .list_page(&p.id, is_admin(ctx, &p.role), status, &|k| {
                    query_param(query, k)
                })
                .map_err(|m| error(400, &m))?;
            let jobs: Vec<_> = list.iter().map(jobs::Job::to_public).collect();
            Ok(to_json(&bodies::JobList {
                count: jobs.len(),
                jobs,
                next,
            })
            .into())
        }
        Route::JobGet(id) => {
            permit(ctx, p, Action::Discover)?;
            let job = app
                .jobs
                .get(&id, &p.id, is_admin(ctx, &p.role))
                .ok_or_else(job_not_found)?;
            Ok(to_json(&job.to_public()).into())
        }
        Route::JobCancel(id) => {
            permit(ctx, p, Action::Execute)?;
            match app.jobs.cancel(&id, &p.id, is_admin(ctx, &p.role)) {
                None => Err(job_not_found()),
                Some(Cancelled::Now(job)) => Ok(to_json(&job.to_public()).into()),
                Some(Cancelled::AlreadyTerminal(job)) => {
                    let mut v = job.to_public();
                    v.detail = Some("Job already in terminal state".into());
                    Ok(to_json(&v).into())
                }
            }
        }
        Route::JobApprove(id) => {
            if !is_admin(ctx, &p.role) {
                // Existence is not leaked to callers who may not approve.
                permit(ctx, p, Action::Admin)?;
            }
            match app.jobs.approve(&id) {
                Ok(job) => Ok(to_json(&job.to_public()).into()),
                Err(ApproveError::NotFound) => Err(job_not_found()),
                Err(ApproveError::NotAwaiting(status)) => Err(error_with(
                    409,
                    "job is not awaiting approval",
                    json!({"id": id, "status": status}),
                )),
            }
        }
        Route::JobArtifacts(id) => {
            permit(ctx, p, Action::Discover)?;
            artifacts::list(app, &id, &p.id, is_admin(ctx, &p.role))
        }
        Route::JobArtifact(id, name) => {
            permit(ctx, p, Action::Discover)?;
            artifacts::fetch(app, &id, &name, &p.id, is_admin(ctx, &p.role))
        }
        Route::JobStream(id) => {
            permit(ctx, p, Action::Discover)?;
            let admin = is_admin(ctx, &p.role);
            let (job, live) = app
                .jobs
                .stream_source(&id, &p.id, admin)
                .ok_or_else(job_not_found)?;
            let last_id = http::header(req, "Last-Event-ID")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            Ok(Outcome::Stream(Box::new(sse::Source {
                job,
                live,
                owner: p.id.clone(),
                admin,
                last_id,
            })))
        }
    }
}

/// One of the `GATHM_MAX_EXECUTIONS` slots for a tool run from a request
/// (429 with `Retry-After` when all are taken).
fn execution_slot(app: &App) -> std::result::Result<tokio::sync::OwnedSemaphorePermit, Reply> {
    Arc::clone(&app.executions)
        .try_acquire_owned()
        .map_err(|_| {
            error_with(
                429,
                "too many executions running; try again shortly",
                json!({"max_executions": app.opts.max_executions}),
            )
            .header("Retry-After", "1")
        })
}

fn job_not_found() -> Reply {
    error(404, "Job not found")
}

fn metrics_text(app: &App) -> String {
    let (queued, running, by_status) = app.jobs.counts();
    let breakers = ops::breaker_status(&app.ctx, None)
        .map(|b| {
            b.into_iter()
                .map(|b| (b.tool, b.state.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let groups = match app.ctx.config() {
        Ok(Some((_, c))) => c
            .groups
            .iter()
            .map(|(name, g)| {
                let spec = crate::state::shared::GroupSpec {
                    name: name.clone(),
                    max: g.max_concurrent,
                    queue: g.queue_size,
                };
                let (held, waiting) = app.ctx.shared().group_occupancy(&spec).unwrap_or((0, 0));
                (name.clone(), held, waiting, g.max_concurrent)
            })
            .collect(),
        _ => Vec::new(),
    };
    app.metrics.render(&metrics::Snapshot {
        groups,
        queued,
        running,
        by_status,
        streams: app.streams.load(Ordering::SeqCst),
        executions_running: app.opts.max_executions - app.executions.available_permits(),
        connections_open: app.opts.max_connections - app.connections.available_permits(),
        ready: app.ready.load(Ordering::SeqCst),
        breakers,
    })
}

fn execute(
    app: &Arc<App>,
    req: &mut Req,
    name: &str,
    p: &Principal,
    pol: &Arc<policy::Policies>,
) -> HResult {
    let ctx = &*app.ctx;
    valid_tool(name)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, true)?;
    let args = http::args_field(&o)?;
    let timeout = http::timeout_field(&o)?;
    if !app.ready.load(Ordering::SeqCst) {
        return Err(error(503, "shutting down").header("Retry-After", "5"));
    }
    allowed_tool_limit(ctx, pol, &p.role, name)?;
    let mut rr = RunRequest::new(
        name,
        args.into_iter().map(OsString::from).collect(),
        &p.role,
    );
    rr.timeout = timeout;
    rr.rate_limit = false;
    rr.actor = "http".into();
    rr.policies = Some(Arc::clone(pol));
    let slot = execution_slot(app)?;
    let cancel = CancelOnShutdown::register(app, &rr.cancel);
    if !app.reactor_runs {
        // On the blocking pool already (state over the network).
        let env = run::run(ctx, &rr);
        app.metrics.execution(&env);
        return Ok(envelope_reply(&env).into());
    }
    // Looked up once: the run uses this lookup too.
    rr.resolved = ctx.search.find_shared(name).ok().flatten();
    let on_reactor = rr
        .resolved
        .as_deref()
        .is_some_and(|t| run::awaitable(ctx, t));
    Ok(Outcome::Run(Box::new(SyncRun {
        rr,
        on_reactor,
        _slot: slot,
        _cancel: cancel,
    })))
}

/// Run a checked sync execute and answer its envelope. A client that
/// leaves does not stop the run half-way (its process is still awaited and
/// reaped, its slot held until it ends): it goes on as a task
/// ([`Detachable`]) or on the blocking pool.
async fn sync_run(app: &Arc<App>, run: Box<SyncRun>) -> Response {
    let app2 = Arc::clone(app);
    // `let held = run`: the run owns the whole `SyncRun` (slot and cancel
    // registration included), not only the request.
    let env = if run.on_reactor {
        // Awaited here (a panic in it reaches tower-http's CatchPanic, as any
        // handler's); boxed once, as a run's future is large.
        Detachable(Some(Box::pin(async move {
            let held = run;
            run::run_with(&app2.ctx, &held.rr, &run::Reactor).await
        })))
        .await
    } else {
        let work = tokio::task::spawn_blocking(move || {
            let held = run;
            run::run(&app2.ctx, &held.rr)
        });
        match work.await {
            Ok(env) => env,
            Err(e) => match e.try_into_panic() {
                Ok(p) => return panic_reply(&app.ctx.logger, p.as_ref()),
                Err(_) => return respond(error(500, "the request was cancelled")),
            },
        }
    };
    app.metrics.execution(&env);
    respond(envelope_reply(&env))
}

/// The HTTP status of a run: refusals map to 403/404/429, a configuration
/// problem to 500, everything else (a tool that ran and failed included) 200.
fn envelope_reply(env: &Envelope) -> Reply {
    // The one mapping of refusals to statuses (`Reason::http_refusal`): a
    // control whose state is unavailable is a 503 (507 on a full disk),
    // never a success.
    let (status, err) = match env.reason.and_then(Reason::http_refusal) {
        Some((status, code)) => (status, Some(code)),
        None if env.reason.is_none()
            && env.exit_code == i32::from(code::DATA_ERR)
            && env.attempts.is_empty() =>
        {
            (500, Some("invalid_configuration"))
        }
        None => (200, None),
    };
    let Some(err) = err else {
        return Reply::json_bytes(200, env.to_json());
    };
    let mut v = serde_json::to_value(env).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("error".into(), err.into());
    }
    let mut r = Reply::json(status, &v);
    if let Some(wait) = env.retry_after.filter(|_| status == 429 || status == 503) {
        r = r.header("Retry-After", format!("{:.0}", wait.ceil().max(1.0)));
    }
    r
}

/// Items of `POST /api/v1/agent/parallel`: `{"items": [{"tool", "args"}]}` or
/// the reference's `{"tools": "dns a.com, hash x"}`.
fn parallel_items(
    o: &serde_json::Map<String, Value>,
) -> std::result::Result<Vec<parallel::Item>, Reply> {
    if let Some(items) = o.get("items") {
        let items: Vec<parallel::Item> = serde_json::from_value(items.clone())
            .map_err(|e| error(400, &format!("items: {e}")))?;
        return Ok(items);
    }
    match o.get("tools") {
        Some(Value::String(spec)) => {
            parallel::parse_spec(spec).map_err(|e| error(400, &e.to_string()))
        }
        Some(_) => Err(error(400, "tools must be a string")),
        None => Err(error(
            400,
            "items (or the reference's tools string) is required",
        )),
    }
}

/// Run a synchronous multi-tool request with its cancel token registered, so
/// a shutdown past the grace period cancels it; 503 while shutting down.
fn with_sync_cancel<T>(
    app: &Arc<App>,
    cancel: &Cancel,
    f: impl FnOnce() -> T,
) -> std::result::Result<T, Reply> {
    if !app.ready.load(Ordering::SeqCst) {
        return Err(error(503, "shutting down").header("Retry-After", "5"));
    }
    let _slot = execution_slot(app)?;
    let n = app.next_run.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut m) = app.sync_runs.lock() {
        m.insert(n, cancel.clone());
    }
    let out = f();
    if let Ok(mut m) = app.sync_runs.lock() {
        m.remove(&n);
    }
    Ok(out)
}

/// `POST /api/v1/agent/ask` (the reference's request shape `{"query"}`):
/// the same deterministic routing as `gathm ask`, over the tools the role
/// may discover; 422 for a blank or oversized query.
fn agent_ask(app: &Arc<App>, req: &mut Req, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    permit(ctx, p, Action::Execute)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, false)?;
    let q: crate::ask::AskRequest =
        serde_json::from_value(Value::Object(o)).map_err(|e| error(400, &format!("body: {e}")))?;
    q.validate().map_err(|m| error(422, &m))?;
    let answer = crate::ask::ask(ctx, &p.role, &q.query).map_err(op_error)?;
    Ok(to_json(&answer).into())
}

fn agent_parallel(app: &Arc<App>, req: &mut Req, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    permit(ctx, p, Action::Execute)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, false)?;
    let items = parallel_items(&o)?;
    if items.is_empty() || items.len() > 256 {
        return Err(error(400, "between 1 and 256 items"));
    }
    for it in &items {
        valid_tool(&it.tool)?;
        http::no_nul(it.args.clone())?;
    }
    let jobs = match o.get("jobs") {
        None | Some(Value::Null) => 4,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| error(400, "jobs must be an integer from 1 to 64"))?
            as usize,
    };
    let opts = parallel::Options {
        jobs,
        progress: false,
        member: crate::run::Member {
            role: p.role.clone(),
            ..crate::run::Member::new("http:parallel")
        },
    };
    let results = with_sync_cancel(app, &opts.member.cancel, || {
        parallel::run_all(ctx, &items, &opts)
    })?;
    for env in &results {
        app.metrics.execution(env);
    }
    let code = parallel::exit_code(&results);
    Ok(to_json(&bodies::ParallelReply {
        status: if code == 0 { "success" } else { "error" },
        exit_code: code,
        count: results.len(),
        results,
    })
    .into())
}

fn agent_chain(app: &Arc<App>, req: &mut Req, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    permit(ctx, p, Action::Execute)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, false)?;
    let steps: Vec<chain::Step> = if let Some(steps) = o.get("steps") {
        serde_json::from_value(steps.clone()).map_err(|e| error(400, &format!("steps: {e}")))?
    } else {
        match o.get("pipeline") {
            Some(Value::String(spec)) => {
                chain::parse_spec(spec).map_err(|e| error(400, &e.to_string()))?
            }
            Some(_) => return Err(error(400, "pipeline must be a string")),
            None => {
                return Err(error(
                    400,
                    "steps (or the reference's pipeline string) is required",
                ));
            }
        }
    };
    for s in &steps {
        valid_tool(&s.tool)?;
        http::no_nul(s.args.clone())?;
    }
    chain::check(&steps).map_err(|e| error(400, &e.to_string()))?;
    let opts = chain::Options {
        member: crate::run::Member {
            role: p.role.clone(),
            ..crate::run::Member::new("http:chain")
        },
        timeout: http::timeout_field(&o)?,
        ..chain::Options::default()
    };
    let result = with_sync_cancel(app, &opts.member.cancel, || chain::run(ctx, &steps, &opts))?;
    for env in &result.steps {
        app.metrics.execution(env);
    }
    Ok(to_json(&result).into())
}

fn submit(app: &Arc<App>, req: &mut Req, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    permit(ctx, p, Action::Execute)?;
    let key =
        jobs::idempotency_key(http::header(req, "Idempotency-Key")).map_err(|m| error(400, &m))?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, false)?;
    let kind = match http::string_field(&o, "kind")? {
        None => JobKind::Tool,
        Some(k) => JobKind::parse(&k).ok_or_else(|| {
            error_with(
                400,
                &format!("invalid kind {k:?}"),
                json!({"allowed": ["tool", "pipeline"]}),
            )
        })?,
    };
    if kind == JobKind::Pipeline || o.contains_key("pipeline") {
        let cb = callback_field(&o)?;
        return submit_pipeline(app, p, &o, cb, key);
    }
    let tool = http::string_field(&o, "tool")?.ok_or_else(|| error(400, "tool is required"))?;
    valid_tool(&tool)?;
    let args = http::args_field(&o)?;
    let timeout = http::timeout_field(&o)?;
    let callback_url = callback_field(&o)?;
    if app.jobs.draining() {
        return Err(error(503, "shutting down: no new jobs").header("Retry-After", "5"));
    }
    match ctx.search.find(&tool) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(error(404, &format!("tool {tool:?} not found"))),
        Err(d) => {
            return Err(error_with(
                500,
                "invalid configuration",
                json!({"detail": d.to_string()}),
            ));
        }
    }
    let pol = ctx
        .policies()
        .map_err(|e| error(500, &format!("invalid policies: {e}")))?;
    let pol = &*pol;
    let d = policy::decide(pol, &p.role, &tool, Action::Execute, false);
    let awaiting = match d.decision {
        Verdict::Allow => false,
        Verdict::ApprovalRequired => true,
        Verdict::Deny => {
            return Err(error_with(
                403,
                "denied",
                json!({"detail": d.message, "rule": d.rule}),
            ));
        }
    };
    if let Some(d) = policy::check_args(pol, &args) {
        return Err(error_with(
            403,
            "denied",
            json!({"detail": d.message, "rule": d.rule}),
        ));
    }
    tool_limit(ctx, &p.role, &tool)?;
    let s = Submission {
        kind,
        tool,
        args,
        timeout,
        callback_url,
        awaiting_approval: awaiting,
        pipeline: None,
        idempotency_key: key,
        stdin: None,
    };
    enqueue(app, p, s)
}

/// `POST /api/v1/jobs {"pipeline": {...}}`: validated before it is queued
/// (unknown tools, ids, cycles, templates: 400 with every diagnostic); every
/// step's tool is policy-checked for the caller (a denied one refuses the
/// job; one that needs approval makes the whole job wait for an admin).
fn submit_pipeline(
    app: &Arc<App>,
    p: &Principal,
    o: &Map<String, Value>,
    callback_url: Option<String>,
    idempotency_key: Option<String>,
) -> HResult {
    let ctx = &*app.ctx;
    let def = o.get("pipeline").cloned().unwrap_or(Value::Null);
    let pl: crate::pipeline::Pipeline =
        serde_json::from_value(def.clone()).map_err(|e| error(400, &format!("pipeline: {e}")))?;
    for step in &pl.steps {
        http::no_nul(step.args.clone())?;
    }
    let diags = crate::pipeline::validate(ctx, &pl);
    if diags
        .iter()
        .any(|d| d.severity == crate::manifest::Severity::Error)
    {
        return Err(error_with(
            400,
            "invalid pipeline",
            json!({"diagnostics": diags}),
        ));
    }
    let pol = ctx
        .policies()
        .map_err(|e| error(500, &format!("invalid policies: {e}")))?;
    let pol = &*pol;
    let mut awaiting = false;
    for step in &pl.steps {
        let d = policy::decide(pol, &p.role, &step.tool, Action::Execute, false);
        match d.decision {
            Verdict::Allow => {}
            Verdict::ApprovalRequired => awaiting = true,
            Verdict::Deny => {
                return Err(error_with(
                    403,
                    "denied",
                    json!({"detail": d.message, "rule": d.rule, "step": step.id}),
                ));
            }
        }
        if let Some(d) = policy::check_args(pol, &step.args) {
            return Err(error_with(
                403,
                "denied",
                json!({"detail": d.message, "rule": d.rule, "step": step.id}),
            ));
        }
    }
    if app.jobs.draining() {
        return Err(error(503, "shutting down: no new jobs").header("Retry-After", "5"));
    }
    let s = Submission {
        kind: JobKind::Pipeline,
        tool: "pipeline".into(),
        args: Vec::new(),
        timeout: pl.timeout,
        callback_url,
        awaiting_approval: awaiting,
        pipeline: Some(def),
        idempotency_key,
        stdin: None,
    };
    enqueue(app, p, s)
}

fn callback_field(o: &Map<String, Value>) -> std::result::Result<Option<String>, Reply> {
    let callback_url = http::string_field(o, "callback_url")?;
    if let Some(u) = &callback_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 {
            return Err(error(
                400,
                "callback_url must be an http:// or https:// URL",
            ));
        }
        if JobConfig::from_env().callback_secret.is_none() {
            return Err(error(
                400,
                "callback_url needs GATHM_CALLBACK_SECRET to be set on the server (callbacks are always signed)",
            ));
        }
    }
    Ok(callback_url)
}

fn enqueue(app: &Arc<App>, p: &Principal, s: Submission) -> HResult {
    match app.jobs.submit(&p.id, &p.role, s) {
        Ok(job) => Ok(Reply::json(202, &job.to_public())
            .header("Location", format!("/api/v1/jobs/{}", job.id))
            .into()),
        Err(SubmitError::QueueFull(n)) => {
            Err(
                error_with(429, "Job queue is full", json!({"max_queue_depth": n}))
                    .header("Retry-After", "1"),
            )
        }
        Err(SubmitError::ShuttingDown) => {
            Err(error(503, "shutting down: no new jobs").header("Retry-After", "5"))
        }
        Err(SubmitError::Invalid(m)) => Err(error(400, &m)),
        Err(SubmitError::KeyReused(m)) => Err(error(422, &m)),
        Err(SubmitError::Store { status, message }) => Err(error(
            status,
            &format!("could not store the job: {message}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_have_the_app_log_format() {
        let a = Access {
            method: Method::GET,
            path: "/a\"b".into(),
            route: "/api/v1/ping",
            status: 200,
            ms: 1.23456,
            role: Some("admin".into()),
        };
        let (mut buf, mut msg) = (Vec::new(), String::new());
        let tail = b",\"timestamp\":\"t\"}\n";
        access_line(&mut buf, &mut msg, &a, b",\"hostname\":\"h\"", 7, tail);
        assert!(buf.ends_with(b"}\n"));
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!({"component": "http", "hostname": "h", "level": "INFO",
                "message": "GET /a\"b 200 1.2ms", "method": "GET", "ms": 1.235,
                "path": "/a\"b", "pid": 7, "role": "admin", "route": "/api/v1/ping",
                "status": 200, "timestamp": "t"})
        );
        // Tenths carry into the whole milliseconds.
        let b = Access {
            ms: 12.96,
            role: None,
            ..a
        };
        buf.clear();
        access_line(&mut buf, &mut msg, &b, b"", 7, tail);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["message"], "GET /a\"b 200 13.0ms");
        assert!(v.get("role").is_none());
    }

    fn r(m: Method, p: &str) -> String {
        match route(&m, p) {
            Routed::Found(r, t) => format!("{r:?} {t}"),
            Routed::NotFound => "404".into(),
            Routed::Method(a, _) => format!("405 {a}"),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(r(Method::GET, "/api/v1/ping"), "Ping /api/v1/ping");
        assert_eq!(r(Method::GET, "/api/v1/ping/"), "Ping /api/v1/ping");
        assert_eq!(r(Method::POST, "/api/v1/ping"), "405 GET");
        assert_eq!(
            r(Method::POST, "/api/v1/tools/dns/execute"),
            "Execute(\"dns\") /api/v1/tools/{name}/execute"
        );
        assert_eq!(r(Method::PUT, "/api/v1/jobs/x"), "405 GET, DELETE");
        assert_eq!(r(Method::GET, "/nope"), "404");
        assert_eq!(
            r(Method::GET, "/api/v1/jobs/abc/stream"),
            "JobStream(\"abc\") /api/v1/jobs/{id}/stream"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/jobs/abc/artifacts"),
            "JobArtifacts(\"abc\") /api/v1/jobs/{id}/artifacts"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/jobs/abc/artifacts/d/x%2e.txt"),
            "JobArtifact(\"abc\", \"d/x%2e.txt\") /api/v1/jobs/{id}/artifacts/{name}"
        );
        assert_eq!(r(Method::POST, "/api/v1/jobs/abc/artifacts/x"), "405 GET");
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            query_param("a=1&status=run%20x", "status").unwrap(),
            "run x"
        );
        assert_eq!(
            query_param("category=net+work", "category").unwrap(),
            "net work"
        );
        assert_eq!(query_param("a=1", "b"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
