//! `/mcp` on `gathm serve`: the MCP handler of `gathm mcp` ([`Gathm`]) over
//! rmcp's streamable HTTP transport.
//!
//! gathm checks each request before rmcp sees it, in the order of the other
//! routes: the cross-origin refusal (an `Origin` other than the server's
//! own, or `Sec-Fetch-Site: cross-site`: 403, the DNS-rebinding defence the
//! MCP spec asks for), authentication (a bearer key, or loopback-only
//! without keys: 401 / 403), draining (503), the body (1 MiB, 413; 30 s,
//! 408). A session belongs to the principal that created it: another
//! principal's request naming it gets the 404 of an unknown session; a
//! principal holds at most [`MAX_SESSIONS_PER_PRINCIPAL`] sessions (429).
//! The principal's role and id travel in the request's extensions as a
//! [`Caller`], which the handler reads for `tools/list`, `tools/call` and the
//! audit actor (`mcp:<principal>`). Each tool call goes through [`Limits`]:
//! the principal's and the tool's rate limits and an execution slot, as
//! `POST /api/v1/tools/{name}/execute`, and is counted in `/metrics`.
//! rmcp's own errors (plain text) become `{"error": …}` JSON; every answer
//! carries the security headers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request};
use axum::response::Response;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;

use super::auth::{self, Principal};
use super::http::{self, Reply, error};
use super::{
    App, allowed_tool_limit, principal_limit, read_body, respond, stream_slot, unauthorized,
};
use crate::api::Envelope;
use crate::mcp::{self, Caller, Gathm, Host};
use crate::runner::Cancel;

/// Sessions one principal may hold at once (older ones end after 5 idle
/// minutes, or with `DELETE /mcp`).
pub const MAX_SESSIONS_PER_PRINCIPAL: usize = 64;

/// The session header of the streamable HTTP transport.
const SESSION: &str = "mcp-session-id";

/// The `/mcp` service of one server (made on the first `/mcp` request,
/// inside the runtime: the handler starts the manifest watcher).
pub(super) struct Mcp {
    service: StreamableHttpService<Gathm, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    /// Session id → the principal that created it.
    owners: Mutex<HashMap<String, String>>,
}

/// Whether a path is the MCP endpoint.
pub(super) fn is_mcp(path: &str) -> bool {
    path == "/mcp" || path == "/mcp/"
}

