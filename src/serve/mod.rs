//! `gathm serve`: the HTTP API (PRODUCT.md §7) over tiny_http.
//!
//! A bounded pool of worker threads takes requests from tiny_http; SSE
//! streams move to their own threads, bounded separately (503 when full).
//! Each request is checked in this order: cross-origin refusal, route
//! (public routes skip auth), authentication (bearer keys, or loopback-only
//! without keys), the principal's rate limit, then the route's permission
//! from the policies. Every answer is JSON (`{"error": …}` for errors) with
//! the security headers; executions go through `run::run` and return the
//! same envelope as `gathm run --json`. SIGTERM/SIGINT drain: `/readyz`
//! turns 503, no new executions or jobs, running jobs get a grace period.

pub mod auth;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod sse;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tiny_http::{Header, Method, Request, Response};

use self::auth::{Keys, Principal};
use self::http::{Reply, error, error_with};
use self::metrics::{Gauge, Metrics};
use crate::api::{Envelope, Reason};
use crate::chain;
use crate::clock;
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::health;
use crate::jobs::{
    self, ApproveError, Cancelled, Config as JobConfig, JobKind, JobStatus, Jobs, Submission,
    SubmitError,
};
use crate::logs::Level;
use crate::manifest;
use crate::ops;
use crate::parallel;
use crate::policy::{self, Action, Verdict};
use crate::ratelimit::{self, Limit};
use crate::run::{self, RunRequest};
use crate::runner::Cancel;

/// Server settings from the command line and the environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
    /// `GATHM_HTTP_WORKERS` (default 16).
    pub workers: usize,
    /// `GATHM_MAX_STREAMS` concurrent SSE streams (default 32).
    pub max_streams: usize,
    /// `GATHM_SHUTDOWN_GRACE` seconds (default 30).
    pub grace: f64,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Options {
    /// Options for a host and port, the rest from the environment.
    pub fn new(host: String, port: u16) -> Options {
        Options {
            host,
            port,
            workers: env_num("GATHM_HTTP_WORKERS")
                .filter(|n| *n > 0)
                .unwrap_or(16),
            max_streams: env_num("GATHM_MAX_STREAMS")
                .filter(|n| *n > 0)
                .unwrap_or(32),
            grace: env_num("GATHM_SHUTDOWN_GRACE")
                .filter(|n: &f64| *n >= 0.0)
                .unwrap_or(30.0),
        }
    }
}

/// The routes. Add `AgentParallel` / `AgentChain` (one arm each in `route`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
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
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    let one = |allowed: &'static str, tpl: &'static str, r: Route| {
        if allowed == m {
            Routed::Found(r, tpl)
        } else {
            Routed::Method(allowed, tpl)
        }
    };
    let s = |x: &str| x.to_string();
    match segs.as_slice() {
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
        _ => Routed::NotFound,
    }
}

struct Access {
    method: String,
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
    stop: AtomicBool,
    streams: AtomicUsize,
    opts: Options,
    sync_runs: Mutex<HashMap<u64, Cancel>>,
    next_run: AtomicU64,
    access: SyncSender<Access>,
}

/// What a handler produced.
enum Outcome {
    Reply(Reply),
    Stream(Box<sse::Source>),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Outcome {
        Outcome::Reply(r)
    }
}

type HResult = std::result::Result<Outcome, Reply>;

