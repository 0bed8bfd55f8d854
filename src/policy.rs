//! `policies.yaml` in the reference structure, and decisions as a pure
//! function: (policies, role, tool, action, approved) -> Decision + the rule
//! that decided. Deny overrides allow; `blocked_tools` and `requires_approval`
//! accept globs (`*`, `?`). Argument validation is part of every execution path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{self, Diagnostic, Severity};

/// The policies shipped in the binary (the top-level `policies.yaml`).
pub const DEFAULT_POLICIES: &str = include_str!("../policies.yaml");

/// Permission strings the code understands.
pub const PERMISSIONS: [&str; 7] = [
    "*",
    "tool:execute",
    "tool:discover",
    "tool:healthcheck",
    "config:read",
    "system:execute",
    "browser:execute",
];

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Role {
    /// Free text.
    pub description: String,
    /// Permission strings.
    #[schemars(extend("items" = serde_json::json!({"enum": PERMISSIONS})))]
    pub permissions: Vec<String>,
    /// Tools (globs) this role may never run.
    pub blocked_tools: Vec<String>,
    /// Tools (globs) that need explicit approval.
    pub requires_approval: Vec<String>,
    /// Calls per window (0 = unlimited; absent = `rate_limiting.default_limit`).
    pub rate_limit: Option<u32>,
}

/// `rate_limiting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RateLimiting {
    /// Master switch.
    pub enabled: bool,
    /// Window length in seconds.
    pub window_seconds: u64,
    /// Limit of a role that has no `rate_limit`.
    pub default_limit: u32,
    /// Per-tool limits per window.
    pub per_tool_limits: BTreeMap<String, u32>,
    /// Extra calls allowed on top of each limit.
    pub burst_allowance: u32,
}

impl Default for RateLimiting {
    fn default() -> Self {
        RateLimiting {
            enabled: true,
            window_seconds: 60,
            default_limit: 60,
            per_tool_limits: BTreeMap::new(),
            burst_allowance: 10,
        }
    }
}

/// `validation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Validation {
    /// Bytes per argument at most.
    pub max_argument_length: usize,
    /// Literal substrings no argument may contain.
    pub blocked_patterns: Vec<String>,
    /// Kept for compatibility (validation always applies).
    pub sanitize_input: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            max_argument_length: 1024,
            blocked_patterns: Vec::new(),
            sanitize_input: true,
        }
    }
}

/// `audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Audit {
    /// Audit every execution.
    pub log_all_executions: bool,
    /// Audit failed executions (when not all are logged).
    pub log_failures: bool,
    /// Audit policy decisions.
    pub log_agent_decisions: bool,
    /// Informational.
    pub retention_days: u32,
    /// Refuse a call whose audit record cannot be appended (the record of
    /// the decision is written before the tool runs). Default false.
    pub required: bool,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            log_all_executions: true,
            log_failures: true,
            log_agent_decisions: true,
            retention_days: 90,
            required: false,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Policies {
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
    /// Rate limits.
    pub rate_limiting: RateLimiting,
    /// Argument validation.
    pub validation: Validation,
    /// Audit switches.
    pub audit: Audit,
}

impl Policies {
    /// The built-in default, constructed directly (no YAML parse on the hot
    /// path). A unit test pins it to `DEFAULT_POLICIES`.
    pub fn builtin() -> Policies {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let role = |d: &str, perms: &[&str], approval: &[&str], rl: u32| Role {
            description: d.into(),
            permissions: v(perms),
            blocked_tools: Vec::new(),
            requires_approval: v(approval),
            rate_limit: Some(rl),
        };
        let mut roles = BTreeMap::new();
        roles.insert(
            "admin".into(),
            role(
                "Full access to all tools and configurations",
                &["*"],
                &[],
                0,
            ),
        );
        roles.insert(
            "agent".into(),
            role(
                "AI agent with managed access",
                &[
                    "tool:execute",
                    "tool:discover",
                    "tool:healthcheck",
                    "config:read",
                ],
                &["shodan", "crypt", "shareterminal", "transfer"],
                120,
            ),
        );
        roles.insert(
            "user".into(),
            role(
                "Standard user access",
                &["tool:execute", "tool:discover"],
                &["crypt", "shareterminal", "transfer"],
                60,
            ),
        );
        roles.insert(
            "readonly".into(),
            role(
                "Read-only access",
                &["tool:discover", "tool:healthcheck", "config:read"],
                &[],
                30,
            ),
        );
        Policies {
            roles,
            rate_limiting: RateLimiting {
                per_tool_limits: [("websearch", 30), ("shodan", 5), ("movie", 30)]
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), n))
                    .collect(),
                ..RateLimiting::default()
            },
            validation: Validation {
                blocked_patterns: v(&["$(", "`", "../"]),
                ..Validation::default()
            },
            audit: Audit::default(),
        }
    }
}

