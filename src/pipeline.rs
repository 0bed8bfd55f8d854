//! `gathm pipeline`: a DAG of tool runs described in YAML (or JSON) and run
//! with bounded parallelism (PRODUCT.md §6).
//!
//! ```yaml
//! name: recon
//! timeout: 300                 # whole run, seconds
//! steps:
//!   - id: resolve
//!     tool: dns
//!     args: [example.com]
//!     retry: {attempts: 3, delay: 1, backoff: 2, max_delay: 10}
//!     timeout: 20
//!   - id: probe
//!     tool: httpprobe
//!     needs: [resolve]
//!     args: ["https://${steps.resolve.output}"]
//!     when: "steps.resolve.exit_code == 0"
//!     continue_on_error: true
//! ```
//!
//! [`parse`] reads the file, [`validate`] rejects unknown tools, unknown or
//! duplicate ids, cycles, bad `when` expressions and templates that read
//! steps not in `needs` (all with file:line:col) before anything runs, and
//! [`run`] schedules the steps: a step starts once everything in its `needs`
//! has finished and its condition holds, within `-j` and each tool's
//! `max_concurrency`. Every tool run goes through [`run::run`].
//!
//! Conditions: a step without `when` runs only if every step in its `needs`
//! succeeded (or failed with `continue_on_error`); otherwise it is `skipped`,
//! and so, in turn, are its own dependants. A step with `when` runs if and
//! only if the expression holds once its `needs` have finished (use
//! `success() && …` to keep the default as well). The pipeline timeout or an
//! interrupt cancels every running step (its whole process group) and marks
//! the steps not yet started `cancelled`.

pub mod dag;
pub mod template;
pub mod when;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use crate::api::{Envelope, Reason, RunStatus};
use crate::config::Context;
use crate::error::code;
use crate::manifest::{Diagnostic, Severity, yaml_diag};
use crate::parallel::run_caught;
use crate::registry;
use crate::retry;
use crate::run::Member;
use crate::runner;
use crate::slots::{self, Slots};

use self::template::Piece;
use self::when::{Expr, Facts, Field};

/// Retries of one step: the same setting as a manifest's `retry`.
pub use crate::retry::Retry;

/// One step of a pipeline.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(as = PipelineStep)]
pub struct Step {
    /// Unique id (letters, digits, `-`, `_`).
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// Arguments; may contain `${steps.ID.output}` and friends.
    #[serde(default, deserialize_with = "de_args")]
    pub args: Vec<String>,
    /// Steps that must finish first (one id or a list).
    #[serde(default, deserialize_with = "de_needs")]
    pub needs: Vec<String>,
    /// Run only if this expression holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Retries of the step as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Timeout of each attempt, seconds (default: the tool's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 31536000)]
    pub timeout: Option<f64>,
    /// A failure does not fail the pipeline nor skip dependants.
    #[serde(default)]
    pub continue_on_error: bool,
}

/// A pipeline. Deserializes from YAML (through [`parse`]) or JSON.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// A name for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Timeout of the whole run, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 31536000)]
    pub timeout: Option<f64>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Where the pipeline came from, for diagnostics (filled by [`parse`]).
    #[serde(skip)]
    pub source: Source,
}

/// Locations of a pipeline's parts in its file (for a pipeline deserialized
/// from JSON: the file `(pipeline)` and no locations, so diagnostics read
/// `(pipeline): error: step "b": …`; set `file` to name the request).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file named in diagnostics.
    pub file: PathBuf,
    /// Location of `timeout`.
    pub timeout: Option<(u64, u64)>,
    /// Per step, in order.
    pub steps: Vec<StepSpans>,
}

impl Default for Source {
    fn default() -> Source {
        Source {
            file: PathBuf::from("(pipeline)"),
            timeout: None,
            steps: Vec::new(),
        }
    }
}

/// Locations of one step's parts (line, column).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepSpans {
    /// The step itself.
    pub at: Option<(u64, u64)>,
    /// `id` value.
    pub id: Option<(u64, u64)>,
    /// `tool` value.
    pub tool: Option<(u64, u64)>,
    /// `args` value.
    pub args: Option<(u64, u64)>,
    /// `needs` value.
    pub needs: Option<(u64, u64)>,
    /// `when` value.
    pub when: Option<(u64, u64)>,
    /// `retry` value.
    pub retry: Option<(u64, u64)>,
    /// `timeout` value.
    pub timeout: Option<(u64, u64)>,
}

fn de_needs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        One(Scalar),
        Many(Vec<Scalar>),
    }
    Ok(match Option::<N>::deserialize(d)? {
        None => Vec::new(),
        Some(N::One(s)) => vec![s.into_string()],
        Some(N::Many(v)) => v.into_iter().map(Scalar::into_string).collect(),
    })
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(Scalar::into_string)
}

