//! The MCP handler: `tools/list` from the registry filtered by the role,
//! `tools/call` through `crate::run::run` (the path of `gathm run`), progress
//! with output lines, cancellation, and `tools/list_changed`.
//!
//! It knows no transport: `gathm mcp` serves it over stdio (`super::serve`);
//! `gathm serve` hands one [`Gathm`] (with a [`Host`]) to rmcp's streamable
//! HTTP service for every session (`crate::serve::mcp`), and each request's
//! [`Caller`] gives the role. There, a client that declares the tasks
//! extension (SEP-2663) gets each call as a task (rmcp's `TaskManager`):
//! `tasks/get` and `tasks/cancel` for the principal that created it only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, ElicitRequestParams, ElicitationAction, ElicitationSchema, Extensions,
    GetTaskParams, GetTaskResult, Implementation, ListToolsResult, MetaObject,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ProtocolVersion,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool as McpTool,
};
use rmcp::service::{ElicitationMode, NotificationContext, RequestContext, SubscriptionContext};
use rmcp::task_manager::{TaskExit, TaskFuture, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::api::{Envelope, Reason, RunStatus};
use crate::config::Context;
use crate::mcp::schema;
use crate::policy::{self, Action, Verdict};
use crate::registry::Tool;
use crate::run::{self, RunRequest};
use crate::runner::{Cancel, Sink};

/// The protocol revisions served: the current one and the previous one
/// (negotiated by rmcp: `initialize` for 2025-11-25, per-request `_meta`
/// for 2026-07-28).
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] =
    &[ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

/// How the server was started.
#[derive(Clone)]
pub struct Options {
    /// Role for policy decisions (`--role`, `GATHM_ROLE`); over HTTP each
    /// request's [`Caller`] overrides it.
    pub role: String,
    /// Globs of tools approved at start (`--approve-tools`,
    /// `GATHM_MCP_APPROVE_TOOLS` for `gathm serve`).
    pub approve: Vec<String>,
    /// How often manifests are checked for changes.
    pub poll: Duration,
    /// The HTTP server around the handler (`gathm serve`); `None` on stdio.
    pub host: Option<Arc<dyn Host>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("role", &self.role)
            .field("approve", &self.approve)
            .field("poll", &self.poll)
            .field("host", &self.host.is_some())
            .finish()
    }
}

/// Who sends a request over HTTP: `serve::mcp` authenticates the bearer
/// token and puts this in the HTTP request's extensions, which rmcp hands to
/// the handler (`RequestContext::extensions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The role policies apply to.
    pub role: String,
    /// The principal (a hash of the token, or `local`), for the audit actor.
    pub principal: String,
}

/// What the HTTP server adds around each tool run: its limits (principal
/// and tool rate limits, execution slots, draining) and its metrics.
pub trait Host: Send + Sync {
    /// Before a run: a guard held until the run ends, or why it may not
    /// start (the refusal's text).
    fn begin(
        &self,
        caller: &Caller,
        tool: &str,
        cancel: &Cancel,
    ) -> Result<Box<dyn std::any::Any + Send>, String>;
    /// After a run.
    fn end(&self, env: &Envelope);
}

struct Inner {
    ctx: Arc<Context>,
    opts: Options,
    changes: watch::Receiver<u64>,
    /// Cancel tokens of the calls running now, by a call number.
    running: Mutex<(u64, Vec<(u64, Cancel)>)>,
    /// Calls run as tasks (the MCP tasks extension; HTTP only), and the
    /// principal each task belongs to.
    tasks: TaskManager,
    task_owners: Mutex<HashMap<String, String>>,
}

/// Removes a call from `running` when it ends, however it ends.
struct Running<'a> {
    inner: &'a Inner,
    n: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.inner.running.lock() {
            r.1.retain(|(n, _)| *n != self.n);
        }
    }
}

/// The MCP server handler (cheap to clone: one per session).
#[derive(Clone)]
pub struct Gathm {
    inner: Arc<Inner>,
}

