//! Microbenchmark of the per-run bookkeeping (PRODUCT.md §8): policy decision,
//! argument validation, rate-limit admission, cache lookup, breaker gate and
//! outcome, all against real state files in a temporary GATHM_HOME.
//! Run: `cargo run --release --example bookkeeping [ITERATIONS]`.

use std::ffi::OsString;
use std::time::Instant;

use gathm::{breaker, cache, clock, policy, ratelimit};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile_dir();
    let policies =
        policy::parse(std::path::Path::new("p"), policy::DEFAULT_POLICIES).expect("policies");
    let args: Vec<OsString> = vec!["example.com".into(), "-t".into(), "MX".into()];
    let args_s: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cfg = breaker::Config::default();
    let bpath = dir.join("health/cb_noop.json");
    let cache_dir = dir.join("cache/noop");
    let digest = [7u8; 32];
    // The shipped agent role's limit: 120 per 60 s plus a burst of 10. The
    // window is emptied every 100 calls, so it never refuses and holds 0–100
    // stamps, as a busy but legal client's would.
    let limit = ratelimit::Limit {
        key: "role-agent".into(),
        limit: 120,
        capacity: 130,
    };
    let calls = std::cell::Cell::new(0u64);
    let mut timings = Vec::with_capacity(n);
    let run = |full_rl: bool| {
        let t = Instant::now();
        let d = policy::decide(&policies, "agent", "noop", policy::Action::Execute, false);
        assert!(d.allowed());
        assert!(policy::check_args(&policies, &args_s).is_none());
        if full_rl {
            let a = {
                calls.set(calls.get() + 1);
                if calls.get().is_multiple_of(100) {
                    for slot in ["role-agent.json.0", "role-agent.json.1"] {
                        let _ = std::fs::remove_file(dir.join("ratelimit").join(slot));
                    }
                }
                ratelimit::admit(
                    &dir.join("ratelimit"),
                    std::slice::from_ref(&limit),
                    60.0,
                    clock::now(),
                )
                .expect("admit")
            };
            assert!(a.allowed);
        }
        let exe = cache::exe_identity(std::iter::once(std::ffi::OsStr::new("/bin/true")));
        let key = cache::key("noop", &digest, &exe, &args);
        let _ = cache::get(&cache::entry_path(&cache_dir, &key), clock::now()).expect("cache");
        let (g, _clean) = breaker::gate_at(&bpath, cfg, clock::now(), "run", 60.0).expect("gate");
        assert_eq!(g, breaker::Gate::Allow);
        breaker::record_at(&bpath, cfg, clock::now(), true).expect("record");
        t.elapsed()
    };
    for label in ["without rate limit (admin)", "with a persisted rate limit"] {
        timings.clear();
        let rl = label.starts_with("with a");
        for _ in 0..200 {
            run(rl);
        }
        for _ in 0..n {
            timings.push(run(rl));
        }
        timings.sort();
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        println!(
            "bookkeeping {label}: median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs over {n} runs",
            us(timings[n / 2]),
            us(timings[n * 9 / 10]),
            us(timings[n * 99 / 100])
        );
    }
    let wrote = std::fs::metadata(&bpath).is_ok();
    println!(
        "breaker state written by successes on a healthy tool: {}",
        if wrote { "yes" } else { "no" }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gathm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
