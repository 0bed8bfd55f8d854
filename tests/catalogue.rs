//! The tool catalogue in `tools/`, exercised through the real `gathm` binary.
//!
//! Everything here is offline and deterministic: network tools talk to a stub
//! server (`tests/catalogue_support/stub_server.py`), to `openssl s_server`
//! or to a `TcpListener` on 127.0.0.1. Tests that need the real internet run
//! only when `GATHM_ONLINE_TESTS=1`.
//!
//! Needs on PATH: bash, coreutils, python3, curl, openssl, getent.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// An address nothing listens on: connections are refused at once.
const DEAD_URL: &str = "http://127.0.0.1:1";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    repo().join("tools")
}

/// Every tool directory, sorted.
fn tool_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(tools_dir())
        .expect("tools/ exists")
        .map(|e| e.expect("readable tools/ entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The few manifest facts the tests need, read from the catalogue's own
/// (generated, regular) layout: top-level `key: value` lines and the
/// `json_fields` list of `output_schema`.
struct Manifest {
    text: String,
}

impl Manifest {
    fn load(tool: &str) -> Manifest {
        let path = tools_dir().join(tool).join("tool.yaml");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Manifest { text }
    }

    /// A top-level scalar, quotes removed.
    fn scalar(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}:");
        self.text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().trim_matches('"').to_string())
    }

    fn version(&self) -> String {
        self.scalar("version").expect("manifest has a version")
    }

    /// Names declared under `output_schema.json_fields`.
    fn json_fields(&self) -> BTreeSet<String> {
        let mut fields = BTreeSet::new();
        let mut inside = false;
        for line in self.text.lines() {
            if line.trim_start().starts_with("json_fields:") {
                inside = true;
                continue;
            }
            if inside {
                let indent = line.len() - line.trim_start().len();
                if !line.trim().is_empty() && indent <= 2 {
                    break;
                }
                if let Some(name) = line.trim_start().strip_prefix("- name:") {
                    fields.insert(name.trim().trim_matches('"').to_string());
                }
            }
        }
        fields
    }
}

/// A temporary GATHM_HOME plus the environment every run gets.
struct Sandbox {
    home: TempDir,
    env: Vec<(String, String)>,
    path: Option<String>,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            home: tempfile::tempdir().expect("temp dir"),
            env: vec![("GATHM_NET_TIMEOUT".into(), "5".into())],
            path: None,
        }
    }

    fn with_env(mut self, key: &str, value: impl Into<String>) -> Sandbox {
        self.env.push((key.to_string(), value.into()));
        self
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// Apply the clean test environment to `cmd`.
    fn prepare(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("GATHM_")
                || key.starts_with("CB_")
                || key.to_ascii_lowercase().ends_with("_proxy")
            {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.env("GATHM_HOME", self.home())
            .env("GATHM_CACHE_ENABLED", "false")
            .env("CB_FAILURE_THRESHOLD", "1000")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(path) = &self.path {
            cmd.env("PATH", path);
        }
        cmd.stdin(Stdio::null());
    }

    /// `gathm --tools-dir tools <args>` with a clean environment.
    fn gathm<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gathm"));
        self.prepare(&mut cmd);
        cmd.arg("--tools-dir").arg(tools_dir());
        cmd.args(args);
        cmd
    }

    /// The tool's executable run directly (no gathm: no policy, no fallback).
    fn tool(&self, tool: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(tools_dir().join(tool).join(tool));
        self.prepare(&mut cmd);
        cmd.args(args);
        cmd.output().expect("tool runs")
    }

    /// `gathm run TOOL ARGS…`
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let mut cmd = self.gathm(["run", tool]);
        cmd.args(args);
        cmd.output().expect("gathm runs")
    }

    /// `gathm run TOOL --json ARGS…`, which must succeed with one JSON object
    /// whose keys are exactly the manifest's `json_fields`.
    fn run_json(&self, tool: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(tool, &all);
        assert_eq!(code(&out), 0, "{tool} {args:?} failed:\n{}", show(&out));
        let value = parse_json(&out.stdout, tool);
        assert_schema(tool, &value);
        value
    }

    /// `gathm run --json TOOL ARGS…`: gathm's envelope.
    fn envelope(&self, tool: &str, args: &[&str]) -> Value {
        let mut cmd = self.gathm(["run", "--json", tool]);
        cmd.args(args);
        let out = cmd.output().expect("gathm runs");
        parse_json(&out.stdout, "the envelope")
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

fn parse_json(bytes: &[u8], what: &str) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let value: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON value ({e}):\n{text}"));
    assert!(value.is_object(), "{what}: not a JSON object: {text}");
    value
}

/// The object's keys are exactly the manifest's declared json_fields.
fn assert_schema(tool: &str, value: &Value) {
    let declared = Manifest::load(tool).json_fields();
    let actual: BTreeSet<String> = value.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        actual, declared,
        "{tool}: JSON keys differ from output_schema.json_fields"
    );
}

/// A failed run: exit 1 and a one-line `Error: …` on stderr.
fn assert_failed(out: &Output, what: &str) {
    assert_eq!(code(out), 1, "{what} should exit 1:\n{}", show(out));
    assert!(
        stderr(out).lines().any(|l| l.starts_with("Error: ")),
        "{what} should print an Error: line on stderr:\n{}",
        show(out)
    );
}

/// An answer that is not an outage: exit 3 and an `Error:` line.
fn assert_answer(out: &Output, what: &str) {
    assert_eq!(code(out), 3, "{what} should exit 3:\n{}", show(out));
    assert!(
        stderr(out).lines().any(|l| l.starts_with("Error: ")),
        "{what} should print an Error: line on stderr:\n{}",
        show(out)
    );
}

