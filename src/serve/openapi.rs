//! The OpenAPI 3.1 description of `gathm serve`, served at
//! `GET /api/openapi.json`: every route, its request body and its answers.
//!
//! Every schema is derived with `utoipa` from the serde type the handlers
//! serialise (or, for request bodies, the type that describes what they
//! accept): the run envelope and tool lists (`api.rs`), the job record
//! (`state::jobs::PublicJob`), pipelines and their `result`
//! (`pipeline.rs`), the stream's events, the error bodies and the other
//! replies (`bodies.rs`). Response schemas allow no property their type
//! does not have, so they cannot drift. Only the routes (paths, statuses,
//! summaries) are listed here by hand.
//! `tests/it/serve_openapi.rs` checks every route's real responses against
//! the whole document.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::bodies::{
    Args, Artifact, ArtifactList, AssistantMessage, ChainRequest, ChatCompletion,
    ChatCompletionRequest, ChatMessage, Choice, Content, ContentPart, DoneEvent, ErrorBody,
    ExecuteRequest, JobList, JobRequest, Model, ModelList, OpenAIError, OpenAIErrorDetail,
    ParallelReply, ParallelRequest, Ping, Usage,
};
use crate::api::{Attempt, AttemptOutcome, Envelope, Reason, RunStatus, ToolList, ToolSummary};
use crate::ask::{AskAnswer, AskRequest, Candidate};
use crate::chain::ChainResult;
use crate::chain::Step as ChainStep;
use crate::manifest::{Diagnostic, Severity};
use crate::parallel::Item as ParallelItem;
use crate::pipeline::{
    Event as StepEvent, Pipeline, PipelineResult, PipelineStatus, Retry, Step as PipelineStep,
    StepResult, StepStatus,
};
use crate::state::jobs::{JobKind, JobStatus, OutputEvent, PublicJob};

#[derive(OpenApi)]
#[openapi(components(schemas(
    Envelope,
    Attempt,
    AttemptOutcome,
    Reason,
    RunStatus,
    ToolSummary,
    ToolList,
    AskRequest,
    AskAnswer,
    Candidate,
    PublicJob,
    JobKind,
    JobStatus,
    JobList,
    ErrorBody,
    Ping,
    ParallelReply,
    ChainResult,
    Artifact,
    ArtifactList,
    OpenAIError,
    OpenAIErrorDetail,
    Model,
    ModelList,
    Usage,
    AssistantMessage,
    Choice,
    ChatCompletion,
    Args,
    ExecuteRequest,
    JobRequest,
    ParallelRequest,
    ParallelItem,
    ChainRequest,
    ChainStep,
    ContentPart,
    Content,
    ChatMessage,
    ChatCompletionRequest,
    Pipeline,
    PipelineStep,
    Retry,
    PipelineResult,
    PipelineStatus,
    StepResult,
    StepStatus,
    Diagnostic,
    Severity,
    OutputEvent,
    StepEvent,
    DoneEvent
)))]
struct Derived;

/// Schemas that allow properties their type does not name.
const OPEN: &[&str] = &[
    "ErrorBody",
    "ExecuteRequest",
    "JobRequest",
    "ParallelRequest",
    "ParallelItem",
    "ChainRequest",
    "ChainStep",
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
];

/// The schemas derived from the `api.rs` types; each serialises exactly its
/// fields, so extra properties are refused.
fn derived_schemas() -> Map<String, Value> {
    let doc = serde_json::to_value(Derived::openapi()).unwrap_or(Value::Null);
    let mut schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, s) in schemas.iter_mut() {
        // A refused run's error carries the envelope's fields too (the
        // type denies unknown fields only to catch a handler's typo);
        // request bodies may carry fields gathm ignores.
        if OPEN.contains(&name.as_str()) {
            if let Value::Object(o) = s {
                o.remove("additionalProperties");
            }
            continue;
        }
        if let Value::Object(o) = s
            && o.get("type") == Some(&json!("object"))
        {
            o.insert("additionalProperties".into(), false.into());
        }
    }
    schemas
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

