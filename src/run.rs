//! The run operation (PRODUCT.md §3): resolve, policy, rate limit, cache,
//! breaker, execute with retries, fallbacks, cache store, logs. Used by the
//! CLI, the HTTP server, jobs, parallel, chain and pipelines alike.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{Attempt, AttemptOutcome, Envelope, Reason, RunStatus};
use crate::breaker::{self, Gate};
use crate::cache;
use crate::clock;
use crate::config::Context;
use crate::error::code;
use crate::fallback::{Hop, Walk};
use crate::logs::{self, Level};
use crate::manifest::CacheSetting;
use crate::policy::{self, Action, Decision, Policies, Verdict};
use crate::ratelimit::Limit;
use crate::registry::Tool;
use crate::retry;
use crate::runner::{self, Cancel, Outcome, Sink, Spec, Status, Stdin};
use crate::state::groups;

/// Asks a person whether a tool that needs approval may run.
pub type Prompt = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A request to run one tool.
#[derive(Clone)]
pub struct RunRequest {
    /// Tool name.
    pub tool: String,
    /// Arguments, passed as they are.
    pub args: Vec<OsString>,
    /// Role for policy decisions.
    pub role: String,
    /// `--approve` (or an approved job).
    pub approved: bool,
    /// Ask at a terminal when approval is needed.
    pub prompt: Option<Prompt>,
    /// Look up and store in the cache (`--no-cache` clears it).
    pub use_cache: bool,
    /// Skip the lookup but store the result (`--refresh`).
    pub refresh: bool,
    /// Override the timeout (seconds).
    pub timeout: Option<f64>,
    /// Where stdin comes from.
    pub stdin: Stdin,
    /// Live output (text mode); `None` only captures.
    pub sink: Option<Arc<dyn Sink>>,
    /// Print fallback and breaker notes on stderr.
    pub notes: bool,
    /// Cancel token.
    pub cancel: Cancel,
    /// Apply rate limits (the top-level request of a user or client).
    pub rate_limit: bool,
    /// Extra environment for the tool.
    pub env: Vec<(OsString, OsString)>,
    /// How to wait for a concurrency-group slot (`--no-wait`, `--wait-timeout`).
    pub group_wait: GroupWait,
    /// Who asked (for the audit log): `cli`, `http`, `job:<id>`, ...
    pub actor: String,
    /// Where the `artifacts/` folder of an isolated workspace goes when the
    /// run ends (a job's directory); `None`: it stays in the workspace.
    pub artifacts_to: Option<std::path::PathBuf>,
    /// The tool, when the caller has just looked it up (`gathm serve` does,
    /// to choose how to run it); `None`: the run looks it up.
    pub resolved: Option<Arc<Tool>>,
    /// The policies, when the caller has just loaded them (`gathm serve`
    /// loads them once per request); `None`: the run loads them.
    pub policies: Option<Arc<Policies>>,
}

impl RunRequest {
    /// A request with defaults: admin-free of prompts, cache on, null stdin, captured.
    pub fn new(tool: &str, args: Vec<OsString>, role: &str) -> RunRequest {
        RunRequest {
            tool: tool.to_string(),
            args,
            role: role.to_string(),
            approved: false,
            prompt: None,
            use_cache: true,
            refresh: false,
            timeout: None,
            stdin: Stdin::Null,
            sink: None,
            notes: false,
            cancel: Cancel::new(),
            rate_limit: true,
            env: Vec::new(),
            group_wait: GroupWait::default(),
            actor: "cli".into(),
            artifacts_to: None,
            resolved: None,
            policies: None,
        }
    }
}

/// How a run waits for a concurrency-group slot.
#[derive(Debug, Clone, Default)]
pub struct GroupWait {
    /// Refuse at once (exit 75) instead of waiting.
    pub no_wait: bool,
    /// Give up after this many seconds (exit 75).
    pub timeout: Option<f64>,
}

/// What every member run of a group (`parallel`, `chain`, `pipeline`, a
/// job) shares: who asks, with which role, whether approval was given, and
/// the one cancel token that stops the whole group.
#[derive(Debug, Clone)]
pub struct Member {
    /// Role for policy decisions.
    pub role: String,
    /// Approve tools that need approval.
    pub approved: bool,
    /// Cancelling it kills every running member's process group and starts no more.
    pub cancel: Cancel,
    /// Who asked, for the audit log (`parallel`, `chain`, `pipeline:<file>`,
    /// `job:<id>`, `http:parallel`, ...).
    pub actor: String,
}

impl Member {
    /// The admin role, no approval, a fresh cancel token, `actor`.
    pub fn new(actor: impl Into<String>) -> Member {
        Member {
            role: "admin".into(),
            approved: false,
            cancel: Cancel::new(),
            actor: actor.into(),
        }
    }

    /// The request to run `tool` with `args` as a member of this group.
    pub fn request(&self, tool: &str, args: &[String]) -> RunRequest {
        let mut req = RunRequest::new(tool, args.iter().map(OsString::from).collect(), &self.role);
        req.approved = self.approved;
        req.cancel = self.cancel.clone();
        req.actor = self.actor.clone();
        req
    }
}

fn lossy(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn note(req: &RunRequest, msg: &str) {
    if req.notes {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("gathm: {msg}");
        }
    }
}

struct Run<'a> {
    ctx: &'a Context,
    req: &'a RunRequest,
    run_id: String,
    started: f64,
    t0: Instant,
    attempts: Vec<Attempt>,
    /// Audit lines waiting to be appended (JSON lines).
    audit: Vec<u8>,
    args: Vec<String>,
    /// The policies, loaded once per run (`None`: the file is invalid).
    policies: Option<Arc<Policies>>,
    /// State that could not be read or written (degraded, not refused):
    /// the part and the first error.
    warnings: Vec<(&'static str, String)>,
    /// Isolated workspaces created so far (names the next one).
    workspaces: u32,
    /// The latest isolated workspace and whether its try succeeded; settled
    /// when the next one starts or when the run ends.
    workspace: Option<(crate::workspace::Workspace, bool)>,
}

