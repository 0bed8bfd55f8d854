//! Property tests: random operation sequences against the Lua scripts on a
//! real `redis-server` (started here on a free loopback port, AOF on, and
//! stopped afterwards) and against the pure Rust state machines; the results
//! must be identical.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::breaker::{Phase, View};

/// A private redis-server for one test (also the job store's conformance
/// tests, `state::conformance`).
pub(crate) struct RedisServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Start with extra `redis-server` arguments (later ones win).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let bin = std::env::var("GATHM_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}); install it (Debian: redis-server; .ci/run does)")
            });
        let url = format!("redis://127.0.0.1:{port}/0");
        let r = Redis::new(&url, Duration::from_millis(500)).unwrap();
        let t0 = Instant::now();
        while r.ping().is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            _dir: dir,
            url,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// xorshift64*: deterministic, seedable, enough for operation sequences.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn same_record(a: &Record, b: &Record) -> bool {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() < 1e-6,
        _ => false,
    };
    a.state == b.state
        && a.failures == b.failures
        && a.total_failures == b.total_failures
        && close(a.opened_at, b.opened_at)
        && close(a.last_failure, b.last_failure)
        && match (&a.probe, &b.probe) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x.holder == y.holder && (x.granted_at - y.granted_at).abs() < 1e-6
            }
            _ => false,
        }
}

fn same_gate(a: Gate, b: Gate) -> bool {
    match (a, b) {
        (Gate::Reject { retry_in: x }, Gate::Reject { retry_in: y }) => (x - y).abs() < 1e-6,
        _ => a == b,
    }
}

#[test]
fn breaker_script_matches_the_state_machine() {
    let server = RedisServer::start();
    let r = Redis::new(&server.url, Duration::from_secs(2)).unwrap();
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cfg = Config {
            threshold: 1 + rng.below(4) as u32,
            recovery_timeout: [0.5, 5.0, 30.0][rng.below(3) as usize],
        };
        let tool = format!("t{seed}");
        let mut model = Record::default();
        // Times on a millisecond grid from a fixed epoch; sometimes the clock
        // steps back.
        let mut now = 1_700_000_000.0;
        for step in 0..60 {
            now += match rng.below(10) {
                0 => -40.0,
                1..=3 => 0.0,
                _ => rng.below(20_000) as f64 / 1000.0,
            };
            // The record is JSON with 14 significant digits (Redis's cjson):
            // keep the model's times on the same millisecond grid.
            now = (now * 1000.0).round() / 1000.0;
            let holder = format!("run{}", rng.below(3));
            let op =
                ["gate", "gate", "success", "failure", "failure", "release"][rng.below(6) as usize];
            let lease = [1.0, 10.0][rng.below(2) as usize];
            match op {
                "gate" => {
                    let want = breaker_model(&mut model, op, cfg, &holder, lease, now).unwrap();
                    let got = r
                        .breaker_gate(&tool, cfg, &holder, lease, Some(now))
                        .unwrap();
                    assert!(
                        same_gate(got, want),
                        "seed {seed} step {step}: gate {got:?} != {want:?}"
                    );
                }
                "release" => {
                    if model.probe.as_ref().is_some_and(|l| l.holder == holder) {
                        model.probe = None;
                    }
                    r.breaker_release(&tool, &holder).unwrap();
                }
                _ => {
                    breaker_model(&mut model, op, cfg, &holder, lease, now);
                    r.breaker_record(&tool, cfg, op == "success", Some(now))
                        .unwrap();
                }
            }
            let stored = r.breaker_read(&tool).unwrap();
            assert!(
                same_record(&stored, &model),
                "seed {seed} step {step} after {op}: redis {stored:?} != model {model:?}"
            );
        }
    }
}

#[test]
fn exactly_one_half_open_probe_among_concurrent_callers() {
    let server = RedisServer::start();
    let cfg = Config {
        threshold: 1,
        recovery_timeout: 0.2,
    };
    let r = Redis::new(&server.url, Duration::from_secs(2)).unwrap();
    r.breaker_record("flaky", cfg, false, None).unwrap();
    assert_eq!(r.breaker_read("flaky").unwrap().state, Phase::Open);
    std::thread::sleep(Duration::from_millis(300));
    let url = server.url.clone();
    let gates: Vec<Gate> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    let c = Redis::new(&url, Duration::from_secs(2)).unwrap();
                    c.breaker_gate("flaky", cfg, &format!("caller{i}"), 30.0, None)
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        gates.iter().filter(|g| **g == Gate::Probe).count(),
        1,
        "{gates:?}"
    );
    assert_eq!(
        gates
            .iter()
            .filter(|g| matches!(g, Gate::Reject { .. }))
            .count(),
        11
    );
    // The probe's success closes it for everyone.
    r.breaker_record("flaky", cfg, true, None).unwrap();
    let rec = r.breaker_read("flaky").unwrap();
    assert_eq!(breaker::view(&rec, cfg, 0.0), View::Closed);
}

