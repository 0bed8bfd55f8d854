//! One conformance suite for [`SharedState`]: every test runs against the
//! embedded store (files in a temporary home) and against Redis (a private
//! `redis-server` on a free loopback port, AOF on, stopped afterwards), and
//! both must behave alike: breaker transitions with the single half-open
//! probe lease, all-or-nothing admission over several windows, group slots
//! (bounded, FIFO, queue bound, no-wait, timeout, cancel, freed on drop).

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{Config, Gate, Phase};
use crate::fleet::tests::RedisServer;
use crate::ratelimit::Limit;
use crate::runner::Cancel;
use crate::state::groups::{Refusal, Wait};
use crate::state::shared::{GroupSpec, Local, SharedState};

/// Keeps the backend's resources (a temporary home, a redis-server) alive.
enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Redis(#[allow(dead_code)] RedisServer),
}

fn local() -> (Keep, Arc<dyn SharedState>) {
    let d = tempfile::tempdir().unwrap();
    let l = Local {
        health: d.path().join("health"),
        ratelimit: d.path().join("ratelimit"),
        groups: d.path().join("groups"),
        clean: Arc::default(),
    };
    (Keep::Dir(d), Arc::new(l))
}

fn redis() -> (Keep, Arc<dyn SharedState>) {
    let srv = RedisServer::start();
    let r = crate::fleet::Redis::new(&srv.url, Duration::from_secs(2)).unwrap();
    let s = crate::fleet::shared::RedisShared::new(r, 2.0);
    (Keep::Redis(srv), Arc::new(s))
}

/// Run `test` against both backends.
fn both(test: fn(&dyn SharedState)) {
    for make in [local, redis] {
        let (_keep, s) = make();
        test(&*s);
    }
}

fn limit(key: &str, n: u32) -> Limit {
    Limit {
        key: key.into(),
        limit: n,
        capacity: n,
    }
}

fn group(name: &str, max: u32, queue: u32) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        max,
        queue,
    }
}

fn no_wait() -> Wait {
    Wait {
        no_wait: true,
        ..Wait::default()
    }
}

#[test]
fn breaker_opens_at_the_threshold_and_resets() {
    both(|s| {
        let cfg = Config {
            threshold: 3,
            recovery_timeout: 60.0,
        };
        for i in 1..=2 {
            assert_eq!(s.breaker_gate("t", cfg, "h", 10.0).unwrap(), Gate::Allow);
            assert_eq!(s.breaker_record("t", cfg, false).unwrap().failures, i);
        }
        // A success resets the consecutive count.
        s.breaker_gate("t", cfg, "h", 10.0).unwrap();
        s.breaker_record("t", cfg, true).unwrap();
        assert_eq!(s.breaker_read("t").unwrap().failures, 0);
        for _ in 0..3 {
            s.breaker_record("t", cfg, false).unwrap();
        }
        let r = s.breaker_read("t").unwrap();
        assert_eq!(r.state, Phase::Open);
        assert_eq!(r.total_failures, 5);
        match s.breaker_gate("t", cfg, "h", 10.0).unwrap() {
            Gate::Reject { retry_in } => assert!(retry_in > 50.0 && retry_in <= 60.0),
            g => panic!("{g:?}"),
        }
        assert_eq!(s.breaker_names().unwrap(), vec!["t".to_string()]);
        s.breaker_reset("t").unwrap();
        assert_eq!(s.breaker_read("t").unwrap().state, Phase::Closed);
        assert_eq!(s.breaker_gate("t", cfg, "h", 10.0).unwrap(), Gate::Allow);
    });
}

#[test]
fn half_open_grants_one_probe_lease_until_released_or_expired() {
    both(|s| {
        let cfg = Config {
            threshold: 1,
            recovery_timeout: 0.0,
        };
        s.breaker_record("p", cfg, false).unwrap();
        assert_eq!(s.breaker_gate("p", cfg, "a", 60.0).unwrap(), Gate::Probe);
        assert!(matches!(
            s.breaker_gate("p", cfg, "b", 60.0).unwrap(),
            Gate::Reject { .. }
        ));
        // Released (an uncounted outcome): the next caller probes.
        s.breaker_release("p", "a").unwrap();
        assert_eq!(s.breaker_gate("p", cfg, "b", 0.3).unwrap(), Gate::Probe);
        // A lease that expires (its holder died) lets another probe.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(s.breaker_gate("p", cfg, "c", 60.0).unwrap(), Gate::Probe);
        // The probe's success closes it for everyone.
        s.breaker_record("p", cfg, true).unwrap();
        assert_eq!(s.breaker_gate("p", cfg, "d", 60.0).unwrap(), Gate::Allow);
    });
}

