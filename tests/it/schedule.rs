//! Schedules without a server: `gathm schedule list | next | validate | run | tick`.

use crate::harness::*;

fn stamps(s: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(s.path().join("stamps"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn sandbox(schedules: &str) -> Sandbox {
    let s = Sandbox::new(&["stamp", "slow", "ok"]);
    s.write("gathm.yaml", &format!("schedules:\n{schedules}"));
    s
}

fn tick(s: &Sandbox) -> (i32, serde_json::Value) {
    let o = s
        .cmd()
        .env("STAMP_FILE", s.path().join("stamps"))
        .args(["--json", "schedule", "tick"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v)
}

/// Pretend the last tick happened `minutes` ago (downtime).
fn rewind(s: &Sandbox, name: &str, minutes: i64) {
    let p = s.home().join("schedules").join(format!("{name}.json"));
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let last: jiff::Timestamp = h["last_slot"].as_str().unwrap().parse().unwrap();
    let back = last - jiff::SignedDuration::from_mins(minutes);
    h["last_slot"] = back.to_string().into();
    std::fs::write(&p, serde_json::to_vec(&h).unwrap()).unwrap();
}

#[test]
fn tick_twice_in_the_same_minute_runs_the_slot_once() {
    let s = sandbox("  - name: m\n    cron: '* * * * *'\n    tool: stamp\n    args: [x]\n");
    let (code, v) = tick(&s);
    assert_eq!(code, 0, "{v}");
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{v}");
    assert_eq!(slots[0]["outcome"], "success");
    let id = slots[0]["run_id"].as_str().unwrap().to_string();
    // The same minute (or, at a minute boundary, the next one, whose slot is new).
    let (_, v2) = tick(&s);
    let again = v2["slots"].as_array().unwrap();
    assert!(again.iter().all(|x| x["run_id"] != id.as_str()), "{v2}");
    let runs = stamps(&s).iter().filter(|l| l.starts_with("start")).count();
    assert_eq!(runs, 1 + again.len());
    // History: list shows the last outcome; the audit log names the schedule.
    let (_, l) = s.json(&["--json", "schedule", "list"]);
    assert_eq!(l[0]["last"]["outcome"], "success", "{l}");
    assert!(
        s.log("audit.log")
            .iter()
            .any(|e| e.to_string().contains("schedule:m")),
        "{:?}",
        s.log("audit.log")
    );
}

#[test]
fn catchup_after_downtime_follows_the_rule() {
    for (rule, ran, missed) in [("none", 1, 4), ("latest", 1, 4), ("all", 5, 0)] {
        let s = sandbox(&format!(
            "  - name: c\n    cron: '* * * * *'\n    tool: stamp\n    args: [y]\n    catchup: {rule}\n"
        ));
        let (code, _) = tick(&s);
        assert_eq!(code, 0);
        let before = stamps(&s).len();
        rewind(&s, "c", 5);
        let (_, v) = tick(&s);
        let slots = v["slots"].as_array().unwrap();
        let n = |o: &str| slots.iter().filter(|x| x["outcome"] == o).count();
        // A minute boundary between the two ticks adds one on-time slot.
        assert!(
            n("success") == ran || n("success") == ran + 1,
            "{rule}: {v}"
        );
        assert!(
            n("missed") == missed || n("missed") == missed + 1,
            "{rule}: {v}"
        );
        assert_eq!(
            stamps(&s).len() - before,
            2 * n("success"),
            "{rule}: every run recorded start and end"
        );
        // Missed slots are kept in the history.
        let h: serde_json::Value = serde_json::from_slice(
            &std::fs::read(s.home().join("schedules").join("c.json")).unwrap(),
        )
        .unwrap();
        let recorded = h["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["outcome"] == "missed")
            .count();
        assert_eq!(recorded, n("missed"), "{rule}: {h}");
    }
}

#[test]
fn overlap_skip_and_queue() {
    let s = sandbox(
        "  - name: long\n    cron: '0 0 1 1 *'\n    tool: slow\n    args: ['3']\n  - name: q\n    cron: '0 0 1 1 *'\n    tool: slow\n    args: ['1']\n    overlap: queue\n",
    );
    let mut first = s
        .cmd()
        .args(["schedule", "run", "long"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lockfile = s.home().join("schedules").join("long.json");
    wait_until(
        "the first run to start",
        std::time::Duration::from_secs(10),
        || {
            std::fs::read_to_string(&lockfile).is_ok_and(|t| t.contains("running_pid\":"))
                && !std::fs::read_to_string(&lockfile)
                    .unwrap()
                    .contains("running_pid\":null")
        },
    );
    let o = s.run(&["--json", "schedule", "run", "long"]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "skipped");
    assert!(first.wait().unwrap().success());
    // queue: the second waits for the first instead of skipping.
    let mut a = s
        .cmd()
        .args(["schedule", "run", "q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let o = s.run(&["--json", "schedule", "run", "q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(a.wait().unwrap().success());
}

#[test]
fn validate_locates_every_problem_and_next_lists_times() {
    let s = sandbox(
        "  - name: a\n    cron: '0 3 * * *'\n    tool: nosuchtool\n  - name: b\n    cron: '0 3 * *'\n    tool: ok\n",
    );
    let o = s.run(&["schedule", "validate"]);
    assert_eq!(o.status.code(), Some(65));
    let e = stderr(&o);
    assert!(
        e.contains("gathm.yaml:6:11: error") && e.contains("gathm.yaml:4:11: error"),
        "{e}"
    );
    s.write(
        "gathm.yaml",
        "schedules:\n  - name: a\n    cron: '0 3 * * *'\n    tool: nosuchtool\n",
    );
    let o = s.run(&["validate"]);
    assert_eq!(o.status.code(), Some(65));
    let e = stderr(&o);
    assert!(
        e.contains("gathm.yaml:4:11: error") && e.contains("nosuchtool"),
        "{e}"
    );
    s.write(
        "gathm.yaml",
        "schedules:\n  - name: a\n    cron: '0 3 * * *'\n    timezone: Europe/Paris\n    tool: ok\n    colour: blue\n",
    );
    let o = s.run(&["schedule", "list"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("gathm.yaml:6:"), "{}", stderr(&o));
    s.write(
        "gathm.yaml",
        "schedules:\n  - name: a\n    cron: '0 3 * * *'\n    timezone: Europe/Paris\n    tool: ok\n",
    );
    let (code, v) = s.json(&["--json", "schedule", "next", "a", "-n", "3"]);
    assert_eq!(code, 0);
    let next = v["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    for t in next {
        // 03:00 in Paris is 01:00 or 02:00 UTC.
        let t = t.as_str().unwrap();
        assert!(t.contains("T02:00:00Z") || t.contains("T01:00:00Z"), "{t}");
    }
    let o = s.run(&["schedule", "next", "b"]);
    assert_eq!(o.status.code(), Some(127));
    let o = s.run(&["--config", "missing.yaml", "schedule", "list"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("missing.yaml"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(":0:0"), "{}", stderr(&o));
}

const GSTAMP: &str = "name: gstamp\nversion: \"1.0.0\"\ndescription: stamp in a concurrency group\ncategory: utility\nrequires_internet: false\ncache: false\nconcurrency_group: pair\n";
const STAMP_SCRIPT: &str = "#!/bin/sh\necho \"start $1\" >> \"$STAMP_FILE\"\nsleep \"${2:-0}\"\necho \"end $1\" >> \"$STAMP_FILE\"\n";

fn group_sandbox() -> Sandbox {
    let s = Sandbox::new(&[]);
    s.manifest("gstamp", GSTAMP, Some(STAMP_SCRIPT));
    s.write(
        "gathm.yaml",
        "groups:\n  pair: {max_concurrent: 2, queue_size: 20}\n",
    );
    s
}

#[test]
fn a_group_holds_across_processes_in_arrival_order() {
    let s = group_sandbox();
    let stamp_file = s.path().join("stamps");
    let mut kids = Vec::new();
    for i in 0..10 {
        kids.push(
            s.cmd()
                .env("STAMP_FILE", &stamp_file)
                .args(["run", "gstamp", &i.to_string(), "0.3"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Arrivals 80 ms apart define the order.
        std::thread::sleep(std::time::Duration::from_millis(80));
    }
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let lines = stamps(&s);
    assert_eq!(lines.len(), 20, "{lines:?}");
    let (mut running, mut most) = (0i32, 0i32);
    let mut starts = Vec::new();
    for l in &lines {
        if let Some(id) = l.strip_prefix("start ") {
            running += 1;
            starts.push(id.parse::<u32>().unwrap());
        } else {
            running -= 1;
        }
        most = most.max(running);
    }
    assert_eq!(most, 2, "never more than max_concurrent at once: {lines:?}");
    assert_eq!(starts, (0..10).collect::<Vec<_>>(), "FIFO: {lines:?}");
}

#[test]
fn no_wait_refuses_and_a_killed_holder_frees_its_slot() {
    let s = group_sandbox();
    s.write("gathm.yaml", "groups:\n  pair: {max_concurrent: 1}\n");
    let stamp_file = s.path().join("stamps");
    let mut holder = s
        .cmd()
        .env("STAMP_FILE", &stamp_file)
        .args(["run", "gstamp", "held", "10"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the holder to start",
        std::time::Duration::from_secs(10),
        || stamps(&s).iter().any(|l| l == "start held"),
    );
    let o = s
        .cmd()
        .env("STAMP_FILE", &stamp_file)
        .args(["--json", "run", "--no-wait", "gstamp", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reason"], "concurrency_limit");
    let o = s
        .cmd()
        .env("STAMP_FILE", &stamp_file)
        .args(["run", "--wait-timeout", "0.2", "gstamp", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75));
    assert!(stderr(&o).contains("after waiting"), "{}", stderr(&o));
    // kill -9 of the holder (gathm itself): the kernel frees the slot.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let o = s
        .cmd()
        .env("STAMP_FILE", &stamp_file)
        .args(["run", "--wait-timeout", "10", "gstamp", "after"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // An undefined group refuses the run and fails validate.
    s.write("gathm.yaml", "groups:\n  other: {max_concurrent: 1}\n");
    let o = s.run(&["run", "gstamp", "y"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let o = s.run(&["validate"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        stderr(&o).contains("gstamp/tool.yaml:7:1: error"),
        "{}",
        stderr(&o)
    );
}

fn history(s: &Sandbox, name: &str) -> serde_json::Value {
    std::fs::read(s.home().join("schedules").join(format!("{name}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn submitted(h: &serde_json::Value) -> Vec<(String, String)> {
    h["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let job = r["message"]
                        .as_str()?
                        .strip_prefix("job ")?
                        .split_whitespace()
                        .next()?
                        .to_string();
                    Some((r["slot"].as_str()?.to_string(), job))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `gathm serve` runs each due slot as a job, exactly once across a restart.
#[test]
fn serve_runs_each_slot_once_as_a_job_across_a_restart() {
    use crate::serve::{Server, get};
    let s = sandbox("  - name: sec\n    cron: '* * * * * *'\n    tool: stamp\n    args: [s]\n");
    let cfg = std::fs::read_to_string(s.path().join("gathm.yaml")).unwrap();
    s.write(
        "gathm.yaml",
        &format!("{cfg}groups:\n  pair: {{max_concurrent: 2}}\n"),
    );
    let stamp_file = s.path().join("stamps");
    let env = [("STAMP_FILE", stamp_file.to_str().unwrap())];
    let wait = std::time::Duration::from_secs(20);
    let mut a = Server::start(&s, &env);
    wait_until("three scheduled jobs", wait, || {
        submitted(&history(&s, "sec")).len() >= 3
    });
    a.signal(rustix::process::Signal::TERM);
    assert_eq!(a.wait_exit(wait), Some(0));
    let before = submitted(&history(&s, "sec")).len();
    let b = Server::start(&s, &env);
    wait_until("two more after the restart", wait, || {
        submitted(&history(&s, "sec")).len() >= before + 2
    });
    // Let the last submitted jobs finish.
    wait_until("the jobs to finish", wait, || {
        let v = get(&b, "/api/v1/jobs?status=pending", None).body;
        let r = get(&b, "/api/v1/jobs?status=running", None).body;
        v["count"] == 0 && r["count"] == 0
    });
    let h = history(&s, "sec");
    let subs = submitted(&h);
    let mut slots: Vec<&String> = subs.iter().map(|(slot, _)| slot).collect();
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "a slot submitted twice: {h}");
    let mut ids: Vec<&String> = subs.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a job id reused: {h}");
    // Every submitted slot is a job of the schedule, run once.
    let jobs = get(&b, "/api/v1/jobs?tool=stamp&limit=1000", None).body;
    let listed = jobs["jobs"].as_array().unwrap();
    assert!(listed.len() >= n, "{jobs}");
    let mut completed = 0;
    for (_, id) in &subs {
        let j = listed
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed: {jobs}"));
        // A job running at the SIGTERM (grace 0 here) ends cancelled/shutdown.
        let ok =
            j["status"] == "completed" || (j["status"] == "cancelled" && j["reason"] == "shutdown");
        assert!(ok, "{j}");
        completed += usize::from(j["status"] == "completed");
    }
    assert!(completed >= n - 1, "{jobs}");
    // The history carries each slot's outcome once its job ended.
    wait_until("the outcomes in the history", wait, || {
        history(&s, "sec")["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "success")
            .count()
            >= 2
    });
    let runs = stamps(&s).iter().filter(|l| l.starts_with("start")).count();
    assert!(
        runs >= completed && runs <= n,
        "each job ran at most once: {runs} runs, {n} jobs"
    );
}