fn common(mut responses: Value) -> Value {
    if let Value::Object(o) = &mut responses {
        o.insert(
            "401".into(),
            err("Missing or invalid bearer token (WWW-Authenticate: Bearer)"),
        );
        o.insert(
            "403".into(),
            err("Forbidden: permission missing, cross-origin, or remote access without keys"),
        );
        o.insert(
            "429".into(),
            err("Rate limited (Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining), or every execution slot is taken (GATHM_MAX_EXECUTIONS; Retry-After)"),
        );
        o.entry("400").or_insert_with(|| {
            err("A malformed request: a repeated Host, Content-Length, Sec-Fetch-Site or Origin header")
        });
        o.insert("408".into(), err("The body was not received within 30 s"));
        o.insert(
            "413".into(),
            err("Body over 1 MiB (declared, chunked or lying)"),
        );
        o.insert("414".into(), err("URL over 8 KiB"));
        o.insert(
            "431".into(),
            err("Request head over 64 KiB (hyper answers far larger heads with an empty body)"),
        );
        o.insert("500".into(), err("Invalid configuration (policies, manifest), or an internal error (a handler panicked)"));
    }
    responses
}

fn oerr(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}})
}

/// The answers every `/v1/*` route may give, errors in OpenAI's shape.
fn openai(mut responses: Value) -> Value {
    if let Value::Object(o) = &mut responses {
        for (status, desc) in [
            ("400", "A malformed request"),
            (
                "401",
                "invalid_api_key: missing or invalid bearer token (WWW-Authenticate: Bearer)",
            ),
            (
                "403",
                "permission_denied or approval_required: permission missing, cross-origin, or remote access without keys",
            ),
            ("408", "The body was not received within 30 s"),
            ("413", "Body over 1 MiB"),
            ("414", "URL over 8 KiB"),
            ("429", "rate_limit_exceeded (Retry-After)"),
            ("431", "Request head over 64 KiB"),
            ("500", "Invalid configuration or an internal error"),
        ] {
            o.entry(status).or_insert_with(|| oerr(desc));
        }
    }
    responses
}

/// The whole document.
pub fn spec() -> Value {
    let mut doc = described();
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.extend(derived_schemas());
    }
    if let Some(Value::Object(paths)) = doc.pointer_mut("/paths") {
        paths.extend(artifact_paths());
    }
    doc
}

/// The artifacts routes (`serve/artifacts.rs`).
fn artifact_paths() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "/api/v1/jobs/{id}/artifacts".into(),
        json!({"get": {"summary": "Files the job's isolated tool left in its workspace's artifacts/ folder (tool:discover; 404 if not yours); empty until the job ends",
            "parameters": [path_param("id", "job id")],
            "responses": common(json!({"200": ok("artifacts", r("ArtifactList")), "404": err("no such job, or not yours")}))}}),
    );
    let mut content = Map::new();
    let types = super::artifacts::TYPES.iter().map(|(_, t)| *t);
    for t in types.chain([super::artifacts::OCTETS]) {
        let bare = t.split(';').next().unwrap_or(t).trim();
        content.insert(
            bare.into(),
            json!({"schema": {"description": "the file's bytes"}}),
        );
    }
    let mut fetch = common(json!({
        "200": {"description": "the file, as an attachment (Content-Type from a few inert extensions, else application/octet-stream)", "content": content},
        "400": err("a name with `..`, `.`, an empty part, a leading `/`, a NUL byte, a backslash or a bad escape"),
        "404": err("no such job or artifact (a symlink leading out of the folder is not found)")
    }));
    if let Value::Object(o) = &mut fetch {
        // A GET has no body: 413 is the artifact's size here.
        o.insert(
            "413".into(),
            err("the artifact is larger than GATHM_MAX_ARTIFACT_MB (max_bytes, size)"),
        );
    }
    m.insert(
        "/api/v1/jobs/{id}/artifacts/{name}".into(),
        json!({"get": {"summary": "One artifact's bytes (tool:discover), as an attachment; `name` may contain `/`",
            "parameters": [path_param("id", "job id"), path_param("name", "path inside artifacts/, percent-encoded")],
            "responses": fetch}}),
    );
    m
}

