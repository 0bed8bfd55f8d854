//! `gathm serve` against clients that try to knock it over (issue 12): huge
//! or slow request heads, idle connections, odd framing, long executions,
//! invented methods, many streams. Through the real binary on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Sandbox, wait_until};
use crate::serve::{Server, WAIT, client, get, post, raw, submit};

/// A field of `/proc/PID/status` (kB for sizes).
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Send `request` and read until the server closes (or 5 s pass).
fn exchange(s: &Server, request: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(request);
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether the server has closed `c` (EOF or reset), waiting at most 100 ms.
fn closed(mut c: &TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 1024];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn metric(s: &Server, token: Option<&str>, name: &str) -> Option<f64> {
    let text = get(s, "/metrics", token).body;
    text.as_str()?.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

#[test]
fn serve_limits_head_url_body_and_framing() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[]);
    let pid = s.child.id();
    let host = format!("127.0.0.1:{}", s.port);
    // 64 MiB of request headers: 431 (or closed), and memory stays bounded.
    {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ =
            c.write_all(format!("GET /api/v1/ping HTTP/1.1\r\nHost: {host}\r\nX-Big: ").as_bytes());
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..1024 {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 431"),
            "{text}"
        );
    }
    // Just over the limit, in one write: the exact 431 with a JSON body.
    let text = exchange(
        &s,
        format!(
            "GET /api/v1/ping HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        )
        .as_bytes(),
    );
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    let rss = proc_status(pid, "VmRSS:");
    assert!(rss < 64 * 1024, "RSS {rss} kB after a 64 MiB header");
    // A long URL: 414.
    let long = format!(
        "GET /api/v1/ping?x={} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    let (st, text) = raw(&s, long.as_bytes());
    assert_eq!(st, 414, "{text}");
    // Invalid Content-Length: 400, and the body is never read as a request.
    for cl in ["-5", "abc", "0x2", "1, 2"] {
        let text = exchange(
            &s,
            format!(
                "POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {cl}\r\n\r\nGET /api/v1/ping HTTP/1.1\r\nHost: {host}\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(text.starts_with("HTTP/1.1 400"), "{cl}: {text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{cl}: {text}");
        assert!(!text.contains("gathm-api"), "{cl}: {text}");
    }
    // Repeated Content-Length, Host, Sec-Fetch-Site: 400.
    for dup in [
        // (identical repeated lengths are merged by hyper, as RFC 9110 allows)
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
        "Host: evil.example\r\n",
        "Sec-Fetch-Site: same-origin\r\nSec-Fetch-Site: cross-site\r\n",
    ] {
        let text = exchange(
            &s,
            format!("POST /api/v1/tools/ok/execute HTTP/1.1\r\nHost: {host}\r\n{dup}Connection: close\r\n\r\n{{}}").as_bytes(),
        );
        assert!(text.starts_with("HTTP/1.1 400"), "{dup:?}: {text}");
    }
    // A lying length is refused before the body is read.
    let (st, _) = raw(
        &s,
        format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2000000000\r\n\r\n{{"
        )
        .as_bytes(),
    );
    assert_eq!(st, 413);
    // Invalid UTF-8 in the request line gets an answer.
    let text = exchange(&s, b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
    assert_eq!(get(&s, "/api/v1/ping", None).status, 200);
}

#[test]
fn serve_idle_and_slow_clients_are_dropped_and_do_not_block() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[("GATHM_HEADER_TIMEOUT", "1")]);
    let pid = s.child.id();
    let connect = || TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let idle: Vec<TcpStream> = (0..200).map(|_| connect()).collect();
    // A kept-alive connection that answered a request and then idles.
    let mut kept = connect();
    kept.write_all(b"GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = connect();
            c.write_all(b"GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            c
        })
        .collect();
    // For 2.5 s the slow ones send a byte of header every 100 ms, while
    // pings go through on fresh connections.
    let c = client();
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_millis(2500) {
        for w in slow.iter_mut() {
            let _ = w.write_all(b"X");
        }
        let t = Instant::now();
        let r = c.get(s.url("/api/v1/ping")).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("slowest ping with 250 idle/slow connections: {worst:?}");
    assert!(worst < Duration::from_millis(1000), "{worst:?}");
    let threads = proc_status(pid, "Threads:");
    assert!(threads < 64, "{threads} threads");
    // Past the 1 s header timeout every idle and slow connection is closed.
    let open = idle
        .iter()
        .chain(slow.iter())
        .chain([&kept])
        .filter(|c| !closed(c))
        .count();
    assert_eq!(open, 0, "connections still open after the header timeout");
}

#[test]
fn serve_long_executions_do_not_starve_probes() {
    let sb = Sandbox::new(&["slow", "ok"]);
    let s = Server::start(&sb, &[("GATHM_MAX_EXECUTIONS", "16")]);
    let base = s.base.clone();
    let runs: Vec<_> = (0..16)
        .map(|_| {
            let url = format!("{base}/api/v1/tools/slow/execute");
            std::thread::spawn(move || {
                client()
                    .post(url)
                    .json(&json!({"args": ["4"]}))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    wait_until("16 executions running", WAIT, || {
        metric(&s, None, "gathm_executions_running") == Some(16.0)
    });
    for path in ["/healthz", "/readyz", "/api/v1/ping", "/metrics"] {
        let t = Instant::now();
        assert_eq!(get(&s, path, None).status, 200, "{path}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{path}: {:?}",
            t.elapsed()
        );
    }
    // The 17th is refused with a hint, not queued behind the others.
    let r = post(&s, "/api/v1/tools/ok/execute", None, &json!({}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(r.body["max_executions"], 16);
    for h in runs {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(
        post(&s, "/api/v1/tools/ok/execute", None, &json!({})).status,
        200
    );
}

#[test]
fn serve_invented_methods_add_no_metric_series() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[]);
    let host = format!("127.0.0.1:{}", s.port);
    let series = || {
        get(&s, "/metrics", None)
            .body
            .as_str()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .filter(|l| !l.contains("/metrics"))
            .collect::<std::collections::BTreeSet<String>>()
    };
    raw(
        &s,
        format!("BREW /api/v1/ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    post(&s, "/api/v1/tools/ghost0/execute", None, &json!({}));
    let before = series();
    for i in 0..200 {
        raw(
            &s,
            format!("BREW{i} /api/v1/ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        if i % 20 == 0 {
            post(
                &s,
                &format!("/api/v1/tools/ghost{i}/execute"),
                None,
                &json!({}),
            );
        }
    }
    let after = series();
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(new.is_empty(), "new series: {new:?}");
    assert!(after.iter().any(|l| l.contains("method=\"other\"")));
}

/// Open a stream and read its head; the connection is returned open.
fn open_stream(s: &Server, id: &str, token: &str) -> (u16, TcpStream) {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        format!(
            "GET /api/v1/jobs/{id}/stream HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\r\n",
            s.port
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, c)
}

#[test]
fn serve_streams_are_bounded_per_client_and_freed_on_close() {
    let sb = Sandbox::new(&["slow"]);
    // Two admins (no rate limit), two principals.
    let s = Server::start(&sb, &[("GATHM_API_KEYS", "a1:admin,a2:admin")]);
    let mine = submit(&s, Some("a1"), json!({"tool": "slow", "args": ["30"]}));
    let id = mine["id"].as_str().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        match open_stream(&s, id, "a1") {
            (200, c) => held.push(c),
            (429, _) => refused += 1,
            (st, _) => panic!("unexpected status {st}"),
        }
    }
    assert_eq!(held.len(), 16, "GATHM_MAX_STREAMS_PER_CLIENT default");
    assert_eq!(refused, 84);
    // Another client is not blocked.
    let theirs = submit(&s, Some("a2"), json!({"tool": "slow", "args": ["30"]}));
    let (st, _other) = open_stream(&s, theirs["id"].as_str().unwrap(), "a2");
    assert_eq!(st, 200);
    assert_eq!(metric(&s, Some("a1"), "gathm_sse_streams"), Some(17.0));
    // Closing the connections frees the slots at once.
    drop(held);
    wait_until("slots freed", Duration::from_secs(3), || {
        metric(&s, Some("a1"), "gathm_sse_streams") == Some(1.0)
    });
    let (st, _again) = open_stream(&s, id, "a1");
    assert_eq!(st, 200);
    let v: Value = get(&s, &format!("/api/v1/jobs/{id}"), Some("a1")).body;
    assert_eq!(v["status"], "running");
}

#[test]
fn serve_bad_numbers_are_clear_errors_and_the_server_stays_up() {
    let sb = Sandbox::new(&["ok"]);
    sb.manifest(
        "neg",
        "name: neg\nversion: \"1.0.0\"\ndescription: negative timeout\ncategory: utility\ntimeout: -5\n",
        Some("#!/bin/sh\necho hi\n"),
    );
    let s = Server::start(&sb, &[]);
    for _ in 0..3 {
        let r = post(&s, "/api/v1/tools/neg/execute", None, &json!({}));
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(r.body["error"], "invalid_configuration");
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains("timeout must be a positive number"), "{msg}");
        assert!(msg.contains("tool.yaml:5:"), "{msg}");
        assert_eq!(
            post(&s, "/api/v1/tools/ok/execute", None, &json!({})).status,
            200
        );
    }
    // The CLI: exit 65 with file:line:col.
    let out = sb.run(&["run", "neg"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(crate::harness::stderr(&out).contains("tool.yaml:5:"));
    // Pipeline jobs: 1e300 anywhere a duration goes is a 400.
    for pipeline in [
        json!({"name": "p", "timeout": 1e300, "steps": [{"id": "a", "tool": "ok"}]}),
        json!({"name": "p", "steps": [{"id": "a", "tool": "ok", "timeout": 1e300}]}),
        json!({"name": "p", "steps": [{"id": "a", "tool": "ok",
            "retry": {"attempts": 2, "delay": 1e300, "max_delay": 1e300}}]}),
    ] {
        let r = post(&s, "/api/v1/jobs", None, &json!({ "pipeline": pipeline }));
        assert_eq!(r.status, 400, "{pipeline}: {}", r.body);
        assert!(r.body.to_string().contains("seconds"), "{}", r.body);
    }
    assert_eq!(
        post(
            &s,
            "/api/v1/jobs",
            None,
            &json!({"tool": "ok", "timeout": 1e300})
        )
        .status,
        400
    );
    assert_eq!(get(&s, "/api/v1/ping", None).status, 200);
}

#[test]
fn serve_nul_arguments_are_refused_before_anything_runs() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[("GATHM_API_KEYS", "adm:admin,usr:user")]);
    for body in [
        json!({"args": ["a\u{0}b"]}),
        json!({"args": "a\u{0}b"}),
        json!({"args": ["x", "\u{0}"]}),
        json!({"args": ["a\u{0}b"]}),
    ] {
        let r = post(&s, "/api/v1/tools/ok/execute", Some("usr"), &body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("NUL"));
    }
    for body in [
        json!({"tool": "ok", "args": ["a\u{0}b"]}),
        json!({"pipeline": {"name": "p", "steps": [{"id": "a", "tool": "ok", "args": ["a\u{0}"]}]}}),
    ] {
        assert_eq!(post(&s, "/api/v1/jobs", Some("usr"), &body).status, 400);
    }
    let r = post(
        &s,
        "/api/v1/agent/parallel",
        Some("usr"),
        &json!({"items": [{"tool": "ok", "args": ["\u{0}"]}]}),
    );
    assert_eq!(r.status, 400);
    // Nothing counted against the breaker: the tool still runs for anyone.
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        Some("adm"),
        &json!({"args": ["fine"]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "success", "{}", r.body);
    let b = get(&s, "/api/v1/agent/status", Some("adm")).body;
    assert!(!b.to_string().contains("\"open\""), "{b}");
    // The CLI: a NUL from a pipeline file is a usage error (exit 2).
    let p = sb.write(
        "p.yaml",
        "name: p\nsteps:\n  - {id: a, tool: ok, args: [\"a\\0b\"]}\n",
    );
    let out = sb.run(&["pipeline", "run", p.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::harness::stderr(&out)
    );
}

#[test]
fn serve_refuses_api_keys_without_an_entry() {
    let sb = Sandbox::new(&[]);
    for bad in [",", " ", " , "] {
        let out = sb
            .cmd()
            .args(["serve", "--port", "0"])
            .env("GATHM_API_KEYS", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = crate::harness::stderr(&out);
        assert!(
            err.contains("GATHM_API_KEYS") && err.contains("no token:role"),
            "{err}"
        );
    }
}

#[test]
fn serve_metrics_pass_promtool() {
    let sb = Sandbox::new(&["ok", "fail"]);
    let s = Server::start(&sb, &[]);
    let host = format!("127.0.0.1:{}", s.port);
    post(&s, "/api/v1/tools/ok/execute", None, &json!({}));
    post(
        &s,
        "/api/v1/tools/fail/execute",
        None,
        &json!({"args": ["2"]}),
    );
    post(&s, "/api/v1/tools/ghost/execute", None, &json!({}));
    submit(&s, None, json!({"tool": "ok"}));
    get(&s, "/nope", None);
    raw(
        &s,
        format!("BREW /api/v1/ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let text = get(&s, "/metrics", None).body;
    let text = text.as_str().unwrap();
    let promtool = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    let Some(promtool) = promtool else {
        assert!(
            std::env::var_os("GATHM_REQUIRE_TEST_TOOLS").is_none(),
            "promtool is required (apt-get install prometheus)"
        );
        eprintln!("promtool not installed: skipping `promtool check metrics`");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_connections_over_the_cap_get_503_and_are_logged() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(
        &sb,
        &[
            ("GATHM_MAX_CONNECTIONS", "8"),
            ("GATHM_HEADER_TIMEOUT", "2"),
        ],
    );
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let text = exchange(&s, b"GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too many open connections"), "{text}");
    // The idle ones are closed at the header timeout; then all is well.
    wait_until("the idle connections to be closed", WAIT, || {
        client()
            .get(s.url("/api/v1/ping"))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200)
    });
    drop(held);
    let m = get(&s, "/metrics", None).body;
    assert!(
        m.as_str()
            .unwrap()
            .lines()
            .any(|l| l.starts_with("gathm_http_connections_refused_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    wait_until("the refusal in the app log", WAIT, || {
        sb.log("gathm.log").iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("GATHM_MAX_CONNECTIONS"))
        })
    });
}

#[test]
fn serve_handler_panics_are_500_and_the_server_goes_on() {
    // The panic hook exists in debug builds only (`cargo test`, as CI runs);
    // a release binary (`cargo test --release`) has none to trigger.
    if !cfg!(debug_assertions) {
        eprintln!("skipped: GATHM_DEBUG_PANIC is compiled into debug builds only");
        return;
    }
    let sb = Sandbox::new(&["ok"]);
    // A debug-build hook: these paths panic in their handler.
    let s = Server::start(&sb, &[("GATHM_DEBUG_PANIC", "/healthz,/api/v1/tools")]);
    for _ in 0..3 {
        for path in ["/healthz", "/api/v1/tools"] {
            let r = get(&s, path, None);
            assert_eq!(r.status, 500, "{path}");
            assert_eq!(r.body["error"], "internal error", "{path}");
            assert_eq!(r.body["reason"], "internal_error", "{path}");
        }
        assert_eq!(get(&s, "/api/v1/ping", None).status, 200);
        assert_eq!(
            post(&s, "/api/v1/tools/ok/execute", None, &json!({})).status,
            200
        );
    }
    wait_until("the panic in the app log", WAIT, || {
        sb.log("gathm.log").iter().any(|l| {
            l["panic"]
                .as_str()
                .is_some_and(|m| m.contains("GATHM_DEBUG_PANIC at /api/v1/tools"))
        })
    });
}