impl Gathm {
    /// A handler; starts the manifest watcher, so it must be called inside
    /// a Tokio runtime.
    pub fn new(ctx: Arc<Context>, opts: Options) -> Gathm {
        let (tx, rx) = watch::channel(0u64);
        let wctx = Arc::clone(&ctx);
        let poll = opts.poll;
        tokio::spawn(async move {
            let c = Arc::clone(&wctx);
            let mut last = tokio::task::spawn_blocking(move || fingerprint(&c))
                .await
                .unwrap_or(0);
            loop {
                tokio::time::sleep(poll).await;
                if tx.is_closed() {
                    break;
                }
                let c = Arc::clone(&wctx);
                let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&c)).await else {
                    continue;
                };
                if now != last {
                    last = now;
                    tx.send_modify(|g| *g += 1);
                }
            }
        });
        Gathm {
            inner: Arc::new(Inner {
                ctx,
                opts,
                changes: rx,
                running: Mutex::new((0, Vec::new())),
                tasks: TaskManager::new(),
                task_owners: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Cancel every running call (the session is over): each tool's process
    /// group is killed. Returns how many there were.
    pub fn cancel_all(&self) -> usize {
        let Ok(r) = self.inner.running.lock() else {
            return 0;
        };
        for (_, c) in &r.1 {
            c.cancel();
        }
        r.1.len()
    }

    /// How many calls are running.
    pub fn running(&self) -> usize {
        self.inner.running.lock().map(|r| r.1.len()).unwrap_or(0)
    }

    /// Who sends a request: on stdio the role the server was started with;
    /// over HTTP the [`Caller`] `serve::mcp` put in the request (`None`
    /// without one: refused, never a default role).
    fn caller(&self, ext: &Extensions) -> Option<Caller> {
        if self.inner.opts.host.is_none() {
            return Some(Caller {
                role: self.inner.opts.role.clone(),
                principal: String::new(),
            });
        }
        ext.get::<Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
    }

    /// Whether a call of `tool` needs approval that was not given at start.
    fn needs_approval(&self, role: &str, tool: &str) -> bool {
        !self.approved(tool)
            && self.inner.ctx.policies().is_ok_and(|p| {
                policy::decide(&p, role, tool, Action::Execute, false).decision
                    == Verdict::ApprovalRequired
            })
    }

    /// Ask the person behind the client (elicitation, form mode) whether a
    /// tool that needs approval may run. Only where the client declared
    /// elicitation at `initialize` (2025-11-25 sessions; 2026-07-28 has no
    /// server-to-client requests). No answer within 5 minutes is a refusal.
    async fn elicit_approval(
        &self,
        role: &str,
        tool: &str,
        arguments: Option<&serde_json::Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> bool {
        let peer = &context.peer;
        if peer.peer_info().is_none()
            || !peer
                .supported_elicitation_modes()
                .contains(&ElicitationMode::Form)
        {
            return false;
        }
        let args = arguments
            .map(|a| Value::Object(a.clone()).to_string())
            .unwrap_or_else(|| "{}".into());
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: format!(
                "gathm: the tool {tool:?} needs approval for role {role:?}. Run it with arguments {args}?"
            ),
            requested_schema: ElicitationSchema::builder()
                .required_bool("approve")
                .build_unchecked(),
        };
        match peer
            .create_elicitation_with_timeout(params, Some(Duration::from_secs(300)))
            .await
        {
            Ok(r) => {
                matches!(r.action, ElicitationAction::Accept)
                    && r.content
                        .as_ref()
                        .and_then(|c| c.get("approve"))
                        .and_then(Value::as_bool)
                        == Some(true)
            }
            Err(_) => false,
        }
    }

    /// Run a call as a task (`tools/call` answered with a task id; the
    /// client polls `tasks/get`, may `tasks/cancel`): the run is the same,
    /// output lines become the task's status message.
    fn call_as_task(
        &self,
        caller: Caller,
        name: String,
        arguments: Option<serde_json::Map<String, Value>>,
        approved_now: bool,
    ) -> CallToolResponse {
        let me = self.clone();
        let principal = caller.principal.clone();
        let ttl = task_ttl().as_millis().try_into().unwrap_or(u64::MAX);
        let options = TaskOptions::new().with_ttl_ms(ttl);
        let task = self.inner.tasks.spawn(options, move |tctx| {
            Box::pin(async move {
                let cancel = Cancel::new();
                // A task past its TTL is dropped by the manager: its run is
                // cancelled too (the process group killed).
                let _on_drop = CancelOnDrop(cancel.clone());
                let watch_cancel = {
                    let (t, c) = (tctx.clone(), cancel.clone());
                    tokio::spawn(async move {
                        t.cancelled().await;
                        c.cancel();
                    })
                };
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                let status = {
                    let t = tctx.clone();
                    tokio::spawn(async move {
                        while let Some(line) = rx.recv().await {
                            t.set_status_message(line);
                        }
                    })
                };
                let sink = Arc::new(LineSink {
                    tx,
                    partial: Mutex::new([Vec::new(), Vec::new()]),
                });
                let run = tokio::task::spawn_blocking(move || {
                    let dyn_sink: Arc<dyn Sink> = sink.clone();
                    let r = me.call(
                        &caller,
                        &name,
                        arguments.as_ref(),
                        Some(dyn_sink),
                        cancel,
                        approved_now,
                    );
                    sink.flush();
                    r
                })
                .await;
                watch_cancel.abort();
                let _ = status.await;
                let result = run
                    .map_err(|e| TaskExit::Error(ErrorData::internal_error(e.to_string(), None)))?;
                if tctx.is_cancel_requested() && result.is_error == Some(true) {
                    return Err(TaskExit::Cancelled);
                }
                Ok(result)
            }) as TaskFuture
        });
        if let Ok(mut o) = self.inner.task_owners.lock() {
            // Forget tasks the manager has dropped (expired).
            o.retain(|id, _| self.inner.tasks.get_task(id).is_ok());
            o.insert(task.task_id.clone(), principal);
        }
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// A task of the caller's, or the error of an unknown task.
    fn own_task(&self, context: &RequestContext<RoleServer>, id: &str) -> Result<(), ErrorData> {
        let caller = self
            .caller(&context.extensions)
            .ok_or_else(unauthenticated)?;
        let mine = self
            .inner
            .task_owners
            .lock()
            .ok()
            .is_some_and(|o| o.get(id).is_some_and(|p| *p == caller.principal));
        if mine {
            Ok(())
        } else {
            Err(ErrorData::invalid_params(
                format!("unknown task: {id}"),
                None,
            ))
        }
    }

    fn approved(&self, tool: &str) -> bool {
        self.inner
            .opts
            .approve
            .iter()
            .any(|g| policy::glob(g, tool))
    }

    /// The tools `role` may see, as MCP tools.
    pub fn tools(&self, role: &str) -> Result<Vec<McpTool>, String> {
        let ctx = &self.inner.ctx;
        let p = ctx.policies().map_err(|e| e.to_string())?;
        let d = policy::decide(&p, role, "", Action::Discover, false);
        if !d.allowed() {
            return Err(format!("{} [rule: {}]", d.message, d.rule));
        }
        let scan = ctx.search.scan();
        Ok(scan
            .tools
            .iter()
            .filter(|t| {
                let exec = policy::decide(&p, role, &t.name, Action::Execute, false);
                exec.decision != Verdict::Deny
            })
            .map(|t| {
                let exec = policy::decide(&p, role, &t.name, Action::Execute, false);
                let needs = exec.decision == Verdict::ApprovalRequired && !self.approved(&t.name);
                describe(t, needs, self.inner.opts.host.is_some())
            })
            .collect())
    }

    /// Run one call for `caller` (blocking: call it off the async threads).
    pub fn call(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Option<&serde_json::Map<String, Value>>,
        sink: Option<Arc<dyn Sink>>,
        cancel: Cancel,
        approved_now: bool,
    ) -> CallToolResult {
        let _running = {
            let mut r = self
                .inner
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            r.0 += 1;
            let n = r.0;
            r.1.push((n, cancel.clone()));
            Running {
                inner: &self.inner,
                n,
            }
        };
        let ctx = &self.inner.ctx;
        let args = match ctx.search.find(name) {
            Ok(Some(tool)) => match schema::argv(&tool, arguments) {
                Ok(a) => a,
                Err(msg) => return error_result(&format!("gathm: {msg}"), None),
            },
            // Not found or invalid: the run reports it in its envelope.
            _ => Vec::new(),
        };
        let mut req = RunRequest::new(
            name,
            args.into_iter().map(OsString::from).collect(),
            &caller.role,
        );
        req.actor = if caller.principal.is_empty() {
            "mcp".into()
        } else {
            format!(
                "mcp:{}",
                &caller.principal[..caller.principal.len().min(16)]
            )
        };
        req.approved = approved_now || self.approved(name);
        req.sink = sink;
        req.cancel = cancel;
        let host = self.inner.opts.host.as_deref();
        // Over HTTP the server applies the principal's and the tool's rate
        // limits (as for `POST /api/v1/tools/{name}/execute`).
        req.rate_limit = host.is_none();
        let _slot = match host.map(|h| h.begin(caller, name, &req.cancel)) {
            Some(Err(why)) => return error_result(&format!("gathm: {why}"), None),
            Some(Ok(guard)) => Some(guard),
            None => None,
        };
        let env = run::run(ctx, &req);
        if let Some(h) = host {
            h.end(&env);
        }
        result_of(&env, host.is_some())
    }
}

/// How long a task may run, and how long its result is kept after
/// (`GATHM_MCP_TASK_TTL` seconds, default 3600).
pub fn task_ttl() -> Duration {
    let secs: f64 = crate::config::env_parse("GATHM_MCP_TASK_TTL").unwrap_or(3600.0);
    Duration::from_secs_f64(if secs.is_finite() && (1.0..=604_800.0).contains(&secs) {
        secs
    } else {
        3600.0
    })
}

/// Cancels a run when dropped (a task future aborted mid-run).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A manifest as an MCP tool.
fn describe(t: &Tool, needs_approval: bool, http: bool) -> McpTool {
    let m = &t.manifest;
    let mut description = m.description.clone().unwrap_or_default();
    if needs_approval {
        description.push_str(if http {
            " (needs approval: refused unless the client approves it when asked (elicitation) or `gathm serve` was started with GATHM_MCP_APPROVE_TOOLS matching it)"
        } else {
            " (needs approval: refused unless `gathm mcp` was started with --approve-tools matching it)"
        });
    }
    let mut meta = serde_json::Map::new();
    meta.insert("gathm/requiresApproval".into(), needs_approval.into());
    meta.insert("gathm/categories".into(), json!(m.categories()));
    if let Some(v) = &m.version {
        meta.insert("gathm/version".into(), v.clone().into());
    }
    McpTool::new_with_raw(
        t.name.clone(),
        Some(Cow::Owned(description)),
        schema::input_schema(t),
    )
    .with_title(schema::title(t))
    .with_raw_output_schema(schema::output_schema())
    .with_annotations(schema::annotations(t, needs_approval))
    .with_meta(MetaObject(meta))
}

fn unauthenticated() -> ErrorData {
    ErrorData::invalid_request("no authenticated caller", None)
}

fn envelope_value(env: &Envelope) -> Value {
    serde_json::to_value(env).unwrap_or(Value::Null)
}

fn error_result(text: &str, env: Option<&Envelope>) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.structured_content = env.map(envelope_value);
    r
}

/// The call's result: stdout as text; on failure `isError` with stderr and
/// the reason; the envelope as `structuredContent`. `http`: served by
/// `gathm serve` (how to approve differs).
pub fn result_of(env: &Envelope, http: bool) -> CallToolResult {
    if env.status == RunStatus::Success {
        let mut r = CallToolResult::success(vec![ContentBlock::text(env.output.clone())]);
        r.structured_content = Some(envelope_value(env));
        return r;
    }
    let mut text = String::new();
    if !env.error.is_empty() {
        text.push_str(&env.error);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let reason = env
        .reason
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_str().map(String::from));
    let why = match (&reason, &env.message) {
        (_, Some(m)) if env.reason == Some(Reason::ApprovalRequired) && http => format!(
            "approval_required: {m}; approve it when the client asks (elicitation), start `gathm serve` with GATHM_MCP_APPROVE_TOOLS={}, or submit it as a job (POST /api/v1/jobs) for an admin to approve",
            env.tool
        ),
        (_, Some(m)) if env.reason == Some(Reason::ApprovalRequired) => format!(
            "approval_required: {m}; `gathm mcp` approves tools only at start: restart it with --approve-tools {}",
            env.tool
        ),
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, _) => format!("{} exited {}", env.tool, env.exit_code),
    };
    if !env.error.contains(&why) {
        text.push_str(&why);
    }
    error_result(&text, Some(env))
}

/// Manifest files and their stamps, and the policies, hashed.
fn fingerprint(ctx: &Context) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in ctx.search.manifest_files() {
        p.hash(&mut h);
        if let Ok(m) = std::fs::metadata(&p) {
            crate::parsed::stamp(&m).hash(&mut h);
        }
    }
    if let Ok((p, text)) = ctx.policies_text() {
        p.hash(&mut h);
        text.hash(&mut h);
    }
    h.finish()
}

