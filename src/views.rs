//! Text a person reads: the tables and summaries of `list`, `cache`,
//! `breaker status`, `health` and `show` (the JSON forms are the serde types).

use crate::config::Context;
use crate::health::{Health, Status};
use crate::manifest::CacheSetting;
use crate::registry::Tool;
use crate::table::{Colour, Table, colour_on};

/// A tool's arguments as a usage line: `DOMAIN [TYPE] [options]`.
pub fn usage_of(t: &Tool) -> String {
    let Some(is) = &t.manifest.input_schema else {
        return String::new();
    };
    let mut parts: Vec<String> = is
        .arguments
        .iter()
        .map(|a| {
            let n = a.name.to_uppercase();
            if a.required { n } else { format!("[{n}]") }
        })
        .collect();
    if !is.flags.is_empty() {
        parts.push("[options]".into());
    }
    parts.join(" ")
}

/// `list`: NAME VERSION CATEGORY ARGUMENTS DESCRIPTION, then the count.
pub fn list(tools: &[Tool]) -> String {
    let mut t = Table::new(&["NAME", "VERSION", "CATEGORY", "ARGUMENTS", "DESCRIPTION"]);
    for tool in tools {
        let s = crate::ops::summary(tool);
        t.row(vec![
            s.name,
            s.version,
            s.category.to_vec().join(","),
            usage_of(tool),
            s.description,
        ]);
    }
    let mut out = if t.is_empty() {
        String::new()
    } else {
        t.render(colour_on())
    };
    out.push_str(&format!(
        "{} tool{}\n",
        tools.len(),
        if tools.len() == 1 { "" } else { "s" }
    ));
    out
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `cache stats`: totals, then a TOOL ENTRIES table.
pub fn cache_stats(s: &crate::cache::Stats) -> String {
    let mut out = format!(
        "cache: {} active entries ({}), {} expired ({} entries in all)\n",
        s.active,
        bytes(s.size_bytes),
        s.expired,
        s.total_entries
    );
    if !s.per_tool.is_empty() {
        let mut t = Table::new(&["TOOL", "ACTIVE ENTRIES"]);
        for (tool, n) in &s.per_tool {
            t.row(vec![tool.clone(), n.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render(colour_on()));
    }
    if s.expired > 0 {
        out.push_str("(`gathm cache purge` removes expired entries; `gathm cache clear` empties the cache)\n");
    }
    out
}

fn state_colour(state: &str) -> Option<Colour> {
    match state {
        "closed" | "healthy" => Some(Colour::Green),
        "half_open" | "degraded" => Some(Colour::Yellow),
        "open" | "unhealthy" => Some(Colour::Red),
        _ => None,
    }
}

/// `breaker status`: TOOL STATE FAILURES THRESHOLD PROBE-IN.
pub fn breakers(list: &[crate::ops::BreakerInfo]) -> String {
    let mut t = Table::new(&["TOOL", "STATE", "FAILURES", "THRESHOLD", "PROBE IN"]);
    for b in list {
        t.row_coloured(vec![
            (b.tool.clone(), None),
            (b.state.clone(), state_colour(&b.state)),
            (b.failures.to_string(), None),
            (b.failure_threshold.to_string(), None),
            (
                b.retry_in
                    .map(|r| format!("{r:.0} s"))
                    .unwrap_or_else(|| "-".into()),
                None,
            ),
        ]);
    }
    t.render(colour_on())
}

/// `health`: TOOL STATUS BREAKER ISSUES (each further issue on its own line),
/// then the counts.
pub fn health(results: &[Health]) -> String {
    let mut t = Table::new(&["TOOL", "STATUS", "BREAKER", "ISSUES"]);
    let (mut h, mut d, mut u) = (0, 0, 0);
    for r in results {
        let status = match r.status {
            Status::Healthy => {
                h += 1;
                "healthy"
            }
            Status::Degraded => {
                d += 1;
                "degraded"
            }
            Status::Unhealthy => {
                u += 1;
                "unhealthy"
            }
        };
        let mut issues = r.issues.iter();
        t.row_coloured(vec![
            (r.tool.clone(), None),
            (status.into(), state_colour(status)),
            (r.breaker.clone(), state_colour(&r.breaker)),
            (issues.next().cloned().unwrap_or_default(), None),
        ]);
        for more in issues {
            t.row(vec![
                String::new(),
                String::new(),
                String::new(),
                more.clone(),
            ]);
        }
    }
    let mut out = t.render(colour_on());
    out.push_str(&format!("healthy: {h}, degraded: {d}, unhealthy: {u}\n"));
    out
}

fn env_source(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| format!("{var}={v}"))
}

/// `show`: the manifest as written, then the effective settings with where
/// each comes from.
pub fn show(ctx: &Context, t: &Tool) -> String {
    let written = std::fs::read_to_string(&t.manifest_path).unwrap_or_default();
    let mut out = format!("# {}\n{written}", t.manifest_path.display());
    if !written.ends_with('\n') {
        out.push('\n');
    }
    let mut table = Table::new(&["SETTING", "EFFECTIVE", "FROM"]);
    for e in effective(ctx, t) {
        table.row(vec![e.setting.into(), e.value, e.source]);
    }
    out.push_str("\n# effective settings\n");
    out.push_str(&table.render(colour_on()));
    out
}

/// One effective setting of a tool and where its value comes from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Effective {
    /// `command`, `timeout`, `cache`, `breaker`, `retry`, `fallbacks`,
    /// `workspace`.
    pub setting: &'static str,
    /// The value in effect, as a person reads it.
    pub value: String,
    /// `manifest`, `default`, or the environment variable (`NAME=value`).
    pub source: String,
}

/// The effective settings of a tool (`show`; `show --json` as `effective`).
pub fn effective(ctx: &Context, t: &Tool) -> Vec<Effective> {
    let m = &t.manifest;
    let s = &ctx.settings;
    let mut rows: Vec<(&'static str, String, String)> = Vec::new();
    let (program, prefix) = t.program();
    let mut argv = vec![program.display().to_string()];
    argv.extend(prefix.iter().map(|a| a.to_string_lossy().into_owned()));
    rows.push((
        "command",
        argv.join(" "),
        if m.command.is_some() {
            "manifest".into()
        } else {
            "default (<dir>/<name>)".into()
        },
    ));
    rows.push(match m.timeout {
        Some(x) => ("timeout", format!("{x} s"), "manifest".into()),
        None => (
            "timeout",
            format!("{} s", s.default_timeout),
            env_source("GATHM_DEFAULT_TIMEOUT").unwrap_or_else(|| "default".into()),
        ),
    });
    let cache_env = if s.cache_enabled {
        String::new()
    } else {
        ", but GATHM_CACHE_ENABLED turns caching off".into()
    };
    rows.push(match &m.cache {
        Some(CacheSetting::Enabled(false)) => ("cache", "off".into(), "manifest".into()),
        Some(CacheSetting::Enabled(true)) => (
            "cache",
            format!("ttl {} s{cache_env}", s.cache_ttl),
            "manifest (ttl: GATHM_CACHE_DEFAULT_TTL or default)".into(),
        ),
        Some(CacheSetting::Ttl { ttl }) => (
            "cache",
            format!("ttl {ttl} s{cache_env}"),
            "manifest".into(),
        ),
        None if s.cache_everything => (
            "cache",
            format!("ttl {} s{cache_env}", s.cache_ttl),
            "GATHM_CACHE_DEFAULT_TTL (set: every tool is cached)".into(),
        ),
        None => (
            "cache",
            "off (no `cache` block: caching is opt-in)".into(),
            "default".into(),
        ),
    });
    let cfg = crate::run::breaker_config(ctx, t);
    let b = m.breaker_settings();
    rows.push(if !m.breaker_enabled() {
        ("breaker", "off".into(), "manifest (breaker: false)".into())
    } else {
        let answers = if m.answer_codes().is_empty() {
            String::new()
        } else {
            format!("; exit codes {:?} are answers", m.answer_codes())
        };
        (
            "breaker",
            format!(
                "opens after {} failures, probe after {} s{answers}",
                cfg.threshold, cfg.recovery_timeout
            ),
            match (
                b.and_then(|b| b.failure_threshold).is_some()
                    || b.and_then(|b| b.recovery_timeout).is_some()
                    || !m.answer_codes().is_empty(),
                env_source("CB_FAILURE_THRESHOLD").or_else(|| env_source("CB_RECOVERY_TIMEOUT")),
            ) {
                (true, _) => "manifest".into(),
                (false, Some(e)) => e,
                (false, None) => "default".into(),
            },
        )
    });
    rows.push(match &m.retry {
        Some(r) => (
            "retry",
            format!(
                "{} attempts, delay {} s x{} (max {} s){}",
                r.attempts,
                r.delay,
                r.backoff,
                r.max_delay,
                if r.on_exit_codes.is_empty() {
                    String::new()
                } else {
                    format!(", on exit codes {:?}", r.on_exit_codes)
                }
            ),
            "manifest".into(),
        ),
        None => ("retry", "1 attempt (no retry)".into(), "default".into()),
    });
    let fb = m.fallbacks();
    rows.push((
        "fallbacks",
        if fb.is_empty() {
            "none".into()
        } else {
            fb.join(" -> ")
        },
        if fb.is_empty() { "default" } else { "manifest" }.into(),
    ));
    rows.push(match m.workspace() {
        None => (
            "workspace",
            "the caller's directory".into(),
            if m.workspace.is_some() {
                "manifest"
            } else {
                "default"
            }
            .into(),
        ),
        Some(w) => (
            "workspace",
            format!(
                "isolated under {}{}, keep {}",
                ctx.home.work().display(),
                w.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
                match w.keep {
                    crate::manifest::Keep::OnFailure => "on_failure",
                    crate::manifest::Keep::Always => "always",
                    crate::manifest::Keep::Never => "never",
                }
            ),
            "manifest".into(),
        ),
    });
    rows.into_iter()
        .map(|(k, value, source)| Effective {
            setting: k,
            value,
            source,
        })
        .collect()
}
