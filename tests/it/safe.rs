//! Issue 14, "safe for cron and CI": the breaker counts outages, the cache is
//! opt-in and visible, the output limit fails the run, fallback skips are
//! reported, reference shapes.

use crate::harness::*;

const HEAD: &str = "version: \"1.0.0\"\ndescription: an issue 14 tool\ncategory: utility\n";

/// A tool that appends to $COUNTER_FILE and exits with its first argument.
fn exiting(s: &Sandbox, name: &str, extra: &str) {
    s.manifest(
        name,
        &format!("name: {name}\n{HEAD}{extra}"),
        Some("#!/bin/sh\n[ -n \"$COUNTER_FILE\" ] && echo x >> \"$COUNTER_FILE\"\necho \"answer $1\"\nexit \"${1:-0}\"\n"),
    );
}

#[test]
fn answer_exit_codes_and_breaker_false_never_open_the_circuit() {
    let s = Sandbox::new(&["ok"]);
    exiting(
        &s,
        "ans",
        "breaker: {failure_threshold: 1, ignore_exit_codes: [3]}\nretry: {attempts: 3, delay: 0}\nfallback_tool: ok\n",
    );
    let c = s.path().join("ans.count");
    for _ in 0..4 {
        let o = s
            .cmd()
            .args(["run", "ans", "3"])
            .env("COUNTER_FILE", &c)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(!stderr(&o).contains("falling back"), "{}", stderr(&o));
    }
    assert_eq!(
        count_lines(&c),
        4,
        "an answer is neither retried nor refused"
    );
    let (code, v) = s.json(&["--json", "ans", "3"]);
    assert_eq!(code, 3);
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v.get("served_by").is_none(),
        "an answer does not fall back: {v}"
    );
    let (_, st) = s.json(&["breaker", "status", "--json", "ans"]);
    assert_eq!(st["state"], "closed");
    // Another code is an outage: retried, then the circuit opens (threshold 1).
    let (code, v) = s.json(&["--json", "ans", "1"]);
    assert_eq!(code, 0, "fell back to ok: {v}");
    assert_eq!(v["served_by"], "ok");
    let (_, st) = s.json(&["breaker", "status", "--json", "ans"]);
    assert_eq!(st["state"], "open");

    // breaker: false: never gated, nothing recorded.
    exiting(&s, "nob", "breaker: false\n");
    for _ in 0..5 {
        assert_eq!(s.run(&["run", "nob", "1"]).status.code(), Some(1));
    }
    assert!(!s.home().join("health/cb_nob.json").exists());
    // Validation: a bad code is an error.
    exiting(&s, "badans", "breaker: {ignore_exit_codes: [0]}\n");
    let o = s.run(&["validate", "badans"]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).contains("ignore_exit_codes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn caching_is_opt_in_keyed_on_the_executable_and_visible() {
    let s = Sandbox::new(&[]);
    let c = s.path().join("count");
    let run = |args: &[&str]| s.cmd().args(args).env("COUNTER_FILE", &c).output().unwrap();
    // No cache block: a side-effecting tool runs every time.
    exiting(&s, "side", "");
    run(&["run", "side", "0"]);
    run(&["run", "side", "0"]);
    assert_eq!(count_lines(&c), 2);
    // GATHM_CACHE_DEFAULT_TTL set explicitly: cache everything (reference).
    for _ in 0..2 {
        s.cmd()
            .args(["run", "side", "0"])
            .env("COUNTER_FILE", &c)
            .env("GATHM_CACHE_DEFAULT_TTL", "300")
            .output()
            .unwrap();
    }
    assert_eq!(count_lines(&c), 3);
    // `cache: true`: the replay says so on stderr, except under --quiet.
    exiting(&s, "look", "cache: true\n");
    assert!(run(&["run", "look", "0"]).status.success());
    let o = run(&["run", "look", "0"]);
    assert_eq!(stdout(&o), "answer 0\n");
    let e = stderr(&o);
    assert!(
        e.starts_with("gathm: cached result from ")
            && e.contains(" s ago (--refresh to run again)"),
        "{e}"
    );
    let o = run(&["--quiet", "run", "look", "0"]);
    assert_eq!(stderr(&o), "");
    assert_eq!(count_lines(&c), 4);
    // Editing the script invalidates.
    let script = s.tools().join("look/look");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&script, text).unwrap();
    let o = run(&["run", "look", "0"]);
    assert!(!stderr(&o).contains("cached result"), "{}", stderr(&o));
    assert_eq!(count_lines(&c), 5);
    // `cache: {ttl: N}` works too.
    exiting(&s, "ttl", "cache: {ttl: 60}\n");
    run(&["run", "ttl", "0"]);
    let (_, v) = s.json(&["--json", "ttl", "0"]);
    assert_eq!(v["cached"], true);
}

