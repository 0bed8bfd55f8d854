//! `gathm init`: set up `$GATHM_HOME` (default `~/.gathm`) with the shipped
//! tool catalogue and policies, idempotently: a tool already in
//! `$GATHM_HOME/tools` and an existing `policies.yaml` are kept as they are.
//!
//! The catalogue comes from `--from DIR`, else the `tools/` directory of the
//! repository the binary was built in (found beside the executable, as in
//! `target/debug/gathm`, or at the source path recorded at build time).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Context;
use crate::error::{Error, Result};

/// What `init` did.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// `GATHM_HOME`.
    pub home: PathBuf,
    /// Where the tools came from.
    pub source: PathBuf,
    /// Tools copied (or linked) now.
    pub installed: Vec<String>,
    /// Tools that were already there (kept).
    pub kept: Vec<String>,
    /// `created` or `kept`.
    pub policies: &'static str,
    /// Tools were symlinked rather than copied.
    pub linked: bool,
}

fn is_catalogue(d: &Path) -> bool {
    std::fs::read_dir(d)
        .is_ok_and(|mut rd| rd.any(|e| e.is_ok_and(|e| e.path().join("tool.yaml").is_file())))
}

/// The shipped catalogue: `--from`, else `tools/` near the executable, else
/// the build-time source tree.
pub fn find_catalogue(from: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = from {
        return if is_catalogue(d) {
            Ok(d.to_path_buf())
        } else {
            Err(Error::Usage(format!(
                "{} holds no tool directories (DIR/NAME/tool.yaml)",
                d.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for a in exe.ancestors().skip(1).take(4) {
            candidates.push(a.join("tools"));
            candidates.push(a.join("share/gathm/tools"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools"));
    candidates
        .into_iter()
        .find(|d| is_catalogue(d))
        .ok_or_else(|| {
            Error::Usage(
                "no tool catalogue found beside the executable or in the source tree; pass --from DIR (a directory of NAME/tool.yaml)".into(),
            )
        })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("cannot create", to, e))?;
    let rd = std::fs::read_dir(from).map_err(|e| Error::io("cannot read", from, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("cannot read", from, e))?;
        let dest = to.join(e.file_name());
        let ft = e
            .file_type()
            .map_err(|x| Error::io("cannot read", e.path(), x))?;
        if ft.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dest).map_err(|x| Error::io("cannot copy", e.path(), x))?;
        }
    }
    Ok(())
}

/// Install the catalogue and policies into the home.
pub fn init(ctx: &Context, from: Option<&Path>, link: bool) -> Result<InitReport> {
    let source = find_catalogue(from)?;
    let source = std::path::absolute(&source).unwrap_or(source);
    let tools = ctx.home.tools();
    std::fs::create_dir_all(&tools).map_err(|e| Error::io("cannot create", &tools, e))?;
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .map_err(|e| Error::io("cannot read", &source, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("tool.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut installed, mut kept) = (Vec::new(), Vec::new());
    for n in names {
        let dest = tools.join(&n);
        if dest.symlink_metadata().is_ok() {
            kept.push(n);
            continue;
        }
        if link {
            std::os::unix::fs::symlink(source.join(&n), &dest)
                .map_err(|e| Error::io("cannot link", &dest, e))?;
        } else {
            copy_dir(&source.join(&n), &dest)?;
        }
        installed.push(n);
    }
    let pfile = ctx.home.policies();
    let policies = if pfile.exists() {
        "kept"
    } else {
        let shipped = source.parent().map(|p| p.join("policies.yaml"));
        let text = shipped
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| crate::policy::DEFAULT_POLICIES.to_string());
        std::fs::write(&pfile, text).map_err(|e| Error::io("cannot write", &pfile, e))?;
        "created"
    };
    Ok(InitReport {
        home: ctx.home.root.clone(),
        source,
        installed,
        kept,
        policies,
        linked: link,
    })
}
