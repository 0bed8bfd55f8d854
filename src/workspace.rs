//! Isolated workspaces (`workspace: isolated` in `tool.yaml`): a fresh
//! directory `$GATHM_HOME/work/<run id>` (0700) per execution of a tool,
//! with an `artifacts/` folder inside, seeded by copying the manifest's
//! `seed` directory; kept or removed when the run ends (`keep`), and kept
//! ones swept after `GATHM_WORKSPACE_TTL`. Also the artifacts folder's
//! listing and the path checks of a requested artifact name.
//!
//! A workspace is locked (`work/<id>.lock`) from before it exists until it
//! is settled, so a sweep never removes one that a run is using. Every
//! write goes through `state`; the decisions (`keeps`, `expired`,
//! `artifact_name`) are pure.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::{Keep, WorkspaceSetting};
use crate::state;

/// The folder inside a workspace whose files are a run's artifacts.
pub const ARTIFACTS: &str = "artifacts";

/// Bounds of one copy (a seed, or artifacts kept in a job's directory).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Files and directories at most.
    pub entries: usize,
    /// Bytes of regular files at most.
    pub bytes: u64,
    /// Nesting at most.
    pub depth: usize,
}

/// The bounds of a seed and of an artifacts copy: 10,000 entries, 1 GiB,
/// 32 levels.
pub const COPY_LIMITS: Limits = Limits {
    entries: 10_000,
    bytes: 1 << 30,
    depth: 32,
};

/// Most artifacts a listing returns.
pub const MAX_LISTED: usize = 1_000;

/// Seconds a kept workspace lives (`GATHM_WORKSPACE_TTL`, default 24 h).
pub fn ttl() -> f64 {
    crate::config::env_seconds("GATHM_WORKSPACE_TTL", false, 86_400.0)
}

/// Whether a workspace outlives its run (pure).
pub fn keeps(keep: Keep, success: bool) -> bool {
    match keep {
        Keep::Always => true,
        Keep::Never => false,
        Keep::OnFailure => !success,
    }
}

/// Whether a kept workspace last changed at `mtime` is due for removal at
/// `now` (pure).
pub fn expired(mtime: f64, now: f64, ttl: f64) -> bool {
    now - mtime >= ttl
}

/// The seed directory of a manifest: `seed` relative to the manifest's
/// directory (an absolute `seed` stays as written).
pub fn seed_path(manifest_dir: &Path, seed: &str) -> PathBuf {
    manifest_dir.join(seed)
}

/// A workspace in use: locked until [`settle`]d (or dropped, which leaves
/// it for the sweep).
#[derive(Debug)]
pub struct Workspace {
    /// `$GATHM_HOME/work/<id>`.
    pub dir: PathBuf,
    /// When it is kept.
    pub keep: Keep,
    _lock: state::Lock,
}

impl Workspace {
    /// `<dir>/artifacts`.
    pub fn artifacts(&self) -> PathBuf {
        self.dir.join(ARTIFACTS)
    }
}

