//! Every route's real responses checked against `GET /api/openapi.json`
//! (statuses, content types, JSON bodies against the schemas), through
//! `tests/it/openapi_check.py` (Python's `jsonschema`, Draft 2020-12).

use serde_json::{Value, json};

use crate::harness::{Sandbox, wait_until};
use crate::serve::{Server, WAIT, client, job_status};

struct Recorder<'a> {
    s: &'a Server,
    seen: Vec<Value>,
}

impl Recorder<'_> {
    /// Send and record; returns the status and the body (JSON when it is).
    fn call(
        &mut self,
        method: &str,
        tpl: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let c = client();
        let url = self.s.url(path);
        let mut rb = match method {
            "get" => c.get(url),
            "post" => c.post(url),
            "delete" => c.delete(url),
            _ => unreachable!(),
        };
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = if ctype.starts_with("text/event-stream") {
            Value::Null
        } else {
            let text = r.text().unwrap();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        self.seen.push(json!({
            "path": tpl, "method": method, "status": status,
            "content_type": ctype, "body": body,
        }));
        (status, body)
    }
}

#[test]
fn serve_every_route_matches_the_openapi_document() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        assert!(
            std::env::var_os("GATHM_REQUIRE_TEST_TOOLS").is_none(),
            "python3 with jsonschema is required"
        );
        eprintln!("python3 jsonschema missing: skipping the OpenAPI check");
        return;
    }
    let sb = Sandbox::new(&["ok", "fail", "slow"]);
    crate::harness::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/echo-agent"),
        &sb.tools().join("echo-agent"),
    );
    sb.manifest(
        "art",
        "name: art\nversion: \"1.0.0\"\ndescription: \"Leaves artifacts\"\ncategory: utility\nrequires_internet: false\nworkspace: isolated\n",
        Some("#!/bin/sh\nprintf 'x' > \"$GATHM_ARTIFACTS/a.bin\"\necho '{\"k\": 1}' > \"$GATHM_ARTIFACTS/b.json\"\n"),
    );
    let s = Server::start(&sb, &[("GATHM_API_KEYS", "adm:admin,usr:user")]);
    let mut r = Recorder {
        s: &s,
        seen: Vec::new(),
    };
    let a = Some("adm");
    r.call("get", "/api/v1/ping", "/api/v1/ping", None, None);
    r.call("post", "/api/v1/ping", "/api/v1/ping", None, None);
    r.call("get", "/healthz", "/healthz", None, None);
    r.call("get", "/readyz", "/readyz", None, None);
    r.call("get", "/metrics", "/metrics", a, None);
    let (_, spec) = r.call("get", "/api/openapi.json", "/api/openapi.json", a, None);
    r.call("get", "/api/v1/tools", "/api/v1/tools", a, None);
    r.call("get", "/api/v1/tools", "/api/v1/tools", None, None);
    r.call("get", "/api/v1/tools/{name}", "/api/v1/tools/ok", a, None);
    r.call("get", "/api/v1/tools/{name}", "/api/v1/tools/-bad", a, None);
    r.call(
        "get",
        "/api/v1/tools/{name}",
        "/api/v1/tools/ghost",
        a,
        None,
    );
    let ex = "/api/v1/tools/{name}/execute";
    r.call(
        "post",
        ex,
        "/api/v1/tools/ok/execute",
        a,
        Some(json!({"args": ["x"]})),
    );
    r.call(
        "post",
        ex,
        "/api/v1/tools/fail/execute",
        a,
        Some(json!({"args": "3"})),
    );
    r.call(
        "post",
        ex,
        "/api/v1/tools/ghost/execute",
        a,
        Some(json!({})),
    );
    r.call(
        "post",
        ex,
        "/api/v1/tools/ok/execute",
        a,
        Some(json!({"args": 5})),
    );
    r.call("get", "/api/v1/health", "/api/v1/health", a, None);
    r.call("get", "/api/v1/health/{tool}", "/api/v1/health/ok", a, None);
    r.call(
        "get",
        "/api/v1/health/{tool}",
        "/api/v1/health/ghost",
        a,
        None,
    );
    r.call(
        "get",
        "/api/v1/agent/status",
        "/api/v1/agent/status",
        a,
        None,
    );
    let par = "/api/v1/agent/parallel";
    r.call(
        "post",
        par,
        par,
        a,
        Some(json!({"items": [{"tool": "ok"}, {"tool": "fail", "args": ["2"]}]})),
    );
    r.call("post", par, par, a, Some(json!({"tools": "ok a, ok b"})));
    r.call("post", par, par, a, Some(json!({})));
    let ch = "/api/v1/agent/chain";
    r.call(
        "post",
        ch,
        ch,
        a,
        Some(json!({"steps": [{"tool": "ok", "args": ["x"]}, {"tool": "ok"}]})),
    );
    r.call(
        "post",
        ch,
        ch,
        a,
        Some(json!({"pipeline": "ok a | fail 2"})),
    );
    r.call("post", ch, ch, a, Some(json!({})));
    let ask = "/api/v1/agent/ask";
    let (_, v) = r.call(
        "post",
        ask,
        ask,
        a,
        Some(json!({"query": "a tool that is ok"})),
    );
    assert_eq!(v["query"], "a tool that is ok", "{v}");
    r.call("post", ask, ask, a, Some(json!({"query": "   "})));
    r.call("post", ask, ask, a, Some(json!({"q": 1})));
    let jobs = "/api/v1/jobs";
    let (_, tool_job) = r.call(
        "post",
        jobs,
        jobs,
        a,
        Some(json!({"tool": "ok", "args": ["j"]})),
    );
    let (_, pipe_job) = r.call(
        "post",
        jobs,
        jobs,
        a,
        Some(json!({"pipeline": {"name": "p", "steps": [
            {"id": "a", "tool": "ok", "args": ["one"]},
            {"id": "b", "tool": "fail", "args": ["4"], "needs": ["a"]}
        ]}})),
    );
    r.call(
        "post",
        jobs,
        jobs,
        a,
        Some(json!({"kind": "pipeline", "pipeline": {"name": "p", "steps": []}})),
    );
    r.call("post", jobs, jobs, a, Some(json!({"tool": "ghost"})));
    r.call(
        "post",
        jobs,
        jobs,
        a,
        Some(json!({"tool": "ok", "kind": "x"})),
    );
    let (_, slow_job) = r.call(
        "post",
        jobs,
        jobs,
        Some("usr"),
        Some(json!({"tool": "slow", "args": ["30"]})),
    );
    let ids: Vec<String> = [&tool_job, &pipe_job]
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        wait_until("the job to end", WAIT, || {
            let st = job_status(&s, id, a)["status"].clone();
            st == "completed" || st == "failed"
        });
    }
    let slow = slow_job["id"].as_str().unwrap().to_string();
    wait_until("the slow job to run", WAIT, || {
        job_status(&s, &slow, a)["status"] == "running"
    });
    r.call("get", jobs, jobs, a, None);
    r.call(
        "get",
        jobs,
        "/api/v1/jobs?status=completed",
        Some("usr"),
        None,
    );
    r.call("get", jobs, "/api/v1/jobs?status=bogus", a, None);
    let one = "/api/v1/jobs/{id}";
    for id in ids.iter().chain([&slow]) {
        r.call("get", one, &format!("/api/v1/jobs/{id}"), a, None);
        r.call(
            "get",
            "/api/v1/jobs/{id}/stream",
            &format!("/api/v1/jobs/{id}/stream"),
            a,
            None,
        );
        r.call(
            "post",
            "/api/v1/jobs/{id}/approve",
            &format!("/api/v1/jobs/{id}/approve"),
            a,
            None,
        );
    }
    r.call("get", one, "/api/v1/jobs/ffff", a, None);
    // Artifacts: a job of an isolated tool that leaves two files.
    let (_, art) = r.call("post", jobs, jobs, a, Some(json!({"tool": "art"})));
    let art = art["id"].as_str().unwrap().to_string();
    wait_until("the artifacts job to end", WAIT, || {
        job_status(&s, &art, a)["status"] == "completed"
    });
    let list = "/api/v1/jobs/{id}/artifacts";
    let (_, listed) = r.call(
        "get",
        list,
        &format!("/api/v1/jobs/{art}/artifacts"),
        a,
        None,
    );
    assert_eq!(listed["count"], 2, "{listed}");
    r.call("get", list, "/api/v1/jobs/ffff/artifacts", a, None);
    let item = "/api/v1/jobs/{id}/artifacts/{name}";
    for name in ["a.bin", "b.json", "%2e%2e/x", "missing"] {
        r.call(
            "get",
            item,
            &format!("/api/v1/jobs/{art}/artifacts/{name}"),
            a,
            None,
        );
    }
    r.call("delete", one, &format!("/api/v1/jobs/{}", ids[0]), a, None);
    r.call(
        "delete",
        one,
        &format!("/api/v1/jobs/{slow}"),
        Some("usr"),
        None,
    );
    r.call(
        "post",
        "/api/v1/jobs/{id}/approve",
        &format!("/api/v1/jobs/{slow}/approve"),
        Some("usr"),
        None,
    );
    // The OpenAI-compatible routes (errors in OpenAI's shape).
    r.call("get", "/v1/models", "/v1/models", a, None);
    r.call("get", "/v1/models", "/v1/models", None, None);
    let cc = "/v1/chat/completions";
    let hi = json!([{"role": "user", "content": "hi"}]);
    let (status, v) = r.call(
        "post",
        cc,
        cc,
        a,
        Some(json!({"model": "echo", "messages": hi})),
    );
    assert_eq!(status, 200, "{v}");
    r.call(
        "post",
        cc,
        cc,
        a,
        Some(json!({"model": "echo", "messages": hi, "stream": true})),
    );
    r.call(
        "post",
        cc,
        cc,
        a,
        Some(json!({"model": "nope", "messages": hi})),
    );
    r.call("post", cc, cc, a, Some(json!({"model": "echo"})));
    r.call(
        "post",
        cc,
        cc,
        None,
        Some(json!({"model": "echo", "messages": hi})),
    );
    let file = sb.path().join("openapi-check.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({"spec": spec, "responses": r.seen})).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/openapi_check.py"
        ))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "responses that disagree with the OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
