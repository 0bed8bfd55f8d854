//! Running schedules without a server: `gathm schedule tick` (whatever is
//! due now) and `gathm schedule run NAME` (now, by hand).
//!
//! Each schedule has a history file `$GATHM_HOME/schedules/<name>.json`,
//! updated under its lock: the last slot claimed and the outcome of the
//! recent slots. A slot is *claimed* (the history's `last_slot` moves past
//! it) before it runs, under the lock, so two ticks in the same minute, a
//! clock step back, or two machines' crontabs on one home never run a slot
//! twice. Each slot has a deterministic run id (`slot_id`). The run itself
//! holds `<name>.run.lock` for its whole life: that is the overlap lock
//! (`skip` tries it, `queue` waits for it, `cancel_previous` signals the
//! holder recorded in the history, then waits).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Context;
use crate::error::{Error, Result};
use crate::run::{self, RunRequest};
use crate::runner;
use crate::schedule::file::{Catchup, Overlap, Schedule};
use crate::state::{self, Durability};

/// How long after its time a slot still counts as on time (one tick of
/// system cron).
pub const GRACE: f64 = 60.0;
/// Slots of history kept per schedule.
pub const HISTORY: usize = 50;

/// What happened to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and the tool (or pipeline) succeeded.
    Success,
    /// It ran and failed (or was refused by a policy, limit or breaker).
    Failed,
    /// Not run: the previous run was still going (`overlap: skip`).
    Skipped,
    /// Not run: it fell outside the catch-up rules after downtime.
    Missed,
    /// Claimed and started; no outcome recorded (running, or the process died).
    Started,
}

