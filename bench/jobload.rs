//! Job-submission load generator for bench/serve.sh (std only; build with
//! `rustc -O bench/jobload.rs -o target/jobload`).
//!
//! Usage: jobload HOST:PORT[,HOST:PORT…] TOTAL CONCURRENCY TOOL
//! Submits TOTAL jobs over CONCURRENCY keep-alive connections (spread over
//! the servers given, e.g. the instances of a fleet), then waits
//! until every job has finished (polling /metrics). Prints the submission
//! rate overall and for the first and the last 1,000 submissions, and the
//! time until all jobs had finished.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn request(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(req.as_bytes()).expect("write");
    let mut status_line = String::new();
    r.read_line(&mut status_line).expect("status");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body).expect("body");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn connect(host: &str) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(host).expect("connect");
    s.set_nodelay(true).ok();
    (BufReader::new(s.try_clone().expect("clone")), s)
}

fn finished(host: &str) -> usize {
    let (mut r, mut w) = connect(host);
    let (_, text) = request(&mut r, &mut w, host, "GET", "/metrics", "");
    text.lines()
        .filter(|l| {
            l.starts_with("gathm_jobs{status=\"completed\"}")
                || l.starts_with("gathm_jobs{status=\"failed\"}")
                || l.starts_with("gathm_jobs{status=\"cancelled\"}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: jobload HOST:PORT[,HOST:PORT…] TOTAL CONCURRENCY TOOL");
        std::process::exit(2);
    }
    let hosts: Vec<String> = args[1].split(',').map(String::from).collect();
    // Finished jobs are counted on the first server (a fleet's counts are shared).
    let host = hosts[0].clone();
    let total: usize = args[2].parse().expect("TOTAL");
    let conc: usize = args[3].parse().expect("CONCURRENCY");
    let body = format!("{{\"tool\":\"{}\",\"args\":[]}}", args[4]);
    let before = finished(&host);
    let next = Arc::new(AtomicUsize::new(0));
    let stamps = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|i| {
            let (host, body, next, stamps) = (
                hosts[i % hosts.len()].clone(),
                body.clone(),
                next.clone(),
                stamps.clone(),
            );
            std::thread::spawn(move || {
                let (mut r, mut w) = connect(&host);
                let mut mine = Vec::new();
                let mut refused = 0usize;
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    let (st, text) = request(&mut r, &mut w, &host, "POST", "/api/v1/jobs", &body);
                    if st != 202 {
                        refused += 1;
                        eprintln!("submission refused: {st} {text}");
                    }
                    mine.push(t0.elapsed().as_secs_f64());
                }
                stamps.lock().unwrap().extend(mine);
                refused
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let submit_secs = t0.elapsed().as_secs_f64();
    let mut s = stamps.lock().unwrap().clone();
    s.sort_by(|a, b| a.total_cmp(b));
    let k = 1000.min(s.len());
    let first = k as f64 / s[k - 1].max(1e-9);
    let last = if s.len() > k {
        k as f64 / (s[s.len() - 1] - s[s.len() - 1 - k]).max(1e-9)
    } else {
        first
    };
    loop {
        let done = finished(&host).saturating_sub(before);
        if done >= total - refused {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            eprintln!("gave up waiting: {done} of {total} finished");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let all_secs = t0.elapsed().as_secs_f64();
    println!(
        "jobs={total} refused={refused} submit_secs={submit_secs:.2} submit_rate={:.0}/s first_1000_rate={first:.0}/s last_1000_rate={last:.0}/s all_finished_secs={all_secs:.2}",
        total as f64 / submit_secs
    );
}
