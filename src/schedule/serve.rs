//! The scheduler inside `gathm serve`: each due slot becomes a job in the
//! same queue (same policies, limits, breaker and audit; owner and actor
//! `schedule:NAME`).
//!
//! Exactly once per slot: a slot is claimed in the schedule's history file
//! under its lock before anything is submitted (as `gathm schedule tick`
//! does, so a server and a crontab on one home share the claim), and the job
//! is submitted with the slot's deterministic id as its `Idempotency-Key`, so
//! even a retried submission returns the original job.
//!
//! Overlap, for jobs: `skip` records the slot as `skipped` while a job of the
//! schedule is pending or running; `cancel_previous` cancels those jobs, then
//! submits; `queue` submits at once (the job waits in the FIFO queue, and runs
//! alongside the previous one when a worker is free: use a concurrency group
//! with `max_concurrent: 1` on the tool to serialise them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use crate::config::Context;
use crate::jobs::{JobKind, Jobs, Submission};
use crate::logs::Level;
use crate::schedule::file::{Overlap, Schedule};
use crate::schedule::tick::{self, Outcome, SlotRecord};
use crate::state::jobs::JobStatus;

/// The job owner of a schedule's runs.
pub fn owner(s: &Schedule) -> String {
    format!("schedule:{}", s.name)
}

fn active(jobs: &Jobs, owner: &str) -> Vec<crate::jobs::Job> {
    let mut out = Vec::new();
    for st in [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::AwaitingApproval,
    ] {
        if let Ok((list, _)) = jobs.list_page(owner, false, Some(st), &|k| {
            (k == "limit").then(|| "100".to_string())
        }) {
            out.extend(list);
        }
    }
    out
}

fn submission(s: &Schedule, key: &str) -> Result<Submission, String> {
    if let Some(t) = &s.tool {
        return Ok(Submission {
            kind: JobKind::Tool,
            tool: t.value.clone(),
            args: s.args.clone(),
            timeout: s.timeout,
            idempotency_key: Some(key.to_string()),
            ..Submission::default()
        });
    }
    let file = s.pipeline.as_ref().ok_or("no tool or pipeline")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let v: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Submission {
        kind: JobKind::Pipeline,
        tool: "pipeline".into(),
        pipeline: Some(v),
        idempotency_key: Some(key.to_string()),
        ..Submission::default()
    })
}

/// Submit one claimed slot as a job, honouring the overlap rule; returns the
/// slot's record (job id in `message`).
pub fn submit_slot(ctx: &Context, jobs: &Jobs, s: &Schedule, mut rec: SlotRecord) -> SlotRecord {
    let owner = owner(s);
    let running = active(jobs, &owner);
    if !running.is_empty() {
        match s.overlap {
            Overlap::Skip => {
                rec.outcome = Outcome::Skipped;
                rec.message = Some(format!(
                    "job {} of the previous slot is still {} (overlap: skip)",
                    running[0].id,
                    running[0].status.as_str()
                ));
                return rec;
            }
            Overlap::CancelPrevious => {
                for j in &running {
                    let _ = jobs.cancel(&j.id, &owner, false);
                }
            }
            Overlap::Queue => {}
        }
    }
    rec.started_at = Some(Timestamp::now().to_string());
    match submission(s, &rec.run_id).map_err(crate::jobs::SubmitError::Invalid) {
        Ok(sub) => match jobs.submit(&owner, s.role(), sub) {
            Ok(job) => {
                rec.message = Some(format!("job {}", job.id));
            }
            Err(e) => {
                rec.outcome = Outcome::Failed;
                rec.message = Some(format!("not submitted: {e:?}"));
            }
        },
        Err(e) => {
            rec.outcome = Outcome::Failed;
            rec.message = Some(format!("not submitted: {e:?}"));
        }
    }
    let _ = ctx;
    rec
}

/// Hears each slot's outcome (`submitted`, `skipped`, `missed`, `failed`)
/// and, for a submitted slot, its lag in seconds (for `/metrics`).
pub type OnSlot = Box<dyn Fn(&str, &str, Option<f64>) + Send>;

fn report(on_slot: &OnSlot, s: &Schedule, rec: &SlotRecord) {
    let outcome = match rec.outcome {
        Outcome::Skipped => "skipped",
        Outcome::Missed => "missed",
        Outcome::Failed => "failed",
        _ => "submitted",
    };
    let lag = (outcome == "submitted")
        .then(|| rec.slot.parse::<Timestamp>().ok())
        .flatten()
        .map(|t| Timestamp::now().duration_since(t).as_secs_f64().max(0.0));
    on_slot(&s.name, outcome, lag);
}

