//! Discovery: the tool search path, loading manifests, shadowed duplicates.
//!
//! Search order, first match wins: every `--tools-dir`, else `GATHM_TOOLS_PATH`
//! (colon-separated), else `./tools` if it exists; then `$GATHM_HOME/tools`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::manifest::{self, Diagnostic, Manifest, Severity};
use crate::state::{self, Durability};

/// How to put tools on the search path (printed when none is found).
pub const ADD_TOOLS_HINT: &str = "hint: add a directory with --tools-dir DIR or GATHM_TOOLS_PATH=DIR[:DIR...], or run `gathm init` to install the shipped tools in $GATHM_HOME/tools";

/// The directories named explicitly (`--tools-dir`, else `GATHM_TOOLS_PATH`)
/// that do not exist: a warning, an error under `validate --strict`.
pub fn missing_explicit_dirs(cli_dirs: &[PathBuf], env_path: Option<&str>) -> Vec<PathBuf> {
    let named: Vec<PathBuf> = if !cli_dirs.is_empty() {
        cli_dirs.to_vec()
    } else {
        env_path
            .unwrap_or("")
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect()
    };
    named.into_iter().filter(|d| !d.is_dir()).collect()
}

/// A discovered tool.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The name it is called by (the manifest's `name`).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// `<dir>/tool.yaml`.
    pub manifest_path: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// blake3 of the manifest bytes (part of the cache key).
    pub digest: [u8; 32],
}

impl Tool {
    /// The program and argv prefix: the manifest `command`, else `<dir>/<name>`.
    /// Relative entries of `command` that name a file in the tool's directory
    /// (`script.sh`, `lib/main.py`) are resolved there; `python3` stays a PATH lookup.
    pub fn program(&self) -> (PathBuf, Vec<OsString>) {
        match self.manifest.command.as_ref().map(|c| c.to_vec()) {
            Some(cmd) if !cmd.is_empty() => {
                let resolve = |s: &String| -> PathBuf {
                    let p = Path::new(s);
                    let local = self.dir.join(p);
                    if p.is_relative() && !s.starts_with('-') && (s.contains('/') || local.exists())
                    {
                        local
                    } else {
                        PathBuf::from(s)
                    }
                };
                let program = resolve(&cmd[0]);
                let rest = cmd[1..]
                    .iter()
                    .map(|a| {
                        let r = resolve(a);
                        if r.exists() {
                            r.into_os_string()
                        } else {
                            OsString::from(a)
                        }
                    })
                    .collect();
                (program, rest)
            }
            _ => (self.dir.join(&self.name), Vec::new()),
        }
    }
}

/// The ordered list of directories searched for tools.
#[derive(Debug, Clone)]
pub struct SearchPath {
    /// Directories, highest priority first.
    pub dirs: Vec<PathBuf>,
    /// The manifest index file used by full scans (`None`: always parse).
    pub index: Option<PathBuf>,
    /// [`SearchPath::find_shared`]'s last lookups, by name (shared by clones).
    memo: Arc<Mutex<HashMap<String, Found>>>,
}

/// A tool found at `dirs[dir]/<name>/tool.yaml`, valid while that file's
/// stamp is unchanged and no earlier directory has the name.
#[derive(Debug)]
struct Found {
    dir: usize,
    stamp: [i64; 6],
    tool: Arc<Tool>,
    /// [`SearchPath::first_error`] of this tool, once asked.
    error: std::sync::OnceLock<Option<Diagnostic>>,
}

/// A cached parse of one manifest, valid while the file's stamp is unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    stamp: [i64; 6],
    digest: String,
    manifest: Manifest,
}

/// The index format: bumped when parsing changes what a manifest reads as
/// (2: versions as written, `breaker: false`; 3: `chat`), so old entries are
/// re-parsed.
const INDEX_VERSION: u32 = 3;

/// The manifest index: parsed manifests by absolute path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    v: u32,
    entries: BTreeMap<String, IndexEntry>,
}

use crate::parsed::stamp;

impl SearchPath {
    /// Build from `--tools-dir` values, `GATHM_TOOLS_PATH` and the home.
    pub fn new(cli_dirs: &[PathBuf], env_path: Option<&str>, home_tools: PathBuf) -> SearchPath {
        let mut dirs: Vec<PathBuf> = if !cli_dirs.is_empty() {
            cli_dirs.to_vec()
        } else if let Some(p) = env_path.filter(|p| !p.is_empty()) {
            p.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        } else if Path::new("tools").is_dir() {
            vec![PathBuf::from("tools")]
        } else {
            Vec::new()
        };
        if !dirs.contains(&home_tools) {
            dirs.push(home_tools);
        }
        SearchPath {
            dirs,
            index: None,
            memo: Arc::default(),
        }
    }

