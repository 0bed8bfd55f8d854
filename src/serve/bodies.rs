//! The JSON bodies of `gathm serve` that are not shared with the CLI: the
//! error body, lists, the replies of parallel and chain, the artifacts
//! listing, and the OpenAI-compatible bodies. The handlers serialise these
//! types and `openapi.rs` derives the document's schemas from them
//! (`utoipa`), so the two cannot drift.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::Envelope;
use crate::state::jobs::{JobKind, JobStatus, PublicJob};

/// Present, possibly `null` (`Some(None)`), or absent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Every gathm error: `{"error": …}` with the fields that say more. A
/// refused run's error also carries the whole run envelope (its fields
/// beside `error`).
#[derive(ToSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong (a short code such as `rate_limited`, or a sentence).
    pub error: String,
    /// More about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A longer explanation (unavailable state, configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The policy rule that decided a refusal (`null`: the default).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub rule: Option<Option<String>>,
    /// The pipeline step a refusal is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `internal_error` for a panic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A state: `shutting_down`, `not_ready`, or the job's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The accepted values of a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// A pipeline's problems, each located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<Value>>,
    /// The rate limit that refused the request (requests per window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Seconds to wait (also in `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<f64>,
    /// Which limit: `"principal"` or `{"tool": name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// A job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An artifact's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An artifact's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The largest URL, head or artifact served, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// `GATHM_MAX_QUEUE_DEPTH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_depth: Option<u64>,
    /// `GATHM_MAX_EXECUTIONS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_executions: Option<u64>,
    /// `GATHM_MAX_STREAMS_PER_CLIENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams_per_client: Option<u64>,
    /// MCP sessions one principal may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
}

/// `GET /api/v1/ping`.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct Ping {
    /// `ok`.
    pub status: &'static str,
    /// `gathm-api`.
    pub service: &'static str,
    /// gathm's version.
    pub version: &'static str,
}

/// `GET /api/v1/jobs`: a page, newest first.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct JobList {
    /// Jobs on this page.
    pub count: usize,
    /// The page.
    pub jobs: Vec<PublicJob>,
    /// Pass as `after` for the next page (`null`: the last page).
    pub next: Option<String>,
}

/// `POST /api/v1/agent/parallel`: every result in the given order.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct ParallelReply {
    /// `success` when every run succeeded, else `error`.
    pub status: &'static str,
    /// gathm's exit code for the whole.
    pub exit_code: i32,
    /// How many results.
    pub count: usize,
    /// The envelopes, in the order of the items.
    pub results: Vec<Envelope>,
}

/// One file of a job's artifacts.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct Artifact {
    /// Path inside `artifacts/`, `/`-separated.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Where to GET it (the name percent-encoded).
    pub url: String,
}

/// `GET /api/v1/jobs/{id}/artifacts`.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct ArtifactList {
    /// The job.
    pub job_id: String,
    /// Its state (nothing is listed before it ends).
    pub status: JobStatus,
    /// How many are listed.
    pub count: usize,
    /// More than 1,000 files: the first 1,000 by name are listed.
    pub truncated: bool,
    /// The largest file served (`GATHM_MAX_ARTIFACT_MB`).
    pub max_bytes: u64,
    /// The files.
    pub artifacts: Vec<Artifact>,
}

/// The errors of `/v1/*`, in OpenAI's shape.
#[derive(ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct OpenAIError {
    /// The error.
    pub error: OpenAIErrorDetail,
}

/// The inside of an [`OpenAIError`].
#[derive(ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct OpenAIErrorDetail {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error`, `permission_error`, `rate_limit_error`,
    /// `timeout_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending parameter, e.g. `messages[2].role`.
    pub param: Option<String>,
    /// `invalid_api_key`, `permission_denied`, `approval_required`,
    /// `model_not_found`, `not_found`, `rate_limit_exceeded`, `timeout`,
    /// `tool_failed`, `circuit_open`, `service_unavailable`, …
    pub code: Option<String>,
}

/// One model of `GET /v1/models`: a chat tool.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct Model {
    /// The model name (a chat tool's `chat` block).
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// The manifest's modification time (epoch seconds).
    pub created: u64,
    /// `gathm:<tool>`.
    pub owned_by: String,
}

/// `GET /v1/models`.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<Model>,
}

/// Token counts of a completion (estimated: one token per 4 characters).
#[derive(ToSchema, Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// The prompt's.
    pub prompt_tokens: u64,
    /// The reply's.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

impl Usage {
    /// The counts of a prompt and a reply.
    pub fn new(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
        }
    }
}

/// The assistant's message.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The reply text.
    pub content: String,
}

/// The one choice of a completion.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct Choice {
    /// 0.
    pub index: u32,
    /// The reply.
    pub message: AssistantMessage,
    /// Always `null`.
    #[schema(value_type = Option<String>)]
    pub logprobs: Option<()>,
    /// `stop`, or `length` when `max_tokens` was reached.
    pub finish_reason: &'static str,
}

/// `POST /v1/chat/completions` without `stream`.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-<job id>`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Epoch seconds.
    pub created: u64,
    /// The model asked for.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// The last event of a job's stream (`event: done`). Fields in name order,
/// as they have always been written.
#[derive(ToSchema, Debug, Clone, Serialize)]
pub struct DoneEvent {
    /// `done`.
    pub event: &'static str,
    /// gathm's exit code for the run (`null` when it never ran).
    pub exit_code: Option<i32>,
    /// The job's final state.
    pub status: JobStatus,
}

// ------------------------------------------------------------ request bodies
//
// The handlers read these bodies field by field (to answer each wrong field
// with its own 400); these types describe what they accept, and a test
// below deserialises the bodies the handlers accept into them.

