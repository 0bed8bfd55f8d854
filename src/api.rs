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
    /// No slot in a concurrency group (full with `--no-wait`, queue full,
    /// wait timed out, or the group's state unusable).
    ConcurrencyLimit,
    /// stdout or stderr exceeded the capture limit (`GATHM_MAX_OUTPUT_MB`).
    OutputLimit,
    /// A control's state (rate-limit window, required audit log) could not
    /// be read or written: the call was refused (HTTP 503).
    StateUnavailable,
    /// The same because the filesystem is full (ENOSPC/EDQUOT; HTTP 507).
    StorageFull,
}

impl Reason {
    /// The HTTP status and error code of a refusal with this reason, for the
    /// HTTP layer (`None`: the run's envelope is a 200). A control whose
    /// state is unavailable is never a success: 503, or 507 for a full disk.
    pub fn http_refusal(self) -> Option<(u16, &'static str)> {
        match self {
            Reason::Denied => Some((403, "denied")),
            Reason::ApprovalRequired => Some((403, "approval_required")),
            Reason::RateLimited => Some((429, "rate_limited")),
            Reason::NotFound => Some((404, "not_found")),
            Reason::StateUnavailable => Some((503, "state_unavailable")),
            Reason::StorageFull => Some((507, "storage_full")),
            Reason::ConcurrencyLimit => Some((429, "concurrency_limit")),
            _ => None,
        }
    }
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
    /// A fallback not tried: the depth limit or a cycle (see `note`).
    Skipped,
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
    /// Why a hop was skipped (`skipped: depth limit 3 reached`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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

impl Reason {
    /// The name serde gives it (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::CircuitOpen => "circuit_open",
            Reason::RateLimited => "rate_limited",
            Reason::Denied => "denied",
            Reason::ApprovalRequired => "approval_required",
            Reason::NotFound => "not_found",
            Reason::FallbackExhausted => "fallback_exhausted",
            Reason::Interrupted => "interrupted",
            Reason::NotExecutable => "not_executable",
            Reason::ConcurrencyLimit => "concurrency_limit",
            Reason::OutputLimit => "output_limit",
            Reason::StateUnavailable => "state_unavailable",
            Reason::StorageFull => "storage_full",
        }
    }
}

impl AttemptOutcome {
    /// The name serde gives it (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::SpawnFailed => "spawn_failed",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::CircuitOpen => "circuit_open",
            AttemptOutcome::Denied => "denied",
            AttemptOutcome::ApprovalRequired => "approval_required",
            AttemptOutcome::NotFound => "not_found",
            AttemptOutcome::Cached => "cached",
            AttemptOutcome::Skipped => "skipped",
        }
    }
}

