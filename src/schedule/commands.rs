//! `gathm schedule list | next | validate | run | tick`: the CLI front-end of
//! schedules (printing and exit codes; the work is in `tick` and `cron`).

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

use crate::cli::{Global, ScheduleCmd};
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::manifest::{Diagnostic, Severity};
use crate::output;
use crate::schedule::file::{Catchup, ConfigFile, Overlap, Schedule};
use crate::schedule::tick::{self, Outcome, SlotRecord};

/// Every problem with the configuration file, including references to tools
/// that do not exist and pipeline files that cannot be read.
pub fn check_config(ctx: &Context) -> Vec<Diagnostic> {
    let (path, c, mut out) = match crate::schedule::file::locate(ctx.config_path(), &ctx.home.root)
    {
        None => (
            PathBuf::from("gathm.yaml (none found)"),
            ConfigFile::default(),
            Vec::new(),
        ),
        Some(path) => match crate::schedule::file::load_all(&path) {
            (Some(c), out) => (path, c, out),
            (None, out) => return out,
        },
    };
    for s in &c.schedules {
        if let Some(t) = &s.tool
            && !matches!(ctx.search.find(&t.value), Ok(Some(_)))
        {
            let (line, column) = tick_loc(s);
            out.push(Diagnostic {
                severity: Severity::Error,
                file: path.clone(),
                line,
                column,
                message: format!("schedule {:?}: no tool named {:?}", s.name, t.value),
            });
        }
        if let Some(p) = &s.pipeline
            && !p.is_file()
        {
            let (line, column) = tick_loc(s);
            out.push(Diagnostic {
                severity: Severity::Error,
                file: path.clone(),
                line,
                column,
                message: format!(
                    "schedule {:?}: pipeline file {} not found",
                    s.name,
                    p.display()
                ),
            });
        }
    }
    // Manifests that name a group the file does not define.
    for t in ctx.search.scan().tools {
        for g in t
            .manifest
            .concurrency_group
            .as_ref()
            .map(|g| g.to_vec())
            .unwrap_or_default()
        {
            if !c.groups.contains_key(&g) {
                let text = std::fs::read_to_string(&t.manifest_path).unwrap_or_default();
                let (line, column) = crate::manifest::locate(&text, "concurrency_group");
                out.push(Diagnostic {
                    severity: Severity::Error,
                    file: t.manifest_path.clone(),
                    line,
                    column,
                    message: format!(
                        "concurrency group {g:?} is not defined in {}",
                        path.display()
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    out
}

fn tick_loc(s: &Schedule) -> (u64, u64) {
    crate::schedule::file::tool_at(s)
}

/// The loaded file, or a data error listing its problems (printed by the caller).
fn load(ctx: &Context) -> std::result::Result<(PathBuf, ConfigFile), Vec<Diagnostic>> {
    match ctx.config() {
        Ok(Some((p, c))) => Ok((p.clone(), c.clone())),
        Ok(None) => Ok((PathBuf::new(), ConfigFile::default())),
        Err(d) => Err(d.clone()),
    }
}

fn find<'a>(c: &'a ConfigFile, name: &str) -> Result<&'a Schedule> {
    c.schedules.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<String> = c.schedules.iter().map(|s| s.name.clone()).collect();
        let hint = crate::registry::suggestions(name, &names);
        Error::NotFound(if hint.is_empty() {
            format!("no schedule named {name:?}")
        } else {
            format!(
                "no schedule named {name:?}; did you mean {}?",
                hint.join(", ")
            )
        })
    })
}

/// One schedule as `list` shows it.
#[derive(Debug, Serialize)]
pub struct ScheduleInfo {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub timezone: String,
    /// What it runs.
    pub target: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Overlap rule.
    pub overlap: Overlap,
    /// Catch-up rule.
    pub catchup: Catchup,
    /// The next fire time (RFC 3339), if enabled.
    pub next: Option<String>,
    /// The most recent slot and its outcome.
    pub last: Option<SlotRecord>,
}

fn print_diags(g: &Global, d: &[Diagnostic]) {
    if g.json {
        output::json(&serde_json::json!({"ok": false, "diagnostics": d}));
    } else {
        for x in d {
            output::raw_err(format!("{x}\n").as_bytes());
        }
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
        Outcome::Missed => "missed",
        Outcome::Started => "started",
    }
}

fn record_line(name: &str, r: &SlotRecord) -> String {
    let mut l = format!("{name}  {}  {}", r.slot, outcome_word(r.outcome));
    if let Some(c) = r.exit_code {
        l.push_str(&format!(" (exit {c})"));
    }
    if let Some(m) = &r.message
        && r.outcome != Outcome::Success
    {
        l.push_str(&format!(": {m}"));
    }
    l
}

fn exit_of(records: &[&SlotRecord]) -> i32 {
    records
        .iter()
        .find(|r| r.outcome == Outcome::Failed)
        .map_or(0, |r| r.exit_code.filter(|c| *c != 0).unwrap_or(1))
}

/// Run a `schedule` subcommand; returns the exit status.
pub fn command(ctx: &Context, g: &Global, cmd: ScheduleCmd) -> Result<i32> {
    if !matches!(cmd, ScheduleCmd::Validate)
        && let Err(d) = ctx.config()
    {
        print_diags(g, d);
        return Ok(i32::from(code::DATA_ERR));
    }
    let (_, c) = load(ctx).unwrap_or_default();
    match cmd {
        ScheduleCmd::Validate => {
            let d = check_config(ctx);
            let path = crate::schedule::file::locate(ctx.config_path(), &ctx.home.root)
                .unwrap_or_default();
            if g.json {
                output::json(&serde_json::json!({
                    "ok": d.is_empty(),
                    "file": path.display().to_string(),
                    "schedules": c.schedules.len(),
                    "groups": c.groups.len(),
                    "diagnostics": d,
                }));
            } else {
                for x in &d {
                    output::raw_err(format!("{x}\n").as_bytes());
                }
                if path.as_os_str().is_empty() {
                    output::text(
                        "no configuration file (--config, GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)",
                    );
                } else {
                    output::text(&format!(
                        "{}: {} schedules, {} groups: {}",
                        path.display(),
                        c.schedules.len(),
                        c.groups.len(),
                        if d.is_empty() { "ok" } else { "FAILED" }
                    ));
                }
            }
            Ok(if d.is_empty() {
                0
            } else {
                i32::from(code::DATA_ERR)
            })
        }
        ScheduleCmd::List => {
            let now = Timestamp::now();
            let list: Vec<ScheduleInfo> = c
                .schedules
                .iter()
                .map(|s| ScheduleInfo {
                    name: s.name.clone(),
                    cron: s.cron.value.clone(),
                    timezone: s.zone().to_string(),
                    target: s.target(),
                    enabled: s.enabled,
                    overlap: s.overlap,
                    catchup: s.catchup,
                    next: s
                        .enabled
                        .then(|| s.cron().ok().and_then(|c| c.next_after(now)))
                        .flatten()
                        .map(|t| t.to_string()),
                    last: tick::history(ctx, &s.name).slots.last().cloned(),
                })
                .collect();
            if g.json {
                output::json(&list);
            } else if list.is_empty() {
                output::text(
                    "no schedules (add `schedules:` to gathm.yaml; see README, \"Schedules\")",
                );
            } else {
                let mut t = crate::table::Table::new(&["NAME", "CRON", "NEXT", "LAST", "RUNS"]);
                for s in &list {
                    t.row(vec![
                        s.name.clone(),
                        format!("{} ({})", s.cron, s.timezone),
                        s.next.clone().unwrap_or_else(|| "disabled".into()),
                        s.last.as_ref().map_or("never".into(), |r| {
                            format!("{} {}", r.slot, outcome_word(r.outcome))
                        }),
                        s.target.clone(),
                    ]);
                }
                output::text(t.render(crate::table::colour_on()).trim_end());
            }
            Ok(0)
        }
        ScheduleCmd::Next { name, count } => {
            let s = find(&c, &name)?;
            let cron = s.cron().map_err(Error::InvalidData)?;
            let next: Vec<String> = cron
                .upcoming(Timestamp::now(), count as usize)
                .into_iter()
                .map(|t| {
                    if s.zone() == "UTC" {
                        t.to_string()
                    } else {
                        format!(
                            "{} ({})",
                            t,
                            t.to_zoned(
                                jiff::tz::TimeZone::get(s.zone())
                                    .unwrap_or(jiff::tz::TimeZone::UTC)
                            )
                            .strftime("%Y-%m-%d %H:%M:%S %Z")
                        )
                    }
                })
                .collect();
            if g.json {
                output::json(
                    &serde_json::json!({"name": s.name, "timezone": s.zone(), "next": next}),
                );
            } else {
                output::text(&next.join("\n"));
            }
            Ok(0)
        }
        ScheduleCmd::Run { name } => {
            let s = find(&c, &name)?;
            let r = tick::run_now(ctx, s, !g.json)?;
            if g.json {
                output::json(&r);
            } else if !g.quiet || r.outcome != Outcome::Success {
                output::raw_err(format!("gathm: {}\n", record_line(&s.name, &r)).as_bytes());
            }
            Ok(match r.outcome {
                Outcome::Skipped => i32::from(code::TEMP_FAIL),
                _ => exit_of(&[&r]),
            })
        }
        ScheduleCmd::Tick => {
            let items = tick::tick(ctx, &c.schedules, Timestamp::now(), !g.json)?;
            if g.json {
                output::json(&serde_json::json!({"slots": items}));
            } else {
                for i in &items {
                    if !g.quiet || matches!(i.record.outcome, Outcome::Failed | Outcome::Missed) {
                        output::raw_err(
                            format!("gathm: {}\n", record_line(&i.schedule, &i.record)).as_bytes(),
                        );
                    }
                }
            }
            Ok(exit_of(
                &items.iter().map(|i| &i.record).collect::<Vec<_>>(),
            ))
        }
    }
}
