//! The locked file store: the only module that writes under `GATHM_HOME`.
//!
//! Every read-modify-write holds an exclusive `flock` on a sibling `*.lock`
//! file (never on the file that is replaced), writes a temporary file and
//! renames it over the old one, fsyncing first when durability matters. A file
//! that does not parse is moved aside (`*.corrupt-<epoch>`) with a warning and
//! treated as absent: state problems never stop a run.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

#[cfg(test)]
pub(crate) mod conformance;
pub mod groups;
pub mod jobs;
#[cfg(test)]
mod race_tests;
pub mod redis;
pub mod shared;
#[cfg(test)]
mod shared_conformance;
pub mod sqlite;

/// Whether a write must survive a power cut (fsync file and directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Atomic rename only: a lost last update is acceptable, a torn file is not.
    Atomic,
    /// fsync the data before the rename and the directory after it.
    Durable,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Create a directory and its parents (mode 0700 for new ones).
pub fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))
}

/// Open for appending (`O_APPEND`, mode 0600), creating the file and its
/// parents.
fn open_append(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true).read(true).mode(0o600);
    open_with_parents(path, &opts)
}

fn open_with_parents(path: &Path, opts: &OpenOptions) -> Result<File> {
    match opts.open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                create_dir(parent)?;
            }
            opts.open(path).map_err(|e| Error::io("opening", path, e))
        }
        Err(e) => Err(Error::io("opening", path, e)),
    }
}

/// An exclusive lock on `<path>.lock`, released on drop (or process death).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the exclusive lock that guards `path`.
pub fn lock(path: &Path) -> Result<Lock> {
    let lock_path = sibling(path, ".lock");
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).write(true).mode(0o600);
    let file = open_with_parents(&lock_path, &opts)?;
    file.lock()
        .map_err(|e| Error::io("locking", &lock_path, e))?;
    Ok(Lock { _file: file })
}

/// Read a whole file; `None` when it does not exist.
pub fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// Move an unreadable file aside and warn; returns the new path.
pub fn quarantine(path: &Path, why: &str) -> Option<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let aside = sibling(path, &format!(".corrupt-{stamp}"));
    match fs::rename(path, &aside) {
        Ok(()) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "gathm: warning: state file {} was unreadable ({why}); moved aside to {} and started fresh",
                    path.display(),
                    aside.display()
                );
            }
            Some(aside)
        }
        Err(_) => None,
    }
}