/// Claim and submit what is due for one schedule at `now`.
fn pass_one(ctx: &Context, jobs: &Jobs, s: &Schedule, now: Timestamp) -> Vec<SlotRecord> {
    let mut out = Vec::new();
    let (to_run, missed) = match tick::claim(ctx, s, now) {
        Ok(x) => x,
        Err(e) => {
            ctx.logger.app(
                Level::Error,
                "schedule",
                &format!("schedule {}: cannot claim its slots: {e}", s.name),
                serde_json::Map::new(),
            );
            return out;
        }
    };
    out.extend(missed);
    for rec in to_run {
        let rec = submit_slot(ctx, jobs, s, rec);
        let _ = tick::record(ctx, &s.name, rec.clone());
        ctx.logger.app(
            Level::Info,
            "schedule",
            &format!(
                "schedule {} slot {}: {}",
                s.name,
                rec.slot,
                rec.message.clone().unwrap_or_default()
            ),
            serde_json::Map::new(),
        );
        out.push(rec);
    }
    out
}

/// One scheduler pass at `now` over every enabled schedule: claim what is
/// due, record missed slots, submit the rest. Returns what happened.
pub fn pass(ctx: &Context, jobs: &Jobs, schedules: &[Schedule], now: Timestamp) -> Vec<SlotRecord> {
    schedules
        .iter()
        .filter(|s| s.enabled)
        .flat_map(|s| pass_one(ctx, jobs, s, now))
        .collect()
}

/// Start the scheduler thread until `stop`. The first pass claims every
/// schedule (catch-up after downtime); after that a schedule is looked at
/// only once its next fire time (kept in memory) has come, so 1,000 idle
/// schedules cost a comparison each per second, not a file lock.
pub fn spawn(
    ctx: Arc<Context>,
    jobs: Jobs,
    schedules: Vec<Schedule>,
    stop: Arc<AtomicBool>,
    on_slot: OnSlot,
) -> std::io::Result<()> {
    let schedules: Vec<Schedule> = schedules.into_iter().filter(|s| s.enabled).collect();
    if schedules.is_empty() {
        return Ok(());
    }
    let crons: Vec<Option<crate::schedule::cron::Cron>> =
        schedules.iter().map(|s| s.cron().ok()).collect();
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let mut next: Vec<Option<Timestamp>> = vec![None; schedules.len()];
            // Submitted slots whose job has not ended: their outcome is
            // copied into the schedule's history when it does.
            let mut open: Vec<(usize, SlotRecord, String)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let now = Timestamp::now();
                for (i, s) in schedules.iter().enumerate() {
                    if next[i].is_some_and(|t| t > now) {
                        continue;
                    }
                    for rec in pass_one(&ctx, &jobs, s, now) {
                        report(&on_slot, s, &rec);
                        if let Some(id) =
                            rec.message.as_deref().and_then(|m| m.strip_prefix("job "))
                        {
                            let id = id.to_string();
                            open.push((i, rec, id));
                        }
                    }
                    next[i] = crons[i].as_ref().and_then(|c| c.next_after(now));
                }
                open.retain(|(i, rec, id)| {
                    let s = &schedules[*i];
                    let Some(job) = jobs.get(id, &owner(s), false) else {
                        return false;
                    };
                    if !job.status.terminal() {
                        return true;
                    }
                    let mut rec = rec.clone();
                    rec.outcome = if job.status == JobStatus::Completed {
                        Outcome::Success
                    } else {
                        Outcome::Failed
                    };
                    rec.exit_code = job.exit_code;
                    rec.finished_at = job.finished_at.and_then(|t| {
                        Timestamp::from_microsecond((t * 1e6) as i64)
                            .ok()
                            .map(|t| t.to_string())
                    });
                    rec.message = Some(format!(
                        "job {} {}{}",
                        job.id,
                        job.status.as_str(),
                        job.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ));
                    let _ = tick::record(&ctx, &s.name, rec);
                    false
                });
                // Wake at the next whole second (cron's finest granularity).
                let ms = 1000 - (Timestamp::now().subsec_millisecond().clamp(0, 999) as u64);
                std::thread::sleep(Duration::from_millis(ms.max(50)));
            }
        })
        .map(|_| ())
}
