//! `tool.yaml`: serde types for every field of the reference schema plus the
//! gathm extensions, and validation that reports file, line and column (pure:
//! text in, `Manifest` and diagnostics out).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The eight reference categories.
pub const CATEGORIES: [&str; 8] = [
    "security",
    "networking",
    "data",
    "media",
    "utility",
    "finance",
    "science",
    "productivity",
];

/// Top-level keys a manifest may carry (anything else is a warning, an error under `--strict`).
pub const KNOWN_KEYS: [&str; 25] = [
    "chat",
    "workspace",
    "retry_on_interrupt",
    "concurrency_group",
    "name",
    "version",
    "description",
    "category",
    "dependencies",
    "apis",
    "requires_internet",
    "input_schema",
    "output_schema",
    "fallback_tool",
    "tags",
    "author",
    "install_hints",
    "command",
    "timeout",
    "cache",
    "breaker",
    "retry",
    "env",
    "max_concurrency",
    "schema_version",
];

const VALUE_TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "array", "object"];

/// A value that may be written as one item or as a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// `key: value`
    One(T),
    /// `key: [a, b]`
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The items as a vector.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `dependencies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Dependencies {
    /// Commands looked up on PATH.
    pub system: Vec<String>,
    /// Python modules.
    pub python: Vec<String>,
    /// Optional commands (not required for health).
    pub optional: Vec<String>,
}

/// An entry of `apis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Api {
    /// Display name.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// URL probed by `gathm health` (null or empty: none).
    #[serde(default)]
    pub health_endpoint: Option<String>,
    /// Whether a key is needed.
    #[serde(default)]
    pub auth_required: bool,
    /// e.g. `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
}

/// An entry of `input_schema.arguments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Argument {
    /// Name.
    pub name: String,
    /// One of the six value types.
    #[serde(default = "default_type", rename = "type")]
    #[schemars(extend("enum" = VALUE_TYPES))]
    pub kind: String,
    /// Whether it is required.
    #[serde(default)]
    pub required: bool,
    /// Description.
    #[serde(default)]
    pub description: String,
}

fn default_type() -> String {
    "string".into()
}

/// An entry of `input_schema.flags` (free text, as in the reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Flag {
    /// The flag text, e.g. `-t`.
    pub flag: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Whether it takes a value.
    #[serde(default)]
    pub has_argument: bool,
}

/// `input_schema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct InputSchema {
    /// Positional arguments.
    pub arguments: Vec<Argument>,
    /// Flags.
    pub flags: Vec<Flag>,
}

/// An entry of `output_schema.json_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JsonField {
    /// Field name.
    pub name: String,
    /// Value type.
    #[serde(default = "default_type", rename = "type")]
    #[schemars(extend("enum" = VALUE_TYPES))]
    pub kind: String,
    /// Item description for arrays (seen in real manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
}

/// `output_schema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct OutputSchema {
    /// Description of the text output.
    pub text: String,
    /// Fields of the `--json` output.
    pub json_fields: Vec<JsonField>,
}

/// `cache`: `false`, `true`, or `{ttl: seconds}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CacheSetting {
    /// `cache: false` never caches; `true` uses the default TTL.
    Enabled(bool),
    /// `cache: {ttl: N}`.
    Ttl {
        /// Seconds an entry lives.
        ttl: u64,
    },
}

/// `breaker`: `false` (no breaker for this tool), `true` (the defaults), or
/// the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BreakerField {
    /// `breaker: false` turns the breaker off; `true` keeps the defaults.
    Enabled(bool),
    /// `breaker: {failure_threshold: N, recovery_timeout: S, ignore_exit_codes: [..]}`.
    Settings(BreakerSetting),
}

/// `breaker` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BreakerSetting {
    /// Consecutive counted failures that open the circuit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// Seconds before an open circuit lets a probe through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_timeout: Option<f64>,
    /// Exit codes that are answers, not outages: they count as successes for
    /// the breaker, are not retried (unless `retry.on_exit_codes` lists
    /// them) and do not fall back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_exit_codes: Vec<i32>,
}

/// Sub-keys of `breaker`.
pub const BREAKER_KEYS: [&str; 3] = ["failure_threshold", "recovery_timeout", "ignore_exit_codes"];

