//! Policies and rate limits through the binary.

use crate::harness::*;

const POLICIES: &str = r#"# test policies, with inline comments everywhere
roles:
  admin:
    permissions: ["*"]   # everything
    rate_limit: 0        # unlimited
  user:
    permissions: ["tool:execute", "tool:discover"]  # run and list
    blocked_tools: ["fa*"]       # glob
    requires_approval: [primary] # approval
    rate_limit: 0
  readonly:
    permissions: ["tool:discover"]
  limited:
    permissions: ["tool:execute"]
    rate_limit: 3   # per window
rate_limiting:
  enabled: true
  window_seconds: 60
  default_limit: 60
  per_tool_limits:
    counter: 5   # the racing test
  burst_allowance: 0   # exact
validation:
  max_argument_length: 16
  blocked_patterns: ["../", "$("]
audit:
  log_all_executions: true
  log_agent_decisions: true
"#;

fn sandbox() -> Sandbox {
    let s = Sandbox::new(&["ok", "fail", "primary", "backup", "counter"]);
    s.write("home/policies.yaml", POLICIES);
    s
}

#[test]
fn roles_globs_and_rules_are_enforced_and_audited() {
    let s = sandbox();
    let (code, v) = s.json(&["--role", "user", "--json", "fail", "0"]);
    assert_eq!(code, 77);
    assert_eq!(v["reason"], "denied");
    assert_eq!(v["rule"], "roles.user.blocked_tools[\"fa*\"]");
    let o = s.run(&["--role", "readonly", "ok"]);
    assert_eq!(o.status.code(), Some(77));
    assert!(
        stderr(&o).contains("roles.readonly.permissions"),
        "{}",
        stderr(&o)
    );
    let o = s
        .cmd()
        .args(["ok"])
        .env("GATHM_ROLE", "nobody")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77), "an undefined role is denied");
    assert!(s.run(&["--role", "user", "ok"]).status.success());
    let audit = s.log("audit.log");
    let decisions: Vec<_> = audit
        .iter()
        .filter(|r| r["action"] == "policy_decision")
        .collect();
    assert!(
        decisions
            .iter()
            .any(|d| d["decision"] == "deny" && d["rule"] == "roles.user.blocked_tools[\"fa*\"]")
    );
    assert!(
        decisions
            .iter()
            .any(|d| d["decision"] == "allow" && d["role"] == "user" && d["tool"] == "ok")
    );
}

