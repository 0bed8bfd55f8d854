//! The operations both front-ends call (CLI and HTTP): list, describe,
//! validate, status, cache, breaker and policy. They return `api`/serde types;
//! printing is the caller's business. `run` lives in `run.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::api::{ToolList, ToolSummary};
use crate::breaker;
use crate::cache;
use crate::clock;
use crate::config::Context;
use crate::error::{Error, Result};
use crate::manifest::{self, Diagnostic, Severity};
use crate::policy::{self, Action, Decision};
use crate::registry::Tool;
use crate::state;

/// A summary of one tool.
pub fn summary(t: &Tool) -> ToolSummary {
    let m = &t.manifest;
    ToolSummary {
        name: t.name.clone(),
        description: m
            .description
            .clone()
            .unwrap_or_else(|| "No description".into()),
        version: m.version.clone().unwrap_or_else(|| "unknown".into()),
        category: m
            .category
            .clone()
            .unwrap_or(crate::manifest::OneOrMany::One(String::new())),
        tags: m.tags.clone(),
        requires_internet: m.requires_internet,
        fallback_tool: m.fallbacks(),
        path: t.manifest_path.display().to_string(),
    }
}

/// Tools the role may discover, optionally of one category.
pub fn list(
    ctx: &Context,
    role: &str,
    category: Option<&str>,
) -> Result<(ToolList, Vec<Diagnostic>)> {
    let (tools, diagnostics) = list_tools(ctx, role, category)?;
    let tools: Vec<ToolSummary> = tools.iter().map(summary).collect();
    Ok((
        ToolList {
            count: tools.len(),
            tools,
        },
        diagnostics,
    ))
}

/// The tools of [`list`] themselves (the text table shows their arguments).
pub fn list_tools(
    ctx: &Context,
    role: &str,
    category: Option<&str>,
) -> Result<(Vec<Tool>, Vec<Diagnostic>)> {
    let p = ctx.policies()?;
    let p = &*p;
    let d = policy::decide(p, role, "", Action::Discover, false);
    if !d.allowed() {
        return Err(Error::Denied(format!("{} [rule: {}]", d.message, d.rule)));
    }
    let scan = ctx.search.scan();
    let role_def = p.roles.get(role);
    let tools: Vec<Tool> = scan
        .tools
        .into_iter()
        .filter(|t| {
            role_def.is_none_or(|r| !r.blocked_tools.iter().any(|g| policy::glob(g, &t.name)))
        })
        .filter(|t| category.is_none_or(|c| t.manifest.categories().iter().any(|x| x == c)))
        .collect();
    Ok((tools, scan.diagnostics))
}

/// A tool's whole manifest as JSON, plus where it lives.
pub fn show(ctx: &Context, role: &str, name: &str) -> Result<Value> {
    let p = ctx.policies()?;
    let p = &*p;
    let d = policy::decide(p, role, name, Action::Discover, false);
    if !d.allowed() {
        return Err(Error::Denied(format!("{} [rule: {}]", d.message, d.rule)));
    }
    let tool = find(ctx, name)?;
    let mut v = serde_json::to_value(&tool.manifest).map_err(|e| Error::Internal(e.to_string()))?;
    if let Value::Object(o) = &mut v {
        o.insert("name".into(), tool.name.clone().into());
        o.insert(
            "path".into(),
            tool.manifest_path.display().to_string().into(),
        );
        let (program, prefix) = tool.program();
        let mut argv = vec![program.display().to_string()];
        argv.extend(prefix.iter().map(|a| a.to_string_lossy().into_owned()));
        o.insert("argv".into(), argv.into());
    }
    Ok(v)
}

/// Load a tool or fail with "not found" and suggestions.
pub fn find(ctx: &Context, name: &str) -> Result<Tool> {
    match ctx.search.find(name) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(Error::NotFound(ctx.search.not_found_message(name))),
        Err(d) => Err(Error::InvalidData(d.to_string())),
    }
}

/// The result of `validate`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// No errors (and, under `--strict`, no warnings).
    pub ok: bool,
    /// Manifests checked.
    pub checked: usize,
    /// Error count.
    pub errors: usize,
    /// Warning count (errors under `--strict`; `info` notes such as cycles are not counted).
    pub warnings: usize,
    /// The policies file that was checked.
    pub policies: String,
    /// Every problem.
    pub diagnostics: Vec<Diagnostic>,
}

