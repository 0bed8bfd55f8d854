//! A cache of parsed YAML files (one manifest, a policies file) as JSON under
//! `$GATHM_HOME/index/files/`, keyed by the file's absolute path and valid
//! while its stamp (size, mtime, ctime, inode) is unchanged. JSON parses about
//! 30 times faster than YAML, so the hot path of `gathm run` never parses YAML
//! for a file it has seen before. A stale or unreadable entry is just re-parsed.
//! A long-running process (`gathm serve`, after `memoise`) also keeps the
//! parsed values in memory under the same rule, so a request costs one `stat`.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::{self, Durability};

/// A file's identity for cache validity.
pub fn stamp(m: &std::fs::Metadata) -> [i64; 6] {
    use std::os::unix::fs::MetadataExt;
    [
        m.len() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino() as i64,
    ]
}

#[derive(serde::Deserialize)]
struct EntryIn<T> {
    stamp: [i64; 6],
    digest: String,
    value: T,
}

#[derive(Serialize)]
struct EntryOut<'a, T> {
    stamp: [i64; 6],
    digest: String,
    value: &'a T,
}

/// Parsed values by file, with the stamp they were parsed at. A file is
/// only ever parsed as one type (a manifest, a policies file); a value of
/// another type is simply a miss.
type Memo = HashMap<PathBuf, ([i64; 6], [u8; 32], Arc<dyn Any + Send + Sync>)>;

/// The in-process memo, present once `memoise` was called.
static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();

/// Keep parsed values in memory for the rest of the process (a long-running
/// `gathm serve`). A one-shot command does not: it would only pay for the
/// copies.
pub fn memoise() {
    MEMO.get_or_init(Mutex::default);
}

fn entry_path(dir: &Path, file: &Path) -> PathBuf {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // The salt names the parse rules: entries parsed by older rules (before
    // unknown policy keys were errors, say; v3: the manifest's `chat`) are
    // not reused.
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"parsed-v3\0");
    hasher.update(abs.as_os_str().as_encoded_bytes());
    let h = hasher.finalize();
    dir.join(format!("{}.json", &h.to_hex()[..32]))
}

/// Parse `file` with `parse`, or take the cached result. Returns the value and
/// the blake3 digest of the file's bytes. `Ok(None)` when the file is absent.
pub fn load<T, E>(
    dir: Option<&Path>,
    file: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
    io_err: impl FnOnce(std::io::Error) -> E,
) -> Result<Option<(T, [u8; 32])>, E>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let meta = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io_err(e)),
    };
    let st = stamp(&meta);
    if let Some(Ok(m)) = MEMO.get().map(Mutex::lock)
        && let Some((s, digest, v)) = m.get(file)
        && *s == st
        && let Some(v) = v.downcast_ref::<T>()
    {
        return Ok(Some((v.clone(), *digest)));
    }
    let remember = |value: &T, digest: [u8; 32]| {
        if let Some(Ok(mut m)) = MEMO.get().map(Mutex::lock) {
            m.insert(file.to_path_buf(), (st, digest, Arc::new(value.clone())));
        }
    };
    let cache = dir.map(|d| entry_path(d, file));
    if let Some(c) = &cache
        && let Ok(Some(bytes)) = state::read_bytes(c)
        && let Ok(e) = serde_json::from_slice::<EntryIn<T>>(&bytes)
        && e.stamp == st
    {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(&e.digest, &mut digest).is_ok() {
            remember(&e.value, digest);
            return Ok(Some((e.value, digest)));
        }
    }
    let bytes = std::fs::read(file).map_err(io_err)?;
    let digest = *blake3::hash(&bytes).as_bytes();
    let value = parse(&bytes)?;
    if let Some(c) = &cache {
        let entry = EntryOut {
            stamp: st,
            digest: hex::encode(digest),
            value: &value,
        };
        if let Ok(b) = serde_json::to_vec(&entry) {
            let _ = state::write_atomic(c, &b, Durability::Atomic);
        }
    }
    remember(&value, digest);
    Ok(Some((value, digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoised_in_process_without_reading_the_disk_cache() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.yaml");
        std::fs::write(&f, "one").unwrap();
        let parse =
            |b: &[u8]| -> Result<String, String> { Ok(String::from_utf8_lossy(b).into_owned()) };
        // No disk cache at all: the second load can only come from memory.
        memoise();
        let (v, d1) = load(None, &f, parse, |e| e.to_string()).unwrap().unwrap();
        assert_eq!(v, "one");
        let (v, d2) = load(
            None,
            &f,
            |_| -> Result<String, String> { Err("parsed again".into()) },
            |e| e.to_string(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((v.as_str(), d2), ("one", d1));
        // A changed file (new stamp) is parsed again.
        std::fs::write(&f, "two!").unwrap();
        let (v, d3) = load(None, &f, parse, |e| e.to_string()).unwrap().unwrap();
        assert_eq!(v, "two!");
        assert_ne!(d3, d1);
    }

    #[test]
    fn caches_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.yaml");
        std::fs::write(&f, "a").unwrap();
        let idx = dir.path().join("idx");
        let parse =
            |b: &[u8]| -> Result<String, String> { Ok(String::from_utf8_lossy(b).into_owned()) };
        let (v, _) = load(Some(&idx), &f, parse, |e| e.to_string())
            .unwrap()
            .unwrap();
        assert_eq!(v, "a");
        // The entry is on disk (the in-process memo may be on in this test
        // binary, so the next load alone would not prove it).
        assert_eq!(std::fs::read_dir(&idx).unwrap().count(), 1);
        // A cached hit does not call the parser.
        let (v, _) = load(
            Some(&idx),
            &f,
            |_| -> Result<String, String> { Err("parsed".into()) },
            |e| e.to_string(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(v, "a");
        std::fs::write(&f, "bb").unwrap();
        let (v, _) = load(Some(&idx), &f, parse, |e| e.to_string())
            .unwrap()
            .unwrap();
        assert_eq!(v, "bb");
        assert!(
            load(Some(&idx), &dir.path().join("nope"), parse, |e| e
                .to_string())
            .unwrap()
            .is_none()
        );
    }
}