impl Run<'_> {
    fn envelope(&self, status: RunStatus, reason: Option<Reason>, exit_code: i32) -> Envelope {
        Envelope {
            tool: self.req.tool.clone(),
            run_id: self.run_id.clone(),
            status,
            reason,
            exit_code,
            output: String::new(),
            error: String::new(),
            duration_ms: self.t0.elapsed().as_millis() as u64,
            cached: false,
            attempts: self.attempts.clone(),
            timestamp: clock::rfc3339(self.started),
            served_by: None,
            message: None,
            rule: None,
            retry_after: None,
            warnings: Vec::new(),
        }
    }

    /// Record a state problem: the breaker, cache and logs degrade. A run
    /// reports them as one warning naming the first path and OS error and
    /// every part that went without its state.
    fn warn(&mut self, part: &'static str, err: &crate::error::Error) {
        if !self.warnings.iter().any(|w| w.0 == part) {
            self.warnings.push((part, err.to_string()));
        }
    }

    /// The one warning of this run, if any state was unavailable.
    fn warning(&self) -> Option<String> {
        let (_, first) = self.warnings.first()?;
        let parts: Vec<&str> = self.warnings.iter().map(|w| w.0).collect();
        Some(format!(
            "state under GATHM_HOME is unavailable ({first}); this run went without: {}",
            parts.join(", ")
        ))
    }

    /// Refuse because a control's state is unavailable (fail closed).
    fn refuse_state(&self, exit: u8, err: &crate::error::Error, why: &str) -> Envelope {
        let reason = if err.is_storage_full() {
            Reason::StorageFull
        } else {
            Reason::StateUnavailable
        };
        self.refuse(reason, exit, format!("{why}: {err}"))
    }

    fn refuse(&self, reason: Reason, exit: u8, message: String) -> Envelope {
        let mut e = self.envelope(RunStatus::Error, Some(reason), i32::from(exit));
        e.error = format!("gathm: {message}\n");
        e.message = Some(message);
        e
    }

    fn decision_record(&mut self, tool: &str, d: &Decision) {
        let Some(p) = &self.policies else { return };
        if !p.audit.log_agent_decisions && d.allowed() {
            return;
        }
        clock::with_rfc3339(clock::now(), |ts| {
            logs::DecisionRecord {
                action: "policy_decision",
                actor: &self.req.actor,
                decision: d.decision,
                permission: "tool:execute",
                role: &self.req.role,
                rule: &d.rule,
                run_id: &self.run_id,
                timestamp: ts,
                tool,
            }
            .push(&mut self.audit);
        });
    }

    /// Settle the latest isolated workspace (its artifacts go to
    /// `artifacts_to` when `last`): kept or removed by its `keep`.
    fn settle_workspace(&mut self, last: bool) {
        let Some((ws, success)) = self.workspace.take() else {
            return;
        };
        let to = if last {
            self.req.artifacts_to.as_deref()
        } else {
            None
        };
        match crate::workspace::settle(ws, success, to) {
            Ok(Some(dir)) => note(self.req, &format!("workspace kept: {}", dir.display())),
            Ok(None) => {}
            Err(e) => self.warn("workspace", &e),
        }
        if last {
            // Kept workspaces of earlier runs past GATHM_WORKSPACE_TTL go
            // now (only runs of isolated tools pay for the listing).
            let ttl = crate::workspace::ttl();
            if let Err(e) = crate::workspace::sweep(&self.ctx.home.work(), clock::now(), ttl) {
                self.warn("workspace", &e);
            }
        }
    }

    fn finish(mut self, mut env: Envelope) -> Envelope {
        self.settle_workspace(true);
        env.duration_ms = self.t0.elapsed().as_millis() as u64;
        env.attempts = std::mem::take(&mut self.attempts);
        let log_exec = self.policies.as_ref().is_none_or(|p| {
            p.audit.log_all_executions || (p.audit.log_failures && env.status == RunStatus::Error)
        });
        if log_exec {
            clock::with_rfc3339(clock::now(), |ts| {
                logs::ExecuteRecord {
                    action: "tool_execute",
                    actor: &self.req.actor,
                    args: &self.args,
                    cached: env.cached,
                    duration_ms: env.duration_ms,
                    exit_code: env.exit_code,
                    reason: env.reason,
                    role: &self.req.role,
                    run_id: &env.run_id,
                    served_by: env.served_by.as_deref(),
                    status: env.status,
                    timestamp: ts,
                    tool: &env.tool,
                }
                .push(&mut self.audit);
            });
        }
        if !self.audit.is_empty()
            && let Err(e) = self
                .ctx
                .logger
                .try_audit_lines(&std::mem::take(&mut self.audit))
        {
            self.warn("audit log", &e);
        }
        // Every execution is in audit.log and metrics.log already; gathm.log
        // gets successes only at DEBUG (one file append less per run).
        let level = if env.status == RunStatus::Success {
            Level::Debug
        } else {
            Level::Warn
        };
        if self.ctx.logger.enabled(level) {
            let mut extra = serde_json::Map::new();
            extra.insert("tool".into(), env.tool.clone().into());
            extra.insert("run_id".into(), env.run_id.clone().into());
            extra.insert("exit_code".into(), env.exit_code.into());
            self.ctx.logger.app(
                level,
                "run",
                &format!(
                    "run {} exited {} in {} ms{}",
                    env.tool,
                    env.exit_code,
                    env.duration_ms,
                    env.reason
                        .map(|r| format!(
                            " ({})",
                            serde_json::to_value(r)
                                .unwrap_or_default()
                                .as_str()
                                .unwrap_or("")
                        ))
                        .unwrap_or_default()
                ),
                extra,
            );
        }
        env.warnings = self.warning().into_iter().collect();
        env
    }
}