/// Validate manifests (all, or the named ones), the fallback graph and the policies.
pub fn validate(ctx: &Context, only: &[String], strict: bool) -> Result<Report> {
    let mut diags = Vec::new();
    let mut graph: BTreeMap<String, (PathBuf, String, Vec<String>)> = BTreeMap::new();
    let files = ctx.search.manifest_files();
    let mut checked = 0;
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    // Named tools whose manifest does not parse: every problem is reported.
    let mut broken: Vec<String> = Vec::new();
    for f in &files {
        let dir_name = f
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned());
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: f.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match manifest::parse_all(f, &text) {
            Err(d) => {
                if only.is_empty() || dir_name.as_ref().is_some_and(|n| only.contains(n)) {
                    checked += 1;
                    diags.extend(d);
                    if let Some(n) = &dir_name {
                        broken.push(n.clone());
                    }
                }
            }
            Ok(m) => {
                let name = m.name.clone().or(dir_name.clone()).unwrap_or_default();
                if let Some(first) = seen.get(&name) {
                    if !only.is_empty() && !only.contains(&name) {
                        continue;
                    }
                    // An identical copy (`gathm init` run in a checkout) is no conflict.
                    if graph.get(&name).is_some_and(|(_, t, _)| *t == text) {
                        continue;
                    }
                    diags.push(Diagnostic {
                        severity: Severity::Warning,
                        file: f.clone(),
                        line: 1,
                        column: 1,
                        message: format!("tool {name:?} is shadowed by {}", first.display()),
                    });
                    continue;
                }
                seen.insert(name.clone(), f.clone());
                if only.is_empty() || only.contains(&name) {
                    checked += 1;
                    diags.extend(manifest::check(f, &text, &m, dir_name.as_deref()));
                    diags.extend(crate::checks::diagnostics(f, &text, &m, &name));
                }
                graph.insert(name, (f.clone(), text, m.fallbacks()));
            }
        }
    }
    for want in only {
        if !graph.contains_key(want) && !seen.contains_key(want) && !broken.contains(want) {
            return Err(find(ctx, want)
                .err()
                .unwrap_or_else(|| Error::NotFound(format!("tool {want:?} not found"))));
        }
    }
    // Fallback graph: dangling names are errors, cycles are reported.
    for (name, (file, text, fbs)) in &graph {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        for fb in fbs {
            if fb != name && !graph.contains_key(fb) {
                let (line, column) = manifest::locate(text, "fallback_tool");
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    line,
                    column,
                    message: format!("fallback_tool {fb:?} does not exist on the search path"),
                });
            }
        }
    }
    for cycle in cycles(&graph) {
        if !only.is_empty() && !cycle.iter().any(|c| only.contains(c)) {
            continue;
        }
        let (file, text, _) = &graph[&cycle[0]];
        let (line, column) = manifest::locate(text, "fallback_tool");
        diags.push(Diagnostic {
            severity: Severity::Info,
            file: file.clone(),
            line,
            column,
            message: format!(
                "fallback cycle {} -> {} (runs stop at a tool already tried)",
                cycle.join(" -> "),
                cycle[0]
            ),
        });
    }
    // The configuration file (schedules and groups).
    diags.extend(crate::schedule::commands::check_config(ctx));
    // Policies.
    let (ppath, ptext) = ctx.policies_text()?;
    match policy::parse(&ppath, &ptext) {
        Ok(p) => diags.extend(policy::check(&ppath, &ptext, &p)),
        Err(d) => diags.push(d),
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    Ok(Report {
        ok: errors == 0 && (!strict || warnings == 0),
        checked,
        errors,
        warnings,
        policies: ppath.display().to_string(),
        diagnostics: diags,
    })
}

/// Elementary cycles of the fallback graph, each listed once from its smallest name.
fn cycles(graph: &BTreeMap<String, (PathBuf, String, Vec<String>)>) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    fn dfs(
        g: &BTreeMap<String, (PathBuf, String, Vec<String>)>,
        start: &str,
        node: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        let Some((_, _, next)) = g.get(node) else {
            return;
        };
        for n in next {
            if n == start {
                // A self-loop is already an error of its own.
                if path.len() > 1 {
                    found.push(path.clone());
                }
            } else if n.as_str() > start && !path.contains(n) && path.len() < 32 {
                path.push(n.clone());
                dfs(g, start, n, path, found);
                path.pop();
            }
        }
    }
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        dfs(graph, start, start, &mut path, &mut found);
    }
    found
}