/// Create the fresh workspace `<root>/<id>` with its `artifacts/` folder
/// and the seed's copy. A failure removes what was created.
pub fn create(
    root: &Path,
    id: &str,
    setting: &WorkspaceSetting,
    manifest_dir: &Path,
) -> Result<Workspace> {
    let dir = root.join(id);
    let Some(lock) = state::try_lock(&dir)? else {
        return Err(Error::Internal(format!(
            "workspace {} is in use by another run",
            dir.display()
        )));
    };
    state::create_fresh_dir(&dir)?;
    let ws = Workspace {
        dir,
        keep: setting.keep,
        _lock: lock,
    };
    let filled = (|| {
        if let Some(seed) = &setting.seed {
            let from = seed_path(manifest_dir, seed);
            copy_tree(&from, &ws.dir, COPY_LIMITS).map_err(|e| match e {
                Error::Io { .. } | Error::Internal(_) => e,
                other => Error::InvalidData(format!("workspace seed: {other}")),
            })?;
        }
        state::create_dir(&ws.artifacts())
    })();
    match filled {
        Ok(()) => Ok(ws),
        Err(e) => {
            let _ = remove(&ws.dir);
            Err(e)
        }
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

/// Remove a workspace and its lock file.
fn remove(dir: &Path) -> Result<()> {
    state::remove_dir_all(dir)?;
    state::remove_file(&lock_path(dir))
}

/// End a workspace's life: its artifacts go to `artifacts_to` (replacing
/// what is there; moved when the workspace goes, copied when it stays),
/// then it is kept or removed by its `keep`. Returns the kept directory.
pub fn settle(
    ws: Workspace,
    success: bool,
    artifacts_to: Option<&Path>,
) -> Result<Option<PathBuf>> {
    let kept = keeps(ws.keep, success);
    let mut first_err = None;
    if let Some(to) = artifacts_to {
        let from = ws.artifacts();
        let moved = state::remove_dir_all(to).and_then(|()| {
            let parent = to.parent().unwrap_or(Path::new("."));
            state::create_dir(parent)?;
            if !kept && state::rename(&from, to).is_ok() {
                return Ok(());
            }
            state::create_fresh_dir(to)?;
            copy_tree(&from, to, COPY_LIMITS).map(|_| ())
        });
        if let Err(e) = moved {
            first_err = Some(e);
        }
    }
    if kept {
        return first_err.map_or(Ok(Some(ws.dir.clone())), Err);
    }
    let removed = remove(&ws.dir);
    match first_err {
        Some(e) => Err(e),
        None => removed.map(|()| None),
    }
}

/// What [`copy_tree`] copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Regular files copied.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Symlinks and special files left out.
    pub skipped: usize,
}

/// Copy the directory `from` into the existing directory `to`: directories
/// and regular files only (symlinks are never followed, nor copied), within
/// `limits` (past them: an error naming the limit). `from` itself may be a
/// symlink to a directory.
pub fn copy_tree(from: &Path, to: &Path, limits: Limits) -> Result<Copied> {
    let meta = fs::metadata(from).map_err(|e| Error::io("reading", from, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            from.display()
        )));
    }
    let mut out = Copied::default();
    let mut entries = 0usize;
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf(), 0usize)];
    while let Some((src, dst, depth)) = stack.pop() {
        let rd = fs::read_dir(&src).map_err(|e| Error::io("listing", &src, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("listing", &src, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() || kind.is_file() {
                entries += 1;
                if entries > limits.entries {
                    return Err(Error::Usage(format!(
                        "{} has more than {} entries",
                        from.display(),
                        limits.entries
                    )));
                }
            }
            if kind.is_dir() {
                if depth + 1 > limits.depth {
                    return Err(Error::Usage(format!(
                        "{} nests deeper than {} levels",
                        from.display(),
                        limits.depth
                    )));
                }
                state::create_fresh_dir(&target)?;
                stack.push((entry.path(), target, depth + 1));
            } else if kind.is_file() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if out.bytes + len > limits.bytes {
                    return Err(Error::Usage(format!(
                        "{} holds more than {} MiB",
                        from.display(),
                        limits.bytes >> 20
                    )));
                }
                out.bytes += state::copy_new_file(&entry.path(), &target)?;
                out.files += 1;
            } else {
                out.skipped += 1;
            }
        }
    }
    Ok(out)
}

/// Remove the workspaces under `root` that no run holds and that last
/// changed `ttl` seconds before `now` or earlier, with stray lock files.
/// Returns how many were removed.
pub fn sweep(root: &Path, now: f64, ttl: f64) -> Result<usize> {
    let mut removed = 0;
    for path in state::list_dir(root)? {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        if !expired(mtime, now, ttl) {
            continue;
        }
        let is_lock = path.extension().is_some_and(|e| e == "lock");
        let dir = if is_lock {
            path.with_extension("")
        } else if meta.is_dir() {
            path.clone()
        } else {
            continue;
        };
        if is_lock && dir.exists() {
            // Its directory is considered on its own.
            continue;
        }
        // A run holds its workspace's lock: skip it.
        let Some(_held) = state::try_lock(&dir)? else {
            continue;
        };
        remove(&dir)?;
        removed += usize::from(!is_lock);
    }
    Ok(removed)
}

/// One file of an artifacts folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Its path inside `artifacts/`, with `/` separators.
    pub name: String,
    /// Bytes.
    pub size: u64,
}

