//! `validate`, `list`, `show`, `status` and discovery.

use crate::harness::*;

const GOOD: &str = "name: NAME\nversion: \"1.0.0\"\ndescription: a good tool\ncategory: utility\n";

fn good(name: &str) -> String {
    GOOD.replace("NAME", name)
}

#[test]
fn malformed_manifests_give_precise_errors_and_never_panic() {
    let cases = [
        (
            "badyaml",
            "name: badyaml\nversion: \"1.0.0\"\n  description: [oops\n",
            "tool.yaml:",
        ),
        (
            "wrongtype",
            "name: wrongtype\nversion: \"1.0.0\"\ndescription: hello there\ncategory: utility\ntags: 7\n",
            ":5:",
        ),
        (
            "missing",
            "name: missing\ncategory: utility\n",
            "missing required field `version`",
        ),
        (
            "badcat",
            "name: badcat\nversion: \"1.0.0\"\ndescription: hello there\ncategory: cooking\n",
            ":4:1: error: unknown category \"cooking\"",
        ),
        (
            "badver",
            "name: badver\nversion: \"1.0\"\ndescription: hello there\ncategory: data\n",
            ":2:1: error: version",
        ),
        ("notmap", "- just\n- a list\n", "tool.yaml:"),
    ];
    for (name, yaml, needle) in cases {
        let s = Sandbox::new(&[]);
        s.manifest(name, yaml, Some("#!/bin/sh\n"));
        let o = s.run(&["validate"]);
        assert_eq!(o.status.code(), Some(65), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(needle),
            "{name}: expected {needle:?} in:\n{err}"
        );
        assert!(
            err.contains(&format!("{name}/tool.yaml")),
            "{name}: names the file: {err}"
        );
        assert!(!err.contains("panicked"));
        let (code, v) = s.json(&["validate", "--json"]);
        assert_eq!(code, 65);
        assert_eq!(v["ok"], false);
        let d = &v["diagnostics"][0];
        assert!(d["line"].as_u64().unwrap() > 0, "{name}: {d}");
        // Running it is a clear 65, not a crash.
        let o = s.run(&["run", name]);
        if name != "missing" && name != "badcat" && name != "badver" {
            assert_eq!(o.status.code(), Some(65), "{name}: {}", stderr(&o));
        }
    }
}

