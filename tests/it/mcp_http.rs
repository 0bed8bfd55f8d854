//! `/mcp` on `gathm serve` (streamable HTTP): the Python MCP SDK scenarios of
//! `tests/mcp/scenarios.py` against a real server on 127.0.0.1 with two roles
//! behind bearer tokens, and raw HTTP for what a client library never sends
//! (no token, a foreign Origin, another principal's session, malformed
//! requests).

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::mcp::{sandbox, scenario_env};
use crate::serve::{Server, client, get, raw, send};

const KEYS: &str = "t-admin:admin,t-user:user,t-user2:user";

fn server(s: &Sandbox, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("GATHM_API_KEYS", KEYS), ("GATHM_MCP_POLL", "0.2")];
    env.extend_from_slice(extra);
    Server::start(s, &env)
}

/// One scenario over streamable HTTP with `token`; false when skipped.
fn over_http(s: &Sandbox, srv: &Server, name: &str, token: &str) -> bool {
    let url = srv.url("/mcp");
    scenario_env(s, name, &[("MCP_URL", &url), ("MCP_TOKEN", token)])
}

#[test]
fn mcp_http_list_is_filtered_by_role() {
    let s = sandbox();
    let srv = server(&s, &[]);
    if over_http(&s, &srv, "list_role", "t-user") {
        over_http(&s, &srv, "list_admin", "t-admin");
    }
}

#[test]
fn mcp_http_call_success_is_audited_with_the_principal() {
    let s = sandbox();
    let srv = server(&s, &[]);
    if !over_http(&s, &srv, "call_ok", "t-admin") {
        return;
    }
    let audit = s.log("audit.log");
    assert!(
        audit.iter().any(|e| e["action"] == "tool_execute"
            && e["tool"] == "ok"
            && e["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("mcp:") && a.len() == 4 + 16)),
        "no audit record with actor mcp:<principal>: {audit:?}"
    );
    // Counted as requests on the /mcp route and as executions.
    let m = get(&srv, "/metrics", Some("t-admin")).body;
    let text = m.as_str().unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.starts_with("gathm_http_requests_total{") && l.contains("route=\"/mcp\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("gathm_executions_total{")
                && l.contains("tool=\"ok\"")
                && l.contains("success")),
        "{text}"
    );
}

#[test]
fn mcp_http_call_failure_is_error() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "call_fail", "t-admin");
}

#[test]
fn mcp_http_denied_tool() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "denied", "t-user");
}

#[test]
fn mcp_http_approval_required_unless_approved() {
    let s = sandbox();
    {
        let srv = server(&s, &[]);
        if !over_http(&s, &srv, "approval", "t-user") {
            return;
        }
    }
    let srv = server(&s, &[("GATHM_MCP_APPROVE_TOOLS", "prim*")]);
    over_http(&s, &srv, "approved", "t-user");
}

#[test]
fn mcp_http_approval_by_elicitation() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "elicit", "t-user");
}

#[test]
fn mcp_http_progress_notifications_carry_output_lines() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "progress", "t-admin");
}

#[test]
fn mcp_http_cancel_kills_grandchildren() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "cancel", "t-admin");
}

#[test]
fn mcp_http_calls_take_execution_slots() {
    let s = sandbox();
    let srv = server(&s, &[("GATHM_MAX_EXECUTIONS", "1")]);
    over_http(&s, &srv, "busy", "t-admin");
}

#[test]
fn mcp_http_tools_list_changed() {
    let s = sandbox();
    let srv = server(&s, &[]);
    over_http(&s, &srv, "list_changed", "t-admin");
}

