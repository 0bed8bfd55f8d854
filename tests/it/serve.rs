//! `gathm serve` through a real server on 127.0.0.1 (`--port 0`): auth,
//! errors, execution parity with the CLI, jobs (lifecycle, queue, cancel,
//! crash recovery, TTL, callbacks, approval), SSE, shutdown and metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Sandbox, alive, copy_dir, wait_until};

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A running server, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) port: u16,
    _out: BufReader<ChildStdout>,
}

impl Server {
    pub(crate) fn start(sb: &Sandbox, env: &[(&str, &str)]) -> Server {
        let mut c = sb.cmd();
        c.args(["serve", "--port", "0"])
            .env("GATHM_SHUTDOWN_GRACE", "0")
            .env("GATHM_KILL_GRACE", "0.2")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(sb.path().join("server.err"))
                    .unwrap(),
            );
        let mut child = c.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    std::fs::read_to_string(sb.path().join("server.err")).unwrap_or_default()
                )
            })
            .to_string();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server {
            child,
            base,
            port,
            _out: out,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Wait for the process to exit (bounded) and return its code.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not exit within {within:?}");
    }
}

impl Drop for Server {
    /// SIGTERM first, so running tools are killed with their process groups
    /// (no orphans outlive a test); SIGKILL if it does not exit in time.
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::blocking::Client {
    // gathm's own client: reqwest over rustls with the ring provider.
    gathm::client::build(Duration::from_secs(60)).unwrap()
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

pub(crate) fn send(rb: reqwest::blocking::RequestBuilder) -> Resp {
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(s: &Server, path: &str, token: Option<&str>) -> Resp {
    let mut rb = client().get(s.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    send(rb)
}

pub(crate) fn post(s: &Server, path: &str, token: Option<&str>, body: &Value) -> Resp {
    let mut rb = client().post(s.url(path)).json(body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    send(rb)
}

pub(crate) fn delete(s: &Server, path: &str, token: Option<&str>) -> Resp {
    let mut rb = client().delete(s.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    send(rb)
}

/// A raw HTTP/1.1 exchange (for Host headers and odd bodies).
pub(crate) fn raw(s: &Server, request: &[u8]) -> (u16, String) {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(request);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(i) = text.find("\r\n\r\n") {
                    let cl = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + cl {
                        break;
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

pub(crate) fn job_status(s: &Server, id: &str, token: Option<&str>) -> Value {
    get(s, &format!("/api/v1/jobs/{id}"), token).body
}

pub(crate) fn wait_job(s: &Server, id: &str, token: Option<&str>, want: &[&str]) -> Value {
    let mut last = Value::Null;
    wait_until(&format!("job {id} to reach {want:?}"), WAIT, || {
        last = job_status(s, id, token);
        want.contains(&last["status"].as_str().unwrap_or(""))
    });
    last
}

pub(crate) fn submit(s: &Server, token: Option<&str>, body: Value) -> Value {
    let r = post(s, "/api/v1/jobs", token, &body);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/api/v1/jobs/{}", r.body["id"].as_str().unwrap())
    );
    r.body
}

pub(crate) const KEYS: &str = "adm:admin,usr:user,ro:readonly,ag:agent,usr2:user";

#[test]
fn serve_ping_is_public_and_headers_are_set() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[("GATHM_API_KEYS", KEYS)]);
    let r = get(&s, "/api/v1/ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["service"], "gathm-api");
    assert!(r.body["version"].is_string());
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers[h].to_str().unwrap(), v, "{h}");
    }
    assert_eq!(get(&s, "/healthz", None).status, 200);
    assert_eq!(get(&s, "/readyz", None).status, 200);
    let spec = get(&s, "/api/openapi.json", Some("ro")).body;
    assert_eq!(spec["openapi"], "3.1.0");
    for p in [
        "/api/v1/ping",
        "/api/v1/tools",
        "/api/v1/tools/{name}",
        "/api/v1/tools/{name}/execute",
        "/api/v1/health",
        "/api/v1/health/{tool}",
        "/api/v1/agent/status",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/stream",
        "/api/v1/jobs/{id}/approve",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(spec["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
    // The access log has a structured line per request.
    wait_until("access log lines", WAIT, || {
        sb.log("gathm.log")
            .iter()
            .any(|l| l["component"] == "http" && l["path"] == "/healthz" && l["status"] == 200)
    });
    let log = sb.log("gathm.log");
    let line = log
        .iter()
        .find(|l| l["component"] == "http" && l["path"] == "/healthz")
        .unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/healthz");
    assert_eq!(line["level"], "INFO");
    assert!(line["ms"].is_number() && line["pid"].is_u64());
    assert!(line["hostname"].is_string() && line["timestamp"].is_string());
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("GET /healthz 200 ")
    );
}

#[test]
fn serve_auth_matrix() {
    let sb = Sandbox::new(&["ok", "backup"]);
    sb.manifest(
        "envdump",
        "name: envdump\nversion: \"1.0.0\"\ndescription: dumps its environment\ncategory: utility\nrequires_internet: false\ncache: false\n",
        Some("#!/bin/sh\nenv\n"),
    );
    let s = Server::start(
        &sb,
        &[("GATHM_API_KEYS", KEYS), ("GATHM_API_KEY", "legacy-admin")],
    );
    // No token, wrong token.
    let r = get(&s, "/api/v1/tools", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "Unauthorized");
    assert_eq!(r.headers["www-authenticate"].to_str().unwrap(), "Bearer");
    assert_eq!(get(&s, "/api/v1/tools", Some("nope")).status, 401);
    assert_eq!(get(&s, "/api/v1/jobs", Some("")).status, 401);
    // Each role: (token, tools, execute, submit, health, metrics, approve-route).
    let exec = json!({"args": ["x"]});
    let cases = [
        ("adm", 200, 200, 202, 200, 200),
        ("legacy-admin", 200, 200, 202, 200, 200),
        ("usr", 200, 200, 202, 403, 403),
        ("ag", 200, 200, 202, 200, 200),
        ("ro", 200, 403, 403, 200, 200),
    ];
    for (tok, tools, execute, sub, health, metrics) in cases {
        for (path, want) in [
            ("/api/v1/tools", tools),
            ("/api/v1/tools/ok", tools),
            ("/api/v1/agent/status", tools),
            ("/api/v1/jobs", tools),
            ("/api/v1/health", health),
            ("/api/v1/health/ok", health),
            ("/metrics", metrics),
        ] {
            assert_eq!(get(&s, path, Some(tok)).status, want, "{tok} GET {path}");
        }
        assert_eq!(
            post(&s, "/api/v1/tools/backup/execute", Some(tok), &exec).status,
            execute,
            "{tok} execute"
        );
        assert_eq!(
            post(&s, "/api/v1/jobs", Some(tok), &json!({"tool": "backup"})).status,
            sub,
            "{tok} submit"
        );
    }
    let r = post(&s, "/api/v1/jobs/0123/approve", Some("usr"), &json!({}));
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "forbidden");
    assert_eq!(
        post(&s, "/api/v1/jobs/0123/approve", Some("adm"), &json!({})).status,
        404
    );
    // Cross-origin requests are refused, same-origin ones are not.
    let own = format!("http://127.0.0.1:{}", s.port);
    for (h, v) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = send(
            client()
                .get(s.url("/api/v1/tools"))
                .bearer_auth("adm")
                .header(h, v),
        );
        assert_eq!(r.status, 403, "{h}: {v}");
        assert!(r.body["error"].as_str().unwrap().contains("not allowed"));
    }
    let r = send(
        client()
            .get(s.url("/api/v1/tools"))
            .bearer_auth("adm")
            .header("Origin", own),
    );
    assert_eq!(r.status, 200);
    // Tools never see the API keys.
    let r = post(&s, "/api/v1/tools/envdump/execute", Some("adm"), &json!({}));
    assert_eq!(r.status, 200);
    let out = r.body["output"].as_str().unwrap();
    assert!(out.contains("GATHM_TOOL_NAME=envdump"));
    assert!(!out.contains("GATHM_API_KEY"), "{out}");
    assert!(!out.contains("legacy-admin"));
}

#[test]
fn serve_without_keys_serves_loopback_hosts_only() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[]);
    let req = |host: &str| {
        format!("GET /api/v1/tools HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    for host in [
        format!("127.0.0.1:{}", s.port),
        format!("localhost:{}", s.port),
        "[::1]".into(),
    ] {
        assert_eq!(raw(&s, req(&host).as_bytes()).0, 200, "{host}");
    }
    for host in ["evil.example", "evil.example:80", "10.1.2.3"] {
        let (st, text) = raw(&s, req(host).as_bytes());
        assert_eq!(st, 403, "{host}");
        assert!(text.contains("API keys are required for remote access"));
    }
}

#[test]
fn serve_refuses_malformed_keys() {
    let sb = Sandbox::new(&[]);
    for bad in ["admin", ":admin", "a:", "a:admin,b"] {
        let out = sb
            .cmd()
            .args(["serve", "--port", "0"])
            .env("GATHM_API_KEYS", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("GATHM_API_KEYS"), "{bad}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn serve_error_statuses() {
    let sb = Sandbox::new(&["ok", "fail", "backup"]);
    let pol = sb.write(
        "policies.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n    rate_limit: 0\n  tiny:\n    permissions: [\"tool:execute\", \"tool:discover\"]\n    blocked_tools: [fail]\n    rate_limit: 2\nrate_limiting:\n  enabled: true\n  window_seconds: 60\n  burst_allowance: 0\n  per_tool_limits:\n    ok: 1\n",
    );
    let s = Server::start(
        &sb,
        &[
            ("GATHM_API_KEYS", "adm:admin,t:tiny"),
            ("GATHM_POLICIES", pol.to_str().unwrap()),
        ],
    );
    let c = client();
    let tok = Some("adm");
    // 400: malformed JSON, wrong types, invalid tool name.
    let r = send(
        c.post(s.url("/api/v1/tools/ok/execute"))
            .bearer_auth("adm")
            .body("{nope"),
    );
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("malformed JSON"));
    for body in [
        json!({"args": 5}),
        json!({"args": [1]}),
        json!({"timeout": "x"}),
        json!({"timeout": 0}),
    ] {
        let r = post(&s, "/api/v1/tools/ok/execute", tok, &body);
        assert_eq!(r.status, 400, "{body}");
        assert!(r.body["error"].is_string());
    }
    assert_eq!(
        post(&s, "/api/v1/tools/-bad/execute", tok, &json!({})).status,
        400
    );
    assert_eq!(get(&s, "/api/v1/tools/-bad", tok).status, 400);
    assert_eq!(
        post(&s, "/api/v1/jobs", tok, &json!({"tool": 5})).status,
        400
    );
    assert_eq!(
        post(&s, "/api/v1/jobs", tok, &json!({"args": []})).status,
        400
    );
    assert_eq!(
        post(&s, "/api/v1/jobs", tok, &json!({"tool": "ok", "kind": "x"})).status,
        400
    );
    assert_eq!(get(&s, "/api/v1/jobs?status=bogus", tok).status, 400);
    // 404: unknown route, unknown tool, unknown job.
    let r = get(&s, "/api/v1/nope", tok);
    assert_eq!(r.status, 404);
    assert!(r.body["error"].is_string());
    let r = post(&s, "/api/v1/tools/ghost/execute", tok, &json!({}));
    assert_eq!(r.status, 404);
    assert_eq!(r.body["reason"], "not_found");
    assert_eq!(r.body["error"], "not_found");
    assert_eq!(get(&s, "/api/v1/tools/ghost", tok).status, 404);
    assert_eq!(
        post(&s, "/api/v1/jobs", tok, &json!({"tool": "ghost"})).status,
        404
    );
    assert_eq!(get(&s, "/api/v1/jobs/ffff", tok).status, 404);
    // 405 with Allow.
    let r = post(&s, "/api/v1/ping", None, &json!({}));
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"].to_str().unwrap(), "GET");
    assert_eq!(
        send(c.put(s.url("/api/v1/jobs")).bearer_auth("adm")).status,
        405
    );
    // 413: over 1 MiB, with a length and chunked. The length is refused
    // before the body is read; the request goes over a raw socket because
    // the server closes the connection after the 413, and a client still
    // writing the megabyte may see the reset before the answer.
    let mut declared = format!(
        "POST /api/v1/tools/ok/execute HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer adm\r\nContent-Length: {}\r\n\r\n",
        s.port,
        (1 << 20) + 10
    )
    .into_bytes();
    declared.extend_from_slice(&[b' '; 4096]);
    let (st, text) = raw(&s, &declared);
    assert_eq!(st, 413, "{text}");
    assert!(text.contains("Request body too large"), "{text}");
    let mut chunked = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer adm\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.port
    )
    .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 65536));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (st, text) = raw(&s, &chunked);
    assert_eq!(st, 413, "{text}");
    // 403: a denied tool, with the envelope fields.
    let r = post(&s, "/api/v1/tools/fail/execute", Some("t"), &json!({}));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["error"], "denied");
    assert_eq!(r.body["reason"], "denied");
    assert_eq!(r.body["exit_code"], 77);
    assert!(r.body["rule"].as_str().unwrap().contains("blocked_tools"));
    // 429: per-tool limit (ok: 1 per window) for an admin.
    assert_eq!(
        post(&s, "/api/v1/tools/ok/execute", tok, &json!({})).status,
        200
    );
    let r = post(&s, "/api/v1/tools/ok/execute", tok, &json!({}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.headers["x-ratelimit-limit"].to_str().unwrap(), "1");
    assert_eq!(r.headers["x-ratelimit-remaining"].to_str().unwrap(), "0");
    // 429: the principal's limit (tiny: 2 per window; the denied call above counted).
    let r1 = get(&s, "/api/v1/tools", Some("t"));
    assert_eq!(r1.status, 200);
    assert_eq!(r1.headers["x-ratelimit-limit"].to_str().unwrap(), "2");
    let r2 = get(&s, "/api/v1/tools", Some("t"));
    assert_eq!(r2.status, 429, "{}", r2.body);
    assert_eq!(r2.body["error"], "rate_limited");
    assert_eq!(r2.headers["x-ratelimit-remaining"].to_str().unwrap(), "0");
    assert!(r2.headers.contains_key("retry-after"));
    // Persisted: a second server process on another home would not share
    // it, but the window file is on disk.
    assert!(sb.home().join("ratelimit").read_dir().unwrap().count() >= 2);
}

fn strip_volatile(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for k in ["run_id", "timestamp", "duration_ms"] {
        o.remove(k);
    }
    if let Some(Value::Array(a)) = o.get_mut("attempts") {
        for at in a {
            at.as_object_mut().unwrap().remove("duration_ms");
        }
    }
    v
}

#[test]
fn serve_execute_equals_cli_json() {
    let sb = Sandbox::new(&["fail", "backup", "primary"]);
    let s = Server::start(&sb, &[]);
    for (tool, args) in [
        ("fail", vec!["3"]),
        ("backup", vec!["a b", "c"]),
        ("primary", vec!["x"]),
    ] {
        let r = post(
            &s,
            &format!("/api/v1/tools/{tool}/execute"),
            None,
            &json!({ "args": args }),
        );
        assert_eq!(r.status, 200, "a tool that ran is 200: {}", r.body);
        let mut cli: Vec<&str> = vec!["run", "--json", tool];
        cli.extend(args.iter());
        let (_, v) = sb.json(&cli);
        assert_eq!(strip_volatile(r.body.clone()), strip_volatile(v), "{tool}");
        if tool == "fail" {
            assert_eq!(r.body["status"], "error");
            assert_eq!(r.body["exit_code"], 3);
        }
    }
    // A string of arguments is split like a shell would, quotes kept together.
    let r = post(
        &s,
        "/api/v1/tools/backup/execute",
        None,
        &json!({"args": "'a b' c"}),
    );
    assert_eq!(r.body["output"], "backup answered: a b c\n");
}

#[test]
fn serve_job_lifecycle_and_ownership() {
    let sb = Sandbox::new(&["backup", "fail"]);
    let s = Server::start(&sb, &[("GATHM_API_KEYS", KEYS)]);
    let job = submit(
        &s,
        Some("usr"),
        json!({"tool": "backup", "args": ["hi"], "timeout": 10}),
    );
    assert_eq!(job["status"], "pending");
    assert!(job.get("owner").is_none() && job.get("role").is_none());
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_job(&s, &id, Some("usr"), &["completed", "failed"]);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["envelope"]["output"], "backup answered: hi\n");
    assert_eq!(done["stdout_lines"], 1);
    assert!(done["started_at"].as_f64().unwrap() >= done["created_at"].as_f64().unwrap());
    assert!(done["finished_at"].is_number());
    assert_eq!(done["timeout"], 10.0);
    let dir = sb.home().join("jobs").join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("stdout")).unwrap(),
        "backup answered: hi\n"
    );
    // The reference's fields: output (lines joined), error, completed_at.
    assert_eq!(done["output"], "backup answered: hi");
    assert_eq!(done["error"], "");
    assert_eq!(done["completed_at"], done["finished_at"]);
    assert_eq!(done["line_count"], 1);
    assert!(sb.home().join("jobs/jobs.db").exists());
    // A failing tool: failed, with its exit code.
    let f = submit(&s, Some("usr"), json!({"tool": "fail", "args": ["4"]}));
    let f = wait_job(&s, f["id"].as_str().unwrap(), Some("usr"), &["failed"]);
    assert_eq!(f["exit_code"], 4);
    assert_eq!(f["reason"], "exit_code");
    // Owners see their own; others get 404 / empty lists; admins see all.
    assert_eq!(get(&s, "/api/v1/jobs", Some("usr")).body["count"], 2);
    assert_eq!(
        get(&s, "/api/v1/jobs?status=completed", Some("usr")).body["count"],
        1
    );
    assert_eq!(get(&s, "/api/v1/jobs", Some("usr2")).body["count"], 0);
    assert_eq!(get(&s, "/api/v1/jobs", Some("adm")).body["count"], 2);
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{id}"), Some("usr2")).status,
        404
    );
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{id}/stream"), Some("usr2")).status,
        404
    );
    assert_eq!(
        delete(&s, &format!("/api/v1/jobs/{id}"), Some("usr2")).status,
        404
    );
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{id}"), Some("adm")).status,
        200
    );
    // Cancelling a finished job: 200 with detail.
    let r = delete(&s, &format!("/api/v1/jobs/{id}"), Some("usr"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["detail"], "Job already in terminal state");
}

