//! The job store's contract (`state::jobs`), one suite run against every
//! backend: the embedded SQLite store and the Redis store (each Redis test
//! starts its own `redis-server` on a free loopback port with AOF on, see
//! `fleet::tests::RedisServer`). Backend-specific tests (SQLite's file
//! layout and import, Redis's durability check) live with the backend.

use std::any::Any;
use std::sync::Arc;

use crate::state::jobs::{
    CancelRequest, Change, Finish, Idempotency, Job, JobKind, JobStatus, JobStore, ListQuery,
    Submitted,
};

/// A job record to submit.
pub fn job(owner: &str, status: JobStatus) -> Job {
    Job {
        status,
        callback_url: Some("http://example.com/x".into()),
        ..Job::new(JobKind::Tool, "t".into(), vec!["a".into()], owner, "user")
    }
}

fn done(status: JobStatus) -> Finish {
    Finish {
        status,
        reason: None,
        exit_code: Some(0),
        stdout_lines: 1,
        stderr_lines: 0,
        envelope: None,
        result: None,
    }
}

/// A backend under test: `open` gives another handle on the same store
/// (another instance), `_keep` holds its directory or server.
pub struct Env {
    open: Box<dyn Fn() -> Arc<dyn JobStore>>,
    _keep: Box<dyn Any>,
}

impl Env {
    fn open(&self) -> Arc<dyn JobStore> {
        (self.open)()
    }
}

fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    Env {
        open: Box::new(move || {
            Arc::new(crate::state::sqlite::SqliteStore::open(&path).unwrap()) as Arc<dyn JobStore>
        }),
        _keep: Box::new(dir),
    }
}

fn redis() -> Env {
    let server = crate::fleet::tests::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = (server.url.clone(), dir.path().to_path_buf());
    Env {
        open: Box::new(move || {
            Arc::new(crate::state::redis::RedisStore::open(&url, &path, false).unwrap())
                as Arc<dyn JobStore>
        }),
        _keep: Box::new((server, dir)),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::sqlite());
            }
            #[test]
            fn redis() {
                super::$name(&super::redis());
            }
        })*
    };
}

conformance!(
    claim_finish_and_fencing,
    finish_and_claim_share_a_step,
    list_pages_newest_first_with_filters,
    idempotency_key_returns_the_original,
    approvals_expire_and_reclaim_interrupts,
    concurrent_submissions_are_all_stored,
    claims_are_fifo_and_prefer_groups,
    cancel_waiting_and_running,
    events_are_numbered_and_shared,
    sweep_removes_old_terminal_jobs,
    a_reclaimed_job_can_be_requeued,
    a_delivery_is_claimed_once,
    transitions_compare_and_set,
    stdin_is_stored_and_never_shown,
);

fn stdin_is_stored_and_never_shown(env: &Env) {
    let s = env.open();
    let mut j = job("u", JobStatus::Pending);
    j.stdin = Some("user:\nhello".into());
    let Submitted::New(a) = s.submit(j, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.get(&a.id).unwrap().unwrap().stdin.as_deref(),
        Some("user:\nhello")
    );
    let c = s.claim(60.0).unwrap().unwrap();
    assert_eq!(c.job.stdin.as_deref(), Some("user:\nhello"));
    assert!(c.job.public().get("stdin").is_none());
}