/// How a run starts its processes and waits between retries: on the
/// calling thread ([`Blocking`]: the CLI, jobs, parallel, chain, MCP) or on
/// a tokio reactor ([`Reactor`]: `gathm serve`'s sync executes). The run
/// logic ([`run_with`]) is the same for both.
pub trait Exec: Sync {
    /// Run one process to its end ([`runner::run`] or [`runner::run_async`]).
    fn launch(
        &self,
        spec: &Spec,
        sink: Option<Arc<dyn Sink>>,
        cancel: &Cancel,
    ) -> impl Future<Output = Outcome> + Send;
    /// Wait `seconds` before a retry; `false` when cancelled or interrupted.
    fn pause(&self, seconds: f64, cancel: &Cancel) -> impl Future<Output = bool> + Send;
}

/// Runs block the calling thread (the futures are ready when returned).
pub struct Blocking;

impl Exec for Blocking {
    fn launch(
        &self,
        spec: &Spec,
        sink: Option<Arc<dyn Sink>>,
        cancel: &Cancel,
    ) -> impl Future<Output = Outcome> + Send {
        std::future::ready(runner::run(spec, sink, cancel))
    }
    fn pause(&self, seconds: f64, cancel: &Cancel) -> impl Future<Output = bool> + Send {
        std::future::ready(retry::sleep(seconds, cancel))
    }
}

/// Runs are awaited on the current tokio runtime (I/O and time enabled):
/// no thread is blocked while a tool runs or a retry waits.
pub struct Reactor;

impl Exec for Reactor {
    fn launch(
        &self,
        spec: &Spec,
        sink: Option<Arc<dyn Sink>>,
        cancel: &Cancel,
    ) -> impl Future<Output = Outcome> + Send {
        runner::run_async(spec, sink, cancel)
    }
    fn pause(&self, seconds: f64, cancel: &Cancel) -> impl Future<Output = bool> + Send {
        retry::pause(seconds, cancel)
    }
}

/// How long a result of `tool` is cached (seconds); `None`: not cached.
/// Opt-in: only a tool with a `cache` block is cached, unless
/// GATHM_CACHE_DEFAULT_TTL is set in the environment (cache everything).
fn cache_ttl(ctx: &Context, tool: &Tool) -> Option<u64> {
    match tool.manifest.cache {
        Some(CacheSetting::Enabled(false)) => None,
        Some(CacheSetting::Ttl { ttl }) => Some(ttl),
        Some(CacheSetting::Enabled(true)) => Some(ctx.settings.cache_ttl),
        None if ctx.settings.cache_everything => Some(ctx.settings.cache_ttl),
        None => None,
    }
    .filter(|t| *t > 0 && ctx.settings.cache_enabled)
}

/// Whether a run of `tool` does nothing slow besides its processes and
/// retry waits, so that [`Reactor`] may drive it on an async worker: no
/// concurrency group (a slot may be waited for), no isolated workspace (a
/// seed is copied), no cache (an entry may be as large as the output
/// limit), no fallbacks (they may need any of these). State and logs are
/// local files then (the caller checks the backend).
pub fn awaitable(ctx: &Context, tool: &Tool) -> bool {
    let m = &tool.manifest;
    m.concurrency_group.is_none()
        && m.max_concurrency.is_none()
        && m.workspace().is_none()
        && m.fallbacks().is_empty()
        && cache_ttl(ctx, tool).is_none()
}

/// Run a tool through the whole pipeline and return its envelope, blocking
/// the calling thread.
pub fn run(ctx: &Context, req: &RunRequest) -> Envelope {
    pollster::block_on(run_with(ctx, req, &Blocking))
}