/// A scalar written as a string, a number or a boolean.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

fn de_args<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Scalar>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(Scalar::into_string)
        .collect())
}

/// The location-only mirror of a pipeline file.
#[derive(Deserialize)]
struct SpanDoc {
    #[serde(default)]
    timeout: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    steps: Vec<Spanned<SpanStep>>,
}

#[derive(Deserialize)]
struct SpanStep {
    #[serde(default)]
    id: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    tool: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    args: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    needs: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    when: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    retry: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    timeout: Option<Spanned<serde::de::IgnoredAny>>,
}

fn at<T>(s: &Option<Spanned<T>>) -> Option<(u64, u64)> {
    s.as_ref()
        .map(|s| (s.referenced.line(), s.referenced.column()))
}

fn spans(text: &str) -> (Option<(u64, u64)>, Vec<StepSpans>) {
    let Ok(doc) = serde_saphyr::from_str_with_options::<SpanDoc>(text, yaml_options()) else {
        return (None, Vec::new());
    };
    let steps = doc
        .steps
        .iter()
        .map(|s| StepSpans {
            at: Some((s.referenced.line(), s.referenced.column())),
            id: at(&s.value.id),
            tool: at(&s.value.tool),
            args: at(&s.value.args),
            needs: at(&s.value.needs),
            when: at(&s.value.when),
            retry: at(&s.value.retry),
            timeout: at(&s.value.timeout),
        })
        .collect();
    (at(&doc.timeout), steps)
}

/// YAML 1.2 booleans only: `yes`, `no`, `on` and `off` stay strings (step ids, arguments).
fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o
}

fn diag(file: &Path, loc: Option<(u64, u64)>, message: String) -> Diagnostic {
    let (line, column) = loc.unwrap_or((0, 0));
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Parse a pipeline file (YAML; JSON is YAML too). `path` names the file in messages.
pub fn parse(path: &Path, text: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![diag(
            path,
            Some((1, 1)),
            "empty pipeline: expected a mapping with `steps`".into(),
        )]);
    }
    let mut p: Pipeline =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            let d = yaml_diag(path, &e);
            // Unknown keys: every one, each at its key with its path and a
            // "did you mean" (pipelines always reject them).
            if d.message.starts_with("unknown field")
                && let Some(tree) = crate::yamlspan::parse(text)
            {
                let found: Vec<Diagnostic> = crate::yamlspan::unknown_keys(&tree, &pipeline_keys())
                    .into_iter()
                    .map(|(_, at, message)| diag(path, Some(at), message))
                    .collect();
                if !found.is_empty() {
                    return found;
                }
            }
            vec![d]
        })?;
    let (timeout, steps) = spans(text);
    p.source = Source {
        file: path.to_path_buf(),
        timeout,
        steps,
    };
    Ok(p)
}

/// The keys a pipeline file may hold, as a JSON Schema for
/// [`crate::yamlspan::unknown_keys`] (kept in step with the serde types by a
/// test).
fn pipeline_keys() -> serde_json::Value {
    let retry = schemars::schema_for!(Retry).to_value();
    let any = serde_json::json!({});
    let step: serde_json::Map<String, serde_json::Value> = STEP_KEYS
        .iter()
        .map(|k| {
            let s = if *k == "retry" {
                retry.clone()
            } else {
                any.clone()
            };
            (k.to_string(), s)
        })
        .collect();
    serde_json::json!({
        "properties": {
            "name": {}, "description": {}, "timeout": {},
            "steps": {"items": {"properties": step}}
        }
    })
}

/// The keys of a step.
const STEP_KEYS: [&str; 8] = [
    "id",
    "tool",
    "args",
    "needs",
    "when",
    "retry",
    "timeout",
    "continue_on_error",
];

/// Whether a step id is usable in references: letters, digits, `-` and `_`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A step index's dependency graph: `needs` resolved to indices (unknown ids dropped).
fn edges(p: &Pipeline) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in p.steps.iter().enumerate() {
        index.entry(s.id.as_str()).or_insert(i);
    }
    p.steps
        .iter()
        .map(|s| {
            let mut v: Vec<usize> = s
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            v.dedup();
            v
        })
        .collect()
}

/// The steps in dependency order: every step after all its needs (a cycle is
/// broken at its first remaining step).
pub fn order(p: &Pipeline) -> Vec<usize> {
    dag::order(&edges(p))
}

fn finite_pos(x: f64) -> bool {
    x > 0.0 && crate::manifest::seconds_ok(x, 0.0)
}

/// The most steps a pipeline may have. The dependency checks are quadratic and
/// pipelines arrive over HTTP too; a thousand steps is far beyond any real one.
pub const MAX_STEPS: usize = 1000;

