//! SSE streams of `gathm serve` (issue 12 item 5): a client that stops
//! reading is dropped after `GATHM_SSE_WRITE_TIMEOUT` and its slot freed
//! while the server keeps answering; a followed job's new line reaches the
//! client through the job's notification, not a poll. Through the real
//! binary on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Sandbox, wait_until};
use crate::serve::{Server, get, submit};

fn streams_open(s: &Server) -> Option<f64> {
    let text = get(s, "/metrics", None).body;
    text.as_str()?.lines().find_map(|l| {
        l.strip_prefix("gathm_sse_streams ")
            .and_then(|v| v.parse().ok())
    })
}

fn request(s: &Server, id: &str) -> String {
    format!(
        "GET /api/v1/jobs/{id}/stream HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        s.port
    )
}

/// The status of a response head read byte by byte from `c`.
fn status_of(c: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn serve_stream_of_a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let sb = Sandbox::new(&[]);
    // About 20 MB of events: far more than the socket buffers hold.
    sb.manifest(
        "loud",
        "name: loud\nversion: \"1.0.0\"\ndescription: prints a lot\ncategory: utility\ntimeout: 60\ncache: false\n",
        Some("#!/bin/sh\nseq 1 60000 | sed 's/$/ the quick brown fox jumps over the lazy dog the quick brown fox jumps over the lazy dog the quick brown fox jumps over the lazy dog the quick brown fox jumps over the lazy dog/'\n"),
    );
    let s = Server::start(
        &sb,
        &[
            ("GATHM_SSE_WRITE_TIMEOUT", "1"),
            ("GATHM_MAX_STREAMS_PER_CLIENT", "1"),
        ],
    );
    let job = submit(&s, None, json!({"tool": "loud"}));
    let id = job["id"].as_str().unwrap().to_string();
    let mut status = json!(null);
    wait_until("the job to end", Duration::from_secs(60), || {
        status = get(&s, &format!("/api/v1/jobs/{id}"), None).body["status"].clone();
        status != "pending" && status != "running"
    });
    assert_eq!(status, "completed");
    // A client with a tiny receive buffer that never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut stalled: TcpStream = sock.into();
    stalled.write_all(request(&s, &id).as_bytes()).unwrap();
    wait_until("the stream to open", Duration::from_secs(10), || {
        streams_open(&s) == Some(1.0)
    });
    // While it is stuck, the server answers; once the write timeout passes
    // (1 s; 20 s is generous on a loaded machine) the slot is free.
    let t0 = Instant::now();
    while streams_open(&s) != Some(0.0) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the stalled stream still holds its slot"
        );
        assert_eq!(get(&s, "/api/v1/ping", None).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The per-client cap (1) lets a new stream in, which replays to the end.
    let mut again = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    again.write_all(request(&s, &id).as_bytes()).unwrap();
    assert_eq!(status_of(&mut again), 200);
    // The stalled connection was closed by the server: what was buffered
    // reads out, then end of stream (not a read timeout).
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let r = stalled.read_to_end(&mut sink);
    assert!(
        r.is_ok()
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled connection is closed: {r:?}"
    );
    assert!(!String::from_utf8_lossy(&sink).contains("event: done"));
}

#[test]
fn serve_stream_follow_delivers_a_new_line_promptly() {
    let sb = Sandbox::new(&[]);
    let fifo = sb.path().join("feed");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    sb.manifest(
        "relay",
        "name: relay\nversion: \"1.0.0\"\ndescription: echoes lines read from a fifo\ncategory: utility\ntimeout: 60\ncache: false\n",
        Some("#!/bin/sh\necho ready\nexec 3< \"$1\"\nfor i in 1 2 3 4 5; do\n  read l <&3\n  echo \"got $l\"\ndone\n"),
    );
    let s = Server::start(&sb, &[]);
    let job = submit(
        &s,
        None,
        json!({"tool": "relay", "args": [fifo.to_str().unwrap()]}),
    );
    let id = job["id"].as_str().unwrap().to_string();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(request(&s, &id).as_bytes()).unwrap();
    assert_eq!(status_of(&mut c), 200);
    let mut lines = BufReader::new(c).lines();
    let mut next_data = |want: &str| loop {
        let l = lines.next().expect("stream open").unwrap();
        if l.starts_with("data: ") && l.contains(want) {
            return l;
        }
    };
    next_data("ready");
    // One writer for every line (the tool opens the FIFO once); opened
    // without blocking, retried until the tool has it open.
    let t0 = Instant::now();
    let mut feed = loop {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK: ENXIO until a reader is there
            .open(&fifo)
        {
            Ok(f) => break f,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "the tool never opened the fifo: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    // Each line is fed while the stream is idle; the time to see it is
    // summed. A follower that only polled every second (the fallback) would
    // take about 2.5 s for five lines; the notification takes milliseconds.
    let mut total = Duration::ZERO;
    for i in 1..=5 {
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        feed.write_all(format!("n{i}\n").as_bytes()).unwrap();
        let l = next_data(&format!("got n{i}"));
        total += t0.elapsed();
        assert!(l.contains("\"stream\":\"stdout\""), "{l}");
    }
    assert!(
        total < Duration::from_secs(1),
        "five followed lines took {total:?} in all"
    );
    let done = next_data("\"event\":\"done\"");
    assert!(done.contains("\"status\":\"completed\""), "{done}");
}