/// Where the effective policies came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// The copy embedded in the binary.
    Builtin,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Builtin => write!(f, "(built-in default)"),
        }
    }
}

/// Pick the policies file: `--policies`, `GATHM_POLICIES`, `$GATHM_HOME/policies.yaml`,
/// `./policies.yaml`, then the built-in default.
pub fn locate(cli: Option<&Path>, env: Option<&str>, home_file: &Path) -> Source {
    if let Some(p) = cli {
        return Source::File(p.to_path_buf());
    }
    if let Some(p) = env.filter(|s| !s.is_empty()) {
        return Source::File(PathBuf::from(p));
    }
    for p in [home_file, Path::new("policies.yaml")] {
        if p.is_file() {
            return Source::File(p.to_path_buf());
        }
    }
    Source::Builtin
}

/// Parse policies text; a YAML or type error is one located diagnostic.
pub fn parse(file: &Path, text: &str) -> Result<Policies, Diagnostic> {
    if text.trim().is_empty() {
        return Ok(Policies::default());
    }
    serde_saphyr::from_str::<Policies>(text).map_err(|e| manifest::yaml_error(file, &e))
}

/// Semantic checks: unknown permission strings, an unusable window.
pub fn check(file: &Path, text: &str, p: &Policies) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, role) in &p.roles {
        for perm in &role.permissions {
            if !PERMISSIONS.contains(&perm.as_str()) {
                let (line, column) = manifest::locate_text(text, perm);
                out.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.to_path_buf(),
                    line,
                    column,
                    message: format!(
                        "role {name:?}: unknown permission {perm:?}; expected one of {}",
                        PERMISSIONS.join(", ")
                    ),
                });
            }
        }
    }
    // A misspelt control must never be off: unknown keys are errors here.
    if let Some(tree) = crate::yamlspan::parse(text) {
        static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
        let schema = SCHEMA.get_or_init(crate::schema::policies);
        for (_, (line, column), message) in crate::yamlspan::unknown_keys(&tree, schema) {
            out.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_path_buf(),
                line,
                column,
                message,
            });
        }
    }
    if p.rate_limiting.window_seconds == 0 {
        let (line, column) = manifest::locate(text, "window_seconds");
        out.push(Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            message: "rate_limiting.window_seconds must be at least 1".into(),
        });
    }
    out
}

/// What is being attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Run a tool (`tool:execute`).
    Execute,
    /// List or describe tools (`tool:discover`).
    Discover,
    /// Health checks (`tool:healthcheck`).
    Healthcheck,
    /// Read configuration (`config:read`).
    ConfigRead,
    /// Admin-only operations (`*`).
    Admin,
}

impl Action {
    /// The permission string it needs.
    pub fn permission(self) -> &'static str {
        match self {
            Action::Execute => "tool:execute",
            Action::Discover => "tool:discover",
            Action::Healthcheck => "tool:healthcheck",
            Action::ConfigRead => "config:read",
            Action::Admin => "*",
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny,
    /// Refused until approved.
    ApprovalRequired,
}

impl Verdict {
    /// The name serde gives it (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::ApprovalRequired => "approval_required",
        }
    }
}

/// A decision and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The verdict.
    pub decision: Verdict,
    /// The rule that decided, e.g. `roles.user.blocked_tools["sho*"]`.
    pub rule: String,
    /// A sentence for humans.
    pub message: String,
}

impl Decision {
    /// Whether the call may proceed.
    pub fn allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }
    fn new(decision: Verdict, rule: String, message: String) -> Decision {
        Decision {
            decision,
            rule,
            message,
        }
    }
}

