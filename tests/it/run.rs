//! `gathm run`: argv exactness, envelope, streams, exit codes, timeouts.

use crate::harness::*;

#[test]
fn argv_is_passed_exactly() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["run", "ok", "a b", "c", "--json", "it's \"q\"", ""]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, ["a b", "c", "--json", "it's \"q\"", ""]);
}

#[test]
fn envelope_has_every_field_and_separate_streams() {
    let s = Sandbox::new(&["fail"]);
    let (code, v) = s.json(&["run", "--json", "fail", "3"]);
    assert_eq!(code, 3);
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["status"], "error");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["output"], "fail: stdout before exiting 3\n");
    assert_eq!(v["error"], "fail: stderr\n");
    assert_eq!(v["cached"], false);
    let run_id = v["run_id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(run_id).unwrap().get_version_num(),
        7,
        "{run_id}"
    );
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(v["duration_ms"].is_u64());
    assert_eq!(v["attempts"][0]["outcome"], "failed");
    // Text mode: streams stay separate.
    let o = s.run(&["run", "fail", "0"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "fail: stdout before exiting 0\n");
    assert_eq!(stderr(&o), "fail: stderr\n");
    let (code, v) = s.json(&["--json", "fail", "0"]);
    assert_eq!(
        (code, v["exit_code"].as_i64()),
        (0, Some(0)),
        "exit_code present when 0"
    );
}

#[test]
fn shortcut_and_json_after_tool_name_goes_to_the_tool() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["ok", "--json", "-v"]);
    assert_eq!(stdout(&o).trim(), r#"["--json", "-v"]"#);
    let (_, v) = s.json(&["--json", "ok", "x"]);
    assert_eq!(v["output"], "[\"x\"]\n");
}

#[test]
fn quiet_prints_only_on_failure() {
    let s = Sandbox::new(&["fail"]);
    let o = s.run(&["run", "--quiet", "fail", "0"]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let o = s.run(&["-q", "run", "fail", "5"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stdout(&o).contains("before exiting 5"));
    assert!(stderr(&o).contains("fail: stderr"));
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let s = Sandbox::new(&["grandchild"]);
    let pidfile = s.path().join("gc.pid");
    let (code, v) = s.json(&[
        "run",
        "--json",
        "--timeout",
        "0.5",
        "grandchild",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(code, 124);
    assert_eq!(v["reason"], "timeout");
    assert_eq!(v["attempts"][0]["outcome"], "timeout");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        "the grandchild to die",
        std::time::Duration::from_secs(10),
        || !alive(pid),
    );
}

#[test]
fn manifest_timeout_applies() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "nap",
        "name: nap\nversion: \"1.0.0\"\ndescription: sleeps a while\ncategory: utility\ntimeout: 0.3\ncache: false\n",
        Some("#!/bin/sh\nsleep 30\n"),
    );
    let o = s.run(&["run", "nap"]);
    assert_eq!(o.status.code(), Some(124));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
}

#[test]
fn unknown_tool_is_127_with_suggestion() {
    let s = Sandbox::new(&["ok", "fail"]);
    let o = s.run(&["run", "okk"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("did you mean ok?"), "{}", stderr(&o));
    let (code, v) = s.json(&["--json", "nosuchtool"]);
    assert_eq!(code, 127);
    assert_eq!(v["reason"], "not_found");
}

#[test]
fn not_executable_is_126() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "noexec",
        "name: noexec\nversion: \"1.0.0\"\ndescription: has no executable\ncategory: utility\n",
        None,
    );
    let (code, v) = s.json(&["run", "--json", "noexec"]);
    assert_eq!(code, 126);
    assert_eq!(v["reason"], "not_executable");
    assert!(v["error"].as_str().unwrap().contains("cannot execute"));
}

#[test]
fn command_key_env_and_secrets_stripped() {
    let s = Sandbox::new(&["cmdtool"]);
    let o = s
        .cmd()
        .args(["run", "cmdtool", "x y"])
        .env("GATHM_API_KEYS", "secret:admin")
        // The manifest's `env` wins over an inherited variable.
        .env("CMDTOOL_GREETING", "from the parent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from env --from-command x y\nkey=unset\n");
}

#[test]
fn stdin_reaches_the_tool() {
    let s = Sandbox::new(&["stdin"]);
    let mut c = s.cmd();
    c.args(["run", "stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "HELLO");
}

#[test]
fn large_output_is_complete() {
    let s = Sandbox::new(&["noisy"]);
    let (code, v) = s.json(&["run", "--json", "noisy", "20000"]);
    assert_eq!(code, 0);
    let out = v["output"].as_str().unwrap();
    assert_eq!(out.lines().count(), 20000);
    assert_eq!(
        v["error"].as_str().unwrap().lines().last(),
        Some("err 19999")
    );
}

#[test]
fn logs_are_valid_json_lines_whatever_the_arguments() {
    let s = Sandbox::new(&["ok"]);
    let nasty = "quote\" back\\slash\nnew line\t{}";
    let o = s.run(&["run", "ok", nasty]);
    assert!(o.status.success());
    // Invalid UTF-8 in argv.
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe-bytes");
    let o = s.cmd().arg("run").arg("ok").arg(bad).output().unwrap();
    assert!(o.status.success());
    let audit = s.log("audit.log");
    let execs: Vec<_> = audit
        .iter()
        .filter(|r| r["action"] == "tool_execute")
        .collect();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0]["args"][0], nasty);
    assert!(execs[1]["args"][0].as_str().unwrap().ends_with("-bytes"));
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "policy_decision" && r["decision"] == "allow")
    );
    let metrics = s.log("metrics.log");
    assert_eq!(metrics.len(), 2);
    assert_eq!(metrics[0]["tool"], "ok");
    assert_eq!(metrics[0]["exit_code"], 0);
    let app = s.log("gathm.log");
    assert!(
        app.iter()
            .all(|r| r["pid"].is_u64() && r["level"].is_string())
    );
}