/// [`run`], with processes started and awaited through `exec`.
pub async fn run_with<E: Exec>(ctx: &Context, req: &RunRequest, exec: &E) -> Envelope {
    let mut r = Run {
        ctx,
        req,
        run_id: clock::new_id(),
        started: clock::now(),
        t0: Instant::now(),
        attempts: Vec::new(),
        // A decision and an execution line fit without growing it.
        audit: Vec::with_capacity(1024),
        args: lossy(&req.args),
        policies: None,
        warnings: Vec::new(),
        workspaces: 0,
        workspace: None,
    };
    // 0. Arguments the OS cannot pass (a NUL byte) are a usage error before
    // anything runs; the breaker never counts them.
    if req.args.iter().any(|a| a.as_encoded_bytes().contains(&0)) {
        let mut e = r.envelope(RunStatus::Error, None, i32::from(code::USAGE));
        let msg = "an argument contains a NUL byte, which cannot be passed to a program";
        e.error = format!("gathm: {msg}\n");
        e.message = Some(msg.into());
        return r.finish(e);
    }
    // 1. Resolve.
    let found = match &req.resolved {
        Some(t) => Ok(Some(Arc::clone(t))),
        None => ctx.search.find_shared(&req.tool),
    };
    let tool = match found {
        Ok(Some(t)) => t,
        Ok(None) => {
            let msg = ctx.search.not_found_message(&req.tool);
            let e = r.refuse(Reason::NotFound, code::NOT_FOUND, msg);
            return r.finish(e);
        }
        Err(d) => {
            let mut e = r.envelope(RunStatus::Error, None, i32::from(code::DATA_ERR));
            e.error = format!("gathm: invalid manifest: {d}\n");
            e.message = Some(format!("invalid manifest: {d}"));
            return r.finish(e);
        }
    };
    // A manifest that `validate` rejects is not run (warnings are fine).
    if let Some(d) = ctx.search.first_error(&tool) {
        let m = format!(
            "invalid manifest {}: {}; not running it (`gathm validate {}` shows every problem)",
            tool.manifest_path.display(),
            d.message,
            tool.name
        );
        let mut e = r.envelope(RunStatus::Error, None, i32::from(code::DATA_ERR));
        e.error = format!("gathm: {m}\n");
        e.message = Some(m);
        return r.finish(e);
    }
    // 2. Policy and argument validation.
    let policies = match req.policies.clone().map_or_else(|| ctx.policies(), Ok) {
        Ok(p) => {
            r.policies = Some(Arc::clone(&p));
            p
        }
        Err(err) => {
            let mut e = r.envelope(RunStatus::Error, None, i32::from(code::DATA_ERR));
            e.error = format!("gathm: invalid policies: {err}\n");
            e.message = Some(format!("invalid policies: {err}"));
            return r.finish(e);
        }
    };
    let policies = &*policies;
    if let Some(e) = check_policy(&mut r, policies, &tool.name) {
        return r.finish(e);
    }
    // 3. Rate limits.
    if req.rate_limit {
        let limits: Vec<Limit> = policy::limits_for(policies, &req.role, &tool.name)
            .into_iter()
            .map(|(key, limit, capacity)| Limit {
                key,
                limit,
                capacity,
            })
            .collect();
        let window = policies.rate_limiting.window_seconds.max(1) as f64;
        match ctx.shared().admit(&limits, window) {
            Ok(adm) if !adm.allowed => {
                let wait = adm.retry_after.ceil();
                let mut e = r.refuse(
                    Reason::RateLimited,
                    code::TEMP_FAIL,
                    format!(
                        "rate limited ({} per {}s for {}); try again in {wait:.0} s",
                        adm.limit,
                        window,
                        adm.key.unwrap_or_default()
                    ),
                );
                e.retry_after = Some(wait);
                return r.finish(e);
            }
            Ok(_) => {}
            Err(err) => {
                // Fail closed: a limit that cannot be counted is not waived.
                let e = r.refuse_state(
                    code::TEMP_FAIL,
                    &err,
                    "refused: the rate-limit window cannot be read and written, so the limit cannot be enforced",
                );
                return r.finish(e);
            }
        }
    }
    // A required audit: the decision is on record before the tool runs.
    if policies.audit.required {
        let mut lines = std::mem::take(&mut r.audit);
        logs::push_audit_value(
            &mut lines,
            json!({
                "action": "execution_started",
                "actor": req.actor,
                "role": req.role,
                "tool": tool.name,
                "args": r.args,
                "run_id": r.run_id,
            }),
            &clock::rfc3339(clock::now()),
        );
        if let Err(err) = ctx.logger.try_audit_lines(&lines) {
            let e = r.refuse_state(
                code::NO_PERM,
                &err,
                "refused: audit.required is set and the audit log cannot be appended",
            );
            return r.finish(e);
        }
    }
    // 4. Cache.
    let ttl = cache_ttl(ctx, &tool).filter(|_| req.use_cache);
    let cache_path = ttl.map(|_| {
        let (program, rest) = tool.program();
        let exe = cache::exe_identity(
            std::iter::once(program.as_os_str()).chain(rest.iter().map(|a| a.as_os_str())),
        );
        let key = cache::key(&tool.name, &tool.digest, &exe, &req.args);
        cache::entry_path(&ctx.home.cache_dir_of(&tool.name), &key)
    });
    let hit = match (&cache_path, req.refresh) {
        (Some(path), false) => match cache::get(path, clock::now()) {
            Ok(hit) => hit,
            Err(e) => {
                r.warn("cache", &e);
                None
            }
        },
        _ => None,
    };
    if let Some(hit) = hit {
        let age = (clock::now() - hit.header.created_at).max(0.0);
        note(
            req,
            &format!("cached result from {age:.0} s ago (--refresh to run again)"),
        );
        if let Some(s) = &req.sink {
            s.stdout(&hit.stdout);
            s.stderr(&hit.stderr);
        }
        r.attempts.push(Attempt {
            tool: tool.name.clone(),
            exit_code: Some(hit.header.exit_code),
            duration_ms: 0,
            outcome: AttemptOutcome::Cached,
            try_number: 1,
            rule: None,
            note: None,
        });
        let status = if hit.header.exit_code == 0 {
            RunStatus::Success
        } else {
            RunStatus::Error
        };
        let mut e = r.envelope(status, None, hit.header.exit_code);
        e.cached = true;
        e.output = String::from_utf8_lossy(&hit.stdout).into_owned();
        e.error = String::from_utf8_lossy(&hit.stderr).into_owned();
        let appended = clock::with_rfc3339(clock::now(), |ts| {
            ctx.logger.try_metric_record(&logs::MetricRecord {
                cached: Some(true),
                duration_ms: 0,
                exit_code: hit.header.exit_code,
                outcome: None,
                run_id: &r.run_id,
                status: logs::MetricRecord::status_of(hit.header.exit_code),
                timestamp: ts,
                tool: &tool.name,
                try_number: None,
            })
        });
        if let Err(err) = appended {
            r.warn("metrics log", &err);
        }
        return r.finish(e);
    }
    // 4b. Concurrency groups: held until the run ends (fallbacks run in the
    // slot of the tool asked for). A cache hit above needs no slot.
    let _slots = match group_slots(&r, &tool) {
        Ok(s) => s,
        Err(e) => return r.finish(*e),
    };
    // 5–7. Breaker, execution, fallbacks.
    let env = walk(&mut r, &tool, exec).await;
    // 8. Cache a success of the tool asked for (never a fallback's answer).
    if env.status == RunStatus::Success
        && env.served_by.is_none()
        && let Some(path) = &cache_path
        && let Some(last) = r.attempts.last()
        && last.outcome == AttemptOutcome::Success
    {
        let stored = cache::put(
            path,
            &cache::Entry {
                header: cache::Header {
                    v: 1,
                    tool: tool.name.clone(),
                    args: r.args.clone(),
                    created_at: clock::now(),
                    ttl: ttl.unwrap_or(0),
                    exit_code: 0,
                    stdout_len: env.output.len(),
                    stderr_len: env.error.len(),
                },
                stdout: env.output.clone().into_bytes(),
                stderr: env.error.clone().into_bytes(),
            },
        );
        if let Err(e) = stored {
            r.warn("cache", &e);
        }
    }
    r.finish(env)
}