#[test]
fn mcp_http_named_arguments_become_argv() {
    let s = sandbox();
    s.manifest(
        "named",
        r#"name: named
version: "1.0.0"
description: "Prints its argv as JSON"
category: utility
requires_internet: false
cache: false
input_schema:
  arguments:
    - {name: host, type: string, required: true, description: "Host name"}
    - {name: port, type: integer, description: "Port"}
  flags:
    - {flag: "-t, --timeout", description: "Seconds", has_argument: true}
    - {flag: "-v", description: "Verbose"}
"#,
        Some("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"),
    );
    let srv = server(&s, &[]);
    over_http(&s, &srv, "named_args", "t-admin");
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

/// A POST to /mcp as an MCP client sends it.
fn mcp_post(srv: &Server, token: &str, session: Option<&str>, body: &str) -> crate::serve::Resp {
    let mut rb = client()
        .post(srv.url("/mcp"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(id) = session {
        rb = rb.header("Mcp-Session-Id", id);
    }
    send(rb)
}

fn is_json_error(r: &crate::serve::Resp, status: u16) -> bool {
    r.status == status
        && r.headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
        && r.body["error"].is_string()
}

#[test]
fn mcp_http_refuses_without_a_token_and_from_a_foreign_origin() {
    let s = sandbox();
    let srv = server(&s, &[]);
    let r = send(
        client()
            .post(srv.url("/mcp"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(INIT),
    );
    assert!(is_json_error(&r, 401), "{:?} {}", r.status, r.body);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = mcp_post(&srv, "t-nobody", None, INIT);
    assert!(is_json_error(&r, 401), "{:?} {}", r.status, r.body);
    for origin in ["http://evil.example", "null"] {
        let r = send(
            client()
                .post(srv.url("/mcp"))
                .bearer_auth("t-admin")
                .header("Origin", origin)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, text/event-stream")
                .body(INIT),
        );
        assert!(
            is_json_error(&r, 403),
            "{origin}: {:?} {}",
            r.status,
            r.body
        );
    }
    // The server's own origin is fine.
    let own = srv.base.clone();
    let r = send(
        client()
            .post(srv.url("/mcp"))
            .bearer_auth("t-admin")
            .header("Origin", own)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(INIT),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains_key("mcp-session-id"));
}

#[test]
fn mcp_http_sessions_belong_to_their_principal() {
    let s = sandbox();
    let srv = server(&s, &[]);
    let r = mcp_post(&srv, "t-user", None, INIT);
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let inited = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = mcp_post(&srv, "t-user", Some(&id), inited);
    assert_eq!(r.status, 202, "{}", r.body);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = mcp_post(&srv, "t-user", Some(&id), list);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.as_str().unwrap_or("").contains("\"ok\""),
        "{}",
        r.body
    );
    // Another principal, even with the same role, cannot use it or end it.
    for token in ["t-user2", "t-admin"] {
        let r = mcp_post(&srv, token, Some(&id), list);
        assert!(is_json_error(&r, 404), "{token}: {} {}", r.status, r.body);
        let r = send(
            client()
                .delete(srv.url("/mcp"))
                .bearer_auth(token)
                .header("Mcp-Session-Id", &id),
        );
        assert!(is_json_error(&r, 404), "{token}: {} {}", r.status, r.body);
    }
    // Its owner ends it; then it is unknown.
    let r = send(
        client()
            .delete(srv.url("/mcp"))
            .bearer_auth("t-user")
            .header("Mcp-Session-Id", &id),
    );
    assert!(r.status < 300, "{} {}", r.status, r.body);
    let r = mcp_post(&srv, "t-user", Some(&id), list);
    assert!(is_json_error(&r, 404), "{} {}", r.status, r.body);
    // A principal holds at most 64 sessions; others are not affected.
    for i in 0..64 {
        let r = mcp_post(&srv, "t-user2", None, INIT);
        assert_eq!(r.status, 200, "session {i}: {}", r.body);
    }
    let r = mcp_post(&srv, "t-user2", None, INIT);
    assert!(is_json_error(&r, 429), "{} {}", r.status, r.body);
    assert_eq!(r.body["max_sessions"], 64);
    let r = mcp_post(&srv, "t-user", None, INIT);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn mcp_http_malformed_requests_get_json_errors() {
    let s = sandbox();
    let srv = server(&s, &[]);
    let post = |ct: &str, accept: &str, body: Vec<u8>| {
        send(
            client()
                .post(srv.url("/mcp"))
                .bearer_auth("t-admin")
                .header("Content-Type", ct)
                .header("Accept", accept)
                .body(body),
        )
    };
    let both = "application/json, text/event-stream";
    for (what, r, status) in [
        (
            "not JSON",
            post("application/json", both, b"{nope".to_vec()),
            400,
        ),
        (
            "a JSON string",
            post("application/json", both, b"\"x\"".to_vec()),
            400,
        ),
        (
            "no jsonrpc",
            post(
                "application/json",
                both,
                br#"{"id":1,"method":"tools/list"}"#.to_vec(),
            ),
            400,
        ),
        (
            "text/plain",
            post("text/plain", both, INIT.as_bytes().to_vec()),
            415,
        ),
        (
            "no event-stream",
            post(
                "application/json",
                "application/json",
                INIT.as_bytes().to_vec(),
            ),
            406,
        ),
        (
            "unknown session",
            {
                let mut r = client()
                    .post(srv.url("/mcp"))
                    .bearer_auth("t-admin")
                    .header("Content-Type", "application/json")
                    .header("Accept", both)
                    .header("Mcp-Session-Id", "no-such-session")
                    .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
                r = r.header("Mcp-Protocol-Version", "2025-11-25");
                send(r)
            },
            404,
        ),
    ] {
        assert!(
            r.status >= 400 && r.body["error"].is_string() && (status == 0 || r.status == status),
            "{what}: {} {}",
            r.status,
            r.body
        );
    }
    let r = send(client().put(srv.url("/mcp")).bearer_auth("t-admin"));
    assert!(is_json_error(&r, 405), "{} {}", r.status, r.body);
    // Too large: the declared length is refused before the body is read.
    // Over a raw socket with only part of the body sent: the server closes
    // the connection after the 413, and a client still writing the
    // megabyte may see the reset before the answer.
    let mut big = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t-admin\r\nContent-Type: application/json\r\nAccept: {both}\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    )
    .into_bytes();
    big.extend_from_slice(&[b' '; 4096]);
    let (status, text) = raw(&srv, &big);
    assert_eq!(status, 413, "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").map_or("", |(_, b)| b))
        .unwrap_or(Value::Null);
    assert!(body["error"].is_string(), "{text}");
    // A raw request with a broken chunked body.
    let (status, text) = raw(
        &srv,
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t-admin\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n",
    );
    assert!(status == 0 || status >= 400, "{text}");
    // Still serving.
    let r = mcp_post(&srv, "t-admin", None, INIT);
    assert_eq!(r.status, 200, "{}", r.body);
    let m: Value = get(&srv, "/api/v1/ping", None).body;
    assert_eq!(m["status"], json!("ok"));
}

/// Without keys `/mcp` is served on loopback only, and a `Host` that is not
/// loopback (DNS rebinding) is refused.
#[test]
fn mcp_http_without_keys_is_loopback_only() {
    let s = sandbox();
    let srv = Server::start(&s, &[]);
    let body = INIT;
    let req = |host: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let (status, text) = raw(&srv, req("evil.example").as_bytes());
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("\"error\""), "{text}");
    let (status, text) = raw(&srv, req(&format!("127.0.0.1:{}", srv.port)).as_bytes());
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("mcp-session-id"),
        "{text}"
    );
}

/// A stateless (2026-07-28) request in one POST (`Mcp-Name`: the tool or
/// task it names): the JSON-RPC response from the SSE answer. `tasks`: the
/// client declares the tasks extension.
fn rpc(srv: &Server, token: &str, method: &str, name: &str, params: Value, tasks: bool) -> Value {
    let caps = if tasks {
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    } else {
        json!({})
    };
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r = send(
        client()
            .post(srv.url("/mcp"))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method)
            .header("Mcp-Name", name)
            .body(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == 1)
        .unwrap_or_else(|| panic!("no response in {text}"))
}

fn stateless_call(srv: &Server, token: &str, tool: &str, args: &[&str]) -> Value {
    let params = json!({"name": tool, "arguments": {"args": args}});
    rpc(srv, token, "tools/call", tool, params, false)
}

/// A client that declares the tasks extension gets each call as a task to
/// poll (`tasks/get`), which only its principal can see or cancel;
/// `tasks/cancel` kills the process group.
#[test]
fn mcp_http_calls_become_tasks_for_clients_that_declare_them() {
    use std::time::Duration;

    use crate::harness::{alive, wait_until};

    let s = sandbox();
    let srv = server(&s, &[]);
    let call = |tool: &str, args: &[&str]| {
        let params = json!({"name": tool, "arguments": {"args": args}});
        let r = rpc(&srv, "t-user", "tools/call", tool, params, true);
        assert_eq!(r["result"]["resultType"], "task", "{r}");
        r["result"]["taskId"].as_str().unwrap().to_string()
    };
    let get =
        |token: &str, id: &str| rpc(&srv, token, "tasks/get", id, json!({"taskId": id}), true);
    let id = call("ok", &["a", "b c"]);
    let mut last = Value::Null;
    wait_until("the task to complete", Duration::from_secs(15), || {
        last = get("t-user", &id);
        last["result"]["status"] == "completed"
    });
    let result = &last["result"]["result"];
    assert_eq!(result["isError"], false, "{last}");
    assert_eq!(result["structuredContent"]["status"], "success", "{last}");
    assert_eq!(result["content"][0]["text"], "[\"a\", \"b c\"]\n", "{last}");
    // Not another principal's, even of the same role.
    let other = get("t-user2", &id);
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown task"),
        "{other}"
    );
    // Cancel kills the tool's process group, grandchildren included.
    let id = call("grandchild", &["gc-task.pid"]);
    let pidfile = s.path().join("gc-task.pid");
    let mut pid = 0;
    wait_until("the grandchild to start", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    assert!(alive(pid));
    let r = rpc(
        &srv,
        "t-user2",
        "tasks/cancel",
        &id,
        json!({"taskId": id}),
        true,
    );
    assert!(r["error"].is_object(), "another principal cancelled: {r}");
    assert!(alive(pid));
    let r = rpc(
        &srv,
        "t-user",
        "tasks/cancel",
        &id,
        json!({"taskId": id}),
        true,
    );
    assert!(r["error"].is_null(), "{r}");
    wait_until("the task to be cancelled", Duration::from_secs(15), || {
        get("t-user", &id)["result"]["status"] == "cancelled"
    });
    wait_until("the grandchild to die", Duration::from_secs(15), || {
        !alive(pid)
    });
}

/// Each call counts in the principal's window (as execute); another
/// principal of the same role has its own; the refusal is a tool error.
#[test]
fn mcp_http_calls_count_in_the_principals_window() {
    let s = Sandbox::new(&["ok"]);
    s.write(
        "home/policies.yaml",
        "roles:\n  user:\n    permissions: [\"tool:execute\", \"tool:discover\"]\n    rate_limit: 2\nrate_limiting:\n  window_seconds: 3600\n  burst_allowance: 0\n",
    );
    let srv = server(&s, &[]);
    for i in 0..2 {
        let r = stateless_call(&srv, "t-user", "ok", &["x"]);
        assert_eq!(r["result"]["isError"], false, "call {i}: {r}");
    }
    let r = stateless_call(&srv, "t-user", "ok", &["x"]);
    assert_eq!(r["result"]["isError"], true, "{r}");
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("429") && text.contains("rate_limited"),
        "{text}"
    );
    let r = stateless_call(&srv, "t-user2", "ok", &["x"]);
    assert_eq!(r["result"]["isError"], false, "{r}");
    // The stateless path carries the caller too: audited with its principal.
    assert!(
        s.log("audit.log")
            .iter()
            .any(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("mcp:"))),
        "no mcp:<principal> actor"
    );
}