/// Output lines as progress notifications.
struct LineSink {
    tx: mpsc::UnboundedSender<String>,
    partial: Mutex<[Vec<u8>; 2]>,
}

impl LineSink {
    fn push(&self, which: usize, chunk: &[u8]) {
        let Ok(mut bufs) = self.partial.lock() else {
            return;
        };
        let buf = &mut bufs[which];
        buf.extend_from_slice(chunk);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            self.send(which, &line[..line.len() - 1]);
        }
    }

    fn send(&self, which: usize, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let msg = if which == 0 {
            text.into_owned()
        } else {
            format!("stderr: {text}")
        };
        let _ = self.tx.send(msg);
    }

    fn flush(&self) {
        let Ok(mut bufs) = self.partial.lock() else {
            return;
        };
        for which in 0..2 {
            let rest = std::mem::take(&mut bufs[which]);
            if !rest.is_empty() {
                self.send(which, &rest);
            }
        }
    }
}

impl Sink for LineSink {
    fn stdout(&self, chunk: &[u8]) {
        self.push(0, chunk);
    }
    fn stderr(&self, chunk: &[u8]) {
        self.push(1, chunk);
    }
}

impl ServerHandler for Gathm {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed();
        // Tasks outlive a request, so only over HTTP (`gathm serve`).
        let caps = if self.inner.opts.host.is_some() {
            caps.enable_tasks().build()
        } else {
            caps.build()
        };
        ServerConfig::new(caps)
            .with_protocol_version(ProtocolVersion::V_2026_07_28)
            .with_server_info(
                Implementation::new("gathm", env!("CARGO_PKG_VERSION"))
                    .with_title("gathm tool runner"),
            )
            .with_instructions(
                "Each tool is a gathm tool (tool.yaml). Calls run behind gathm's policies, rate \
             limits, circuit breaker, fallbacks, cache and audit log. Tools without named \
             arguments take {\"args\": [strings]}; the result's structuredContent is the run \
             envelope.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self
            .caller(&context.extensions)
            .ok_or_else(unauthenticated)?;
        let me = self.clone();
        let tools = tokio::task::spawn_blocking(move || me.tools(&caller.role))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .map_err(|m| ErrorData::invalid_request(m, None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self
            .caller(&context.extensions)
            .ok_or_else(unauthenticated)?;
        if self.inner.opts.host.is_some()
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks())
        {
            let name = request.name.to_string();
            let approved_now = self.needs_approval(&caller.role, &name)
                && self
                    .elicit_approval(&caller.role, &name, request.arguments.as_ref(), &context)
                    .await;
            return Ok(self.call_as_task(caller, name, request.arguments, approved_now));
        }
        let cancel = Cancel::new();
        let watch_cancel = {
            let ct = context.ct.clone();
            let c = cancel.clone();
            tokio::spawn(async move {
                ct.cancelled().await;
                c.cancel();
            })
        };
        let token: Option<ProgressToken> = context.meta.get_progress_token();
        let (sink, progress) = match token {
            Some(token) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                let peer = context.peer.clone();
                let task = tokio::spawn(async move {
                    let mut n = 0u64;
                    while let Some(line) = rx.recv().await {
                        n += 1;
                        let p = ProgressNotificationParam::new(token.clone(), n as f64)
                            .with_message(line);
                        if peer.notify_progress(p).await.is_err() {
                            break;
                        }
                    }
                });
                let sink = Arc::new(LineSink {
                    tx,
                    partial: Mutex::new([Vec::new(), Vec::new()]),
                });
                (Some(sink), Some(task))
            }
            None => (None, None),
        };
        let me = self.clone();
        let name = request.name.to_string();
        let arguments = request.arguments;
        let approved_now = self.needs_approval(&caller.role, &name)
            && self
                .elicit_approval(&caller.role, &name, arguments.as_ref(), &context)
                .await;
        let result = tokio::task::spawn_blocking(move || {
            let dyn_sink = sink.clone().map(|s| s as Arc<dyn Sink>);
            let r = me.call(
                &caller,
                &name,
                arguments.as_ref(),
                dyn_sink,
                cancel,
                approved_now,
            );
            if let Some(s) = &sink {
                s.flush();
            }
            r
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        watch_cancel.abort();
        if let Some(task) = progress {
            let _ = task.await;
        }
        Ok(CallToolResponse::Complete(result))
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.own_task(&context, &request.task_id)?;
        Ok(GetTaskResult::new(
            self.inner.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.own_task(&context, &request.task_id)?;
        self.inner.tasks.cancel_task(&request.task_id)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A session with an `initialize` handshake: push list changes to it.
        let peer = context.peer.clone();
        let mut rx = self.inner.changes.clone();
        rx.mark_unchanged();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        requested
            .tools_list_changed
            .filter(|b| *b)
            .map(|_| SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // 2026-07-28: `subscriptions/listen` carries the list changes.
        let mut rx = self.inner.changes.clone();
        rx.mark_unchanged();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = rx.changed() => {
                    if changed.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
