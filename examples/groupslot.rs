//! Microbenchmark of a concurrency-group slot (issue 16's target: acquired
//! and released in ≤ 0.2 ms uncontended), against a real GATHM_HOME-style
//! directory, and of `schedule tick`'s claim over 1,000 schedules with
//! nothing due.
//! Run: `cargo run --release --example groupslot [ITERATIONS]`.

use std::time::Instant;

use gathm::schedule::cron::Cron;
use gathm::state::groups;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("gathm-groupslot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wait = groups::Wait::default();
    let mut t = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t0 = Instant::now();
        let s = groups::acquire(&dir, "bench", 4, 100, &wait, &mut || {}).expect("slot");
        drop(s);
        if i >= 200 {
            t.push(t0.elapsed());
        }
    }
    t.sort();
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    println!(
        "group slot acquire+release (uncontended, 4 slots): median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs over {n}",
        us(t[n / 2]),
        us(t[n * 9 / 10]),
        us(t[n * 99 / 100])
    );
    // Next-fire computation for 1,000 schedules (what a scheduler does per wake-up).
    let crons: Vec<Cron> = (0..1000)
        .map(|i| Cron::parse(&format!("{} {} * * *", i % 60, i % 24), "Europe/Paris").unwrap())
        .collect();
    let now = jiff::Timestamp::now();
    let t0 = Instant::now();
    let mut due = 0;
    for c in &crons {
        if c.next_after(now).is_some() {
            due += 1;
        }
    }
    println!(
        "next fire time of 1,000 schedules: {:.2} ms ({due} computed)",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