/// `chat.input`: how the rendered prompt reaches a chat tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatInput {
    /// On stdin, then EOF (the default).
    #[default]
    Stdin,
    /// As the last argument (never through a shell).
    Arg,
}

/// `chat.output`: how a chat tool's stdout becomes the reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatOutput {
    /// Every stdout line is reply text (the default).
    #[default]
    Text,
    /// Every stdout line is a JSON object; `{"content": "…"}` adds that
    /// text to the reply, other lines are ignored.
    Jsonl,
}

/// `chat`: the tool is a chat backend of `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// The model names it answers for (`GET /v1/models`).
    #[schemars(length(min = 1))]
    pub models: Vec<String>,
    /// `stdin` (default) or `arg`.
    #[serde(default)]
    pub input: ChatInput,
    /// `text` (default) or `jsonl`.
    #[serde(default)]
    pub output: ChatOutput,
}

/// Whether `name` is a usable model name: 1 to 128 visible ASCII characters.
pub fn valid_model(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// `workspace`: where the tool runs. Absent (or `shared`): the caller's
/// working directory. `isolated`, or the map, a fresh directory per run
/// (`crate::workspace`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum WorkspaceField {
    /// `workspace: isolated` (the defaults) or `workspace: shared` (today's behaviour).
    Mode(WorkspaceMode),
    /// `workspace: {isolated: true, seed: DIR, keep: on_failure}`.
    Settings(WorkspaceSetting),
}

/// The string forms of `workspace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// A fresh directory per run, with the default settings.
    Isolated,
    /// The caller's working directory (the default).
    Shared,
}

/// The map form of `workspace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSetting {
    /// A fresh directory per run (default true; `false` is `shared`).
    #[serde(default = "yes")]
    pub isolated: bool,
    /// A directory copied into each fresh workspace, relative to the
    /// manifest's directory (symlinks in it are not copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// When the workspace outlives its run (default `on_failure`); kept ones
    /// are removed after `GATHM_WORKSPACE_TTL`.
    #[serde(default)]
    pub keep: Keep,
}

/// `workspace.keep`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Keep the workspace of a run that failed (the default).
    #[default]
    OnFailure,
    /// Keep every workspace.
    Always,
    /// Remove every workspace when its run ends.
    Never,
}

/// Sub-keys of the map form of `workspace`.
pub const WORKSPACE_KEYS: [&str; 3] = ["isolated", "seed", "keep"];

impl<'de> Deserialize<'de> for WorkspaceField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WorkspaceField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`isolated`, `shared` or a map with `isolated`, `seed` and `keep`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "isolated" => Ok(WorkspaceField::Mode(WorkspaceMode::Isolated)),
                    "shared" => Ok(WorkspaceField::Mode(WorkspaceMode::Shared)),
                    _ => Err(E::custom(format!(
                        "unknown workspace {v:?}: expected `isolated`, `shared` or a map with `isolated`, `seed` and `keep`"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                WorkspaceSetting::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(WorkspaceField::Settings)
            }
        }
        d.deserialize_any(V)
    }
}

impl WorkspaceField {
    /// The settings of an isolated workspace, or `None` for the shared one.
    pub fn isolated(&self) -> Option<WorkspaceSetting> {
        match self {
            WorkspaceField::Mode(WorkspaceMode::Isolated) => Some(WorkspaceSetting {
                isolated: true,
                seed: None,
                keep: Keep::default(),
            }),
            WorkspaceField::Mode(WorkspaceMode::Shared) => None,
            WorkspaceField::Settings(s) if s.isolated => Some(s.clone()),
            WorkspaceField::Settings(_) => None,
        }
    }
}

/// `retry`: the one retry setting (`crate::retry::Retry`).
pub type RetrySetting = crate::retry::Retry;

fn yes() -> bool {
    true
}

