//! The run operation (PRODUCT.md §3): resolve, policy, rate limit, cache,
//! breaker, execute with retries, fallbacks, cache store, logs. Used by the
//! CLI, the HTTP server, jobs, parallel, chain and pipelines alike.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Attempt, AttemptOutcome, Envelope, Reason, RunStatus};
use crate::breaker::{self, Gate};
use crate::cache;
use crate::clock;
use crate::config::Context;
use crate::error::code;
use crate::fallback::{Hop, Walk};
use crate::logs::Level;
use crate::manifest::CacheSetting;
use crate::policy::{self, Action, Decision, Policies, Verdict};
use crate::ratelimit::{self, Limit};
use crate::registry::Tool;
use crate::runner::{self, Cancel, Outcome, Sink, Spec, Status, Stdin};

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
    /// Who asked (for the audit log): `cli`, `http`, `job:<id>`, ...
    pub actor: String,
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
            actor: "cli".into(),
        }
    }
}

impl RunRequest {
    /// A run on behalf of a batch (a parallel item, a chain link, a pipeline
    /// step): the batch's role, approval, cancel token and audit actor.
    pub fn member(
        tool: &str,
        args: &[String],
        role: &str,
        approved: bool,
        cancel: &Cancel,
        actor: &str,
    ) -> RunRequest {
        let mut req = RunRequest::new(tool, args.iter().map(OsString::from).collect(), role);
        req.approved = approved;
        req.cancel = cancel.clone();
        req.actor = actor.to_string();
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
    audit: Vec<Value>,
    args: Vec<String>,
    /// The policies, loaded once per run (`None`: the file is invalid).
    policies: Option<Arc<Policies>>,
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
        }
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
        self.audit.push(json!({
            "action": "policy_decision",
            "actor": self.req.actor,
            "role": self.req.role,
            "tool": tool,
            "permission": "tool:execute",
            "decision": d.decision,
            "rule": d.rule,
            "run_id": self.run_id,
        }));
    }

    fn finish(mut self, mut env: Envelope) -> Envelope {
        env.duration_ms = self.t0.elapsed().as_millis() as u64;
        env.attempts = std::mem::take(&mut self.attempts);
        let log_exec = self.policies.as_ref().is_none_or(|p| {
            p.audit.log_all_executions || (p.audit.log_failures && env.status == RunStatus::Error)
        });
        if log_exec {
            self.audit.push(json!({
                "action": "tool_execute",
                "actor": self.req.actor,
                "role": self.req.role,
                "tool": env.tool,
                "args": self.args,
                "status": env.status,
                "reason": env.reason,
                "exit_code": env.exit_code,
                "cached": env.cached,
                "served_by": env.served_by,
                "duration_ms": env.duration_ms,
                "run_id": env.run_id,
            }));
        }
        if !self.audit.is_empty() {
            self.ctx.logger.audit(std::mem::take(&mut self.audit));
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
        env
    }
}