/// The checks that need no tools: ids, needs, cycles, `when`, templates, numbers.
pub fn check(p: &Pipeline) -> Vec<Diagnostic> {
    let file = p.source.file.as_path();
    let span = |i: usize| p.source.steps.get(i).cloned().unwrap_or_default();
    let mut out = Vec::new();
    if p.steps.is_empty() {
        out.push(diag(file, Some((1, 1)), "the pipeline has no steps".into()));
    }
    if p.steps.len() > MAX_STEPS {
        // The graph checks below are quadratic: refuse before running them.
        out.push(diag(
            file,
            Some((1, 1)),
            format!(
                "the pipeline has {} steps; at most {MAX_STEPS} are allowed",
                p.steps.len()
            ),
        ));
        return out;
    }
    if let Some(t) = p.timeout
        && !finite_pos(t)
    {
        out.push(diag(
            file,
            p.source.timeout,
            format!(
                "timeout must be a positive number of seconds up to {}, not {t}",
                crate::manifest::MAX_SECONDS
            ),
        ));
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, s) in p.steps.iter().enumerate() {
        let sp = span(i);
        if !valid_id(&s.id) {
            out.push(diag(
                file,
                sp.id.or(sp.at),
                format!(
                    "invalid step id {:?}: use letters, digits, '-' and '_'",
                    s.id
                ),
            ));
        }
        if let Some(&j) = first.get(s.id.as_str()) {
            let where_first = span(j)
                .id
                .map(|(l, _)| format!(" (first defined at line {l})"))
                .unwrap_or_else(|| format!(" (first defined as step {})", j + 1));
            out.push(diag(
                file,
                sp.id.or(sp.at),
                format!("duplicate step id {:?}{where_first}", s.id),
            ));
        } else {
            first.insert(s.id.as_str(), i);
        }
    }
    for (i, s) in p.steps.iter().enumerate() {
        let sp = span(i);
        for n in &s.needs {
            if !first.contains_key(n.as_str()) {
                out.push(diag(
                    file,
                    sp.needs.or(sp.at),
                    format!("step {:?} needs unknown step {n:?}", s.id),
                ));
            }
        }
    }
    let needs = edges(p);
    for c in dag::cycles(&needs) {
        let names: Vec<&str> = c.iter().map(|&v| p.steps[v].id.as_str()).collect();
        let sp = span(c[0]);
        out.push(diag(
            file,
            sp.needs.or(sp.at),
            format!("dependency cycle: {}", names.join(" -> ")),
        ));
    }
    let anc = dag::ancestors(&needs);
    for (i, s) in p.steps.iter().enumerate() {
        let sp = span(i);
        let reachable = |id: &str| first.get(id).is_some_and(|j| anc[i].contains(j) && *j != i);
        let check_ref = |id: &str, what: &str, loc: Option<(u64, u64)>| {
            if !first.contains_key(id) {
                Some(diag(
                    file,
                    loc,
                    format!("step {:?}: {what} refers to unknown step {id:?}", s.id),
                ))
            } else if !reachable(id) {
                Some(diag(
                    file,
                    loc,
                    format!(
                        "step {:?}: {what} refers to step {id:?}, which is not in its needs (directly or through other steps)",
                        s.id
                    ),
                ))
            } else {
                None
            }
        };
        if let Some(w) = &s.when {
            match when::parse(w) {
                Ok(e) => {
                    for id in when::refs(&e) {
                        out.extend(check_ref(&id, "`when`", sp.when.or(sp.at)));
                    }
                }
                Err(e) => out.push(diag(
                    file,
                    sp.when.or(sp.at),
                    format!(
                        "step {:?}: invalid `when` at character {}: {}",
                        s.id,
                        e.pos + 1,
                        e.message
                    ),
                )),
            }
        }
        for a in &s.args {
            match template::parse(a) {
                Ok(pieces) => {
                    for id in template::refs(&pieces) {
                        out.extend(check_ref(id, "an argument", sp.args.or(sp.at)));
                    }
                }
                Err(e) => out.push(diag(
                    file,
                    sp.args.or(sp.at),
                    format!("step {:?}: {e}", s.id),
                )),
            }
        }
        if let Some(r) = &s.retry {
            let bad = r.problem();
            if let Some(m) = bad {
                out.push(diag(
                    file,
                    sp.retry.or(sp.at),
                    format!("step {:?}: {m}", s.id),
                ));
            }
        }
        if let Some(t) = s.timeout
            && !finite_pos(t)
        {
            out.push(diag(
                file,
                sp.timeout.or(sp.at),
                format!(
                    "step {:?}: timeout must be a positive number of seconds up to {}, not {t}",
                    s.id,
                    crate::manifest::MAX_SECONDS
                ),
            ));
        }
    }
    out.sort_by_key(|d| (d.line == 0, d.line, d.column));
    out
}

