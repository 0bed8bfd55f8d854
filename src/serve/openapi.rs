//! The OpenAPI 3.1 description of `gathm serve`, served at
//! `GET /api/openapi.json`: every route, its request body and its answers.
//!
//! The schemas of the types the CLI and the server share (`api.rs`: the run
//! envelope, attempts, reasons, tool lists) are derived from those serde
//! types with `utoipa`, so they cannot drift; they allow no property the
//! type does not have. The routes and the remaining bodies (jobs, pipelines,
//! errors, built as JSON by the handlers) are described here by hand.
//! `tests/it/serve_openapi.rs` checks every route's real responses against
//! the whole document.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::api::{Attempt, AttemptOutcome, Envelope, Reason, RunStatus, ToolList, ToolSummary};
use crate::ask::{AskAnswer, AskRequest, Candidate};

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
    Candidate
)))]
struct Derived;

/// The schemas derived from the `api.rs` types; each serialises exactly its
/// fields, so extra properties are refused.
fn derived_schemas() -> Map<String, Value> {
    let doc = serde_json::to_value(Derived::openapi()).unwrap_or(Value::Null);
    let mut schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for s in schemas.values_mut() {
        if let Value::Object(o) = s
            && o.get("type") == Some(&json!("object"))
        {
            o.insert("additionalProperties".into(), false.into());
        }
    }
    schemas
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
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
        schemas.insert("ArtifactList".into(), artifact_list());
    }
    if let Some(Value::Object(paths)) = doc.pointer_mut("/paths") {
        paths.extend(artifact_paths());
    }
    doc
}

