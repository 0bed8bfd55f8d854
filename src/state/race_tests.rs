//! A storm of racing changes on the SQLite store: finish, cancel, reclaim,
//! approval expiry and sweep on the same jobs at once never rewrite a
//! finished job's record, and each job ends (and queues its callback)
//! exactly once.

use std::sync::{Arc, Barrier};

use crate::state::jobs::{
    CancelRequest, Change, Finish, Job, JobKind, JobStatus, JobStore, Submitted,
};
use crate::state::sqlite::SqliteStore;

fn job() -> Job {
    Job {
        callback_url: Some("http://example.com/cb".into()),
        ..Job::new(JobKind::Tool, "t".into(), Vec::new(), "o", "user")
    }
}

#[test]
fn cas_storm_never_rewrites_a_finished_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let n = 300;
    let mut claims = Vec::new();
    // Two in three are claimed (running); the rest stay pending.
    for _ in 0..n * 2 / 3 {
        s.submit(job(), None).unwrap();
        let c = s.claim(60.0).unwrap().unwrap();
        claims.push((c.job.id.clone(), Some(c.token)));
    }
    while claims.len() < n {
        let Submitted::New(j) = s.submit(job(), None).unwrap() else {
            panic!()
        };
        claims.push((j.id.clone(), None));
    }
    let claims = Arc::new(claims);
    let barrier = Arc::new(Barrier::new(5));
    let mut threads = Vec::new();
    // Finisher: records every claimed job completed.
    {
        let (s, claims, b) = (Arc::clone(&s), Arc::clone(&claims), Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || {
            b.wait();
            let mut won = Vec::new();
            for (id, token) in claims.iter() {
                if let Some(t) = token {
                    let f = Finish {
                        status: JobStatus::Completed,
                        reason: None,
                        exit_code: Some(0),
                        stdout_lines: 7,
                        stderr_lines: 0,
                        envelope: None,
                        result: None,
                    };
                    if let Some(j) = s.finish(id, *t, &f).unwrap() {
                        won.push((id.clone(), j));
                    }
                }
            }
            won
        }));
    }
    // Canceller: every job, newest first.
    {
        let (s, claims, b) = (Arc::clone(&s), Arc::clone(&claims), Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || {
            b.wait();
            let mut won = Vec::new();
            for (id, _) in claims.iter().rev() {
                if let CancelRequest::Cancelled(j) = s.request_cancel(id).unwrap() {
                    won.push((id.clone(), j));
                }
            }
            won
        }));
    }
    // Recovery: reclaims every running job, repeatedly.
    {
        let (s, b) = (Arc::clone(&s), Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || {
            b.wait();
            let mut won = Vec::new();
            for _ in 0..20 {
                for j in s.reclaim(true, &|_| false).unwrap() {
                    won.push((j.id.clone(), j));
                }
            }
            won
        }));
    }
    // Transition to cancelled from any non-terminal state, and sweeps that
    // must not remove fresh jobs.
    {
        let (s, claims, b) = (Arc::clone(&s), Arc::clone(&claims), Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || {
            b.wait();
            let mut won = Vec::new();
            for (i, (id, _)) in claims.iter().enumerate() {
                let from = [
                    JobStatus::Pending,
                    JobStatus::AwaitingApproval,
                    JobStatus::Running,
                ];
                let change = Change {
                    reason: Some("storm".into()),
                    ..Change::default()
                };
                if let Some(j) = s
                    .transition(id, &from, JobStatus::Cancelled, &change)
                    .unwrap()
                {
                    won.push((id.clone(), j));
                }
                if i % 50 == 0 {
                    assert!(s.sweep(s.now() - 3600.0).unwrap().is_empty());
                    s.expire_approvals(s.now()).unwrap();
                }
            }
            won
        }));
    }
    barrier.wait();
    let mut winners: std::collections::HashMap<String, Vec<Job>> = Default::default();
    for t in threads {
        for (id, j) in t.join().unwrap() {
            winners.entry(id).or_default().push(j);
        }
    }
    for (id, _) in claims.iter() {
        let stored = s.get(id).unwrap().unwrap();
        assert!(stored.status.terminal(), "{id} is {:?}", stored.status);
        let w = winners.get(id).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(w.len(), 1, "{id}: {} changes ended it", w.len());
        // The record is the one its single winner wrote, unchanged since.
        assert_eq!(stored.status, w[0].status);
        assert_eq!(stored.reason, w[0].reason);
        assert_eq!(stored.finished_at, w[0].finished_at);
        assert_eq!(stored.stdout_lines, w[0].stdout_lines);
    }
    // One callback per job.
    let due = s.outbox_due(10_000).unwrap();
    assert_eq!(due.len(), n);
    let jobs: std::collections::HashSet<&str> = due.iter().map(|d| d.job.as_str()).collect();
    assert_eq!(jobs.len(), n);
}