fn claim_finish_and_fencing(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    assert!(a.created_at > 0.0);
    let c = s.claim(60.0).unwrap().unwrap();
    assert_eq!(c.job.id, a.id);
    assert_eq!(c.job.status, JobStatus::Running);
    assert!(c.lease_until > a.created_at);
    assert!(s.claim(60.0).unwrap().is_none());
    assert!(s.heartbeat(&a.id, c.token, 60.0).unwrap());
    assert!(!s.heartbeat(&a.id, c.token + 1, 60.0).unwrap());
    // A stale token cannot finish it; the right one can, once.
    assert!(
        s.finish(&a.id, c.token + 1, &done(JobStatus::Completed))
            .unwrap()
            .is_none()
    );
    let f = s
        .finish(&a.id, c.token, &done(JobStatus::Completed))
        .unwrap()
        .unwrap();
    assert_eq!(f.status, JobStatus::Completed);
    assert_eq!(f.stdout_lines, 1);
    assert!(f.finished_at.unwrap() >= f.started_at.unwrap());
    assert!(
        s.finish(&a.id, c.token, &done(JobStatus::Failed))
            .unwrap()
            .is_none()
    );
    assert!(!s.heartbeat(&a.id, c.token, 60.0).unwrap());
    // Nothing rewrites a terminal job.
    assert!(
        s.transition(
            &a.id,
            &[JobStatus::Pending, JobStatus::Running],
            JobStatus::Cancelled,
            &Change::default()
        )
        .unwrap()
        .is_none()
    );
    assert!(matches!(
        s.request_cancel(&a.id).unwrap(),
        CancelRequest::Terminal(_)
    ));
    assert_eq!(s.get(&a.id).unwrap().unwrap().status, JobStatus::Completed);
    // Its callback is in the outbox, once, with the final record.
    let due = s.outbox_due(10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].job, a.id);
    assert_eq!(due[0].url, "http://example.com/x");
    let body: serde_json::Value = serde_json::from_slice(&due[0].body).unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["id"], a.id.as_str());
    s.outbox_retry(&due[0].id, 100.0, "down", false).unwrap();
    assert!(s.outbox_due(10).unwrap().is_empty());
    assert!(s.outbox_next().unwrap().unwrap() > 50.0);
}

fn finish_and_claim_share_a_step(env: &Env) {
    let s = env.open();
    for _ in 0..2 {
        s.submit(job("u", JobStatus::Pending), None).unwrap();
    }
    let a = s.claim(60.0).unwrap().unwrap();
    let (ended, next) = s
        .finish_and_claim(&a.job.id, a.token, &done(JobStatus::Completed), 60.0)
        .unwrap();
    assert_eq!(ended.unwrap().status, JobStatus::Completed);
    let b = next.unwrap();
    assert_ne!(b.job.id, a.job.id);
    assert_eq!(b.job.status, JobStatus::Running);
    let (ended, next) = s
        .finish_and_claim(&b.job.id, b.token, &done(JobStatus::Failed), 60.0)
        .unwrap();
    assert_eq!(ended.unwrap().status, JobStatus::Failed);
    assert!(next.is_none());
    // A superseded finish still claims.
    s.submit(job("u", JobStatus::Pending), None).unwrap();
    let (ended, next) = s
        .finish_and_claim(&b.job.id, b.token, &done(JobStatus::Completed), 60.0)
        .unwrap();
    assert!(ended.is_none());
    assert!(next.is_some());
}