/// Run the server until SIGTERM/SIGINT; returns the exit code.
pub fn serve(mut ctx: Context, opts: Options) -> Result<i32> {
    ctx.logger.keep_open();
    crate::parsed::memoise();
    let keys = Keys::parse(
        std::env::var("GATHM_API_KEYS").ok().as_deref(),
        std::env::var("GATHM_API_KEY").ok().as_deref(),
    )
    .map_err(|m| Error::Usage(format!("refusing to start: {m}")))?;
    ctx.policies()?;
    let server = tiny_http::Server::http((opts.host.as_str(), opts.port)).map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {}:{}: {e} (use another --port, or --port 0 for any free one)",
            opts.host, opts.port
        ))
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Internal("the server has no IP address".into()))?;
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
    let (access_tx, access_rx) = mpsc::sync_channel::<Access>(8192);
    let app = Arc::new(App {
        ctx: Arc::clone(&ctx),
        keys,
        jobs,
        metrics,
        ready: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        streams: AtomicUsize::new(0),
        opts: opts.clone(),
        sync_runs: Mutex::new(HashMap::new()),
        next_run: AtomicU64::new(0),
        access: access_tx,
    });
    {
        let logger = ctx.logger.clone();
        thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                // One write per batch: under load, lines queue up and go out together.
                while let Ok(first) = access_rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 1024 {
                        match access_rx.try_recv() {
                            Ok(a) => batch.push(a),
                            Err(_) => break,
                        }
                    }
                    logger.app_batch(batch.into_iter().map(access_line).collect());
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the access log: {e}")))?;
    }
    let server = Arc::new(server);
    let mut workers = Vec::new();
    for i in 0..opts.workers {
        let (app, server) = (Arc::clone(&app), Arc::clone(&server));
        workers.push(
            thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&app, &server))
                .map_err(|e| Error::Internal(format!("cannot start an HTTP worker: {e}")))?,
        );
    }
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
    app.stop.store(true, Ordering::SeqCst);
    server.unblock();
    for w in workers {
        let _ = w.join();
    }
    ctx.logger
        .app(Level::Info, "http", "stopped; job state saved", Map::new());
    Ok(0)
}

fn access_line(a: Access) -> (Level, &'static str, String, Map<String, Value>) {
    let mut extra = Map::new();
    extra.insert("method".into(), a.method.clone().into());
    extra.insert("path".into(), a.path.clone().into());
    extra.insert("route".into(), a.route.into());
    extra.insert("status".into(), a.status.into());
    extra.insert("ms".into(), json!((a.ms * 1000.0).round() / 1000.0));
    if let Some(r) = a.role {
        extra.insert("role".into(), r.into());
    }
    let msg = format!("{} {} {} {:.1}ms", a.method, a.path, a.status, a.ms);
    (Level::Info, "http", msg, extra)
}

fn worker(app: &Arc<App>, server: &tiny_http::Server) {
    while !app.stop.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(req)) => handle(app, req),
            Ok(None) => {}
            Err(_) => break,
        }
    }
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
    p: &Principal,
) -> std::result::Result<Option<ratelimit::Admission>, Reply> {
    let Ok(pol) = ctx.policies() else {
        return Ok(None);
    };
    let pol = &*pol;
    let Some((_, limit, capacity)) = policy::limits_for(pol, &p.role, "")
        .into_iter()
        .find(|(k, _, _)| k.starts_with("role-"))
    else {
        return Ok(None);
    };
    let key = format!("principal-{}", &p.id[..p.id.len().min(32)]);
    let l = Limit {
        path: ctx.home.ratelimit_file(&key),
        limit,
        capacity,
    };
    let window = pol.rate_limiting.window_seconds.max(1) as f64;
    match ratelimit::admit(&[l], window, clock::now()) {
        Ok(adm) if !adm.allowed => Err(too_many(&adm, json!("principal"))),
        Ok(adm) => Ok(Some(adm)),
        Err(_) => Ok(None),
    }
}

/// The per-tool window (`tool-<name>`, shared with the CLI).
fn tool_limit(ctx: &Context, role: &str, tool: &str) -> std::result::Result<(), Reply> {
    let Ok(pol) = ctx.policies() else {
        return Ok(());
    };
    let pol = &*pol;
    let limits: Vec<Limit> = policy::limits_for(pol, role, tool)
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("tool-"))
        .map(|(k, limit, capacity)| Limit {
            path: ctx.home.ratelimit_file(&k),
            limit,
            capacity,
        })
        .collect();
    if limits.is_empty() {
        return Ok(());
    }
    let window = pol.rate_limiting.window_seconds.max(1) as f64;
    match ratelimit::admit(&limits, window, clock::now()) {
        Ok(adm) if !adm.allowed => Err(too_many(&adm, json!({"tool": tool}))),
        _ => Ok(()),
    }
}

fn peer_is_loopback(req: &Request) -> bool {
    req.remote_addr()
        .is_some_and(|a: &SocketAddr| a.ip().is_loopback())
}