/// A parsed `tool.yaml`. Required fields are optional here so that a missing
/// one is reported by `validate` with a location instead of a serde error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_reference_fields)]
pub struct Manifest {
    /// Tool name (by convention the directory name).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))]
    pub name: Option<String>,
    /// `x.y.z`.
    #[serde(default, deserialize_with = "de_version")]
    #[schemars(schema_with = "version_schema")]
    pub version: Option<String>,
    /// At least 5 characters.
    #[serde(default)]
    #[schemars(length(min = 5))]
    pub description: Option<String>,
    /// One category or a list.
    #[serde(default)]
    #[schemars(schema_with = "category_schema")]
    pub category: Option<OneOrMany<String>>,
    /// Required commands and modules.
    #[serde(default)]
    pub dependencies: Dependencies,
    /// External services.
    #[serde(default)]
    pub apis: Vec<Api>,
    /// Needs the network (default true, as in the reference).
    #[serde(default = "yes")]
    pub requires_internet: bool,
    /// Arguments and flags.
    #[serde(default)]
    pub input_schema: Option<InputSchema>,
    /// Output description.
    #[serde(default)]
    pub output_schema: Option<OutputSchema>,
    /// A name or an ordered list of names.
    #[serde(default)]
    pub fallback_tool: Option<OneOrMany<String>>,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Install hints (free map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_hints: Option<serde_json::Value>,
    /// Extension: argv prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<OneOrMany<String>>,
    /// Extension: seconds before the process group is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0, "default" = 120))]
    pub timeout: Option<f64>,
    /// Extension: result cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSetting>,
    /// Extension: breaker thresholds, answers, or `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerField>,
    /// Extension: retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySetting>,
    /// Extension: extra environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Extension: runs of this tool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<u32>,
    /// Extension: concurrency groups of `gathm.yaml` (a name or a list)
    /// whose limits the tool's runs share, across processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_group: Option<OneOrMany<String>>,
    /// Extension: a job of this tool that a crash or a lost lease
    /// interrupted runs again instead of failing (at-least-once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_interrupt: Option<bool>,
    /// The reference's manifest format version (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// Extension: a chat backend of the OpenAI-compatible endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    /// Extension: run in a fresh directory per run (`isolated`, or
    /// `{isolated, seed, keep}`); absent: the caller's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceField>,
}

/// The reference's required fields: optional in the type (so `validate`
/// reports a missing one with a location), required in the schema.
fn require_reference_fields(schema: &mut schemars::Schema) {
    schema.insert(
        "required".into(),
        serde_json::json!(["name", "version", "description", "category"]),
    );
}

fn version_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "`x.y.z`; a YAML number such as 1.0 is accepted and kept as written",
        "type": ["string", "number"],
        "pattern": "^\\d+\\.\\d+\\.\\d+$"
    })
}

fn category_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "one of the eight categories, or a list of them",
        "oneOf": [
            {"enum": CATEGORIES},
            {"type": "array", "minItems": 1, "items": {"enum": CATEGORIES}}
        ]
    })
}

/// Accept `version: "1.0.0"`, `version: 1.0.0` and numbers like `version: 3.0`.
fn de_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        F(f64),
        I(i64),
    }
    Ok(match Option::<V>::deserialize(d)? {
        None => None,
        Some(V::S(s)) => Some(s),
        Some(V::F(f)) => Some(f.to_string()),
        Some(V::I(i)) => Some(i.to_string()),
    })
}

impl Manifest {
    /// The tool name (empty if missing).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Categories as a list.
    pub fn categories(&self) -> Vec<String> {
        self.category
            .as_ref()
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// Whether the breaker guards this tool (`breaker: false` turns it off).
    pub fn breaker_enabled(&self) -> bool {
        !matches!(self.breaker, Some(BreakerField::Enabled(false)))
    }

    /// The breaker settings written in the manifest, if any.
    pub fn breaker_settings(&self) -> Option<&BreakerSetting> {
        match &self.breaker {
            Some(BreakerField::Settings(s)) => Some(s),
            _ => None,
        }
    }

    /// Exit codes that are answers (`breaker.ignore_exit_codes`).
    pub fn answer_codes(&self) -> &[i32] {
        self.breaker_settings()
            .map(|b| b.ignore_exit_codes.as_slice())
            .unwrap_or(&[])
    }

    /// The isolated-workspace settings, or `None` (the caller's directory).
    pub fn workspace(&self) -> Option<WorkspaceSetting> {
        self.workspace.as_ref().and_then(WorkspaceField::isolated)
    }

    /// Fallback names in order (`null`/empty: none).
    pub fn fallbacks(&self) -> Vec<String> {
        self.fallback_tool
            .as_ref()
            .map(|f| f.to_vec())
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "null")
            .collect()
    }
}

