//! `gathm pipeline`: DAG order, parallelism, `when`, retries, templates,
//! validation before anything runs, timeouts, skips and policy.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn sandbox() -> Sandbox {
    Sandbox::new(&["ok", "fail", "stamp", "flaky", "grandchild"])
}

/// Run `pipeline run --json FILE` with the stamp log, returning (code, result, stamps).
fn run(s: &Sandbox, yaml: &str, extra: &[&str]) -> (i32, Value, Vec<String>) {
    let file = s.write("p.yaml", yaml);
    let log = s.path().join("stamps");
    let mut args = vec!["--json", "pipeline", "run"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let o = s
        .cmd()
        .env("STAMP_FILE", &log)
        .env("FLAKY_FILE", s.path().join("flaky"))
        .env("OK_COUNTER", s.path().join("ok-runs"))
        .args(&args)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    let stamps = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (o.status.code().unwrap_or(-1), v, stamps)
}

fn step<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {v}"))
}

fn pos(stamps: &[String], line: &str) -> usize {
    stamps
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("{line:?} not in {stamps:?}"))
}

#[test]
fn steps_run_in_dependency_order_and_independent_ones_overlap() {
    let s = sandbox();
    let (code, v, st) = run(
        &s,
        "name: diamond
steps:
  - {id: d, tool: stamp, args: [d], needs: [b, c]}
  - {id: b, tool: stamp, args: [b, 0.5], needs: a}
  - {id: c, tool: stamp, args: [c, 0.5], needs: a}
  - {id: a, tool: stamp, args: [a, 0.2]}
",
        &["-j", "4"],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "success");
    assert!(pos(&st, "end a") < pos(&st, "start b"));
    assert!(pos(&st, "end a") < pos(&st, "start c"));
    // b and c ran at the same time.
    assert!(pos(&st, "start b") < pos(&st, "end c"), "{st:?}");
    assert!(pos(&st, "start c") < pos(&st, "end b"), "{st:?}");
    assert!(pos(&st, "end b") < pos(&st, "start d"));
    assert!(pos(&st, "end c") < pos(&st, "start d"));
    // Results are listed in file order, with attempts and durations.
    let ids: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d", "b", "c", "a"]);
    assert_eq!(step(&v, "b")["attempts"], 1);
    assert!(step(&v, "b")["duration_ms"].as_u64().unwrap() >= 500);
    assert_eq!(step(&v, "d")["envelope"]["output"], "d\n");
}

#[test]
fn independent_steps_are_bounded_by_jobs() {
    let s = sandbox();
    let yaml = "steps:
  - {id: a, tool: stamp, args: [a, 0.8]}
  - {id: b, tool: stamp, args: [b, 0.8]}
  - {id: c, tool: stamp, args: [c, 0.8]}
  - {id: d, tool: stamp, args: [d, 0.8]}
";
    let t = Instant::now();
    let (code, _, _) = run(&s, yaml, &["-j", "4"]);
    let wide = t.elapsed();
    assert_eq!(code, 0);
    assert!(wide < Duration::from_millis(1500), "-j 4 took {wide:?}");
    let t = Instant::now();
    let (code, _, st) = run(&s, yaml, &["-j", "2"]);
    let narrow = t.elapsed();
    assert_eq!(code, 0);
    assert!(
        narrow >= Duration::from_millis(1600),
        "-j 2 took {narrow:?}"
    );
    // Never more than two at once.
    let mut running = 0i32;
    for l in &st[8..] {
        running += if l.starts_with("start") { 1 } else { -1 };
        assert!(running <= 2, "{st:?}");
    }
}