/// Every problem of a pipeline, tools included; empty when it may run.
pub fn validate(ctx: &Context, p: &Pipeline) -> Vec<Diagnostic> {
    let mut out = check(p);
    let file = p.source.file.as_path();
    let mut names: Option<Vec<String>> = None;
    for (i, s) in p.steps.iter().enumerate() {
        let sp = p.source.steps.get(i).cloned().unwrap_or_default();
        let loc = sp.tool.or(sp.at);
        match ctx.search.find(&s.tool) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let names = names.get_or_insert_with(|| {
                    ctx.search
                        .scan()
                        .tools
                        .into_iter()
                        .map(|t| t.name)
                        .collect()
                });
                let sugg = registry::suggestions(&s.tool, names);
                let hint = if sugg.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", sugg.join(", "))
                };
                out.push(diag(
                    file,
                    loc,
                    format!("step {:?}: unknown tool {:?}{hint}", s.id, s.tool),
                ));
            }
            Err(d) => out.push(diag(
                file,
                loc,
                format!(
                    "step {:?}: tool {:?} has an invalid manifest: {d}",
                    s.id, s.tool
                ),
            )),
        }
    }
    out.sort_by_key(|d| (d.line == 0, d.line, d.column));
    out
}

/// What became of a step.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The tool (or a fallback) succeeded.
    Success,
    /// It ran and failed (or was refused: policy, rate limit, breaker).
    Failed,
    /// Its condition was false (or a step it needs did not succeed).
    Skipped,
    /// Killed or never started because of the pipeline timeout or an interrupt.
    Cancelled,
}

impl StepStatus {
    /// The word used in output and `when` expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the word.
    pub fn parse(s: &str) -> Option<StepStatus> {
        match s {
            "success" => Some(StepStatus::Success),
            "failed" => Some(StepStatus::Failed),
            "skipped" => Some(StepStatus::Skipped),
            "cancelled" => Some(StepStatus::Cancelled),
            _ => None,
        }
    }
}

/// The outcome of one step.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct StepResult {
    /// Step id.
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// What became of it.
    pub status: StepStatus,
    /// How many times the step ran its tool (0 when skipped).
    pub attempts: u32,
    /// gathm's exit code of its last run (null when it did not run).
    pub exit_code: Option<i32>,
    /// Wall time of all its attempts.
    pub duration_ms: u64,
    /// Why it was skipped or cancelled, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The envelope of its last run (null when it did not run).
    pub envelope: Option<Envelope>,
    /// The step's `continue_on_error`.
    #[serde(skip)]
    pub continue_on_error: bool,
}

/// How the whole pipeline ended.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStatus {
    /// Every step that ran succeeded (or may fail).
    Success,
    /// A step failed.
    Failed,
    /// The pipeline timeout fired.
    Timeout,
    /// Interrupted or cancelled.
    Interrupted,
    /// Validation failed; nothing ran.
    Invalid,
}

/// The result of a pipeline run.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct PipelineResult {
    /// The pipeline's name.
    pub name: Option<String>,
    /// How it ended.
    pub status: PipelineStatus,
    /// gathm's exit code: 0, the first failed step's code (file order), 124, 130 or 65.
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Every step, in file order.
    pub steps: Vec<StepResult>,
    /// Validation problems (status `invalid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// A progress event, for a terminal display or a job's SSE stream.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[schema(as = StepEvent)]
pub enum Event {
    /// A step started its first attempt.
    StepStarted {
        /// Step id.
        id: String,
        /// Tool name.
        tool: String,
    },
    /// A step failed and will be tried again.
    StepRetrying {
        /// Step id.
        id: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Its exit code.
        exit_code: i32,
        /// Milliseconds before the next attempt.
        delay_ms: u64,
    },
    /// A step ended (also sent for skipped and cancelled steps).
    StepFinished {
        /// Step id.
        id: String,
        /// Tool name.
        tool: String,
        /// What became of it.
        status: StepStatus,
        /// Exit code of its last run (null when it did not run).
        exit_code: Option<i32>,
        /// Attempts made.
        attempts: u32,
        /// Wall time.
        duration_ms: u64,
    },
}

impl Event {
    fn finished(r: &StepResult) -> Event {
        Event::StepFinished {
            id: r.id.clone(),
            tool: r.tool.clone(),
            status: r.status,
            exit_code: r.exit_code,
            attempts: r.attempts,
            duration_ms: r.duration_ms,
        }
    }
}

/// How to run a pipeline.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many steps at once (0 is treated as 1).
    pub jobs: usize,
    /// Role, approval, cancel token and actor shared by every member run.
    pub member: Member,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: slots::default_jobs(),
            member: Member::new("pipeline"),
        }
    }
}

/// What the scheduler knows while deciding a step.
struct Known<'a> {
    p: &'a Pipeline,
    index: &'a HashMap<&'a str, usize>,
    needs: &'a [Vec<usize>],
    anc: &'a [BTreeSet<usize>],
    results: &'a [Option<StepResult>],
    step: usize,
}