/// The body of `GET /api/v1/jobs/{id}/artifacts` (`serve/artifacts.rs`).
fn artifact_list() -> Value {
    json!({"type": "object", "additionalProperties": false,
    "required": ["job_id", "status", "count", "truncated", "max_bytes", "artifacts"],
    "properties": {
        "job_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "awaiting_approval", "running", "completed", "failed", "cancelled"]},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean", "description": "more than 1,000 files: the first 1,000 by name are listed"},
        "max_bytes": {"type": "integer", "description": "the largest file served (GATHM_MAX_ARTIFACT_MB)"},
        "artifacts": {"type": "array", "items": {"type": "object", "additionalProperties": false,
            "required": ["name", "size", "url"],
            "properties": {
                "name": {"type": "string", "description": "path inside artifacts/, `/`-separated"},
                "size": {"type": "integer"},
                "url": {"type": "string", "description": "where to GET it (the name percent-encoded)"}
            }}}
    }})
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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "description": "Every error. Some carry more: detail, rule, step, allowed, diagnostics, limit, retry_after, scope, max_queue_depth, max_executions, max_streams_per_client, max_bytes; refused runs carry the whole envelope.", "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "rule": {"type": "string"}}},
                "Args": {"oneOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string", "description": "Split like a shell would: quotes and backslashes, no expansion"}
                ]},
                "ExecuteRequest": {"type": "object", "properties": {
                    "args": r("Args"),
                    "timeout": {"type": "number", "minimum": 1, "maximum": 600, "description": "Seconds; default: the tool's"}
                }},
                "JobRequest": {"type": "object", "description": "A tool job needs `tool`; a pipeline job (`kind: pipeline`, or any body with `pipeline`) needs `pipeline`", "properties": {
                    "kind": {"type": "string", "enum": ["tool", "pipeline"], "default": "tool"},
                    "pipeline": r("Pipeline"),
                    "tool": {"type": "string"}, "args": r("Args"),
                    "timeout": {"type": "number", "minimum": 1, "maximum": 600, "description": "Execution seconds (time in the queue does not count)"},
                    "callback_url": {"type": "string", "description": "The final record is POSTed here with X-Gathm-Signature: sha256=<HMAC-SHA256 of the body>; needs GATHM_CALLBACK_SECRET"}
                }},
                "Pipeline": {"type": "object", "required": ["steps"], "description": "A DAG as in `gathm pipeline` (its JSON form); validated before it is queued", "properties": {
                    "name": {"type": "string"},
                    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 31536000},
                    "steps": {"type": "array", "items": {"type": "object", "required": ["id", "tool"], "properties": {
                        "id": {"type": "string"}, "tool": {"type": "string"},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "needs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                        "when": {"type": "string"},
                        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 31536000},
                        "continue_on_error": {"type": "boolean"},
                        "retry": {"type": "object", "properties": {"attempts": {"type": "integer", "minimum": 1, "maximum": 100}, "delay": {"type": "number"}, "backoff": {"type": "number"}, "max_delay": {"type": "number"}}}
                    }}}
                }},
                "Job": {"type": "object", "additionalProperties": false,
                    "required": ["id", "kind", "tool", "args", "status", "reason", "exit_code", "created_at", "started_at", "finished_at", "timeout", "stdout_lines", "stderr_lines", "line_count", "approved", "envelope"],
                    "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string", "enum": ["tool", "pipeline"]}, "tool": {"type": "string", "description": "`pipeline` for pipeline jobs"},
                    "pipeline": r("Pipeline"),
                    "result": {"type": "object", "description": "A pipeline job's result once it ended: every step's status, exit code and output"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "status": {"type": "string", "enum": ["pending", "awaiting_approval", "running", "completed", "failed", "cancelled"]},
                    "reason": {"type": ["string", "null"]}, "exit_code": {"type": ["integer", "null"]},
                    "created_at": {"type": "number", "description": "epoch seconds"},
                    "started_at": {"type": ["number", "null"]}, "finished_at": {"type": ["number", "null"]},
                    "completed_at": {"type": ["number", "null"], "description": "the reference's name for `finished_at`"},
                    "attempts": {"type": "integer", "description": "tries of the tool asked for (its manifest's `retry`); 0 before it ran"},
                    "output": {"type": "string", "description": "stdout so far (lines joined with \\n), bounded by the capture limit"},
                    "error": {"type": ["string", "null"], "description": "stderr of a failed job"},
                    "timeout": {"type": ["number", "null"]}, "callback_url": {"type": "string"},
                    "stdout_lines": {"type": "integer"}, "stderr_lines": {"type": "integer"}, "line_count": {"type": "integer"},
                    "approved": {"type": "boolean"},
                    "envelope": {"oneOf": [r("Envelope"), {"type": "null"}]},
                    "detail": {"type": "string"}
                }},
                "OpenAIError": {"type": "object", "required": ["error"], "additionalProperties": false, "description": "The errors of /v1/* in OpenAI's shape", "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "additionalProperties": false, "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "description": "invalid_request_error, permission_error, rate_limit_error, timeout_error or server_error"},
                    "param": {"type": ["string", "null"], "description": "the offending parameter, e.g. messages[2].role"},
                    "code": {"type": ["string", "null"], "description": "invalid_api_key, permission_denied, approval_required, model_not_found, not_found, method_not_allowed, prompt_refused, rate_limit_exceeded, timeout, tool_failed, cancelled, circuit_open, service_unavailable, storage_full, …"}
                }}}},
                "ChatMessage": {"type": "object", "required": ["role"], "properties": {
                    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                    "content": {"oneOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": {"type": "object", "required": ["type", "text"], "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}}]}
                }},
                "ChatCompletionRequest": {"type": "object", "required": ["model", "messages"], "description": "OpenAI's request; fields gathm does not use (temperature, tools, …) are ignored", "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array", "minItems": 1, "maxItems": 4096, "items": r("ChatMessage")},
                    "stream": {"type": "boolean", "default": false},
                    "max_tokens": {"type": "integer", "minimum": 1, "description": "estimated tokens (4 characters each); the reply stops there with finish_reason length"},
                    "max_completion_tokens": {"type": "integer", "minimum": 1},
                    "n": {"const": 1}
                }},
                "Usage": {"type": "object", "description": "estimated: one token per 4 characters", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
                    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}
                }},
                "ChatCompletion": {"type": "object", "additionalProperties": false, "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
                    "id": {"type": "string", "description": "chatcmpl-<job id>"},
                    "object": {"const": "chat.completion"},
                    "created": {"type": "integer"}, "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"], "properties": {
                        "index": {"type": "integer"}, "logprobs": {"type": "null"},
                        "message": {"type": "object", "required": ["role", "content"], "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}},
                        "finish_reason": {"type": "string", "enum": ["stop", "length"]}
                    }}},
                    "usage": r("Usage")
                }},
                "ModelList": {"type": "object", "additionalProperties": false, "required": ["object", "data"], "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["id", "object", "created", "owned_by"], "properties": {
                        "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"}, "owned_by": {"type": "string", "description": "gathm:<tool>"}
                    }}}
                }},
                "JobList": {"type": "object", "properties": {"jobs": {"type": "array", "items": r("Job")}, "count": {"type": "integer"}, "next": {"type": ["string", "null"], "description": "pass as `after` for the next page (newest first)"}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/ping": {"get": {"summary": "Liveness (public, does no work)", "security": [], "responses": {"200": ok("ok", json!({"type": "object", "properties": {"status": {"type": "string"}, "service": {"type": "string"}, "version": {"type": "string"}}}))}}},
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
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"type": "object", "required": ["tool"], "properties": {"tool": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}}}}},
                    "tools": {"type": "string", "description": "the reference's form: 'dns a.com, hash x'"},
                    "jobs": {"type": "integer", "minimum": 1, "maximum": 64, "default": 4}}}}}},
                "responses": common(json!({"200": ok("results in the given order", json!({"type": "object", "properties": {
                    "status": {"type": "string"}, "exit_code": {"type": "integer"}, "count": {"type": "integer"},
                    "results": {"type": "array", "items": r("Envelope")}}})), "400": err("malformed body"), "403": err("no tool:execute")}))}},
            "/api/v1/agent/ask": {"post": {"summary": "Route a plain-language request to a tool, as `gathm ask` does (tool:execute): deterministic scoring over names, tags, categories and descriptions of the tools the role may discover",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("AskRequest")}}},
                "responses": common(json!({"200": ok("the best match and alternatives", r("AskAnswer")),
                    "400": err("malformed body"), "403": err("no tool:execute"), "422": err("blank or over 16,000 characters")}))}},
            "/api/v1/agent/chain": {"post": {"summary": "Run tools one after another, stdout to stdin (tool:execute); {prev} in args is the previous output as one argument",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "steps": {"type": "array", "items": {"type": "object", "required": ["tool"], "properties": {"tool": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}}}}},
                    "pipeline": {"type": "string", "description": "the reference's form: 'geo -w | ipinfo'"},
                    "timeout": {"type": "number", "description": "per step, seconds"}}}}}},
                "responses": common(json!({"200": ok("every step's envelope", json!({"type": "object", "properties": {
                    "steps": {"type": "array", "items": r("Envelope")}, "failed_step": {"type": ["integer", "null"]}, "exit_code": {"type": "integer"}}})),
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
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "description": "the same key from the same owner within GATHM_JOB_TTL returns the original job", "schema": {"type": "string", "maxLength": 255}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": r("JobRequest")}}},
                    "responses": common(json!({
                        "202": ok("accepted (stored durably); awaiting_approval when the role needs approval for the tool", r("Job")),
                        "400": err("malformed JSON, wrong types, invalid tool name or callback_url"),
                        "403": err("denied"), "404": err("no such tool"), "413": err("body over 1 MiB"),
                        "503": err("shutting down, or the job store cannot be written (read-only home)"),
                        "507": err("the disk is full: nothing was stored")
                    }))}
            },
            "/api/v1/jobs/{id}": {
                "get": {"summary": "A job, with its envelope once it ended (tool:discover; 404 if not yours)", "parameters": [path_param("id", "job id")],
                    "responses": common(json!({"200": ok("job", r("Job")), "404": err("no such job, or not yours")}))},
                "delete": {"summary": "Cancel: kills the whole process group (tool:execute)", "parameters": [path_param("id", "job id")],
                    "responses": common(json!({"200": ok("the job (detail set when it had already ended)", r("Job")), "404": err("no such job, or not yours")}))}
            },
            "/api/v1/jobs/{id}/stream": {"get": {"summary": "Server-sent events: every output line (id: line number; Last-Event-ID resumes), keep-alives every 15 s, then event: done",
                "parameters": [path_param("id", "job id"), {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "integer"}}],
                "responses": common(json!({"200": {"description": "text/event-stream; data: {\"event\":\"output\",\"stream\":\"stdout\"|\"stderr\",\"line\":...} (pipeline jobs: step_started, step_retrying, step_finished events); last: event: done, data: {\"event\":\"done\",\"status\":...,\"exit_code\":...}", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, "404": err("no such job, or not yours"), "429": err("this client already holds GATHM_MAX_STREAMS_PER_CLIENT streams, or rate limited"), "503": err("too many open streams (GATHM_MAX_STREAMS)")}))}},
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
                "responses": common(json!({"200": ok("the job, now pending", r("Job")), "404": err("no such job"), "409": err("not awaiting approval")}))}}
        }
    })
}