#[test]
fn when_decides_and_skips_propagate() {
    let s = sandbox();
    let (code, v, st) = run(
        &s,
        "steps:
  - {id: a, tool: stamp, args: [a]}
  - {id: yes, tool: stamp, args: [yes], needs: a, when: \"steps.a.exit_code == 0 && steps.a.output == 'a'\"}
  - {id: nope, tool: stamp, args: [nope], needs: a, when: \"steps.a.status == 'failed'\"}
  - {id: after-nope, tool: stamp, args: [after-nope], needs: nope}
  - {id: rescue, tool: stamp, args: [rescue], needs: nope, when: \"steps.nope.status == 'skipped'\"}
",
        &[],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, "yes")["status"], "success");
    assert_eq!(step(&v, "nope")["status"], "skipped");
    assert_eq!(step(&v, "nope")["attempts"], 0);
    assert_eq!(step(&v, "nope")["exit_code"], Value::Null);
    assert_eq!(step(&v, "nope")["message"], "`when` is false");
    assert_eq!(step(&v, "after-nope")["status"], "skipped");
    assert_eq!(step(&v, "rescue")["status"], "success");
    assert!(!st.contains(&"start nope".to_string()));
    assert!(!st.contains(&"start after-nope".to_string()));
}

#[test]
fn a_failed_step_skips_its_dependants_unless_it_may_fail() {
    let s = sandbox();
    let (code, v, st) = run(
        &s,
        "steps:
  - {id: bad, tool: fail, args: ['4']}
  - {id: child, tool: stamp, args: [child], needs: bad}
  - {id: grandchild, tool: stamp, args: [grandchild], needs: child}
  - {id: cleanup, tool: stamp, args: [cleanup], needs: grandchild, when: 'failure()'}
  - {id: other, tool: stamp, args: [other]}
  - {id: soft, tool: fail, args: ['5'], continue_on_error: true}
  - {id: after-soft, tool: stamp, args: [after-soft], needs: soft}
",
        &[],
    );
    assert_eq!(code, 4, "the first failed step's exit code: {v}");
    assert_eq!(v["status"], "failed");
    assert_eq!(step(&v, "bad")["status"], "failed");
    assert_eq!(step(&v, "child")["status"], "skipped");
    assert_eq!(step(&v, "grandchild")["status"], "skipped");
    assert!(
        step(&v, "child")["message"]
            .as_str()
            .unwrap()
            .contains("bad")
    );
    assert_eq!(step(&v, "cleanup")["status"], "success");
    assert_eq!(step(&v, "other")["status"], "success");
    assert_eq!(step(&v, "soft")["status"], "failed");
    assert_eq!(step(&v, "after-soft")["status"], "success");
    assert!(
        !st.iter()
            .any(|l| l == "start child" || l == "start grandchild")
    );

    // Only tolerated failures: exit 0.
    let (code, v, _) = run(
        &s,
        "steps:
  - {id: soft, tool: fail, args: ['5'], continue_on_error: true}
  - {id: next, tool: stamp, args: [next], needs: soft}
",
        &[],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(step(&v, "next")["status"], "success");
}

#[test]
fn retries_with_backoff() {
    let s = sandbox();
    // flaky succeeds on its 5th call; its own manifest retries 3 times per
    // run, so the step needs 2 attempts.
    let (code, v, _) = run(
        &s,
        "steps:
  - id: f
    tool: flaky
    args: ['5']
    retry: {attempts: 3, delay: 0.05, backoff: 2, max_delay: 0.1}
",
        &[],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, "f")["status"], "success");
    assert_eq!(step(&v, "f")["attempts"], 2);
    assert_eq!(count_lines(&s.path().join("flaky")), 5);

    // Attempts run out: failed after exactly `attempts` runs.
    let (code, v, _) = run(
        &s,
        "steps:
  - {id: f, tool: fail, args: ['3'], retry: {attempts: 2, delay: 0.01}}
",
        &[],
    );
    assert_eq!(code, 3);
    assert_eq!(step(&v, "f")["attempts"], 2);
}

#[test]
fn outputs_are_passed_as_one_argument() {
    let s = sandbox();
    let (code, v, _) = run(
        &s,
        "steps:
  - {id: a, tool: ok, args: ['x y', '; touch pwned &&']}
  - id: b
    tool: ok
    needs: [a]
    args: ['pre ${steps.a.output} post', '${steps.a.exit_code}', '$${steps.a.output}']
",
        &[],
    );
    assert_eq!(code, 0, "{v}");
    let out: Vec<String> =
        serde_json::from_str(step(&v, "b")["envelope"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        out,
        [
            "pre [\"x y\", \"; touch pwned &&\"] post",
            "0",
            "${steps.a.output}"
        ]
    );
    assert!(!s.path().join("pwned").exists());
}

/// Validation failures: exit 65, file:line:col on stderr, nothing run.
fn rejected(s: &Sandbox, yaml: &str, expect: &str) {
    let file = s.write("bad.yaml", yaml);
    let counter = s.path().join("ok-runs");
    for cmd in ["validate", "run"] {
        let o = s
            .cmd()
            .env("OK_COUNTER", &counter)
            .args(["pipeline", cmd, file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(65), "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(expect), "{cmd}: expected {expect:?} in {err}");
        assert!(!counter.exists(), "{cmd} ran a tool");
    }
    let (code, v) = s.json(&["--json", "pipeline", "validate", file.to_str().unwrap()]);
    assert_eq!(code, 65);
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert!(d["line"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(d["severity"], "error");
    let (code, v) = s.json(&["--json", "pipeline", "run", file.to_str().unwrap()]);
    assert_eq!(code, 65);
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["steps"].as_array().unwrap().len(), 0);
    assert!(!v["diagnostics"].as_array().unwrap().is_empty());
    assert!(!counter.exists());
}

#[test]
fn invalid_pipelines_are_rejected_before_anything_runs() {
    let s = sandbox();
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n    needs: [b]\n  - id: b\n    tool: ok\n    needs: [a]\n",
        "bad.yaml:4:12: error: dependency cycle: a -> b -> a",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n  - id: b\n    tool: ok\n    needs: [a, nope]\n",
        "bad.yaml:6:12: error: step \"b\" needs unknown step \"nope\"",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n  - id: b\n    tool: okk\n",
        "bad.yaml:5:11: error: step \"b\": unknown tool \"okk\"; did you mean ok?",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n  - id: a\n    tool: ok\n",
        "bad.yaml:4:9: error: duplicate step id \"a\" (first defined at line 2)",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n  - id: b\n    tool: ok\n    needs: a\n    when: steps.a.status = 'success'\n",
        "bad.yaml:7:11: error: step \"b\": invalid `when`",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n  - id: b\n    tool: ok\n    args: ['${steps.a.output}']\n",
        "which is not in its needs",
    );
    rejected(
        &s,
        "steps:\n  - id: a\n    tool: ok\n    bogus: 1\n",
        "bad.yaml:4:",
    );
    // A valid file validates.
    let file = s.write("good.yaml", "steps:\n  - {id: a, tool: ok}\n");
    let o = s.run(&["pipeline", "validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok (1 steps)"));
}

#[test]
fn the_pipeline_timeout_kills_grandchildren() {
    let s = sandbox();
    let pidfile = s.path().join("gc.pid");
    let file = s.write(
        "p.yaml",
        &format!(
            "timeout: 1\nsteps:\n  - {{id: hang, tool: grandchild, args: ['{}']}}\n  - {{id: later, tool: ok, needs: hang}}\n",
            pidfile.display()
        ),
    );
    let t = Instant::now();
    let o = s
        .cmd()
        .env("GATHM_KILL_GRACE", "0.2")
        .args(["--json", "pipeline", "run", file.to_str().unwrap()])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "timeout");
    assert_eq!(step(&v, "hang")["status"], "cancelled");
    assert_eq!(step(&v, "later")["status"], "cancelled");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the grandchild to die", Duration::from_secs(5), || {
        !alive(pid)
    });
}

#[test]
fn a_step_timeout_fails_that_step() {
    let s = sandbox();
    let pidfile = s.path().join("gc.pid");
    let (code, v, _) = run(
        &s,
        &format!(
            "steps:\n  - {{id: hang, tool: grandchild, args: ['{}'], timeout: 0.5}}\n",
            pidfile.display()
        ),
        &[],
    );
    assert_eq!(code, 124, "{v}");
    assert_eq!(v["status"], "failed");
    assert_eq!(step(&v, "hang")["status"], "failed");
    assert_eq!(step(&v, "hang")["envelope"]["reason"], "timeout");
}

#[test]
fn policy_refusals_fail_the_step_with_77() {
    let s = sandbox();
    let pol = s.write(
        "pol.yaml",
        "roles:\n  limited:\n    permissions: [\"*\"]\n    blocked_tools: [fail]\n    rate_limit: 0\n",
    );
    let file = s.write(
        "p.yaml",
        "steps:\n  - {id: a, tool: ok, args: [x]}\n  - {id: b, tool: fail, args: ['0'], retry: {attempts: 3, delay: 0.01}}\n  - {id: c, tool: ok, needs: b}\n",
    );
    let (code, v) = s.json(&[
        "--json",
        "--policies",
        pol.to_str().unwrap(),
        "--role",
        "limited",
        "pipeline",
        "run",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 77, "{v}");
    assert_eq!(step(&v, "a")["status"], "success");
    assert_eq!(step(&v, "b")["status"], "failed");
    assert_eq!(step(&v, "b")["attempts"], 1, "a denial is not retried");
    assert_eq!(step(&v, "b")["envelope"]["reason"], "denied");
    assert_eq!(step(&v, "c")["status"], "skipped");
    let audit = s.log("audit.log");
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "tool_execute" && r["actor"] == "pipeline:p.yaml"),
        "{audit:?}"
    );
}

#[test]
fn text_mode_prints_a_summary_table() {
    let s = sandbox();
    let file = s.write(
        "p.yaml",
        "name: demo\nsteps:\n  - {id: a, tool: stamp, args: [a]}\n  - {id: b, tool: fail, args: ['2'], needs: a}\n",
    );
    let o = s
        .cmd()
        .env("STAMP_FILE", s.path().join("stamps"))
        .args(["pipeline", "run", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    // Each step's output under a header, then the table.
    assert!(out.starts_with("==> a (stamp) (exit 0"), "{out}");
    assert!(out.contains("\n==> b (fail) (exit 2"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("STEP ")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("a ") && l.contains("success")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("b ") && l.contains("failed")),
        "{out}"
    );
    assert!(out.contains("pipeline demo: failed"), "{out}");
    assert!(stderr(&o).contains("fail: stderr"));
}

#[test]
fn ctrl_c_cancels_running_steps() {
    let s = sandbox();
    let pidfile = s.path().join("gc.pid");
    let file = s.write(
        "p.yaml",
        &format!(
            "steps:\n  - {{id: hang, tool: grandchild, args: ['{}']}}\n  - {{id: after, tool: ok, needs: hang}}\n",
            pidfile.display()
        ),
    );
    let mut child = s
        .cmd()
        .env("GATHM_KILL_GRACE", "0.2")
        .args(["--json", "pipeline", "run", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the grandchild", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
    });
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "gathm did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "interrupted");
    assert_eq!(step(&v, "hang")["status"], "cancelled");
    assert_eq!(step(&v, "after")["status"], "cancelled");
    wait_until("the grandchild to die", Duration::from_secs(5), || {
        !alive(pid)
    });
}

#[test]
fn shipped_offline_demo_pipeline_runs_on_the_shipped_tools() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Sandbox::new(&[]);
    let o = s
        .cmd()
        .env("GATHM_TOOLS_PATH", repo.join("tools"))
        .args(["pipeline", "run", "--json"])
        .arg(repo.join("pipelines/offline-demo.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let step = |id: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}: {v}"))
            .clone()
    };
    assert_eq!(
        step("encode")["envelope"]["output"]
            .as_str()
            .unwrap()
            .trim(),
        "aGVsbG8gZnJvbSBnYXRobQ=="
    );
    let report: serde_json::Value =
        serde_json::from_str(step("report")["envelope"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(report["decoded"], "hello from gathm");
    // sha256 of the base64 text, computed independently with sha256sum.
    assert_eq!(
        report["digest"],
        "0cf508a5661228664fae1cbe980e2be75caf46e1c1e394794c39e8171ff8122e"
    );
    assert_eq!(step("check")["status"], "success");
    assert_eq!(
        step("id")["envelope"]["output"]
            .as_str()
            .unwrap()
            .trim()
            .len(),
        36
    );
}
