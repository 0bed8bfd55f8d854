//! The OpenAI-compatible endpoint of `gathm serve` (issue 18): `GET
//! /v1/models` and `POST /v1/chat/completions` over the tools whose
//! manifest has a `chat` block.
//!
//! A completion is a job of the job queue (`jobs.rs`): the same
//! `GATHM_MAX_CONCURRENCY` workers, FIFO, `GATHM_MAX_QUEUE_DEPTH` (429 with
//! `Retry-After` beyond), an execution-only timeout (the tool's), the same
//! policy checks as a job submission, and the job is listed in
//! `/api/v1/jobs` like any other. The rendered prompt (`chat.rs`) is the
//! job's stdin (`input: stdin`) or its last argument (`input: arg`).
//!
//! The answer is built on the async side by one task per request that
//! follows the job's events file (`sse::Tail`, the reader of
//! `/api/v1/jobs/{id}/stream`) and looks at the job's state every 20 ms
//! while it runs (in memory) or every [`sse::POLL`] while it waits in the
//! queue (a job store read), never waiting on a blocking thread: stdout lines become
//! reply text as the tool prints them (`chat::Assembler`). With `stream:
//! true` they go out as `chat.completion.chunk` events, then `data:
//! [DONE]`; otherwise one `chat.completion` when the job ends. A client
//! that leaves before the end (and a reply that reaches `max_tokens`) has
//! its job cancelled; so has a queued completion when the server drains
//! (the shutdown waits, bounded, for every completion's last event). Every error has OpenAI's shape `{"error": {"message",
//! "type", "param", "code"}}`, including those the router gives for `/v1/`
//! paths (401, 404, 405, 429, …) (`reshape`).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use axum::response::sse::Event;
use axum::response::{Response, Sse};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::auth::Principal;
use super::bodies::{
    AssistantMessage, ChatCompletion, Choice, Model, ModelList, OpenAIError, OpenAIErrorDetail,
    Usage,
};
use super::http::{self, Reply, Req};
use super::sse::{KEEPALIVE, POLL, Tail, WRITE_TIMEOUT};
use super::{App, HResult, Outcome, StreamSlot, sse_response};
use crate::api::Reason;
use crate::chat::{self, Assembler};
use crate::clock;
use crate::config::Context;
use crate::jobs::{self, Job, JobKind, JobStatus, Jobs, Live, Progress, Submission, SubmitError};
use crate::manifest::{ChatInput, ChatOutput};
use crate::policy::{self, Action, Policies, Verdict};
use crate::registry::Tool;

/// Completions being answered (their followers), for the shutdown to wait on.
static FOLLOWING: AtomicUsize = AtomicUsize::new(0);

/// How many completions are being answered now.
pub(super) fn following() -> usize {
    FOLLOWING.load(Ordering::SeqCst)
}

/// How often a completion looks at its running job (see `Follow::pause`).
const QUICK: Duration = Duration::from_millis(20);