#[test]
fn approval_is_required_non_interactively() {
    let s = sandbox();
    let (code, v) = s.json(&["--role", "user", "--json", "primary"]);
    assert_eq!(code, 77);
    assert_eq!(v["reason"], "approval_required");
    assert!(v["attempts"].as_array().unwrap().is_empty(), "nothing ran");
    let (code, v) = s.json(&[
        "--role",
        "user",
        "run",
        "--approve",
        "--json",
        "primary",
        "q",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["served_by"], "backup");
}

#[test]
fn fallback_hop_to_a_blocked_tool_is_refused() {
    let s = sandbox();
    s.manifest(
        "front",
        "name: front\nversion: \"1.0.0\"\ndescription: fails, falls back to a blocked tool\ncategory: utility\ncache: false\nfallback_tool: fail\n",
        Some("#!/bin/sh\nexit 9\n"),
    );
    let (code, v) = s.json(&["--role", "user", "--json", "front"]);
    assert_eq!(code, 9, "{v}");
    assert_eq!(v["reason"], "fallback_exhausted");
    assert_eq!(v["attempts"][1]["tool"], "fail");
    assert_eq!(v["attempts"][1]["outcome"], "denied");
    assert_eq!(
        v["attempts"][1]["rule"],
        "roles.user.blocked_tools[\"fa*\"]"
    );
    // Open breaker + blocked fallback: the fallback must not run.
    let c = s.path().join("fail.count");
    let o = s
        .cmd()
        .args(["--role", "user", "front"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(9), "this failure opens the breaker");
    let o = s
        .cmd()
        .args(["--role", "user", "front"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .env("FAIL_COUNTER", &c)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(count_lines(&c), 0);
}

#[test]
fn arguments_are_validated_on_every_path() {
    let s = sandbox();
    let (code, v) = s.json(&["--json", "ok", "fine", "../etc"]);
    assert_eq!(code, 77);
    assert_eq!(v["rule"], "validation.blocked_patterns[\"../\"]");
    assert!(v["message"].as_str().unwrap().contains("argument 2"));
    let (code, v) = s.json(&["--json", "ok", "01234567890123456789"]);
    assert_eq!(code, 77);
    assert!(
        v["rule"]
            .as_str()
            .unwrap()
            .starts_with("validation.max_argument_length")
    );
}

#[test]
fn rate_limit_is_exact_across_20_racing_processes() {
    let s = sandbox();
    let c = s.path().join("count");
    let codes = race(20, || {
        let mut cmd = s.cmd();
        cmd.args(["run", "counter"]).env("COUNTER_FILE", &c);
        cmd
    });
    assert_eq!(count_lines(&c), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 5);
    assert_eq!(codes.iter().filter(|c| **c == 75).count(), 15);
    let (code, v) = s.json(&["--json", "counter"]);
    assert_eq!(code, 75);
    assert_eq!(v["reason"], "rate_limited");
    let wait = v["retry_after"].as_f64().unwrap();
    assert!(wait > 0.0 && wait <= 60.0);
}

#[test]
fn role_rate_limit_and_denials_do_not_consume() {
    let s = sandbox();
    for _ in 0..3 {
        assert!(
            s.run(&["--role", "limited", "ok", "--no-cache"])
                .status
                .success()
        );
    }
    let o = s.run(&["--role", "limited", "ok"]);
    assert_eq!(o.status.code(), Some(75));
    assert!(stderr(&o).contains("try again in"), "{}", stderr(&o));
}

#[test]
fn policy_check_and_show() {
    let s = sandbox();
    let (code, v) = s.json(&["--role", "user", "policy", "check", "fail", "--json"]);
    assert_eq!(code, 77);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "roles.user.blocked_tools[\"fa*\"]");
    let (code, v) = s.json(&["--role", "user", "policy", "check", "ok", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["decision"], "allow");
    let (_, v) = s.json(&["--role", "limited", "policy", "check", "counter", "--json"]);
    assert_eq!(v["rate_limits"].as_array().unwrap().len(), 2);
    let (_, v) = s.json(&["policy", "show", "--json"]);
    assert_eq!(
        v["policy"]["rate_limiting"]["per_tool_limits"]["counter"],
        5
    );
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .ends_with("home/policies.yaml")
    );
    // list shows only what the role may discover.
    let (_, v) = s.json(&["--role", "user", "list", "--json"]);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"fail"));
    assert_eq!(
        s.run(&["--role", "limited", "list"]).status.code(),
        Some(77)
    );
}

#[test]
fn lookup_order_and_malformed_policies() {
    let s = Sandbox::new(&["ok"]);
    // Built-in default: admin, validation blocks "$(".
    let (code, _) = s.json(&["--json", "ok", "$(id)"]);
    assert_eq!(code, 77);
    let bad = s.write(
        "bad.yaml",
        "roles:\n  admin:\n    permissions: [\"tool:exec\"]\n",
    );
    let o = s.run(&["--policies", bad.to_str().unwrap(), "ok"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("bad.yaml:3:"), "{}", stderr(&o));
    let broken = s.write("broken.yaml", "roles:\n  admin: [\n");
    let o = s
        .cmd()
        .args(["ok"])
        .env("GATHM_POLICIES", &broken)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("broken.yaml"), "{}", stderr(&o));
    let o = s
        .cmd()
        .args(["validate"])
        .env("GATHM_POLICIES", &broken)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65));
    let num = s.write("num.yaml", "rate_limiting:\n  window_seconds: -5\n");
    let o = s.run(&["--policies", num.to_str().unwrap(), "ok"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("num.yaml:2:"), "{}", stderr(&o));
}

#[test]
fn approval_prompt_at_a_terminal() {
    // `script` gives gathm a terminal; the answer is typed on it.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = sandbox();
    for (answer, want) in [("y\n", 0), ("n\n", 77)] {
        let cmdline = format!(
            "{} --role user run --no-cache primary typed",
            bin().display()
        );
        let c = s.cmd();
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &cmdline, "/dev/null"])
            .envs(
                c.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .current_dir(s.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = script.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("requires approval for role user"), "{all}");
        assert_eq!(o.status.code(), Some(want), "{answer:?}: {all}");
        if want == 0 {
            assert!(all.contains("backup answered: typed"), "{all}");
        }
    }
}

#[test]
fn parallel_asks_for_approval_at_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = sandbox();
    for (answer, want) in [("y\n", 0), ("n\n", 77)] {
        let cmdline = format!(
            "{} --role user parallel 'primary one, ok two'",
            bin().display()
        );
        let c = s.cmd();
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &cmdline, "/dev/null"])
            .envs(
                c.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .current_dir(s.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = script.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("primary requires approval for role user. Run it? [y/N]"),
            "{all}"
        );
        assert_eq!(o.status.code(), Some(want), "{answer:?}: {all}");
    }
}