/// Policy decision + argument validation for one tool; `Some` when refused.
/// The concurrency groups of `tool`: each `concurrency_group` of its
/// manifest (defined in `gathm.yaml`), plus `tool.NAME` for a manifest's
/// `max_concurrency`. Acquired in name order (no deadlock between runs of
/// tools that share several groups); a refusal is exit 75, and a group that
/// cannot be enforced refuses the run (fail closed).
fn group_slots(r: &Run<'_>, tool: &Tool) -> Result<Vec<groups::Slot>, Box<Envelope>> {
    let names = tool
        .manifest
        .concurrency_group
        .as_ref()
        .map(|g| g.to_vec())
        .unwrap_or_default();
    if names.is_empty() && tool.manifest.max_concurrency.is_none() {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<(String, u32, u32)> = Vec::new();
    if !names.is_empty() {
        let cfg = match r.ctx.config() {
            Ok(Some((_, c))) => Some(c),
            Ok(None) => None,
            Err(d) => {
                let first = d.first().map(ToString::to_string).unwrap_or_default();
                return Err(Box::new(r.refuse(
                    Reason::ConcurrencyLimit,
                    code::DATA_ERR,
                    format!(
                        "{} uses concurrency groups, but gathm.yaml is invalid: {first}",
                        tool.name
                    ),
                )));
            }
        };
        for n in names {
            match cfg.and_then(|c| c.groups.get(&n)) {
                Some(g) => wanted.push((n, g.max_concurrent, g.queue_size)),
                None => {
                    return Err(Box::new(r.refuse(
                        Reason::ConcurrencyLimit,
                        code::DATA_ERR,
                        format!(
                            "{} names concurrency group {n:?}, which gathm.yaml does not define",
                            tool.name
                        ),
                    )));
                }
            }
        }
    }
    if let Some(max) = tool.manifest.max_concurrency {
        wanted.push((format!("tool.{}", tool.name), max, 1000));
    }
    wanted.sort();
    wanted.dedup_by(|a, b| a.0 == b.0);
    let shared = r.ctx.shared();
    let wait = groups::Wait {
        no_wait: r.req.group_wait.no_wait,
        timeout: r.req.group_wait.timeout,
        cancel: r.req.cancel.clone(),
    };
    let mut held = Vec::new();
    for (name, max, queue) in wanted {
        let req = r.req;
        let mut on_wait = || {
            note(
                req,
                &format!("waiting for a slot in concurrency group {name:?} ({max} at once)"),
            );
        };
        let spec = crate::state::shared::GroupSpec {
            name: name.clone(),
            max,
            queue,
        };
        match shared.group_acquire(&spec, &wait, &mut on_wait) {
            Ok(s) => held.push(s),
            Err(groups::Refusal::Cancelled) => {
                return Err(Box::new(r.refuse(
                    Reason::Interrupted,
                    code::INTERRUPTED,
                    "interrupted while waiting for a concurrency slot".into(),
                )));
            }
            Err(e) => {
                let mut env = r.refuse(Reason::ConcurrencyLimit, code::TEMP_FAIL, e.to_string());
                env.retry_after = Some(1.0);
                return Err(Box::new(env));
            }
        }
    }
    Ok(held)
}

fn check_policy(r: &mut Run<'_>, policies: &policy::Policies, tool: &str) -> Option<Envelope> {
    let mut d = policy::decide(policies, &r.req.role, tool, Action::Execute, r.req.approved);
    if d.decision == Verdict::ApprovalRequired
        && let Some(prompt) = &r.req.prompt
    {
        if prompt(tool, &r.req.role) {
            d = policy::decide(policies, &r.req.role, tool, Action::Execute, true);
        } else if runner::interrupted() {
            // Ctrl-C at the prompt: 130 at once, not a refusal.
            r.decision_record(tool, &d);
            return Some(r.refuse(
                Reason::Interrupted,
                code::INTERRUPTED,
                "interrupted at the approval prompt".into(),
            ));
        }
    }
    r.decision_record(tool, &d);
    if !d.allowed() {
        let reason = if d.decision == Verdict::ApprovalRequired {
            Reason::ApprovalRequired
        } else {
            Reason::Denied
        };
        let mut e = r.refuse(
            reason,
            code::NO_PERM,
            format!("{} [rule: {}]", d.message, d.rule),
        );
        e.rule = Some(d.rule);
        return Some(e);
    }
    if let Some(d) = policy::check_args(policies, &r.args) {
        r.decision_record(tool, &d);
        let mut e = r.refuse(
            Reason::Denied,
            code::NO_PERM,
            format!("{} [rule: {}]", d.message, d.rule),
        );
        e.rule = Some(d.rule);
        return Some(e);
    }
    None
}

/// The breaker settings of a tool: the manifest over the environment defaults.
pub(crate) fn breaker_config(ctx: &Context, tool: &Tool) -> breaker::Config {
    let mut c = ctx.settings.breaker;
    if let Some(b) = tool.manifest.breaker_settings() {
        if let Some(t) = b.failure_threshold {
            c.threshold = t.max(1);
        }
        if let Some(t) = b.recovery_timeout {
            c.recovery_timeout = t.max(0.0);
        }
    }
    c
}

fn timeout_of(ctx: &Context, req: &RunRequest, tool: &Tool) -> f64 {
    // Every source is checked where it is parsed; the clamp keeps a value
    // that slipped through from panicking in `Duration::from_secs_f64`.
    req.timeout
        .or(tool.manifest.timeout)
        .unwrap_or(ctx.settings.default_timeout)
        .clamp(0.001, crate::manifest::MAX_SECONDS)
}

async fn walk<E: Exec>(r: &mut Run<'_>, first: &Tool, exec: &E) -> Envelope {
    let ctx = r.ctx;
    let req = r.req;
    let policies = r.policies.clone();
    let mut w = Walk::new(&first.name, ctx.settings.max_fallback_depth);
    let mut last: Option<(String, Outcome)> = None;
    let mut first_rejected: Option<f64> = None;
    let mut hops = 0u32;
    let mut answered = false;
    let mut seen = (0usize, 0usize);
    while let Some(hop) = w.next() {
        report_skips(r, &w, &mut seen);
        if runner::interrupted() || req.cancel.is_cancelled() {
            break;
        }
        let tool: std::borrow::Cow<'_, Tool> = if hop.depth == 0 {
            std::borrow::Cow::Borrowed(first)
        } else {
            hops += 1;
            match ctx.search.find(&hop.tool) {
                Ok(Some(t)) => std::borrow::Cow::Owned(t),
                _ => {
                    skip(r, &hop, AttemptOutcome::NotFound, None);
                    note(req, &format!("fallback {} not found", hop.tool));
                    w.failed(&hop, &[]);
                    continue;
                }
            }
        };
        if hop.depth > 0
            && let Some(p) = policies.as_deref()
        {
            let d = policy::decide(p, &req.role, &tool.name, Action::Execute, req.approved);
            r.decision_record(&tool.name, &d);
            if !d.allowed() {
                let outcome = if d.decision == Verdict::ApprovalRequired {
                    AttemptOutcome::ApprovalRequired
                } else {
                    AttemptOutcome::Denied
                };
                note(
                    req,
                    &format!(
                        "fallback {} refused by policy [rule: {}]",
                        tool.name, d.rule
                    ),
                );
                skip(r, &hop, outcome, Some(d.rule));
                continue;
            }
        }
        let cfg = breaker_config(ctx, &tool);
        let shared = ctx.shared();
        let timeout = timeout_of(ctx, req, &tool);
        let tries = tool
            .manifest
            .retry
            .as_ref()
            .map_or(1, |x| x.attempts.max(1));
        let lease = timeout * f64::from(tries) + 30.0;
        // `breaker: false`: no gate, nothing recorded.
        let guarded = tool.manifest.breaker_enabled();
        let gate = if guarded {
            match shared.breaker_gate(&tool.name, cfg, &r.run_id, lease) {
                Ok(g) => g,
                Err(e) => {
                    r.warn("breaker", &e);
                    Gate::Allow
                }
            }
        } else {
            Gate::Allow
        };
        if let Gate::Reject { retry_in } = gate {
            if hop.depth == 0 {
                first_rejected = Some(retry_in);
            }
            note(
                req,
                &format!(
                    "circuit for {} is open; retry in {:.0} s or reset it with `gathm breaker reset {}`",
                    tool.name,
                    retry_in.ceil(),
                    tool.name
                ),
            );
            skip(r, &hop, AttemptOutcome::CircuitOpen, None);
            let fbs = tool.manifest.fallbacks();
            w.failed(&hop, &fbs);
            let next = report_skips(r, &w, &mut seen);
            if let Some(next) = next.filter(|n| fbs.contains(n)) {
                note(req, &format!("falling back to {next}"));
            }
            continue;
        }
        let out = execute(r, &tool, timeout, exec).await;
        // An exit code the manifest lists as an answer is not an outage.
        let answer =
            matches!(out.status, Status::Exited(c) if tool.manifest.answer_codes().contains(&c));
        let counted = match &out.status {
            _ if !guarded => None,
            Status::Exited(0) => Some(true),
            _ if answer => Some(true),
            Status::Exited(2) | Status::Cancelled { .. } => None,
            _ => Some(false),
        };
        match counted {
            Some(ok) => {
                if let Err(e) = shared.breaker_record(&tool.name, cfg, ok) {
                    r.warn("breaker", &e);
                }
            }
            None if gate == Gate::Probe => {
                if let Err(e) = shared.breaker_release(&tool.name, &r.run_id) {
                    r.warn("breaker", &e);
                }
            }
            None => {}
        }
        let success = out.status == Status::Exited(0);
        // Too much output is the tool's result, not an outage: no fallback.
        let ends =
            success || answer || out.truncated || matches!(out.status, Status::Cancelled { .. });
        let name = tool.name.clone();
        let code = out.status.code();
        last = Some((name.clone(), out));
        if ends {
            answered = answer;
            break;
        }
        let fbs = tool.manifest.fallbacks();
        w.failed(&hop, &fbs);
        // Only a fallback that is really queued is announced; skipped ones
        // are reported as such (depth limit, cycle).
        let next = report_skips(r, &w, &mut seen);
        if let Some(next) = next.filter(|n| fbs.contains(n)) {
            note(
                req,
                &format!("{name} failed (exit {code}); falling back to {next}"),
            );
        }
    }
    report_skips(r, &w, &mut seen);
    conclude(r, last, first_rejected, hops, first, answered)
}