/// `*` and `?` globbing over bytes.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Decide whether `role` may do `action` on `tool` (`tool` is empty for
/// actions that are not about one tool).
pub fn decide(p: &Policies, role: &str, tool: &str, action: Action, approved: bool) -> Decision {
    let Some(r) = p.roles.get(role) else {
        return Decision::new(
            Verdict::Deny,
            format!("roles.{role} (undefined)"),
            format!("role {role:?} is not defined in the policies"),
        );
    };
    let perm = action.permission();
    let grant = if r.permissions.iter().any(|x| x == "*") {
        "*"
    } else if r.permissions.iter().any(|x| x == perm) && action != Action::Admin {
        perm
    } else {
        return Decision::new(
            Verdict::Deny,
            format!("roles.{role}.permissions"),
            format!("role {role:?} lacks the permission {perm:?}"),
        );
    };
    if action == Action::Execute && !tool.is_empty() {
        if let Some(g) = r.blocked_tools.iter().find(|g| glob(g, tool)) {
            return Decision::new(
                Verdict::Deny,
                format!("roles.{role}.blocked_tools[{g:?}]"),
                format!("tool {tool:?} is blocked for role {role:?}"),
            );
        }
        if let Some(g) = r.requires_approval.iter().find(|g| glob(g, tool)) {
            let rule = format!("roles.{role}.requires_approval[{g:?}]");
            return if approved {
                Decision::new(
                    Verdict::Allow,
                    rule,
                    format!("tool {tool:?} requires approval for role {role:?}: approved"),
                )
            } else {
                Decision::new(
                    Verdict::ApprovalRequired,
                    rule,
                    format!(
                        "tool {tool:?} requires explicit approval for role {role:?} (use --approve)"
                    ),
                )
            };
        }
    }
    // Every allowed run comes here: the two strings are assembled directly
    // (`format!` was most of the cost of a decision).
    let mut rule = String::with_capacity(role.len() + grant.len() + 24);
    for part in ["roles.", role, ".permissions["] {
        rule.push_str(part);
    }
    push_quoted(&mut rule, grant);
    rule.push(']');
    let mut message = String::with_capacity(role.len() + perm.len() + 12);
    message.push_str("role ");
    push_quoted(&mut message, role);
    message.push_str(" may ");
    message.push_str(perm);
    Decision::new(Verdict::Allow, rule, message)
}

/// Append `s` as `{:?}` prints it, without its per-character escape checks
/// when there is nothing to escape (printable ASCII only, no `"` or `\`).
fn push_quoted(out: &mut String, s: &str) {
    let plain = s
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        use std::fmt::Write;
        let _ = write!(out, "{s:?}");
    }
}

/// Validate each argument against `validation`; `None` when all pass.
pub fn check_args(p: &Policies, args: &[String]) -> Option<Decision> {
    let v = &p.validation;
    for (i, a) in args.iter().enumerate() {
        if v.max_argument_length > 0 && a.len() > v.max_argument_length {
            return Some(Decision::new(
                Verdict::Deny,
                format!("validation.max_argument_length ({})", v.max_argument_length),
                format!(
                    "argument {} is {} bytes, over the limit of {}",
                    i + 1,
                    a.len(),
                    v.max_argument_length
                ),
            ));
        }
        if let Some(pat) = v
            .blocked_patterns
            .iter()
            .find(|pat| !pat.is_empty() && a.contains(pat.as_str()))
        {
            return Some(Decision::new(
                Verdict::Deny,
                format!("validation.blocked_patterns[{pat:?}]"),
                format!(
                    "argument {} contains the blocked pattern {pat:?}{}",
                    i + 1,
                    pattern_meaning(pat)
                ),
            ));
        }
    }
    None
}

/// What a well-known blocked pattern guards against, for the refusal message.
fn pattern_meaning(pat: &str) -> &'static str {
    match pat {
        "../" | "..\\" | ".." => " (path traversal)",
        "$(" | "`" => " (command substitution)",
        ";" | "&&" | "||" | "|" => " (command chaining)",
        _ => "",
    }
}

/// The per-tool rate limit of `tool` (`rate_limiting.per_tool_limits`),
/// when rate limiting is on and the limit is not 0.
pub fn tool_limit(p: &Policies, tool: &str) -> Option<u32> {
    let rl = &p.rate_limiting;
    rl.per_tool_limits
        .get(tool)
        .copied()
        .filter(|l| rl.enabled && *l > 0)
}