/// Globs of tools approved for every MCP caller (`GATHM_MCP_APPROVE_TOOLS`,
/// comma-separated).
fn approve_globs() -> Vec<String> {
    std::env::var("GATHM_MCP_APPROVE_TOOLS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect()
}

impl Mcp {
    fn new(app: &Arc<App>) -> Mcp {
        let opts = mcp::Options {
            role: String::new(),
            approve: approve_globs(),
            poll: mcp::poll_interval(),
            host: Some(Arc::new(Limits {
                app: Arc::downgrade(app),
            })),
        };
        let handler = Gathm::new(Arc::clone(&app.ctx), opts);
        let sessions = Arc::new(LocalSessionManager::default());
        // gathm checks Host and Origin itself (above), as for every route.
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(http::MAX_BODY);
        let service =
            StreamableHttpService::new(move || Ok(handler.clone()), Arc::clone(&sessions), config);
        Mcp {
            service,
            sessions,
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// Forget sessions rmcp has ended (idle timeout, `DELETE`, errors).
    async fn prune(&self) {
        let live: HashSet<String> = self
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        if let Ok(mut o) = self.owners.lock() {
            o.retain(|id, _| live.contains(id));
        }
    }
}

/// Serve one `/mcp` request; returns the response and the caller's role
/// (for the access log).
pub(super) async fn handle(
    app: &Arc<App>,
    peer: std::net::SocketAddr,
    parts: Parts,
    body: Body,
) -> (Response, Option<String>) {
    match checked(app, peer, parts, body).await {
        Ok(r) => r,
        Err((reply, role)) => (respond(reply), role),
    }
}

async fn checked(
    app: &Arc<App>,
    peer: std::net::SocketAddr,
    mut parts: Parts,
    body: Body,
) -> Result<(Response, Option<String>), (Reply, Option<String>)> {
    let header = |k: &str| parts.headers.get(k).and_then(|v| v.to_str().ok());
    let host = header("host").map(str::to_string);
    if let Some(why) =
        auth::cross_origin(header("origin"), header("sec-fetch-site"), host.as_deref())
    {
        return Err((error(403, why), None));
    }
    let principal = if app.keys.enabled() {
        match app.keys.authenticate(header("authorization")) {
            Some(p) => p,
            None => return Err((unauthorized(), None)),
        }
    } else if peer.ip().is_loopback() && host.as_deref().is_some_and(auth::is_loopback_host) {
        auth::local()
    } else {
        return Err((error(403, "API keys are required for remote access"), None));
    };
    let role = Some(principal.role.clone());
    let fail = |r: Reply| (r, role.clone());
    if !app.ready.load(Ordering::SeqCst) {
        return Err(fail(error(503, "shutting down").header("Retry-After", "5")));
    }
    let body = read_body(&parts.headers, body).await.map_err(fail)?;
    // rmcp answers a body that is not JSON with 415; it is a bad request.
    let message = if parts.method == Method::POST {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return Err(fail(http::error_with(
                    400,
                    "the body is not JSON",
                    serde_json::json!({"detail": e.to_string()}),
                )));
            }
        }
    } else {
        None
    };
    let mcp = app.mcp.get_or_init(|| Mcp::new(app));
    let session = header(SESSION).map(str::to_string);
    match &session {
        Some(id) => {
            // Every live session has its owner recorded (below, before its
            // id reaches the client): one that is not the caller's, or
            // unknown, is the 404 of an unknown session.
            let owner = mcp.owners.lock().ok().and_then(|o| o.get(id).cloned());
            if owner.is_none_or(|o| o != principal.id) {
                return Err(fail(error(404, "Not Found: Session not found")));
            }
        }
        None if message.as_ref().is_some_and(is_initialize) => {
            mcp.prune().await;
            let held = mcp
                .owners
                .lock()
                .map(|o| o.values().filter(|p| **p == principal.id).count())
                .unwrap_or(0);
            if held >= MAX_SESSIONS_PER_PRINCIPAL {
                return Err(fail(
                    http::error_with(
                        429,
                        "too many MCP sessions for this client; end one (DELETE /mcp) first",
                        serde_json::json!({"max_sessions": MAX_SESSIONS_PER_PRINCIPAL}),
                    )
                    .header("Retry-After", "5"),
                ));
            }
        }
        None => {}
    }
    drop(message);
    // A GET opens the session's standalone SSE stream: it takes a stream
    // slot like a job's stream (GATHM_MAX_STREAMS in total,
    // GATHM_MAX_STREAMS_PER_CLIENT for the principal), held until the
    // stream's connection goes away. (A POST's answer may stream too while
    // a tool runs; those are bounded by the execution slots.)
    let slot = if parts.method == Method::GET {
        Some(stream_slot(app, &principal.id).map_err(fail)?)
    } else {
        None
    };
    parts.extensions.insert(Caller {
        role: principal.role.clone(),
        principal: principal.id.clone(),
    });
    let method = parts.method.clone();
    let json_body = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let req = Request::from_parts(parts, Full::new(axum::body::Bytes::from(body)));
    let resp = mcp.service.handle(req).await;
    let created = resp
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (&session, created) {
        (None, Some(id)) => {
            if let Ok(mut o) = mcp.owners.lock() {
                o.insert(id, principal.id.clone());
            }
        }
        (Some(id), _) if method == Method::DELETE && resp.status().is_success() => {
            if let Ok(mut o) = mcp.owners.lock() {
                o.remove(id);
            }
        }
        _ => {}
    }
    let resp = finish(resp.map(Body::new), json_body).await;
    let streaming = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let resp = match slot {
        // The slot lives as long as the body: dropped when the stream ends
        // or its connection closes.
        Some(slot) if streaming => resp.map(|b| {
            Body::new(b.map_frame(move |frame| {
                let _held = &slot;
                frame
            }))
        }),
        _ => resp,
    };
    Ok((resp, role))
}

/// Whether a message is a JSON-RPC `initialize` request (or a batch with one).
fn is_initialize(message: &Value) -> bool {
    let is_init = |v: &Value| v.get("method").and_then(Value::as_str) == Some("initialize");
    match message {
        Value::Array(a) => a.iter().any(is_init),
        v => is_init(v),
    }
}

/// The security headers on rmcp's answer, and its plain-text errors as
/// `{"error": …}` JSON. rmcp answers a JSON body that is no JSON-RPC message
/// with 415: with a JSON `Content-Type` (`json_body`) that is a 400.
async fn finish(resp: Response, json_body: bool) -> Response {
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let mut resp = if resp.status().as_u16() >= 400 && !json {
        let status = match resp.status().as_u16() {
            415 if json_body => 400,
            s => s,
        };
        let (head, body) = resp.into_parts();
        let text = match http_body_util::Limited::new(body, 64 * 1024)
            .collect()
            .await
        {
            Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_string(),
            Err(_) => String::new(),
        };
        let text = if text.is_empty() {
            head.status
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        } else {
            text
        };
        let mut r = error(status, &text);
        for (k, v) in &head.headers {
            if k != "content-type"
                && k != "content-length"
                && let Ok(v) = v.to_str()
            {
                r = r.header(k.as_str(), v);
            }
        }
        return respond(r);
    } else {
        resp
    };
    let h = resp.headers_mut();
    for (k, v) in http::SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

/// The server's limits and metrics around each MCP tool run.
struct Limits {
    app: Weak<App>,
}

/// Holds a run's execution slot and its place in the server's running
/// synchronous runs (cancelled at shutdown) until dropped.
struct Slot {
    app: Arc<App>,
    n: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.app.sync_runs.lock() {
            m.remove(&self.n);
        }
    }
}

/// A refusal's status and JSON body as text for the MCP result.
fn refusal(r: Reply) -> String {
    format!(
        "refused (HTTP {}): {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    )
}

impl Host for Limits {
    fn begin(
        &self,
        caller: &Caller,
        tool: &str,
        cancel: &Cancel,
    ) -> Result<Box<dyn std::any::Any + Send>, String> {
        let app = self.app.upgrade().ok_or("the server is stopping")?;
        if !app.ready.load(Ordering::SeqCst) {
            return Err("the server is shutting down; try again later".into());
        }
        let p = Principal {
            id: caller.principal.clone(),
            role: caller.role.clone(),
        };
        let pol = app
            .ctx
            .policies()
            .map_err(|e| refusal(super::policies_unavailable(&e)))?;
        principal_limit(&app.ctx, &pol, &p).map_err(refusal)?;
        allowed_tool_limit(&app.ctx, &pol, &p.role, tool).map_err(refusal)?;
        let permit = Arc::clone(&app.executions)
            .try_acquire_owned()
            .map_err(|_| {
                format!(
                    "too many executions running (GATHM_MAX_EXECUTIONS={}); try again shortly",
                    app.opts.max_executions
                )
            })?;
        let n = app.next_run.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = app.sync_runs.lock() {
            m.insert(n, cancel.clone());
        }
        Ok(Box::new(Slot {
            app,
            n,
            _permit: permit,
        }))
    }

    fn end(&self, env: &Envelope) {
        if let Some(app) = self.app.upgrade() {
            app.metrics.execution(env);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_is_recognised() {
        use serde_json::json;
        assert!(is_initialize(
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize"})
        ));
        assert!(is_initialize(
            &json!([{"method":"ping"},{"method":"initialize"}])
        ));
        assert!(!is_initialize(&json!({"method":"tools/list"})));
        assert!(!is_initialize(&json!("initialize")));
        assert!(!is_initialize(&json!([])));
    }

    #[test]
    fn mcp_paths() {
        assert!(is_mcp("/mcp") && is_mcp("/mcp/"));
        assert!(!is_mcp("/mcpx") && !is_mcp("/api/mcp"));
    }
}