/// The regular files under `dir` (not following symlinks), sorted by name,
/// at most [`MAX_LISTED`] (the second value says whether more were left
/// out). An absent folder lists nothing.
pub fn list_artifacts(dir: &Path) -> Result<(Vec<Artifact>, bool)> {
    let mut out = Vec::new();
    let mut more = false;
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0usize)];
    let mut seen = 0usize;
    while let Some((d, prefix, depth)) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("listing", &d, e)),
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen > COPY_LIMITS.entries {
                more = true;
                break;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < COPY_LIMITS.depth => {
                    stack.push((entry.path(), rel, depth + 1));
                }
                Ok(t) if t.is_file() => {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(Artifact { name: rel, size });
                }
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if out.len() > MAX_LISTED {
        out.truncate(MAX_LISTED);
        more = true;
    }
    Ok((out, more))
}

/// Why a requested artifact name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadName {
    /// Empty, absolute, `.`/`..`, a NUL byte, a backslash or an empty part.
    Invalid(&'static str),
}

/// Check a requested artifact name (already percent-decoded) and return
/// its relative path (pure): relative, `/`-separated, no `.` or `..`
/// parts, no empty part, no NUL byte or backslash.
pub fn artifact_name(name: &str) -> std::result::Result<PathBuf, BadName> {
    if name.is_empty() {
        return Err(BadName::Invalid("empty artifact name"));
    }
    if name.contains('\0') {
        return Err(BadName::Invalid("artifact name contains a NUL byte"));
    }
    if name.contains('\\') {
        return Err(BadName::Invalid("artifact name contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(BadName::Invalid("artifact name must be relative"));
    }
    if name
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(BadName::Invalid(
            "artifact name must not contain empty, `.` or `..` parts",
        ));
    }
    let p = PathBuf::from(name);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(BadName::Invalid(
            "artifact name must be a plain relative path",
        ));
    }
    Ok(p)
}

/// An artifact opened for reading.
#[derive(Debug)]
pub struct Opened {
    /// The open file.
    pub file: fs::File,
    /// Its size when opened.
    pub size: u64,
}

/// Why an artifact cannot be served.
#[derive(Debug)]
pub enum OpenError {
    /// No such regular file inside the folder (absent, a directory, or a
    /// symlink leading out of it).
    NotFound,
    /// Over `max` bytes.
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Reading failed.
    Io(Error),
}

/// Open `rel` (checked by [`artifact_name`]) inside `dir`: the resolved path
/// must stay inside the resolved folder and be a regular file of at most
/// `max` bytes.
pub fn open_artifact(dir: &Path, rel: &Path, max: u64) -> std::result::Result<Opened, OpenError> {
    let root = match fs::canonicalize(dir) {
        Ok(r) => r,
        Err(_) => return Err(OpenError::NotFound),
    };
    let real = match fs::canonicalize(dir.join(rel)) {
        Ok(r) => r,
        Err(_) => return Err(OpenError::NotFound),
    };
    if !real.starts_with(&root) || real == root {
        return Err(OpenError::NotFound);
    }
    let file = match open_nofollow(&real) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OpenError::NotFound),
        Err(e) => return Err(OpenError::Io(Error::io("reading", &real, e))),
    };
    let meta = file
        .metadata()
        .map_err(|e| OpenError::Io(Error::io("reading", &real, e)))?;
    if !meta.is_file() {
        return Err(OpenError::NotFound);
    }
    if meta.len() > max {
        return Err(OpenError::TooLarge { size: meta.len() });
    }
    Ok(Opened {
        file,
        size: meta.len(),
    })
}

