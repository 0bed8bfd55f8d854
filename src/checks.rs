//! Can the tool start? The executable exists and is executable, a script's
//! interpreter (shebang) exists, and a `command`'s program is on `PATH`.
//! `validate` reports these as warnings (errors under `--strict`) with the
//! manifest's file:line; `health` reports them as failed checks.

use std::path::{Path, PathBuf};

use crate::health::which;
use crate::manifest::{self, Diagnostic, Manifest, Severity};
use crate::registry::Tool;

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The interpreter a script names in its `#!` line, if that interpreter is
/// missing: `Some(sentence)`. `#!/usr/bin/env [-S] prog` looks `prog` up on PATH.
pub fn interpreter_problem(script: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let head = &head[..n];
    let line = head.strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|&b| b == b'\n').next().unwrap_or(&[]));
    let mut words = line.split_whitespace();
    let interp = words.next()?;
    if !is_executable(Path::new(interp)) {
        return Some(format!(
            "the interpreter {interp} named by the #! line of {} does not exist or is not executable",
            script.display()
        ));
    }
    if Path::new(interp).file_name().is_some_and(|n| n == "env") {
        let prog = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        if which(prog).is_none() {
            return Some(format!(
                "the interpreter {prog:?} named by the #! line of {} is not on PATH",
                script.display()
            ));
        }
    }
    None
}

/// What keeps the tool from starting, as sentences, with the manifest key
/// each is about (`command`, `name` or a workspace's `seed`).
pub fn start_problems(tool: &Tool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (program, _) = tool.program();
    let from_command = tool
        .manifest
        .command
        .as_ref()
        .is_some_and(|c| !c.to_vec().is_empty());
    let key = if from_command { "command" } else { "name" };
    let path: Option<PathBuf> = if program.components().count() > 1 {
        if !program.exists() {
            out.push((
                key,
                if from_command {
                    format!("the command's program {} does not exist", program.display())
                } else {
                    format!(
                        "the executable {} does not exist (a tool runs its `command`, else <dir>/<name>)",
                        program.display()
                    )
                },
            ));
            None
        } else if !is_executable(&program) {
            out.push((
                key,
                format!(
                    "{} is not executable (chmod +x {})",
                    program.display(),
                    program.display()
                ),
            ));
            None
        } else {
            Some(program.clone())
        }
    } else {
        let found = which(&program.to_string_lossy());
        if found.is_none() {
            out.push((
                key,
                format!(
                    "the command's program {:?} is not on PATH",
                    program.display().to_string()
                ),
            ));
        }
        found
    };
    if let Some(p) = path
        && let Some(problem) = interpreter_problem(&p)
    {
        out.push((key, problem));
    }
    if let Some(seed) = tool.manifest.workspace().and_then(|w| w.seed) {
        let dir = tool.manifest_path.parent().unwrap_or(&tool.dir);
        let p = crate::workspace::seed_path(dir, &seed);
        if !p.is_dir() {
            out.push((
                "seed",
                format!(
                    "the workspace seed {} is not a directory (seed is relative to the manifest's directory)",
                    p.display()
                ),
            ));
        }
    }
    out
}

/// `validate`'s view: the start problems of a parsed manifest as warnings at
/// the line of the key they are about.
pub fn diagnostics(file: &Path, text: &str, m: &Manifest, name: &str) -> Vec<Diagnostic> {
    let tool = Tool {
        name: name.to_string(),
        dir: file.parent().unwrap_or(Path::new(".")).to_path_buf(),
        manifest_path: file.to_path_buf(),
        manifest: m.clone(),
        digest: [0; 32],
    };
    start_problems(&tool)
        .into_iter()
        .map(|(key, message)| {
            let (line, column) = manifest::locate(text, key);
            Diagnostic {
                severity: Severity::Warning,
                file: file.to_path_buf(),
                line,
                column,
                message,
            }
        })
        .collect()
}

/// `file:line` of a manifest key (for messages about a tool).
pub fn at(tool: &Tool, key: &str) -> String {
    let text = std::fs::read_to_string(&tool.manifest_path).unwrap_or_default();
    let (line, _) = manifest::locate(&text, key);
    format!("{}:{line}", tool.manifest_path.display())
}