fn handle(app: &Arc<App>, mut req: Request) {
    let t0 = Instant::now();
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let routed = route(req.method(), &path);
    let tpl = match &routed {
        Routed::Found(_, t) | Routed::Method(_, t) => *t,
        Routed::NotFound => "unmatched",
    };
    let mut role = None;
    let outcome = dispatch(app, &mut req, routed, &query, &mut role);
    let status = match outcome {
        Outcome::Reply(r) => {
            let status = r.status;
            respond(req, r);
            status
        }
        Outcome::Stream(src) => start_stream(app, req, *src),
    };
    let secs = t0.elapsed().as_secs_f64();
    app.metrics.request(&method, tpl, status, secs);
    let rec = Access {
        method,
        path,
        route: tpl,
        status,
        ms: secs * 1000.0,
        role,
    };
    if app.access.try_send(rec).is_err() {
        app.metrics
            .access_log_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn respond(req: Request, r: Reply) {
    let mut resp = Response::from_data(r.body).with_status_code(r.status);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    };
    add("Content-Type", r.content_type);
    for (k, v) in http::SECURITY_HEADERS {
        add(k, v);
    }
    for (k, v) in &r.headers {
        add(k, v);
    }
    let _ = req.respond(resp);
}

struct StreamSlot<'a>(&'a AtomicUsize);

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start_stream(app: &Arc<App>, req: Request, src: sse::Source) -> u16 {
    if app.streams.fetch_add(1, Ordering::SeqCst) >= app.opts.max_streams {
        app.streams.fetch_sub(1, Ordering::SeqCst);
        respond(
            req,
            error(503, "too many open streams; try again later").header("Retry-After", "5"),
        );
        return 503;
    }
    let app2 = Arc::clone(app);
    let spawned = thread::Builder::new().name("sse".into()).spawn(move || {
        let _slot = StreamSlot(&app2.streams);
        let extra: Vec<(String, String)> = http::SECURITY_HEADERS
            .iter()
            .filter(|(k, _)| *k != "Cache-Control")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut w = req.into_writer();
        if w.write_all(sse::head(&extra).as_bytes()).is_err() {
            return;
        }
        let events = jobs::events_path(&app2.ctx, &src.job.id);
        let _ = sse::stream(w, &app2.jobs, events, src);
    });
    if spawned.is_err() {
        app.streams.fetch_sub(1, Ordering::SeqCst);
        return 500;
    }
    200
}

fn dispatch(
    app: &Arc<App>,
    req: &mut Request,
    routed: Routed,
    query: &str,
    role_out: &mut Option<String>,
) -> Outcome {
    let host = http::header(req, "Host").map(str::to_string);
    if let Some(why) = auth::cross_origin(
        http::header(req, "Origin"),
        http::header(req, "Sec-Fetch-Site"),
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
                    .authenticate(http::header(req, "Authorization"))
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
                    .authenticate(http::header(req, "Authorization"))
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
        match app.keys.authenticate(http::header(req, "Authorization")) {
            Some(p) => p,
            None => return unauthorized().into(),
        }
    } else if local_ok(req, &host) {
        auth::local()
    } else {
        return error(403, "API keys are required for remote access").into();
    };
    *role_out = Some(principal.role.clone());
    let adm = match principal_limit(&app.ctx, &principal) {
        Ok(a) => a,
        Err(r) => return r.into(),
    };
    let out = match handle_route(app, req, route, query, &principal) {
        Ok(o) => o,
        Err(r) => Outcome::Reply(r),
    };
    match (out, adm) {
        (Outcome::Reply(r), Some(adm)) => Outcome::Reply(rate_headers(r, &adm)),
        (o, _) => o,
    }
}

fn local_ok(req: &Request, host: &Option<String>) -> bool {
    peer_is_loopback(req) && host.as_deref().is_some_and(auth::is_loopback_host)
}

fn unauthorized() -> Reply {
    error(401, "Unauthorized").header("WWW-Authenticate", "Bearer")
}