impl Known<'_> {
    fn get(&self, id: &str) -> Option<&StepResult> {
        self.index.get(id).and_then(|&i| self.results[i].as_ref())
    }
}

impl Facts for Known<'_> {
    fn status(&self, id: &str) -> Option<StepStatus> {
        self.get(id).map(|r| r.status)
    }
    fn exit_code(&self, id: &str) -> Option<i32> {
        self.get(id).and_then(|r| r.exit_code)
    }
    fn output(&self, id: &str) -> String {
        step_output(self.get(id))
    }
    fn success(&self) -> bool {
        self.needs[self.step].iter().all(|&w| {
            self.results[w].as_ref().is_some_and(|r| {
                r.status == StepStatus::Success
                    || (r.status == StepStatus::Failed && self.p.steps[w].continue_on_error)
            })
        })
    }
    fn failure(&self) -> bool {
        self.anc[self.step].iter().any(|&w| {
            self.results[w]
                .as_ref()
                .is_some_and(|r| r.status == StepStatus::Failed)
        })
    }
}

fn step_output(r: Option<&StepResult>) -> String {
    r.and_then(|r| r.envelope.as_ref())
        .map(|e| e.output.trim().to_string())
        .unwrap_or_default()
}

fn field_text(r: Option<&StepResult>, f: Field) -> String {
    match f {
        Field::Output => step_output(r),
        Field::ExitCode => r
            .and_then(|r| r.exit_code)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        Field::Status => r.map(|r| r.status.as_str().to_string()).unwrap_or_default(),
    }
}

fn not_run(s: &Step, status: StepStatus, message: String) -> StepResult {
    StepResult {
        id: s.id.clone(),
        tool: s.tool.clone(),
        status,
        attempts: 0,
        exit_code: None,
        duration_ms: 0,
        message: Some(message),
        envelope: None,
        continue_on_error: s.continue_on_error,
    }
}

/// Whether a failed run is worth another attempt (refusals that a retry cannot change are not).
fn retryable(e: &Envelope) -> bool {
    !matches!(
        e.reason,
        Some(
            Reason::Denied
                | Reason::ApprovalRequired
                | Reason::NotFound
                | Reason::Interrupted
                | Reason::NotExecutable
        )
    ) && e.exit_code != i32::from(code::USAGE)
}

/// Run one step with its retries (on a worker thread).
fn exec_step(
    ctx: &Context,
    s: &Step,
    args: Vec<String>,
    opts: &Options,
    on_event: &(dyn Fn(&Event) + Sync),
) -> StepResult {
    let t0 = Instant::now();
    on_event(&Event::StepStarted {
        id: s.id.clone(),
        tool: s.tool.clone(),
    });
    let retry = s.retry.clone().unwrap_or_default();
    let tries = retry.attempts.max(1);
    let mut attempt = 1;
    loop {
        let mut req = opts.member.request(&s.tool, &args);
        req.timeout = s.timeout;
        let env = run_caught(ctx, &req);
        let stopped = runner::interrupted() || opts.member.cancel.is_cancelled();
        let status = if env.status == RunStatus::Success {
            StepStatus::Success
        } else if stopped && env.reason == Some(Reason::Interrupted) {
            StepStatus::Cancelled
        } else {
            StepStatus::Failed
        };
        if status == StepStatus::Failed
            && attempt < tries
            && retryable(&env)
            && retry.retries_exit(env.exit_code)
            && !stopped
        {
            let jitter = retry::jitter(&format!("{}{}", env.run_id, s.id), attempt);
            let delay = retry.delay_after(attempt, jitter);
            on_event(&Event::StepRetrying {
                id: s.id.clone(),
                attempt,
                exit_code: env.exit_code,
                delay_ms: (delay * 1000.0) as u64,
            });
            if retry::sleep(delay, &opts.member.cancel) {
                attempt += 1;
                continue;
            }
        }
        let message = match status {
            StepStatus::Cancelled => Some("cancelled while running".to_string()),
            StepStatus::Failed => env.message.clone().or_else(|| {
                env.error
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_string())
            }),
            _ => None,
        };
        return StepResult {
            id: s.id.clone(),
            tool: s.tool.clone(),
            status,
            attempts: attempt,
            exit_code: Some(env.exit_code),
            duration_ms: t0.elapsed().as_millis() as u64,
            message,
            envelope: Some(env),
            continue_on_error: s.continue_on_error,
        };
    }
}