impl RunStatus {
    /// The name serde gives it (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Error => "error",
        }
    }
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
    /// State under `GATHM_HOME` that could not be read or written (the
    /// breaker, cache or logs degraded), one sentence each with path and OS
    /// error. Printed on stderr in text mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Envelope {
    /// The envelope as serde_json serialises it, built faster (by hand,
    /// through [`crate::jsonline`]): `gathm serve` answers every execute
    /// with one. A test holds the two to the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(512 + self.output.len() + self.error.len());
        let mut o = crate::jsonline::Object::start(&mut buf);
        o.str("tool", &self.tool)
            .str("run_id", &self.run_id)
            .plain("status", self.status.as_str());
        match self.reason {
            Some(r) => o.plain("reason", r.as_str()),
            None => o.raw("reason", "null"),
        };
        o.i64("exit_code", i64::from(self.exit_code))
            .str("output", &self.output)
            .str("error", &self.error)
            .u64("duration_ms", self.duration_ms)
            .bool("cached", self.cached)
            .objects("attempts", &self.attempts, |o, a| {
                o.str("tool", &a.tool);
                match a.exit_code {
                    Some(c) => o.i64("exit_code", i64::from(c)),
                    None => o.raw("exit_code", "null"),
                };
                o.u64("duration_ms", a.duration_ms)
                    .plain("outcome", a.outcome.as_str())
                    .u64("try_number", u64::from(a.try_number));
                if let Some(r) = &a.rule {
                    o.str("rule", r);
                }
                if let Some(n) = &a.note {
                    o.str("note", n);
                }
            })
            .str("timestamp", &self.timestamp);
        if let Some(s) = &self.served_by {
            o.str("served_by", s);
        }
        if let Some(m) = &self.message {
            o.str("message", m);
        }
        if let Some(r) = &self.rule {
            o.str("rule", r);
        }
        if let Some(w) = &self.retry_after {
            o.value("retry_after", w);
        }
        if !self.warnings.is_empty() {
            o.strs("warnings", &self.warnings);
        }
        o.end();
        buf
    }
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
    /// Category as written: a string stays a string, a list a list.
    pub category: crate::manifest::OneOrMany<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_refusals_are_never_a_success_over_http() {
        assert_eq!(
            Reason::StateUnavailable.http_refusal(),
            Some((503, "state_unavailable"))
        );
        assert_eq!(
            Reason::StorageFull.http_refusal(),
            Some((507, "storage_full"))
        );
        assert_eq!(Reason::OutputLimit.http_refusal(), None);
        let v = serde_json::to_value(Reason::OutputLimit).unwrap();
        assert_eq!(v, "output_limit");
    }

    #[test]
    fn names_are_the_serialised_names() {
        for v in [
            Reason::Timeout,
            Reason::CircuitOpen,
            Reason::RateLimited,
            Reason::Denied,
            Reason::ApprovalRequired,
            Reason::NotFound,
            Reason::FallbackExhausted,
            Reason::Interrupted,
            Reason::NotExecutable,
            Reason::ConcurrencyLimit,
            Reason::OutputLimit,
            Reason::StateUnavailable,
            Reason::StorageFull,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for v in [
            AttemptOutcome::Success,
            AttemptOutcome::Failed,
            AttemptOutcome::Timeout,
            AttemptOutcome::SpawnFailed,
            AttemptOutcome::Interrupted,
            AttemptOutcome::CircuitOpen,
            AttemptOutcome::Denied,
            AttemptOutcome::ApprovalRequired,
            AttemptOutcome::NotFound,
            AttemptOutcome::Cached,
            AttemptOutcome::Skipped,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for v in [RunStatus::Success, RunStatus::Error] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn an_envelope_built_by_hand_is_the_serialised_envelope() {
        let odd = ["", "plain", "say \"hi\"\n", "back\\slash \u{1}", "é ✓ 🙂"];
        for (i, s) in odd.iter().enumerate() {
            let attempt = |n: usize| Attempt {
                tool: s.to_string(),
                exit_code: n.is_multiple_of(2).then_some(-(n as i32)),
                duration_ms: n as u64,
                outcome: [AttemptOutcome::Success, AttemptOutcome::Failed][n % 2],
                try_number: n as u32 + 1,
                rule: (n % 3 == 1).then(|| s.to_string()),
                note: (n % 2 == 1).then(|| format!("{s}{n}")),
            };
            let e = Envelope {
                tool: s.to_string(),
                run_id: format!("{i}{s}"),
                status: [RunStatus::Success, RunStatus::Error][i % 2],
                reason: [None, Some(Reason::Timeout), Some(Reason::RateLimited)][i % 3],
                exit_code: i32::MIN + i as i32,
                output: s.repeat(i * 10),
                error: s.repeat(i),
                duration_ms: u64::MAX - i as u64,
                cached: i % 2 == 1,
                attempts: (0..i).map(attempt).collect(),
                timestamp: s.to_string(),
                served_by: i.is_multiple_of(2).then(|| s.to_string()),
                message: i.is_multiple_of(3).then(|| s.to_string()),
                rule: (i % 2 == 1).then(|| s.to_string()),
                retry_after: [None, Some(1.5), Some(0.0), Some(1e300)][i % 4],
                warnings: (0..i).map(|n| format!("{s}{n}")).collect(),
            };
            let serde = serde_json::to_vec(&e).unwrap();
            assert_eq!(
                String::from_utf8(e.to_json()).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