fn list_pages_newest_first_with_filters(env: &Env) {
    let s = env.open();
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut j = job(if i % 2 == 0 { "a" } else { "b" }, JobStatus::Pending);
        j.tool = format!("t{}", i % 3);
        ids.push(j.id.clone());
        s.submit(j, None).unwrap();
    }
    let q = |owner: Option<&str>, after: Option<&str>, limit| ListQuery {
        owner: owner.map(String::from),
        after: after.map(String::from),
        limit,
        ..ListQuery::default()
    };
    let p1 = s.list(&q(None, None, 4)).unwrap();
    assert_eq!(
        p1.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids.iter().rev().take(4).cloned().collect::<Vec<_>>()
    );
    let p2 = s.list(&q(None, Some(&p1[3].id), 4)).unwrap();
    assert_eq!(p2[0].id, ids[5]);
    assert_eq!(s.list(&q(Some("a"), None, 100)).unwrap().len(), 5);
    let a2 = s.list(&q(Some("a"), Some(&ids[8]), 2)).unwrap();
    assert_eq!(
        a2.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![ids[6].clone(), ids[4].clone()]
    );
    let tool = s
        .list(&ListQuery {
            tool: Some("t0".into()),
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(tool.len(), 4);
    let c = s.claim(60.0).unwrap().unwrap();
    let running = s
        .list(&ListQuery {
            status: Some(JobStatus::Running),
            owner: Some("a".into()),
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, c.job.id);
    assert!(running[0].envelope.is_none());
    let counts = s.counts().unwrap();
    assert_eq!(counts[0], 9);
    assert_eq!(counts[2], 1);
}

fn idempotency_key_returns_the_original(env: &Env) {
    let s = env.open();
    let k = Idempotency {
        key: "k1".into(),
        ttl: 60.0,
    };
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), Some(&k)).unwrap() else {
        panic!()
    };
    let Submitted::Existing(b) = s.submit(job("u", JobStatus::Pending), Some(&k)).unwrap() else {
        panic!()
    };
    assert_eq!(a.id, b.id);
    let found = s.find_idempotent("u", &k).unwrap().unwrap();
    assert_eq!(found.id, a.id);
    assert!(s.find_idempotent("v", &k).unwrap().is_none());
    // Another owner, same key: a new job.
    assert!(matches!(
        s.submit(job("v", JobStatus::Pending), Some(&k)).unwrap(),
        Submitted::New(_)
    ));
    // Past the TTL: a new job.
    let k0 = Idempotency {
        key: "k1".into(),
        ttl: -1.0,
    };
    assert!(matches!(
        s.submit(job("u", JobStatus::Pending), Some(&k0)).unwrap(),
        Submitted::New(_)
    ));
    assert_eq!(s.counts().unwrap()[0], 3);
}

fn approvals_expire_and_reclaim_interrupts(env: &Env) {
    let s = env.open();
    let Submitted::New(w) = s
        .submit(job("u", JobStatus::AwaitingApproval), None)
        .unwrap()
    else {
        panic!()
    };
    assert!(s.expire_approvals(w.created_at - 1.0).unwrap().is_empty());
    let e = s.expire_approvals(s.now() + 1.0).unwrap();
    assert_eq!(e[0].reason.as_deref(), Some("approval_expired"));
    assert_eq!(e[0].status, JobStatus::Failed);
    s.submit(job("u", JobStatus::Pending), None).unwrap();
    let live = s.claim(60.0).unwrap().unwrap();
    assert!(s.reclaim(false, &|_| false).unwrap().is_empty());
    // `all` takes live leases only in the embedded store (one server owns
    // it); a shared store leaves them to the instances holding them.
    let r = s.reclaim(true, &|_| false).unwrap();
    if s.shared() {
        assert!(r.is_empty());
        // An expired lease is reclaimed.
        s.submit(job("u", JobStatus::Pending), None).unwrap();
        let dead = s.claim(-1.0).unwrap().unwrap();
        let r = s.reclaim(true, &|_| false).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, dead.job.id);
        assert_eq!(r[0].reason.as_deref(), Some("interrupted"));
        assert!(
            s.finish(&dead.job.id, dead.token, &done(JobStatus::Completed))
                .unwrap()
                .is_none()
        );
        assert!(s.heartbeat(&live.job.id, live.token, 60.0).unwrap());
    } else {
        assert_eq!(r[0].reason.as_deref(), Some("interrupted"));
        assert_eq!(r[0].status, JobStatus::Failed);
        // The superseded worker cannot record its end.
        assert!(
            s.finish(&live.job.id, live.token, &done(JobStatus::Completed))
                .unwrap()
                .is_none()
        );
    }
}

fn concurrent_submissions_are_all_stored(env: &Env) {
    let s = env.open();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    s.submit(job("u", JobStatus::Pending), None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.counts().unwrap()[0], 400);
    // Claimed concurrently from two handles (two instances): each once.
    let other = env.open();
    let claimers: Vec<_> = [Arc::clone(&s), other]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(c) = s.claim(60.0).unwrap() {
                    got.push(c.job.id);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<String> = claimers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 400);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 400);
}