/// One slot in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The slot's time (RFC 3339, UTC), or `manual:<time>` for `schedule run`.
    pub slot: String,
    /// Deterministic id of this (schedule, slot).
    pub run_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// The run's exit code, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed or was not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl SlotRecord {
    /// A record of `slot` of schedule `name`, with its deterministic id.
    pub fn new(name: &str, slot: String, outcome: Outcome) -> SlotRecord {
        SlotRecord {
            run_id: slot_id(name, &slot),
            slot,
            outcome,
            exit_code: None,
            message: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// A schedule's history file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The newest slot claimed (RFC 3339).
    #[serde(default)]
    pub last_slot: Option<String>,
    /// The process running the schedule now (for `cancel_previous`).
    #[serde(default)]
    pub running_pid: Option<i32>,
    /// Recent slots, oldest first.
    #[serde(default)]
    pub slots: Vec<SlotRecord>,
}

/// The history file of schedule `name`.
pub fn history_file(ctx: &Context, name: &str) -> PathBuf {
    ctx.home.root.join("schedules").join(format!("{name}.json"))
}

/// Read a schedule's history (empty if none yet).
pub fn history(ctx: &Context, name: &str) -> History {
    state::read_json(&history_file(ctx, name))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The deterministic id of a (schedule, slot) pair: a UUID built from a
/// BLAKE3 hash of both (RFC 9562 version 8, "custom").
pub fn slot_id(name: &str, slot: &str) -> String {
    let h = blake3::hash(format!("gathm-schedule\0{name}\0{slot}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(b)
        .into_uuid()
        .simple()
        .to_string()
}

fn rfc(t: Timestamp) -> String {
    t.to_string()
}

/// Which of the due slots (oldest first) run, and which are missed, under
/// the schedule's catch-up rule at `now`. Pure.
pub fn plan(s: &Schedule, due: &[Timestamp], now: Timestamp) -> (Vec<Timestamp>, Vec<Timestamp>) {
    let age = |t: &Timestamp| now.duration_since(*t).as_secs_f64();
    let in_window = |t: &Timestamp| age(t) <= s.catchup_window.max(GRACE);
    let on_time = |t: &Timestamp| age(t) < GRACE;
    let run: Vec<Timestamp> = match s.catchup {
        Catchup::None => due
            .iter()
            .rev()
            .find(|t| on_time(t))
            .into_iter()
            .copied()
            .collect(),
        Catchup::Latest => due
            .iter()
            .rev()
            .find(|t| in_window(t))
            .into_iter()
            .copied()
            .collect(),
        Catchup::All => due.iter().filter(|t| in_window(t)).copied().collect(),
    };
    let missed = due.iter().filter(|t| !run.contains(t)).copied().collect();
    (run, missed)
}

/// What a tick did with one slot.
#[derive(Debug, Clone, Serialize)]
pub struct TickItem {
    /// The schedule.
    pub schedule: String,
    /// The slot's record.
    #[serde(flatten)]
    pub record: SlotRecord,
}

fn push(h: &mut History, r: SlotRecord) {
    if let Some(x) = h.slots.iter_mut().find(|x| x.run_id == r.run_id) {
        *x = r;
    } else {
        h.slots.push(r);
    }
    let n = h.slots.len();
    if n > HISTORY {
        h.slots.drain(..n - HISTORY);
    }
}

fn update(ctx: &Context, name: &str, f: impl FnOnce(&mut History)) -> Result<()> {
    let p = history_file(ctx, name);
    state::create_dir(p.parent().unwrap_or(Path::new(".")))?;
    state::update_json(&p, Durability::Durable, |h: Option<History>| {
        let mut h = h.unwrap_or_default();
        f(&mut h);
        (Some(h), ())
    })
}

/// Record (or update) one slot in a schedule's history.
pub fn record(ctx: &Context, name: &str, r: SlotRecord) -> Result<()> {
    update(ctx, name, |h| push(h, r))
}

/// Claim the slots of `s` due at `now`: returns the slots to run (already
/// recorded as `started`) and records the missed ones. The first tick of a
/// schedule considers only the last `GRACE` seconds.
pub fn claim(
    ctx: &Context,
    s: &Schedule,
    now: Timestamp,
) -> Result<(Vec<SlotRecord>, Vec<SlotRecord>)> {
    let cron = s
        .cron()
        .map_err(|e| Error::Usage(format!("schedule {:?}: {e}", s.name)))?;
    let p = history_file(ctx, &s.name);
    state::create_dir(p.parent().unwrap_or(Path::new(".")))?;
    state::update_json(&p, Durability::Durable, |h: Option<History>| {
        let mut h = h.unwrap_or_default();
        let floor = now
            .checked_sub(jiff::SignedDuration::from_secs_f64(
                s.catchup_window.max(GRACE),
            ))
            .unwrap_or(now);
        let last = h
            .last_slot
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(
                now.checked_sub(jiff::SignedDuration::from_secs_f64(GRACE))
                    .unwrap_or(now),
                |l| {
                    // Slots older than the window are reported as one range, not listed.
                    l.max(
                        floor
                            .checked_sub(jiff::SignedDuration::from_secs(1))
                            .unwrap_or(floor),
                    )
                },
            );
        let due = cron.between(last, now);
        if due.is_empty() {
            return (None, (Vec::new(), Vec::new()));
        }
        let (run, missed) = plan(s, &due, now);
        h.last_slot = due.last().map(|t| rfc(*t));
        let mut to_run = Vec::new();
        let mut missed_recs = Vec::new();
        for t in missed {
            let mut r = SlotRecord::new(&s.name, rfc(t), Outcome::Missed);
            r.message = Some(format!("missed (catchup: {:?})", s.catchup).to_lowercase());
            push(&mut h, r.clone());
            missed_recs.push(r);
        }
        for t in run {
            let r = SlotRecord::new(&s.name, rfc(t), Outcome::Started);
            push(&mut h, r.clone());
            to_run.push(r);
        }
        (Some(h), (to_run, missed_recs))
    })
}

/// Hold the schedule's overlap lock as `overlap` says; `None` means skip.
fn overlap_lock(ctx: &Context, s: &Schedule) -> Result<Option<state::Lock>> {
    let p = ctx
        .home
        .root
        .join("schedules")
        .join(format!("{}.run", s.name));
    if let Some(l) = state::try_lock(&p)? {
        return Ok(Some(l));
    }
    match s.overlap {
        Overlap::Skip => Ok(None),
        Overlap::Queue => state::lock(&p).map(Some),
        Overlap::CancelPrevious => {
            if let Some(pid) = history(ctx, &s.name).running_pid
                && pid > 0
                && pid != std::process::id() as i32
                && let Some(pid) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            state::lock(&p).map(Some)
        }
    }
}

/// Run one claimed slot of `s` now, honouring `overlap`, and record the outcome.
pub fn run_slot(
    ctx: &Context,
    s: &Schedule,
    mut rec: SlotRecord,
    live: bool,
) -> Result<SlotRecord> {
    let Some(_lock) = overlap_lock(ctx, s)? else {
        rec.outcome = Outcome::Skipped;
        rec.message = Some("the previous run is still going (overlap: skip)".into());
        let r = rec.clone();
        update(ctx, &s.name, |h| push(h, r))?;
        return Ok(rec);
    };
    rec.started_at = Some(rfc(Timestamp::now()));
    let r = rec.clone();
    update(ctx, &s.name, |h| {
        h.running_pid = Some(std::process::id() as i32);
        push(h, r);
    })?;
    let (ok, code, message) = execute(ctx, s, live);
    rec.outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    rec.exit_code = Some(code);
    rec.message = message;
    rec.finished_at = Some(rfc(Timestamp::now()));
    let r = rec.clone();
    update(ctx, &s.name, |h| {
        if h.running_pid == Some(std::process::id() as i32) {
            h.running_pid = None;
        }
        push(h, r);
    })?;
    Ok(rec)
}

/// Run the schedule's tool or pipeline through the same path as the CLI
/// (policies, limits, breaker, audit with actor `schedule:<name>`).
fn execute(ctx: &Context, s: &Schedule, live: bool) -> (bool, i32, Option<String>) {
    let actor = format!("schedule:{}", s.name);
    if let Some(tool) = &s.tool {
        let mut req = RunRequest::new(
            &tool.value,
            s.args.iter().map(Into::into).collect(),
            s.role(),
        );
        req.actor = actor;
        req.timeout = s.timeout;
        req.notes = false;
        if live {
            req.sink = Some(std::sync::Arc::new(runner::StdSink));
        }
        let env = run::run(ctx, &req);
        let ok = env.status == crate::api::RunStatus::Success;
        let msg = (!ok).then(|| {
            env.message.clone().unwrap_or_else(|| {
                env.error
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("failed")
                    .trim()
                    .to_string()
            })
        });
        return (ok, env.exit_code, msg);
    }
    let Some(file) = &s.pipeline else {
        return (false, 65, Some("no tool or pipeline".into()));
    };
    let p = match std::fs::read_to_string(file)
        .map_err(|e| format!("{}: {e}", file.display()))
        .and_then(|t| {
            crate::pipeline::parse(file, &t).map_err(|d| {
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        }) {
        Ok(p) => p,
        Err(e) => return (false, 65, Some(e)),
    };
    let opts = crate::pipeline::Options {
        member: crate::run::Member {
            role: s.role().to_string(),
            ..crate::run::Member::new(actor)
        },
        ..crate::pipeline::Options::default()
    };
    let r = crate::pipeline::run(ctx, &p, &opts, &|_| {});
    let ok = r.exit_code == 0;
    (
        ok,
        r.exit_code,
        (!ok).then(|| format!("pipeline {:?}", r.status).to_lowercase()),
    )
}

/// Run whatever is due now for every enabled schedule; returns what happened
/// to each slot considered (run, skipped or missed).
/// `live`: the tools' output goes to gathm's stdout and stderr as it comes
/// (text mode; cron mails it).
pub fn tick(
    ctx: &Context,
    schedules: &[Schedule],
    now: Timestamp,
    live: bool,
) -> Result<Vec<TickItem>> {
    runner::install_signal_flags();
    let mut out = Vec::new();
    for s in schedules.iter().filter(|s| s.enabled) {
        let (to_run, missed) = claim(ctx, s, now)?;
        for r in missed {
            out.push(TickItem {
                schedule: s.name.clone(),
                record: r,
            });
        }
        for r in to_run {
            if runner::interrupted() {
                break;
            }
            let jitter = if s.jitter > 0.0 {
                s.jitter * crate::retry::jitter(&r.run_id, 0)
            } else {
                0.0
            };
            crate::retry::sleep(jitter, &runner::Cancel::new());
            let r = run_slot(ctx, s, r, live)?;
            out.push(TickItem {
                schedule: s.name.clone(),
                record: r,
            });
        }
    }
    Ok(out)
}

/// Run `s` now by hand (`gathm schedule run NAME`), with the overlap rule.
pub fn run_now(ctx: &Context, s: &Schedule, live: bool) -> Result<SlotRecord> {
    runner::install_signal_flags();
    let slot = format!("manual:{}", rfc(Timestamp::now()));
    run_slot(
        ctx,
        s,
        SlotRecord::new(&s.name, slot, Outcome::Started),
        live,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(catchup: Catchup, window: f64) -> Schedule {
        let text = format!(
            "schedules:\n  - name: s\n    cron: '*/10 * * * *'\n    tool: t\n    catchup: {}\n    catchup_window: {window}\n",
            serde_json::to_value(catchup).unwrap().as_str().unwrap()
        );
        crate::schedule::file::parse(Path::new("g.yaml"), &text)
            .unwrap()
            .schedules
            .remove(0)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn catchup_rules() {
        let due = [
            ts("2026-11-30T09:00:00Z"),
            ts("2026-11-30T09:50:00Z"),
            ts("2026-11-30T10:00:00Z"),
        ];
        // Downtime: the tick at 10:05 finds three slots due.
        let now = ts("2026-11-30T10:05:00Z");
        let (run, missed) = plan(&sched(Catchup::None, 3600.0), &due, now);
        assert!(run.is_empty());
        assert_eq!(missed.len(), 3);
        let (run, missed) = plan(&sched(Catchup::Latest, 3600.0), &due, now);
        assert_eq!(run, vec![due[2]]);
        assert_eq!(missed, vec![due[0], due[1]]);
        let (run, missed) = plan(&sched(Catchup::All, 1200.0), &due, now);
        assert_eq!(run, vec![due[1], due[2]]);
        assert_eq!(missed, vec![due[0]]);
        // On time: every rule runs the current slot.
        let now = ts("2026-11-30T10:00:20Z");
        for c in [Catchup::None, Catchup::Latest, Catchup::All] {
            let (run, _) = plan(&sched(c, 0.0), &due[2..], now);
            assert_eq!(run, vec![due[2]], "{c:?}");
        }
    }

    #[test]
    fn slot_ids_are_deterministic_uuids() {
        let a = slot_id("s", "2026-11-30T10:00:00Z");
        assert_eq!(a, slot_id("s", "2026-11-30T10:00:00Z"));
        assert_ne!(a, slot_id("s", "2026-11-30T10:10:00Z"));
        assert_ne!(a, slot_id("t", "2026-11-30T10:00:00Z"));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
    }
}