#[test]
fn serve_queue_full_is_429() {
    let sb = Sandbox::new(&["slow"]);
    let s = Server::start(
        &sb,
        &[
            ("GATHM_MAX_CONCURRENCY", "1"),
            ("GATHM_MAX_QUEUE_DEPTH", "2"),
            ("GATHM_KILL_GRACE", "0.2"),
        ],
    );
    let first = submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    let first = first["id"].as_str().unwrap().to_string();
    wait_job(&s, &first, None, &["running"]);
    let a = submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    let b = submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    let r = post(&s, "/api/v1/jobs", None, &json!({"tool": "slow"}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // FIFO: both queued ones are still pending while the first runs.
    for j in [&a, &b] {
        assert_eq!(
            job_status(&s, j["id"].as_str().unwrap(), None)["status"],
            "pending"
        );
    }
    // Cancelling a queued job frees a slot.
    let r = delete(
        &s,
        &format!("/api/v1/jobs/{}", a["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.body["status"], "cancelled");
    submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    let r = delete(&s, &format!("/api/v1/jobs/{first}"), None);
    assert_eq!(r.body["status"], "cancelled");
}

#[test]
fn serve_cancel_kills_grandchildren() {
    let sb = Sandbox::new(&["grandchild"]);
    let s = Server::start(&sb, &[("GATHM_KILL_GRACE", "0.3")]);
    let pidfile = sb.path().join("gc.pid");
    let job = submit(
        &s,
        None,
        json!({"tool": "grandchild", "args": [pidfile.to_str().unwrap()]}),
    );
    let id = job["id"].as_str().unwrap();
    let pid = wait_pid(&pidfile);
    assert!(alive(pid));
    let r = delete(&s, &format!("/api/v1/jobs/{id}"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "cancelled", "{}", r.body);
    assert_eq!(r.body["reason"], "cancelled");
    wait_until("the grandchild to die", WAIT, || !alive(pid));
}

#[test]
fn serve_crash_recovery_loses_no_job() {
    let sb = Sandbox::new(&["slow", "backup"]);
    let env = [("GATHM_MAX_CONCURRENCY", "1")];
    let mut s = Server::start(&sb, &env);
    let running = submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    let running = running["id"].as_str().unwrap().to_string();
    wait_job(&s, &running, None, &["running"]);
    let p1 = submit(&s, None, json!({"tool": "backup", "args": ["one"]}));
    let p2 = submit(&s, None, json!({"tool": "backup", "args": ["two"]}));
    s.signal(rustix::process::Signal::KILL);
    s.wait_exit(WAIT);
    drop(s);
    let s = Server::start(&sb, &env);
    let r = job_status(&s, &running, None);
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["reason"], "interrupted");
    // The interrupted job's processes (orphaned by the crash) are killed.
    let marker = format!("GATHM_JOB_ID={running}");
    wait_until("the orphaned tool to be killed", WAIT, || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                .unwrap_or(false)
                && e.file_name()
                    .to_str()
                    .and_then(|p| p.parse::<i32>().ok())
                    .is_some_and(alive)
        })
    });
    for p in [&p1, &p2] {
        let done = wait_job(
            &s,
            p["id"].as_str().unwrap(),
            None,
            &["completed", "failed"],
        );
        assert_eq!(done["status"], "completed", "{done}");
    }
}

/// Read an SSE stream to its end: (id, data) of every event, and the done event.
pub(crate) fn read_sse(base: &str, id: &str, last_id: Option<u64>) -> (Vec<(u64, Value)>, Value) {
    let mut rb = client().get(format!("{base}/api/v1/jobs/{id}/stream"));
    if let Some(l) = last_id {
        rb = rb.header("Last-Event-ID", l.to_string());
    }
    let resp = rb.send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let reader = BufReader::new(resp);
    let mut events = Vec::new();
    let (mut cur_id, mut cur_event, mut cur_data) = (None::<u64>, None::<String>, None::<String>);
    for line in reader.lines() {
        let line = line.unwrap();
        if line.is_empty() {
            if let Some(d) = cur_data.take() {
                let v: Value = serde_json::from_str(&d).unwrap();
                if cur_event.as_deref() == Some("done") {
                    assert_eq!(v["event"], "done");
                    return (events, v);
                }
                events.push((cur_id.expect("every event has an id"), v));
            }
            cur_id = None;
            cur_event = None;
        } else if let Some(v) = line.strip_prefix("id: ") {
            cur_id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            cur_event = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            cur_data = Some(v.to_string());
        }
    }
    panic!("stream ended without a done event");
}

#[test]
fn serve_sse_replays_then_follows_without_loss() {
    let sb = Sandbox::new(&["lines"]);
    let s = Server::start(&sb, &[]);
    let job = submit(&s, None, json!({"tool": "lines", "args": ["200", "0.01"]}));
    let id = job["id"].as_str().unwrap().to_string();
    // Connect two clients while it prints.
    wait_until("some output", WAIT, || {
        job_status(&s, &id, None)["stdout_lines"]
            .as_u64()
            .unwrap_or(0)
            >= 20
    });
    let clients: Vec<_> = (0..2)
        .map(|i| {
            let base = s.base.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150 * i));
                read_sse(&base, &id, None)
            })
        })
        .collect();
    for c in clients {
        let (events, done) = c.join().unwrap();
        let lines: Vec<String> = events
            .iter()
            .map(|(_, v)| v["line"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (1..=200).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, want, "every line exactly once, in order");
        let ids: Vec<u64> = events.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
        assert!(
            events
                .iter()
                .all(|(_, v)| v["event"] == "output" && v["stream"] == "stdout")
        );
        assert_eq!(done["status"], "completed");
        assert_eq!(done["exit_code"], 0);
    }
    // Resume after line 150.
    let (events, done) = read_sse(&s.base, &id, Some(150));
    assert_eq!(events.first().unwrap().0, 151);
    assert_eq!(events.len(), 50);
    assert_eq!(done["status"], "completed");
}