/// `status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// gathm's version.
    pub version: &'static str,
    /// `GATHM_HOME`.
    pub home: String,
    /// The tool search path.
    pub tools_path: Vec<String>,
    /// Tools found.
    pub tools: usize,
    /// Invalid or shadowed manifests.
    pub manifest_problems: usize,
    /// The policies in effect.
    pub policies: String,
    /// The role in effect.
    pub role: String,
    /// Breakers not closed.
    pub breakers: Vec<BreakerInfo>,
    /// Cache statistics.
    pub cache: cache::Stats,
    /// Whether each state directory can be written.
    pub state: Vec<StateDir>,
    /// Where breakers, rate limits and group slots live, and whether that
    /// backend answers.
    pub shared: SharedStatus,
}

/// The shared-state backend in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct SharedStatus {
    /// Which backend and where.
    #[serde(flatten)]
    pub backend: crate::state::shared::Backend,
    /// It answered a ping.
    pub reachable: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Ping the shared-state backend.
pub fn shared_status(ctx: &Context) -> SharedStatus {
    let shared = ctx.shared();
    let err = shared.ping().err();
    SharedStatus {
        backend: shared.backend(),
        reachable: err.is_none(),
        error: err.map(|e| e.to_string()),
    }
}

/// One state directory's health (`status`, `health`).
#[derive(Debug, Clone, Serialize)]
pub struct StateDir {
    /// What it holds: `breakers`, `cache`, `rate limits`, `logs`.
    pub part: &'static str,
    /// The directory.
    pub path: String,
    /// It can be created and written.
    pub writable: bool,
    /// The OS error otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Probe every state directory under `GATHM_HOME` (and its overrides).
pub fn state_health(ctx: &Context) -> Vec<StateDir> {
    let h = &ctx.home;
    [
        ("breakers", &h.health),
        ("cache", &h.cache),
        ("rate limits", &h.ratelimit),
        ("logs", &h.logs),
    ]
    .into_iter()
    .map(|(part, dir)| {
        let err = state::probe_dir(dir).err();
        StateDir {
            part,
            path: dir.display().to_string(),
            writable: err.is_none(),
            error: err.map(|e| e.to_string()),
        }
    })
    .collect()
}

/// Version, paths, tools, breakers and cache.
pub fn status(ctx: &Context, role: &str) -> Result<Status> {
    let scan = ctx.search.scan();
    // A broken state directory is reported, not fatal.
    let breakers = breaker_status(ctx, None)
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b.state != "closed")
        .collect();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION"),
        home: ctx.home.root.display().to_string(),
        tools_path: ctx
            .search
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
        tools: scan.tools.len(),
        manifest_problems: scan.diagnostics.len(),
        policies: ctx.policy_source.to_string(),
        role: role.to_string(),
        breakers,
        cache: cache::stats(&ctx.home.cache, clock::now()).unwrap_or_default(),
        state: state_health(ctx),
        shared: shared_status(ctx),
    })
}

/// One breaker in `breaker status`.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerInfo {
    /// Tool name.
    pub tool: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Consecutive counted failures.
    pub failures: u32,
    /// All counted failures recorded.
    pub total_failures: u64,
    /// Seconds until a probe is allowed (open only).
    pub retry_in: Option<f64>,
    /// Last counted failure.
    pub last_failure: Option<String>,
    /// Threshold in effect.
    pub failure_threshold: u32,
    /// Recovery timeout in effect.
    pub recovery_timeout: f64,
}

fn breaker_cfg(ctx: &Context, tool: &str) -> breaker::Config {
    let mut c = ctx.settings.breaker;
    if let Ok(Some(t)) = ctx.search.find(tool)
        && let Some(b) = t.manifest.breaker_settings()
    {
        c.threshold = b.failure_threshold.unwrap_or(c.threshold).max(1);
        c.recovery_timeout = b.recovery_timeout.unwrap_or(c.recovery_timeout);
    }
    c
}

