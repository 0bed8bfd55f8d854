//! Issue 14: state that cannot be written is never silent, and controls fail
//! closed. A home that is a regular file, a read-only home (a read-only tmpfs
//! when running as root, chmod otherwise) and a full filesystem (a small
//! tmpfs, root only).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, opts: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn with_home(s: &Sandbox, home: &Path, args: &[&str]) -> std::process::Output {
    s.cmd().env("GATHM_HOME", home).args(args).output().unwrap()
}

/// The checks every unwritable home must pass: a warning naming the path and
/// the OS error (stderr in text mode, `warnings` under --json), a refused
/// rate-limited call (75), a refused call under `audit.required` (77), and
/// `status` / `health` reporting it.
fn assert_degraded(s: &Sandbox, home: &Path, os_error: &str) {
    let shown = home.display().to_string();
    // Admin: no rate limit, so it runs, with a warning.
    let o = with_home(s, home, &["run", "ok", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.lines().any(|l| l.starts_with("gathm: warning: ")
            && l.contains(&shown)
            && l.contains(os_error)),
        "{e}"
    );
    let o = with_home(s, home, &["--quiet", "run", "ok", "a"]);
    assert!(
        stderr(&o).contains("gathm: warning: "),
        "not even --quiet hides it"
    );
    let o = with_home(s, home, &["--json", "run", "ok", "a"]);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = v["warnings"].as_array().expect("warnings in the envelope");
    assert!(
        w.iter().any(|w| w.as_str().unwrap().contains(os_error)),
        "{v}"
    );
    // A rate-limited role is refused, not let through unlimited.
    let o = with_home(s, home, &["--json", "--role", "user", "run", "ok", "a"]);
    assert_eq!(o.status.code(), Some(75), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["reason"] == "state_unavailable" || v["reason"] == "storage_full",
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains(os_error), "{v}");
    let o = with_home(s, home, &["--role", "user", "run", "ok", "a"]);
    assert_eq!(o.status.code(), Some(75));
    assert!(stderr(&o).contains("rate-limit window"), "{}", stderr(&o));
    // audit.required: refused when the audit log cannot be appended.
    let pol = s.write(
        "required.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n    rate_limit: 0\naudit:\n  required: true\n",
    );
    let o = s
        .cmd()
        .env("GATHM_HOME", home)
        .env("GATHM_POLICIES", &pol)
        .args(["--json", "run", "ok", "a"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["message"].as_str().unwrap().contains("audit"), "{v}");
    // status and health report the state directory.
    let o = with_home(s, home, &["--json", "status"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["writable"] == false),
        "{v}"
    );
    let o = with_home(s, home, &["status"]);
    assert!(stdout(&o).contains("NOT WRITABLE"), "{}", stdout(&o));
    let o = with_home(s, home, &["health", "ok"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be written"), "{}", stderr(&o));
}

#[test]
fn a_home_that_is_a_file() {
    let s = Sandbox::new(&["ok"]);
    let home = s.write("home-file", "not a directory\n");
    assert_degraded(&s, &home, "Not a directory");
}

#[test]
fn a_read_only_home() {
    let s = Sandbox::new(&["ok"]);
    let home = s.path().join("ro-home");
    let _mount;
    if is_root() {
        match Mount::tmpfs(&home, "ro,size=1m") {
            Some(m) => _mount = m,
            None => {
                eprintln!("skipped: running as root but cannot mount a read-only tmpfs");
                return;
            }
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    assert_degraded(
        &s,
        &home,
        if is_root() {
            "Read-only file system"
        } else {
            "Permission denied"
        },
    );
}

#[test]
fn a_full_filesystem_never_tears_a_log() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let s = Sandbox::new(&["ok"]);
    let home = s.path().join("full-home");
    let Some(_mount) = Mount::tmpfs(&home, "size=256k") else {
        eprintln!("skipped: cannot mount a tmpfs");
        return;
    };
    // A few good records first, then fill the disk around audit.log so that
    // the next record is cut short in the middle.
    assert!(
        with_home(&s, &home, &["run", "ok", "first"])
            .status
            .success()
    );
    let audit = home.join("logs/audit.log");
    let mut text = std::fs::read(&audit).unwrap();
    while text.len() < 4096 - 120 {
        text.extend_from_slice(b"{\"action\":\"padding\"}\n");
    }
    std::fs::write(&audit, &text).unwrap();
    let filler = home.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    assert_degraded(&s, &home, "No space left on device");
    // Every line of every log is whole JSON, before and after space is freed.
    let check = || {
        for name in ["audit.log", "metrics.log", "gathm.log"] {
            let p = home.join("logs").join(name);
            let Ok(t) = std::fs::read_to_string(&p) else {
                continue;
            };
            assert!(t.is_empty() || t.ends_with('\n'), "{name} ends mid-line");
            for l in t.lines() {
                assert!(
                    serde_json::from_str::<serde_json::Value>(l).is_ok(),
                    "{name}: torn line {l:?}"
                );
            }
        }
    };
    check();
    std::fs::remove_file(&filler).unwrap();
    let o = with_home(&s, &home, &["run", "ok", "after"]);
    assert!(o.status.success());
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    check();
    let t = std::fs::read_to_string(&audit).unwrap();
    assert!(t.contains("\"after\""), "the next record is appended whole");
}

#[test]
fn stale_temp_files_are_cleaned_on_the_next_write() {
    let s = Sandbox::new(&["ok"]);
    // A temp file of a process that no longer exists (pid from a finished child).
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let dir = s.home().join("cache/ok");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(format!("x.entry.tmp.{pid}.0"));
    std::fs::write(&stale, "half").unwrap();
    let live = dir.join(format!("y.entry.tmp.{}.0", std::process::id()));
    std::fs::write(&live, "in progress").unwrap();
    assert!(s.run(&["run", "ok", "t"]).status.success());
    assert!(!stale.exists(), "a dead writer's temp file is removed");
    assert!(live.exists(), "a live writer's temp file is kept");
}

#[test]
fn batches_print_each_state_warning_once() {
    let s = Sandbox::new(&["ok"]);
    let home = s.write("home-file", "x\n");
    let o = with_home(&s, &home, &["parallel", "ok a, ok b"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| l.starts_with("gathm: warning: "))
        .collect();
    assert!(!lines.is_empty(), "{e}");
    let mut uniq = lines.clone();
    uniq.sort_unstable();
    uniq.dedup();
    assert_eq!(uniq.len(), lines.len(), "each once: {e}");
}