    /// Use a manifest index file for full scans.
    pub fn with_index(mut self, index: PathBuf) -> SearchPath {
        self.index = Some(index);
        self
    }

    /// Load one tool by name: `<dir>/<name>/tool.yaml` in search order, then
    /// (rarely) a manifest whose `name` differs from its directory.
    pub fn find(&self, name: &str) -> Result<Option<Tool>, Diagnostic> {
        Ok(self.find_shared(name)?.map(|t| (*t).clone()))
    }

    /// [`SearchPath::find`], shared: a name looked up again while its
    /// manifest is unchanged costs one `stat` and no copy (what `gathm serve`
    /// does on every execute).
    pub fn find_shared(&self, name: &str) -> Result<Option<Arc<Tool>>, Diagnostic> {
        if !manifest::valid_name(name) {
            return Ok(None);
        }
        let file = |dir: &Path| dir.join(name).join("tool.yaml");
        let stamp_of = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| stamp(&m))
        };
        let memo = |m: &HashMap<String, Found>| {
            let f = m.get(name)?;
            let unchanged = stamp_of(&f.tool.manifest_path) == Some(f.stamp)
                && self.dirs[..f.dir]
                    .iter()
                    .all(|d| stamp_of(&file(d)).is_none());
            unchanged.then(|| Arc::clone(&f.tool))
        };
        if let Some(t) = self.memo.lock().ok().and_then(|m| memo(&m)) {
            return Ok(Some(t));
        }
        // Stamped before loading: a file edited meanwhile is loaded again
        // at the next lookup, never remembered with its new stamp.
        let stamps: Vec<_> = self.dirs.iter().map(|d| stamp_of(&file(d))).collect();
        let Some(tool) = self.load(name)?.map(Arc::new) else {
            return Ok(None);
        };
        let at = self.dirs.iter().position(|d| file(d) == tool.manifest_path);
        if let Some(dir) = at
            && let Some(stamp) = stamps[dir]
            && let Ok(mut m) = self.memo.lock()
        {
            let tool = Arc::clone(&tool);
            let error = std::sync::OnceLock::new();
            m.insert(
                name.to_string(),
                Found {
                    dir,
                    stamp,
                    tool,
                    error,
                },
            );
        }
        Ok(Some(tool))
    }

    /// The first error `manifest::check` finds in `tool` (such a manifest is
    /// not run); worked out once per [`SearchPath::find_shared`] result.
    pub fn first_error(&self, tool: &Arc<Tool>) -> Option<Diagnostic> {
        let check = || {
            manifest::check(&tool.manifest_path, "", &tool.manifest, None)
                .into_iter()
                .find(|d| d.severity == Severity::Error)
        };
        let Ok(m) = self.memo.lock() else {
            return check();
        };
        match m
            .get(tool.name.as_str())
            .filter(|f| Arc::ptr_eq(&f.tool, tool))
        {
            Some(f) => f.error.get_or_init(check).clone(),
            None => check(),
        }
    }

    /// [`SearchPath::find_shared`] without the memo (`name` is valid).
    fn load(&self, name: &str) -> Result<Option<Tool>, Diagnostic> {
        let files_dir = self
            .index
            .as_ref()
            .and_then(|i| i.parent())
            .map(|d| d.join("files"));
        for dir in &self.dirs {
            let path = dir.join(name).join("tool.yaml");
            let parse = |bytes: &[u8]| load(&path, bytes).map(|t| t.manifest);
            match crate::parsed::load(files_dir.as_deref(), &path, parse, |e| io_diag(&path, &e))? {
                Some((manifest, digest)) => {
                    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                    return Ok(Some(Tool {
                        name: manifest.name.clone().unwrap_or_else(|| name.to_string()),
                        dir,
                        manifest_path: path,
                        manifest,
                        digest,
                    }));
                }
                None => continue,
            }
        }
        let scan = self.scan();
        Ok(scan.tools.into_iter().find(|t| t.name == name))
    }

    /// "tool X not found; did you mean …?" (scans the search path).
    pub fn not_found_message(&self, name: &str) -> String {
        let names: Vec<String> = self.scan().tools.into_iter().map(|t| t.name).collect();
        let s = suggestions(name, &names);
        let mut msg = format!("tool {name:?} not found");
        if !s.is_empty() {
            msg.push_str(&format!("; did you mean {}?", s.join(", ")));
        } else {
            msg.push_str(&format!(
                "; looked in {}\n{}",
                self.describe_dirs(),
                ADD_TOOLS_HINT
            ));
        }
        msg
    }

    /// The search path as a person reads it: each directory, and `(missing)`
    /// for one that does not exist.
    pub fn describe_dirs(&self) -> String {
        self.dirs
            .iter()
            .map(|d| {
                if d.is_dir() {
                    d.display().to_string()
                } else {
                    format!("{} (missing)", d.display())
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every manifest file on the search path, in priority order.
    pub fn manifest_files(&self) -> Vec<PathBuf> {
        self.manifest_entries()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    fn manifest_entries(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        for dir in &self.dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<(PathBuf, std::fs::Metadata)> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("tool.yaml"))
                .filter_map(|p| {
                    std::fs::metadata(&p)
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|m| (p, m))
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(entries);
        }
        out
    }

    /// Load every tool; invalid manifests and shadowed duplicates become
    /// diagnostics. Unchanged manifests come from the index (JSON, ~30x
    /// faster than YAML); the index is rewritten when anything changed.
    pub fn scan(&self) -> Scan {
        let files = self.manifest_entries();
        let mut index: Index = self
            .index
            .as_ref()
            .and_then(|p| state::read_json(p).ok().flatten())
            .filter(|i: &Index| i.v == INDEX_VERSION)
            .unwrap_or_default();
        let keys: Vec<String> = files
            .iter()
            .map(|(p, _)| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let mut results: Vec<Option<Result<Tool, Diagnostic>>> = vec![None; files.len()];
        let mut to_parse = Vec::new();
        for (i, ((path, meta), key)) in files.iter().zip(&keys).enumerate() {
            match index.entries.get(key) {
                Some(e) if e.stamp == stamp(meta) && self.index.is_some() => {
                    results[i] = Some(tool_from_index(path, e));
                }
                _ => to_parse.push(i),
            }
        }
        let parse_paths: Vec<PathBuf> = to_parse.iter().map(|&i| files[i].0.clone()).collect();
        let mut changed = false;
        for (&i, res) in to_parse.iter().zip(load_all(&parse_paths)) {
            match &res {
                Ok(t) => {
                    index.entries.insert(
                        keys[i].clone(),
                        IndexEntry {
                            stamp: stamp(&files[i].1),
                            digest: hex::encode(t.digest),
                            manifest: t.manifest.clone(),
                        },
                    );
                    changed = true;
                }
                Err(_) => changed |= index.entries.remove(&keys[i]).is_some(),
            }
            results[i] = Some(res);
        }
        if let Some(ipath) = &self.index {
            // Forget deleted manifests under the scanned directories.
            let roots: Vec<String> = self
                .dirs
                .iter()
                .map(|d| {
                    std::path::absolute(d)
                        .unwrap_or_else(|_| d.clone())
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            let before = index.entries.len();
            index.entries.retain(|k, _| {
                keys.contains(k) || !roots.iter().any(|r| k.starts_with(r.as_str()))
            });
            changed |= index.entries.len() != before;
            if changed {
                index.v = INDEX_VERSION;
                let _ = state::write_json(ipath, &index, Durability::Atomic);
            }
        }
        let mut scan = Scan::default();
        let mut seen: BTreeMap<String, (PathBuf, [u8; 32])> = BTreeMap::new();
        for ((path, _), res) in files.iter().zip(results) {
            match res {
                None => {}
                Some(Err(d)) => scan.diagnostics.push(d),
                Some(Ok(tool)) => {
                    if let Some((first, digest)) = seen.get(&tool.name) {
                        // An identical copy (`gathm init` run in a checkout) is no conflict.
                        if *digest == tool.digest {
                            continue;
                        }
                        scan.diagnostics.push(Diagnostic {
                            severity: Severity::Warning,
                            file: path.clone(),
                            line: 1,
                            column: 1,
                            message: format!(
                                "tool {:?} is shadowed by {}",
                                tool.name,
                                first.display()
                            ),
                        });
                    } else {
                        seen.insert(tool.name.clone(), (path.clone(), tool.digest));
                        scan.tools.push(tool);
                    }
                }
            }
        }
        scan.tools.sort_by(|a, b| a.name.cmp(&b.name));
        scan
    }
}

fn tool_from_index(path: &Path, e: &IndexEntry) -> Result<Tool, Diagnostic> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = e.manifest.name.clone().unwrap_or_else(|| {
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut digest = [0u8; 32];
    if hex::decode_to_slice(&e.digest, &mut digest).is_err() {
        return load_file(path);
    }
    Ok(Tool {
        name,
        dir,
        manifest_path: path.to_path_buf(),
        manifest: e.manifest.clone(),
        digest,
    })
}

/// The result of scanning the search path.
#[derive(Debug, Default)]
pub struct Scan {
    /// Tools, sorted by name, duplicates removed.
    pub tools: Vec<Tool>,
    /// Unparsable manifests and shadowed duplicates.
    pub diagnostics: Vec<Diagnostic>,
}

fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    }
}

/// Parse one manifest file's bytes into a tool.
pub fn load(path: &Path, bytes: &[u8]) -> Result<Tool, Diagnostic> {
    let text = std::str::from_utf8(bytes).map_err(|e| manifest::utf8_error(path, bytes, &e))?;
    let m = manifest::parse(path, text)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let dir_name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = m.name.clone().unwrap_or_else(|| dir_name.clone());
    if !manifest::valid_name(&name) {
        let (line, column) = manifest::locate(text, "name");
        return Err(Diagnostic {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line,
            column,
            message: format!("invalid tool name {name:?}"),
        });
    }
    Ok(Tool {
        name,
        dir,
        manifest_path: path.to_path_buf(),
        manifest: m,
        digest: *blake3::hash(bytes).as_bytes(),
    })
}

fn load_file(path: &Path) -> Result<Tool, Diagnostic> {
    let bytes = std::fs::read(path).map_err(|e| io_diag(path, &e))?;
    load(path, &bytes)
}

/// Load many manifests, on two threads when there are many.
fn load_all(files: &[PathBuf]) -> Vec<Result<Tool, Diagnostic>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    if files.len() < 64 || threads < 2 {
        return files.iter().map(|p| load_file(p)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|p| load_file(p)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Names close to `name`, for "did you mean": within an edit distance of a
/// third of the longer name (at least 2, a transposition counting as one
/// edit), or starting with `name`; the closest three.
pub fn suggestions(name: &str, candidates: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(2) || c.starts_with(name))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, c)| c.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path, name: &str, description: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(
            dir.join(name).join("tool.yaml"),
            format!(
                "name: {name}\nversion: \"1.0.0\"\ndescription: {description}\ncategory: utility\nrequires_internet: false\ncommand: [\"true\"]\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn shared_lookups_follow_edits_and_earlier_directories() {
        let t = tempfile::tempdir().unwrap();
        let (first, second) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&first).unwrap();
        manifest(&second, "x", "one tool");
        let search = SearchPath::new(&[first.clone(), second.clone()], None, t.path().join("h"));
        let a = search.find_shared("x").unwrap().unwrap();
        let b = search.clone().find_shared("x").unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "an unchanged manifest is not loaded again"
        );
        assert_eq!(search.first_error(&a), None);
        assert_eq!(a.manifest.description.as_deref(), Some("one tool"));
        // An edit (another size) is seen at the next lookup.
        manifest(&second, "x", "two, longer");
        let c = search.find_shared("x").unwrap().unwrap();
        assert_eq!(c.manifest.description.as_deref(), Some("two, longer"));
        // A tool of the same name in an earlier directory takes over.
        manifest(&first, "x", "the first");
        let d = search.find_shared("x").unwrap().unwrap();
        assert_eq!(d.manifest.description.as_deref(), Some("the first"));
        assert_eq!(d.manifest_path, first.join("x").join("tool.yaml"));
        // A manifest with an error is reported, for the tool as it now is.
        std::fs::write(
            first.join("x").join("tool.yaml"),
            "name: x\nversion: \"1.0.0\"\ndescription: bad\ncategory: utility\nrequires_internet: false\n",
        )
        .unwrap();
        let e = search.find_shared("x").unwrap().unwrap();
        let err = search
            .first_error(&e)
            .expect("a short description is an error");
        assert!(err.message.contains("description"), "{}", err.message);
        assert_eq!(search.first_error(&e), Some(err), "the same answer, kept");
        // And a removed one is gone.
        std::fs::remove_dir_all(&first).unwrap();
        std::fs::remove_dir_all(&second).unwrap();
        assert!(search.find_shared("x").unwrap().is_none());
    }

    #[test]
    fn suggests_near_names() {
        let c: Vec<String> = ["dns", "dnssec", "hash", "httpprobe"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(suggestions("dsn", &c)[0], "dns");
        assert!(suggestions("zzzzzzzz", &c).is_empty());
    }

    #[test]
    fn search_path_order() {
        let home = PathBuf::from("/h/tools");
        let sp = SearchPath::new(&[PathBuf::from("/a")], Some("/b:/c"), home.clone());
        assert_eq!(sp.dirs, vec![PathBuf::from("/a"), home.clone()]);
        let sp = SearchPath::new(&[], Some("/b:/c"), home.clone());
        assert_eq!(
            sp.dirs,
            vec![PathBuf::from("/b"), PathBuf::from("/c"), home]
        );
    }
}