/// Validate and run a pipeline; `on_event` hears every step start, retry and end.
pub fn run(
    ctx: &Context,
    p: &Pipeline,
    opts: &Options,
    on_event: &(dyn Fn(&Event) + Sync),
) -> PipelineResult {
    let t0 = Instant::now();
    let diagnostics = validate(ctx, p);
    if !diagnostics.is_empty() {
        return PipelineResult {
            name: p.name.clone(),
            status: PipelineStatus::Invalid,
            exit_code: i32::from(code::DATA_ERR),
            duration_ms: 0,
            steps: Vec::new(),
            diagnostics,
        };
    }
    let n = p.steps.len();
    let index: HashMap<&str, usize> = p
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let needs = edges(p);
    let anc = dag::ancestors(&needs);
    let whens: Vec<Option<Expr>> = p
        .steps
        .iter()
        .map(|s| s.when.as_deref().and_then(|w| when::parse(w).ok()))
        .collect();
    let templates: Vec<Vec<Vec<Piece>>> = p
        .steps
        .iter()
        .map(|s| {
            s.args
                .iter()
                .map(|a| template::parse(a).unwrap_or_else(|_| vec![Piece::Text(a.clone())]))
                .collect()
        })
        .collect();
    let deadline = p.timeout.map(|t| t0 + Duration::from_secs_f64(t));
    let mut slots = Slots::new(opts.jobs);
    slots.cap_from_manifests(ctx, p.steps.iter().map(|s| s.tool.as_str()));
    let mut results: Vec<Option<StepResult>> = vec![None; n];
    let mut started = vec![false; n];
    let mut timed_out = false;
    let mut interrupted = false;
    let (tx, rx) = mpsc::channel::<(usize, StepResult)>();
    std::thread::scope(|scope| {
        loop {
            if !timed_out && !interrupted {
                if runner::interrupted() || opts.member.cancel.is_cancelled() {
                    interrupted = true;
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                }
                if timed_out || interrupted {
                    opts.member.cancel.cancel();
                }
            }
            let stopping = timed_out || interrupted;
            // Decide every step whose needs have all finished, in file order;
            // repeat while skips unblock more steps.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for i in 0..n {
                    if started[i] || results[i].is_some() {
                        continue;
                    }
                    let s = &p.steps[i];
                    if stopping {
                        let why = if timed_out {
                            "not started: the pipeline timed out"
                        } else {
                            "not started: interrupted"
                        };
                        let r = not_run(s, StepStatus::Cancelled, why.into());
                        on_event(&Event::finished(&r));
                        results[i] = Some(r);
                        continue;
                    }
                    if !needs[i].iter().all(|&w| results[w].is_some()) {
                        continue;
                    }
                    let known = Known {
                        p,
                        index: &index,
                        needs: &needs,
                        anc: &anc,
                        results: &results,
                        step: i,
                    };
                    let go = match &whens[i] {
                        Some(e) => when::eval(e, &known),
                        None => known.success(),
                    };
                    if !go {
                        let why = if whens[i].is_some() {
                            "`when` is false".to_string()
                        } else {
                            let blockers: Vec<&str> = needs[i]
                                .iter()
                                .filter(|&&w| {
                                    results[w]
                                        .as_ref()
                                        .is_some_and(|r| r.status != StepStatus::Success)
                                        && !(p.steps[w].continue_on_error
                                            && results[w]
                                                .as_ref()
                                                .is_some_and(|r| r.status == StepStatus::Failed))
                                })
                                .map(|&w| p.steps[w].id.as_str())
                                .collect();
                            format!("needed step(s) did not succeed: {}", blockers.join(", "))
                        };
                        let r = not_run(s, StepStatus::Skipped, why);
                        on_event(&Event::finished(&r));
                        results[i] = Some(r);
                        progressed = true;
                        continue;
                    }
                    if !slots.acquire(&s.tool) {
                        continue;
                    }
                    let args: Vec<String> = templates[i]
                        .iter()
                        .map(|pieces| {
                            template::render(pieces, &|id, f| {
                                field_text(index.get(id).and_then(|&j| results[j].as_ref()), f)
                            })
                        })
                        .collect();
                    started[i] = true;
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let r = exec_step(ctx, s, args, opts, on_event);
                        let _ = tx.send((i, r));
                    });
                }
            }
            if slots.running() == 0 && results.iter().all(Option::is_some) {
                break;
            }
            let mut wait = Duration::from_millis(25);
            if let Some(d) = deadline
                && !timed_out
            {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            if let Ok((i, r)) = rx.recv_timeout(wait) {
                slots.release(&p.steps[i].tool);
                on_event(&Event::finished(&r));
                results[i] = Some(r);
            }
        }
    });
    let steps: Vec<StepResult> = results
        .into_iter()
        .zip(&p.steps)
        .map(|(r, s)| r.unwrap_or_else(|| not_run(s, StepStatus::Cancelled, "not started".into())))
        .collect();
    let (status, exit_code) = if interrupted {
        (PipelineStatus::Interrupted, i32::from(code::INTERRUPTED))
    } else if timed_out {
        (PipelineStatus::Timeout, i32::from(code::TIMEOUT))
    } else if let Some(f) = steps
        .iter()
        .find(|r| r.status == StepStatus::Failed && !r.continue_on_error)
    {
        (PipelineStatus::Failed, f.exit_code.unwrap_or(1))
    } else {
        (PipelineStatus::Success, 0)
    };
    PipelineResult {
        name: p.name.clone(),
        status,
        exit_code,
        duration_ms: t0.elapsed().as_millis() as u64,
        steps,
        diagnostics: Vec::new(),
    }
}