/// Parse a JSON state file; a corrupt one is quarantined and reads as absent.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            quarantine(path, &e.to_string());
            Ok(None)
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Remove temporary files (`<name>.tmp.<pid>.<n>`) left in `dir` by
/// processes that no longer exist (killed mid-write). Done once per
/// directory per process, on the first write there.
fn clean_stale_temps(dir: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    {
        let mut seen = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        if !seen
            .get_or_insert_with(HashSet::new)
            .insert(dir.to_path_buf())
        {
            return;
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((_, rest)) = name.rsplit_once(".tmp.") else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('.') else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(pid) = pid
            .parse::<i32>()
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        let dead = matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        );
        if dead {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Replace `path` atomically with `bytes` (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    if let Some(dir) = path.parent() {
        clean_stale_temps(dir);
    }
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = sibling(path, &format!(".tmp.{}.{n}", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(true).write(true).mode(0o600);
    let mut f = open_with_parents(&tmp, &opts)?;
    let res = f
        .write_all(bytes)
        .and_then(|()| {
            if durability == Durability::Durable {
                f.sync_all()
            } else {
                Ok(())
            }
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    if durability == Durability::Durable
        && let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialise and atomically replace a JSON state file.
pub fn write_json<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(path, &bytes, durability)
}

/// Locked read-modify-write of a JSON state file.
///
/// `f` receives the current value (`None` if absent or corrupt) and returns
/// the new value (`None`: leave the file as it is) and a result.
pub fn update_json<T, R>(
    path: &Path,
    durability: Durability,
    f: impl FnOnce(Option<T>) -> (Option<T>, R),
) -> Result<R>
where
    T: Serialize + DeserializeOwned,
{
    let _guard = lock(path)?;
    let current = read_json(path)?;
    let (next, result) = f(current);
    if let Some(next) = next {
        write_json(path, &next, durability)?;
    }
    Ok(result)
}

/// One slot of a two-slot record: a generation and the value.
#[derive(serde::Deserialize)]
struct SlotIn<T> {
    generation: u64,
    value: T,
}

#[derive(Serialize)]
struct SlotOut<'a, T> {
    generation: u64,
    value: &'a T,
}

fn read_slot<T: DeserializeOwned>(f: &mut File) -> Option<(u64, T)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_end(&mut buf).ok()?;
    let s: SlotIn<T> = serde_json::from_slice(&buf).ok()?;
    Some((s.generation, s.value))
}

/// Locked read-modify-write for small, hot records (rate-limit windows),
/// without a rename: two slot files `<path>.0` and `<path>.1` hold
/// `{"generation": N, "value": …}`; a read takes the newest slot that parses,
/// a write overwrites the *other* slot in place with one `pwrite` (padded with
/// spaces, so no truncate is needed). A kill, or even a torn write after a
/// power cut, damages only the slot being written: the previous value is
/// always still readable. This avoids ext4's flush on rename-over (~0.3 ms).
pub fn update_slots<T, R>(path: &Path, f: impl FnOnce(Option<T>) -> (Option<T>, R)) -> Result<R>
where
    T: Serialize + DeserializeOwned,
{
    use std::os::unix::fs::FileExt;
    let _guard = lock(path)?;
    let mut opts = OpenOptions::new();
    opts.create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600);
    let p0 = sibling(path, ".0");
    let p1 = sibling(path, ".1");
    let mut f0 = open_with_parents(&p0, &opts)?;
    let mut f1 = open_with_parents(&p1, &opts)?;
    let s0 = read_slot::<T>(&mut f0);
    let s1 = read_slot::<T>(&mut f1);
    let (generation, current, target, target_path) = match (s0, s1) {
        (Some((g0, v0)), Some((g1, _))) if g0 >= g1 => (g0, Some(v0), &f1, &p1),
        (_, Some((g1, v1))) => (g1, Some(v1), &f0, &p0),
        (Some((g0, v0)), None) => (g0, Some(v0), &f1, &p1),
        (None, None) => (0, None, &f0, &p0),
    };
    let (next, result) = f(current);
    if let Some(next) = next {
        let mut bytes = serde_json::to_vec(&SlotOut {
            generation: generation + 1,
            value: &next,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let old_len = target.metadata().map(|m| m.len() as usize).unwrap_or(0);
        if bytes.len() < old_len {
            bytes.resize(old_len, b' ');
        }
        target
            .write_all_at(&bytes, 0)
            .map_err(|e| Error::io("writing", target_path, e))?;
    }
    Ok(result)
}

/// Read a two-slot record without locking (the newest slot that parses).
pub fn read_slots<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let mut best: Option<(u64, T)> = None;
    for suffix in [".0", ".1"] {
        if let Ok(mut f) = File::open(sibling(path, suffix))
            && let Some((g, v)) = read_slot::<T>(&mut f)
            && best.as_ref().is_none_or(|(bg, _)| g > *bg)
        {
            best = Some((g, v));
        }
    }
    best.map(|(_, v)| v)
}

/// Check that `dir` can be created and written: a small file is written and
/// removed. `gathm status` and `gathm health` report the result.
pub fn probe_dir(dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let probe = dir.join(format!(".probe.tmp.{}.0", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(true).write(true).mode(0o600);
    let res = opts
        .open(&probe)
        .and_then(|mut f| f.write_all(b"gathm state probe\n"));
    let _ = fs::remove_file(&probe);
    res.map_err(|e| Error::io("writing", &probe, e))
}

/// Append bytes with a single `write(2)` on an `O_APPEND` descriptor, so
/// concurrent appenders never interleave within a record.
pub fn append(path: &Path, bytes: &[u8]) -> Result<u64> {
    let f = open_append(path)?;
    append_whole(&f, path, bytes, None)
}

/// Append whole lines to an `O_APPEND` file so that it never tears: if the
/// file does not end with a newline (an earlier append was cut short), the
/// record starts on a new line; if this append fails part-way (ENOSPC), the
/// bytes it wrote are truncated away again when they are still the file's
/// tail. `ours`: the length the file had after this descriptor's previous
/// append; when it still has it, the file ends with that append's newline
/// and its last byte need not be read. Returns the file's length after the
/// append (as this append saw it: a concurrent appender may have added
/// more, which only makes the next append check the last byte).
fn append_whole(f: &File, path: &Path, bytes: &[u8], ours: Option<u64>) -> Result<u64> {
    use std::io::Seek;
    use std::os::unix::fs::FileExt;
    // The length from `lseek`, which is cheaper than `fstat` (the offset
    // does not matter: appends go to the end whatever it is).
    let mut end: &File = f;
    let len = end
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io("reading", path, e))?;
    let mut last = [0u8; 1];
    let torn = len > 0
        && ours != Some(len)
        && f.read_at(&mut last, len - 1).is_ok_and(|n| n == 1)
        && last[0] != b'\n';
    let owned;
    let bytes = if torn {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.push(b'\n');
        v.extend_from_slice(bytes);
        owned = v;
        &owned[..]
    } else {
        bytes
    };
    let mut written = 0usize;
    let mut w = f;
    while written < bytes.len() {
        match w.write(&bytes[written..]) {
            Ok(0) => {
                return Err(repair(
                    f,
                    path,
                    &bytes[..written],
                    ErrorKind::WriteZero.into(),
                ));
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(repair(f, path, &bytes[..written], e)),
        }
    }
    Ok(len + written as u64)
}

/// After a short append: cut the partial record off again if it is still
/// the file's tail (nobody appended after it), so the file ends with a
/// complete line; otherwise the next append starts a new line.
fn repair(f: &File, path: &Path, partial: &[u8], e: std::io::Error) -> Error {
    use std::os::unix::fs::FileExt;
    if !partial.is_empty()
        && let Ok(md) = f.metadata()
        && md.len() >= partial.len() as u64
    {
        let start = md.len() - partial.len() as u64;
        let mut tail = vec![0u8; partial.len()];
        if f.read_exact_at(&mut tail, start).is_ok() && tail == partial {
            let _ = f.set_len(start);
        }
    }
    Error::io("appending to", path, e)
}

/// A log file kept open by a long-running process (`gathm serve`): each
/// append is one `write(2)` on an `O_APPEND` descriptor plus an `lseek` for
/// the size, instead of open, write, stat and close. Another process may
/// rotate the file (rename it away): at most once a second the path is
/// checked and, if it names another file, reopened, so lines written in that
/// second land in the rotated file, whole and valid.
#[derive(Debug)]
pub struct KeptLog {
    path: PathBuf,
    recheck: std::time::Duration,
    open: Option<(File, u64, std::time::Instant)>,
    /// The file's length after the last append through this descriptor.
    end: Option<u64>,
}

impl KeptLog {
    /// A kept-open log at `path` (opened on first append) whose path is
    /// re-checked every `recheck`.
    pub fn new(path: PathBuf, recheck: std::time::Duration) -> KeptLog {
        KeptLog {
            path,
            recheck,
            open: None,
            end: None,
        }
    }

    /// Append bytes in one write; returns the file's length after it.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let now = std::time::Instant::now();
        // Re-check the path at most every `recheck`: another process may have
        // renamed the file away.
        if let Some((_, ino, checked)) = &mut self.open
            && now.duration_since(*checked) >= self.recheck
        {
            if fs::metadata(&self.path).is_ok_and(|m| m.ino() == *ino) {
                *checked = now;
            } else {
                self.open = None;
                self.end = None;
            }
        }
        let (f, ..) = match &mut self.open {
            Some(o) => o,
            None => {
                let f = open_append(&self.path)?;
                let ino = f
                    .metadata()
                    .map_err(|e| Error::io("reading", &self.path, e))?
                    .ino();
                self.open.insert((f, ino, now))
            }
        };
        match append_whole(f, &self.path, bytes, self.end) {
            Ok(len) => {
                self.end = Some(len);
                Ok(len)
            }
            Err(e) => {
                self.open = None;
                self.end = None;
                Err(e)
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forget the descriptor (after rotating the file): the next append opens
    /// the path afresh.
    pub fn reopen(&mut self) {
        self.open = None;
        self.end = None;
    }
}

/// An append-only file kept open (job output): each `write` is one
/// `write(2)` on an `O_APPEND` descriptor.
#[derive(Debug)]
pub struct Appender {
    file: File,
    path: PathBuf,
}

impl Appender {
    /// Open (creating it and its parents) for appending.
    pub fn open(path: &Path) -> Result<Appender> {
        Ok(Appender {
            file: open_append(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Append bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io("appending to", &self.path, e))
    }
}

/// fsync a directory (after creating an entry in it that must survive a
/// power cut). A missing directory is an error.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Try to take the exclusive lock that guards `path` without waiting;
/// `Ok(None)` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<Lock>> {
    let lock_path = sibling(path, ".lock");
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).write(true).mode(0o600);
    let file = open_with_parents(&lock_path, &opts)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Lock { _file: file })),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", &lock_path, e)),
    }
}

/// Rotate `path` to `path.1`, `path.1` to `path.2`, … keeping `keep` files,
/// under the file's lock and only if it is still larger than `max_bytes`.
pub fn rotate(path: &Path, max_bytes: u64, keep: u32) -> Result<()> {
    let _guard = lock(path)?;
    let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len <= max_bytes {
        return Ok(());
    }
    if keep == 0 {
        return remove_file(path);
    }
    for i in (1..keep).rev() {
        let from = sibling(path, &format!(".{i}"));
        let to = sibling(path, &format!(".{}", i + 1));
        let _ = fs::rename(from, to);
    }
    fs::rename(path, sibling(path, ".1")).map_err(|e| Error::io("rotating", path, e))
}

/// Remove a file; absent is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Remove a directory tree; absent is fine.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Create a directory that must not exist yet (mode 0700; parents 0700 if
/// new): two callers never get the same one.
pub fn create_fresh_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        create_dir(parent)?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))
}

/// Copy a regular file's bytes to a new file (mode 0600, or 0700 when the
/// source is executable by its owner), refusing to replace anything.
pub fn copy_new_file(from: &Path, to: &Path) -> Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let mut src = File::open(from).map_err(|e| Error::io("reading", from, e))?;
    let exec = src
        .metadata()
        .map(|m| m.permissions().mode() & 0o100 != 0)
        .unwrap_or(false);
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if exec { 0o700 } else { 0o600 })
        .open(to)
        .map_err(|e| Error::io("creating", to, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("writing", to, e))
}

/// Rename a file or directory (same filesystem).
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io("moving", from, e))
}

