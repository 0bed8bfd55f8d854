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