fn claims_are_fifo_and_prefer_groups(env: &Env) {
    let s = env.open();
    let mut ids = Vec::new();
    for tool in ["x", "y", "x", "z"] {
        let mut j = job("u", JobStatus::Pending);
        j.tool = tool.into();
        ids.push(j.id.clone());
        s.submit(j, None).unwrap();
    }
    let c = s.claim_preferring(60.0, &["z".into()]).unwrap().unwrap();
    assert_eq!(c.job.id, ids[3]);
    let c = s.claim_preferring(60.0, &["q".into()]).unwrap().unwrap();
    assert_eq!(c.job.id, ids[0]);
    let (_, next) = s
        .finish_and_claim_preferring(
            &c.job.id,
            c.token,
            &done(JobStatus::Completed),
            60.0,
            &["x".into()],
        )
        .unwrap();
    assert_eq!(next.unwrap().job.id, ids[2]);
    assert_eq!(s.claim(60.0).unwrap().unwrap().job.id, ids[1]);
}

fn cancel_waiting_and_running(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    let Submitted::New(b) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    let c = s.claim(60.0).unwrap().unwrap();
    assert_eq!(c.job.id, a.id);
    assert!(!s.cancel_requested(&a.id).unwrap());
    // Another instance asks; the one running it sees the request.
    let other = env.open();
    assert!(matches!(
        other.request_cancel(&a.id).unwrap(),
        CancelRequest::Requested(_)
    ));
    assert!(s.cancel_requested(&a.id).unwrap());
    let CancelRequest::Cancelled(bj) = other.request_cancel(&b.id).unwrap() else {
        panic!()
    };
    assert_eq!(bj.status, JobStatus::Cancelled);
    assert_eq!(bj.reason.as_deref(), Some("cancelled"));
    assert!(s.claim(60.0).unwrap().is_none());
    assert!(matches!(
        s.request_cancel("nope").unwrap(),
        CancelRequest::NotFound
    ));
    let mut f = done(JobStatus::Cancelled);
    f.reason = Some("cancelled".into());
    assert!(s.finish(&a.id, c.token, &f).unwrap().is_some());
    // One delivery per job that ended.
    assert_eq!(s.outbox_due(10).unwrap().len(), 2);
}

fn events_are_numbered_and_shared(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    std::fs::create_dir_all(s.job_dir(&a.id)).unwrap();
    s.append_events(&a.id, b"1\t{\"n\":1}\n2\t{\"n\":2}\n")
        .unwrap();
    s.append_events(&a.id, b"3\t{\"n\":3}\n").unwrap();
    let all = s.read_events(&a.id, 0).unwrap();
    assert_eq!(
        all,
        vec![
            (1, "{\"n\":1}".to_string()),
            (2, "{\"n\":2}".to_string()),
            (3, "{\"n\":3}".to_string())
        ]
    );
    assert_eq!(s.read_events(&a.id, 2).unwrap().len(), 1);
    assert!(s.read_events(&a.id, 3).unwrap().is_empty());
    assert!(s.read_events(&a.id, 9).unwrap().is_empty());
    if s.shared() {
        // Another instance reads the same lines.
        assert_eq!(env.open().read_events(&a.id, 1).unwrap(), all[1..].to_vec());
    }
}

fn sweep_removes_old_terminal_jobs(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    let Submitted::New(b) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    let c = s.claim(60.0).unwrap().unwrap();
    s.finish(&c.job.id, c.token, &done(JobStatus::Completed))
        .unwrap();
    assert!(s.sweep(s.now() - 3600.0).unwrap().is_empty());
    let gone = s.sweep(s.now() + 1.0).unwrap();
    assert_eq!(gone, vec![a.id.clone()]);
    assert!(s.get(&a.id).unwrap().is_none());
    assert_eq!(s.get(&b.id).unwrap().unwrap().status, JobStatus::Pending);
    let all = s
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(s.counts().unwrap(), [1, 0, 0, 0, 0, 0]);
}

