//! `gathm new-tool NAME`: scaffold a tool directory (manifest and an
//! executable script that handles `--help`) that passes `validate --strict`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Context;
use crate::error::{Error, Result};
use crate::manifest::{self, CATEGORIES};
use crate::registry::suggestions;

/// The script's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// A bash script.
    Bash,
    /// A python3 script.
    Python,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tool name (also the directory and the script's name).
    pub name: String,
    /// One of the eight categories (default `utility`).
    pub category: Option<String>,
    /// Script language (default bash).
    pub lang: Lang,
    /// Parent directory (default: the first directory of the search path).
    pub dir: Option<PathBuf>,
    /// One-line description.
    pub description: Option<String>,
}

/// What was created.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// Tool name.
    pub name: String,
    /// The tool's directory.
    pub dir: PathBuf,
    /// `<dir>/tool.yaml`.
    pub manifest: PathBuf,
    /// `<dir>/<name>`, executable.
    pub script: PathBuf,
    /// The category written.
    pub category: String,
    /// Script language.
    pub lang: Lang,
    /// Whether `dir`'s parent is on the tool search path.
    pub on_search_path: bool,
}

/// Check a category name; the error lists the eight.
pub fn check_category(c: &str) -> Result<()> {
    if CATEGORIES.contains(&c) {
        return Ok(());
    }
    let cands: Vec<String> = CATEGORIES.iter().map(|s| s.to_string()).collect();
    let s = suggestions(c, &cands);
    let hint = s
        .first()
        .map(|s| format!("; did you mean {s:?}?"))
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "unknown category {c:?}{hint} (one of: {})",
        CATEGORIES.join(", ")
    )))
}

/// Check a tool name: the manifest's rules, and not a gathm command.
pub fn check_name(name: &str) -> Result<()> {
    if !manifest::valid_name(name) {
        return Err(Error::Usage(format!(
            "invalid tool name {name:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters"
        )));
    }
    if crate::cli::SUBCOMMANDS.contains(&name) {
        return Err(Error::Usage(format!(
            "{name:?} is a gathm command: `gathm {name}` would never reach the tool; choose another name"
        )));
    }
    Ok(())
}

fn yaml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The manifest text.
pub fn manifest_text(name: &str, category: &str, lang: Lang, description: &str) -> String {
    let interp = match lang {
        Lang::Bash => "bash",
        Lang::Python => "python3",
    };
    format!(
        "# The manifest of {name}. Every field: `gathm schema tool`; README \"Adding a tool\".
name: {name}
version: \"0.1.0\"
description: {desc}
category: {category}
dependencies:
  system: [{interp}]
requires_internet: false
input_schema:
  arguments:
    - name: input
      type: string
      required: false
      description: \"What to work on (default: world)\"
  flags:
    - flag: \"-h\"
      description: \"Show help\"
      has_argument: false
    - flag: \"-v\"
      description: \"Show version\"
      has_argument: false
output_schema:
  text: \"One greeting line\"
tags: [{category}, {name}]
timeout: 30
",
        desc = yaml_quote(description),
    )
}

/// The script text.
pub fn script_text(name: &str, lang: Lang, description: &str) -> String {
    match lang {
        Lang::Bash => format!(
            r#"#!/usr/bin/env bash
# {name}: {description}
set -euo pipefail

usage() {{
    cat <<'EOF'
Usage: {name} [INPUT]

{description}

Options:
  -h, --help     show this help and exit
  -v, --version  print the version and exit
EOF
}}

case "${{1:-}}" in
    -h | --help) usage; exit 0 ;;
    -v | --version) echo "{name} 0.1.0"; exit 0 ;;
    -*) echo "{name}: unknown option $1" >&2; usage >&2; exit 2 ;;
esac

input="${{1:-world}}"
echo "Hello from {name}: $input"
"#
        ),
        Lang::Python => format!(
            r#"#!/usr/bin/env python3
"""{name}: {description}"""
import argparse
import sys


def main() -> int:
    p = argparse.ArgumentParser(prog="{name}", description={desc})
    p.add_argument("-v", "--version", action="version", version="{name} 0.1.0")
    p.add_argument("input", nargs="?", default="world", help="what to work on")
    a = p.parse_args()
    print(f"Hello from {name}: {{a.input}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"#,
            desc = serde_json::to_string(description).unwrap_or_default(),
        ),
    }
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io("cannot create", path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io("cannot write", path, e))
}

/// Create the tool. Refuses an existing directory.
pub fn create(ctx: &Context, o: &Options) -> Result<Created> {
    check_name(&o.name)?;
    let category = o.category.clone().unwrap_or_else(|| "utility".into());
    check_category(&category)?;
    let parent = match &o.dir {
        Some(d) => d.clone(),
        None => ctx
            .search
            .dirs
            .first()
            .cloned()
            .unwrap_or_else(|| ctx.home.tools()),
    };
    let dir = parent.join(&o.name);
    if dir.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; choose another name or remove it",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let description = o
        .description
        .clone()
        .unwrap_or_else(|| format!("{}: describe what it does in one line", o.name));
    let manifest = dir.join("tool.yaml");
    let script = dir.join(&o.name);
    write_new(
        &manifest,
        &manifest_text(&o.name, &category, o.lang, &description),
        0o644,
    )?;
    write_new(&script, &script_text(&o.name, o.lang, &description), 0o755)?;
    ctx.logger.audit(vec![serde_json::json!({
        "action": "tool_create",
        "tool": o.name,
        "category": category,
        "lang": o.lang,
        "dir": dir.display().to_string(),
    })]);
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let on_search_path = ctx.search.dirs.iter().any(|d| abs(d) == abs(&parent));
    Ok(Created {
        name: o.name.clone(),
        dir,
        manifest,
        script,
        category,
        lang: o.lang,
        on_search_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_categories() {
        assert!(check_name("my-tool").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("list").is_err());
        assert!(check_category("security").is_ok());
        let e = check_category("secruity").unwrap_err().to_string();
        assert!(e.contains("did you mean \"security\""), "{e}");
        assert!(e.contains("productivity"), "{e}");
    }

    #[test]
    fn manifest_parses() {
        let t = manifest_text("x", "data", Lang::Python, "say \"hi\": twice");
        let m = manifest::parse(Path::new("x/tool.yaml"), &t).unwrap();
        assert_eq!(m.description.as_deref(), Some("say \"hi\": twice"));
    }
}