/// An error in OpenAI's shape.
pub(super) fn error(
    status: u16,
    message: &str,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Reply {
    Reply::json(
        status,
        &OpenAIError {
            error: OpenAIErrorDetail {
                message: message.to_string(),
                kind: kind.to_string(),
                param: param.map(str::to_string),
                code: code.map(str::to_string),
            },
        },
    )
}

/// The `type` and `code` of an error status.
fn kind_of(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("permission_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("not_found")),
        405 => ("invalid_request_error", Some("method_not_allowed")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 => ("server_error", Some("service_unavailable")),
        504 => ("timeout_error", Some("timeout")),
        507 => ("server_error", Some("storage_full")),
        s if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// A gathm error reply (`{"error": "…", detail?}`) in OpenAI's shape, with
/// its status and headers (`Retry-After`, `WWW-Authenticate`) kept. Other
/// replies are returned as they are.
pub(super) fn reshape(r: Reply) -> Reply {
    if r.status < 400 {
        return r;
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&r.body) else {
        return r;
    };
    let Some(Value::String(msg)) = o.get("error") else {
        return r;
    };
    let mut message = msg.clone();
    for k in ["detail", "message"] {
        if let Some(Value::String(d)) = o.get(k) {
            message = format!("{message}: {d}");
        }
    }
    let (kind, code) = kind_of(r.status);
    let mut out = error(r.status, &message, kind, code, None);
    out.headers = r.headers;
    out
}

/// The policies, or a 500 in OpenAI's shape when the file is invalid.
fn policies(ctx: &Context) -> Result<Arc<Policies>, Reply> {
    ctx.policies().map_err(|e| {
        error(
            500,
            &format!("invalid policies: {e}"),
            "server_error",
            None,
            None,
        )
    })
}

/// The chat tools the role may discover and run (or run once approved),
/// each model once (the first tool in name order that lists it wins).
fn chat_tools(app: &App, role: &str) -> Result<Vec<(String, Tool)>, Reply> {
    let ctx = &*app.ctx;
    let pol = policies(ctx)?;
    let mut out: Vec<(String, Tool)> = Vec::new();
    for t in ctx.search.scan().tools {
        let Some(c) = &t.manifest.chat else { continue };
        if !policy::decide(&pol, role, &t.name, Action::Discover, false).allowed()
            || policy::decide(&pol, role, &t.name, Action::Execute, false).decision == Verdict::Deny
        {
            continue;
        }
        for m in &c.models {
            if !out.iter().any(|(n, _)| n == m) {
                out.push((m.clone(), t.clone()));
            }
        }
    }
    Ok(out)
}

/// `GET /v1/models`.
pub(super) fn models(app: &Arc<App>, p: &Principal) -> HResult {
    super::permit(&app.ctx, p, Action::Discover)?;
    let data: Vec<Model> = chat_tools(app, &p.role)?
        .into_iter()
        .map(|(id, t)| {
            let created = std::fs::metadata(&t.manifest_path)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            Model {
                id,
                object: "model",
                created,
                owned_by: format!("gathm:{}", t.name),
            }
        })
        .collect();
    Ok(Reply::json(
        200,
        &ModelList {
            object: "list",
            data,
        },
    )
    .into())
}

/// A completion whose job is queued: what the answer needs.
pub(super) struct Pending {
    job: String,
    model: String,
    stream: bool,
    output: ChatOutput,
    max_tokens: Option<u64>,
    prompt_tokens: u64,
    created: u64,
    owner: String,
    admin: bool,
    events: PathBuf,
    slot: Option<StreamSlot>,
}

fn invalid(e: chat::Invalid) -> Reply {
    error(
        400,
        &e.message,
        "invalid_request_error",
        None,
        e.param.as_deref(),
    )
}

/// `POST /v1/chat/completions`: checked and queued here (blocking pool);
/// answered by [`answer`] on the async side.
pub(super) fn completions(app: &Arc<App>, req: &mut Req, p: &Principal) -> HResult {
    let ctx = &*app.ctx;
    super::permit(ctx, p, Action::Execute)?;
    let body = http::read_body(req)?;
    let o = http::json_object(&body, false)?;
    let r = chat::parse(&o).map_err(invalid)?;
    let Some((_, tool)) = chat_tools(app, &p.role)?
        .into_iter()
        .find(|(m, _)| *m == r.model)
    else {
        return Err(error(
            404,
            &format!(
                "The model `{}` does not exist or you do not have access to it.",
                r.model
            ),
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
        ));
    };
    let chat = tool.manifest.chat.clone().unwrap_or_default();
    let pol = policies(ctx)?;
    let d = policy::decide(&pol, &p.role, &tool.name, Action::Execute, false);
    match d.decision {
        Verdict::Allow => {}
        Verdict::ApprovalRequired => {
            return Err(error(
                403,
                &format!(
                    "model `{}` (tool {}) needs an admin's approval for this role: submit a job instead",
                    r.model, tool.name
                ),
                "permission_error",
                Some("approval_required"),
                Some("model"),
            ));
        }
        Verdict::Deny => {
            return Err(error(
                403,
                &d.message,
                "permission_error",
                Some("permission_denied"),
                Some("model"),
            ));
        }
    }
    let prompt = chat::render(&r.messages);
    let (args, stdin) = match chat.input {
        ChatInput::Stdin => (Vec::new(), Some(prompt.clone())),
        ChatInput::Arg => (vec![prompt.clone()], None),
    };
    if let Some(d) = policy::check_args(&pol, &args) {
        return Err(error(
            400,
            &format!("the prompt is refused: {}", d.message),
            "invalid_request_error",
            Some("prompt_refused"),
            Some("messages"),
        ));
    }
    super::tool_limit(ctx, &p.role, &tool.name)?;
    let slot = if r.stream {
        Some(super::stream_slot(app, &p.id)?)
    } else {
        None
    };
    let s = Submission {
        kind: JobKind::Tool,
        tool: tool.name.clone(),
        args,
        stdin,
        ..Submission::default()
    };
    let job = match app.jobs.submit(&p.id, &p.role, s) {
        Ok(job) => job,
        Err(SubmitError::QueueFull(n)) => {
            return Err(error(
                429,
                &format!("the job queue is full ({n} waiting): retry later"),
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                None,
            )
            .header("Retry-After", "1"));
        }
        Err(SubmitError::ShuttingDown) => {
            return Err(error(
                503,
                "shutting down: no new completions",
                "server_error",
                Some("service_unavailable"),
                None,
            )
            .header("Retry-After", "5"));
        }
        Err(SubmitError::Invalid(m)) => {
            return Err(error(400, &m, "invalid_request_error", None, None));
        }
        Err(SubmitError::KeyReused(m)) => {
            return Err(error(422, &m, "invalid_request_error", None, None));
        }
        Err(SubmitError::Store { status, message }) => {
            let (kind, code) = kind_of(status);
            return Err(error(
                status,
                &format!("could not store the job: {message}"),
                kind,
                code,
                None,
            ));
        }
    };
    Ok(Outcome::Chat(Box::new(Pending {
        events: jobs::events_path(ctx, &job.id),
        job: job.id,
        model: r.model,
        stream: r.stream,
        output: chat.output,
        max_tokens: r.max_tokens,
        prompt_tokens: chat::tokens(&prompt),
        created: clock::now().max(0.0) as u64,
        owner: p.id.clone(),
        admin: super::is_admin(ctx, &p.role),
        slot,
    })))
}

/// How a completion ended.
enum End {
    /// The tool finished (`stop`) or the reply reached `max_tokens` (`length`).
    Finished(&'static str),
    /// An error: status, message, type, code.
    Failed(u16, String, &'static str, Option<&'static str>),
}

/// Follows a completion's job: its events file and its state.
struct Follow {
    jobs: Jobs,
    id: String,
    owner: String,
    admin: bool,
    tail: Tail,
    live: Option<Arc<Live>>,
    asm: Assembler,
    /// Cancel the job when dropped before the end (client gone).
    armed: bool,
    /// The last read stopped at the chunk size: read again before sleeping.
    more: bool,
    /// When following began.
    since: Instant,
}

impl Drop for Follow {
    fn drop(&mut self) {
        if self.armed {
            self.cancel();
        }
        FOLLOWING.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Follow {
    /// Cancel the job on the blocking pool (the cancel waits for its record).
    fn cancel(&mut self) {
        self.armed = false;
        let (jobs, id, owner, admin) = (
            self.jobs.clone(),
            self.id.clone(),
            self.owner.clone(),
            self.admin,
        );
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn_blocking(move || jobs.cancel(&id, &owner, admin));
        }
    }

    /// Time to the next look: [`QUICK`] while the job runs (its output and
    /// end are in memory) and for its first second in the queue, else
    /// [`POLL`] (a job store read each time).
    fn pause(&self) -> Duration {
        if self.live.is_some() || self.since.elapsed() < Duration::from_secs(1) {
            QUICK
        } else {
            POLL
        }
    }

    /// New reply text, and the end once known. Never waits.
    fn poll(&mut self) -> (Vec<String>, Option<End>) {
        let mut out = Vec::new();
        if self.live.is_none() {
            let Some((job, live)) = self.jobs.wait_started(&self.id, Duration::ZERO) else {
                return (out, Some(gone()));
            };
            match live {
                Some(l) => self.live = Some(l),
                None if job.status.terminal() => {
                    self.read_all(&mut out);
                    let end = self.end_of(Some(job));
                    return (out, Some(end));
                }
                // Shutting down: a queued completion will not run for this
                // client; its job is cancelled rather than left for a restart.
                None if job.status != JobStatus::Running && self.jobs.draining() => {
                    self.cancel();
                    return (
                        out,
                        Some(End::Failed(
                            503,
                            "the server is shutting down: the completion was cancelled before it ran"
                                .into(),
                            "server_error",
                            Some("service_unavailable"),
                        )),
                    );
                }
                // Queued, or it ended between the two looks (read next time).
                None => return (out, None),
            }
        }
        if self.read(&mut out) {
            return (out, Some(End::Finished("length")));
        }
        let Some(live) = &self.live else {
            return (out, None);
        };
        match live.wait(self.tail.read, Duration::ZERO) {
            Progress::Done(..) => {
                if self.read_all(&mut out) {
                    return (out, Some(End::Finished("length")));
                }
                let job = self.jobs.get(&self.id, &self.owner, self.admin);
                let end = self.end_of(job);
                (out, Some(end))
            }
            Progress::More(_) | Progress::Idle => (out, None),
        }
    }

    /// Read what is new (one chunk); true when `max_tokens` was reached.
    fn read(&mut self, out: &mut Vec<String>) -> bool {
        let (cut, more) = self.read_chunk(out);
        self.more = more;
        cut
    }

    /// Read everything written so far; true when `max_tokens` was reached.
    fn read_all(&mut self, out: &mut Vec<String>) -> bool {
        loop {
            let (cut, more) = self.read_chunk(out);
            if cut {
                return true;
            }
            if !more {
                return false;
            }
        }
    }

    fn read_chunk(&mut self, out: &mut Vec<String>) -> (bool, bool) {
        let (lines, more) = self.tail.poll();
        for (_, data) in lines {
            let Ok(Value::Object(e)) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if e.get("event").and_then(Value::as_str) != Some("output")
                || e.get("stream").and_then(Value::as_str) != Some("stdout")
            {
                continue;
            }
            if let Some(Value::String(line)) = e.get("line")
                && let Some(d) = self.asm.line(line)
            {
                out.push(d);
            }
            if self.asm.cut() {
                return (true, false);
            }
        }
        (false, more)
    }

    /// The end of a job that has stopped.
    fn end_of(&self, job: Option<Job>) -> End {
        let Some(job) = job else { return gone() };
        match job.status {
            JobStatus::Completed => End::Finished("stop"),
            JobStatus::Cancelled if job.reason.as_deref() == Some("shutdown") => End::Failed(
                503,
                "the server shut down while the completion ran".into(),
                "server_error",
                Some("service_unavailable"),
            ),
            JobStatus::Cancelled => End::Failed(
                500,
                format!("the completion's job {} was cancelled", job.id),
                "server_error",
                Some("cancelled"),
            ),
            _ => failed(&job),
        }
    }
}

fn gone() -> End {
    End::Failed(
        500,
        "the completion's job is gone".into(),
        "server_error",
        None,
    )
}

/// The error of a failed job: its timeout (504), a refusal of the run path
/// (rate limit, breaker, …), or the tool's failure with its stderr's end.
fn failed(job: &Job) -> End {
    let env = job.envelope.as_ref();
    let reason = env.and_then(|e| e.reason);
    if reason == Some(Reason::Timeout) || job.reason.as_deref() == Some("timeout") {
        let secs = env
            .map(|e| format!(" after {:.1} s", e.duration_ms as f64 / 1000.0))
            .unwrap_or_default();
        return End::Failed(
            504,
            format!("the chat tool {} timed out{secs}", job.tool),
            "timeout_error",
            Some("timeout"),
        );
    }
    if reason == Some(Reason::CircuitOpen) {
        return End::Failed(
            503,
            format!("the chat tool {} is unavailable (circuit open)", job.tool),
            "server_error",
            Some("circuit_open"),
        );
    }
    if let Some((status, code)) = reason.and_then(Reason::http_refusal) {
        let kind = kind_of(status).0;
        let msg = env
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| code.to_string());
        return End::Failed(status, msg, kind, Some(code));
    }
    let stderr = env.map(|e| e.error.trim()).unwrap_or("");
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        chars[chars.len().saturating_sub(500)..].iter().collect()
    };
    let code = job
        .exit_code
        .map(|c| format!(" (exit {c})"))
        .unwrap_or_default();
    let mut msg = format!("the chat tool {} failed{code}", job.tool);
    if !tail.is_empty() {
        msg = format!("{msg}: {tail}");
    }
    End::Failed(500, msg, "server_error", Some("tool_failed"))
}

fn usage(prompt: u64, completion: u64) -> Value {
    serde_json::to_value(Usage::new(prompt, completion)).unwrap_or(Value::Null)
}

/// Answer a queued completion: a stream, or one JSON object at the end.
pub(super) async fn answer(app: Arc<App>, mut p: Pending) -> Response {
    FOLLOWING.fetch_add(1, Ordering::SeqCst);
    let follow = Follow {
        jobs: app.jobs.clone(),
        id: p.job.clone(),
        owner: p.owner.clone(),
        admin: p.admin,
        tail: Tail::new(p.events.clone()),
        live: None,
        asm: Assembler::new(p.output, p.max_tokens),
        armed: true,
        more: false,
        since: Instant::now(),
    };
    if p.stream {
        let slot = p.slot.take();
        let job = p.job.clone();
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream(tx, follow, &p).await;
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut resp = sse_response(Sse::new(body));
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&job) {
            h.insert("X-Gathm-Job", v);
        }
        return resp;
    }
    let (text, end, completion) = complete(follow).await;
    let r = match end {
        End::Finished(reason) => Reply::json(
            200,
            &ChatCompletion {
                id: format!("chatcmpl-{}", p.job),
                object: "chat.completion",
                created: p.created,
                model: p.model.clone(),
                choices: vec![Choice {
                    index: 0,
                    message: AssistantMessage {
                        role: "assistant",
                        content: text,
                    },
                    logprobs: None,
                    finish_reason: reason,
                }],
                usage: Usage::new(p.prompt_tokens, completion),
            },
        ),
        End::Failed(status, msg, kind, code) => error(status, &msg, kind, code, None),
    };
    super::respond(r.header("X-Gathm-Job", p.job.clone()))
}

/// Follow the job to its end, collecting the reply.
async fn complete(mut f: Follow) -> (String, End, u64) {
    let mut text = String::new();
    loop {
        let (deltas, end) = f.poll();
        for d in deltas {
            text.push_str(&d);
        }
        if let Some(end) = end {
            let tokens = f.asm.tokens();
            if matches!(end, End::Finished("length")) {
                f.cancel();
            }
            f.armed = false;
            return (text, end, tokens);
        }
        if !f.more {
            tokio::time::sleep(f.pause()).await;
        }
    }
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

    async fn json(&mut self, v: &Value) -> Result<(), Gone> {
        self.send(Event::default().data(v.to_string())).await
    }
}

async fn stream(
    tx: mpsc::Sender<Result<Event, Infallible>>,
    mut f: Follow,
    p: &Pending,
) -> Result<(), Gone> {
    let mut out = Out {
        tx,
        last_sent: Instant::now(),
    };
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": format!("chatcmpl-{}", p.job),
            "object": "chat.completion.chunk",
            "created": p.created,
            "model": p.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    out.json(&chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ))
    .await?;
    loop {
        let (deltas, end) = f.poll();
        for d in deltas {
            out.json(&chunk(json!({"content": d}), Value::Null)).await?;
        }
        match end {
            Some(End::Finished(reason)) => {
                if reason == "length" {
                    f.cancel();
                }
                f.armed = false;
                let mut last = chunk(json!({}), json!(reason));
                last["usage"] = usage(p.prompt_tokens, f.asm.tokens());
                out.json(&last).await?;
                break;
            }
            Some(End::Failed(status, msg, kind, code)) => {
                f.armed = false;
                let mut e = Map::new();
                e.insert("message".into(), msg.into());
                e.insert("type".into(), kind.into());
                e.insert("param".into(), Value::Null);
                e.insert("code".into(), code.map_or(Value::Null, Value::from));
                e.insert("status".into(), status.into());
                out.json(&json!({"error": e})).await?;
                break;
            }
            None => {
                if out.tx.is_closed() {
                    return Err(Gone);
                }
                if out.last_sent.elapsed() >= KEEPALIVE {
                    out.send(Event::default().comment("keepalive")).await?;
                }
                if !f.more {
                    tokio::time::sleep(f.pause()).await;
                }
            }
        }
    }
    out.send(Event::default().data("[DONE]")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn gathm_errors_take_openai_shape_and_keep_headers() {
        let r = reshape(super::super::unauthorized());
        assert_eq!(r.status, 401);
        assert_eq!(
            body(&r),
            json!({"error": {"message": "Unauthorized", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        );
        assert!(r.headers.iter().any(|(k, _)| k == "WWW-Authenticate"));
        let r = reshape(
            http::error_with(429, "rate_limited", json!({"detail": "slow down"}))
                .header("Retry-After", "3"),
        );
        let v = body(&r);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["message"], "rate_limited: slow down");
        assert!(r.headers.contains(&("Retry-After".into(), "3".into())));
        // Already OpenAI-shaped, or not an error: unchanged.
        let o = error(
            404,
            "m",
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
        );
        assert_eq!(reshape(o.clone()).body, o.body);
        let ok = Reply::json(200, &json!({"error": "not an error"}));
        assert_eq!(reshape(ok.clone()).body, ok.body);
        assert_eq!(kind_of(504), ("timeout_error", Some("timeout")));
        assert_eq!(kind_of(502), ("server_error", None));
        assert_eq!(kind_of(413), ("invalid_request_error", None));
    }
}