fn a_reclaimed_job_can_be_requeued(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s.submit(job("u", JobStatus::Pending), None).unwrap() else {
        panic!()
    };
    let c = s.claim(-1.0).unwrap().unwrap();
    let r = s.reclaim(false, &|j| j.id == a.id).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, JobStatus::Pending);
    // Run again under a new token; the old one is fenced off.
    let c2 = s.claim(60.0).unwrap().unwrap();
    assert_eq!(c2.job.id, a.id);
    assert_ne!(c2.token, c.token);
    assert!(
        s.finish(&a.id, c.token, &done(JobStatus::Completed))
            .unwrap()
            .is_none()
    );
    assert!(
        s.finish(&a.id, c2.token, &done(JobStatus::Completed))
            .unwrap()
            .is_some()
    );
    // Its callback was queued once, at its one end.
    assert_eq!(s.outbox_due(10).unwrap().len(), 1);
}

fn a_delivery_is_claimed_once(env: &Env) {
    let s = env.open();
    s.submit(job("u", JobStatus::Pending), None).unwrap();
    let c = s.claim(60.0).unwrap().unwrap();
    s.finish(&c.job.id, c.token, &done(JobStatus::Failed))
        .unwrap();
    let d = s.outbox_due(10).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attempts, 0);
    if s.shared() {
        // Taken by this instance: another one does not send it too.
        assert!(env.open().outbox_due(10).unwrap().is_empty());
    }
    s.outbox_retry(&d[0].id, 0.0, "refused", false).unwrap();
    let again = s.outbox_due(10).unwrap();
    assert_eq!(again[0].id, d[0].id);
    assert_eq!(again[0].attempts, 1);
    s.outbox_retry(&d[0].id, 0.0, "refused", true).unwrap();
    assert!(s.outbox_due(10).unwrap().is_empty());
    assert!(s.outbox_next().unwrap().is_none());
    // Given-up deliveries are swept with the jobs.
    s.sweep(s.now() + 1.0).unwrap();
    s.outbox_done(&d[0].id).unwrap();
    assert!(s.outbox_due(10).unwrap().is_empty());
}

fn transitions_compare_and_set(env: &Env) {
    let s = env.open();
    let Submitted::New(a) = s
        .submit(job("u", JobStatus::AwaitingApproval), None)
        .unwrap()
    else {
        panic!()
    };
    assert!(s.claim(60.0).unwrap().is_none());
    let approve = Change {
        approved: Some(true),
        ..Change::default()
    };
    let j = s
        .transition(
            &a.id,
            &[JobStatus::AwaitingApproval],
            JobStatus::Pending,
            &approve,
        )
        .unwrap()
        .unwrap();
    assert!(j.approved);
    assert!(
        s.transition(
            &a.id,
            &[JobStatus::AwaitingApproval],
            JobStatus::Pending,
            &approve
        )
        .unwrap()
        .is_none()
    );
    // A claim given back is queued again.
    let c = s.claim(60.0).unwrap().unwrap();
    assert!(c.job.approved);
    s.transition(
        &a.id,
        &[JobStatus::Running],
        JobStatus::Pending,
        &Change::default(),
    )
    .unwrap()
    .unwrap();
    let c = s.claim(60.0).unwrap().unwrap();
    assert_eq!(c.job.id, a.id);
    s.finish(&a.id, c.token, &done(JobStatus::Failed)).unwrap();
    // A terminal-to-terminal change sets fields without ending it again.
    let j = s
        .transition(
            &a.id,
            &[JobStatus::Failed],
            JobStatus::Failed,
            &Change {
                lines: Some([7, 8]),
                ..Change::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!((j.stdout_lines, j.stderr_lines), (7, 8));
    assert_eq!(s.outbox_due(10).unwrap().len(), 1);
    assert!(
        s.transition(
            "nope",
            &[JobStatus::Failed],
            JobStatus::Failed,
            &Change::default()
        )
        .unwrap()
        .is_none()
    );
}
