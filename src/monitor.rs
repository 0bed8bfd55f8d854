//! `gathm monitor [--interval S] [--once] [TOOL…]`: run the health checks
//! periodically and feed them into the breakers.
//!
//! - An unhealthy tool (its executable, interpreter or a system dependency
//!   missing) gets its breaker opened, so runs go to the fallback at once
//!   instead of failing `failure_threshold` times first.
//! - A healthy tool whose breaker has waited out its recovery timeout
//!   (half-open) is closed: the health check was the probe. An open breaker
//!   still inside its recovery timeout is left alone.
//! - Every change of breaker state or of health status is a transition,
//!   logged to the app log (component `monitor`) and returned to the caller.

use serde::Serialize;

use crate::breaker::{self, View};
use crate::clock;
use crate::config::Context;
use crate::error::Result;
use crate::health::{self, Health, Status};
use crate::logs::Level;
use crate::registry::Tool;

/// One change seen by the monitor.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Tool name.
    pub tool: String,
    /// `health` or `breaker`.
    pub what: &'static str,
    /// Before (`unknown` on the first round).
    pub from: String,
    /// After.
    pub to: String,
    /// Why (the first failed check, or the rule applied).
    pub reason: String,
    /// When (RFC 3339).
    pub timestamp: String,
}

/// One round's results.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Health of each tool, after the breakers were updated.
    pub health: Vec<Health>,
    /// Changes since the previous round.
    pub transitions: Vec<Transition>,
}

/// What the monitor remembers between rounds: the last status of each tool.
#[derive(Debug, Default)]
pub struct Memory {
    last: std::collections::BTreeMap<String, (String, String)>,
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Healthy => "healthy",
        Status::Degraded => "degraded",
        Status::Unhealthy => "unhealthy",
    }
}

/// Run one round over `tools`.
pub fn round(ctx: &Context, tools: &[Tool], mem: &mut Memory) -> Result<Round> {
    let results = health::check_all(ctx, tools);
    let mut transitions = Vec::new();
    let mut out = Vec::with_capacity(results.len());
    for (t, h) in tools.iter().zip(results) {
        let shared = ctx.shared();
        // The breaker's own clock (Redis's in a fleet) decides its views.
        let now = shared.now().unwrap_or_else(|_| clock::now());
        let ts = clock::rfc3339(now);
        let cfg = crate::run::breaker_config(ctx, t);
        let read = || shared.breaker_read(&t.name).unwrap_or_default();
        let before = breaker::view(&read(), cfg, now);
        let problem = h
            .issues
            .first()
            .cloned()
            .unwrap_or_else(|| "all checks passed".into());
        if !t.manifest.breaker_enabled() {
            // `breaker: false`: health is reported, no breaker is fed.
        } else if h.status == Status::Unhealthy && !matches!(before, View::Open { .. }) {
            // Count failures until the breaker opens (at most the threshold).
            for _ in 0..cfg.threshold.max(1) {
                let r = shared.breaker_record(&t.name, cfg, false)?;
                if matches!(breaker::view(&r, cfg, now), View::Open { .. }) {
                    break;
                }
            }
        } else if health::healthy_ignoring_breaker(&h)
            && matches!(before, View::HalfOpen { probing: false })
        {
            shared.breaker_record(&t.name, cfg, true)?;
        }
        let after = breaker::view(&read(), cfg, now);
        // Recompute the health with the new breaker state.
        let h = if after.name() != before.name() {
            health::check_all(ctx, std::slice::from_ref(t))
                .pop()
                .unwrap_or(h)
        } else {
            h
        };
        let status = status_name(h.status).to_string();
        let (prev_status, prev_breaker) = mem
            .last
            .get(&t.name)
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), before.name().to_string()));
        if prev_status != status {
            transitions.push(Transition {
                tool: t.name.clone(),
                what: "health",
                from: prev_status,
                to: status.clone(),
                reason: problem.clone(),
                timestamp: ts.clone(),
            });
        }
        if prev_breaker != after.name() {
            transitions.push(Transition {
                tool: t.name.clone(),
                what: "breaker",
                from: prev_breaker,
                to: after.name().to_string(),
                reason: if h.status == Status::Unhealthy {
                    format!("unhealthy: {problem}")
                } else {
                    "healthy check after the recovery timeout".into()
                },
                timestamp: ts,
            });
        }
        mem.last
            .insert(t.name.clone(), (status, after.name().to_string()));
        out.push(h);
    }
    for tr in &transitions {
        let mut extra = serde_json::Map::new();
        extra.insert("tool".into(), tr.tool.clone().into());
        extra.insert("what".into(), tr.what.into());
        extra.insert("from".into(), tr.from.clone().into());
        extra.insert("to".into(), tr.to.clone().into());
        extra.insert("reason".into(), tr.reason.clone().into());
        let level = if tr.to == "unhealthy" || tr.to == "open" {
            Level::Warn
        } else {
            Level::Info
        };
        ctx.logger.app(
            level,
            "monitor",
            &format!("{} {}: {} -> {}", tr.tool, tr.what, tr.from, tr.to),
            extra,
        );
    }
    Ok(Round {
        health: out,
        transitions,
    })
}

/// The compact table: TOOL STATUS BREAKER ISSUE (coloured at a terminal).
pub fn table(health: &[Health]) -> String {
    use crate::table::{Colour, Table, colour_on};
    let colour = |s: &str| match s {
        "healthy" | "closed" => Some(Colour::Green),
        "degraded" | "half_open" => Some(Colour::Yellow),
        "unhealthy" | "open" => Some(Colour::Red),
        _ => None,
    };
    let mut t = Table::new(&["TOOL", "STATUS", "BREAKER", "ISSUE"]);
    for h in health {
        let status = status_name(h.status);
        t.row_coloured(vec![
            (h.tool.clone(), None),
            (status.to_string(), colour(status)),
            (h.breaker.clone(), colour(&h.breaker)),
            (h.issues.first().cloned().unwrap_or_default(), None),
        ]);
    }
    t.render(colour_on())
}

/// A transition as one line.
pub fn line(t: &Transition) -> String {
    format!(
        "{} {} {}: {} -> {} ({})",
        t.timestamp, t.tool, t.what, t.from, t.to, t.reason
    )
}

/// The monitor loop: a round every `interval` seconds over `tools` (or every
/// tool on the search path, rescanned each round) until `stop` returns true
/// (checked every 100 ms), or after one round when `once`. `on_round` gets
/// each round. `gathm monitor` runs it in the foreground; `gathm serve` can
/// run it on a thread when `GATHM_MONITOR_INTERVAL` is set and count
/// `Round::transitions` in its metrics.
pub fn run_loop(
    ctx: &Context,
    tools: Option<&[Tool]>,
    interval: f64,
    once: bool,
    stop: &dyn Fn() -> bool,
    on_round: &mut dyn FnMut(&Round),
) -> Result<()> {
    let mut mem = Memory::default();
    loop {
        let scanned;
        let list = match tools {
            Some(t) => t,
            None => {
                scanned = ctx.search.scan().tools;
                &scanned
            }
        };
        let r = round(ctx, list, &mut mem)?;
        on_round(&r);
        if once {
            return Ok(());
        }
        let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(interval);
        while std::time::Instant::now() < end {
            if stop() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The interval from `GATHM_MONITOR_INTERVAL` (seconds), if set and positive.
pub fn env_interval() -> Option<f64> {
    crate::config::env_parse::<f64>("GATHM_MONITOR_INTERVAL").filter(|s| *s > 0.0 && s.is_finite())
}