fn described() -> Value {
    let any = json!({});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "gathm API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Run tools described by tool.yaml manifests behind a circuit breaker, fallbacks, a cache, policies and rate limits. Errors are always JSON {\"error\": ...}. Auth: Authorization: Bearer <token> (GATHM_API_KEYS); without keys only loopback clients are served."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/ping": {"get": {"summary": "Liveness (public, does no work)", "security": [], "responses": {"200": ok("ok", r("Ping"))}}},
            "/healthz": {"get": {"summary": "Liveness (public)", "security": [], "responses": {"200": ok("ok", any.clone())}}},
            "/readyz": {"get": {"summary": "Readiness (public): 503 while shutting down", "security": [], "responses": {"200": ok("ready", any.clone()), "503": err("shutting down")}}},
            "/metrics": {"get": {"summary": "Prometheus text (tool:healthcheck)", "responses": common(json!({"200": {"description": "text/plain; version=0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}))}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": common(json!({"200": ok("OpenAPI 3.1", any.clone())}))}},
            "/api/v1/tools": {"get": {"summary": "Tools the role may discover (tool:discover)",
                "parameters": [{"name": "category", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": common(json!({"200": ok("tools", r("ToolList"))}))}},
            "/api/v1/tools/{name}": {"get": {"summary": "A tool's manifest (tool:discover)", "parameters": [path_param("name", "tool name")],
                "responses": common(json!({"200": ok("manifest", any.clone()), "400": err("invalid tool name"), "404": err("not found")}))}},
            "/api/v1/tools/{name}/execute": {"post": {"summary": "Run a tool synchronously (tool:execute); the envelope of `gathm run --json`",
                "parameters": [path_param("name", "tool name")],
                "requestBody": {"required": false, "content": {"application/json": {"schema": r("ExecuteRequest")}}},
                "responses": common(json!({
                    "200": ok("the run's envelope: a tool that ran and failed is status error here, not a 5xx", r("Envelope")),
                    "400": err("malformed JSON, wrong types, invalid tool name"),
                    "403": err("denied or approval_required (the envelope plus error)"),
                    "404": err("no such tool (the envelope plus error)"),
                    "413": err("body over 1 MiB"),
                    "503": err("shutting down")
                }))}},
            "/api/v1/health": {"get": {"summary": "Health of every tool (tool:healthcheck)", "responses": common(json!({"200": ok("health", json!({"type": "array", "items": any.clone()}))}))}},
            "/api/v1/health/{tool}": {"get": {"summary": "Health of one tool (tool:healthcheck)", "parameters": [path_param("tool", "tool name")],
                "responses": common(json!({"200": ok("health", any.clone()), "400": err("invalid tool name"), "404": err("not found")}))}},
            "/api/v1/agent/status": {"get": {"summary": "Version, paths, tools, breakers, cache (tool:discover)", "responses": common(json!({"200": ok("status", any.clone())}))}},
            "/api/v1/agent/parallel": {"post": {"summary": "Run several tools at once, synchronously (tool:execute); each item goes through the run path (policy, limits, cache, breaker, fallbacks)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("ParallelRequest")}}},
                "responses": common(json!({"200": ok("results in the given order", r("ParallelReply")), "400": err("malformed body"), "403": err("no tool:execute")}))}},
            "/api/v1/agent/ask": {"post": {"summary": "Route a plain-language request to a tool, as `gathm ask` does (tool:execute): deterministic scoring over names, tags, categories and descriptions of the tools the role may discover",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("AskRequest")}}},
                "responses": common(json!({"200": ok("the best match and alternatives", r("AskAnswer")),
                    "400": err("malformed body"), "403": err("no tool:execute"), "422": err("blank or over 16,000 characters")}))}},
            "/api/v1/agent/chain": {"post": {"summary": "Run tools one after another, stdout to stdin (tool:execute); {prev} in args is the previous output as one argument",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("ChainRequest")}}},
                "responses": common(json!({"200": ok("every step's envelope", r("ChainResult")),
                    "400": err("malformed body"), "403": err("no tool:execute")}))}},
            "/api/v1/jobs": {
                "get": {"summary": "Your jobs (admins: all), newest first, a page at a time (tool:discover)",
                    "parameters": [
                        {"name": "status", "in": "query", "required": false, "schema": {"type": "string", "enum": ["pending", "awaiting_approval", "running", "completed", "failed", "cancelled"]}},
                        {"name": "tool", "in": "query", "required": false, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                        {"name": "after", "in": "query", "required": false, "description": "the `next` of the previous page", "schema": {"type": "string"}}
                    ],
                    "responses": common(json!({"200": ok("jobs", r("JobList")), "400": err("invalid status")}))},
                "post": {"summary": "Submit a job (tool:execute): 202 and Location. A body with `pipeline` (a DAG as in `gathm pipeline`, as JSON) is a pipeline job whose stream carries step_started / step_retrying / step_finished events",
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "description": "the same key from the same owner within GATHM_JOB_TTL returns the original job; the same key with a different request is 422", "schema": {"type": "string", "maxLength": 255}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": r("JobRequest")}}},
                    "responses": common(json!({
                        "202": ok("accepted (stored durably); awaiting_approval when the role needs approval for the tool", r("PublicJob")),
                        "400": err("malformed JSON, wrong types, invalid tool name or callback_url"),
                        "403": err("denied"), "404": err("no such tool"), "413": err("body over 1 MiB"),
                        "422": err("the Idempotency-Key was used for a different request"),
                        "503": err("shutting down, or the job store cannot be written (read-only home)"),
                        "507": err("the disk is full: nothing was stored")
                    }))}
            },
            "/api/v1/jobs/{id}": {
                "get": {"summary": "A job, with its envelope once it ended (tool:discover; 404 if not yours)", "parameters": [path_param("id", "job id")],
                    "responses": common(json!({"200": ok("job", r("PublicJob")), "404": err("no such job, or not yours")}))},
                "delete": {"summary": "Cancel: kills the whole process group (tool:execute)", "parameters": [path_param("id", "job id")],
                    "responses": common(json!({"200": ok("the job (detail set when it had already ended)", r("PublicJob")), "404": err("no such job, or not yours")}))}
            },
            "/api/v1/jobs/{id}/stream": {"get": {"summary": "Server-sent events: every output line (id: line number; Last-Event-ID resumes), keep-alives every 15 s, then event: done. The stream follows the job as it writes (a notification, and a look every second for output another process appends); a client that reads nothing for GATHM_SSE_WRITE_TIMEOUT (30 s) is dropped and its slot freed",
                "parameters": [path_param("id", "job id"), {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "integer"}}],
                "responses": common(json!({"200": {"description": "text/event-stream; data: {\"event\":\"output\",\"stream\":\"stdout\"|\"stderr\",\"line\":...} (pipeline jobs: step_started, step_retrying, step_finished events); last: event: done, data: {\"event\":\"done\",\"status\":...,\"exit_code\":...}", "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-data": {"description": "the JSON `data` of each event", "oneOf": [r("OutputEvent"), r("StepEvent"), r("DoneEvent")]}}}}, "404": err("no such job, or not yours"), "429": err("this client already holds GATHM_MAX_STREAMS_PER_CLIENT streams, or rate limited"), "503": err("too many open streams (GATHM_MAX_STREAMS)")}))}},
            "/v1/models": {"get": {"summary": "OpenAI-compatible: the models of the chat tools (manifest `chat` block) the role may discover and run (tool:discover)",
                "responses": openai(json!({"200": ok("models", r("ModelList"))}))}},
            "/v1/chat/completions": {"post": {"summary": "OpenAI-compatible chat completion (tool:execute): the messages rendered into the chat tool's prompt, run as a job of the job queue (listed in /api/v1/jobs; GATHM_MAX_CONCURRENCY, FIFO, GATHM_MAX_QUEUE_DEPTH, the tool's timeout counting execution only). stream: true answers chat.completion.chunk events, then data: [DONE]; an error after the stream began is a data: {\"error\": …} event",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("ChatCompletionRequest")}}},
                "responses": openai(json!({
                    "200": {"description": "a chat.completion, or (stream: true) text/event-stream of chat.completion.chunk objects, the last with finish_reason and usage, then data: [DONE]",
                        "content": {"application/json": {"schema": r("ChatCompletion")}, "text/event-stream": {"schema": {"type": "string"}}}},
                    "400": oerr("malformed JSON, wrong types, unknown role, non-text content, prompt refused by validation (input: arg)"),
                    "404": oerr("model_not_found: no chat tool the role may use has this model"),
                    "429": oerr("rate_limit_exceeded: the job queue is full (GATHM_MAX_QUEUE_DEPTH; Retry-After), a rate limit, or every stream slot of this client is taken"),
                    "500": oerr("tool_failed (its stderr's end), cancelled, invalid configuration"),
                    "503": oerr("shutting down, circuit open, or the job store cannot be written"),
                    "504": oerr("timeout: the chat tool ran longer than its timeout"),
                    "507": oerr("the disk is full: nothing was stored")
                }))}},
            "/mcp": {
                "post": {"summary": "MCP over streamable HTTP (JSON-RPC; the MCP specification describes the messages): the tools the key's role may use, each call a run as execute (README, MCP)",
                    "responses": common(json!({"200": {"description": "text/event-stream of JSON-RPC messages (progress, then the response)", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        "202": {"description": "a notification or response was accepted"},
                        "400": err("not JSON, no JSON-RPC message"), "404": err("unknown session, or another principal's"),
                        "406": err("Accept lacks application/json or text/event-stream"), "415": err("Content-Type is not application/json"),
                        "503": err("shutting down")}))},
                "get": {"summary": "MCP: the session's server-to-client stream (Mcp-Session-Id)",
                    "responses": common(json!({"200": {"description": "text/event-stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, "404": err("unknown session, or another principal's")}))},
                "delete": {"summary": "MCP: end a session (Mcp-Session-Id)",
                    "responses": common(json!({"200": {"description": "ended"}, "404": err("unknown session, or another principal's")}))}
            },
            "/api/v1/jobs/{id}/approve": {"post": {"summary": "Approve a job awaiting approval (admin, permission *)", "parameters": [path_param("id", "job id")],
                "responses": common(json!({"200": ok("the job, now pending", r("PublicJob")), "404": err("no such job"), "409": err("not awaiting approval")}))}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_schema_comes_from_a_type() {
        let doc = spec();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 50);
        for r in &all {
            let ptr = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(ptr).is_some(), "{r} does not resolve");
        }
        // No schema is written by hand: the components are the derived ones.
        let derived = derived_schemas();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut names: Vec<_> = schemas.keys().collect();
        names.retain(|n| !derived.contains_key(*n));
        assert!(names.is_empty(), "hand-written schemas: {names:?}");
        // The job record's pipeline result and the stream's events are described.
        assert_eq!(
            schemas["PublicJob"]["properties"]["result"]["oneOf"][0]["$ref"],
            "#/components/schemas/PipelineResult"
        );
        for e in ["OutputEvent", "StepEvent", "DoneEvent"] {
            assert!(schemas.contains_key(e), "{e}");
        }
    }
}
