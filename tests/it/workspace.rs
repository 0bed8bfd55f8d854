//! Isolated workspaces (`workspace: isolated`): concurrent runs never see
//! each other's files, the seed is copied (symlinks left out), `keep`
//! decides what stays, the TTL sweeps kept ones, bad settings are located
//! by `validate`; and a job's artifacts over HTTP: listed, fetched byte for
//! byte, traversal and symlinks out refused, oversized ones refused.

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::harness::{Sandbox, stdout};
use crate::serve::{KEYS, Server, client, get, raw, submit, wait_job};

const HEAD: &str = "version: \"1.0.0\"\ndescription: \"An isolated test tool\"\ncategory: utility\nrequires_internet: false\n";

/// `iso`: writes a marker named after its argument, waits (bounded) until
/// both runs have started, then prints its directory's entries and `pwd`.
fn iso_tool(sb: &Sandbox) {
    let barrier = sb.path().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    sb.manifest(
        "iso",
        &format!(
            "name: iso\n{HEAD}workspace: isolated\nenv:\n  BARRIER: {}\n",
            barrier.display()
        ),
        Some(
            "#!/bin/sh\necho \"$1\" > \"marker-$1\"\ntouch \"$BARRIER/$1\"\ni=0\nwhile [ \"$(ls \"$BARRIER\" | wc -l)\" -lt 2 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\necho \"started: $(ls \"$BARRIER\" | wc -l)\"\nls -A\necho \"pwd: $(pwd)\"\necho \"ws: $GATHM_WORKSPACE\"\n",
        ),
    );
}

