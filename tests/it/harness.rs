//! The integration-test harness: a temporary `GATHM_HOME`, fixture tools
//! copied into a temporary tools dir, and a builder that runs the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gathm"))
}

/// `tests/fixtures/tools`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A sandbox: `<tmp>/home` is `GATHM_HOME`, `<tmp>/tools` the only tools dir.
pub struct Sandbox {
    pub tmp: TempDir,
}

impl Sandbox {
    /// A sandbox with the named fixture tools copied in.
    pub fn new(tools: &[&str]) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("tools")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let s = Sandbox { tmp };
        for t in tools {
            copy_dir(&fixtures().join(t), &s.tools().join(t));
        }
        s
    }

    /// Every fixture tool.
    pub fn all() -> Sandbox {
        let names: Vec<String> = std::fs::read_dir(fixtures())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        Sandbox::new(&refs)
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }
    pub fn tools(&self) -> PathBuf {
        self.tmp.path().join("tools")
    }

    /// Write an inline manifest (and optionally an executable script).
    pub fn manifest(&self, name: &str, yaml: &str, script: Option<&str>) -> &Sandbox {
        let d = self.tools().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("tool.yaml"), yaml).unwrap();
        if let Some(s) = script {
            let p = d.join(name);
            std::fs::write(&p, s).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        self
    }

    /// Write a file under the sandbox and return its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A command for the binary with a clean environment pointing at the sandbox.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("GATHM_") || k.starts_with("CB_") || k == "NO_COLOR" || k == "RUST_LOG"
            {
                c.env_remove(&k);
            }
        }
        c.env("GATHM_HOME", self.home())
            .env("GATHM_TOOLS_PATH", self.tools())
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .stdin(Stdio::null());
        c
    }

    /// Run with args and return the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run with args and parse stdout as JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self.run(args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// Lines of a log file, parsed.
    pub fn log(&self, name: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.home().join("logs").join(name)).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }
}

/// stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Poll until `f` is true or the deadline passes (then panic with `what`).
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// Count lines in a file (0 if absent).
pub fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Start `n` commands at once (built by `make`, output discarded) and return
/// their exit codes in order.
pub fn race(n: usize, mut make: impl FnMut() -> Command) -> Vec<i32> {
    let kids: Vec<_> = (0..n)
        .map(|_| {
            make()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    kids.into_iter()
        .map(|k| k.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
