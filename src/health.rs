//! Health checks: the executable, each `dependencies.system` command on PATH,
//! each `apis[].health_endpoint` probed separately over HTTP (short timeout,
//! all probes concurrent), and the breaker state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::breaker;
use crate::clock;
use crate::config::Context;
use crate::registry::Tool;

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `executable`, `dependency:<cmd>`, `api:<name>`.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything passed.
    Healthy,
    /// Runs, but an API endpoint failed or the breaker is not closed.
    Degraded,
    /// Cannot run: executable or a system dependency missing.
    Unhealthy,
}

/// The health of one tool.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Tool name.
    pub tool: String,
    /// Overall status.
    pub status: Status,
    /// Breaker state name (`closed`, `open`, `half_open`).
    pub breaker: String,
    /// Consecutive counted failures.
    pub breaker_failures: u32,
    /// Every check.
    pub checks: Vec<Check>,
    /// The failed checks, as sentences.
    pub issues: Vec<String>,
    /// When checked (RFC 3339).
    pub timestamp: String,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Find a command on PATH.
pub fn which(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return is_executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(cmd))
            .find(|p| is_executable(p))
    })
}

fn probe(client: &reqwest::blocking::Client, url: &str) -> (bool, String) {
    let t = std::time::Instant::now();
    match client.get(url).send() {
        Ok(r) => {
            let s = r.status();
            let ok = s.is_success() || s.is_redirection();
            (
                ok,
                format!("HTTP {} in {} ms", s.as_u16(), t.elapsed().as_millis()),
            )
        }
        Err(e) => (
            false,
            format!("unreachable: {}", crate::client::describe(&e)),
        ),
    }
}

fn client() -> Option<reqwest::blocking::Client> {
    let secs: f64 = std::env::var("GATHM_HEALTH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    crate::client::build(Duration::from_secs_f64(secs))
}

/// Check many tools; every API probe of every tool runs concurrently.
pub fn check_all(ctx: &Context, tools: &[Tool]) -> Vec<Health> {
    let client = client();
    let now = clock::now();
    // Probe endpoints concurrently, at most 16 threads at a time.
    let mut jobs: Vec<(usize, String, String)> = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        for api in &t.manifest.apis {
            if let Some(url) = api
                .health_endpoint
                .as_deref()
                .filter(|u| !u.trim().is_empty())
            {
                jobs.push((i, api.name.clone(), url.to_string()));
            }
        }
    }
    let mut results: Vec<(usize, Check)> = Vec::new();
    if let Some(client) = &client {
        for chunk in jobs.chunks(16) {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(i, name, url)| {
                        s.spawn(move || {
                            let (ok, detail) = probe(client, url);
                            (
                                *i,
                                Check {
                                    name: format!("api:{name}"),
                                    ok,
                                    detail: format!("{url}: {detail}"),
                                },
                            )
                        })
                    })
                    .collect();
                for h in handles {
                    if let Ok(r) = h.join() {
                        results.push(r);
                    }
                }
            });
        }
    }
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut checks = Vec::new();
            let (program, _) = t.program();
            let exe = if program.components().count() > 1 {
                is_executable(&program).then_some(program.clone())
            } else {
                which(&program.to_string_lossy())
            };
            checks.push(Check {
                name: "executable".into(),
                ok: exe.is_some(),
                detail: match &exe {
                    Some(p) => p.display().to_string(),
                    None => crate::checks::start_problems(t)
                        .first()
                        .map(|(key, m)| format!("{m} ({})", crate::checks::at(t, key)))
                        .unwrap_or_else(|| {
                            format!("{} is missing or not executable", program.display())
                        }),
                },
            });
            if let Some(p) = &exe
                && let Some(problem) = crate::checks::interpreter_problem(p)
            {
                checks.push(Check {
                    name: "interpreter".into(),
                    ok: false,
                    detail: format!("{problem} ({})", crate::checks::at(t, "name")),
                });
            }
            for dep in &t.manifest.dependencies.system {
                let found = which(dep);
                checks.push(Check {
                    name: format!("dependency:{dep}"),
                    ok: found.is_some(),
                    detail: found
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| format!("{dep} not found on PATH")),
                });
            }
            let hard_fail = checks.iter().any(|c| !c.ok);
            for (_, c) in results.iter().filter(|(j, _)| *j == i) {
                checks.push(c.clone());
            }
            if client.is_none() && t.manifest.apis.iter().any(|a| a.health_endpoint.is_some()) {
                checks.push(Check {
                    name: "api".into(),
                    ok: false,
                    detail: "HTTP client unavailable".into(),
                });
            }
            let rec = ctx.shared().breaker_read(&t.name).unwrap_or_default();
            let cfg = ctx.settings.breaker;
            let view = breaker::view(&rec, cfg, now);
            let mut issues: Vec<String> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            if view != breaker::View::Closed {
                issues.push(format!("circuit breaker is {}", view.name()));
            }
            let status = if hard_fail {
                Status::Unhealthy
            } else if issues.is_empty() {
                Status::Healthy
            } else {
                Status::Degraded
            };
            Health {
                tool: t.name.clone(),
                status,
                breaker: view.name().into(),
                breaker_failures: rec.failures,
                checks,
                issues,
                timestamp: clock::rfc3339(now),
            }
        })
        .collect()
}

/// Healthy apart from the breaker itself (what `heal` requires before a reset).
pub fn healthy_ignoring_breaker(h: &Health) -> bool {
    h.checks.iter().all(|c| c.ok)
}