/// How serious a diagnostic is.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Makes the file invalid.
    Error,
    /// Reported; an error under `--strict`.
    Warning,
    /// Reported only (e.g. a fallback cycle, which runs terminate safely).
    Info,
}

/// A problem at a place in a file.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file.
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// 1-based line (0: unknown).
    pub line: u64,
    /// 1-based column (0: unknown).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        if self.line == 0 {
            // No position (a file that cannot be read): name the file alone.
            return write!(f, "{}: {sev}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Find the line and column of the value of `key` (first `key:` at any
/// indentation), for locating semantic problems.
pub fn locate(text: &str, key: &str) -> (u64, u64) {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with(':')
        {
            let indent = line.len() - trimmed.len();
            return (i as u64 + 1, indent as u64 + 1);
        }
    }
    (1, 1)
}

/// Find the line and column where `needle` first appears (1, 1 if absent).
pub fn locate_text(text: &str, needle: &str) -> (u64, u64) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i as u64 + 1, c as u64 + 1)))
        .unwrap_or((1, 1))
}

/// The parser's message without the "error: " and "line N column M: "
/// prefixes it adds: a diagnostic prints `file:line:column: error: ` itself.
fn bare_message(first_line: &str) -> String {
    let mut m = first_line.trim();
    if let Some(rest) = m.strip_prefix("error: ") {
        m = rest;
    }
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((loc, after)) = rest.split_once(": ")
        && let [l, "column", c] = loc.split(' ').collect::<Vec<_>>()[..]
        && l.parse::<u64>().is_ok()
        && c.parse::<u64>().is_ok()
    {
        m = after;
    }
    if m.is_empty() {
        "invalid YAML".into()
    } else {
        m.to_string()
    }
}

/// A file that is not UTF-8, located at its first invalid byte.
pub fn utf8_error(file: &Path, bytes: &[u8], e: &std::str::Utf8Error) -> Diagnostic {
    let good = &bytes[..e.valid_up_to()];
    let line = good.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&good[start..]).chars().count() as u64 + 1;
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line,
        column,
        message: format!(
            "not UTF-8: invalid byte sequence at byte {}",
            e.valid_up_to()
        ),
    }
}

/// A YAML error as a diagnostic whose message is only the message (the
/// location is in the diagnostic's line and column already).
pub fn yaml_diag(file: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let mut d = yaml_error(file, e);
    let m = d.message.trim_start_matches("error: ");
    let m = match m.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => m,
    };
    d.message = m.to_string();
    d
}

/// Turn a YAML error into a diagnostic with its location.
pub fn yaml_error(file: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let text = e.to_string();
    let message = bare_message(text.lines().next().unwrap_or("invalid YAML"));
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Parse a manifest; a YAML or type error becomes one located diagnostic
/// (the first of [`parse_all`]'s).
pub fn parse(file: &Path, text: &str) -> Result<Manifest, Diagnostic> {
    parse_all(file, text).map_err(|mut d| d.swap_remove(0))
}

/// Parse a manifest; every type error is reported, each at its own location
/// with its key path (`retry.attempts: expected a whole number, found "ten"`).
/// A number written as the version is kept as written (`1.0`, not `1`).
pub fn parse_all(file: &Path, text: &str) -> Result<Manifest, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: "empty manifest: the YAML root must be a mapping".into(),
        }]);
    }
    match serde_saphyr::from_str::<Manifest>(text) {
        Ok(mut m) => {
            // A YAML number (`version: 1.0`) reads as a float: echo it as written.
            if m.version
                .as_deref()
                .is_some_and(|v| v.matches('.').count() < 2)
                && let Some(tree) = crate::yamlspan::parse(text)
                && let Some((n, _)) = tree.at_path(&["version".to_string()])
                && let crate::yamlspan::Kind::Scalar(serde_json::Value::Number(_)) = n.kind
                && let Some(raw) = n.raw(text)
            {
                m.version = Some(raw.to_string());
            }
            numbers(file, text, &m).map_err(|d| vec![d])?;
            Ok(m)
        }
        Err(e) => {
            let first = yaml_error(file, &e);
            let all = crate::yamlspan::parse(text)
                .map(|t| crate::yamlspan::type_errors::<Manifest>(file, &t))
                .unwrap_or_default();
            Err(if all.is_empty() { vec![first] } else { all })
        }
    }
}