#[test]
fn serve_ttl_evicts_finished_jobs_and_files() {
    let sb = Sandbox::new(&["backup"]);
    let s = Server::start(
        &sb,
        &[("GATHM_JOB_TTL", "1"), ("GATHM_JOB_SWEEP_INTERVAL", "0.2")],
    );
    let job = submit(&s, None, json!({"tool": "backup"}));
    let id = job["id"].as_str().unwrap().to_string();
    wait_job(&s, &id, None, &["completed"]);
    let dir = sb.home().join("jobs").join(&id);
    assert!(dir.exists());
    wait_until("eviction", WAIT, || {
        get(&s, &format!("/api/v1/jobs/{id}"), None).status == 404 && !dir.exists()
    });
}

pub(crate) fn read_http_request(c: &mut TcpStream) -> (String, Vec<u8>) {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&b[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < i + 4 + len {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&b[..n]);
            }
            return (head, buf[i + 4..i + 4 + len].to_vec());
        }
    }
}

#[test]
fn serve_callback_is_signed_and_retried() {
    use hmac::{KeyInit, Mac};
    let sb = Sandbox::new(&["backup"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let s = Server::start(
        &sb,
        &[
            ("GATHM_CALLBACK_SECRET", "s3cret"),
            ("GATHM_CALLBACK_BACKOFF", "0.1"),
            ("GATHM_CALLBACK_ALLOW", "127.0.0.1"),
        ],
    );
    let job = submit(
        &s,
        None,
        json!({"tool": "backup", "args": ["cb"], "callback_url": url}),
    );
    let id = job["id"].as_str().unwrap().to_string();
    // First delivery: answer 500 so it is retried.
    let (mut c, _) = listener.accept().unwrap();
    let (head1, _) = read_http_request(&mut c);
    assert!(head1.starts_with("POST /hook"));
    c.write_all(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    drop(c);
    let (mut c, _) = listener.accept().unwrap();
    let (head, body) = read_http_request(&mut c);
    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let sig = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-gathm-signature")
                .then(|| v.trim().to_string())
        })
        .expect("signature header");
    let header = |h: &str, name: &str| {
        h.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    // Every attempt carries the same delivery id.
    assert!(!header(&head, "x-gathm-delivery").is_empty());
    assert_eq!(
        header(&head, "x-gathm-delivery"),
        header(&head1, "x-gathm-delivery")
    );
    assert_eq!(header(&head, "x-gathm-delivery-attempt"), "2");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&body);
    assert_eq!(
        sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "completed");
    assert_eq!(v["envelope"]["output"], "backup answered: cb\n");
    assert!(v.get("owner").is_none());
    // Without a secret, callback URLs are refused (callbacks are always signed).
    let sb2 = Sandbox::new(&["backup"]);
    let s2 = Server::start(&sb2, &[]);
    let r = post(
        &s2,
        "/api/v1/jobs",
        None,
        &json!({"tool": "backup", "callback_url": "http://127.0.0.1:9/x"}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn serve_approval_flow() {
    let sb = Sandbox::new(&["backup"]);
    let pol = sb.write(
        "policies.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n    rate_limit: 0\n  agent:\n    permissions: [\"tool:execute\", \"tool:discover\"]\n    requires_approval: [backup]\n    rate_limit: 0\n",
    );
    let s = Server::start(
        &sb,
        &[
            ("GATHM_API_KEYS", "adm:admin,ag:agent"),
            ("GATHM_POLICIES", pol.to_str().unwrap()),
        ],
    );
    // Synchronous execution cannot be approved: 403 approval_required.
    let r = post(&s, "/api/v1/tools/backup/execute", Some("ag"), &json!({}));
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "approval_required");
    assert_eq!(r.body["reason"], "approval_required");
    // A job waits for an admin.
    let job = submit(&s, Some("ag"), json!({"tool": "backup", "args": ["ok"]}));
    assert_eq!(job["status"], "awaiting_approval");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        post(
            &s,
            &format!("/api/v1/jobs/{id}/approve"),
            Some("ag"),
            &json!({})
        )
        .status,
        403
    );
    let r = post(
        &s,
        &format!("/api/v1/jobs/{id}/approve"),
        Some("adm"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["approved"], true);
    let done = wait_job(&s, &id, Some("ag"), &["completed", "failed"]);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["envelope"]["output"], "backup answered: ok\n");
    assert_eq!(
        post(
            &s,
            &format!("/api/v1/jobs/{id}/approve"),
            Some("adm"),
            &json!({})
        )
        .status,
        409
    );
}

#[test]
fn serve_graceful_shutdown() {
    let sb = Sandbox::new(&["slow"]);
    let mut s = Server::start(
        &sb,
        &[
            ("GATHM_SHUTDOWN_GRACE", "3"),
            ("GATHM_MAX_CONCURRENCY", "2"),
            ("GATHM_KILL_GRACE", "0.2"),
        ],
    );
    let quick = submit(&s, None, json!({"tool": "slow", "args": ["1"]}));
    let long = submit(&s, None, json!({"tool": "slow", "args": ["60"]}));
    for j in [&quick, &long] {
        wait_job(&s, j["id"].as_str().unwrap(), None, &["running"]);
    }
    s.signal(rustix::process::Signal::TERM);
    wait_until("readyz 503", WAIT, || {
        get(&s, "/readyz", None).status == 503
    });
    assert_eq!(
        post(&s, "/api/v1/jobs", None, &json!({"tool": "slow"})).status,
        503
    );
    assert_eq!(get(&s, "/api/v1/ping", None).status, 200);
    assert_eq!(s.wait_exit(WAIT), Some(0));
    // The records, read from the store the server left.
    let store = gathm::state::sqlite::SqliteStore::open(&sb.home().join("jobs")).unwrap();
    let rec = |j: &Value| -> Value {
        use gathm::state::jobs::JobStore;
        store
            .get(j["id"].as_str().unwrap())
            .unwrap()
            .unwrap()
            .public()
    };
    assert_eq!(rec(&quick)["status"], "completed");
    let l = rec(&long);
    assert_eq!(l["status"], "cancelled", "{l}");
    assert_eq!(l["reason"], "shutdown");
}

#[test]
fn serve_metrics_parse_as_prometheus_text() {
    let sb = Sandbox::new(&["backup", "fail"]);
    let s = Server::start(&sb, &[]);
    post(&s, "/api/v1/tools/backup/execute", None, &json!({}));
    post(
        &s,
        "/api/v1/tools/fail/execute",
        None,
        &json!({"args": ["2"]}),
    );
    get(&s, "/nope", None);
    let r = client().get(s.url("/metrics")).send().unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().unwrap();
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "value in {line}"
        );
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "name in {line}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(v.starts_with('"'), "{line}");
            }
        }
        names.insert(name.to_string());
    }
    for n in [
        "gathm_http_requests_total",
        "gathm_http_request_duration_seconds_bucket",
        "gathm_executions_total",
        "gathm_jobs_queue_depth",
        "gathm_jobs_running",
    ] {
        assert!(names.contains(n), "{n} missing:\n{text}");
    }
    assert!(text.contains("gathm_executions_total{tool=\"fail\",outcome=\"error\"} 1"));
    assert!(text.contains("route=\"unmatched\",status=\"404\""));
}