/// Arguments: a list, or one string split like a shell would (quotes and
/// backslashes, no expansion).
#[derive(ToSchema, Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Args {
    /// Passed as they are.
    List(Vec<String>),
    /// Split into words.
    Line(String),
}

/// `POST /api/v1/tools/{name}/execute`.
#[derive(ToSchema, Debug, Clone, Default, Deserialize)]
pub struct ExecuteRequest {
    /// The tool's arguments.
    pub args: Option<Args>,
    /// Seconds (1 to 600); default: the tool's.
    #[schema(minimum = 1, maximum = 600)]
    pub timeout: Option<f64>,
}

/// `POST /api/v1/jobs`. A tool job needs `tool`; a pipeline job (`kind:
/// pipeline`, or any body with `pipeline`) needs `pipeline`.
#[derive(ToSchema, Debug, Clone, Default, Deserialize)]
pub struct JobRequest {
    /// `tool` (default) or `pipeline`.
    pub kind: Option<JobKind>,
    /// A DAG as in `gathm pipeline` (its JSON form); validated before it is
    /// queued.
    pub pipeline: Option<crate::pipeline::Pipeline>,
    /// The tool (kind `tool`).
    pub tool: Option<String>,
    /// Its arguments.
    pub args: Option<Args>,
    /// Execution seconds (1 to 600; time in the queue does not count).
    #[schema(minimum = 1, maximum = 600)]
    pub timeout: Option<f64>,
    /// The final record is POSTed here with `X-Gathm-Signature:
    /// sha256=<HMAC-SHA256 of the body>`; needs `GATHM_CALLBACK_SECRET`.
    pub callback_url: Option<String>,
}

/// `POST /api/v1/agent/parallel`: `items`, or the reference's `tools`.
#[derive(ToSchema, Debug, Clone, Default, Deserialize)]
pub struct ParallelRequest {
    /// The runs (1 to 256).
    pub items: Option<Vec<crate::parallel::Item>>,
    /// The reference's form: `dns a.com, hash x`.
    pub tools: Option<String>,
    /// How many at once (1 to 64; default 4).
    #[schema(minimum = 1, maximum = 64)]
    pub jobs: Option<u32>,
}

/// `POST /api/v1/agent/chain`: `steps`, or the reference's `pipeline`.
#[derive(ToSchema, Debug, Clone, Default, Deserialize)]
pub struct ChainRequest {
    /// The steps; `{prev}` in args is the previous output as one argument.
    pub steps: Option<Vec<crate::chain::Step>>,
    /// The reference's form: `geo -w | ipinfo`.
    pub pipeline: Option<String>,
    /// Per step, seconds (1 to 600).
    #[schema(minimum = 1, maximum = 600)]
    pub timeout: Option<f64>,
}

/// A text part of a message's content.
#[derive(ToSchema, Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// `text` (other parts are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
}

/// A message's content: text, or text parts.
#[derive(ToSchema, Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Text.
    Text(String),
    /// Text parts.
    Parts(Vec<ContentPart>),
}

/// One message of a chat completion request.
#[derive(ToSchema, Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text (`null` for an assistant turn without text).
    pub content: Option<Content>,
}

/// `POST /v1/chat/completions`: OpenAI's request; fields gathm does not use
/// (temperature, tools, …) are ignored.
#[derive(ToSchema, Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// A model of `GET /v1/models`.
    pub model: String,
    /// The conversation (1 to 4,096 messages).
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent `chat.completion.chunk` events.
    #[serde(default)]
    pub stream: bool,
    /// Estimated tokens (4 characters each); the reply stops there with
    /// `finish_reason: length`.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u64>,
    /// The same as `max_tokens`.
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u64>,
    /// Only 1.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_bodies_the_handlers_accept_fit_their_types() {
        let ok = |v: Value| {
            let _: ExecuteRequest = serde_json::from_value(v).unwrap();
        };
        ok(json!({}));
        ok(json!({"args": ["a", "b c"], "timeout": 5}));
        ok(json!({"args": "a 'b c'"}));
        let j: JobRequest = serde_json::from_value(json!({
            "kind": "pipeline",
            "pipeline": {"name": "p", "steps": [{"id": "a", "tool": "ok"}, {"id": "b", "tool": "ok", "needs": "a", "retry": {"attempts": 2}}]}
        }))
        .unwrap();
        assert_eq!(j.pipeline.unwrap().steps.len(), 2);
        let _: JobRequest = serde_json::from_value(
            json!({"tool": "slow", "args": ["1"], "callback_url": "http://127.0.0.1:1/"}),
        )
        .unwrap();
        let _: ParallelRequest =
            serde_json::from_value(json!({"items": [{"tool": "ok", "args": ["x"]}], "jobs": 2}))
                .unwrap();
        let _: ParallelRequest = serde_json::from_value(json!({"tools": "ok x, ok y"})).unwrap();
        let _: ChainRequest = serde_json::from_value(
            json!({"steps": [{"tool": "ok"}, {"tool": "ok", "args": ["{prev}"]}]}),
        )
        .unwrap();
        let _: ChainRequest = serde_json::from_value(json!({"pipeline": "ok | ok"})).unwrap();
        let c: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "m", "stream": true, "max_tokens": 5,
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant", "content": null}]
        }))
        .unwrap();
        assert_eq!(c.messages.len(), 3);
    }

    #[test]
    fn error_fields_round_trip_and_a_null_rule_stays() {
        let v = json!({"error": "forbidden", "detail": "d", "rule": null});
        let b: ErrorBody = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&b).unwrap(), v);
        assert!(serde_json::from_value::<ErrorBody>(json!({"error": "x", "nope": 1})).is_err());
    }
}