/// The JSON Schema of `tool.yaml`, built once.
fn tool_schema() -> &'static serde_json::Value {
    static S: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    S.get_or_init(crate::schema::tool)
}

/// The longest duration any manifest, pipeline or request may ask for
/// (one year): larger values are refused where they are parsed.
pub const MAX_SECONDS: f64 = 31_536_000.0;

/// Whether `x` is a usable number of seconds (finite, in `min..=MAX_SECONDS`).
pub fn seconds_ok(x: f64, min: f64) -> bool {
    x.is_finite() && x >= min && x <= MAX_SECONDS
}

/// Range-check the durations a run turns into `Duration`s, so a bad value
/// is a located error and never a panic.
fn numbers(file: &Path, text: &str, m: &Manifest) -> Result<(), Diagnostic> {
    let bad = |key: &str, message: String| {
        let (line, column) = locate(text, key);
        Err(Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            message,
        })
    };
    if let Some(t) = m.timeout
        && !(t > 0.0 && seconds_ok(t, 0.0))
    {
        return bad(
            "timeout",
            format!("timeout must be a positive number of seconds up to {MAX_SECONDS}, not {t}"),
        );
    }
    if let Some(r) = &m.retry
        && !(seconds_ok(r.delay, 0.0) && seconds_ok(r.max_delay, 0.0) && seconds_ok(r.backoff, 1.0))
    {
        return bad(
            "retry",
            format!(
                "retry needs delay >= 0, backoff >= 1, max_delay >= 0 (seconds up to {MAX_SECONDS})"
            ),
        );
    }
    if let Some(t) = m.breaker_settings().and_then(|b| b.recovery_timeout)
        && !seconds_ok(t, 0.0)
    {
        return bad(
            "recovery_timeout",
            format!("breaker.recovery_timeout must be from 0 to {MAX_SECONDS} seconds, not {t}"),
        );
    }
    Ok(())
}