fn attempts(envelope: &Value) -> Vec<(String, i64, String)> {
    envelope["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("envelope without attempts: {envelope}"))
        .iter()
        .map(|a| {
            (
                a["tool"].as_str().unwrap_or_default().to_string(),
                a["exit_code"].as_i64().unwrap_or(-1),
                a["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Poll `ready` every 20 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready after {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed when the guard drops.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The canned HTTP + WHOIS stub on 127.0.0.1.
struct Stub {
    _server: Server,
    _dir: TempDir,
    http: u16,
    whois: u16,
}

impl Stub {
    fn start() -> Stub {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready.json");
        let child = Command::new("python3")
            .arg(repo().join("tests/catalogue_support/stub_server.py"))
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts the stub server");
        let mut server = Server { child };
        wait_until(Duration::from_secs(15), "stub server", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("stub server exited early: {status}");
            }
            ready.exists()
        });
        let ports: Value =
            serde_json::from_str(&fs::read_to_string(&ready).expect("ready file")).expect("json");
        let port = |k: &str| ports[k].as_u64().expect("port") as u16;
        let (http, whois) = (port("http"), port("whois"));
        wait_until(Duration::from_secs(5), "stub port", || {
            TcpStream::connect(("127.0.0.1", http)).is_ok()
        });
        Stub {
            _server: server,
            _dir: dir,
            http,
            whois,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http, path)
    }

    /// A sandbox whose API base URLs all point at this stub.
    fn sandbox(&self) -> Sandbox {
        Sandbox::new()
            .with_env("GATHM_CVE_API", self.url("/nvd"))
            .with_env("GATHM_WEATHER_API", self.url("/meteo"))
            .with_env("GATHM_GEOCODE_API", self.url("/geocode"))
            .with_env("GATHM_CURRENCY_API", self.url("/fx"))
            .with_env("GATHM_NEWS_FEED", self.url("/feed.xml"))
            .with_env("GATHM_RDAP_API", self.url("/rdap"))
            .with_env("GATHM_IPINFO_API", self.url("/ipinfo"))
            .with_env("GATHM_GEO_API", self.url("/geo"))
            .with_env("GATHM_WHOIS_SERVER", format!("127.0.0.1:{}", self.whois))
    }
}

/// A sandbox whose API base URLs all point at a closed port.
fn dead_sandbox() -> Sandbox {
    Sandbox::new()
        .with_env("GATHM_CVE_API", DEAD_URL)
        .with_env("GATHM_WEATHER_API", DEAD_URL)
        .with_env("GATHM_GEOCODE_API", DEAD_URL)
        .with_env("GATHM_CURRENCY_API", DEAD_URL)
        .with_env("GATHM_NEWS_FEED", DEAD_URL)
        .with_env("GATHM_RDAP_API", DEAD_URL)
        .with_env("GATHM_IPINFO_API", DEAD_URL)
        .with_env("GATHM_GEO_API", DEAD_URL)
        .with_env("GATHM_WHOIS_SERVER", "127.0.0.1:1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Where `name` lives on the current PATH, symlinks resolved.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .map(|p| fs::canonicalize(&p).unwrap_or(p))
}

// ---------------------------------------------------------------------------
// The catalogue as a whole
// ---------------------------------------------------------------------------

#[test]
fn catalogue_has_at_least_20_tools_each_with_manifest_and_executable() {
    let names = tool_names();
    assert!(names.len() >= 20, "only {} tools: {names:?}", names.len());
    for required in [
        "dns",
        "dns-getent",
        "httpprobe",
        "headersaudit",
        "certinfo",
        "portscan",
        "whois",
        "rdap",
        "ipinfo",
        "geo",
        "cipher",
        "hash",
        "todo",
        "sysinfo",
        "diskcheck",
        "cve",
        "weather",
        "currency",
        "news",
    ] {
        assert!(names.iter().any(|n| n == required), "{required} is missing");
    }
    for name in &names {
        let dir = tools_dir().join(name);
        let manifest = Manifest::load(name);
        assert_eq!(manifest.scalar("name").as_deref(), Some(name.as_str()));
        assert_eq!(manifest.scalar("author").as_deref(), Some("gathm"));
        assert!(
            manifest.text.contains("\nversion: \"1.0.0\"\n"),
            "{name}: version must be the quoted \"1.0.0\""
        );
        assert!(
            !manifest.json_fields().is_empty(),
            "{name}: no json_fields declared"
        );
        let exe = dir.join(name);
        let mode = fs::metadata(&exe)
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", exe.display());
        let mut head = String::new();
        fs::File::open(&exe)
            .and_then(|f| f.take(64).read_to_string(&mut head))
            .expect("readable script");
        assert!(
            head.starts_with("#!/usr/bin/env bash\n")
                || head.starts_with("#!/usr/bin/env python3\n"),
            "{name}: the executable must be a bash or python3 script"
        );
    }
}

#[test]
fn manifests_wire_the_reference_fallbacks() {
    let fallback = |t: &str| {
        Manifest::load(t)
            .scalar("fallback_tool")
            .unwrap_or_default()
    };
    assert_eq!(fallback("dns"), "dns-getent");
    assert_eq!(fallback("headersaudit"), "httpprobe");
    assert_eq!(fallback("whois"), "rdap");
    assert_eq!(fallback("geo"), "ipinfo");
    assert_eq!(fallback("ipinfo"), "geo");
    assert_eq!(fallback("cipher"), "null");
    assert_eq!(
        Manifest::load("todo").scalar("cache").as_deref(),
        Some("false")
    );
    for offline in [
        "cipher",
        "hash",
        "todo",
        "sysinfo",
        "diskcheck",
        "dns-getent",
    ] {
        assert_eq!(
            Manifest::load(offline)
                .scalar("requires_internet")
                .as_deref(),
            Some("false"),
            "{offline} works offline"
        );
    }
    for online in [
        "cve", "weather", "currency", "news", "rdap", "ipinfo", "geo", "whois",
    ] {
        assert_eq!(
            Manifest::load(online)
                .scalar("requires_internet")
                .as_deref(),
            Some("true"),
            "{online} needs the internet"
        );
    }
}

#[test]
fn every_manifest_passes_strict_validation() {
    let sb = Sandbox::new();
    let out = sb
        .gathm(["validate", "--strict", "--json"])
        .output()
        .expect("gathm validate");
    let report = parse_json(&out.stdout, "validate report");
    let diagnostics = report["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The only diagnostic allowed is the deliberate geo <-> ipinfo cycle that
    // the reference ships (PRODUCT.md section 2: "a cycle is reported").
    let unexpected: Vec<&Value> = diagnostics
        .iter()
        .filter(|d| {
            let msg = d["message"].as_str().unwrap_or_default();
            !(d["severity"] == "info"
                && msg.contains("cycle")
                && msg.contains("geo")
                && msg.contains("ipinfo"))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "manifest problems:\n{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    assert_eq!(report["errors"], 0, "report: {report}");
    assert_eq!(
        report["checked"].as_u64(),
        Some(tool_names().len() as u64),
        "report: {report}"
    );
    assert_eq!(report["ok"], true, "report: {report}");
    assert_eq!(code(&out), 0, "{}", show(&out));
}

#[test]
fn every_tool_answers_help_and_version() {
    let sb = Sandbox::new();
    for name in tool_names() {
        let version = Manifest::load(&name).version();

        let out = sb.run(&name, &["-v"]);
        assert_eq!(code(&out), 0, "{name} -v:\n{}", show(&out));
        assert_eq!(stdout(&out), format!("Version {version}\n"), "{name} -v");

        let out = sb.run(&name, &["-h"]);
        assert_eq!(code(&out), 0, "{name} -h:\n{}", show(&out));
        let text = stdout(&out);
        let first = text.lines().next().unwrap_or_default();
        let title = format!(" (v{version})");
        assert!(
            first.ends_with(&title)
                && first[..first.len() - title.len()].eq_ignore_ascii_case(&name),
            "{name} -h: first line should be \"<Name> (v{version})\", got {first:?}"
        );
        assert!(text.contains("Usage:"), "{name} -h has no Usage line");
        assert!(text.contains("--json"), "{name} -h does not mention --json");
    }
}

#[test]
fn every_tool_rejects_an_unknown_option_with_usage_and_exit_2() {
    let sb = Sandbox::new();
    for name in tool_names() {
        let out = sb.run(&name, &["--no-such-option"]);
        assert_eq!(code(&out), 2, "{name} --no-such-option:\n{}", show(&out));
        let err = stderr(&out);
        assert!(err.starts_with("Error: "), "{name}: {err}");
        assert!(err.contains("Usage:"), "{name}: no usage on stderr: {err}");
        assert!(
            out.stdout.is_empty(),
            "{name}: usage errors print nothing on stdout"
        );
    }
}

// ---------------------------------------------------------------------------
// Offline tools
// ---------------------------------------------------------------------------

#[test]
fn cipher_round_trips_base64_and_base32() {
    let sb = Sandbox::new();
    // gathm's default policy blocks "$(" and backticks, so the text here has
    // quotes, spaces and other shell characters; the tool itself is checked
    // with command substitution below.
    let text = "he said \"hi\" & it's  two  spaces; echo pwned | cat > x";
    for base in ["64", "32"] {
        let out = sb.run("cipher", &["-e", "-b", base, text]);
        assert_eq!(code(&out), 0, "{}", show(&out));
        let encoded = stdout(&out).trim_end().to_string();
        assert!(!encoded.contains(' ') && !encoded.is_empty());

        let out = sb.run("cipher", &["-d", "-b", base, &encoded]);
        assert_eq!(code(&out), 0, "{}", show(&out));
        assert_eq!(stdout(&out), text, "base{base} round trip");

        let v = sb.run_json("cipher", &["-d", "-b", base, &encoded]);
        assert_eq!(v["output"], text);
        assert_eq!(v["encoding"], format!("base{base}"));
    }
    let out = sb.run("cipher", &["-e", "hello world"]);
    assert_eq!(stdout(&out), "aGVsbG8gd29ybGQ=\n");
    let out = sb.run("cipher", &["-e", "-b", "32", "hi"]);
    assert_eq!(stdout(&out), "NBUQ====\n");
    let v = sb.run_json("cipher", &["-e", "hello world"]);
    assert_eq!(v["mode"], "encode");
    assert_eq!(v["output"], "aGVsbG8gd29ybGQ=");

    let shellish = "$(touch pwned) `touch pwned`";
    let out = sb.tool("cipher", &["-e", shellish]);
    let encoded = stdout(&out).trim_end().to_string();
    let out = sb.tool("cipher", &["-d", &encoded]);
    assert_eq!(stdout(&out), shellish, "{}", show(&out));

    let out = sb.run("cipher", &["-d", "!!not base64!!"]);
    assert_failed(&out, "cipher -d garbage");
    let out = sb.run("cipher", &["-b", "16", "x"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
}

#[test]
fn cipher_and_hash_read_standard_input() {
    let run = |tool: &str, args: &[&str], input: &[u8]| -> Output {
        let mut child = Command::new(tools_dir().join(tool).join(tool))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tool starts");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input).expect("write stdin");
        }
        child.wait_with_output().expect("tool finishes")
    };
    let out = run("cipher", &["-e"], b"hi");
    assert_eq!(stdout(&out), "aGk=\n", "{}", show(&out));
    let out = run("hash", &[], b"abc");
    assert_eq!(
        stdout(&out),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
        "{}",
        show(&out)
    );
}

#[test]
fn hash_of_known_text_and_file() {
    let sb = Sandbox::new();
    let out = sb.run("hash", &["hello world"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(
        stdout(&out),
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\n"
    );

    let file = sb.home().join("fox file.txt");
    fs::write(&file, "The quick brown fox jumps over the lazy dog").expect("write");
    let path = file.to_str().expect("utf-8 path");
    let v = sb.run_json("hash", &["-f", path]);
    assert_eq!(
        v["digest"],
        "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
    );
    assert_eq!(v["algorithm"], "sha256");
    assert_eq!(v["source"], "file");
    assert_eq!(v["size"], 43);
    let out = sb.run("hash", &["-a", "md5", "-f", path]);
    assert_eq!(stdout(&out), "9e107d9d372bb6826bd81d3542a419d6\n");
    let out = sb.run("hash", &["-a", "sha1", "-f", path]);
    assert_eq!(stdout(&out), "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12\n");

    // Text that looks like shell code is hashed, not run (directly: gathm's
    // default policy would refuse "$(").
    let out = sb.tool("hash", &["--json", "$(touch pwned)"]);
    let v = parse_json(&out.stdout, "hash --json");
    assert_eq!(v["input"], "$(touch pwned)");
    assert_eq!(v["source"], "text");
    assert!(!Path::new("pwned").exists() && !sb.home().join("pwned").exists());

    assert_failed(&sb.run("hash", &["-f", "/no/such/file"]), "hash -f missing");
    assert_eq!(code(&sb.run("hash", &["-a", "crc32", "x"])), 2);
}

#[test]
fn todo_add_list_remove_clear_in_gathm_home() {
    let sb = Sandbox::new();
    let list = sb.home().join("todo").join("list.txt");

    let out = sb.run("todo", &["list"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("empty"), "{}", show(&out));

    for item in ["buy \"milk\"", "call Bob; rm -rf /", "write tests"] {
        let out = sb.run("todo", &["add", item]);
        assert_eq!(code(&out), 0, "{}", show(&out));
    }
    assert_eq!(
        fs::read_to_string(&list).expect("list.txt"),
        "buy \"milk\"\ncall Bob; rm -rf /\nwrite tests\n"
    );
    let out = sb.run("todo", &[]);
    assert_eq!(
        stdout(&out),
        "1. buy \"milk\"\n2. call Bob; rm -rf /\n3. write tests\n"
    );

    let v = sb.run_json("todo", &["remove", "2"]);
    assert_eq!(v["action"], "remove");
    assert_eq!(v["count"], 2);
    assert_eq!(
        v["items"],
        serde_json::json!(["buy \"milk\"", "write tests"])
    );

    assert_failed(&sb.run("todo", &["remove", "9"]), "todo remove 9");
    assert_eq!(code(&sb.run("todo", &["remove", "two"])), 2);
    assert_eq!(code(&sb.run("todo", &["add"])), 2);

    let v = sb.run_json("todo", &["clear"]);
    assert_eq!(v["count"], 0);
    assert_eq!(fs::read_to_string(&list).expect("list.txt"), "");
    let v = sb.run_json("todo", &["list"]);
    assert_eq!(v["items"], serde_json::json!([]));
}

#[test]
fn sysinfo_json_has_the_declared_fields() {
    let sb = Sandbox::new();
    let v = sb.run_json("sysinfo", &[]);
    assert!(v["cpu_count"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(!v["kernel"].as_str().unwrap_or_default().is_empty(), "{v}");
    assert!(
        !v["hostname"].as_str().unwrap_or_default().is_empty(),
        "{v}"
    );
    assert!(v["load_average"].is_array(), "{v}");
    let out = sb.run("sysinfo", &[]);
    assert!(stdout(&out).contains("Kernel:"), "{}", show(&out));
}

#[test]
fn diskcheck_thresholds_set_the_exit_code() {
    let sb = Sandbox::new();
    let v = sb.run_json("diskcheck", &["-t", "100", "/"]);
    assert_eq!(v["threshold"], 100);
    assert_eq!(v["ok"], true);
    assert_eq!(v["over_count"], 0);
    let mounts = v["mounts"].as_array().expect("mounts");
    assert_eq!(mounts.len(), 1, "{v}");
    assert_eq!(mounts[0]["mount"], "/");
    assert!(mounts[0]["size_kb"].as_u64().unwrap_or(0) > 0, "{v}");

    let out = sb.run("diskcheck", &["-t", "100"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("MOUNT"), "{}", show(&out));

    // The root filesystem is never 0 % used.
    let out = sb.run("diskcheck", &["-t", "0", "/"]);
    assert_failed(&out, "diskcheck -t 0");
    assert!(stderr(&out).contains("over 0%"), "{}", show(&out));
    let out = sb.run("diskcheck", &["--json", "-t", "0", "/"]);
    assert_eq!(code(&out), 1);
    let v = parse_json(&out.stdout, "diskcheck -t 0 --json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["over_count"], 1);

    assert_eq!(code(&sb.run("diskcheck", &["-t", "101"])), 2);
    assert_eq!(code(&sb.run("diskcheck", &["-t", "lots"])), 2);
    assert_failed(
        &sb.run("diskcheck", &["/no/such/mount"]),
        "diskcheck missing path",
    );
}

#[test]
fn jsonfmt_formats_and_rejects_json() {
    let sb = Sandbox::new();
    let out = sb.run("jsonfmt", &["-s", r#"{"b": 1, "a": [true, null]}"#]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(
        stdout(&out),
        "{\n  \"a\": [\n    true,\n    null\n  ],\n  \"b\": 1\n}\n"
    );
    let out = sb.run("jsonfmt", &["-c", "{ \"a\" : [1, 2] }"]);
    assert_eq!(stdout(&out), "{\"a\":[1,2]}\n");
    let v = sb.run_json("jsonfmt", &["-q", "[1, 2]"]);
    assert_eq!(v["valid"], true);
    assert_eq!(v["type"], "array");
    let out = sb.run("jsonfmt", &["{\"a\": }"]);
    assert_failed(&out, "jsonfmt invalid");
    assert!(stderr(&out).contains("line 1 column 7"), "{}", show(&out));
}

#[test]
fn uuid_passgen_timeconv_and_urlparse() {
    let sb = Sandbox::new();
    let v = sb.run_json("uuid", &["-n", "3"]);
    let ids = v["uuids"].as_array().expect("uuids");
    assert_eq!(ids.len(), 3);
    for id in ids {
        let s = id.as_str().expect("string");
        assert_eq!(s.len(), 36, "{s}");
        assert_eq!(&s[14..15], "4", "version nibble of {s}");
    }
    let out = sb.run("uuid", &["-t", "5", "-N", "dns", "-s", "example.com"]);
    assert_eq!(stdout(&out), "cfbff0d1-9375-5685-968c-48ce8b15ae17\n");
    let v = sb.run_json("uuid", &["-t", "7"]);
    assert_eq!(&v["uuids"][0].as_str().expect("uuid")[14..15], "7");

    let v = sb.run_json("passgen", &["-l", "32", "-n", "2", "-S"]);
    for pw in v["passwords"].as_array().expect("passwords") {
        let pw = pw.as_str().expect("string");
        assert_eq!(pw.len(), 32);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");
    }
    assert_eq!(v["charset_size"], 62);
    assert_eq!(code(&sb.run("passgen", &["-l", "4"])), 2);

    let v = sb.run_json("timeconv", &["0"]);
    assert_eq!(v["utc"], "1970-01-01T00:00:00Z");
    assert_eq!(v["epoch_ms"], 0);
    let v = sb.run_json("timeconv", &["-z", "UTC", "2026-11-22T16:00:00+02:00"]);
    assert_eq!(v["epoch"], 1795356000);
    assert_eq!(v["utc"], "2026-11-22T14:00:00Z");
    assert_eq!(code(&sb.run("timeconv", &["yesterday-ish"])), 2);

    let v = sb.run_json(
        "urlparse",
        &["https://user@example.com:8443/a%20b?q=1&q=2&x=y#top"],
    );
    assert_eq!(v["host"], "example.com");
    assert_eq!(v["port"], 8443);
    assert_eq!(v["path"], "/a b");
    assert_eq!(v["query"]["q"], serde_json::json!(["1", "2"]));
    assert_eq!(v["fragment"], "top");
    let out = sb.run("urlparse", &["-e", "a b&c"]);
    assert_eq!(stdout(&out), "a%20b%26c\n");
    assert_eq!(code(&sb.run("urlparse", &["not a url"])), 2);
}

// ---------------------------------------------------------------------------
// Network tools against local servers
// ---------------------------------------------------------------------------

#[test]
fn httpprobe_follows_redirects_and_reports_headers() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("httpprobe", &[&stub.url("/redirect")]);
    assert_eq!(v["status"], 200);
    assert_eq!(v["final_url"], stub.url("/secure"));
    assert_eq!(v["redirects"], 1);
    assert_eq!(v["ip"], "127.0.0.1");
    assert!(v["latency_ms"].as_f64().is_some(), "{v}");
    assert_eq!(v["headers"]["x-frame-options"], "DENY");
    assert!(
        v["headers"]["server"]
            .as_str()
            .unwrap_or_default()
            .starts_with("StubServer/1.2")
    );

    let out = sb.run("httpprobe", &[&stub.url("/missing")]);
    assert_eq!(code(&out), 0, "any HTTP answer is a successful probe");
    assert!(stdout(&out).contains("404"), "{}", show(&out));
    assert_answer(
        &sb.run("httpprobe", &["-f", &stub.url("/missing")]),
        "httpprobe -f 404",
    );
    assert_failed(&sb.run("httpprobe", &[DEAD_URL]), "httpprobe closed port");
    assert_eq!(code(&sb.run("httpprobe", &["ftp://example.com/"])), 2);
}

#[test]
fn headersaudit_scores_and_falls_back_to_httpprobe() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("headersaudit", &[&stub.url("/redirect")]);
    assert_eq!(v["score"], 75, "{v}");
    assert_eq!(v["grade"], "B");
    assert_eq!(
        v["missing"],
        serde_json::json!(["strict-transport-security"])
    );
    let v = sb.run_json("headersaudit", &[&stub.url("/plain")]);
    assert_eq!(v["score"], 0);
    assert_eq!(v["grade"], "F");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("x-powered-by"), "{v}");

    assert_failed(
        &sb.run("headersaudit", &[DEAD_URL]),
        "headersaudit closed port",
    );
    let env = sb.envelope("headersaudit", &[DEAD_URL]);
    assert_eq!(
        attempts(&env)
            .iter()
            .map(|a| a.0.as_str())
            .collect::<Vec<_>>(),
        ["headersaudit", "httpprobe"],
        "{env}"
    );
    assert_eq!(env["status"], "error");
}

#[test]
fn cve_by_id_and_keyword() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("cve", &["cve-2021-44228"]);
    assert_eq!(v["total_results"], 1);
    let r = &v["results"][0];
    assert_eq!(r["id"], "CVE-2021-44228");
    assert_eq!(r["cvss_score"], 10.0);
    assert_eq!(r["severity"], "CRITICAL");
    assert_eq!(r["cwe"], serde_json::json!(["CWE-502", "CWE-20"]));
    assert!(
        r["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Log4j2")
    );

    let v = sb.run_json("cve", &["-k", "log4j", "-l", "2"]);
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["results"][1]["severity"], "MEDIUM");

    let out = sb.run("cve", &["CVE-2021-44228"]);
    assert!(stdout(&out).contains("10 CRITICAL") || stdout(&out).contains("10.0 CRITICAL"));
    assert_answer(&sb.run("cve", &["CVE-1999-0001"]), "cve unknown id");
    assert_eq!(code(&sb.run("cve", &["not-a-cve"])), 2);
    assert_failed(
        &dead_sandbox().run("cve", &["CVE-2021-44228"]),
        "cve unreachable",
    );
}

#[test]
fn weather_for_a_place_and_coordinates() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("weather", &["Berlin"]);
    assert_eq!(v["location"], "Berlin, Land Berlin, Germany");
    assert_eq!(v["current"]["temperature"], 7.5);
    assert_eq!(v["current"]["description"], "overcast");
    assert_eq!(v["daily"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["daily"][1]["description"], "light rain");
    let v = sb.run_json("weather", &["-u", "imperial", "-c", "52.5,13.4"]);
    assert_eq!(v["units"]["temperature"], "°F");
    let out = sb.run("weather", &["Berlin"]);
    assert!(stdout(&out).contains("7.5°C"), "{}", show(&out));

    assert_failed(&sb.run("weather", &["Nowhere"]), "weather unknown place");
    assert_eq!(code(&sb.run("weather", &[])), 2);
    assert_failed(
        &dead_sandbox().run("weather", &["Berlin"]),
        "weather unreachable",
    );
}

#[test]
fn currency_converts_with_the_stub_rates() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("currency", &["usd", "eur", "25.50"]);
    assert_eq!(v["base"], "USD");
    assert_eq!(v["target"], "EUR");
    assert_eq!(v["rate"], 0.5);
    assert_eq!(v["result"], 12.75);
    let out = sb.run("currency", &["USD", "JPY", "2"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).starts_with("2 USD = 300.50 JPY"),
        "{}",
        show(&out)
    );

    assert_failed(
        &sb.run("currency", &["USD", "XYZ", "1"]),
        "currency unknown target",
    );
    assert_failed(
        &sb.run("currency", &["ABC", "USD"]),
        "currency unknown base",
    );
    assert_eq!(code(&sb.run("currency", &["USD", "EUR", "lots"])), 2);
    assert_eq!(code(&sb.run("currency", &["USD"])), 2);
    assert_failed(
        &dead_sandbox().run("currency", &["USD", "EUR", "1"]),
        "currency unreachable",
    );
}

#[test]
fn news_reads_rss_and_atom() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("news", &[]);
    assert_eq!(v["title"], "Stub News");
    assert_eq!(v["count"], 3);
    assert_eq!(v["items"][0]["title"], "Rust 2.0 released");
    assert_eq!(v["items"][0]["link"], "http://stub/rust");
    assert_eq!(v["items"][0]["summary"], "Big & bold");
    let v = sb.run_json("news", &["python"]);
    assert_eq!(v["count"], 1);
    assert_eq!(v["items"][0]["title"], "Python <3.14> news");
    let v = sb.run_json("news", &["-n", "1", "-f", &stub.url("/atom.xml")]);
    assert_eq!(
        v["items"],
        serde_json::json!([{"title": "Atom entry one", "link": "http://stub/a1",
        "published": "2026-11-22T08:00:00Z", "summary": "first"}])
    );

    assert_failed(
        &sb.run("news", &["-f", &stub.url("/broken.xml")]),
        "news broken feed",
    );
    assert_failed(
        &sb.run("news", &["-f", &stub.url("/missing")]),
        "news 404 feed",
    );
    assert_failed(&dead_sandbox().run("news", &[]), "news unreachable");
}

#[test]
fn rdap_domain_and_ip() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("rdap", &["example.com"]);
    assert_eq!(v["name"], "EXAMPLE.COM");
    assert_eq!(
        v["registrar"],
        "RESERVED-Internet Assigned Numbers Authority"
    );
    assert_eq!(v["registered"], "1995-08-14T04:00:00Z");
    assert_eq!(
        v["nameservers"],
        serde_json::json!(["a.iana-servers.net", "b.iana-servers.net"])
    );
    let v = sb.run_json("rdap", &["192.0.2.1"]);
    assert_eq!(v["start_address"], "192.0.2.0");
    assert_eq!(v["name"], "TEST-NET-1");

    assert_failed(&sb.run("rdap", &["missing.test"]), "rdap unknown domain");
    assert_eq!(code(&sb.run("rdap", &["not a domain"])), 2);
    assert_failed(
        &dead_sandbox().run("rdap", &["example.com"]),
        "rdap unreachable",
    );
}

#[test]
fn whois_over_port_43_and_its_rdap_fallback() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("whois", &["example.com"]);
    assert_eq!(
        v["registrar"],
        "RESERVED-Internet Assigned Numbers Authority"
    );
    assert_eq!(v["created"], "1995-08-14T04:00:00Z");
    assert_eq!(v["expires"], "2027-08-13T04:00:00Z");
    assert_eq!(
        v["name_servers"],
        serde_json::json!(["a.iana-servers.net", "b.iana-servers.net"])
    );
    assert_failed(&sb.tool("whois", &["missing.test"]), "whois no match");
    assert_eq!(code(&sb.run("whois", &["bad;query"])), 2);

    // WHOIS unreachable: gathm falls back to rdap, which answers from the stub.
    let sb = stub.sandbox().with_env("GATHM_WHOIS_SERVER", "127.0.0.1:1");
    assert_failed(&sb.tool("whois", &["example.com"]), "whois unreachable");
    let env = sb.envelope("whois", &["example.com"]);
    let tries = attempts(&env);
    assert_eq!(tries.len(), 2, "{env}");
    assert_eq!((tries[0].0.as_str(), tries[0].1), ("whois", 1), "{env}");
    assert_eq!((tries[1].0.as_str(), tries[1].1), ("rdap", 0), "{env}");
    assert_eq!(env["status"], "success");
    assert!(
        env["output"]
            .as_str()
            .unwrap_or_default()
            .contains("EXAMPLE.COM"),
        "{env}"
    );
}

#[test]
fn ipinfo_and_geo_use_their_apis_and_each_other() {
    let stub = Stub::start();
    let sb = stub.sandbox();
    let v = sb.run_json("ipinfo", &["8.8.8.8"]);
    assert_eq!(v["hostname"], "dns.google");
    assert_eq!(v["org"], "AS15169 Google LLC");
    let v = sb.run_json("ipinfo", &[]);
    assert_eq!(v["ip"], "203.0.113.7");
    assert_failed(&sb.tool("ipinfo", &["192.0.2.77"]), "ipinfo API error");
    assert_eq!(code(&sb.run("ipinfo", &["not-an-ip"])), 2);

    let v = sb.run_json("geo", &["-a", "8.8.8.8"]);
    assert_eq!(v["geolocation"]["city"], "Ashburn");
    assert_eq!(v["geolocation"]["country_code"], "US");
    let v = sb.run_json("geo", &["-w"]);
    assert_eq!(v["wan_ip"], "203.0.113.7");
    assert_failed(&sb.tool("geo", &["-a", "192.0.2.1"]), "geo reserved range");
    // LAN facts need no network at all.
    let out = dead_sandbox().run("geo", &["-l", "-r", "-d"]);
    assert_eq!(code(&out), 0, "{}", show(&out));

    // ipinfo down: gathm falls back to geo.
    let sb = stub.sandbox().with_env("GATHM_IPINFO_API", DEAD_URL);
    assert_failed(&sb.tool("ipinfo", &["8.8.8.8"]), "ipinfo unreachable");
    let env = sb.envelope("ipinfo", &["8.8.8.8"]);
    let tries = attempts(&env);
    assert_eq!(tries.len(), 2, "{env}");
    assert_eq!((tries[0].0.as_str(), tries[0].1), ("ipinfo", 1), "{env}");
    assert_eq!((tries[1].0.as_str(), tries[1].1), ("geo", 0), "{env}");

    // Both down: the geo <-> ipinfo cycle stops after one try of each.
    let env = dead_sandbox().envelope("geo", &["-w"]);
    let tries = attempts(&env);
    assert_eq!(
        tries
            .iter()
            .map(|a| (a.0.as_str(), a.2.as_str()))
            .collect::<Vec<_>>(),
        [("geo", "failed"), ("ipinfo", "failed"), ("geo", "skipped")],
        "{env}"
    );
    assert_eq!(
        env["attempts"][2]["note"], "skipped: geo already tried (cycle)",
        "{env}"
    );
    assert!(tries[..2].iter().all(|a| a.1 == 1), "{env}");
    assert_eq!(env["status"], "error");
    assert_ne!(env["exit_code"], 0);
}

#[test]
fn certinfo_reads_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=gathm-test.local/O=Gathm Test"])
        .args([
            "-addext",
            "subjectAltName=DNS:gathm-test.local,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl req");
    assert!(out.status.success(), "openssl req: {}", show(&out));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    let fingerprint = stdout(&out)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");

    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let mut server = Server { child };
    wait_until(Duration::from_secs(15), "openssl s_server", || {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("openssl s_server exited: {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let sb = Sandbox::new();
    let target = format!("127.0.0.1:{port}");
    let v = sb.run_json("certinfo", &[&target]);
    assert_eq!(v["common_name"], "gathm-test.local");
    assert_eq!(v["fingerprint_sha256"], fingerprint.as_str());
    assert_eq!(v["port"], port);
    assert_eq!(v["self_signed"], true);
    assert_eq!(v["expired"], false);
    let days = v["days_remaining"].as_i64().expect("days");
    assert!((28..=30).contains(&days), "{v}");
    assert_eq!(
        v["san"],
        serde_json::json!(["DNS:gathm-test.local", "IP:127.0.0.1"])
    );
    let out = sb.run("certinfo", &[&target]);
    assert!(
        stdout(&out).contains("CN=gathm-test.local"),
        "{}",
        show(&out)
    );
    assert_answer(
        &sb.run("certinfo", &["-d", "60", &target]),
        "certinfo -d 60",
    );
    drop(server);

    assert_failed(
        &sb.run("certinfo", &["127.0.0.1:1"]),
        "certinfo closed port",
    );
    assert_eq!(code(&sb.run("certinfo", &["127.0.0.1:notaport"])), 2);
}

#[test]
fn portscan_finds_the_open_port_and_the_closed_one() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let closed = free_port();
    let sb = Sandbox::new();
    let ports = format!("{open},{closed}");
    let v = sb.run_json("portscan", &["-w", "2", "-p", &ports, "127.0.0.1"]);
    assert_eq!(v["open"], serde_json::json!([open]), "{v}");
    assert_eq!(v["scanned"], 2);
    let states: Vec<(u64, String)> = v["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap_or(0),
                p["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(states.contains(&(u64::from(open), "open".into())), "{v}");
    assert!(
        states.contains(&(u64::from(closed), "closed".into())),
        "{v}"
    );

    let range = format!("{open}-{}", open.saturating_add(2));
    let out = sb.run("portscan", &["-a", "-p", &range, "127.0.0.1"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains(&format!("{open}/tcp")),
        "{}",
        show(&out)
    );
    drop(listener);

    assert_failed(
        &sb.run("portscan", &["no-such-host.invalid"]),
        "portscan unknown host",
    );
    assert_eq!(code(&sb.run("portscan", &["-p", "70000", "127.0.0.1"])), 2);
    assert_eq!(code(&sb.run("portscan", &["-p", "9-1", "127.0.0.1"])), 2);
}

#[test]
fn dns_getent_resolves_localhost() {
    let sb = Sandbox::new();
    let v = sb.run_json("dns-getent", &["localhost"]);
    let addrs: Vec<&str> = v["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .filter_map(|a| a["data"].as_str())
        .collect();
    assert!(
        addrs.contains(&"127.0.0.1") || addrs.contains(&"::1"),
        "{v}"
    );
    assert_eq!(v["resolver"], "getent");
    assert_answer(
        &sb.run("dns-getent", &["no-such-host.invalid"]),
        "dns-getent unknown host",
    );
    assert_eq!(code(&sb.run("dns-getent", &["bad host;name"])), 2);
}

/// A bin dir with only what dns and dns-getent need: no dig.
fn bin_without_dig(dir: &Path) -> String {
    for tool in ["bash", "sh", "env", "getent"] {
        let real = which(tool).unwrap_or_else(|| panic!("{tool} is needed on PATH"));
        symlink(&real, dir.join(tool)).expect("symlink");
    }
    assert!(!dir.join("dig").exists());
    dir.to_str().expect("utf-8 path").to_string()
}

#[test]
fn dns_without_dig_falls_back_to_dns_getent() {
    let bin = tempfile::tempdir().expect("temp dir");
    let mut sb = Sandbox::new();
    sb.path = Some(bin_without_dig(bin.path()));

    let out = sb.run("dns", &["localhost"]);
    assert!(stderr(&out).contains("dig not found"), "{}", show(&out));
    assert_eq!(code(&out), 0, "dns-getent answered:\n{}", show(&out));
    assert!(
        stdout(&out).contains("127.0.0.1") || stdout(&out).contains("::1"),
        "{}",
        show(&out)
    );

    let env = sb.envelope("dns", &["localhost"]);
    let tries = attempts(&env);
    assert_eq!(tries.len(), 2, "{env}");
    assert_eq!(tries[0].0, "dns", "{env}");
    assert_ne!(tries[0].1, 0, "{env}");
    assert_eq!(tries[1].0, "dns-getent", "{env}");
    assert_eq!(tries[1].1, 0, "{env}");
    assert_eq!(env["status"], "success");
    assert_eq!(env["exit_code"], 0);
    assert!(
        env["output"]
            .as_str()
            .unwrap_or_default()
            .contains("localhost"),
        "{env}"
    );
}

#[test]
fn dns_alone_reports_missing_dig() {
    let bin = tempfile::tempdir().expect("temp dir");
    let path = bin_without_dig(bin.path());
    let out = Command::new(tools_dir().join("dns/dns"))
        .arg("example.com")
        .env("PATH", path)
        .output()
        .expect("dns runs");
    assert_failed(&out, "dns without dig");
    assert!(stderr(&out).contains("dig not found"), "{}", show(&out));
}

// ---------------------------------------------------------------------------
// Live internet (GATHM_ONLINE_TESTS=1 only)
// ---------------------------------------------------------------------------

fn online() -> bool {
    std::env::var("GATHM_ONLINE_TESTS").as_deref() == Ok("1")
}

#[test]
fn online_rdap_cve_and_headers() {
    if !online() {
        return;
    }
    let sb = Sandbox::new().with_env("GATHM_NET_TIMEOUT", "20");
    let v = sb.run_json("rdap", &["example.com"]);
    assert_eq!(
        v["name"].as_str().map(str::to_ascii_lowercase).as_deref(),
        Some("example.com")
    );
    let v = sb.run_json("cve", &["CVE-2021-44228"]);
    assert_eq!(v["results"][0]["id"], "CVE-2021-44228");
    let v = sb.run_json("httpprobe", &["https://example.com"]);
    assert_eq!(v["status"], 200);
    let v = sb.run_json("certinfo", &["example.com"]);
    assert_eq!(v["expired"], false);
}

/// Exit codes that are answers, not outages (issue 14): declared in each
/// manifest as `breaker: {ignore_exit_codes: [...]}`, and no other tool
/// declares any. A change in a tool's exit codes must update this table.
const ANSWER_CODES: [(&str, &[i64]); 7] = [
    ("certinfo", &[3]),
    ("cve", &[3]),
    ("diskcheck", &[1]),
    ("dns", &[3]),
    ("dns-getent", &[3]),
    ("httpprobe", &[3]),
    ("jsonfmt", &[1]),
];

/// Read-only lookups opt in to the cache (`cache: true`); nothing else does.
const CACHED: [&str; 11] = [
    "certinfo",
    "currency",
    "cve",
    "dns",
    "dns-getent",
    "geo",
    "ipinfo",
    "news",
    "rdap",
    "weather",
    "whois",
];

#[test]
fn answers_are_declared_and_lookups_opt_in_to_the_cache() {
    let sb = Sandbox::new();
    for tool in tool_names() {
        let out = sb
            .gathm(["show", "--json", &tool])
            .output()
            .expect("gathm show");
        let v = parse_json(&out.stdout, "show --json");
        let declared: Vec<i64> = v["breaker"]["ignore_exit_codes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let expected = ANSWER_CODES
            .iter()
            .find(|(t, _)| *t == tool)
            .map(|(_, c)| c.to_vec())
            .unwrap_or_default();
        assert_eq!(declared, expected, "{tool}: breaker.ignore_exit_codes");
        let cached = v["cache"] == Value::Bool(true) || v["cache"]["ttl"].is_u64();
        assert_eq!(
            cached,
            CACHED.contains(&tool.as_str()),
            "{tool}: cache {}",
            v["cache"]
        );
    }
}

#[test]
fn answers_never_open_the_breaker() {
    let sb = Sandbox::new().with_env("CB_FAILURE_THRESHOLD", "3");
    // diskcheck -t 0: "the disk is over the threshold", every cron run.
    for _ in 0..5 {
        let out = sb.run("diskcheck", &["-t", "0", "/"]);
        assert_eq!(code(&out), 1, "{}", show(&out));
    }
    // Names that do not exist do not lock dns-getent out.
    for _ in 0..4 {
        assert_answer(
            &sb.run("dns-getent", &["no-such-host.invalid"]),
            "dns-getent unknown host",
        );
    }
    let out = sb.run("dns-getent", &["localhost"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = sb
        .gathm(["breaker", "status", "--json", "dns-getent"])
        .output()
        .expect("gathm");
    let v = parse_json(&out.stdout, "breaker status");
    assert_eq!(v["state"], "closed", "{v}");
}