/// Run a tool through the whole pipeline and return its envelope.
pub fn run(ctx: &Context, req: &RunRequest) -> Envelope {
    let mut r = Run {
        ctx,
        req,
        run_id: clock::new_id(),
        started: clock::now(),
        t0: Instant::now(),
        attempts: Vec::new(),
        audit: Vec::new(),
        args: lossy(&req.args),
        policies: None,
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
    let tool = match ctx.search.find(&req.tool) {
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
    // 2. Policy and argument validation.
    let policies = match ctx.policies() {
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
                path: ctx.home.ratelimit_file(&key),
                limit,
                capacity,
            })
            .collect();
        let window = policies.rate_limiting.window_seconds.max(1) as f64;
        match ratelimit::admit(&limits, window, clock::now()) {
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
            Err(err) => note(
                req,
                &format!("warning: rate-limit state unavailable: {err}"),
            ),
        }
    }
    // 4. Cache.
    let ttl = match tool.manifest.cache {
        Some(CacheSetting::Enabled(false)) => None,
        Some(CacheSetting::Ttl { ttl }) => Some(ttl),
        _ => Some(ctx.settings.cache_ttl),
    }
    .filter(|t| *t > 0 && ctx.settings.cache_enabled && req.use_cache);
    let cache_path = ttl.map(|_| {
        let key = cache::key(&tool.name, &tool.digest, &req.args);
        cache::entry_path(&ctx.home.cache_dir_of(&tool.name), &key)
    });
    if let (Some(path), false) = (&cache_path, req.refresh)
        && let Ok(Some(hit)) = cache::get(path, clock::now())
    {
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
        ctx.logger.metric(
            &tool.name,
            0,
            hit.header.exit_code,
            json!({"cached": true, "run_id": r.run_id}),
        );
        return r.finish(e);
    }
    // 5–7. Breaker, execution, fallbacks.
    let env = walk(&mut r, tool.clone());
    // 8. Cache a success of the tool asked for (never a fallback's answer).
    if env.status == RunStatus::Success
        && env.served_by.is_none()
        && let Some(path) = &cache_path
        && let Some(last) = r.attempts.last()
        && last.outcome == AttemptOutcome::Success
    {
        let _ = cache::put(
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
    }
    r.finish(env)
}

/// Policy decision + argument validation for one tool; `Some` when refused.
fn check_policy(r: &mut Run<'_>, policies: &policy::Policies, tool: &str) -> Option<Envelope> {
    let mut d = policy::decide(policies, &r.req.role, tool, Action::Execute, r.req.approved);
    if d.decision == Verdict::ApprovalRequired
        && let Some(prompt) = &r.req.prompt
        && prompt(tool, &r.req.role)
    {
        d = policy::decide(policies, &r.req.role, tool, Action::Execute, true);
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

fn breaker_config(ctx: &Context, tool: &Tool) -> breaker::Config {
    let mut c = ctx.settings.breaker;
    if let Some(b) = &tool.manifest.breaker {
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

fn walk(r: &mut Run<'_>, first: Tool) -> Envelope {
    let ctx = r.ctx;
    let req = r.req;
    let policies = r.policies.clone();
    let mut w = Walk::new(&first.name, ctx.settings.max_fallback_depth);
    let mut last: Option<(String, Outcome)> = None;
    let mut first_rejected: Option<f64> = None;
    let mut hops = 0u32;
    while let Some(hop) = w.next() {
        if runner::interrupted() || req.cancel.is_cancelled() {
            break;
        }
        let tool = if hop.depth == 0 {
            first.clone()
        } else {
            hops += 1;
            match ctx.search.find(&hop.tool) {
                Ok(Some(t)) => t,
                _ => {
                    skip(r, &hop, AttemptOutcome::NotFound, None);
                    note(req, &format!("fallback {} not found", hop.tool));
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
        let bpath = ctx.home.breaker_file(&tool.name);
        let timeout = timeout_of(ctx, req, &tool);
        let tries = tool
            .manifest
            .retry
            .as_ref()
            .map_or(1, |x| x.attempts.max(1));
        let lease = timeout * f64::from(tries) + 30.0;
        let gate =
            breaker::gate_at(&bpath, cfg, clock::now(), &r.run_id, lease).unwrap_or(Gate::Allow);
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
            w.failed(&hop, &tool.manifest.fallbacks());
            continue;
        }
        let out = execute(r, &tool, timeout);
        let counted = match &out.status {
            Status::Exited(0) => Some(true),
            Status::Exited(2) | Status::Cancelled { .. } => None,
            _ => Some(false),
        };
        match counted {
            Some(ok) => {
                let _ = breaker::record_at(&bpath, cfg, clock::now(), ok);
            }
            None if gate == Gate::Probe => {
                let _ = breaker::release_at(&bpath, &r.run_id);
            }
            None => {}
        }
        let success = out.status == Status::Exited(0);
        let name = tool.name.clone();
        last = Some((name.clone(), out));
        if success
            || matches!(
                last.as_ref().map(|l| &l.1.status),
                Some(Status::Cancelled { .. })
            )
        {
            break;
        }
        let fbs = tool.manifest.fallbacks();
        if let Some(next) = fbs.first()
            && hop.depth < ctx.settings.max_fallback_depth
        {
            let code = last.as_ref().map(|l| l.1.status.code()).unwrap_or(1);
            note(
                req,
                &format!("{name} failed (exit {code}); falling back to {next}"),
            );
        }
        w.failed(&hop, &fbs);
    }
    conclude(r, last, first_rejected, hops, &first)
}

fn skip(r: &mut Run<'_>, hop: &Hop, outcome: AttemptOutcome, rule: Option<String>) {
    r.attempts.push(Attempt {
        tool: hop.tool.clone(),
        exit_code: None,
        duration_ms: 0,
        outcome,
        try_number: 1,
        rule,
    });
}

fn conclude(
    r: &mut Run<'_>,
    last: Option<(String, Outcome)>,
    first_rejected: Option<f64>,
    hops: u32,
    first: &Tool,
) -> Envelope {
    let interrupted = runner::interrupted() || r.req.cancel.is_cancelled();
    match last {
        Some((name, out)) if out.status == Status::Exited(0) => {
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

/// Execute one tool with its retries; every try is an attempt.
fn execute(r: &mut Run<'_>, tool: &Tool, timeout: f64) -> Outcome {
    let ctx = r.ctx;
    let req = r.req;
    let (program, mut args) = tool.program();
    args.extend(req.args.iter().cloned());
    let mut spec = Spec::new(program, args);
    spec.timeout = Some(Duration::from_secs_f64(timeout));
    spec.grace = Duration::from_secs_f64(ctx.settings.kill_grace);
    spec.stdin = req.stdin.clone();
    spec.env_remove = ["GATHM_API_KEY", "GATHM_API_KEYS", "GATHM_CALLBACK_SECRET"]
        .iter()
        .map(OsString::from)
        .collect();
    spec.env = tool
        .manifest
        .env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    spec.env
        .push(("GATHM_TOOL_NAME".into(), tool.name.clone().into()));
    spec.env
        .push(("GATHM_RUN_ID".into(), r.run_id.clone().into()));
    spec.env
        .push(("GATHM_HOME".into(), ctx.home.root.clone().into()));
    spec.env.extend(req.env.iter().cloned());
    let retry = tool.manifest.retry.clone();
    let tries = retry.as_ref().map_or(1, |x| x.attempts.max(1));
    let mut try_n = 1;
    loop {
        let out = runner::run(&spec, req.sink.clone(), &req.cancel);
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
        });
        ctx.logger.metric(
            &tool.name,
            ms,
            code,
            json!({"run_id": r.run_id, "outcome": outcome, "try": try_n}),
        );
        let retryable = match &retry {
            _ if outcome == AttemptOutcome::Success || outcome == AttemptOutcome::Interrupted => {
                false
            }
            _ if code == 2 => false,
            Some(rs) if !rs.on_exit_codes.is_empty() => rs.on_exit_codes.contains(&code),
            _ => true,
        };
        if !retryable || try_n >= tries {
            return out;
        }
        let rs = retry
            .as_ref()
            .map(|x| (x.delay, x.backoff, x.max_delay))
            .unwrap_or((1.0, 2.0, 30.0));
        let delay = backoff_delay(rs.0, rs.1, rs.2, try_n, jitter_seed(&r.run_id, try_n));
        note(
            req,
            &format!(
                "{} failed (exit {code}); retry {} of {} in {delay:.1} s",
                tool.name,
                try_n + 1,
                tries
            ),
        );
        let until = Instant::now() + Duration::from_secs_f64(delay);
        while Instant::now() < until {
            if runner::interrupted() || req.cancel.is_cancelled() {
                return out;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(25)),
            );
        }
        try_n += 1;
    }
}

fn jitter_seed(run_id: &str, n: u32) -> f64 {
    let h = blake3::hash(format!("{run_id}{n}").as_bytes());
    f64::from(h.as_bytes()[0]) / 255.0
}

/// Exponential backoff with "equal jitter": half fixed, half random, capped.
pub fn backoff_delay(delay: f64, backoff: f64, max_delay: f64, try_n: u32, jitter: f64) -> f64 {
    let base = (delay * backoff.powi(try_n.saturating_sub(1) as i32)).min(max_delay);
    base / 2.0 + base / 2.0 * jitter.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 1, 1.0), 1.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 3, 1.0), 4.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 10, 1.0), 30.0);
        assert_eq!(backoff_delay(1.0, 2.0, 30.0, 3, 0.0), 2.0);
    }
}