#[test]
fn output_over_the_limit_fails_and_is_never_cached() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "big",
        &format!("name: big\n{HEAD}cache: true\n"),
        Some("#!/bin/sh\necho x >> \"$COUNTER_FILE\"\nhead -c 2000000 /dev/zero | tr '\\0' 'a'\n"),
    );
    let c = s.path().join("count");
    let run = |json: bool| {
        let mut cmd = s.cmd();
        if json {
            cmd.arg("--json");
        }
        cmd.args(["run", "big"])
            .env("COUNTER_FILE", &c)
            .env("GATHM_MAX_OUTPUT_MB", "1")
            .output()
            .unwrap()
    };
    let o = run(false);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(o.stdout.len(), 2_000_000, "text mode still streams it all");
    assert!(stderr(&o).contains("capture limit"), "{}", stderr(&o));
    let o = run(true);
    assert_eq!(o.status.code(), Some(125));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["reason"], "output_limit");
    assert_eq!(v["cached"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("GATHM_MAX_OUTPUT_MB")
    );
    assert_eq!(count_lines(&c), 2, "never cached");
}

#[test]
fn fallback_skips_are_reported_never_announced() {
    let s = Sandbox::new(&[]);
    exiting(&s, "cyca", "fallback_tool: cycb\n");
    exiting(&s, "cycb", "fallback_tool: cyca\n");
    let o = s.run(&["run", "cyca", "1"]);
    let e = stderr(&o);
    assert!(e.contains("falling back to cycb"), "{e}");
    assert!(!e.contains("falling back to cyca"), "{e}");
    assert!(e.contains("skipped: cyca already tried (cycle)"), "{e}");
    let (_, v) = s.json(&["--json", "cyca", "1"]);
    let skipped: Vec<&serde_json::Value> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["tool"], "cyca");
    assert_eq!(skipped[0]["note"], "skipped: cyca already tried (cycle)");

    exiting(&s, "d0", "fallback_tool: d1\n");
    exiting(&s, "d1", "fallback_tool: d2\n");
    exiting(&s, "d2", "");
    let o = s
        .cmd()
        .args(["--json", "run", "d0", "1"])
        .env("GATHM_MAX_FALLBACK_DEPTH", "1")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tools: Vec<(&str, &str)> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["tool"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tools,
        [("d0", "failed"), ("d1", "failed"), ("d2", "skipped")],
        "{v}"
    );
    assert_eq!(v["attempts"][2]["note"], "skipped: depth limit 1 reached");
    let o = s
        .cmd()
        .args(["run", "d0", "1"])
        .env("GATHM_MAX_FALLBACK_DEPTH", "1")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(
        e.contains("fallback d2 skipped: depth limit 1 reached"),
        "{e}"
    );
    assert!(!e.contains("falling back to d2"), "{e}");
}

#[test]
fn a_blocked_dotdot_says_path_traversal() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["run", "ok", "../etc/passwd"]);
    assert_eq!(o.status.code(), Some(77));
    assert!(stderr(&o).contains("path traversal"), "{}", stderr(&o));
}

#[test]
fn list_json_is_the_reference_array_and_category_keeps_its_form() {
    let s = Sandbox::new(&["ok"]);
    s.manifest(
        "multi",
        "name: multi\nversion: \"1.0.0\"\ndescription: two categories\ncategory: [utility, data]\n",
        Some("#!/bin/sh\n"),
    );
    let (code, v) = s.json(&["list", "--json"]);
    assert_eq!(code, 0);
    let tools = v.as_array().expect("a JSON array");
    assert_eq!(tools.len(), 2);
    let multi = &tools[0];
    let ok = &tools[1];
    assert_eq!(ok["name"], "ok");
    assert_eq!(ok["category"], "utility", "a string stays a string");
    assert_eq!(ok["version"], "1.0.0");
    assert!(ok["description"].is_string());
    assert_eq!(multi["category"], serde_json::json!(["utility", "data"]));
    let (_, show) = s.json(&["show", "--json", "ok"]);
    assert_eq!(show["category"], ok["category"]);
}

