//! CLI contract: help, version, completions, schema.

use crate::harness::*;

#[test]
fn help_documents_exit_codes_and_version_prints() {
    let s = Sandbox::new(&[]);
    let o = s.run(&["--help"]);
    assert!(o.status.success());
    let h = stdout(&o);
    for needle in [
        "Exit codes:",
        "69",
        "75",
        "77",
        "124",
        "127",
        "130",
        "run",
        "validate",
    ] {
        assert!(h.contains(needle), "help lacks {needle}: {h}");
    }
    let o = s.run(&["--version"]);
    assert_eq!(
        stdout(&o).trim(),
        format!("gathm {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_error_exits_2() {
    let s = Sandbox::new(&[]);
    assert_eq!(s.run(&["run"]).status.code(), Some(2));
    assert_eq!(s.run(&["cache", "bogus"]).status.code(), Some(2));
}

#[test]
fn committed_completions_are_current() {
    let s = Sandbox::new(&[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "gathm.bash"),
        ("zsh", "_gathm"),
        ("fish", "gathm.fish"),
        ("elvish", "gathm.elv"),
        ("powershell", "_gathm.ps1"),
    ] {
        let o = s.run(&["completions", shell]);
        assert!(o.status.success());
        assert!(!o.stdout.is_empty());
        let committed = std::fs::read(dir.join(file)).unwrap_or_else(|_| {
            panic!("completions/{file} missing: run `bash completions/generate`")
        });
        assert!(
            committed == o.stdout,
            "completions/{file} is stale: run `bash completions/generate`"
        );
    }
}

#[test]
fn schemas_are_json_and_name_required_fields() {
    let s = Sandbox::new(&[]);
    let (code, v) = s.json(&["schema", "tool"]);
    assert_eq!(code, 0);
    assert_eq!(
        v["required"],
        serde_json::json!(["name", "version", "description", "category"])
    );
    assert!(v["properties"]["fallback_tool"].is_object());
    let (code, v) = s.json(&["schema", "policies"]);
    assert_eq!(code, 0);
    assert!(v["properties"]["roles"].is_object());
}

#[test]
fn an_invalid_numeric_variable_is_reported_not_silently_ignored() {
    let s = Sandbox::new(&["ok"]);
    let o = s
        .cmd()
        .env("GATHM_DEFAULT_TIMEOUT", "ten")
        .args(["run", "ok"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(
        e.matches("ignoring GATHM_DEFAULT_TIMEOUT=\"ten\"").count(),
        1,
        "{e}"
    );
}

#[test]
fn the_schema_accepts_what_validate_accepts() {
    // `version: 1.0` and an unknown top-level key pass `validate` (the key is
    // a warning), so the derived schema allows both; a misspelt retry key is
    // an error in both.
    let s = Sandbox::new(&[]);
    let (_, v) = s.json(&["schema", "tool"]);
    assert!(
        v["properties"]["version"]["type"]
            .as_array()
            .unwrap()
            .contains(&"number".into())
    );
    assert_ne!(v["additionalProperties"], serde_json::json!(false));
    s.manifest(
        "typo",
        "name: typo\nversion: 1.0\ndescription: a retry typo\ncategory: utility\nrequires_internet: false\nretry: {atempts: 3}\n",
        Some("#!/bin/sh\nexit 0\n"),
    );
    let o = s.run(&["validate", "typo"]);
    assert_eq!(o.status.code(), Some(65), "{}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("atempts"), "{all}");
    let retry = &v["$defs"]["Retry"];
    assert_eq!(
        retry["additionalProperties"],
        serde_json::json!(false),
        "{v}"
    );
}

#[test]
fn an_out_of_range_duration_variable_is_reported_and_never_panics() {
    let s = Sandbox::new(&["ok"]);
    for (var, value) in [
        ("GATHM_KILL_GRACE", "1e300"),
        ("GATHM_DEFAULT_TIMEOUT", "-5"),
        ("CB_RECOVERY_TIMEOUT", "inf"),
    ] {
        let o = s
            .cmd()
            .env(var, value)
            .args(["run", "ok"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{var}={value}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("ignoring {var}=")), "{var}: {e}");
    }
}
