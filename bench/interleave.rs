//! Interleaved process-start benchmark for bench/run.sh (std only; build with
//! `rustc -O bench/interleave.rs -o target/interleave`).
//!
//! Usage: interleave ROUNDS RUNS -- CMD1 ARGS… -- CMD2 ARGS… [-- CMD3 …]
//!
//! hyperfine measures one command after the other, so on a shared machine a
//! change of load between them shows up as a difference between commands.
//! This runs every command RUNS times per round, in turn, for ROUNDS rounds
//! (after one warm-up round), with stdin and stdout on /dev/null, and prints
//! for each command the median and quartiles of the wall time of spawn to
//! exit, and the median difference to the first command. It also prints each
//! command's CPU time and minor page faults per run (its process and the
//! processes it waited for, from getrusage(RUSAGE_CHILDREN)): on a loaded
//! machine these move far less than wall time.

use std::process::{Command, Stdio};
use std::time::Instant;

/// `struct rusage` of Linux (x86_64 and aarch64: 64-bit longs).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// CPU seconds and minor faults of the waited-for children so far.
fn children() -> (f64, i64) {
    let mut r = Rusage::default();
    // SAFETY: `r` is a valid `struct rusage`; RUSAGE_CHILDREN is -1.
    assert_eq!(unsafe { getrusage(-1, &mut r) }, 0);
    let secs = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    // ru_minflt is the 7th long after the two timevals (maxrss, ixrss, idrss, isrss, minflt).
    (secs(r.utime) + secs(r.stime), r.rest[4])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: interleave ROUNDS RUNS -- CMD ARGS… -- CMD ARGS…";
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).expect(usage);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for a in &args[2..] {
        if a == "--" {
            cmds.push(Vec::new());
        } else {
            cmds.last_mut().expect(usage).push(a.clone());
        }
    }
    assert!(cmds.len() >= 2 && cmds.iter().all(|c| !c.is_empty()), "{usage}");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cmds.len()];
    let mut usage = vec![(0.0f64, 0i64); cmds.len()];
    for round in 0..=rounds {
        for (i, c) in cmds.iter().enumerate() {
            for _ in 0..runs {
                let before = children();
                let t = Instant::now();
                let st = Command::new(&c[0])
                    .args(&c[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .expect("spawn");
                let dt = t.elapsed().as_secs_f64() * 1000.0;
                assert!(st.success(), "{} failed: {st}", c.join(" "));
                if round > 0 {
                    times[i].push(dt);
                    let after = children();
                    usage[i].0 += after.0 - before.0;
                    usage[i].1 += after.1 - before.1;
                }
            }
        }
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let base = q(&mut times[0].clone(), 0.5);
    for ((c, t), (cpu, faults)) in cmds.iter().zip(times.iter_mut()).zip(usage) {
        let med = q(t, 0.5);
        let n = t.len() as f64;
        println!(
            "median {med:.3} ms  (q1 {:.3}, q3 {:.3}; {} runs)  {:+.3} ms vs the first  \
             cpu {:.3} ms  {:.1} minor faults per run  {}",
            q(t, 0.25),
            q(t, 0.75),
            t.len(),
            med - base,
            cpu * 1000.0 / n,
            faults as f64 / n,
            c.join(" ")
        );
    }
}