/// Ctrl-C at the approval prompt: exit 130 at once, without Enter. Needs a
/// terminal, so the binary runs under a pseudo-terminal made by python3.
#[test]
fn ctrl_c_at_the_approval_prompt_exits_130() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("import pty")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipped: python3 with pty is not available");
        return;
    }
    let s = Sandbox::new(&["ok"]);
    s.write(
        "home/policies.yaml",
        "roles:\n  user:\n    permissions: [\"tool:execute\"]\n    requires_approval: [ok]\n",
    );
    let script = r#"
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "--role", "user", "run", "ok", "x"])
buf = b""
deadline = time.time() + 20
while b"[y/N]" not in buf and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            buf += os.read(fd, 1024)
        except OSError:
            break
t0 = time.time()
os.write(fd, b"\x03")
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), round(time.time() - t0, 2), flush=True)
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(bin())
        .env("GATHM_HOME", s.home())
        .env("GATHM_TOOLS_PATH", s.tools())
        .env_remove("GATHM_POLICIES")
        .current_dir(s.path())
        .output()
        .unwrap();
    let out = stdout(&o);
    let mut parts = out.split_whitespace();
    let code = parts.next().unwrap_or("?");
    let secs: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(99.0);
    assert_eq!(code, "130", "{out} {}", stderr(&o));
    assert!(secs < 3.0, "at once, not at Enter: {secs} s");
}

#[test]
fn nested_typos_are_located_and_strict_refuses_them() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "typo",
        &format!("name: typo\n{HEAD}breaker:\n  failure_treshold: 1\n"),
        Some("#!/bin/sh\necho hi\n"),
    );
    let o = s.run(&["validate", "typo"]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        out.contains("typo/tool.yaml:6:3: warning: unknown key `breaker.failure_treshold`; did you mean `failure_threshold`?"),
        "{out}"
    );
    assert_eq!(
        s.run(&["validate", "--strict", "typo"]).status.code(),
        Some(65)
    );
    // A warning does not stop a run.
    assert_eq!(s.run(&["run", "typo"]).status.code(), Some(0));
}

#[test]
fn run_refuses_what_validate_rejects_and_values_are_echoed_as_written() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "badver",
        "name: badver\nversion: 1.0\ndescription: an issue 14 tool\ncategory: utility\n",
        Some("#!/bin/sh\necho ran\n"),
    );
    let o = s.run(&["validate", "badver"]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        out.contains("version \"1.0\" must look like x.y.z"),
        "{out}"
    );
    let o = s.run(&["run", "badver"]);
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(stdout(&o), "", "not run");
    assert!(stderr(&o).contains("invalid manifest"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("gathm validate badver"),
        "{}",
        stderr(&o)
    );
    // Every type error, each at its own place, with its key path.
    s.manifest(
        "types",
        &format!("name: types\n{HEAD}timeout: \"ten\"\nmax_concurrency: lots\n"),
        Some("#!/bin/sh\n"),
    );
    let o = s.run(&["validate", "types"]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        out.contains("types/tool.yaml:5:10: error: timeout: expected a number, found \"ten\""),
        "{out}"
    );
    assert!(
        out.contains(
            "types/tool.yaml:6:18: error: max_concurrency: expected a whole number, found \"lots\""
        ),
        "{out}"
    );
}

#[test]
fn a_misspelt_policy_is_always_an_error() {
    let s = Sandbox::new(&["ok"]);
    let pol = s.write(
        "pol.yaml",
        "roles:\n  user:\n    permissions: [\"tool:execute\"]\n    requires_aproval: [ok]\n    blocked_tool: [ok]\n",
    );
    for args in [
        &["--role", "user", "run", "ok"][..],
        &["--role", "user", "list"][..],
        &["validate"][..],
    ] {
        let o = s
            .cmd()
            .env("GATHM_POLICIES", &pol)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", stderr(&o));
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            out.contains("pol.yaml:4:5: error: unknown key `roles.user.requires_aproval`; did you mean `requires_approval`?"),
            "{args:?}: {out}"
        );
    }
    let o = s
        .cmd()
        .env("GATHM_POLICIES", &pol)
        .arg("validate")
        .output()
        .unwrap();
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        out.contains("pol.yaml:5:5: error: unknown key `roles.user.blocked_tool`"),
        "{out}"
    );
    // Not UTF-8: an error with file:line everywhere.
    let bad = s.path().join("bad.yaml");
    std::fs::write(&bad, b"roles:\n  user:\n    description: \"caf\xe9\"\n").unwrap();
    for args in [
        &["list"][..],
        &["run", "ok"][..],
        &["policy", "show"][..],
        &["validate"][..],
    ] {
        let o = s
            .cmd()
            .env("GATHM_POLICIES", &bad)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(65), "{args:?}");
        assert!(
            stderr(&o).contains("bad.yaml:3:"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("not UTF-8"), "{args:?}: {}", stderr(&o));
    }
}