fn open_nofollow(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "gathm-ws-{name}-{}-{}",
            std::process::id(),
            crate::clock::new_id()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keep_rules() {
        assert!(keeps(Keep::OnFailure, false));
        assert!(!keeps(Keep::OnFailure, true));
        assert!(keeps(Keep::Always, true));
        assert!(keeps(Keep::Always, false));
        assert!(!keeps(Keep::Never, false));
        assert!(!keeps(Keep::Never, true));
    }

    #[test]
    fn expiry_is_inclusive_and_takes_now() {
        assert!(!expired(100.0, 150.0, 60.0));
        assert!(expired(100.0, 160.0, 60.0));
        assert!(expired(100.0, 100.0, 0.0));
    }

    #[test]
    fn artifact_names() {
        assert_eq!(artifact_name("a.txt").unwrap(), PathBuf::from("a.txt"));
        assert_eq!(artifact_name("d/e.bin").unwrap(), PathBuf::from("d/e.bin"));
        for bad in [
            "",
            "..",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
            "a\\..\\b",
            "a/",
        ] {
            assert!(artifact_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn workspaces_are_fresh_seeded_and_settled() {
        let base = tmp("create");
        let seed = base.join("seed");
        fs::create_dir_all(seed.join("sub")).unwrap();
        fs::write(seed.join("sub/data.txt"), "seeded").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", seed.join("out")).unwrap();
        let root = base.join("work");
        let setting = WorkspaceSetting {
            isolated: true,
            seed: Some("seed".into()),
            keep: Keep::OnFailure,
        };
        let ws = create(&root, "r1", &setting, &base).unwrap();
        assert_eq!(
            fs::read_to_string(ws.dir.join("sub/data.txt")).unwrap(),
            "seeded"
        );
        assert!(
            fs::symlink_metadata(ws.dir.join("out")).is_err(),
            "symlinks are not copied"
        );
        assert!(ws.artifacts().is_dir());
        // Never two runs in one directory.
        assert!(create(&root, "r1", &setting, &base).is_err());
        fs::write(ws.artifacts().join("a.txt"), "A").unwrap();
        // Held: a sweep skips it even when due.
        assert_eq!(sweep(&root, f64::MAX, 0.0).unwrap(), 0);
        let dest = base.join("job/artifacts");
        let dir = ws.dir.clone();
        assert_eq!(settle(ws, true, Some(&dest)).unwrap(), None);
        assert!(!dir.exists());
        assert!(!lock_path(&dir).exists());
        assert_eq!(fs::read_to_string(dest.join("a.txt")).unwrap(), "A");

        // A failure keeps it (on_failure), and copies the artifacts.
        let ws = create(&root, "r2", &setting, &base).unwrap();
        fs::write(ws.artifacts().join("b.txt"), "B").unwrap();
        let kept = settle(ws, false, Some(&dest)).unwrap().unwrap();
        assert!(kept.join("artifacts/b.txt").is_file());
        assert_eq!(fs::read_to_string(dest.join("b.txt")).unwrap(), "B");
        assert!(!dest.join("a.txt").exists(), "replaced, not merged");
        // Not yet due; then due and unheld.
        assert_eq!(sweep(&root, crate::clock::now(), 3600.0).unwrap(), 0);
        assert_eq!(
            sweep(&root, crate::clock::now() + 7200.0, 3600.0).unwrap(),
            1
        );
        assert!(!kept.exists());
        assert!(state::list_dir(&root).unwrap().is_empty());

        // A missing seed is an error and leaves nothing behind.
        let bad = WorkspaceSetting {
            seed: Some("nope".into()),
            ..setting
        };
        assert!(create(&root, "r3", &bad, &base).is_err());
        assert!(state::list_dir(&root).unwrap().is_empty());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn copies_are_bounded() {
        let base = tmp("bounds");
        let from = base.join("from");
        fs::create_dir_all(from.join("a/b")).unwrap();
        fs::write(from.join("x"), vec![0u8; 100]).unwrap();
        let small = Limits {
            entries: 10,
            bytes: 50,
            depth: 5,
        };
        let to = base.join("to1");
        fs::create_dir(&to).unwrap();
        assert!(
            copy_tree(&from, &to, small)
                .unwrap_err()
                .to_string()
                .contains("MiB")
        );
        let shallow = Limits {
            depth: 1,
            ..COPY_LIMITS
        };
        let to = base.join("to2");
        fs::create_dir(&to).unwrap();
        assert!(
            copy_tree(&from, &to, shallow)
                .unwrap_err()
                .to_string()
                .contains("deeper")
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn listing_and_opening_stay_inside() {
        let base = tmp("open");
        let dir = base.join("artifacts");
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/x.txt"), "xx").unwrap();
        fs::write(dir.join("big"), vec![1u8; 10]).unwrap();
        fs::write(base.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), dir.join("link")).unwrap();
        let (list, more) = list_artifacts(&dir).unwrap();
        assert!(!more);
        let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["big", "d/x.txt"]);
        let o = open_artifact(&dir, Path::new("d/x.txt"), 100).unwrap();
        assert_eq!(o.size, 2);
        assert!(matches!(
            open_artifact(&dir, Path::new("link"), 100),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            open_artifact(&dir, Path::new("d"), 100),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            open_artifact(&dir, Path::new("big"), 5),
            Err(OpenError::TooLarge { size: 10 })
        ));
        assert!(list_artifacts(&base.join("none")).unwrap().0.is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