/// List the entries of a directory (absent: empty).
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("listing", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_log_starts_a_new_line_after_another_writers_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut log = KeptLog::new(path.clone(), std::time::Duration::from_secs(60));
        log.append(b"{\"a\":1}\n").unwrap();
        log.append(b"{\"a\":2}\n").unwrap();
        // Another process's append was cut short (no newline).
        let mut other = OpenOptions::new().append(true).open(&path).unwrap();
        other.write_all(b"{\"cut").unwrap();
        log.append(b"{\"a\":3}\n").unwrap();
        // And another's whole line: no extra newline is added.
        other.write_all(b"\n{\"b\":1}\n").unwrap();
        log.append(b"{\"a\":4}\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"a\":1}\n{\"a\":2}\n{\"cut\n{\"a\":3}\n\n{\"b\":1}\n{\"a\":4}\n"
        );
    }

    #[test]
    fn kept_log_follows_a_rotation_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/x.log");
        // Re-checked on every append: the test controls no clock.
        let mut log = KeptLog::new(p.clone(), std::time::Duration::ZERO);
        assert_eq!(log.append(b"one\n").unwrap(), 4);
        assert_eq!(log.append(b"two\n").unwrap(), 8);
        // Another process rotates: renames the file away.
        fs::rename(&p, dir.path().join("logs/x.log.1")).unwrap();
        assert_eq!(log.append(b"three\n").unwrap(), 6, "a fresh file");
        assert_eq!(fs::read_to_string(&p).unwrap(), "three\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("logs/x.log.1")).unwrap(),
            "one\ntwo\n"
        );
        // Without a re-check the descriptor stays on the renamed file, and
        // `reopen` (after our own rotation) starts a new one.
        let mut slow = KeptLog::new(p.clone(), std::time::Duration::from_secs(3600));
        slow.append(b"a\n").unwrap();
        fs::rename(&p, dir.path().join("logs/x.log.2")).unwrap();
        slow.append(b"b\n").unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("logs/x.log.2")).unwrap(),
            "three\na\nb\n"
        );
        slow.reopen();
        slow.append(b"c\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "c\n");
    }

    #[test]
    fn update_creates_reads_and_skips_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/state.json");
        let r = update_json::<u32, _>(&p, Durability::Atomic, |cur| {
            assert_eq!(cur, None);
            (Some(1), "first")
        })
        .unwrap();
        assert_eq!(r, "first");
        update_json::<u32, _>(&p, Durability::Durable, |cur| (cur.map(|c| c + 1), ())).unwrap();
        assert_eq!(read_json::<u32>(&p).unwrap(), Some(2));
        update_json::<u32, _>(&p, Durability::Atomic, |_| (None, ())).unwrap();
        assert_eq!(read_json::<u32>(&p).unwrap(), Some(2));
    }

    #[test]
    fn corrupt_file_is_quarantined_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        fs::write(&p, b"{not json").unwrap();
        assert_eq!(read_json::<u32>(&p).unwrap(), None);
        assert!(!p.exists());
        let aside: Vec<_> = list_dir(dir.path())
            .unwrap()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn slots_survive_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.json");
        for i in 1..=5u32 {
            update_slots::<u32, _>(&p, |cur| (Some(cur.unwrap_or(0) + i), ())).unwrap();
        }
        assert_eq!(read_slots::<u32>(&p), Some(15));
        // Tear the newest slot: the previous value is still there.
        let newest = if read_slot::<u32>(&mut File::open(sibling(&p, ".0")).unwrap())
            .unwrap()
            .0
            == 5
        {
            ".0"
        } else {
            ".1"
        };
        fs::write(sibling(&p, newest), b"{\"generation\": 5, \"val").unwrap();
        assert_eq!(read_slots::<u32>(&p), Some(10));
        update_slots::<u32, _>(&p, |cur| (Some(cur.unwrap() + 100), ())).unwrap();
        assert_eq!(read_slots::<u32>(&p), Some(110));
        // Shorter values overwrite longer ones cleanly (space padding).
        update_slots::<String, _>(&dir.path().join("s"), |_| {
            (Some("long long long".into()), ())
        })
        .unwrap();
        update_slots::<String, _>(&dir.path().join("s"), |_| (Some("x".into()), ())).unwrap();
        update_slots::<String, _>(&dir.path().join("s"), |_| (Some("y".into()), ())).unwrap();
        assert_eq!(
            read_slots::<String>(&dir.path().join("s")),
            Some("y".into())
        );
    }

    #[test]
    fn rotation_keeps_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        for _ in 0..4 {
            append(&p, &[b'x'; 100]).unwrap();
            rotate(&p, 50, 2).unwrap();
        }
        assert!(!p.exists());
        assert!(sibling(&p, ".1").exists());
        assert!(sibling(&p, ".2").exists());
        assert!(!sibling(&p, ".3").exists());
    }
}