#[test]
fn serve_principal_limit_is_persisted_across_processes() {
    let sb = Sandbox::new(&["backup"]);
    let pol = sb.write(
        "policies.yaml",
        "roles:\n  tiny:\n    permissions: [\"tool:discover\"]\n    rate_limit: 2\nrate_limiting:\n  enabled: true\n  window_seconds: 60\n  burst_allowance: 0\n",
    );
    let env = [
        ("GATHM_API_KEYS", "t:tiny"),
        ("GATHM_POLICIES", pol.to_str().unwrap()),
    ];
    let mut a = Server::start(&sb, &env);
    assert_eq!(get(&a, "/api/v1/tools", Some("t")).status, 200);
    assert_eq!(get(&a, "/api/v1/tools", Some("t")).status, 200);
    a.signal(rustix::process::Signal::TERM);
    assert_eq!(a.wait_exit(WAIT), Some(0));
    // Another server process on the same home sees the same window.
    let b = Server::start(&sb, &env);
    let r = get(&b, "/api/v1/tools", Some("t"));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.headers["x-ratelimit-limit"].to_str().unwrap(), "2");
    // The job store is exclusive: a second server on the same home refuses to start.
    let out = sb
        .cmd()
        .args(["serve", "--port", "0"])
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another gathm serve"));
    drop(b);
}

