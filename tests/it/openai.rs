//! The OpenAI-compatible endpoint (`/v1/models`, `/v1/chat/completions`)
//! with a real client: the Python `openai` package (tests/openai/scenarios.py)
//! from the venv made by tests/mcp/setup.sh, against the shipped offline
//! chat tool `tools/echo-agent` and variants of it. Without that venv each
//! client test prints why and skips, except under `GATHM_REQUIRE_TEST_TOOLS`
//! or `CI` (`.ci/run`), where it fails. Malformed requests are sent raw.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sandbox, copy_dir, wait_until};
use crate::serve::{Server, WAIT, get, post, raw};

const KEYS: &str = "adm:admin,usr:user,ro:readonly";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    let p = repo().join("target/py-venv/bin/python");
    let ok = p.exists()
        && Command::new(&p)
            .args(["-c", "import openai"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("GATHM_REQUIRE_TEST_TOOLS").is_none(),
        "target/py-venv has no Python openai package (run tests/mcp/setup.sh)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (OpenAI client test): no openai package in target/py-venv; run `bash tests/mcp/setup.sh`"
    );
    None
}

/// A variant of echo-agent: the shipped script with extra options.
fn variant(s: &Sandbox, name: &str, extra: &str, chat: &str, timeout: u32) {
    let script = repo().join("tools/echo-agent/echo-agent");
    let argv: Vec<String> = std::iter::once(script.display().to_string())
        .chain(extra.split_whitespace().map(String::from))
        .collect();
    s.manifest(
        name,
        &format!(
            "name: {name}\nversion: \"1.0.0\"\ndescription: \"echo-agent variant\"\ncategory: utility\n\
             requires_internet: false\ncache: false\ntimeout: {timeout}\ncommand: {}\nchat:\n{chat}",
            serde_json::to_string(&argv).unwrap()
        ),
        None,
    );
}

/// The shipped echo-agent (model `echo`) and its variants: `echo-jsonl`
/// (prompt as an argument, JSON-lines output), `sleepy` (1.5 s),
/// `slow` (10 s with a 1 s timeout), `forever` (60 s).
fn sandbox() -> Sandbox {
    let s = Sandbox::new(&[]);
    copy_dir(
        &repo().join("tools/echo-agent"),
        &s.tools().join("echo-agent"),
    );
    variant(
        &s,
        "echo-jsonl",
        "--jsonl",
        "  models: [echo-jsonl]\n  input: arg\n  output: jsonl\n",
        60,
    );
    variant(&s, "sleepy", "--delay 1.5", "  models: [sleepy]\n", 60);
    variant(&s, "slow", "--delay 10", "  models: [slow]\n", 1);
    variant(&s, "forever", "--delay 60", "  models: [forever]\n", 120);
    s.write(
        "home/policies.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n    rate_limit: 0\n  user:\n    permissions: [\"tool:execute\", \"tool:discover\"]\n    blocked_tools: [\"forever\"]\n    rate_limit: 0\n  readonly:\n    permissions: [\"tool:discover\"]\n    rate_limit: 0\n",
    );
    s
}

/// Run one client scenario; its JSON line (if any) when it passed, None
/// when skipped.
fn scenario(s: &Server, key: &str, name: &str) -> Option<Value> {
    let py = python()?;
    let out = Command::new(py)
        .arg(repo().join("tests/openai/scenarios.py"))
        .args([s.base.as_str(), key, name])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("PASS"),
        "scenario {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        stdout
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null),
    )
}

fn server(s: &Sandbox, env: &[(&str, &str)]) -> Server {
    let mut all = vec![("GATHM_API_KEYS", KEYS)];
    all.extend_from_slice(env);
    Server::start(s, &all)
}