/// A tool name that is safe as a path component and a cache or state key.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn valid_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Check a parsed manifest against the schema; `dir_name` is the directory it
/// was found in. Returns every problem found.
pub fn check(file: &Path, text: &str, m: &Manifest, dir_name: Option<&str>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let tree = if text.is_empty() {
        None
    } else {
        crate::yamlspan::parse(text)
    };
    // `key` is a key path (`input_schema.arguments.3.type`), located by the
    // parser's spans; a missing key falls back to the first line.
    let mut push = |severity, key: &str, message: String| {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        let (line, column) = tree
            .as_ref()
            .and_then(|t| t.at_path(&path))
            .map(|(_, at)| at)
            .unwrap_or_else(|| locate(text, path.last().map_or(key, |s| s.as_str())));
        out.push(Diagnostic {
            severity,
            file: file.to_path_buf(),
            line,
            column,
            message,
        });
    };
    use Severity::{Error, Warning};
    match m.name.as_deref() {
        None => push(Error, "name", "missing required field `name`".into()),
        Some(n) if !valid_name(n) => push(
            Error,
            "name",
            format!("invalid tool name {n:?}: use letters, digits, '-', '_' and '.'"),
        ),
        Some(n) => {
            if let Some(d) = dir_name
                && d != n
            {
                push(
                    Warning,
                    "name",
                    format!("name {n:?} differs from its directory {d:?}"),
                );
            }
        }
    }
    match m.version.as_deref() {
        None => push(Error, "version", "missing required field `version`".into()),
        Some(v) if !valid_version(v) => push(
            Error,
            "version",
            format!("version {v:?} must look like x.y.z (digits only)"),
        ),
        _ => {}
    }
    match m.description.as_deref() {
        None => push(
            Error,
            "description",
            "missing required field `description`".into(),
        ),
        Some(d) if d.trim().chars().count() < 5 => push(
            Error,
            "description",
            "description must be at least 5 characters".into(),
        ),
        _ => {}
    }
    match &m.category {
        None => push(
            Error,
            "category",
            "missing required field `category`".into(),
        ),
        Some(c) => {
            let cats = c.to_vec();
            if cats.is_empty() {
                push(Error, "category", "category must not be empty".into());
            }
            for cat in cats {
                if !CATEGORIES.contains(&cat.as_str()) {
                    push(
                        Error,
                        "category",
                        format!(
                            "unknown category {cat:?}; expected one of {}",
                            CATEGORIES.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(is) = &m.input_schema {
        for (i, a) in is.arguments.iter().enumerate() {
            if !VALUE_TYPES.contains(&a.kind.as_str()) {
                push(
                    Error,
                    &format!("input_schema.arguments.{i}.type"),
                    format!("argument {:?} has unknown type {:?}", a.name, a.kind),
                );
            }
        }
    }
    if let Some(os) = &m.output_schema {
        for (i, f) in os.json_fields.iter().enumerate() {
            if !VALUE_TYPES.contains(&f.kind.as_str()) {
                push(
                    Error,
                    &format!("output_schema.json_fields.{i}.type"),
                    format!("json field {:?} has unknown type {:?}", f.name, f.kind),
                );
            }
        }
    }
    for fb in m.fallbacks() {
        if Some(fb.as_str()) == m.name.as_deref() {
            push(
                Error,
                "fallback_tool",
                format!("fallback_tool cannot point to itself ({fb:?})"),
            );
        } else if !valid_name(&fb) {
            push(
                Error,
                "fallback_tool",
                format!("invalid fallback tool name {fb:?}"),
            );
        }
    }
    if let Some(t) = m.timeout
        && !(t > 0.0 && t.is_finite())
    {
        push(Error, "timeout", "timeout must be a positive number".into());
    }
    if let Some(CacheSetting::Ttl { ttl: 0 }) = m.cache {
        push(
            Warning,
            "cache",
            "cache ttl 0 never hits; use `cache: false`".into(),
        );
    }
    if let Some(problem) = m.retry.as_ref().and_then(|r| r.problem()) {
        push(Error, "retry", problem);
    }
    if let Some(b) = m.breaker_settings()
        && b.failure_threshold == Some(0)
    {
        push(
            Error,
            "breaker.failure_threshold",
            "breaker.failure_threshold must be at least 1".into(),
        );
    }
    if let Some(b) = m.breaker_settings()
        && b.ignore_exit_codes
            .iter()
            .any(|c| *c == 0 || !(1..=255).contains(c))
    {
        push(
            Error,
            "breaker.ignore_exit_codes",
            "breaker.ignore_exit_codes must be exit codes from 1 to 255".into(),
        );
    }
    if let Some(cmd) = &m.command
        && cmd.to_vec().first().is_none_or(|s| s.is_empty())
    {
        push(Error, "command", "command must name a program".into());
    }
    if let Some(c) = &m.chat {
        if c.models.is_empty() {
            push(
                Error,
                "chat.models",
                "chat.models must name at least one model".into(),
            );
        }
        for (i, name) in c.models.iter().enumerate() {
            if !valid_model(name) {
                push(
                    Error,
                    &format!("chat.models.{i}"),
                    format!("invalid model name {name:?}: 1 to 128 visible ASCII characters"),
                );
            }
        }
    }
    if let Some(seed) = m.workspace().and_then(|w| w.seed) {
        if seed.trim().is_empty() {
            push(
                Error,
                "workspace.seed",
                "workspace.seed must name a directory".into(),
            );
        } else if seed.contains('\0') {
            push(
                Error,
                "workspace.seed",
                "workspace.seed contains a NUL byte".into(),
            );
        }
    }
    if m.max_concurrency == Some(0) {
        push(
            Error,
            "max_concurrency",
            "max_concurrency must be at least 1".into(),
        );
    }
    if let Some(t) = &tree {
        for (_, (line, column), message) in crate::yamlspan::unknown_keys(t, tool_schema()) {
            out.push(Diagnostic {
                severity: Warning,
                file: file.to_path_buf(),
                line,
                column,
                message,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_messages_are_not_prefixed_twice() {
        let d = parse(Path::new("t/tool.yaml"), "name: t\nversion: [\n").unwrap_err();
        let shown = d.to_string();
        assert!(shown.starts_with("t/tool.yaml:"), "{shown}");
        assert_eq!(shown.matches("error").count(), 1, "{shown}");
        assert!(!shown.contains(" column "), "{shown}");
        let d = parse(
            Path::new("t/tool.yaml"),
            "name: t\nversion: \"1\"\ndescription: d\ncategory: utility\napis:\n  - name: x\n",
        )
        .unwrap_err();
        assert!(
            d.message.starts_with("apis.0: missing field `base_url`"),
            "{}",
            d.message
        );
        assert_eq!((d.line, d.column), (6, 5));
        assert_eq!(bare_message("error: line 3 column 7: bad"), "bad");
        assert_eq!(
            bare_message("line three column 7: kept"),
            "line three column 7: kept"
        );
    }

    fn check_text(text: &str) -> Vec<String> {
        let p = Path::new("t/tool.yaml");
        match parse(p, text) {
            Err(d) => vec![d.to_string()],
            Ok(m) => check(p, text, &m, Some("t"))
                .iter()
                .map(|d| d.to_string())
                .collect(),
        }
    }

    #[test]
    fn chat_block_defaults_and_located_errors() {
        let head = "name: t\nversion: \"1.0.0\"\ndescription: \"a chat tool\"\ncategory: utility\n";
        let m = parse(
            Path::new("t/tool.yaml"),
            &format!("{head}chat:\n  models: [a]\n"),
        )
        .unwrap();
        let c = m.chat.unwrap();
        assert_eq!(c.models, ["a"]);
        assert_eq!((c.input, c.output), (ChatInput::Stdin, ChatOutput::Text));
        let errs = check_text(&format!("{head}chat:\n  models: [a]\n  input: file\n"));
        assert!(
            errs[0].starts_with("t/tool.yaml:7:10: error: chat.input: unknown variant `file`"),
            "{errs:?}"
        );
        let errs = check_text(&format!("{head}chat:\n  models: [a]\n  outptu: jsonl\n"));
        assert!(
            errs[0].contains("t/tool.yaml:7:3: error: chat.outptu"),
            "{errs:?}"
        );
        let errs = check_text(&format!("{head}chat:\n  models: [ok, \"a b\"]\n"));
        assert!(
            errs.iter().any(
                |e| e.starts_with("t/tool.yaml:6:") && e.contains("invalid model name \"a b\"")
            ),
            "{errs:?}"
        );
        let errs = check_text(&format!("{head}chat:\n  models: []\n"));
        assert!(
            errs.iter()
                .any(|e| e.contains("chat.models must name at least one model")),
            "{errs:?}"
        );
        let m = parse(
            Path::new("t/tool.yaml"),
            &format!("{head}chat:\n  models: [a]\n  input: arg\n  output: jsonl\n"),
        )
        .unwrap()
        .chat
        .unwrap();
        assert_eq!((m.input, m.output), (ChatInput::Arg, ChatOutput::Jsonl));
    }

    const GOOD: &str = r#"
name: t
version: "3.0.0"
description: "One: two, with a colon"
category: [networking, security]
dependencies:
  system: [curl]
  optional: [tmate]
apis:
  - name: x
    base_url: https://x
    health_endpoint: null
    auth_required: true
    auth_type: api_key
requires_internet: false
input_schema:
  arguments:
    - name: domain
      type: string
      required: true
  flags:
    - flag: "-json"
      has_argument: false
output_schema:
  text: "out"
  json_fields:
    - name: answers
      type: array
      items: {type: object}
fallback_tool: null
tags: [a]
author: me
install_hints: {apt: "apt install x"}
"#;

    #[test]
    fn reference_fields_parse_cleanly() {
        assert_eq!(check_text(GOOD), Vec::<String>::new());
        let m = parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(m.description.as_deref(), Some("One: two, with a colon"));
        assert_eq!(m.categories(), vec!["networking", "security"]);
        assert!(m.fallbacks().is_empty());
        assert_eq!(m.apis[0].health_endpoint, None);
    }

    #[test]
    fn problems_are_located() {
        let text = "name: t\nversion: 1.0\ndescription: abc\ncategory: cooking\nbogus: 1\n";
        let d = check_text(text);
        assert!(
            d.iter()
                .any(|l| l.starts_with("t/tool.yaml:2:1: error: version")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|l| l.contains(":3:1: error: description")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains(":4:1: error: unknown category \"cooking\"")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains(":5:1: warning: unknown key `bogus`")),
            "{d:?}"
        );
    }

    #[test]
    fn bad_yaml_and_wrong_types_report_line() {
        let d = check_text("name: t\nversion: \"1.0.0\"\n  bad: [\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("t/tool.yaml:"), "{d:?}");
        assert!(!d[0].starts_with("t/tool.yaml:0:"), "{d:?}");
        let d = check_text(
            "name: t\nversion: \"1.0.0\"\ndescription: hello\ncategory: data\ntags: 5\n",
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains(":5:"), "{d:?}");
    }

    #[test]
    fn self_fallback_and_missing_fields() {
        let d = check_text("name: t\nfallback_tool: [x, t]\n");
        assert!(d.iter().any(|l| l.contains("cannot point to itself")));
        assert!(
            d.iter()
                .any(|l| l.contains("missing required field `version`"))
        );
        assert!(
            d.iter()
                .any(|l| l.contains("missing required field `category`"))
        );
    }
}

#[cfg(test)]
mod issue14 {
    use super::*;

    fn all(text: &str) -> Vec<String> {
        let p = Path::new("t/tool.yaml");
        match parse_all(p, text) {
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
            Ok(m) => check(p, text, &m, Some("t"))
                .iter()
                .map(|d| d.to_string())
                .collect(),
        }
    }

    const HEAD: &str = "name: t\nversion: \"1.0.0\"\ndescription: hello there\ncategory: utility\n";

    #[test]
    fn nested_unknown_keys_are_located_with_did_you_mean() {
        // `retry` is strict (shared with pipelines): an error, at the key.
        let d = all(&format!("{HEAD}retry: {{atempts: 3}}\n"));
        assert!(
            d.iter().any(|l| l.starts_with(
                "t/tool.yaml:5:9: error: retry.atempts: unknown field `atempts`, expected one of `attempts`"
            )),
            "{d:?}"
        );
        let d = all(&format!(
            "{HEAD}breaker:\n  failure_treshold: 1\ninput_schema:\n  arguments:\n    - name: a\n      tpye: string\n"
        ));
        assert!(
            d.iter().any(|l| l == "t/tool.yaml:6:3: warning: unknown key `breaker.failure_treshold`; did you mean `failure_threshold`?"),
            "{d:?}"
        );
        assert!(
            d.iter().any(|l| l == "t/tool.yaml:10:7: warning: unknown key `input_schema.arguments.0.tpye`; did you mean `type`?"),
            "{d:?}"
        );
    }

    #[test]
    fn every_type_error_at_its_own_place_with_its_path() {
        let d = all(&format!(
            "{HEAD}timeout: \"ten\"\nretry: {{attempts: ten}}\n"
        ));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with("t/tool.yaml:5:10: error: timeout: expected a number, found \"ten\""),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("t/tool.yaml:6:19: error: retry.attempts: expected a whole number"),
            "{d:?}"
        );
    }

    #[test]
    fn a_bad_type_is_reported_where_it_is() {
        let text = format!(
            "{HEAD}input_schema:\n  arguments:\n    - name: a\n      type: string\n    - name: b\n      type: strng\n"
        );
        let d = all(&text);
        assert!(
            d.iter()
                .any(|l| l.starts_with("t/tool.yaml:10:7: error: argument \"b\" has unknown type")),
            "{d:?}"
        );
    }

    #[test]
    fn version_is_echoed_as_written() {
        let m = parse(Path::new("x"), "name: t\nversion: 1.0\n").unwrap();
        assert_eq!(m.version.as_deref(), Some("1.0"));
        let d = all("name: t\nversion: 1.0\ndescription: hello there\ncategory: utility\n");
        assert!(
            d.iter()
                .any(|l| l.contains("version \"1.0\" must look like x.y.z")),
            "{d:?}"
        );
    }
}