fn lines(v: &Value) -> Vec<String> {
    v["output"]
        .as_str()
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn concurrent_isolated_runs_never_see_each_others_files() {
    let sb = Sandbox::new(&[]);
    iso_tool(&sb);
    let spawn = |arg: &str| {
        sb.cmd()
            .args(["run", "--json", "iso", arg])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("A"), spawn("B"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut dirs = Vec::new();
    for (o, mine, theirs) in [(&a, "A", "B"), (&b, "B", "A")] {
        let v: Value = serde_json::from_str(&stdout(o)).unwrap();
        assert_eq!(v["exit_code"], 0, "{v}");
        let out = lines(&v);
        // Both were running at once when each listed its directory.
        assert!(out.contains(&"started: 2".to_string()), "{out:?}");
        assert!(out.contains(&format!("marker-{mine}")), "{out:?}");
        assert!(!out.contains(&format!("marker-{theirs}")), "{out:?}");
        assert!(out.contains(&"artifacts".to_string()), "{out:?}");
        let run_id = v["run_id"].as_str().unwrap();
        let want = sb.home().join("work").join(run_id);
        let pwd = out.iter().find_map(|l| l.strip_prefix("pwd: ")).unwrap();
        assert_eq!(Path::new(pwd), want, "{out:?}");
        assert!(out.contains(&format!("ws: {}", want.display())), "{out:?}");
        // Succeeded: removed (keep defaults to on_failure).
        assert!(!want.exists(), "{} left behind", want.display());
        dirs.push(want);
    }
    assert_ne!(dirs[0], dirs[1]);
    // Found through a relative tools directory, it still starts.
    let o = sb
        .cmd()
        .args(["--tools-dir", "tools", "run", "iso", "C"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", crate::harness::stderr(&o));
    assert!(stdout(&o).contains("marker-C"), "{}", stdout(&o));
    // Nothing was written in the caller's directory.
    assert!(!sb.path().join("marker-A").exists());
    assert!(!sb.path().join("marker-B").exists());
}

#[test]
fn seed_is_copied_without_symlinks_and_keep_decides() {
    let sb = Sandbox::new(&[]);
    let outside = sb.write("outside.txt", "secret");
    let seed = sb.tools().join("seeded/seed");
    std::fs::create_dir_all(seed.join("sub")).unwrap();
    std::fs::write(seed.join("sub/data.txt"), "seeded data").unwrap();
    std::os::unix::fs::symlink(&outside, seed.join("out")).unwrap();
    sb.manifest(
        "seeded",
        &format!("name: seeded\n{HEAD}workspace:\n  seed: seed\n  keep: never\n"),
        Some(
            "#!/bin/sh\ncat sub/data.txt\necho\nif [ -e out ] || [ -L out ]; then echo LEAK; fi\necho changed > sub/data.txt\nexit \"${1:-0}\"\n",
        ),
    );
    let (code, v) = sb.json(&["run", "--json", "seeded", "3"]);
    assert_eq!(code, 3, "{v}");
    assert!(
        v["output"].as_str().unwrap().starts_with("seeded data"),
        "{v}"
    );
    assert!(!v["output"].as_str().unwrap().contains("LEAK"), "{v}");
    // keep: never removes even a failure's workspace; the seed is untouched.
    let ws = sb.home().join("work").join(v["run_id"].as_str().unwrap());
    assert!(!ws.exists());
    let shown = stdout(&sb.run(&["show", "seeded"]));
    assert!(
        shown.contains(", seed seed, keep never  manifest"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_to_string(seed.join("sub/data.txt")).unwrap(),
        "seeded data"
    );

    // on_failure (the default) keeps a failure's workspace, not a success's.
    sb.manifest(
        "flaky",
        &format!("name: flaky\n{HEAD}workspace: {{isolated: true}}\n"),
        Some("#!/bin/sh\necho left > left.txt\nexit \"$1\"\n"),
    );
    let (code, v) = sb.json(&["run", "--json", "flaky", "4"]);
    assert_eq!(code, 4, "{v}");
    let kept = sb.home().join("work").join(v["run_id"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(kept.join("left.txt")).unwrap(),
        "left\n"
    );
    let o = sb.run(&["run", "flaky", "5"]);
    assert!(
        crate::harness::stderr(&o).contains("workspace kept: "),
        "{}",
        crate::harness::stderr(&o)
    );
    let (code, v) = sb.json(&["run", "--json", "flaky", "0"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        !sb.home()
            .join("work")
            .join(v["run_id"].as_str().unwrap())
            .exists()
    );

    // always keeps a success's too; a TTL of 0 sweeps every kept one at the
    // next isolated run.
    sb.manifest(
        "keeper",
        &format!("name: keeper\n{HEAD}workspace:\n  keep: always\n"),
        Some("#!/bin/sh\ntouch here\n"),
    );
    let (code, v) = sb.json(&["run", "--json", "keeper"]);
    assert_eq!(code, 0, "{v}");
    let kept2 = sb.home().join("work").join(v["run_id"].as_str().unwrap());
    assert!(kept2.join("here").exists());
    assert!(kept.exists(), "not yet due");
    let o = sb
        .cmd()
        .args(["run", "flaky", "0"])
        .env("GATHM_WORKSPACE_TTL", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(!kept.exists() && !kept2.exists(), "swept");
    let left: Vec<_> = std::fs::read_dir(sb.home().join("work")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // A seed that is missing: the run fails before the tool starts.
    sb.manifest(
        "noseed",
        &format!("name: noseed\n{HEAD}workspace: {{seed: missing}}\n"),
        Some("#!/bin/sh\necho RAN\n"),
    );
    let (code, v) = sb.json(&["run", "--json", "noseed"]);
    assert_eq!(code, 126, "{v}");
    assert!(!v["output"].as_str().unwrap().contains("RAN"), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("isolated workspace"),
        "{v}"
    );
}

#[test]
fn bad_workspace_settings_are_located() {
    let sb = Sandbox::new(&[]);
    sb.manifest(
        "w1",
        &format!("name: w1\n{HEAD}workspace: isolatd\n"),
        Some("#!/bin/sh\n"),
    );
    sb.manifest(
        "w2",
        &format!("name: w2\n{HEAD}workspace:\n  keep: sometimes\n"),
        Some("#!/bin/sh\n"),
    );
    sb.manifest(
        "w3",
        &format!("name: w3\n{HEAD}workspace:\n  seed: nowhere\n"),
        Some("#!/bin/sh\n"),
    );
    sb.manifest(
        "w4",
        &format!("name: w4\n{HEAD}workspace:\n  sed: x\n"),
        Some("#!/bin/sh\n"),
    );
    let o = sb.run(&["validate"]);
    let text = format!("{}{}", stdout(&o), crate::harness::stderr(&o));
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("w1/tool.yaml:6:12: error: workspace: unknown workspace \"isolatd\""),
        "{text}"
    );
    assert!(
        text.contains("w2/tool.yaml:7:9: error: workspace.keep: unknown variant `sometimes`"),
        "{text}"
    );
    assert!(
        text.contains("w3/tool.yaml:7:3: warning: the workspace seed"),
        "{text}"
    );
    assert!(
        text.contains(
            "w4/tool.yaml:7:3: warning: unknown key `workspace.sed`; did you mean `seed`?"
        ),
        "{text}"
    );
    // The schema shows the field.
    let (_, schema) = sb.json(&["schema", "tool"]);
    assert!(schema["properties"]["workspace"].is_object(), "{schema}");
}

/// A raw GET with a bearer token; (status, whole response text).
fn raw_get(s: &Server, path: &str, token: &str) -> (u16, String) {
    raw(
        s,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn job_artifacts_are_listed_fetched_and_guarded() {
    let sb = Sandbox::new(&[]);
    let outside = sb.write("outside.txt", "not yours");
    sb.manifest(
        "art",
        &format!("name: art\n{HEAD}workspace: {{keep: never}}\n"),
        Some(&format!(
            "#!/bin/sh\nset -e\nprintf 'hello\\000bytes' > \"$GATHM_ARTIFACTS/out.bin\"\nmkdir \"$GATHM_ARTIFACTS/d\"\necho nested > \"$GATHM_ARTIFACTS/d/n e.txt\"\nhead -c 2000000 /dev/zero > \"$GATHM_ARTIFACTS/big.bin\"\nln -s {} \"$GATHM_ARTIFACTS/link\"\necho private > secret.txt\n",
            outside.display()
        )),
    );
    let s = Server::start(
        &sb,
        &[("GATHM_API_KEYS", KEYS), ("GATHM_MAX_ARTIFACT_MB", "1")],
    );
    let job = submit(&s, Some("usr"), json!({"tool": "art"}));
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_job(&s, &id, Some("usr"), &["completed", "failed"]);
    assert_eq!(done["status"], "completed", "{done}");
    // The workspace is gone (keep: never); the artifacts stay with the job.
    let run_id = done["envelope"]["run_id"].as_str().unwrap();
    assert!(!sb.home().join("work").join(run_id).exists());

    let r = get(&s, &format!("/api/v1/jobs/{id}/artifacts"), Some("usr"));
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big.bin", "d/n e.txt", "out.bin"], "{}", r.body);
    assert_eq!(r.body["count"], 3);
    assert_eq!(r.body["artifacts"][0]["size"], 2_000_000);
    assert_eq!(r.body["max_bytes"], 1 << 20);
    let url = r.body["artifacts"][1]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/v1/jobs/{id}/artifacts/d/n%20e.txt"));

    // Fetched byte for byte, as an attachment.
    let resp = client()
        .get(s.url(&format!("/api/v1/jobs/{id}/artifacts/out.bin")))
        .bearer_auth("usr")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().unwrap().as_ref(), b"hello\0bytes");
    let resp = client().get(s.url(&url)).bearer_auth("usr").send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().unwrap(), "nested\n");

    // Too large for GATHM_MAX_ARTIFACT_MB: 413 with the sizes.
    let r = get(
        &s,
        &format!("/api/v1/jobs/{id}/artifacts/big.bin"),
        Some("usr"),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["size"], 2_000_000);

    // Traversal, absolute names, NUL bytes, symlinks out: refused, as JSON.
    for bad in [
        "..%2f..%2fjobs.db",
        "%2e%2e/%2e%2e/jobs.db",
        "../../jobs.db",
        "d/../../x",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "a%00b",
        "d%5c..%5cx",
        "%zz",
        "link",
        "d",
        "secret.txt",
        "nope",
    ] {
        let (status, text) = raw_get(&s, &format!("/api/v1/jobs/{id}/artifacts/{bad}"), "usr");
        assert!(status == 400 || status == 404, "{bad}: {status} {text}");
        assert!(text.contains("{\"error\":"), "{bad}: {text}");
        assert!(!text.contains("not yours"), "{bad}: {text}");
    }
    // Another principal's job is not found; an admin sees it.
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{id}/artifacts"), Some("usr2")).status,
        404
    );
    assert_eq!(
        get(
            &s,
            &format!("/api/v1/jobs/{id}/artifacts/out.bin"),
            Some("usr2")
        )
        .status,
        404
    );
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{id}/artifacts"), Some("adm")).status,
        200
    );
    assert_eq!(
        get(&s, "/api/v1/jobs/nosuchjob/artifacts", Some("usr")).status,
        404
    );
}

#[test]
fn each_try_starts_in_a_fresh_workspace() {
    let sb = Sandbox::new(&[]);
    let state = sb.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Fails the first try (leaving a file), succeeds the second.
    sb.manifest(
        "twice",
        &format!(
            "name: twice\n{HEAD}workspace: isolated\nretry: {{attempts: 2, delay: 0}}\nenv:\n  STATE: {}\n",
            state.display()
        ),
        Some(
            "#!/bin/sh\nif [ -e \"$STATE/once\" ]; then ls -A; exit 0; fi\ntouch \"$STATE/once\" first.txt\nexit 1\n",
        ),
    );
    let (code, v) = sb.json(&["run", "--json", "twice"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(lines(&v), ["artifacts"], "{v}");
    let run_id = v["run_id"].as_str().unwrap();
    // The failed first try is kept (on_failure), the successful second not.
    let work = sb.home().join("work");
    assert!(work.join(run_id).join("first.txt").is_file());
    assert!(!work.join(format!("{run_id}.2")).exists());
}