#[test]
fn concurrent_appends_never_interleave_and_rotation_happens() {
    let s = Sandbox::new(&["ok"]);
    let mut kids = vec![];
    for i in 0..16 {
        kids.push(
            s.cmd()
                .args(["run", "--no-cache", "ok", &"x".repeat(900), &i.to_string()])
                .env("GATHM_MAX_LOG_SIZE_MB", "0.004")
                .env("GATHM_LOG_ROTATE_COUNT", "3")
                .spawn()
                .unwrap(),
        );
    }
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let logs = s.home().join("logs");
    let mut records = 0;
    for name in ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"] {
        let text = std::fs::read_to_string(logs.join(name)).unwrap_or_default();
        for l in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: bad line: {e}"));
            if v["action"] == "tool_execute" {
                records += 1;
            }
        }
    }
    assert!(logs.join("audit.log.1").exists(), "audit.log was rotated");
    assert!(!logs.join("audit.log.4").exists());
    assert!(records > 0 && records <= 16);
}

#[test]
fn app_log_takes_failures_and_debug_takes_everything() {
    let s = Sandbox::new(&["fail"]);
    assert!(s.run(&["run", "fail", "0"]).status.success());
    assert_eq!(s.run(&["run", "fail", "3"]).status.code(), Some(3));
    let app = s.log("gathm.log");
    let runs: Vec<_> = app.iter().filter(|r| r["component"] == "run").collect();
    assert_eq!(runs.len(), 1, "{app:?}");
    assert_eq!(runs[0]["level"], "WARN");
    assert_eq!(runs[0]["exit_code"], 3);
    let o = s
        .cmd()
        .args(["run", "fail", "0"])
        .env("GATHM_LOG_LEVEL", "DEBUG")
        .output()
        .unwrap();
    assert!(o.status.success());
    let app = s.log("gathm.log");
    assert!(
        app.iter()
            .any(|r| r["level"] == "DEBUG" && r["exit_code"] == 0),
        "{app:?}"
    );
    // Audit and metrics record every run either way.
    assert_eq!(
        s.log("audit.log")
            .iter()
            .filter(|r| r["action"] == "tool_execute")
            .count(),
        3
    );
    assert_eq!(s.log("metrics.log").len(), 3);
}

#[test]
fn sigint_kills_the_tool_group_and_exits_130() {
    let s = Sandbox::new(&["grandchild"]);
    let pidfile = s.path().join("gc.pid");
    let child = s
        .cmd()
        .args(["run", "--json", "grandchild", pidfile.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the tool to start",
        std::time::Duration::from_secs(10),
        || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok()),
    );
    let gc: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reason"], "interrupted");
    assert_eq!(v["attempts"][0]["outcome"], "interrupted");
    wait_until(
        "the grandchild to die",
        std::time::Duration::from_secs(10),
        || !alive(gc),
    );
    // An interrupt is not a counted breaker failure.
    assert!(!s.home().join("health/cb_grandchild.json").exists());
}

/// gathm's `main` skips Rust's runtime start-up (src/main.rs), so gathm must
/// itself survive a reader that quits early: no death by SIGPIPE, the tool
/// runs to its end and the run is recorded.
#[test]
fn a_reader_that_quits_early_does_not_kill_gathm() {
    let s = Sandbox::new(&["noisy"]);
    let o = std::process::Command::new("bash")
        .args([
            "-c",
            r#""$0" run noisy 20000 2>/dev/null | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}""#,
        ])
        .arg(bin())
        .env("GATHM_HOME", s.home())
        .env("GATHM_TOOLS_PATH", s.tools())
        .env_remove("GATHM_TOOLS_DIR")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o).trim(),
        "0",
        "gathm's exit status: {}",
        stderr(&o)
    );
    let runs = s.log("metrics.log");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["tool"], "noisy");
    assert_eq!(runs[0]["exit_code"], 0);
}

/// With standard descriptors closed, nothing gathm opens later becomes its
/// "stdout": the envelope never lands in a state or log file.
#[test]
fn closed_standard_descriptors_never_capture_state_files() {
    let s = Sandbox::new(&["ok", "fail"]);
    for (args, want) in [(["ok", "a"], "0"), (["fail", "7"], "7")] {
        let o = std::process::Command::new("bash")
            .args(["-c", r#""$0" run --json "$@" <&- >&- 2>&-; echo "$?""#])
            .arg(bin())
            .args(args)
            .env("GATHM_HOME", s.home())
            .env("GATHM_TOOLS_PATH", s.tools())
            .output()
            .unwrap();
        assert_eq!(stdout(&o).trim(), want, "{args:?}: {}", stderr(&o));
    }
    let mut files = 0;
    for p in files_under(&s.home()) {
        if !p.extension().is_some_and(|x| x == "json" || x == "log") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("\"run_id\":") || !text.contains("\n  \""),
            "an envelope in {}",
            p.display()
        );
        if p.extension().unwrap() == "log" {
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", p.display()));
            }
        } else {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    assert!(files >= 3, "the runs wrote state and logs ({files} files)");
}