/// The rate limits that apply to `role` running `tool`: (key, capacity).
/// Capacity is the limit plus `burst_allowance`; unlimited limits are left out.
pub fn limits_for(p: &Policies, role: &str, tool: &str) -> Vec<(String, u32, u32)> {
    let rl = &p.rate_limiting;
    if !rl.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    let role_limit = p
        .roles
        .get(role)
        .map(|r| r.rate_limit.unwrap_or(rl.default_limit))
        .unwrap_or(rl.default_limit);
    if role_limit > 0 {
        out.push((
            format!("role-{role}"),
            role_limit,
            role_limit.saturating_add(rl.burst_allowance),
        ));
    }
    if let Some(l) = tool_limit(p, tool) {
        out.push((
            format!("tool-{tool}"),
            l,
            l.saturating_add(rl.burst_allowance),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_prints_what_debug_prints() {
        for v in [
            "*",
            "tool:execute",
            "admin",
            "it's",
            "a b",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "nul\0",
            "é",
            "\u{301}combining",
            "",
        ] {
            let mut out = String::from("x");
            push_quoted(&mut out, v);
            assert_eq!(out, format!("x{v:?}"), "{v:?}");
        }
    }

    #[test]
    fn verdict_names_are_the_serialised_names() {
        for v in [Verdict::Allow, Verdict::Deny, Verdict::ApprovalRequired] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    fn shipped() -> Policies {
        parse(Path::new("policies.yaml"), DEFAULT_POLICIES).unwrap()
    }

    #[test]
    fn builtin_equals_the_shipped_file() {
        assert_eq!(Policies::builtin(), shipped());
    }

    #[test]
    fn shipped_file_reads_inline_comments() {
        let p = shipped();
        assert_eq!(p.rate_limiting.per_tool_limits.get("shodan"), Some(&5));
        assert_eq!(p.rate_limiting.per_tool_limits.get("websearch"), Some(&30));
        assert_eq!(p.roles["agent"].rate_limit, Some(120));
        assert!(check(Path::new("p"), DEFAULT_POLICIES, &p).is_empty());
    }

    #[test]
    fn decisions_name_their_rule() {
        let p = shipped();
        let d = decide(&p, "admin", "anything", Action::Execute, false);
        assert!(d.allowed());
        assert_eq!(d.rule, "roles.admin.permissions[\"*\"]");
        let d = decide(&p, "readonly", "dns", Action::Execute, false);
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule, "roles.readonly.permissions");
        let d = decide(&p, "agent", "shodan", Action::Execute, false);
        assert_eq!(d.decision, Verdict::ApprovalRequired);
        assert!(decide(&p, "agent", "shodan", Action::Execute, true).allowed());
        let d = decide(&p, "nobody", "dns", Action::Discover, false);
        assert_eq!(d.decision, Verdict::Deny);
        assert!(decide(&p, "readonly", "dns", Action::Discover, false).allowed());
        assert!(!decide(&p, "agent", "", Action::Admin, false).allowed());
    }

    #[test]
    fn deny_overrides_allow_with_globs() {
        let text = "roles:\n  r:\n    permissions: [\"*\"]\n    blocked_tools: [\"net*\"]\n    requires_approval: [\"netcat\"]\n";
        let p = parse(Path::new("p"), text).unwrap();
        let d = decide(&p, "r", "netcat", Action::Execute, true);
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule, "roles.r.blocked_tools[\"net*\"]");
        assert!(decide(&p, "r", "dns", Action::Execute, false).allowed());
    }

    #[test]
    fn globbing() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("d?s", "dns"));
        assert!(!glob("d?s", "dnss"));
        assert!(!glob("ab", "abc"));
    }

    #[test]
    fn argument_validation() {
        let p = shipped();
        assert!(check_args(&p, &["example.com".into()]).is_none());
        let d = check_args(&p, &["ok".into(), "../etc/passwd".into()]).unwrap();
        assert_eq!(d.rule, "validation.blocked_patterns[\"../\"]");
        assert!(d.message.contains("argument 2"));
        assert!(d.message.contains("path traversal"), "{}", d.message);
        let d = check_args(&p, &["x".repeat(2000)]).unwrap();
        assert!(d.rule.starts_with("validation.max_argument_length"));
    }

    #[test]
    fn limits() {
        let p = shipped();
        assert!(limits_for(&p, "admin", "dns").is_empty());
        assert_eq!(
            limits_for(&p, "admin", "shodan"),
            vec![("tool-shodan".into(), 5, 15)]
        );
        assert_eq!(
            limits_for(&p, "user", "dns"),
            vec![("role-user".into(), 60, 70)]
        );
    }

    #[test]
    fn unknown_permission_is_located() {
        let text = "roles:\n  r:\n    permissions: [\"tool:exec\"]\n";
        let p = parse(Path::new("p.yaml"), text).unwrap();
        let d = check(Path::new("p.yaml"), text, &p);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 3);
    }
}