/// Report the hops the walk skipped since the last call, as attempts and
/// notes; returns the next tool the walk will try.
fn report_skips(r: &mut Run<'_>, w: &Walk, seen: &mut (usize, usize)) -> Option<String> {
    let depth = r.ctx.settings.max_fallback_depth;
    for t in w.skipped_depth.iter().skip(seen.0) {
        let why = format!("skipped: depth limit {depth} reached");
        note(r.req, &format!("fallback {t} {why}"));
        r.attempts.push(skipped(t, why));
    }
    for t in w.skipped_cycles.iter().skip(seen.1) {
        let why = format!("skipped: {t} already tried (cycle)");
        note(r.req, &format!("fallback {why}"));
        r.attempts.push(skipped(t, why));
    }
    *seen = (w.skipped_depth.len(), w.skipped_cycles.len());
    w.peek().map(|h| h.tool.clone())
}

fn skipped(tool: &str, why: String) -> Attempt {
    Attempt {
        tool: tool.to_string(),
        exit_code: None,
        duration_ms: 0,
        outcome: AttemptOutcome::Skipped,
        try_number: 1,
        rule: None,
        note: Some(why),
    }
}

fn skip(r: &mut Run<'_>, hop: &Hop, outcome: AttemptOutcome, rule: Option<String>) {
    r.attempts.push(Attempt {
        tool: hop.tool.clone(),
        exit_code: None,
        duration_ms: 0,
        outcome,
        try_number: 1,
        rule,
        note: None,
    });
}

