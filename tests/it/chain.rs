//! `gathm chain`: stdout flows into stdin, `{prev}` is one argument,
//! `{prev_words}` several, and the first failure stops the chain.

use std::io::Write;
use std::process::Stdio;

use crate::harness::*;

#[test]
fn stdout_flows_into_the_next_stdin() {
    let s = Sandbox::new(&["ok", "stdin"]);
    let o = s.run(&["chain", "ok hello 'big world' | stdin"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "[\"HELLO\", \"BIG WORLD\"]\n");
    // Through three steps.
    let o = s.run(&["chain", "ok abc | stdin | stdin"]);
    assert_eq!(stdout(&o), "[\"ABC\"]\n");
}

#[test]
fn gathm_stdin_feeds_the_first_step_when_piped() {
    let s = Sandbox::new(&["ok", "stdin"]);
    let mut c = s
        .cmd()
        .args(["chain", "stdin | ok {prev}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"piped in\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "[\"PIPED IN\"]\n");
}

#[test]
fn prev_is_one_argument_and_prev_words_many() {
    let s = Sandbox::new(&["ok", "stdin"]);
    let o = s.run(&["chain", "ok 'a b' c | ok {prev} 'x={prev}' lit"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        ["[\"a b\", \"c\"]", "x=[\"a b\", \"c\"]", "lit"],
        "the previous output is trimmed and passed as one argument"
    );
    let o = s.run(&["chain", "ok 'a b' c | ok {prev_words}"]);
    let v: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, ["[\"a", "b\",", "\"c\"]"]);
    // Placeholders in the first step are a usage error.
    let o = s.run(&["chain", "ok {prev} | ok"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no previous step"));
}

#[test]
fn the_first_failure_stops_the_chain_and_is_named() {
    let s = Sandbox::new(&["ok", "fail"]);
    let counter = s.path().join("ok-runs");
    let o = s
        .cmd()
        .env("OK_COUNTER", &counter)
        .args(["chain", "ok first | fail 3 | ok never"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(count_lines(&counter), 1, "the step after the failure ran");
    let err = stderr(&o);
    assert!(
        err.contains("chain failed at step 2 of 3 (fail): exit 3"),
        "{err}"
    );
    assert!(err.contains("fail: stderr"), "{err}");

    let (code, v) = s.json(&["--json", "chain", "ok a | fail 4 | ok b"]);
    assert_eq!(code, 4);
    assert_eq!(v["failed_step"], 2);
    assert_eq!(v["exit_code"], 4);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["status"], "success");
    assert_eq!(steps[1]["tool"], "fail");
    assert_eq!(steps[1]["exit_code"], 4);

    let (code, v) = s.json(&["--json", "chain", "ok a | ok b"]);
    assert_eq!(code, 0);
    assert_eq!(v["failed_step"], serde_json::Value::Null);
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
}

#[test]
fn a_missing_step_fails_with_127() {
    let s = Sandbox::new(&["ok"]);
    let (code, v) = s.json(&["--json", "chain", "ok a | nosuch | ok"]);
    assert_eq!(code, 127);
    assert_eq!(v["failed_step"], 2);
    assert_eq!(v["steps"][1]["reason"], "not_found");
}