fn public(app: &App, route: &Route) -> Reply {
    match route {
        Route::Ping => Reply::json(
            200,
            &json!({"status": "ok", "service": "gathm-api", "version": env!("CARGO_PKG_VERSION")}),
        ),
        Route::Healthz => Reply::json(200, &json!({"status": "ok"})),
        Route::Readyz if app.ready.load(Ordering::SeqCst) => {
            Reply::json(200, &json!({"status": "ready"}))
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
    req: &mut Request,
    route: Route,
    query: &str,
    p: &Principal,
) -> HResult {
    let ctx = &*app.ctx;
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
        Route::Execute(name) => execute(app, req, &name, p),
        Route::Health => {
            permit(ctx, p, Action::Healthcheck)?;
            let tools = ctx.search.scan().tools;
            Ok(to_json(&health::check_all(ctx, &tools)).into())
        }
        Route::HealthTool(name) => {
            permit(ctx, p, Action::Healthcheck)?;
            valid_tool(&name)?;
            let t = ops::find(ctx, &name).map_err(op_error)?;
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
        Route::AgentParallel => agent_parallel(app, req, p),
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
            let list = app.jobs.list(&p.id, is_admin(ctx, &p.role), status);
            let v: Vec<Value> = list.iter().map(jobs::Job::public).collect();
            Ok(to_json(&json!({"count": v.len(), "jobs": v})).into())
        }
        Route::JobGet(id) => {
            permit(ctx, p, Action::Discover)?;
            let job = app
                .jobs
                .get(&id, &p.id, is_admin(ctx, &p.role))
                .ok_or_else(job_not_found)?;
            Ok(to_json(&job.public()).into())
        }
        Route::JobCancel(id) => {
            permit(ctx, p, Action::Execute)?;
            match app.jobs.cancel(&id, &p.id, is_admin(ctx, &p.role)) {
                None => Err(job_not_found()),
                Some(Cancelled::Now(job)) => Ok(to_json(&job.public()).into()),
                Some(Cancelled::AlreadyTerminal(job)) => {
                    let mut v = job.public();
                    if let Value::Object(o) = &mut v {
                        o.insert("detail".into(), "Job already in terminal state".into());
                    }
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
                Ok(job) => Ok(to_json(&job.public()).into()),
                Err(ApproveError::NotFound) => Err(job_not_found()),
                Err(ApproveError::NotAwaiting(status)) => Err(error_with(
                    409,
                    "job is not awaiting approval",
                    json!({"id": id, "status": status}),
                )),
            }
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

fn job_not_found() -> Reply {
    error(404, "Job not found")
}

fn metrics_text(app: &App) -> String {
    let (queued, running, by) = app.jobs.counts();
    let mut gauges = vec![
        Gauge {
            name: "gathm_jobs_queue_depth",
            help: "Jobs waiting to run.",
            samples: vec![(vec![], queued as f64)],
        },
        Gauge {
            name: "gathm_jobs_running",
            help: "Jobs running now.",
            samples: vec![(vec![], running as f64)],
        },
        Gauge {
            name: "gathm_jobs",
            help: "Stored jobs by status.",
            samples: by
                .into_iter()
                .map(|(s, n)| (vec![("status", s.to_string())], n as f64))
                .collect(),
        },
        Gauge {
            name: "gathm_sse_streams",
            help: "Open SSE streams.",
            samples: vec![(vec![], app.streams.load(Ordering::SeqCst) as f64)],
        },
        Gauge {
            name: "gathm_ready",
            help: "1 while accepting work, 0 while shutting down.",
            samples: vec![(
                vec![],
                if app.ready.load(Ordering::SeqCst) {
                    1.0
                } else {
                    0.0
                },
            )],
        },
    ];
    if let Ok(b) = ops::breaker_status(&app.ctx, None) {
        gauges.push(Gauge {
            name: "gathm_breaker_state",
            help: "Circuit-breaker state per tool (1 for the current state).",
            samples: b
                .into_iter()
                .flat_map(|b| {
                    ["closed", "half_open", "open"].into_iter().map(move |s| {
                        (
                            vec![("tool", b.tool.clone()), ("state", s.to_string())],
                            if b.state == s { 1.0 } else { 0.0 },
                        )
                    })
                })
                .collect(),
        });
    }
    app.metrics.render(&gauges)
}

fn execute(app: &Arc<App>, req: &mut Request, name: &str, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    valid_tool(name)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, true)?;
    let args = http::args_field(&o)?;
    let timeout = http::timeout_field(&o)?;
    if !app.ready.load(Ordering::SeqCst) {
        return Err(error(503, "shutting down").header("Retry-After", "5"));
    }
    let pol = ctx
        .policies()
        .map_err(|e| error(500, &format!("invalid policies: {e}")))?;
    let pol = &*pol;
    if policy::decide(pol, &p.role, name, Action::Execute, false).allowed() {
        tool_limit(ctx, &p.role, name)?;
    }
    let mut rr = RunRequest::new(
        name,
        args.into_iter().map(OsString::from).collect(),
        &p.role,
    );
    rr.timeout = timeout;
    rr.rate_limit = false;
    rr.actor = "http".into();
    let n = app.next_run.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut m) = app.sync_runs.lock() {
        m.insert(n, rr.cancel.clone());
    }
    let env = run::run(ctx, &rr);
    if let Ok(mut m) = app.sync_runs.lock() {
        m.remove(&n);
    }
    app.metrics.execution(&env);
    Ok(envelope_reply(&env).into())
}

/// The HTTP status of a run: refusals map to 403/404/429, a configuration
/// problem to 500, everything else (a tool that ran and failed included) 200.
fn envelope_reply(env: &Envelope) -> Reply {
    let (status, err) = match env.reason {
        Some(Reason::Denied) => (403, Some("denied")),
        Some(Reason::ApprovalRequired) => (403, Some("approval_required")),
        Some(Reason::RateLimited) => (429, Some("rate_limited")),
        Some(Reason::NotFound) => (404, Some("not_found")),
        None if env.exit_code == i32::from(code::DATA_ERR) && env.attempts.is_empty() => {
            (500, Some("invalid_configuration"))
        }
        _ => (200, None),
    };
    let Some(err) = err else {
        return Reply::json(200, env);
    };
    let mut v = serde_json::to_value(env).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("error".into(), err.into());
    }
    let mut r = Reply::json(status, &v);
    if let Some(wait) = env.retry_after.filter(|_| status == 429) {
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

fn agent_parallel(app: &Arc<App>, req: &mut Request, p: &Principal) -> HResult {
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
        role: p.role.clone(),
        approved: false,
        cancel: Cancel::new(),
        progress: false,
        actor: "http:parallel".into(),
    };
    let results = with_sync_cancel(app, &opts.cancel, || parallel::run_all(ctx, &items, &opts))?;
    for env in &results {
        app.metrics.execution(env);
    }
    let code = parallel::exit_code(&results);
    Ok(to_json(&json!({
        "status": if code == 0 { "success" } else { "error" },
        "exit_code": code,
        "count": results.len(),
        "results": results,
    }))
    .into())
}

fn agent_chain(app: &Arc<App>, req: &mut Request, p: &Principal) -> HResult {
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
    }
    chain::check(&steps).map_err(|e| error(400, &e.to_string()))?;
    let opts = chain::Options {
        role: p.role.clone(),
        actor: "http:chain".into(),
        timeout: http::timeout_field(&o)?,
        ..chain::Options::default()
    };
    let result = with_sync_cancel(app, &opts.cancel, || chain::run(ctx, &steps, &opts))?;
    for env in &result.steps {
        app.metrics.execution(env);
    }
    Ok(to_json(&result).into())
}

fn submit(app: &Arc<App>, req: &mut Request, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    permit(ctx, p, Action::Execute)?;
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
        return submit_pipeline(app, p, &o, cb);
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
) -> HResult {
    let ctx = &*app.ctx;
    let def = o.get("pipeline").cloned().unwrap_or(Value::Null);
    let pl: crate::pipeline::Pipeline =
        serde_json::from_value(def.clone()).map_err(|e| error(400, &format!("pipeline: {e}")))?;
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
        Ok(job) => Ok(Reply::json(202, &job.public())
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
        Err(SubmitError::Store(e)) => Err(error(500, &format!("could not store the job: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> String {
        match route(&m, p) {
            Routed::Found(r, t) => format!("{r:?} {t}"),
            Routed::NotFound => "404".into(),
            Routed::Method(a, _) => format!("405 {a}"),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(r(Method::Get, "/api/v1/ping"), "Ping /api/v1/ping");
        assert_eq!(r(Method::Get, "/api/v1/ping/"), "Ping /api/v1/ping");
        assert_eq!(r(Method::Post, "/api/v1/ping"), "405 GET");
        assert_eq!(
            r(Method::Post, "/api/v1/tools/dns/execute"),
            "Execute(\"dns\") /api/v1/tools/{name}/execute"
        );
        assert_eq!(r(Method::Put, "/api/v1/jobs/x"), "405 GET, DELETE");
        assert_eq!(r(Method::Get, "/nope"), "404");
        assert_eq!(
            r(Method::Get, "/api/v1/jobs/abc/stream"),
            "JobStream(\"abc\") /api/v1/jobs/{id}/stream"
        );
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