/// Breaker state of one tool, or of every tool that has a state file.
pub fn breaker_status(ctx: &Context, tool: Option<&str>) -> Result<Vec<BreakerInfo>> {
    let names: Vec<String> = match tool {
        Some(t) => vec![t.to_string()],
        None => ctx.shared().breaker_names()?,
    };
    let shared = ctx.shared();
    let now = shared.now()?;
    let mut out = Vec::new();
    for name in names {
        let rec = shared.breaker_read(&name)?;
        let cfg = breaker_cfg(ctx, &name);
        let view = breaker::view(&rec, cfg, now);
        out.push(BreakerInfo {
            tool: name,
            state: view.name().into(),
            failures: rec.failures,
            total_failures: rec.total_failures,
            retry_in: match view {
                breaker::View::Open { retry_in } => Some(retry_in.ceil()),
                _ => None,
            },
            last_failure: rec.last_failure.map(clock::rfc3339),
            failure_threshold: cfg.threshold,
            recovery_timeout: cfg.recovery_timeout,
        });
    }
    out.sort_by(|a, b| a.tool.cmp(&b.tool));
    Ok(out)
}

/// Reset one breaker, or all (`all`); returns the tools reset.
pub fn breaker_reset(ctx: &Context, tool: &str) -> Result<Vec<String>> {
    let names: Vec<String> = if tool == "all" {
        breaker_status(ctx, None)?
            .into_iter()
            .map(|b| b.tool)
            .collect()
    } else {
        if !manifest::valid_name(tool) {
            return Err(Error::Usage(format!("invalid tool name {tool:?}")));
        }
        vec![tool.to_string()]
    };
    for n in &names {
        ctx.shared().breaker_reset(n)?;
    }
    ctx.logger.audit(
        names
            .iter()
            .map(|n| serde_json::json!({"action": "breaker_reset", "tool": n}))
            .collect(),
    );
    Ok(names)
}

/// The answer of a cache command.
#[derive(Debug, Serialize)]
pub struct CacheAnswer {
    /// What was done.
    pub action: &'static str,
    /// Entries removed.
    pub removed: u64,
    /// For invalidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// Cache statistics.
pub fn cache_stats(ctx: &Context) -> Result<cache::Stats> {
    cache::stats(&ctx.home.cache, clock::now())
}

/// `cache clear|purge|invalidate`.
pub fn cache_change(
    ctx: &Context,
    action: &'static str,
    tool: Option<&str>,
) -> Result<CacheAnswer> {
    let removed = match (action, tool) {
        ("clear", _) => cache::clear_expired(&ctx.home.cache, clock::now())?,
        ("purge", _) => cache::purge(&ctx.home.cache)?,
        ("invalidate", Some(t)) => {
            if !manifest::valid_name(t) {
                return Err(Error::Usage(format!("invalid tool name {t:?}")));
            }
            cache::invalidate(&ctx.home.cache_dir_of(t))?
        }
        _ => return Err(Error::Usage("unknown cache action".into())),
    };
    Ok(CacheAnswer {
        action,
        removed,
        tool: tool.map(String::from),
    })
}

/// `policy check`.
#[derive(Debug, Serialize)]
pub struct PolicyCheck {
    /// Role.
    pub role: String,
    /// Tool.
    pub tool: String,
    /// The decision and its rule.
    #[serde(flatten)]
    pub decision: Decision,
    /// Rate limits that apply: key, limit, capacity (limit + burst).
    pub rate_limits: Vec<Value>,
    /// The policies file.
    pub policies: String,
}

/// Decide for a role, tool and arguments, and audit the decision.
pub fn policy_check(
    ctx: &Context,
    role: &str,
    tool: &str,
    args: &[String],
    approved: bool,
) -> Result<PolicyCheck> {
    let p = ctx.policies()?;
    let p = &*p;
    let mut d = policy::decide(p, role, tool, Action::Execute, approved);
    if d.allowed()
        && let Some(v) = policy::check_args(p, args)
    {
        d = v;
    }
    ctx.logger.audit(vec![serde_json::json!({
        "action": "policy_check",
        "role": role,
        "tool": tool,
        "decision": d.decision,
        "rule": d.rule,
    })]);
    Ok(PolicyCheck {
        role: role.into(),
        tool: tool.into(),
        rate_limits: policy::limits_for(p, role, tool)
            .into_iter()
            .map(|(k, l, c)| serde_json::json!({"key": k, "limit": l, "capacity": c, "window_seconds": p.rate_limiting.window_seconds}))
            .collect(),
        decision: d,
        policies: ctx.policy_source.to_string(),
    })
}

/// `policy show`: the effective policy and its source.
pub fn policy_show(ctx: &Context) -> Result<Value> {
    let p = ctx.policies()?;
    let p = &*p;
    Ok(serde_json::json!({"source": ctx.policy_source.to_string(), "policy": p}))
}