#[test]
fn admission_is_all_or_nothing_over_every_window() {
    both(|s| {
        let (a, b) = (limit("tool-a", 3), limit("role-b", 2));
        assert!(s.admit(&[a.clone(), b.clone()], 60.0).unwrap().allowed);
        let adm = s.admit(&[a.clone(), b.clone()], 60.0).unwrap();
        assert!(adm.allowed);
        assert_eq!(adm.remaining, 0);
        let no = s.admit(&[a.clone(), b.clone()], 60.0).unwrap();
        assert!(!no.allowed);
        assert_eq!(no.key.as_deref(), Some("role-b"));
        assert!(no.retry_after > 55.0 && no.retry_after <= 60.0);
        // The refused call consumed nothing: `a` alone still has one left.
        assert!(s.admit(std::slice::from_ref(&a), 60.0).unwrap().allowed);
        assert!(!s.admit(&[a], 60.0).unwrap().allowed);
        assert!(s.admit(&[], 60.0).unwrap().allowed);
    });
}

#[test]
fn admission_is_exact_under_concurrency() {
    both(|s| {
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    for _ in 0..5 {
                        if s.admit(&[limit("tool-x", 7)], 60.0).unwrap().allowed {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 7);
    });
}

#[test]
fn group_slots_are_bounded_and_freed_on_drop() {
    both(|s| {
        let g = group("g", 2, 5);
        let a = s.group_acquire(&g, &no_wait(), &mut || {}).unwrap();
        let b = s.group_acquire(&g, &no_wait(), &mut || {}).unwrap();
        assert_eq!(s.group_occupancy(&g).unwrap(), (2, 0));
        assert!(matches!(
            s.group_acquire(&g, &no_wait(), &mut || {}),
            Err(Refusal::Busy { .. })
        ));
        drop(a);
        let c = s.group_acquire(&g, &no_wait(), &mut || {}).unwrap();
        drop((b, c));
        assert_eq!(s.group_occupancy(&g).unwrap(), (0, 0));
    });
}

#[test]
fn group_waiters_time_out_are_cancelled_and_bounded() {
    both(|s| {
        let g = group("w", 1, 1);
        let held = s.group_acquire(&g, &no_wait(), &mut || {}).unwrap();
        let mut told = 0;
        let timed = Wait {
            timeout: Some(0.2),
            ..Wait::default()
        };
        assert!(matches!(
            s.group_acquire(&g, &timed, &mut || told += 1),
            Err(Refusal::TimedOut { .. })
        ));
        assert_eq!(told, 1, "on_wait once");
        assert_eq!(s.group_occupancy(&g).unwrap(), (1, 0), "the waiter left");
        // One waiter fills the queue (queue_size 1); a second is refused.
        let cancel = Cancel::new();
        let waiting = Wait {
            cancel: cancel.clone(),
            ..Wait::default()
        };
        std::thread::scope(|sc| {
            let h = sc.spawn(|| s.group_acquire(&g, &waiting, &mut || {}).map(|_| ()));
            let t0 = std::time::Instant::now();
            while s.group_occupancy(&g).unwrap().1 == 0 {
                assert!(t0.elapsed() < Duration::from_secs(5), "waiter queued");
                std::thread::sleep(Duration::from_millis(5));
            }
            let second = Wait {
                timeout: Some(5.0),
                ..Wait::default()
            };
            assert!(matches!(
                s.group_acquire(&g, &second, &mut || {}),
                Err(Refusal::QueueFull { waiting: 1, .. })
            ));
            cancel.cancel();
            assert!(matches!(h.join().unwrap(), Err(Refusal::Cancelled)));
        });
        drop(held);
    });
}

#[test]
fn group_waiters_are_served_in_order() {
    both(|s| {
        let g = group("fifo", 1, 10);
        let held = s.group_acquire(&g, &no_wait(), &mut || {}).unwrap();
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for i in 0..3 {
                // Queue them one after the other.
                let t0 = std::time::Instant::now();
                while s.group_occupancy(&g).unwrap().1 != i {
                    assert!(t0.elapsed() < Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(5));
                }
                let (g, order) = (&g, &order);
                sc.spawn(move || {
                    let slot = s.group_acquire(g, &Wait::default(), &mut || {}).unwrap();
                    order.lock().unwrap().push(i);
                    std::thread::sleep(Duration::from_millis(20));
                    drop(slot);
                });
            }
            let t0 = std::time::Instant::now();
            while s.group_occupancy(&g).unwrap().1 != 3 {
                assert!(t0.elapsed() < Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(held);
        });
        assert_eq!(order.into_inner().unwrap(), vec![0, 1, 2]);
    });
}