/// A pipeline's default audit actor: `pipeline:<file name>`.
pub fn actor_for(path: &Path) -> String {
    format!(
        "pipeline:{}",
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    )
}

/// The timestamp-free summary table of a result, for text mode.
pub fn table(r: &PipelineResult) -> String {
    let wid = r.steps.iter().map(|s| s.id.len()).max().unwrap_or(2).max(4);
    let wt = r
        .steps
        .iter()
        .map(|s| s.tool.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<wid$}  {:<wt$}  {:<9}  {:>8}  {:>4}  {:>9}  NOTE\n",
        "STEP", "TOOL", "STATUS", "ATTEMPTS", "EXIT", "TIME"
    );
    for s in &r.steps {
        out.push_str(&format!(
            "{:<wid$}  {:<wt$}  {:<9}  {:>8}  {:>4}  {:>6} ms  {}\n",
            s.id,
            s.tool,
            s.status.as_str(),
            s.attempts,
            s.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            s.duration_ms,
            s.message.as_deref().unwrap_or("")
        ));
    }
    let count = |st: StepStatus| r.steps.iter().filter(|s| s.status == st).count();
    out.push_str(&format!(
        "pipeline{}: {} in {} ms ({} succeeded, {} failed, {} skipped, {} cancelled); exit {}\n",
        r.name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default(),
        serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.duration_ms,
        count(StepStatus::Success),
        count(StepStatus::Failed),
        count(StepStatus::Skipped),
        count(StepStatus::Cancelled),
        r.exit_code
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_is_reported_with_did_you_mean() {
        let text =
            "timout: 5\nsteps:\n  - id: a\n    tool: ok\n    nedds: [b]\n    retry: {atempts: 2}\n";
        let d: Vec<String> = parse(Path::new("p.yaml"), text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            d,
            [
                "p.yaml:1:1: error: unknown key `timout`; did you mean `timeout`?",
                "p.yaml:5:5: error: unknown key `steps.0.nedds`; did you mean `needs`?",
                "p.yaml:6:13: error: unknown key `steps.0.retry.atempts`; did you mean `attempts`?",
            ]
        );
        // The key list follows the type.
        let step = Step {
            id: "a".into(),
            tool: "t".into(),
            args: vec![],
            needs: vec![],
            when: Some("x".into()),
            retry: Some(Retry::default()),
            timeout: Some(1.0),
            continue_on_error: false,
        };
        let v = serde_json::to_value(&step).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = STEP_KEYS.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    fn p(yaml: &str) -> Pipeline {
        parse(Path::new("p.yaml"), yaml).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn messages(yaml: &str) -> Vec<String> {
        check(&p(yaml)).iter().map(|d| d.to_string()).collect()
    }

    const GOOD: &str = "\
name: demo
timeout: 30
steps:
  - id: a
    tool: ok
    args: [1, true, x]
  - id: b
    tool: ok
    needs: a
    args: ['${steps.a.output}']
  - id: c
    tool: ok
    needs: [b]
    args: [yes, no, on, True]
    when: steps.a.exit_code == 0 && steps.b.status == 'success'
    retry: {attempts: 3, delay: 0.1}
    continue_on_error: true
";

    #[test]
    fn parses_yaml_with_locations() {
        let pl = p(GOOD);
        assert_eq!(pl.steps.len(), 3);
        assert_eq!(pl.steps[0].args, ["1", "true", "x"]);
        assert_eq!(pl.steps[1].needs, ["a"]);
        assert_eq!(pl.steps[2].retry.as_ref().unwrap().attempts, 3);
        assert_eq!(pl.steps[2].retry.as_ref().unwrap().backoff, 2.0);
        assert!(pl.steps[2].continue_on_error);
        assert_eq!(pl.source.steps[1].tool.map(|l| l.0), Some(8));
        assert_eq!(pl.source.steps[2].when.map(|l| l.0), Some(15));
        assert_eq!(pl.steps[2].args, ["yes", "no", "on", "true"]);
        assert!(check(&pl).is_empty(), "{:?}", check(&pl));
    }

    #[test]
    fn deserializes_from_json() {
        let pl: Pipeline = serde_json::from_str(
            r#"{"steps":[{"id":"a","tool":"ok","args":["x",1]},{"id":"b","tool":"ok","needs":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(pl.steps[0].args, ["x", "1"]);
        assert_eq!(pl.steps[1].needs, ["a"]);
        assert!(check(&pl).is_empty());
        let bad: Pipeline =
            serde_json::from_str(r#"{"steps":[{"id":"a","tool":"ok","needs":["zz"]}]}"#).unwrap();
        assert_eq!(
            check(&bad)[0].to_string(),
            "(pipeline): error: step \"a\" needs unknown step \"zz\""
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = parse(
            Path::new("p.yaml"),
            "steps:\n  - id: a\n    tool: ok\n    nedds: [b]\n",
        )
        .unwrap_err();
        assert_eq!(e[0].line, 4, "{e:?}");
        assert!(parse(Path::new("p.yaml"), "  ").is_err());
        assert!(parse(Path::new("p.yaml"), "steps: 3").is_err());
    }

    #[test]
    fn rejects_duplicates_unknown_ids_and_cycles() {
        let m = messages(
            "steps:\n  - id: a\n    tool: ok\n    needs: [c]\n  - id: a\n    tool: ok\n  - id: c\n    tool: ok\n    needs: [a, zz]\n",
        );
        assert!(
            m.iter().any(|s| s.starts_with(
                "p.yaml:5:9: error: duplicate step id \"a\" (first defined at line 2)"
            )),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|s| s.contains("p.yaml:9:") && s.contains("unknown step \"zz\"")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|s| s.contains("dependency cycle: a -> c -> a")),
            "{m:?}"
        );
    }

    #[test]
    fn names_longer_cycles_in_run_order() {
        let m = messages(
            "steps:\n  - {id: x, tool: ok}\n  - {id: a, tool: ok, needs: [c]}\n  - {id: b, tool: ok, needs: [a]}\n  - {id: c, tool: ok, needs: [b, x]}\n",
        );
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("dependency cycle: a -> b -> c -> a"), "{m:?}");
        let m = messages("steps:\n  - {id: a, tool: ok, needs: a}\n");
        assert!(m[0].contains("dependency cycle: a -> a"), "{m:?}");
    }

    #[test]
    fn references_must_be_needed() {
        let m = messages(
            "steps:\n  - {id: a, tool: ok}\n  - {id: b, tool: ok, args: ['${steps.a.output}']}\n  - {id: c, tool: ok, needs: b, when: \"steps.a.status == 'success'\"}\n  - {id: d, tool: ok, needs: c, args: ['${steps.b.exit_code}', '${steps.nope.output}']}\n",
        );
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].contains(
                "step \"b\": an argument refers to step \"a\", which is not in its needs"
            )
        );
        assert!(m[1].contains("step \"c\": `when` refers to step \"a\""));
        assert!(m[2].contains("unknown step \"nope\""));
    }

    #[test]
    fn bad_when_templates_and_numbers() {
        let m = messages(
            "timeout: -1\nsteps:\n  - {id: a, tool: ok, when: 'steps.a.status = 1', timeout: 0}\n  - {id: 'b c', tool: ok, args: ['${steps.a.out}'], retry: {attempts: 0}}\n",
        );
        assert!(
            m.iter()
                .any(|s| s.contains("p.yaml:1:") && s.contains("timeout must be")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|s| s.contains("invalid `when` at character 16")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|s| s.contains("invalid step id \"b c\"")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|s| s.contains("unknown field \"out\"")),
            "{m:?}"
        );
        assert!(m.iter().any(|s| s.contains("retry.attempts")), "{m:?}");
        assert!(m.iter().any(|s| s.contains("step \"a\": timeout")), "{m:?}");
        assert!(messages("steps: []\n")[0].contains("no steps"));
        let mut chain = String::from("steps:\n  - {id: s0, tool: ok}\n");
        for i in 1..=MAX_STEPS {
            chain.push_str(&format!(
                "  - {{id: s{i}, tool: ok, needs: [s{}]}}\n",
                i - 1
            ));
        }
        let m = messages(&chain);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("at most 1000 are allowed"), "{m:?}");
    }

    #[test]
    fn dependency_order() {
        let pl = p(
            "steps:\n  - {id: c, tool: ok, needs: [b]}\n  - {id: b, tool: ok, needs: [a]}\n  - {id: a, tool: ok}\n  - {id: d, tool: ok}\n",
        );
        let ids: Vec<&str> = order(&pl)
            .iter()
            .map(|&i| pl.steps[i].id.as_str())
            .collect();
        assert_eq!(ids, ["a", "d", "b", "c"]);
    }

    #[test]
    fn events_serialize_with_a_tag() {
        let e = Event::StepFinished {
            id: "a".into(),
            tool: "ok".into(),
            status: StepStatus::Skipped,
            exit_code: None,
            attempts: 0,
            duration_ms: 0,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "step_finished");
        assert_eq!(v["status"], "skipped");
    }
}