#[test]
fn openai_client_models_completions_streaming_and_errors() {
    let sb = sandbox();
    let s = server(&sb, &[]);
    for name in [
        "models",
        "complete",
        "stream",
        "jsonl",
        "max_tokens",
        "auth",
        "unknown_model",
    ] {
        if scenario(&s, "usr", name).is_none() {
            return;
        }
    }
    // Every completion was a job, visible in the jobs API, without its prompt.
    let jobs = get(&s, "/api/v1/jobs?tool=echo-agent", Some("usr")).body;
    let list = jobs["jobs"].as_array().unwrap();
    assert!(list.len() >= 6, "{jobs}");
    assert!(list.iter().all(|j| j.get("stdin").is_none()), "{jobs}");
    // The max_tokens replies stop early: their jobs may be cancelled.
    let done: Vec<&Value> = list.iter().filter(|j| j["status"] == "completed").collect();
    assert!(done.len() >= 5, "{jobs}");
    assert!(
        list.iter()
            .all(|j| j["status"] == "completed" || j["reason"] == "cancelled"),
        "{jobs}"
    );
    let id = done[0]["id"].as_str().unwrap();
    let one = get(&s, &format!("/api/v1/jobs/{id}"), Some("usr")).body;
    assert!(
        one["output"].as_str().unwrap().starts_with("Echo: "),
        "{one}"
    );
    assert!(one.get("stdin").is_none(), "{one}");
    // The prompt of `input: arg` is the last argument.
    let arg = get(&s, "/api/v1/jobs?tool=echo-jsonl", Some("usr")).body;
    assert!(
        arg["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["args"] == json!(["hello   there world"])),
        "{arg}"
    );
}

#[test]
fn openai_client_concurrency_queue_and_429() {
    let sb = sandbox();
    let s = server(
        &sb,
        &[
            ("GATHM_MAX_CONCURRENCY", "2"),
            ("GATHM_MAX_QUEUE_DEPTH", "3"),
        ],
    );
    let Some(v) = scenario(&s, "usr", "concurrent") else {
        return;
    };
    let (ok, limited) = (v["ok"].as_u64().unwrap(), v["limited"].as_u64().unwrap());
    assert_eq!(ok + limited, 10, "{v}");
    // The first three always fit in the queue; at most 2 run + 3 wait.
    assert!((3..=5).contains(&ok), "{v}");
    let jobs = get(&s, "/api/v1/jobs?tool=sleepy", Some("adm")).body;
    let list = jobs["jobs"].as_array().unwrap();
    assert_eq!(list.len() as u64, ok, "{jobs}");
    let spans: Vec<(f64, f64)> = list
        .iter()
        .map(|j| {
            assert_eq!(j["status"], "completed", "{j}");
            (
                j["started_at"].as_f64().unwrap(),
                j["finished_at"].as_f64().unwrap(),
            )
        })
        .collect();
    // Never more than GATHM_MAX_CONCURRENCY at once…
    for (a, _) in &spans {
        let running = spans.iter().filter(|(b, e)| b <= a && a < e).count();
        assert!(running <= 2, "{running} ran at once: {spans:?}");
    }
    // …so at least one waited in the queue for another to finish.
    assert!(
        spans
            .iter()
            .any(|(start, _)| spans.iter().any(|(_, end)| end <= start)),
        "{spans:?}"
    );
}

#[test]
fn openai_client_timeout_is_an_openai_error() {
    let sb = sandbox();
    let s = server(&sb, &[]);
    if scenario(&s, "usr", "timeout").is_none() {
        return;
    }
    let jobs = get(&s, "/api/v1/jobs?tool=slow", Some("usr")).body;
    let list = jobs["jobs"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{jobs}");
    assert!(
        list.iter()
            .all(|j| j["status"] == "failed" && j["reason"] == "timeout"),
        "{jobs}"
    );
}

fn post_raw(s: &Server, key: Option<&str>, ctype: &str, body: &[u8]) -> (u16, Value) {
    post_declared(s, key, ctype, body.len(), body)
}

/// A POST whose `Content-Length` is `declared`, with `body` (maybe only part
/// of it) sent after the head.
fn post_declared(
    s: &Server,
    key: Option<&str>,
    ctype: &str,
    declared: usize,
    body: &[u8],
) -> (u16, Value) {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (status, text) = raw(s, &req);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// OpenAI's error shape with this status, code and param.
#[track_caller]
fn openai_error(status: u16, body: &Value, want: u16, code: Option<&str>, param: Option<&str>) {
    assert_eq!(status, want, "{body}");
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert_eq!(e["code"], json!(code), "{body}");
    assert_eq!(e["param"], json!(param), "{body}");
}

#[test]
fn openai_malformed_requests_get_openai_errors() {
    let sb = sandbox();
    let s = server(&sb, &[]);
    let k = Some("usr");
    let json = "application/json";
    let msg =
        |c: &str| format!(r#"{{"model":"echo","messages":[{{"role":"user","content":{c}}}]}}"#);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"{bad".to_vec(), None),
        (b"".to_vec(), None),
        (b"[]".to_vec(), None),
        (b"\xff\xfe".to_vec(), None),
        (br#"{"messages":[]}"#.to_vec(), Some("model")),
        (br#"{"model":"echo"}"#.to_vec(), Some("messages")),
        (
            br#"{"model":"echo","messages":[]}"#.to_vec(),
            Some("messages"),
        ),
        (
            br#"{"model":"echo","messages":"hi"}"#.to_vec(),
            Some("messages"),
        ),
        (
            br#"{"model":"echo","messages":[null]}"#.to_vec(),
            Some("messages[0]"),
        ),
        (msg("7").into_bytes(), Some("messages[0].content")),
        (
            msg(r#"[{"type":"image_url","image_url":{"url":"x"}}]"#).into_bytes(),
            Some("messages[0].content[0].type"),
        ),
        (
            br#"{"model":"echo","stream":1,"messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some("stream"),
        ),
        (
            br#"{"model":"echo","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#
                .to_vec(),
            Some("max_tokens"),
        ),
    ];
    for (body, param) in cases {
        let (status, v) = post_raw(&s, k, json, &body);
        openai_error(status, &v, 400, None, param);
    }
    // Too large: 413, still OpenAI's shape. The declared length is refused
    // before the body is read, so only part of it is sent: the server closes
    // the connection after the 413, and a client still writing the megabyte
    // may see the reset before the answer.
    let (status, v) = post_declared(&s, k, json, (1 << 20) + 10, &[b'x'; 4096]);
    openai_error(status, &v, 413, None, None);
    // Authentication and permissions.
    let (status, v) = post_raw(&s, None, json, msg("\"x\"").as_bytes());
    openai_error(status, &v, 401, Some("invalid_api_key"), None);
    let (status, v) = post_raw(&s, Some("ro"), json, msg("\"x\"").as_bytes());
    openai_error(status, &v, 403, Some("permission_denied"), None);
    // A tool the role may not use is no model of its.
    let body = json!({"model": "forever", "messages": [{"role": "user", "content": "x"}]});
    let r = post(&s, "/v1/chat/completions", k, &body);
    openai_error(
        r.status,
        &r.body,
        404,
        Some("model_not_found"),
        Some("model"),
    );
    let models = get(&s, "/v1/models", k).body;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"echo") && !ids.contains(&"forever"),
        "{models}"
    );
    assert_eq!(models["object"], "list");
    let r = get(&s, "/v1/models", Some("adm"));
    assert!(r.body.to_string().contains("\"forever\""), "{}", r.body);
    // Unknown /v1 paths and methods.
    let r = get(&s, "/v1/nothing", k);
    openai_error(r.status, &r.body, 404, Some("not_found"), None);
    let r = get(&s, "/v1/chat/completions", k);
    openai_error(r.status, &r.body, 405, Some("method_not_allowed"), None);
    assert_eq!(r.headers["allow"], "POST");
    // The server is still well.
    assert_eq!(get(&s, "/healthz", None).status, 200);
}

#[test]
fn openai_stream_is_sse_and_a_client_that_leaves_cancels_its_job() {
    let sb = sandbox();
    let s = server(&sb, &[]);
    let body =
        json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = crate::serve::client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("usr")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let reply: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(reply, "Echo: hi\nWords: 1\nCharacters: 2\nReversed: ih");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    // A stream whose client goes away: its job is cancelled.
    let body =
        json!({"model": "forever", "stream": true, "messages": [{"role": "user", "content": "x"}]})
            .to_string();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer adm\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut job = String::new();
    let mut line = String::new();
    while rd.read_line(&mut line).unwrap() > 0 {
        if let Some(id) = line.to_ascii_lowercase().strip_prefix("x-gathm-job:") {
            job = id.trim().to_string();
        }
        if line.starts_with("data: ") {
            break; // the first chunk (role: assistant)
        }
        line.clear();
    }
    assert!(!job.is_empty(), "no X-Gathm-Job header");
    wait_until("the job to run", WAIT, || {
        get(&s, &format!("/api/v1/jobs/{job}"), Some("adm")).body["status"] == "running"
    });
    drop(rd);
    c.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    wait_until("the job to be cancelled", Duration::from_secs(20), || {
        get(&s, &format!("/api/v1/jobs/{job}"), Some("adm")).body["status"] == "cancelled"
    });

    // The same without streaming: the server notices the closed connection.
    let body =
        json!({"model": "forever", "messages": [{"role": "user", "content": "y"}]}).to_string();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        c,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer adm\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let running = || {
        get(&s, "/api/v1/jobs?tool=forever&status=running", Some("adm")).body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let mut ids = Vec::new();
    wait_until("the second job to run", WAIT, || {
        ids = running();
        ids.len() == 1
    });
    c.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    wait_until(
        "the second job to be cancelled",
        Duration::from_secs(20),
        || get(&s, &format!("/api/v1/jobs/{}", ids[0]), Some("adm")).body["status"] == "cancelled",
    );
}

#[test]
fn openai_shutdown_ends_running_and_queued_completions_with_errors() {
    let sb = sandbox();
    let mut s = server(
        &sb,
        &[
            ("GATHM_MAX_CONCURRENCY", "1"),
            ("GATHM_SHUTDOWN_GRACE", "0.5"),
        ],
    );
    let base = s.base.clone();
    let ask = move |stream: bool| {
        let base = base.clone();
        std::thread::spawn(move || {
            let body = json!({"model": "forever", "stream": stream, "messages": [{"role": "user", "content": "x"}]});
            let r = crate::serve::client()
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth("adm")
                .json(&body)
                .send()
                .unwrap();
            (r.status().as_u16(), r.text().unwrap_or_default())
        })
    };
    let streamed = ask(true);
    let jobs = |status: &str| {
        get(
            &s,
            &format!("/api/v1/jobs?tool=forever&status={status}"),
            Some("adm"),
        )
        .body["jobs"]
            .as_array()
            .unwrap()
            .len()
    };
    wait_until("the first completion to run", WAIT, || jobs("running") == 1);
    let queued = ask(false);
    wait_until("the second completion to wait", WAIT, || {
        jobs("pending") == 1
    });
    s.signal(rustix::process::Signal::TERM);
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0));
    let (status, text) = streamed.join().unwrap();
    assert_eq!(status, 200);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let err: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "service_unavailable", "{text}");
    let (status, text) = queued.join().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    openai_error(status, &v, 503, Some("service_unavailable"), None);
}
