//! The first hour (issue 15): errors that point the way, `new-tool`, `init`,
//! `ask`, completions that know the tools, start checks in `validate --strict`.

use std::path::PathBuf;

use crate::harness::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn a_near_miss_of_a_command_is_a_usage_error_and_a_missing_tool_stays_127() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["lst"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(r#"no tool or command "lst"; did you mean the command "list"?"#),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["zzzqqq"]);
    assert_eq!(code(&o), 127);
    // `run lst` asks for a tool: no command hint.
    let o = s.run(&["run", "lst"]);
    assert_eq!(code(&o), 127);
}

#[test]
fn unknown_options_before_the_tool_are_usage_errors_with_a_hint() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["run", "--no-cach", "ok"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(r#"did you mean "--no-cache"?"#),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["--no-cache", "ok"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("gathm run --no-cache TOOL"),
        "{}",
        stderr(&o)
    );
    let (c, v) = s.json(&["--json", "--bogus", "ok"]);
    assert_eq!(c, 2);
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
}

#[test]
fn nothing_found_names_the_search_path_and_how_to_add_to_it() {
    let s = Sandbox::new(&[]);
    let missing = s.path().join("nope");
    let o = s
        .cmd()
        .env("GATHM_TOOLS_PATH", &missing)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let err = stderr(&o);
    assert!(err.contains("warning: GATHM_TOOLS_PATH entry"), "{err}");
    assert!(
        err.contains(&format!("{} (missing)", missing.display())),
        "{err}"
    );
    assert!(
        err.contains(&s.home().join("tools").display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("--tools-dir DIR") && err.contains("gathm init"),
        "{err}"
    );
    let o = s.run(&["--tools-dir", missing.to_str().unwrap(), "run", "x"]);
    assert_eq!(code(&o), 127);
    assert!(stderr(&o).contains("looked in"), "{}", stderr(&o));
    // An error under validate --strict, a warning without.
    let o = s.run(&["--tools-dir", missing.to_str().unwrap(), "validate"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.run(&[
        "--tools-dir",
        missing.to_str().unwrap(),
        "validate",
        "--strict",
    ]);
    assert_eq!(code(&o), 65);
    assert!(stderr(&o).contains("tools directory does not exist"));
    assert!(!stderr(&o).contains(":0:0"), "{}", stderr(&o));
}

#[test]
fn a_missing_pipeline_file_names_itself_without_a_position() {
    let s = Sandbox::new(&[]);
    let o = s.run(&["pipeline", "run", "nosuch.yaml"]);
    assert_eq!(code(&o), 65);
    let err = stderr(&o);
    assert!(err.contains("nosuch.yaml: error: cannot read"), "{err}");
    assert!(!err.contains(":0:0"), "{err}");
}

#[test]
fn json_errors_are_json() {
    let s = Sandbox::new(&[]);
    let (c, v) = s.json(&["--json", "show", "nosuch"]);
    assert_eq!(c, 127);
    assert_eq!(v["exit_code"], 127);
    assert!(v["error"].as_str().unwrap().contains("nosuch"));
    let (c, v) = s.json(&["completions", "bash", "--json"]);
    assert_eq!(c, 0);
    assert!(v["script"].as_str().unwrap().contains("_gathm_dynamic"));
}

#[test]
fn new_tool_scaffolds_a_tool_that_passes_validate_strict() {
    let s = Sandbox::new(&[]);
    for lang in ["bash", "python"] {
        let name = format!("hello-{lang}");
        let o = s.run(&["new-tool", &name, "--category", "data", "--lang", lang]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("{name}/tool.yaml")), "{out}");
        let script = s.tools().join(&name).join(&name);
        use std::os::unix::fs::PermissionsExt;
        assert!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o111 != 0);
        let o = s.run(&["validate", "--strict", &name]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let o = s.run(&[&name, "--help"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            stdout(&o).to_lowercase().contains("usage"),
            "{}",
            stdout(&o)
        );
        let o = s.run(&["run", &name, "there"]);
        assert_eq!(stdout(&o).trim(), format!("Hello from {name}: there"));
    }
    assert!(
        s.log("audit.log")
            .iter()
            .any(|r| r["action"] == "tool_create" && r["tool"] == "hello-bash")
    );
    // Exists already; bad names; bad categories list the eight.
    let o = s.run(&["new-tool", "hello-bash"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"));
    let o = s.run(&["new-tool", "../evil"]);
    assert_eq!(code(&o), 2);
    assert!(!s.path().join("evil").exists());
    let o = s.run(&["new-tool", "x", "--category", "secruity"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains(r#"did you mean "security"?"#), "{err}");
    for c in [
        "security",
        "networking",
        "data",
        "media",
        "utility",
        "finance",
        "science",
        "productivity",
    ] {
        assert!(err.contains(c), "{err}");
    }
    // --dir elsewhere: says how to reach it.
    let other = s.path().join("elsewhere");
    let o = s.run(&["new-tool", "far", "--dir", other.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--tools-dir"), "{}", stdout(&o));
    assert!(other.join("far/tool.yaml").is_file());
}

#[test]
fn init_installs_the_catalogue_idempotently() {
    let s = Sandbox::new(&[]);
    let run_init = || {
        s.cmd()
            .env_remove("GATHM_TOOLS_PATH")
            .args(["--json", "init", "--from"])
            .arg(repo().join("tools"))
            .output()
            .unwrap()
    };
    let o = run_init();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = v["installed"].as_array().unwrap().len();
    assert!(n >= 20, "{v}");
    assert_eq!(v["policies"], "created");
    assert!(s.home().join("policies.yaml").is_file());
    let v: serde_json::Value = serde_json::from_slice(&run_init().stdout).unwrap();
    assert_eq!(v["installed"].as_array().unwrap().len(), 0);
    assert_eq!(v["kept"].as_array().unwrap().len(), n);
    assert_eq!(v["policies"], "kept");
    // From a directory without tools (cron starts in $HOME): `list` finds them.
    let o = s
        .cmd()
        .env_remove("GATHM_TOOLS_PATH")
        .args(["--json", "list"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let count = v["count"]
        .as_u64()
        .unwrap_or_else(|| v.as_array().map_or(0, |a| a.len() as u64));
    assert_eq!(count as usize, n, "{v}");
    // In a checkout (./tools holds the same catalogue), identical copies are
    // no shadowing conflict; a changed one still is.
    let hash = repo().join("tools/hash");
    std::fs::create_dir_all(s.tools().join("hash")).unwrap();
    for f in ["tool.yaml", "hash"] {
        std::fs::copy(hash.join(f), s.tools().join("hash").join(f)).unwrap();
    }
    let run = |args: &[&str]| {
        s.cmd()
            .env_remove("GATHM_TOOLS_PATH")
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["list"]);
    assert!(!stderr(&o).contains("shadowed"), "{}", stderr(&o));
    assert_eq!(code(&run(&["validate", "--strict", "hash"])), 0);
    let y = s.tools().join("hash/tool.yaml");
    let text = std::fs::read_to_string(&y).unwrap();
    std::fs::write(&y, format!("{text}\n# changed\n")).unwrap();
    assert!(stderr(&run(&["list"])).contains("shadowed"));
}

#[test]
fn validate_strict_and_health_check_that_the_tool_can_start() {
    let s = Sandbox::new(&[]);
    let yaml = |name: &str, extra: &str| {
        format!(
            "name: {name}\nversion: \"1.0.0\"\ndescription: \"a test tool\"\ncategory: utility\n{extra}"
        )
    };
    s.manifest("noexec", &yaml("noexec", ""), Some("#!/bin/sh\necho hi\n"));
    use std::os::unix::fs::PermissionsExt;
    let p = s.tools().join("noexec/noexec");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.manifest(
        "badshebang",
        &yaml("badshebang", ""),
        Some("#!/usr/bin/env no-such-interpreter-x\necho hi\n"),
    );
    s.manifest(
        "nocmd",
        &yaml("nocmd", "command: [no-such-program-x, --flag]\n"),
        None,
    );
    s.manifest("good", &yaml("good", ""), Some("#!/bin/sh\necho hi\n"));
    let o = s.run(&["validate", "--strict", "good"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (tool, needle, line) in [
        ("noexec", "is not executable", 1),
        ("badshebang", "no-such-interpreter-x", 1),
        ("nocmd", "no-such-program-x", 5),
    ] {
        let o = s.run(&["validate", tool]);
        assert_eq!(code(&o), 0, "plain validate: a warning");
        let o = s.run(&["validate", "--strict", tool]);
        assert_eq!(code(&o), 65, "{tool}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{tool}: {err}");
        assert!(
            err.contains(&format!("{tool}/tool.yaml:{line}:")),
            "{tool}: {err}"
        );
        let (c, v) = s.json(&["--json", "health", tool]);
        assert_eq!(c, 1, "{v}");
        assert_eq!(v["status"], "unhealthy", "{v}");
        assert!(v["issues"][0].as_str().unwrap().contains(needle), "{v}");
        assert!(
            v["issues"][0].as_str().unwrap().contains("tool.yaml:"),
            "{v}"
        );
    }
    // run says why it cannot start.
    let o = s.run(&["noexec"]);
    assert_eq!(code(&o), 126);
    assert!(
        stderr(&o).contains("hint: ") && stderr(&o).contains("noexec/tool.yaml:1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cache_clear_empties_and_purge_keeps_fresh_entries() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "c",
        "name: c\nversion: \"1.0.0\"\ndescription: \"a test tool\"\ncategory: utility\ncache: {ttl: 600}\n",
        Some("#!/bin/sh\necho hi\n"),
    );
    assert_eq!(code(&s.run(&["c"])), 0);
    let (_, v) = s.json(&["--json", "cache", "purge"]);
    assert_eq!(v["removed"], 0, "{v}");
    let (_, v) = s.json(&["--json", "cache", "clear"]);
    assert_eq!(v["action"], "clear");
    assert_eq!(v["removed"], 1, "{v}");
}

/// The routing table: a plain request and the shipped tool it must reach.
const ROUTES: &[(&str, &str)] = &[
    ("what is the weather in Paris tomorrow", "weather"),
    ("will it rain in London? forecast please", "weather"),
    ("resolve the MX records of example.com", "dns"),
    ("look up the TXT records for a domain", "dns"),
    ("who is the registrar of example.org", "rdap"),
    ("whois lookup for example.com", "whois"),
    ("geolocate my IP address", "geo"),
    ("ipinfo for 8.8.8.8", "ipinfo"),
    ("check the TLS certificate expiry of github.com", "certinfo"),
    ("base64 encode this text", "cipher"),
    ("decode a base32 string", "cipher"),
    ("convert 100 USD to EUR", "currency"),
    ("exchange rates for the euro", "currency"),
    ("search the CVE database for log4j vulnerabilities", "cve"),
    ("is the disk full on this server", "diskcheck"),
    ("how much storage is left on the mounts", "diskcheck"),
    ("sha256 checksum of a file", "hash"),
    ("md5 digest of hello", "hash"),
    ("audit the security headers of my website", "headersaudit"),
    ("is https://example.com up? status and latency", "httpprobe"),
    ("pretty-print this JSON", "jsonfmt"),
    ("validate a json document", "jsonfmt"),
    ("latest news headlines about rust", "news"),
    ("read an RSS feed", "news"),
    ("generate a strong random password", "passgen"),
    ("scan open TCP ports on 10.0.0.1", "portscan"),
    ("RDAP data for AS13335", "rdap"),
    ("how much memory and CPU does this machine have", "sysinfo"),
    ("system load and uptime", "sysinfo"),
    ("convert unix epoch 1700000000 to ISO 8601", "timeconv"),
    ("what time is it in the Tokyo time zone", "timeconv"),
    ("add a task to my todo list", "todo"),
    ("split this URL into host, path and query", "urlparse"),
    ("generate a UUID v7", "uuid"),
    ("give me a new guid", "uuid"),
    ("resolve a hostname with getent", "dns-getent"),
    ("what is my WAN IP and router", "geo"),
];

#[test]
fn ask_routes_plain_requests_to_the_shipped_tools() {
    let s = Sandbox::new(&[]);
    let tools = repo().join("tools");
    let mut wrong = Vec::new();
    for (query, want) in ROUTES {
        let mut args = vec!["--json", "--tools-dir", tools.to_str().unwrap(), "ask"];
        args.extend(query.split_whitespace());
        let (c, v) = s.json(&args);
        if c != 0 || v["matched_tool"] != *want {
            wrong.push(format!(
                "{query:?}: want {want}, got {} ({})",
                v["matched_tool"], v["reasons"]
            ));
        }
    }
    assert!(ROUTES.len() >= 30);
    assert!(wrong.is_empty(), "misrouted:\n{}", wrong.join("\n"));
}

#[test]
fn ask_explains_lists_alternatives_and_runs() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["ask", "--explain", "ok", "tool"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ok "), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("the tool's name (+8)"),
        "{}",
        stdout(&o)
    );
    let o = s.run(&["ask", "zzzq", "qqqz"]);
    assert_eq!(code(&o), 1);
    let (c, v) = s.json(&["--json", "ask", "zzzq"]);
    assert_eq!(c, 1);
    assert_eq!(v["matched_tool"], serde_json::Value::Null);
    // --run with arguments after `--`; stdin is not a terminal: no prompt.
    let o = s.run(&["ask", "--run", "ok", "--", "a b", "c"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Drive the bash completion as bash does (COMP_WORDS/COMP_CWORD).
fn complete_bash(s: &Sandbox, words: &[&str]) -> Vec<String> {
    let script = repo().join("completions/gathm.bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; complete -p gathm >/dev/null || exit 3; COMP_WORDS=({}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
         _gathm_dynamic gathm \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" ")
    );
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(prog)
        .env("PATH", path)
        .env("GATHM_HOME", s.home())
        .env("GATHM_TOOLS_PATH", s.tools())
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completion_knows_the_tools() {
    let s = Sandbox::new(&["ok", "fail", "slow"]);
    let tools = complete_bash(&s, &["gathm", "show", ""]);
    assert_eq!(tools, ["fail", "ok", "slow"]);
    assert_eq!(
        complete_bash(&s, &["gathm", "run", "--no-cache", "o"]),
        ["ok"]
    );
    assert_eq!(
        complete_bash(&s, &["gathm", "breaker", "reset", "s"]),
        ["slow"]
    );
    assert_eq!(
        complete_bash(&s, &["gathm", "cache", "invalidate", "f"]),
        ["fail"]
    );
    assert_eq!(
        complete_bash(&s, &["gathm", "policy", "check", "o"]),
        ["ok"]
    );
    assert_eq!(complete_bash(&s, &["gathm", "heal", "o"]), ["ok"]);
    // First word: commands and tools.
    let first = complete_bash(&s, &["gathm", ""]);
    assert!(first.contains(&"list".to_string()) && first.contains(&"ok".to_string()));
    assert!(!first.iter().any(|w| w.starts_with("__")), "{first:?}");
    assert_eq!(complete_bash(&s, &["gathm", "sl"]), ["slow"]);
    // --tools-dir on the line is honoured.
    let other = s.path().join("other");
    std::fs::create_dir_all(other.join("zed")).unwrap();
    std::fs::write(
        other.join("zed/tool.yaml"),
        "name: zed\nversion: \"1.0.0\"\ndescription: z\ncategory: utility\n",
    )
    .unwrap();
    let dir = other.to_str().unwrap();
    assert_eq!(
        complete_bash(&s, &["gathm", "--tools-dir", dir, "show", "z"]),
        ["zed"]
    );
    // Options still complete through clap's part.
    let opts = complete_bash(&s, &["gathm", "list", "--cat"]);
    assert_eq!(opts, ["--category"]);
}

#[test]
fn zsh_and_fish_scripts_complete_tool_names() {
    let s = Sandbox::new(&[]);
    let zsh = stdout(&s.run(&["completions", "zsh"]));
    assert!(zsh.contains(":tool -- Tool name:_gathm_tools'"), "zsh");
    assert!(zsh.contains("__complete tools"));
    let fish = stdout(&s.run(&["completions", "fish"]));
    assert!(fish.contains("complete -c gathm -n __gathm_wants_tool"));
    assert!(!fish.contains("-a \"__complete\""));
}

#[test]
fn monitor_feeds_the_breakers_and_logs_transitions() {
    let s = Sandbox::new(&["ok"]);
    s.manifest(
        "broken",
        "name: broken\nversion: \"1.0.0\"\ndescription: \"a test tool\"\ncategory: utility\n",
        Some("#!/usr/bin/env no-such-interpreter-x\necho hi\n"),
    );
    let o = s.run(&["monitor", "--once"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("TOOL "), "{out}");
    assert!(out.contains("broken  unhealthy  open"), "{out}");
    assert!(out.contains("ok      healthy    closed"), "{out}");
    assert!(out.contains("broken breaker: closed -> open"), "{out}");
    let (_, v) = s.json(&["--json", "breaker", "status", "broken"]);
    assert_eq!(v["state"], "open", "{v}");
    // Still unhealthy: stays open, no new transition.
    let (c, v) = s.json(&["--json", "monitor", "--once", "broken"]);
    assert_eq!(c, 1);
    assert_eq!(v["health"][0]["breaker"], "open");
    // Repaired, and the recovery timeout has passed: the check is the probe.
    std::fs::write(s.tools().join("broken/broken"), "#!/bin/sh\necho fixed\n").unwrap();
    let o = s
        .cmd()
        .env("CB_RECOVERY_TIMEOUT", "0")
        .args(["monitor", "--once", "broken"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("broken breaker: half_open -> closed"),
        "{}",
        stdout(&o)
    );
    let (_, v) = s.json(&["--json", "breaker", "status", "broken"]);
    assert_eq!(v["state"], "closed", "{v}");
    let log = std::fs::read_to_string(s.home().join("logs/gathm.log")).unwrap();
    assert!(log.contains("\"monitor\""), "{log}");
    // At a terminal: a titled table (pseudo-terminal through script(1)).
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok()
    {
        let cmdline = format!("{} monitor --once ok", bin().display());
        let o = std::process::Command::new("script")
            .args(["-qec", &cmdline, "/dev/null"])
            .env("GATHM_HOME", s.home())
            .env("GATHM_TOOLS_PATH", s.tools())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.contains("gathm monitor: 1 tools"), "{out}");
        assert!(out.contains("ok    healthy  closed"), "{out}");
    }
}

#[test]
fn text_output_is_tables_with_headers() {
    let s = Sandbox::new(&["fail"]);
    s.manifest(
        "c",
        "# a comment kept by show\nname: c\nversion: \"1.0.0\"\ndescription: \"a test tool\"\ncategory: utility\ncache: {ttl: 600}\ninput_schema:\n  arguments:\n    - name: host\n      required: true\n    - name: port\n  flags:\n    - flag: \"-v\"\nfallback_tool: fail\n",
        Some("#!/bin/sh\necho hi\n"),
    );
    let o = s.run(&["list"]);
    let out = stdout(&o);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME")
            && header.contains("ARGUMENTS")
            && header.contains("DESCRIPTION"),
        "{out}"
    );
    assert!(out.contains("HOST [PORT] [options]"), "{out}");
    assert!(out.ends_with("2 tools\n"), "{out}");
    // show: the manifest as written, then the effective settings and their sources.
    let out = stdout(&s.run(&["show", "c"]));
    assert!(out.contains("# a comment kept by show\nname: c\n"), "{out}");
    assert!(out.contains("# effective settings"), "{out}");
    for needle in [
        "timeout",
        "120 s",
        "ttl 600 s",
        "fallbacks  fail",
        "1 attempt",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let (_, v) = s.json(&["--json", "show", "c"]);
    let eff = v["effective"].as_array().unwrap();
    assert!(
        eff.iter()
            .any(|e| e["setting"] == "timeout" && e["source"] == "default"),
        "{v}"
    );
    assert!(
        eff.iter().any(|e| e["setting"] == "fallbacks"
            && e["value"] == "fail"
            && e["source"] == "manifest"),
        "{v}"
    );
    // cache stats.
    assert_eq!(code(&s.run(&["c"])), 0);
    let out = stdout(&s.run(&["cache", "stats"]));
    assert!(out.starts_with("cache: 1 active entries"), "{out}");
    assert!(out.contains("TOOL  ACTIVE ENTRIES\nc     1\n"), "{out}");
    // breaker status.
    for _ in 0..3 {
        s.run(&["run", "--no-cache", "fail"]);
    }
    let out = stdout(&s.run(&["breaker", "status"]));
    assert!(
        out.starts_with("TOOL  STATE  FAILURES  THRESHOLD  PROBE IN\n"),
        "{out}"
    );
    assert!(out.contains("fail  open   3         3"), "{out}");
    // health.
    let out = stdout(&s.run(&["health"]));
    assert!(out.starts_with("TOOL  STATUS"), "{out}");
    assert!(
        out.contains("healthy: 1, degraded: 1, unhealthy: 0"),
        "{out}"
    );
}

#[test]
fn colours_only_at_a_terminal_and_never_under_no_color() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = Sandbox::new(&["ok"]);
    let pty = |no_color: Option<&str>| {
        let cmdline = format!("{} list", bin().display());
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmdline, "/dev/null"])
            .env("GATHM_HOME", s.home())
            .env("GATHM_TOOLS_PATH", s.tools())
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        stdout(&c.output().unwrap())
    };
    assert!(pty(None).contains("\x1b[1mNAME\x1b[0m"));
    assert!(!pty(Some("1")).contains('\x1b'));
    // Piped: never.
    let o = s.cmd().env_remove("NO_COLOR").arg("list").output().unwrap();
    assert!(!stdout(&o).contains('\x1b'));
}

#[test]
fn ask_run_confirms_at_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = Sandbox::new(&["ok"]);
    for (answer, want) in [("y\n", 0), ("n\n", 1)] {
        let cmdline = format!("{} ask --run ok -- typed", bin().display());
        let mut child = std::process::Command::new("script")
            .args(["-qec", &cmdline, "/dev/null"])
            .env("GATHM_HOME", s.home())
            .env("GATHM_TOOLS_PATH", s.tools())
            .env("NO_COLOR", "1")
            .current_dir(s.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("run `ok typed`? [y/N]"), "{all}");
        assert_eq!(o.status.code(), Some(want), "{answer:?}: {all}");
        assert_eq!(all.contains("not run"), want == 1, "{all}");
    }
}

fn shell_env(s: &Sandbox, c: &mut std::process::Command) {
    let bin_dir = bin().parent().unwrap().to_path_buf();
    c.env(
        "PATH",
        format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
    )
    .env("GATHM_HOME", s.home())
    .env("GATHM_TOOLS_PATH", s.tools())
    .current_dir(s.path());
}

#[test]
fn fish_completion_knows_the_tools() {
    if std::process::Command::new("fish")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = Sandbox::new(&["ok", "slow"]);
    let script = repo().join("completions/gathm.fish");
    let complete = |line: &str| {
        let mut c = std::process::Command::new("fish");
        c.arg("-c").arg(format!(
            "source '{}'; complete -C '{line}'",
            script.display()
        ));
        shell_env(&s, &mut c);
        let o = c.output().unwrap();
        stdout(&o)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("gathm show "), ["ok", "slow"]);
    assert_eq!(complete("gathm breaker reset s"), ["slow"]);
    assert!(complete("gathm ").contains(&"slow".to_string()));
    assert!(!complete("gathm run slow ").contains(&"ok".to_string()));
}

#[test]
fn zsh_completion_knows_the_tools() {
    if std::process::Command::new("zsh")
        .arg("--version")
        .output()
        .is_err()
    {
        return;
    }
    let s = Sandbox::new(&["ok", "slow"]);
    let fpath = s.path().join("zfunc");
    std::fs::create_dir_all(&fpath).unwrap();
    std::fs::copy(repo().join("completions/_gathm"), fpath.join("_gathm")).unwrap();
    // Type the line and a Tab in an interactive zsh on a pseudo-terminal.
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='> '; fpath=({} \$fpath); autoload -Uz compinit; compinit -u -D; unsetopt beep"
sleep 1
while zpty -rt z junk; do :; done
zpty -w -n z "$1"$'\t'
sleep 2
while zpty -rt z line; do print -rn -- "$line"; done
zpty -d z
"#,
        fpath.display()
    );
    let complete = |line: &str| {
        let mut c = std::process::Command::new("zsh");
        c.args(["-f", "-c", &driver, "zsh", line]);
        shell_env(&s, &mut c);
        stdout(&c.output().unwrap())
    };
    let out = complete("gathm show sl");
    assert!(out.contains("gathm show slow"), "{out:?}");
    let out = complete("gathm cache invalidate o");
    assert!(out.contains("gathm cache invalidate ok"), "{out:?}");
}
