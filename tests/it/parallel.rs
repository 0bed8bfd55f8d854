//! `gathm parallel`: concurrency bounds, grouped ordered output, missing
//! tools, `max_concurrency`, policy refusals, JSON and Ctrl-C.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A sandbox with `nap` (sleeps $1 s, prints $2; never cached) and `say`
/// (sleeps $1 s, prints two lines tagged $2 and one on stderr).
fn sandbox() -> Sandbox {
    let s = Sandbox::new(&["ok", "fail", "stamp", "grandchild"]);
    s.manifest(
        "nap",
        "name: nap\nversion: \"1.0.0\"\ndescription: \"Sleeps, then prints its tag\"\ncategory: utility\ncache: false\n",
        Some("#!/bin/sh\nsleep \"$1\"\necho \"nap $2\"\n"),
    );
    s.manifest(
        "say",
        "name: say\nversion: \"1.0.0\"\ndescription: \"Sleeps, then prints two tagged lines\"\ncategory: utility\ncache: false\n",
        Some("#!/bin/sh\nsleep \"$1\"\necho \"$2-one\"\necho \"$2-err\" >&2\necho \"$2-two\"\n"),
    );
    s
}

fn timed(s: &Sandbox, args: &[&str]) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let o = s.run(args);
    (o, t.elapsed())
}

/// Eight spellings of "sleep 1 s" (distinct arguments, so no cache hits).
const ONE_SECOND: [&str; 8] = ["1", "1.0", "1.00", "1.000", "01", "01.0", "001", "1.0000"];

