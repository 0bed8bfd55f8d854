//! Every README example marked runnable (a code block opened with
//! "```sh runnable") runs as shipped: each line, through bash, in a copy of
//! the repository's tools/, pipelines/ and policies.yaml, with `gathm` on
//! PATH, a temporary GATHM_HOME and HOME, and must exit 0.

use std::path::Path;

use crate::harness::*;

/// The runnable blocks: (first line number, lines).
fn runnable_blocks(readme: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, Vec<String>)> = None;
    for (i, line) in readme.lines().enumerate() {
        let t = line.trim();
        match &mut cur {
            None if t.starts_with("```") && t.split_whitespace().any(|w| w == "runnable") => {
                cur = Some((i + 2, Vec::new()));
            }
            Some(_) if t == "```" => out.push(cur.take().unwrap()),
            Some((_, lines)) => lines.push(line.to_string()),
            None => {}
        }
    }
    out
}

#[test]
fn readme_examples_marked_runnable_run_as_shipped() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(blocks.len() >= 6, "{} runnable blocks", blocks.len());
    let s = Sandbox::new(&[]);
    let work = s.path().join("repo");
    copy_dir(&repo.join("tools"), &work.join("tools"));
    copy_dir(&repo.join("pipelines"), &work.join("pipelines"));
    std::fs::copy(repo.join("policies.yaml"), work.join("policies.yaml")).unwrap();
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let mut failed = Vec::new();
    let mut ran = 0;
    for (start, lines) in &blocks {
        for (k, line) in lines.iter().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            ran += 1;
            let o = std::process::Command::new("bash")
                .args(["-c", line])
                .env_remove("GATHM_TOOLS_PATH")
                .env("GATHM_HOME", s.home())
                .env("HOME", s.path())
                .env("PATH", &path)
                .env("NO_COLOR", "1")
                .current_dir(&work)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            if !o.status.success() {
                failed.push(format!(
                    "README.md:{}: {line}\n  exit {:?}\n  stdout: {}\n  stderr: {}",
                    start + k,
                    o.status.code(),
                    stdout(&o).trim(),
                    stderr(&o).trim()
                ));
            }
        }
    }
    assert!(ran >= 20, "only {ran} example lines");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