fn conclude(
    r: &mut Run<'_>,
    last: Option<(String, Outcome)>,
    first_rejected: Option<f64>,
    hops: u32,
    first: &Tool,
    answered: bool,
) -> Envelope {
    let interrupted = runner::interrupted() || r.req.cancel.is_cancelled();
    match last {
        Some((name, out)) if out.status == Status::Exited(0) && !out.truncated => {
            let mut e = r.envelope(RunStatus::Success, None, 0);
            e.output = String::from_utf8_lossy(&out.stdout).into_owned();
            e.error = String::from_utf8_lossy(&out.stderr).into_owned();
            if name != first.name {
                e.served_by = Some(name);
            }
            e
        }
        last => {
            let code = last.as_ref().map(|l| l.1.status.code());
            let status = last.as_ref().map(|l| l.1.status.clone());
            let (reason, exit) = if interrupted || matches!(status, Some(Status::Cancelled { .. }))
            {
                (Some(Reason::Interrupted), i32::from(code::INTERRUPTED))
            } else if last.as_ref().is_some_and(|l| l.1.truncated) {
                (Some(Reason::OutputLimit), i32::from(code::OUTPUT_LIMIT))
            } else if answered {
                (None, code.unwrap_or(1))
            } else if hops > 0 {
                (
                    Some(Reason::FallbackExhausted),
                    code.unwrap_or(i32::from(code::UNAVAILABLE)),
                )
            } else if let Some(retry) = first_rejected {
                let mut e = r.refuse(
                    Reason::CircuitOpen,
                    code::UNAVAILABLE,
                    format!(
                        "circuit for {} is open after repeated failures; it will let a probe through in {:.0} s, or reset it now with `gathm breaker reset {}`",
                        first.name,
                        retry.ceil(),
                        first.name
                    ),
                );
                e.retry_after = Some(retry.ceil());
                return e;
            } else {
                match status {
                    Some(Status::TimedOut) => (Some(Reason::Timeout), i32::from(code::TIMEOUT)),
                    Some(Status::SpawnFailed { .. }) => {
                        (Some(Reason::NotExecutable), i32::from(code::NOT_EXECUTABLE))
                    }
                    _ => (None, code.unwrap_or(1)),
                }
            };
            let mut e = r.envelope(RunStatus::Error, reason, exit);
            if let Some((name, out)) = last {
                e.output = String::from_utf8_lossy(&out.stdout).into_owned();
                e.error = String::from_utf8_lossy(&out.stderr).into_owned();
                match &out.status {
                    Status::SpawnFailed { message } => {
                        e.error.push_str(&format!("gathm: {message}\n"));
                        e.message = Some(message.clone());
                    }
                    Status::TimedOut => {
                        e.message = Some(format!("{name} timed out; its process group was killed"));
                    }
                    _ if out.truncated => {
                        let mb = r.ctx.settings.max_output as f64 / 1048576.0;
                        let m = format!(
                            "output of {name} exceeded the capture limit of {mb} MiB (GATHM_MAX_OUTPUT_MB); the run failed and nothing was cached"
                        );
                        e.error.push_str(&format!("gathm: {m}\n"));
                        e.message = Some(m);
                    }
                    _ => {}
                }
                if name != first.name {
                    e.served_by = Some(name);
                }
            }
            if reason == Some(Reason::FallbackExhausted) && e.message.is_none() {
                e.message = Some(format!("{} and its fallbacks all failed", first.name));
            }
            e
        }
    }
}

/// One try of an isolated tool: settle the previous workspace, create a
/// fresh one (`<run id>`, then `<run id>.N`), run in it. A workspace that
/// cannot be prepared fails the try as a spawn failure.
async fn run_isolated<E: Exec>(
    r: &mut Run<'_>,
    tool: &Tool,
    setting: &crate::manifest::WorkspaceSetting,
    spec: &mut Spec,
    exec: &E,
) -> Outcome {
    r.settle_workspace(false);
    r.workspaces += 1;
    let id = if r.workspaces == 1 {
        r.run_id.clone()
    } else {
        format!("{}.{}", r.run_id, r.workspaces)
    };
    let ws = match crate::workspace::create(
        &r.ctx.home.work(),
        &id,
        setting,
        tool.manifest_path.parent().unwrap_or(&tool.dir),
    ) {
        Ok(ws) => ws,
        Err(e) => {
            return Outcome {
                status: Status::SpawnFailed {
                    message: format!(
                        "cannot prepare the isolated workspace of {}: {e}",
                        tool.name
                    ),
                },
                stdout: Vec::new(),
                stderr: Vec::new(),
                truncated: false,
                duration: Duration::ZERO,
            };
        }
    };
    spec.cwd = Some(ws.dir.clone());
    spec.env
        .retain(|(k, _)| **k != *"GATHM_WORKSPACE" && **k != *"GATHM_ARTIFACTS");
    spec.env.push((
        Cow::Borrowed(OsStr::new("GATHM_WORKSPACE")),
        ws.dir.clone().into(),
    ));
    spec.env.push((
        Cow::Borrowed(OsStr::new("GATHM_ARTIFACTS")),
        ws.artifacts().into(),
    ));
    let out = exec.launch(spec, r.req.sink.clone(), &r.req.cancel).await;
    let success = out.status == Status::Exited(0) && !out.truncated;
    r.workspace = Some((ws, success));
    out
}