#[test]
fn strict_turns_unknown_keys_into_errors_but_not_cycles() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "a",
        &format!("{}surprise: 1\n", good("a")),
        Some("#!/bin/sh\n"),
    );
    let o = s.run(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: unknown key `surprise`"));
    assert_eq!(s.run(&["validate", "--strict"]).status.code(), Some(65));
    let c = Sandbox::new(&["geo", "ipinfo"]);
    let o = c.run(&["validate", "--strict"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a cycle is reported, not an error"
    );
    assert!(
        stderr(&o).contains("info: fallback cycle"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fallback_graph_checks() {
    let s = Sandbox::new(&["geo", "ipinfo"]);
    s.manifest(
        "d",
        &format!("{}fallback_tool: nowhere\n", good("d")),
        Some("#!/bin/sh\n"),
    );
    s.manifest(
        "selfish",
        &format!("{}fallback_tool: selfish\n", good("selfish")),
        Some("#!/bin/sh\n"),
    );
    let (code, v) = s.json(&["validate", "--json"]);
    assert_eq!(code, 65);
    let msgs: Vec<String> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{} {}", d["severity"], d["message"]))
        .collect();
    let all = msgs.join("\n");
    assert!(
        all.contains("\"error\" \"fallback_tool \\\"nowhere\\\" does not exist"),
        "{all}"
    );
    assert!(all.contains("cannot point to itself"), "{all}");
    assert!(
        all.contains("\"info\" \"fallback cycle geo -> ipinfo -> geo"),
        "{all}"
    );
    // Only the named tool.
    let (code, v) = s.json(&["validate", "--json", "geo"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["checked"], 1);
}

#[test]
fn reference_style_manifest_is_accepted_unchanged() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "jukebox",
        r#"name: jukebox
version: "3.0.0"
description: "Terminal music player: telnet"
category: [media, utility]
dependencies:
  system: [telnet]
  python: []
  optional: [tmate, upterm]
apis:
  - name: telehack
    base_url: telnet://telehack.com
    health_endpoint: null
    auth_required: false
    auth_type: api_key
requires_internet: true
input_schema:
  arguments: []
  flags:
    - flag: "-json"
      description: "odd flag"
      has_argument: false
output_schema:
  text: "music"
  json_fields:
    - name: articles
      type: array
      items:
        type: object
fallback_tool: null
tags: [music]
author: someone
install_hints:
  apt: "apt install telnet"
"#,
        Some("#!/bin/sh\n"),
    );
    let o = s.run(&["validate", "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, v) = s.json(&["show", "--json", "jukebox"]);
    assert_eq!(v["category"], serde_json::json!(["media", "utility"]));
    assert_eq!(v["description"], "Terminal music player: telnet");
    assert_eq!(v["dependencies"]["optional"][1], "upterm");
    assert_eq!(v["apis"][0]["auth_type"], "api_key");
}

#[test]
fn list_show_status_and_shadowing() {
    let s = Sandbox::new(&["ok", "fail", "primary", "backup"]);
    let (code, v) = s.json(&["list", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v.as_array().unwrap().len(), 4);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backup", "fail", "ok", "primary"]);
    let (_, v) = s.json(&["list", "--json", "--category", "networking"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    // A second tools dir with a duplicate `ok`: the first wins, a warning is printed.
    let other = s.path().join("other");
    std::fs::create_dir_all(other.join("ok")).unwrap();
    std::fs::write(other.join("ok/tool.yaml"), good("ok")).unwrap();
    let o = s
        .cmd()
        .args([
            "--tools-dir",
            s.tools().to_str().unwrap(),
            "--tools-dir",
            other.to_str().unwrap(),
            "list",
        ])
        .output()
        .unwrap();
    assert!(stderr(&o).contains("shadowed"), "{}", stderr(&o));
    let (_, v) = s.json(&["show", "--json", "primary"]);
    assert_eq!(v["fallback_tool"], "backup");
    assert!(v["argv"][0].as_str().unwrap().ends_with("primary/primary"));
    let (code, v) = s.json(&["status", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["tools"], 4);
    assert_eq!(v["role"], "admin");
    assert_eq!(v["policies"], "(built-in default)");
}

#[test]
fn edited_manifests_and_policies_are_picked_up_despite_the_parse_caches() {
    let s = Sandbox::new(&[]);
    s.manifest("t", &good("t"), Some("#!/bin/sh\n"));
    let (_, v) = s.json(&["show", "--json", "t"]);
    assert_eq!(v["description"], "a good tool");
    let (_, v) = s.json(&["list", "--json"]);
    assert_eq!(v[0]["description"], "a good tool");
    s.manifest(
        "t",
        &good("t").replace("a good tool", "an edited one"),
        None,
    );
    let (_, v) = s.json(&["show", "--json", "t"]);
    assert_eq!(v["description"], "an edited one");
    let (_, v) = s.json(&["list", "--json"]);
    assert_eq!(v[0]["description"], "an edited one");
    // A deleted tool disappears from list.
    std::fs::remove_dir_all(s.tools().join("t")).unwrap();
    let (_, v) = s.json(&["list", "--json"]);
    assert_eq!(v, serde_json::json!([]));
    // Policies: an edit that blocks a tool takes effect at once.
    s.manifest("t", &good("t"), Some("#!/bin/sh\n"));
    let p = s.write(
        "home/policies.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n",
    );
    assert_eq!(s.run(&["run", "t"]).status.code(), Some(0));
    std::fs::write(
        &p,
        "roles:\n  admin:\n    permissions: [\"*\"]\n    blocked_tools: [t]\n",
    )
    .unwrap();
    assert_eq!(s.run(&["run", "t"]).status.code(), Some(77));
}