#[test]
fn ratelimit_script_matches_the_arithmetic() {
    let server = RedisServer::start();
    let r = Redis::new(&server.url, Duration::from_secs(2)).unwrap();
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let window = [1.0, 5.0, 60.0][rng.below(3) as usize];
        let keys = [
            Limit {
                key: format!("s{seed}-role-agent"),
                limit: 3,
                capacity: 3 + rng.below(3) as u32,
            },
            Limit {
                key: format!("s{seed}-tool-dns"),
                limit: 2,
                capacity: 2 + rng.below(2) as u32,
            },
            Limit {
                key: format!("s{seed}-principal"),
                limit: 5,
                capacity: 5,
            },
        ];
        let mut model = BTreeMap::new();
        let mut now = 1_700_000_000.0;
        for step in 0..80 {
            now += match rng.below(8) {
                0 => -3.0,
                1..=3 => 0.0,
                _ => rng.below(3_000) as f64 / 1000.0,
            };
            now = (now * 1000.0).round() / 1000.0;
            let pick: Vec<Limit> = keys.iter().filter(|_| rng.below(3) != 0).cloned().collect();
            let want = admit_model(&mut model, &pick, window, now);
            let got = r.admit(&pick, window, Some(now)).unwrap();
            assert_eq!(
                (got.allowed, got.limit, got.remaining, got.key.clone()),
                (want.allowed, want.limit, want.remaining, want.key.clone()),
                "seed {seed} step {step} at {now}"
            );
            assert!(
                (got.retry_after - want.retry_after).abs() < 1e-6,
                "seed {seed} step {step}: retry {} != {}",
                got.retry_after,
                want.retry_after
            );
        }
    }
}

#[test]
fn concurrent_admission_is_exact_and_errors_name_the_url() {
    let server = RedisServer::start();
    let url = server.url.clone();
    let limits = vec![Limit {
        key: "role-user".into(),
        limit: 5,
        capacity: 5,
    }];
    let admitted: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                let limits = limits.clone();
                s.spawn(move || {
                    let c = Redis::new(&url, Duration::from_secs(2)).unwrap();
                    (0..5)
                        .filter(|_| c.admit(&limits, 60.0, None).unwrap().allowed)
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 5, "40 calls against a limit of 5");
    // Unreachable: a clear error naming the URL, password hidden.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let r = Redis::new(
        &format!("redis://u:secret@127.0.0.1:{port}/0"),
        Duration::from_millis(300),
    )
    .unwrap();
    let e = r.admit(&limits, 60.0, None).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("redis://u:***@127.0.0.1:{port}/0")),
        "{e}"
    );
    assert!(!e.to_string().contains("secret"), "{e}");
}

fn evalsha_calls(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_success_after_a_clean_gate_costs_no_round_trip_and_failures_still_count() {
    use crate::state::shared::SharedState;
    let srv = RedisServer::start();
    let shared =
        super::shared::RedisShared::new(Redis::new(&srv.url, Duration::from_secs(2)).unwrap(), 5.0);
    let cfg = Config {
        threshold: 2,
        recovery_timeout: 60.0,
    };
    assert_eq!(
        shared.breaker_gate("t", cfg, "a", 10.0).unwrap(),
        Gate::Allow
    );
    let before = evalsha_calls(&srv.url);
    shared.breaker_record("t", cfg, true).unwrap();
    assert_eq!(
        evalsha_calls(&srv.url),
        before,
        "no round trip for a no-op success"
    );
    // A failure is always recorded; the next success after a gate that saw
    // it is sent and resets the count.
    shared.breaker_gate("t", cfg, "b", 10.0).unwrap();
    assert_eq!(shared.breaker_record("t", cfg, false).unwrap().failures, 1);
    assert_eq!(
        shared.breaker_gate("t", cfg, "c", 10.0).unwrap(),
        Gate::Allow
    );
    let r = shared.breaker_record("t", cfg, true).unwrap();
    assert_eq!(r.failures, 0);
    assert_eq!(shared.breaker_read("t").unwrap().failures, 0);
    // Two failures open it for everyone.
    for h in ["d", "e"] {
        shared.breaker_gate("t", cfg, h, 10.0).unwrap();
        shared.breaker_record("t", cfg, false).unwrap();
    }
    assert!(matches!(
        shared.breaker_gate("t", cfg, "f", 10.0).unwrap(),
        Gate::Reject { .. }
    ));
}