#[test]
fn jobs_bound_the_concurrency() {
    let spec = ONE_SECOND
        .iter()
        .map(|a| format!("slow {a}"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = Sandbox::new(&["slow"]);
    let (o, t8) = timed(&s, &["parallel", "-j", "8", &spec]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(t8 < Duration::from_millis(1900), "-j 8 took {t8:?}");
    // A fresh sandbox: no cached results from the first run.
    let s = Sandbox::new(&["slow"]);
    let (o, t4) = timed(&s, &["parallel", "-j", "4", &spec]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(t4 >= Duration::from_secs(2), "-j 4 took only {t4:?}");
    // Every item reported once, in the order given, with its own output.
    let out = stdout(&o);
    let headers: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("==> slow "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(headers, ONE_SECOND);
    assert_eq!(out.matches("slow: done").count(), 8, "{out}");
}

#[test]
fn output_is_grouped_in_the_given_order() {
    let s = sandbox();
    // The first item finishes last, the last first.
    let o = s.run(&["parallel", "say 0.6 A, say 0.3 B, say 0 C"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    for (k, tag) in ["A", "B", "C"].iter().enumerate() {
        let h = lines[k * 3];
        assert!(h.starts_with("==> say "), "{out}");
        assert!(h.contains(&format!(" {tag} (exit 0, ")), "{out}");
        assert_eq!(lines[k * 3 + 1], format!("{tag}-one"));
        assert_eq!(lines[k * 3 + 2], format!("{tag}-two"));
    }
    // stderr of each item is passed on, in order too.
    let err = stderr(&o);
    let a = err.find("A-err").unwrap();
    let b = err.find("B-err").unwrap();
    let c = err.find("C-err").unwrap();
    assert!(a < b && b < c, "{err}");
}

#[test]
fn a_missing_tool_fails_the_run() {
    let s = sandbox();
    let o = s.run(&["parallel", "ok a, nosuch b, fail 3"]);
    // The first failing item in order decides the exit code.
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("==> nosuch b (exit 127, not_found"), "{out}");
    assert!(out.contains("[\"a\"]"), "the other items still ran: {out}");
    assert!(stderr(&o).contains("tool \"nosuch\" not found"));
    assert!(stderr(&o).contains("3 items, 2 failed"));

    let (code, v) = s.json(&["--json", "parallel", "fail 3, nosuch b, ok c"]);
    assert_eq!(code, 3);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["tool"], "fail");
    assert_eq!(arr[0]["exit_code"], 3);
    assert_eq!(arr[1]["reason"], "not_found");
    assert_eq!(arr[1]["exit_code"], 127);
    assert_eq!(arr[1]["status"], "error");
    assert_eq!(arr[2]["status"], "success");
    assert_eq!(arr[2]["output"], "[\"c\"]\n");
}

#[test]
fn the_argv_form_splits_nothing() {
    let s = sandbox();
    let (code, v) = s.json(&[
        "--json", "parallel", "-j", "2", "--", "ok", "a, b", "it's", ":::", "ok", "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v[0]["output"], "[\"a, b\", \"it's\"]\n");
    assert_eq!(v[1]["output"], "[\"--json\"]\n");
    // Quotes in the string form keep commas and spaces inside one argument.
    let (_, v) = s.json(&["--json", "parallel", "ok 'x, y' \"z w\", ok"]);
    assert_eq!(v[0]["output"], "[\"x, y\", \"z w\"]\n");
    assert_eq!(v.as_array().unwrap().len(), 2);
    // Bad syntax is a usage error and runs nothing.
    let o = s.run(&["parallel", "ok 'a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unterminated"));
    let o = s.run(&["parallel", "--", "ok", ":::"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn max_concurrency_serialises_a_tool() {
    let s = sandbox();
    s.manifest(
        "solo",
        "name: solo\nversion: \"1.0.0\"\ndescription: \"One at a time please\"\ncategory: utility\ncache: false\nmax_concurrency: 1\n",
        Some("#!/bin/sh\necho \"start $1\" >> \"$STAMP_FILE\"\nsleep 0.3\necho \"end $1\" >> \"$STAMP_FILE\"\n"),
    );
    let log = s.path().join("stamps");
    let o = s
        .cmd()
        .env("STAMP_FILE", &log)
        .args(["parallel", "-j", "8", "solo 1, solo 2, solo 3, stamp x 0.5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let solo: Vec<&str> = text.lines().filter(|l| !l.ends_with(" x")).collect();
    assert_eq!(
        solo,
        ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"],
        "{text}"
    );
    // The other tool was not held back: it started before the first solo ended.
    let lines: Vec<&str> = text.lines().collect();
    let x = lines.iter().position(|l| *l == "start x").unwrap();
    let e1 = lines.iter().position(|l| *l == "end 1").unwrap();
    assert!(x < e1, "{text}");
}

#[test]
fn a_denied_item_gets_77_and_the_others_run() {
    let s = sandbox();
    let pol = s.write(
        "pol.yaml",
        "roles:\n  limited:\n    permissions: [\"*\"]\n    blocked_tools: [fail]\n    rate_limit: 0\n",
    );
    let (code, v) = s.json(&[
        "--json",
        "--policies",
        pol.to_str().unwrap(),
        "--role",
        "limited",
        "parallel",
        "ok a, fail 0",
    ]);
    assert_eq!(code, 77);
    assert_eq!(v[0]["status"], "success");
    assert_eq!(v[1]["reason"], "denied");
    assert_eq!(v[1]["exit_code"], 77);
    // Audited with the parallel actor.
    let audit = s.log("audit.log");
    assert!(
        audit.iter().any(|r| r["action"] == "tool_execute"
            && r["actor"] == "parallel"
            && r["tool"] == "ok"),
        "{audit:?}"
    );
}

#[test]
fn ctrl_c_kills_every_running_item() {
    let s = sandbox();
    let p1 = s.path().join("pid1");
    let p2 = s.path().join("pid2");
    let spec = format!(
        "grandchild {}, grandchild {}, nap 0 late",
        p1.display(),
        p2.display()
    );
    let mut child = s
        .cmd()
        .env("GATHM_KILL_GRACE", "0.2")
        .args(["parallel", "-j", "2", &spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("both grandchildren", Duration::from_secs(10), || {
        [&p1, &p2]
            .iter()
            .all(|p| std::fs::read_to_string(p).is_ok_and(|t| t.trim().parse::<i32>().is_ok()))
    });
    let pids: Vec<i32> = [&p1, &p2]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().trim().parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    let out = loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "gathm did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in pids {
        wait_until("the grandchild to die", Duration::from_secs(5), || {
            !alive(p)
        });
    }
    // The third item never started.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("nap late"), "{text}");
    assert!(
        text.contains("==> nap 0 late (exit 130, interrupted"),
        "{text}"
    );
}
