//! The result cache: key = blake3(tool name, manifest digest, exact argv);
//! one file per entry under `cache/<tool>/<key>.entry` holding a JSON header
//! line followed by the raw stdout and stderr bytes. Only successes are
//! stored; entries expire after their TTL; files are replaced atomically.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state::{self, Durability};

/// The header of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub v: u32,
    /// Tool name.
    pub tool: String,
    /// The argv, lossily decoded (for humans).
    pub args: Vec<String>,
    /// When stored (epoch s).
    pub created_at: f64,
    /// Lifetime (s).
    pub ttl: u64,
    /// Recorded exit code.
    pub exit_code: i32,
    /// Bytes of stdout that follow the header line.
    pub stdout_len: usize,
    /// Bytes of stderr after stdout.
    pub stderr_len: usize,
}

/// A cached result.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Header.
    pub header: Header,
    /// stdout bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
}

/// The identity of the files a tool runs (its program and any argv prefix
/// that is a file): path, size, mtime, ctime, inode and device of each, so
/// editing or replacing the script changes the cache key. Names looked up on
/// `PATH` (`python3`) are not files here and add nothing.
pub fn exe_identity<'a>(paths: impl Iterator<Item = &'a std::ffi::OsStr>) -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if !path.is_absolute() && !p.as_bytes().contains(&b'/') {
            continue;
        }
        let Ok(md) = std::fs::metadata(path) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
        for n in [
            md.size() as i64,
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
            md.ino() as i64,
            md.dev() as i64,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out
}

/// The cache key: argv items are length-prefixed, so `["a b"]` and `["a","b"]` differ.
pub fn key(tool: &str, digest: &[u8; 32], exe: &[u8], args: &[OsString]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"gathm-cache-v2\0");
    h.update(&(tool.len() as u64).to_le_bytes());
    h.update(tool.as_bytes());
    h.update(digest);
    h.update(&(exe.len() as u64).to_le_bytes());
    h.update(exe);
    h.update(&(args.len() as u64).to_le_bytes());
    for a in args {
        let b = a.as_bytes();
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    }
    h.finalize().to_hex().to_string()
}

/// Where an entry lives.
pub fn entry_path(tool_dir: &Path, key: &str) -> PathBuf {
    tool_dir.join(format!("{key}.entry"))
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
    let body = &bytes[nl + 1..];
    if body.len() != header.stdout_len + header.stderr_len {
        return None;
    }
    let (o, e) = body.split_at(header.stdout_len);
    Some(Entry {
        stdout: o.to_vec(),
        stderr: e.to_vec(),
        header,
    })
}

/// Whether an entry is expired at `now` (strictly older than its TTL).
pub fn expired(h: &Header, now: f64) -> bool {
    now - h.created_at > h.ttl as f64 || now < h.created_at - 300.0
}

/// Look up a live entry; expired or unreadable entries are removed.
pub fn get(path: &Path, now: f64) -> Result<Option<Entry>> {
    let Some(bytes) = state::read_bytes(path)? else {
        return Ok(None);
    };
    match decode(&bytes) {
        Some(e) if !expired(&e.header, now) => Ok(Some(e)),
        Some(_) => {
            state::remove_file(path)?;
            Ok(None)
        }
        None => {
            state::quarantine(path, "not a cache entry");
            Ok(None)
        }
    }
}

/// Store an entry atomically.
pub fn put(path: &Path, entry: &Entry) -> Result<()> {
    let mut buf = serde_json::to_vec(&entry.header).unwrap_or_default();
    buf.push(b'\n');
    buf.extend_from_slice(&entry.stdout);
    buf.extend_from_slice(&entry.stderr);
    state::write_atomic(path, &buf, Durability::Atomic)
}

/// Counts over the whole cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Every entry file.
    pub total_entries: u64,
    /// Entries still live.
    pub active: u64,
    /// Entries past their TTL.
    pub expired: u64,
    /// Bytes of live entries.
    pub size_bytes: u64,
    /// Live entries per tool.
    pub per_tool: std::collections::BTreeMap<String, u64>,
}

fn entries(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for dir in state::list_dir(root)? {
        if !dir.is_dir() {
            continue;
        }
        let tool = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in state::list_dir(&dir)? {
            if f.extension().is_some_and(|e| e == "entry") {
                out.push((tool.clone(), f));
            }
        }
    }
    Ok(out)
}

/// Statistics (reads every header).
pub fn stats(root: &Path, now: f64) -> Result<Stats> {
    let mut s = Stats::default();
    for (tool, f) in entries(root)? {
        s.total_entries += 1;
        let Some(bytes) = state::read_bytes(&f)? else {
            continue;
        };
        match decode(&bytes) {
            Some(e) if !expired(&e.header, now) => {
                s.active += 1;
                s.size_bytes += bytes.len() as u64;
                *s.per_tool.entry(tool).or_default() += 1;
            }
            _ => s.expired += 1,
        }
    }
    Ok(s)
}

/// Remove expired (and unreadable) entries; returns how many.
pub fn clear_expired(root: &Path, now: f64) -> Result<u64> {
    let mut n = 0;
    for (_, f) in entries(root)? {
        let live = state::read_bytes(&f)?
            .and_then(|b| decode(&b))
            .is_some_and(|e| !expired(&e.header, now));
        if !live {
            state::remove_file(&f)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Remove everything; returns how many entries.
pub fn purge(root: &Path) -> Result<u64> {
    let n = entries(root)?.len() as u64;
    for dir in state::list_dir(root)? {
        if dir.is_dir() {
            state::remove_dir_all(&dir)?;
        } else {
            state::remove_file(&dir)?;
        }
    }
    Ok(n)
}

/// Remove one tool's entries; returns how many.
pub fn invalidate(tool_dir: &Path) -> Result<u64> {
    let n = state::list_dir(tool_dir)?
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "entry"))
        .count() as u64;
    state::remove_dir_all(tool_dir)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_boundaries_change_the_key() {
        let d = [0u8; 32];
        let a = key("t", &d, b"", &["a b".into()]);
        let b = key("t", &d, b"", &["a".into(), "b".into()]);
        assert_ne!(a, b);
        assert_eq!(a, key("t", &d, b"", &["a b".into()]));
        assert_ne!(a, key("t", &[1u8; 32], b"", &["a b".into()]));
    }

    #[test]
    fn round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let p = entry_path(dir.path(), "k");
        let e = Entry {
            header: Header {
                v: 1,
                tool: "t".into(),
                args: vec![],
                created_at: 100.0,
                ttl: 10,
                exit_code: 0,
                stdout_len: 3,
                stderr_len: 2,
            },
            stdout: b"out".to_vec(),
            stderr: b"er".to_vec(),
        };
        put(&p, &e).unwrap();
        assert_eq!(get(&p, 105.0).unwrap(), Some(e));
        assert_eq!(get(&p, 111.0).unwrap(), None);
        assert!(!p.exists());
    }
}