/// Execute one tool with its retries; every try is an attempt.
async fn execute<E: Exec>(r: &mut Run<'_>, tool: &Tool, timeout: f64, exec: &E) -> Outcome {
    let ctx = r.ctx;
    let req = r.req;
    let isolated = tool.manifest.workspace();
    // An isolated tool starts elsewhere: a tool found through a relative
    // search path (`./tools`, `--tools-dir tools`) gets absolute paths.
    let absolute;
    let relative = isolated.is_some() && tool.dir.is_relative();
    let tool = match relative.then(|| std::path::absolute(&tool.dir)) {
        Some(Ok(dir)) => {
            absolute = Tool {
                manifest_path: std::path::absolute(&tool.manifest_path)
                    .unwrap_or_else(|_| tool.manifest_path.clone()),
                dir,
                ..tool.clone()
            };
            &absolute
        }
        _ => tool,
    };
    let (program, mut args) = tool.program();
    args.extend(req.args.iter().cloned());
    let mut spec = Spec::new(program, args);
    spec.timeout = Some(Duration::from_secs_f64(timeout));
    spec.grace = Duration::from_secs_f64(ctx.settings.kill_grace);
    spec.capture_limit = ctx.settings.max_output;
    spec.stdin = req.stdin.clone();
    spec.env_remove = &["GATHM_API_KEY", "GATHM_API_KEYS", "GATHM_CALLBACK_SECRET"];
    let var = |k: &'static str| Cow::Borrowed(OsStr::new(k));
    spec.env = Vec::with_capacity(tool.manifest.env.len() + 3 + req.env.len());
    spec.env.extend(
        tool.manifest
            .env
            .iter()
            .map(|(k, v)| (Cow::Owned(OsString::from(k)), OsString::from(v))),
    );
    spec.env
        .push((var("GATHM_TOOL_NAME"), tool.name.clone().into()));
    spec.env
        .push((var("GATHM_RUN_ID"), r.run_id.clone().into()));
    spec.env
        .push((var("GATHM_HOME"), ctx.home.root.clone().into()));
    spec.env.extend(
        req.env
            .iter()
            .map(|(k, v)| (Cow::Owned(k.clone()), v.clone())),
    );
    let retry = tool.manifest.retry.clone();
    let tries = retry.as_ref().map_or(1, |x| x.attempts.max(1));
    let mut try_n = 1;
    loop {
        let out = match &isolated {
            None => {
                // A shared-directory try decides the result now: an earlier
                // isolated try's artifacts are not this run's.
                r.settle_workspace(false);
                exec.launch(&spec, req.sink.clone(), &req.cancel).await
            }
            Some(setting) => run_isolated(r, tool, setting, &mut spec, exec).await,
        };
        let code = out.status.code();
        let outcome = match &out.status {
            Status::Exited(0) => AttemptOutcome::Success,
            Status::TimedOut => AttemptOutcome::Timeout,
            Status::SpawnFailed { .. } => AttemptOutcome::SpawnFailed,
            Status::Cancelled { .. } => AttemptOutcome::Interrupted,
            _ => AttemptOutcome::Failed,
        };
        let ms = out.duration.as_millis() as u64;
        r.attempts.push(Attempt {
            tool: tool.name.clone(),
            exit_code: Some(code),
            duration_ms: ms,
            outcome,
            try_number: try_n,
            rule: None,
            note: None,
        });
        let appended = clock::with_rfc3339(clock::now(), |ts| {
            ctx.logger.try_metric_record(&logs::MetricRecord {
                cached: None,
                duration_ms: ms,
                exit_code: code,
                outcome: Some(outcome),
                run_id: &r.run_id,
                status: logs::MetricRecord::status_of(code),
                timestamp: ts,
                tool: &tool.name,
                try_number: Some(try_n),
            })
        });
        if let Err(err) = appended {
            r.warn("metrics log", &err);
        }
        let retryable = match &retry {
            _ if outcome == AttemptOutcome::Success || outcome == AttemptOutcome::Interrupted => {
                false
            }
            _ if code == 2 => false,
            _ if matches!(out.status, Status::Exited(c) if tool.manifest.answer_codes().contains(&c)) => {
                retry
                    .as_ref()
                    .is_some_and(|rs| rs.on_exit_codes.contains(&code))
            }
            _ if out.truncated => false,
            Some(rs) => rs.retries_exit(code),
            None => true,
        };
        if !retryable || try_n >= tries {
            return out;
        }
        let rs = retry.clone().unwrap_or_default();
        let delay = rs.delay_after(try_n, retry::jitter(&r.run_id, try_n));
        note(
            req,
            &format!(
                "{} failed (exit {code}); retry {} of {} in {delay:.1} s",
                tool.name,
                try_n + 1,
                tries
            ),
        );
        if !exec.pause(delay, &req.cancel).await {
            return out;
        }
        try_n += 1;
    }
}
