//! Serde types shared by `--json` output and HTTP bodies: the run envelope,
//! attempts, and the shapes of list/show/status answers.

use serde::{Deserialize, Serialize};

/// Why a run ended without the tool deciding (PRODUCT.md §3).
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The process group was killed at the timeout.
    Timeout,
    /// The breaker refused and no fallback ran.
    CircuitOpen,
    /// A rate limit refused.
    RateLimited,
    /// Policy or argument validation refused.
    Denied,
    /// The tool needs approval.
    ApprovalRequired,
    /// No such tool.
    NotFound,
    /// Every fallback was tried and failed.
    FallbackExhausted,
    /// SIGINT/SIGTERM or a cancel.
    Interrupted,
    /// Found but could not be started.
    NotExecutable,
}

/// What happened to one attempt.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Exit 0.
    Success,
    /// Non-zero exit.
    Failed,
    /// Killed at the timeout.
    Timeout,
    /// Could not be started.
    SpawnFailed,
    /// Cancelled or interrupted.
    Interrupted,
    /// The breaker refused it.
    CircuitOpen,
    /// Policy refused it (a fallback hop).
    Denied,
    /// It needs approval (a fallback hop).
    ApprovalRequired,
    /// The fallback name does not exist.
    NotFound,
    /// Replayed from the cache.
    Cached,
}

/// One attempt in a run.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Tool name.
    pub tool: String,
    /// Its exit code (null when it did not run).
    pub exit_code: Option<i32>,
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// 1-based try number within the tool's retries.
    #[serde(default = "one")]
    pub try_number: u32,
    /// The policy rule, for denied hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

fn one() -> u32 {
    1
}

/// `"success"` or `"error"`.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The tool or a fallback succeeded.
    Success,
    /// Anything else.
    Error,
}

/// The envelope of one run, the same for `--json` and HTTP.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The tool asked for.
    pub tool: String,
    /// Unique id of this run.
    pub run_id: String,
    /// Success or error.
    pub status: RunStatus,
    /// A non-tool outcome, or null.
    pub reason: Option<Reason>,
    /// gathm's exit code for this run (always present, 0 included).
    pub exit_code: i32,
    /// stdout of the attempt that decided the result.
    pub output: String,
    /// stderr of that attempt.
    pub error: String,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Replayed from the cache.
    pub cached: bool,
    /// Every attempt, fallbacks included.
    pub attempts: Vec<Attempt>,
    /// When the run started (RFC 3339, UTC).
    pub timestamp: String,
    /// The tool that produced the result, when it was a fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// A human sentence for non-tool outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The policy rule for denials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Seconds to wait (rate limited, circuit open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<f64>,
}

/// A tool in `list`.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSummary {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Version.
    pub version: String,
    /// Categories.
    pub category: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Needs the network.
    pub requires_internet: bool,
    /// Fallbacks in order.
    pub fallback_tool: Vec<String>,
    /// Manifest path.
    pub path: String,
}

/// `list --json` and `GET /api/v1/tools`.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolList {
    /// Tools.
    pub tools: Vec<ToolSummary>,
    /// How many.
    pub count: usize,
}