#[test]
fn serve_sse_waits_for_a_queued_job_and_caps_streams() {
    let sb = Sandbox::new(&["slow", "lines"]);
    let s = Server::start(
        &sb,
        &[("GATHM_MAX_CONCURRENCY", "1"), ("GATHM_MAX_STREAMS", "1")],
    );
    // Long enough that the queued job's stream is surely open while it
    // waits (a notified stream ends moments after the job does).
    let first = submit(&s, None, json!({"tool": "slow", "args": ["4"]}));
    wait_job(&s, first["id"].as_str().unwrap(), None, &["running"]);
    let queued = submit(&s, None, json!({"tool": "lines", "args": ["5", "0"]}));
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(job_status(&s, &id, None)["status"], "pending");
    let base = s.base.clone();
    let id2 = id.clone();
    let reader = std::thread::spawn(move || read_sse(&base, &id2, None));
    // While that stream is open, a second one is refused (GATHM_MAX_STREAMS=1).
    wait_until("the first stream to be open", WAIT, || {
        let m = get(&s, "/metrics", None).body;
        m.as_str().unwrap_or("").contains("gathm_sse_streams 1")
    });
    let r = get(&s, &format!("/api/v1/jobs/{id}/stream"), None);
    assert_eq!(r.status, 503);
    assert!(r.body["error"].is_string());
    let (events, done) = reader.join().unwrap();
    let lines: Vec<&str> = events
        .iter()
        .map(|(_, v)| v["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    assert_eq!(done["status"], "completed");
}

#[test]
fn serve_agent_parallel_and_chain() {
    let sb = Sandbox::new(&["ok", "fail", "stdin"]);
    let s = Server::start(&sb, &[("GATHM_API_KEYS", KEYS)]);
    // Structured items: results in order, one envelope each, a missing tool fails.
    let r = post(
        &s,
        "/api/v1/agent/parallel",
        Some("adm"),
        &json!({"items": [{"tool": "ok", "args": ["a b"]}, {"tool": "fail", "args": ["3"]}, {"tool": "nope"}], "jobs": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["count"], 3);
    assert_eq!(r.body["results"][0]["output"], "[\"a b\"]\n");
    assert_eq!(r.body["results"][1]["exit_code"], 3);
    assert_eq!(r.body["results"][2]["reason"], "not_found");
    assert_eq!(r.body["exit_code"], 3);
    assert_eq!(r.body["status"], "error");
    // The reference's string form.
    let r = post(
        &s,
        "/api/v1/agent/parallel",
        Some("adm"),
        &json!({"tools": "ok x, ok 'y z'"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][1]["output"], "[\"y z\"]\n");
    assert_eq!(r.body["exit_code"], 0);
    // Policy applies per item; readonly may not execute at all.
    let r = post(
        &s,
        "/api/v1/agent/parallel",
        Some("ro"),
        &json!({"tools": "ok x"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        &s,
        "/api/v1/agent/parallel",
        Some("adm"),
        &json!({"items": "nope"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Chain: stdout feeds stdin; {prev} is one argument.
    let r = post(
        &s,
        "/api/v1/agent/chain",
        Some("usr"),
        &json!({"steps": [{"tool": "ok", "args": ["hi there"]}, {"tool": "stdin"}, {"tool": "ok", "args": ["{prev}"]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["steps"][1]["output"], "[\"HI THERE\"]\n");
    assert_eq!(r.body["steps"][2]["output"], "[\"[\\\"HI THERE\\\"]\"]\n");
    assert_eq!(r.body["failed_step"], Value::Null);
    let r = post(
        &s,
        "/api/v1/agent/chain",
        Some("usr"),
        &json!({"pipeline": "fail 4 | ok"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["failed_step"], 1);
    assert_eq!(r.body["exit_code"], 4);
    assert_eq!(r.body["steps"].as_array().unwrap().len(), 1);
}

#[test]
fn serve_pipeline_job_streams_step_events() {
    let sb = Sandbox::new(&["ok", "fail"]);
    let s = Server::start(&sb, &[]);
    let job = submit(
        &s,
        None,
        json!({"pipeline": {"name": "p", "steps": [
            {"id": "a", "tool": "ok", "args": ["one"]},
            {"id": "b", "tool": "ok", "args": ["${steps.a.output}"], "needs": "a"},
            {"id": "c", "tool": "fail", "args": ["5"], "needs": ["a"]},
            {"id": "d", "tool": "ok", "needs": ["c"]}
        ]}}),
    );
    assert_eq!(job["kind"], "pipeline");
    let id = job["id"].as_str().unwrap().to_string();
    let (events, done) = read_sse(&s.base, &id, None);
    assert_eq!(done["status"], "failed");
    assert_eq!(done["exit_code"], 5);
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|(_, v)| {
            (
                v["event"].as_str().unwrap_or("").to_string(),
                v["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("step_started".into(), "a".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("step_finished".into(), "b".into())),
        "{kinds:?}"
    );
    let d_status = events
        .iter()
        .find(|(_, v)| v["event"] == "step_finished" && v["id"] == "d")
        .map(|(_, v)| v["status"].clone());
    assert_eq!(d_status, Some(json!("skipped")));
    let rec = job_status(&s, &id, None);
    let steps = rec["result"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[1]["envelope"]["output"], "[\"[\\\"one\\\"]\"]\n");
    // Invalid pipelines are refused before anything is queued.
    let r = post(
        &s,
        "/api/v1/jobs",
        None,
        &json!({"pipeline": {"steps": [{"id": "a", "tool": "ok", "needs": "b"}, {"id": "b", "tool": "ok", "needs": "a"}]}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["diagnostics"].to_string().contains("cycle"),
        "{}",
        r.body
    );
    let r = post(
        &s,
        "/api/v1/jobs",
        None,
        &json!({"pipeline": {"steps": [{"id": "a", "tool": "nosuch"}]}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn serve_reloads_edited_policies_without_a_restart() {
    let sb = Sandbox::new(&["ok"]);
    let pol = sb.write("pol.yaml", "roles:\n  admin:\n    permissions: [\"*\"]\n");
    let s = Server::start(&sb, &[("GATHM_POLICIES", pol.to_str().unwrap())]);
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        None,
        &json!({"args": ["x"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::write(
        &pol,
        "roles:\n  admin:\n    permissions: [\"*\"]\n    blocked_tools: [ok]\n",
    )
    .unwrap();
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        None,
        &json!({"args": ["x"]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["rule"], "roles.admin.blocked_tools[\"ok\"]",
        "{}",
        r.body
    );
    // A broken edit is reported as a configuration error, and fixing it recovers.
    std::fs::write(&pol, "roles: [\n").unwrap();
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        None,
        &json!({"args": ["x"]}),
    );
    assert_eq!(r.status, 500, "{}", r.body);
    std::fs::write(&pol, "roles:\n  admin:\n    permissions: [\"*\"]\n").unwrap();
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        None,
        &json!({"args": ["x"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The server keeps its log files open; when another process rotates one
/// (renames it away), later records go to the new file within a second or
/// so, and every record is a whole JSON line in one file or the other.
#[test]
fn serve_follows_log_rotation_by_another_process() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[]);
    let exec = || {
        let r = post(&s, "/api/v1/tools/ok/execute", None, &json!({"args": []}));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    exec();
    let logs = sb.home().join("logs");
    assert_eq!(crate::harness::count_lines(&logs.join("metrics.log")), 1);
    std::fs::rename(logs.join("metrics.log"), logs.join("metrics.log.1")).unwrap();
    let mut sent = 1;
    wait_until(
        "a record in the new metrics.log",
        Duration::from_secs(20),
        || {
            exec();
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
            logs.join("metrics.log").exists()
        },
    );
    let mut total = 0;
    for f in ["metrics.log", "metrics.log.1"] {
        let text = std::fs::read_to_string(logs.join(f)).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["tool"], "ok");
            total += 1;
        }
    }
    assert_eq!(total, sent, "no record lost across the rotation");
}

/// Hostile nesting in a body (a `when` expression, JSON itself) is a 400,
/// never a stack overflow that would take the whole server down.
#[test]
fn serve_refuses_deeply_nested_bodies_and_stays_up() {
    let sb = Sandbox::new(&["ok"]);
    let s = Server::start(&sb, &[]);
    let when = format!("{}true", "!".repeat(3000));
    let r = post(
        &s,
        "/api/v1/jobs",
        None,
        &json!({"pipeline": {"name": "p", "steps": [{"id": "a", "tool": "ok", "when": when}]}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.to_string().contains("nested more than"),
        "{}",
        r.body
    );
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let resp = client()
        .post(s.url("/api/v1/tools/ok/execute"))
        .header("Content-Type", "application/json")
        .body(format!("{{\"args\": {deep}}}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let ping = client().get(s.url("/api/v1/ping")).send().unwrap();
    assert_eq!(ping.status().as_u16(), 200, "the server is still up");
}

#[test]
fn serve_rate_limits_fail_closed_when_their_state_cannot_be_written() {
    let sb = Sandbox::new(&["ok"]);
    let pol = sb.write(
        "policies.yaml",
        "roles:\n  user:\n    permissions: [\"tool:discover\", \"tool:execute\"]\n    rate_limit: 50\nrate_limiting:\n  enabled: true\n  window_seconds: 60\n",
    );
    // The rate-limit directory is a file: no window can be read or written.
    std::fs::write(sb.home().join("ratelimit"), "not a directory").unwrap();
    let env = [
        ("GATHM_API_KEYS", "u:user"),
        ("GATHM_POLICIES", pol.to_str().unwrap()),
    ];
    let s = Server::start(&sb, &env);
    let r = get(&s, "/api/v1/tools", Some("u"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"], "state_unavailable", "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("refused"),
        "{}",
        r.body
    );
    let r = post(
        &s,
        "/api/v1/tools/ok/execute",
        Some("u"),
        &json!({"args": []}),
    );
    assert_eq!(r.status, 503, "never a success: {}", r.body);
    // Probes still answer.
    assert_eq!(get(&s, "/healthz", None).status, 200);
}

/// One shell-word splitter (`words.rs`): the same argument string splits the
/// same way over HTTP (`"args": "…"`) and in `gathm parallel` / `chain`.
#[test]
fn serve_args_string_splits_like_parallel_and_chain() {
    let sb = Sandbox::new(&[]);
    sb.manifest(
        "argv",
        "name: argv\nversion: \"1.0.0\"\ndescription: prints each argument\ncategory: utility\nrequires_internet: false\n",
        Some("#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n"),
    );
    let args = r#"a "b c" \$X "d\$e" 'f g' "h\"i" j\ k"#;
    let want = "[a]\n[b c]\n[$X]\n[d$e]\n[f g]\n[h\"i]\n[j k]\n";
    let (code, v) = sb.json(&["--json", "parallel", &format!("argv {args}")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v[0]["output"], want, "parallel");
    let (code, v) = sb.json(&["--json", "chain", &format!("argv {args}")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["steps"][0]["output"], want, "chain: {v}");
    let s = Server::start(&sb, &[]);
    let r = post(
        &s,
        "/api/v1/tools/argv/execute",
        None,
        &json!({ "args": args }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["output"], want, "http");
}

/// `POST /api/v1/agent/ask`: the same routing as `gathm ask`, over HTTP.
#[test]
fn serve_agent_ask_routes_like_the_cli() {
    let sb = Sandbox::new(&[]);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    for t in ["dns", "hash", "uuid", "passgen"] {
        copy_dir(&repo.join(t), &sb.tools().join(t));
    }
    let q = "compute the sha256 hash of a string";
    let (code, cli) = sb.json(&["--json", "ask", q]);
    assert_eq!(code, 0, "{cli}");
    let s = Server::start(&sb, &[]);
    let r = post(&s, "/api/v1/agent/ask", None, &json!({ "query": q }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["matched_tool"], "hash", "{}", r.body);
    assert_eq!(r.body["matched_tool"], cli["matched_tool"]);
    assert_eq!(r.body["confidence"], cli["confidence"]);
    let r = post(&s, "/api/v1/agent/ask", None, &json!({ "query": " " }));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = post(&s, "/api/v1/agent/ask", None, &json!({ "query": 5 }));
    assert_eq!(r.status, 400, "{}", r.body);
}

/// `GATHM_MONITOR_INTERVAL` inside `gathm serve`: an unhealthy dependency
/// opens the tool's breaker, and the transition is counted in /metrics.
#[test]
fn serve_runs_the_monitor_and_exposes_its_transitions() {
    let sb = Sandbox::new(&["ok"]);
    sb.manifest(
        "needsdep",
        "name: needsdep\nversion: \"1.0.0\"\ndescription: needs a program that is missing\ncategory: utility\nrequires_internet: false\ndependencies:\n  system: [gathm-no-such-program-xyz]\n",
        Some("#!/bin/sh\nexit 0\n"),
    );
    let s = Server::start(&sb, &[("GATHM_MONITOR_INTERVAL", "0.2")]);
    wait_until("the monitor to open the breaker", WAIT, || {
        let m = get(&s, "/metrics", None).body;
        m.as_str().unwrap_or("").contains(
            "gathm_monitor_transitions_total{tool=\"needsdep\",what=\"breaker\",to=\"open\"}",
        )
    });
    let m = get(&s, "/metrics", None).body;
    let m = m.as_str().unwrap();
    assert!(
        !m.contains("tool=\"ok\",what=\"breaker\",to=\"open\""),
        "{m}"
    );
    // The open breaker refuses runs of that tool for everyone.
    let r = post(&s, "/api/v1/tools/needsdep/execute", None, &json!({}));
    assert_eq!(r.body["reason"], "circuit_open", "{}", r.body);
}

/// The pid a tool wrote into `file` (the `grandchild` fixture), once it is there.
fn wait_pid(file: &std::path::Path) -> i32 {
    let mut pid = 0;
    wait_until("a pid in the file", WAIT, || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    pid
}

/// Tasks (threads) of a process.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn serve_sync_executes_are_awaited_without_a_thread_each() {
    let sb = Sandbox::new(&["grandchild", "slow"]);
    let yaml = |name: &str, extra: &str| {
        format!(
            "name: {name}\nversion: \"1.0.0\"\ndescription: a test tool\ncategory: utility\nrequires_internet: false\ncache: false\n{extra}"
        )
    };
    // Both pipes fill several times over; the exit code is kept.
    sb.manifest(
        "loud",
        &yaml("loud", ""),
        Some("#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\000' a\nhead -c 100000 /dev/zero | tr '\\000' b >&2\nexit 3\n"),
    );
    // A grandchild keeps stdout open for a minute after the tool exits.
    sb.manifest(
        "daemon",
        &yaml("daemon", ""),
        Some("#!/bin/sh\nsleep 60 &\necho up\n"),
    );
    // A grandchild writes on every 10 ms after the tool has exited.
    sb.manifest(
        "ticker",
        &yaml("ticker", "timeout: 60\n"),
        Some("#!/bin/sh\n(while :; do echo tick; sleep 0.01; done) &\necho started\n"),
    );
    // Fails once, then answers: the retry waits on the reactor too.
    sb.manifest(
        "again",
        &yaml(
            "again",
            "retry:\n  attempts: 3\n  delay: 0.05\n  backoff: 1\n",
        ),
        Some("#!/bin/sh\nn=$(cat \"$1\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$1\"\n[ $n -ge 2 ] && { echo ok; exit 0; }\necho \"try $n\" >&2; exit 1\n"),
    );
    let s = Server::start(&sb, &[("GATHM_KILL_GRACE", "0.3")]);
    let exec =
        |tool: &str, body: Value| post(&s, &format!("/api/v1/tools/{tool}/execute"), None, &body);

    let r = exec("loud", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["exit_code"], 3);
    let out = r.body["output"].as_str().unwrap();
    assert_eq!(out.len(), 300_000);
    assert!(out.bytes().all(|b| b == b'a'));
    let err = r.body["error"].as_str().unwrap();
    assert_eq!(err.len(), 100_000);
    assert!(err.bytes().all(|b| b == b'b'));

    // The run ends with the tool, not with the grandchild holding its pipe.
    let t0 = Instant::now();
    let r = exec("daemon", json!({}));
    assert_eq!(r.body["status"], "success", "{}", r.body);
    assert_eq!(r.body["output"], "up\n");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());

    // ... and when output keeps coming after the exit, too.
    let t0 = Instant::now();
    let r = exec("ticker", json!({}));
    assert_eq!(r.body["status"], "success", "{}", r.body);
    assert!(r.body["output"].as_str().unwrap().contains("started\n"));
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());

    let counter = sb.path().join("again.count");
    let r = exec("again", json!({"args": [counter.to_str().unwrap()]}));
    assert_eq!(r.body["status"], "success", "{}", r.body);
    assert_eq!(
        r.body["attempts"].as_array().unwrap().len(),
        2,
        "{}",
        r.body
    );

    // A timeout kills the whole group, a grandchild that ignores TERM too.
    let pidfile = sb.path().join("gc.pid");
    let r = exec(
        "grandchild",
        json!({"args": [pidfile.to_str().unwrap()], "timeout": 1}),
    );
    assert_eq!(r.body["reason"], "timeout", "{}", r.body);
    assert_eq!(r.body["exit_code"], 124);
    let gc = wait_pid(&pidfile);
    wait_until("the grandchild to die", WAIT, || !alive(gc));

    // Eight runs at once take no thread each (they used to hold a pool
    // thread for their whole run).
    let pid = s.child.id();
    let before = threads(pid);
    std::thread::scope(|sc| {
        let runs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| exec("slow", json!({"args": ["3"]}))))
            .collect();
        wait_until("eight slow runs", WAIT, || {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("cmdline"))
                        .is_ok_and(|c| c.contains("slow") && c.contains("\u{0}3"))
                })
                .count()
                >= 8
        });
        let during = threads(pid);
        assert!(
            during <= before + 2,
            "threads: {before} before, {during} with 8 runs"
        );
        for r in runs {
            let r = r.join().unwrap();
            assert_eq!(r.body["status"], "success", "{}", r.body);
        }
    });

    // A client that leaves does not cut its run short: the run ends, is
    // recorded, and its process is reaped.
    let body = r#"{"args":["1"]}"#;
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        c,
        "POST /api/v1/tools/slow/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_until("the run to start", WAIT, || {
        sb.log("audit.log").iter().any(|l| {
            l["action"] == "policy_decision" && l["tool"] == "slow" && l["run_id"].is_string()
        }) && std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("cmdline"))
                .is_ok_and(|c| c.contains("slow") && c.ends_with("\u{0}1\u{0}"))
        })
    });
    drop(c);
    let done = |l: &Value| l["action"] == "tool_execute" && l["tool"] == "slow";
    let before = sb.log("audit.log").iter().filter(|l| done(l)).count();
    wait_until("the left run to be recorded", WAIT, || {
        sb.log("audit.log").iter().filter(|l| done(l)).count() > before
    });
    let last = sb.log("audit.log").into_iter().rev().find(done).unwrap();
    assert_eq!(last["status"], "success", "{last}");
    assert_eq!(last["args"], json!(["1"]));
}

#[test]
fn serve_shutdown_cancels_a_sync_execute_and_kills_its_group() {
    let sb = Sandbox::new(&["grandchild"]);
    let mut s = Server::start(&sb, &[("GATHM_KILL_GRACE", "0.3")]);
    let pidfile = sb.path().join("gc.pid");
    let url = s.url("/api/v1/tools/grandchild/execute");
    let body = json!({"args": [pidfile.to_str().unwrap()]});
    let call = std::thread::spawn(move || {
        client()
            .post(url)
            .json(&body)
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
    });
    let gc = wait_pid(&pidfile);
    assert!(alive(gc));
    s.signal(rustix::process::Signal::TERM);
    assert_eq!(s.wait_exit(WAIT), Some(0));
    // The run was cancelled, not left behind: its whole group is gone.
    wait_until("the grandchild to die", WAIT, || !alive(gc));
    if let Some(v) = call.join().unwrap() {
        assert_eq!(v["exit_code"], 130, "{v}");
        assert_eq!(v["reason"], "interrupted", "{v}");
    }
}
