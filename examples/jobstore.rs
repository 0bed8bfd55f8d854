//! Benchmark of the SQLite job store (PRODUCT.md §8, issue 13), in process:
//! seeds JOBS records through `JobStore::submit` from 64 threads (group
//! commit), then times `get` of random ids and list pages (newest first;
//! by owner, status, tool, and a deep `after` cursor).
//! Run: `cargo run --release --example jobstore [JOBS] [GATHM_HOME]` — with
//! a GATHM_HOME, the store is left in `<home>/jobs` for a server to use.

use std::sync::Arc;
use std::time::Instant;

use gathm::state::jobs::{Job, JobKind, JobStatus, JobStore, ListQuery};
use gathm::state::sqlite::SqliteStore;

fn job(i: usize) -> Job {
    // The server's principal without API keys.
    let owner = if i.is_multiple_of(4) {
        "other"
    } else {
        "local"
    };
    Job {
        // Waiting for approval: a server started on the store runs none.
        status: JobStatus::AwaitingApproval,
        ..Job::new(
            JobKind::Tool,
            format!("tool{}", i % 20),
            vec![format!("arg{i}")],
            owner,
            "admin",
        )
    }
}

fn stats(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: median {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        p(0.5),
        p(0.99),
        p(1.0),
        v.len()
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let tmp;
    let dir = match std::env::args().nth(2) {
        Some(h) => std::path::PathBuf::from(h).join("jobs"),
        None => {
            tmp = std::env::temp_dir().join(format!("gathm-jobstore-{}", std::process::id()));
            tmp.clone()
        }
    };
    let store = Arc::new(SqliteStore::open(&dir).expect("store"));
    let threads = 64;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in (t..n).step_by(threads) {
                    let j = job(i);
                    ids.push(j.id.clone());
                    s.submit(j, None).expect("submit");
                }
                ids
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "seeded {n} jobs from {threads} threads in {secs:.2} s ({:.0} submissions/s)",
        n as f64 / secs
    );
    // Every tenth is cancelled (a second state to filter on).
    let ids = Arc::new(ids);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, ids) = (Arc::clone(&store), Arc::clone(&ids));
            std::thread::spawn(move || {
                for i in (t * 10..ids.len()).step_by(threads * 10) {
                    s.request_cancel(&ids[i]).expect("cancel");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut rnd = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        rnd
    };
    let gets: Vec<f64> = (0..10_000)
        .map(|_| {
            let id = &ids[(next() % ids.len() as u64) as usize];
            let t = Instant::now();
            let j = store.get(id).expect("get").expect("found");
            assert_eq!(&j.id, id);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    stats("get", gets);
    let page = |q: ListQuery| {
        (0..1_000)
            .map(|_| {
                let t = Instant::now();
                let v = store.list(&q).expect("list");
                assert!(!v.is_empty());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect::<Vec<f64>>()
    };
    let base = ListQuery {
        limit: 100,
        ..ListQuery::default()
    };
    stats("list (admin, 100 newest)", page(base.clone()));
    stats(
        "list (owner)",
        page(ListQuery {
            owner: Some("local".into()),
            ..base.clone()
        }),
    );
    stats(
        "list (owner + status cancelled)",
        page(ListQuery {
            owner: Some("local".into()),
            status: Some(JobStatus::Cancelled),
            ..base.clone()
        }),
    );
    stats(
        "list (tool)",
        page(ListQuery {
            tool: Some("tool7".into()),
            ..base.clone()
        }),
    );
    let deep = store
        .list(&ListQuery {
            limit: 1,
            after: None,
            ..base.clone()
        })
        .unwrap();
    let mut cursor = deep[0].id.clone();
    for _ in 0..5 {
        let v = store
            .list(&ListQuery {
                limit: 1000,
                after: Some(cursor.clone()),
                ..base.clone()
            })
            .unwrap();
        cursor = v.last().unwrap().id.clone();
    }
    stats(
        "list (after a cursor 5,000 deep)",
        page(ListQuery {
            after: Some(cursor),
            ..base.clone()
        }),
    );
    if std::env::args().nth(2).is_none() {
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