/// Ending a session (`DELETE /mcp`) while a call runs kills the tool's
/// process group, grandchildren included.
#[test]
fn mcp_http_ended_session_kills_running_tools() {
    use std::io::Write;
    use std::time::Duration;

    use crate::harness::{alive, wait_until};

    let s = sandbox();
    let srv = server(&s, &[]);
    let r = mcp_post(&srv, "t-admin", None, INIT);
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let r = mcp_post(
        &srv,
        "t-admin",
        Some(&id),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // The call's answer is a stream that stays open while the tool runs:
    // send it on a raw connection and leave it.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"grandchild","arguments":{"args":["gc-http.pid"]}}}"#;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer t-admin\r\nMcp-Session-Id: {id}\r\nMcp-Protocol-Version: 2025-11-25\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{call}",
        srv.port,
        call.len()
    )
    .unwrap();
    let pidfile = s.path().join("gc-http.pid");
    let mut pid = 0;
    wait_until("the grandchild to start", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    assert!(alive(pid));
    let r = send(
        client()
            .delete(srv.url("/mcp"))
            .bearer_auth("t-admin")
            .header("Mcp-Session-Id", &id),
    );
    assert!(r.status < 300, "{} {}", r.status, r.body);
    wait_until("the grandchild to die", Duration::from_secs(15), || {
        !alive(pid)
    });
    drop(conn);
}

/// A task past `GATHM_MCP_TASK_TTL` fails and its run is killed.
#[test]
fn mcp_http_expired_task_kills_its_run() {
    use std::time::Duration;

    use crate::harness::{alive, wait_until};

    let s = sandbox();
    let srv = server(&s, &[("GATHM_MCP_TASK_TTL", "1")]);
    let params = json!({"name": "grandchild", "arguments": {"args": ["gc-ttl.pid"]}});
    let r = rpc(&srv, "t-admin", "tools/call", "grandchild", params, true);
    let id = r["result"]["taskId"].as_str().unwrap().to_string();
    let pidfile = s.path().join("gc-ttl.pid");
    let mut pid = 0;
    wait_until("the grandchild to start", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    // The manager notices the expiry when the task is looked at.
    wait_until("the task to expire", Duration::from_secs(15), || {
        let r = rpc(
            &srv,
            "t-admin",
            "tasks/get",
            &id,
            json!({"taskId": id}),
            true,
        );
        r["result"]["status"] == "failed"
            || r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown task"))
    });
    wait_until("the grandchild to die", Duration::from_secs(15), || {
        !alive(pid)
    });
}

/// An initialized session of `token`; its id.
fn session(srv: &Server, token: &str) -> String {
    let r = mcp_post(srv, token, None, INIT);
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let inited = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(mcp_post(srv, token, Some(&id), inited).status, 202);
    id
}

/// Open a session's standalone SSE stream (GET /mcp); the response is held
/// open by the caller.
fn open_stream(srv: &Server, token: &str, id: &str) -> reqwest::blocking::Response {
    client()
        .get(srv.url("/mcp"))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", id)
        .send()
        .unwrap()
}

#[test]
fn mcp_http_streams_take_stream_slots() {
    let s = sandbox();
    let srv = server(
        &s,
        &[
            ("GATHM_MAX_STREAMS_PER_CLIENT", "2"),
            ("GATHM_MAX_STREAMS", "3"),
        ],
    );
    let (a, b, c) = (
        session(&srv, "t-user"),
        session(&srv, "t-user"),
        session(&srv, "t-user"),
    );
    let s1 = open_stream(&srv, "t-user", &a);
    assert_eq!(s1.status(), 200);
    assert!(
        s1.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let s2 = open_stream(&srv, "t-user", &b);
    assert_eq!(s2.status(), 200);
    // The principal's share is taken: its third stream is refused, as a
    // job stream of the same principal would be (the counters are shared).
    let r = open_stream(&srv, "t-user", &c);
    assert_eq!(r.status(), 429);
    let body: Value = r.json().unwrap();
    assert_eq!(body["max_streams_per_client"], 2);
    let job = crate::serve::submit(&srv, Some("t-user"), json!({"tool": "ok"}));
    let id = job["id"].as_str().unwrap();
    let r = client()
        .get(srv.url(&format!("/api/v1/jobs/{id}/stream")))
        .bearer_auth("t-user")
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    // Another principal takes the last slot of the total, then the total
    // is full for everyone.
    let d = session(&srv, "t-user2");
    let s3 = open_stream(&srv, "t-user2", &d);
    assert_eq!(s3.status(), 200);
    let e = session(&srv, "t-user2");
    assert_eq!(open_stream(&srv, "t-user2", &e).status(), 503);
    // A closed stream gives its slot back.
    drop(s1);
    crate::harness::wait_until(
        "the closed stream's slot to be free",
        std::time::Duration::from_secs(10),
        || open_stream(&srv, "t-user", &c).status() == 200,
    );
    drop((s2, s3));
}
