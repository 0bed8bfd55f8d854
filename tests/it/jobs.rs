//! The job store through a real server: kill -9 during bursts of
//! submissions, callbacks that survive a restart, refused internal callback
//! destinations, `Idempotency-Key`, the import of a home written by the
//! journal-based store, approval expiry, and a full or read-only disk.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Sandbox, wait_until};
use crate::serve::{
    Server, WAIT, client, get, job_status, post, read_http_request, send, submit, wait_job,
};

/// A tool that appends its job id to `runs.log` (to see what ran twice).
fn marker_tool(sb: &Sandbox) {
    let log = sb.path().join("runs.log");
    sb.manifest(
        "mark",
        "name: mark\nversion: \"1.0.0\"\ndescription: \"Records that it ran\"\ncategory: utility\nrequires_internet: false\ncache: false\n",
        Some(&format!(
            "#!/bin/sh\necho \"$GATHM_JOB_ID\" >> {}\n",
            log.display()
        )),
    );
}

/// Every job in the store, through the paged list (admin view).
fn all_jobs(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/jobs?limit=1000&after={a}"),
            None => "/api/v1/jobs?limit=1000".to_string(),
        };
        let r = get(s, &path, None);
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.body["jobs"].as_array().unwrap().clone();
        out.extend(page);
        match r.body["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

fn pseudo_random(n: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ (t >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

#[test]
fn jobs_survive_kill_9_during_submission_bursts() {
    let sb = Sandbox::new(&[]);
    marker_tool(&sb);
    let env = [
        ("GATHM_MAX_QUEUE_DEPTH", "100000"),
        ("GATHM_MAX_CONCURRENCY", "4"),
    ];
    let mut acked: Vec<String> = Vec::new();
    for round in 0..5 {
        let mut s = Server::start(&sb, &env);
        // Everything acknowledged in earlier rounds is still there.
        let c = client();
        for id in &acked {
            let r = send(c.get(s.url(&format!("/api/v1/jobs/{id}"))));
            let st = r.body["status"].as_str().unwrap_or("missing").to_string();
            assert!(
                ["pending", "running", "completed", "failed", "cancelled"].contains(&st.as_str()),
                "round {round}: job {id} is {st}"
            );
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let base = s.base.clone();
                let got = Arc::clone(&got);
                std::thread::spawn(move || {
                    let c = client();
                    for _ in 0..500 {
                        let r = c
                            .post(format!("{base}/api/v1/jobs"))
                            .json(&json!({"tool": "mark"}))
                            .send();
                        let Ok(r) = r else { return };
                        if r.status().as_u16() != 202 {
                            return;
                        }
                        let Ok(v) = r.json::<Value>() else { return };
                        got.lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                    }
                })
            })
            .collect();
        // Kill at a random moment of the burst.
        std::thread::sleep(Duration::from_millis(100 + pseudo_random(1500)));
        s.signal(rustix::process::Signal::KILL);
        s.wait_exit(WAIT);
        for c in clients {
            c.join().unwrap();
        }
        let got = std::mem::take(&mut *got.lock().unwrap());
        eprintln!("round {round}: {} acknowledged", got.len());
        acked.extend(got);
        drop(s);
    }
    // The last server runs everything that is left.
    let s = Server::start(&sb, &env);
    let t0 = Instant::now();
    wait_until("every job to end", Duration::from_secs(120), || {
        let r = get(&s, "/api/v1/jobs?status=pending&limit=1", None).body;
        let q = get(&s, "/api/v1/jobs?status=running&limit=1", None).body;
        r["count"] == 0 && q["count"] == 0
    });
    eprintln!("{} jobs ran to the end in {:?}", acked.len(), t0.elapsed());
    let jobs = all_jobs(&s);
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a job is listed twice");
    let status: HashMap<&str, &str> = jobs
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    let c = client();
    for id in &acked {
        let st = status.get(id.as_str()).copied();
        assert!(
            matches!(st, Some("completed") | Some("failed")),
            "acknowledged job {id} is {st:?}"
        );
        if st == Some("failed") {
            let r = send(c.get(s.url(&format!("/api/v1/jobs/{id}"))));
            assert_eq!(r.body["reason"], "interrupted");
        }
    }
    let runs = std::fs::read_to_string(sb.path().join("runs.log")).unwrap_or_default();
    let mut seen = HashSet::new();
    for line in runs.lines() {
        assert!(seen.insert(line.to_string()), "job {line} ran twice");
    }
    for (id, st) in &status {
        if *st == "completed" {
            assert!(seen.contains(*id), "completed job {id} never ran");
        }
    }
    assert!(acked.len() > 100, "only {} acknowledged", acked.len());
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn jobs_callbacks_refuse_internal_addresses_and_survive_a_restart() {
    let sb = Sandbox::new(&["backup"]);
    let secret = ("GATHM_CALLBACK_SECRET", "s3cret");
    {
        // Loopback and metadata destinations are refused by default.
        let s = Server::start(&sb, &[secret]);
        for url in [
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9/x",
            "http://[::1]:9/x",
        ] {
            let r = post(
                &s,
                "/api/v1/jobs",
                None,
                &json!({"tool": "backup", "callback_url": url}),
            );
            assert_eq!(r.status, 400, "{url}: {}", r.body);
            assert!(
                r.body["error"]
                    .as_str()
                    .unwrap()
                    .contains("GATHM_CALLBACK_ALLOW")
            );
        }
    }
    // A receiver that is down while the job runs…
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [
        secret,
        ("GATHM_CALLBACK_ALLOW", "127.0.0.0/8"),
        ("GATHM_CALLBACK_BACKOFF", "0.2"),
        ("GATHM_CALLBACK_RETRIES", "1000"),
    ];
    let mut s = Server::start(&sb, &env);
    // The metadata address stays refused: only loopback is allowed.
    let r = post(
        &s,
        "/api/v1/jobs",
        None,
        &json!({"tool": "backup", "callback_url": "http://169.254.169.254/x"}),
    );
    assert_eq!(r.status, 400);
    let job = submit(
        &s,
        None,
        json!({"tool": "backup", "args": ["cb"], "callback_url": url}),
    );
    let id = job["id"].as_str().unwrap().to_string();
    wait_job(&s, &id, None, &["completed"]);
    std::thread::sleep(Duration::from_millis(600));
    s.signal(rustix::process::Signal::KILL);
    s.wait_exit(WAIT);
    drop(s);
    // …gets the delivery once it is up and the server is back.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let _s = Server::start(&sb, &env);
    let (mut c, _) = listener.accept().unwrap();
    let (head, body) = read_http_request(&mut c);
    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(head.starts_with("POST /hook"));
    assert_eq!(header(&head, "x-gathm-job"), id);
    assert!(!header(&head, "x-gathm-delivery").is_empty());
    let attempt: u32 = header(&head, "x-gathm-delivery-attempt").parse().unwrap();
    assert!(attempt > 1, "attempt {attempt}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"], "backup answered: cb");
    assert_eq!(v["completed_at"], v["finished_at"]);
}

#[test]
fn jobs_redirects_are_not_followed() {
    let sb = Sandbox::new(&["backup"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Server::start(
        &sb,
        &[
            ("GATHM_CALLBACK_SECRET", "k"),
            ("GATHM_CALLBACK_ALLOW", "127.0.0.1"),
            ("GATHM_CALLBACK_BACKOFF", "60"),
        ],
    );
    submit(
        &s,
        None,
        json!({"tool": "backup", "callback_url": format!("http://{addr}/first")}),
    );
    let (mut c, _) = listener.accept().unwrap();
    let (head, _) = read_http_request(&mut c);
    assert!(head.starts_with("POST /first"));
    c.write_all(
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{addr}/second\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    drop(c);
    // No request for /second comes (the next attempt is a minute away).
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_millis(800);
    while Instant::now() < end {
        if let Ok((mut c, _)) = listener.accept() {
            c.set_nonblocking(false).unwrap();
            let (head, _) = read_http_request(&mut c);
            panic!("a redirect was followed: {head}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn jobs_idempotency_key_returns_the_original_job() {
    let sb = Sandbox::new(&["backup"]);
    let s = Server::start(&sb, &[("GATHM_API_KEYS", "u1:user,u2:user")]);
    let post_key = |token: &str, key: &str| {
        send(
            client()
                .post(s.url("/api/v1/jobs"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"tool": "backup", "args": ["x"]})),
        )
    };
    let a = post_key("u1", "order-1");
    assert_eq!(a.status, 202, "{}", a.body);
    let b = post_key("u1", "order-1");
    assert_eq!(b.status, 202);
    assert_eq!(a.body["id"], b.body["id"]);
    let c = post_key("u1", "order-2");
    assert_ne!(a.body["id"], c.body["id"]);
    // Keys are per owner.
    let d = post_key("u2", "order-1");
    assert_ne!(a.body["id"], d.body["id"]);
    assert_eq!(get(&s, "/api/v1/jobs", Some("u1")).body["count"], 2);
    assert_eq!(post_key("u1", "bad key").status, 400);
    // The same key with another request is refused, not answered with the
    // earlier job, and submits nothing.
    for other in [
        json!({"tool": "backup", "args": ["y"]}),
        json!({"tool": "backup", "args": ["x"], "timeout": 5}),
    ] {
        let r = send(
            client()
                .post(s.url("/api/v1/jobs"))
                .bearer_auth("u1")
                .header("Idempotency-Key", "order-1")
                .json(&other),
        );
        assert_eq!(r.status, 422, "{}", r.body);
        let msg = r.body["error"].as_str().unwrap();
        assert!(msg.contains("different request"), "{msg}");
        assert!(msg.contains(a.body["id"].as_str().unwrap()), "{msg}");
    }
    assert_eq!(get(&s, "/api/v1/jobs", Some("u1")).body["count"], 2);
    assert_eq!(post_key("u1", "order-1").body["id"], a.body["id"]);
}

#[test]
fn jobs_list_pages_and_filters_newest_first() {
    let sb = Sandbox::new(&["backup", "fail"]);
    let s = Server::start(&sb, &[]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let tool = if i % 2 == 0 { "backup" } else { "fail" };
        ids.push(
            submit(&s, None, json!({"tool": tool}))["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let p1 = get(&s, "/api/v1/jobs?limit=2", None).body;
    assert_eq!(p1["jobs"][0]["id"], ids[4].as_str());
    assert_eq!(p1["jobs"][1]["id"], ids[3].as_str());
    let next = p1["next"].as_str().unwrap();
    let p2 = get(&s, &format!("/api/v1/jobs?limit=2&after={next}"), None).body;
    assert_eq!(p2["jobs"][0]["id"], ids[2].as_str());
    assert_eq!(get(&s, "/api/v1/jobs?tool=fail", None).body["count"], 2);
    assert_eq!(get(&s, "/api/v1/jobs?limit=0", None).status, 400);
    assert_eq!(
        get(&s, "/api/v1/jobs?limit=100", None).body["next"],
        Value::Null
    );
}

#[test]
fn jobs_import_a_home_written_by_the_journal_store() {
    let sb = Sandbox::new(&["backup"]);
    let jobs = sb.home().join("jobs");
    let rec = |id: &str, status: &str, created: f64| {
        json!({
            "id": id, "kind": "tool", "tool": "backup", "args": ["old"],
            "status": status, "reason": null, "exit_code": null,
            "created_at": created, "started_at": null, "finished_at": null,
            "timeout": null, "stdout_lines": 0, "stderr_lines": 0,
            "approved": false, "owner": "local", "role": "admin"
        })
    };
    // A finished job in its job.json, with its output files.
    let done_id = "0123456789abcdef0123456789abcdef";
    let mut done = rec(done_id, "completed", 1_700_000_000.0);
    done["exit_code"] = json!(0);
    done["finished_at"] = json!(1_700_000_001.0);
    done["stdout_lines"] = json!(1);
    done["envelope"] = json!({
        "tool": "backup", "run_id": "r1", "status": "success", "exit_code": 0,
        "output": "backup answered: old\n", "error": "", "duration_ms": 3,
        "cached": false, "attempts": [], "timestamp": "2023-11-14T22:13:20.000Z"
    });
    std::fs::create_dir_all(jobs.join(done_id)).unwrap();
    std::fs::write(
        jobs.join(done_id).join("job.json"),
        serde_json::to_vec_pretty(&done).unwrap(),
    )
    .unwrap();
    std::fs::write(jobs.join(done_id).join("stdout"), "backup answered: old\n").unwrap();
    // In the journal: one queued, one left running by a crash, one evicted,
    // and a torn last line.
    let queued = "11111111111111111111111111111111";
    let running = "22222222222222222222222222222222";
    let evicted = "33333333333333333333333333333333";
    let mut run_rec = rec(running, "running", 1_700_000_002.0);
    run_rec["started_at"] = json!(1_700_000_003.0);
    let mut journal = String::new();
    for v in [
        rec(evicted, "completed", 1_699_999_999.0),
        rec(queued, "pending", 1_700_000_002.5),
        run_rec,
        json!({"evicted": evicted}),
    ] {
        journal.push_str(&v.to_string());
        journal.push('\n');
    }
    journal.push_str("{\"id\": \"torn");
    std::fs::write(jobs.join("journal"), journal).unwrap();
    let s = Server::start(&sb, &[]);
    let d = job_status(&s, done_id, None);
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(d["envelope"]["output"], "backup answered: old\n");
    assert_eq!(d["output"], "backup answered: old");
    assert_eq!(d["created_at"], 1_700_000_000.0);
    let r = job_status(&s, running, None);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["reason"], "interrupted");
    let q = wait_job(&s, queued, None, &["completed", "failed"]);
    assert_eq!(q["status"], "completed", "{q}");
    assert_eq!(q["envelope"]["output"], "backup answered: old\n");
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{evicted}"), None).status,
        404
    );
    assert_eq!(get(&s, "/api/v1/jobs", None).body["count"], 3);
    assert!(jobs.join("journal.imported").exists());
    assert!(!jobs.join("journal").exists());
}

#[test]
fn jobs_waiting_for_approval_expire() {
    let sb = Sandbox::new(&["backup"]);
    let pol = sb.write(
        "policies.yaml",
        "roles:\n  admin:\n    permissions: [\"*\"]\n    rate_limit: 0\n  agent:\n    permissions: [\"tool:execute\", \"tool:discover\"]\n    requires_approval: [backup]\n    rate_limit: 0\n",
    );
    let s = Server::start(
        &sb,
        &[
            ("GATHM_API_KEYS", "adm:admin,ag:agent"),
            ("GATHM_POLICIES", pol.to_str().unwrap()),
            ("GATHM_APPROVAL_TTL", "1"),
            ("GATHM_JOB_SWEEP_INTERVAL", "0.2"),
        ],
    );
    let job = submit(&s, Some("ag"), json!({"tool": "backup"}));
    assert_eq!(job["status"], "awaiting_approval");
    let id = job["id"].as_str().unwrap();
    let j = wait_job(&s, id, Some("ag"), &["failed"]);
    assert_eq!(j["reason"], "approval_expired");
    assert!(j["completed_at"].is_number());
    let r = post(
        &s,
        &format!("/api/v1/jobs/{id}/approve"),
        Some("adm"),
        &json!({}),
    );
    assert_eq!(r.status, 409);
}

/// Unmounts the tmpfs on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn jobs_full_or_read_only_disk_gets_no_202() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let sb = Sandbox::new(&["noop"]);
    let home = sb.home();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&home)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _m = Mount(home.clone());
    let logs = sb.path().join("logs");
    let env = [
        ("GATHM_MAX_QUEUE_DEPTH", "100000"),
        ("GATHM_LOG_DIR", logs.to_str().unwrap()),
    ];
    let s = Server::start(&sb, &env);
    // Fill the disk.
    let filler = home.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let big: Vec<String> = (0..64).map(|i| format!("{i:0>1000}")).collect();
    let mut acked = Vec::new();
    let mut full = 0;
    for _ in 0..200 {
        let r = post(
            &s,
            "/api/v1/jobs",
            None,
            &json!({"tool": "noop", "args": big}),
        );
        match r.status {
            202 => acked.push(r.body["id"].as_str().unwrap().to_string()),
            507 => {
                assert!(r.body["error"].is_string(), "{}", r.body);
                full += 1;
                break;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(full > 0, "the full disk was never reported");
    std::fs::remove_file(&filler).unwrap();
    for id in &acked {
        assert_eq!(get(&s, &format!("/api/v1/jobs/{id}"), None).status, 200);
    }
    assert_eq!(
        post(&s, "/api/v1/jobs", None, &json!({"tool": "noop"})).status,
        202
    );
    // A read-only home: jobs can be read, a submission gets 503, and
    // nothing stored is damaged.
    drop(s);
    let ro = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&home)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ro, "cannot remount the tmpfs read-only");
    let s = Server::start(&sb, &env);
    for id in &acked {
        assert_eq!(get(&s, &format!("/api/v1/jobs/{id}"), None).status, 200);
    }
    let r = post(&s, "/api/v1/jobs", None, &json!({"tool": "noop"}));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body["error"].is_string(), "{}", r.body);
    drop(s);
    let _ = std::process::Command::new("mount")
        .args(["-o", "remount,rw"])
        .arg(&home)
        .status();
    let s = Server::start(&sb, &env);
    assert_eq!(
        post(&s, "/api/v1/jobs", None, &json!({"tool": "noop"})).status,
        202
    );
}

#[test]
fn jobs_cancel_finish_sweep_storm_never_rewrites_an_ended_job() {
    let sb = Sandbox::new(&["backup", "slow"]);
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cb", receiver.local_addr().unwrap());
    let s = Server::start(
        &sb,
        &[
            ("GATHM_MAX_QUEUE_DEPTH", "10000"),
            ("GATHM_MAX_CONCURRENCY", "4"),
            ("GATHM_JOB_SWEEP_INTERVAL", "0.05"),
            ("GATHM_CALLBACK_SECRET", "k"),
            ("GATHM_CALLBACK_ALLOW", "127.0.0.1"),
            ("GATHM_CALLBACK_BACKOFF", "0.05"),
            ("GATHM_CALLBACK_RETRIES", "100"),
        ],
    );
    // Count callbacks per job.
    let calls: Arc<Mutex<HashMap<String, Vec<Value>>>> = Arc::default();
    {
        let calls = Arc::clone(&calls);
        std::thread::spawn(move || {
            for c in receiver.incoming() {
                let Ok(mut c) = c else { return };
                let (_, body) = read_http_request(&mut c);
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let v: Value = serde_json::from_slice(&body).unwrap();
                let id = v["id"].as_str().unwrap().to_string();
                calls.lock().unwrap().entry(id).or_default().push(v);
            }
        });
    }
    let n = 200;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let (tool, args) = if i % 2 == 0 {
                ("backup", json!(["x"]))
            } else {
                ("slow", json!(["0.05"]))
            };
            submit(
                &s,
                None,
                json!({"tool": tool, "args": args, "callback_url": url}),
            )["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Cancel every job from two clients while they are queued, running and ending.
    let cancellers: Vec<_> = (0..2)
        .map(|k| {
            let (base, ids) = (s.base.clone(), ids.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut answers = HashMap::new();
                let order: Vec<&String> = if k == 0 {
                    ids.iter().collect()
                } else {
                    ids.iter().rev().collect()
                };
                for id in order {
                    let r = send(c.delete(format!("{base}/api/v1/jobs/{id}")));
                    assert_eq!(r.status, 200, "{}", r.body);
                    answers.insert(id.clone(), r.body);
                }
                answers
            })
        })
        .collect();
    let answers: Vec<HashMap<String, Value>> =
        cancellers.into_iter().map(|c| c.join().unwrap()).collect();
    let c = client();
    let mut ended = HashMap::new();
    for id in &ids {
        let j = wait_job(&s, id, None, &["completed", "failed", "cancelled"]);
        ended.insert(id.clone(), j);
    }
    // Every answer that reported an end reports the end that was stored.
    for a in &answers {
        for (id, v) in a {
            let st = v["status"].as_str().unwrap();
            if ["completed", "failed", "cancelled"].contains(&st) {
                assert_eq!(
                    st, ended[id]["status"],
                    "{id}: answered {v}, stored {}",
                    ended[id]
                );
            }
        }
    }
    // Each job got exactly one callback, with its stored end; the records
    // do not change afterwards.
    wait_until("a callback per job", WAIT, || {
        calls.lock().unwrap().len() == n
    });
    std::thread::sleep(Duration::from_millis(500));
    let calls = calls.lock().unwrap();
    for id in &ids {
        let got = &calls[id];
        assert_eq!(got.len(), 1, "{id}: {} callbacks", got.len());
        let now = send(c.get(s.url(&format!("/api/v1/jobs/{id}")))).body;
        for field in ["status", "reason", "finished_at", "exit_code"] {
            assert_eq!(now[field], ended[id][field], "{id} {field} changed");
            assert_eq!(
                got[0][field], ended[id][field],
                "{id} {field} in the callback"
            );
        }
    }
}

#[test]
fn jobs_idempotent_retry_is_answered_when_the_queue_is_full() {
    let sb = Sandbox::new(&["slow"]);
    let s = Server::start(
        &sb,
        &[
            ("GATHM_MAX_CONCURRENCY", "1"),
            ("GATHM_MAX_QUEUE_DEPTH", "1"),
        ],
    );
    let running = submit(&s, None, json!({"tool": "slow", "args": ["30"]}));
    wait_job(&s, running["id"].as_str().unwrap(), None, &["running"]);
    let with_key = || {
        send(
            client()
                .post(s.url("/api/v1/jobs"))
                .header("Idempotency-Key", "k")
                .json(&json!({"tool": "slow", "args": ["30"]})),
        )
    };
    let a = with_key();
    assert_eq!(a.status, 202, "{}", a.body);
    // The queue is full now: a new job is refused, the retry is answered.
    assert_eq!(
        post(&s, "/api/v1/jobs", None, &json!({"tool": "slow"})).status,
        429
    );
    let b = with_key();
    assert_eq!(b.status, 202, "{}", b.body);
    assert_eq!(a.body["id"], b.body["id"]);
}

/// `retry_on_interrupt: true`: a job interrupted by a crash of the server
/// runs again after the restart (at-least-once); without it, the job ends
/// `failed/interrupted`.
#[test]
fn jobs_retry_on_interrupt_requeues_after_a_crash() {
    let sb = Sandbox::new(&[]);
    let script = "#!/bin/sh\necho \"run $1\" >> \"$STAMP_FILE\"\nsleep \"$2\"\necho done\n";
    sb.manifest(
        "again",
        "name: again\nversion: \"1.0.0\"\ndescription: runs again after a crash\ncategory: utility\nrequires_internet: false\nretry_on_interrupt: true\n",
        Some(script),
    );
    sb.manifest(
        "once",
        "name: once\nversion: \"1.0.0\"\ndescription: fails after a crash\ncategory: utility\nrequires_internet: false\n",
        Some(script),
    );
    let stamps = sb.path().join("stamps");
    let env = [("STAMP_FILE", stamps.to_str().unwrap())];
    let mut s = Server::start(&sb, &env);
    let a = submit(&s, None, json!({"tool": "again", "args": ["a", "3"]}));
    let b = submit(&s, None, json!({"tool": "once", "args": ["b", "3"]}));
    let (a, b) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    wait_job(&s, &a, None, &["running"]);
    wait_job(&s, &b, None, &["running"]);
    s.signal(rustix::process::Signal::KILL);
    s.wait_exit(WAIT);
    drop(s);
    let s = Server::start(&sb, &env);
    let ja = wait_job(&s, &a, None, &["completed"]);
    assert_eq!(ja["exit_code"], 0, "{ja}");
    let jb = wait_job(&s, &b, None, &["failed"]);
    assert_eq!(jb["reason"], "interrupted", "{jb}");
    let runs = std::fs::read_to_string(&stamps).unwrap();
    assert_eq!(runs.matches("run a").count(), 2, "{runs}");
    assert_eq!(runs.matches("run b").count(), 1, "{runs}");
}

/// Drain-by-group: with one worker, after a job of a `drain: true` group the
/// oldest pending job of the same group runs next, up to `drain_max` in a
/// row; then FIFO again (so no group starves).
#[test]
fn jobs_drain_by_group_with_a_fairness_bound() {
    let sb = Sandbox::new(&[]);
    let script = "#!/bin/sh\necho \"$1\" >> \"$STAMP_FILE\"\nsleep \"${2:-0}\"\n";
    for (name, group) in [("ta", "a"), ("tb", "b")] {
        sb.manifest(
            name,
            &format!("name: {name}\nversion: \"1.0.0\"\ndescription: a tool of group {group}\ncategory: utility\nrequires_internet: false\nconcurrency_group: {group}\n"),
            Some(script),
        );
    }
    sb.manifest(
        "blocker",
        "name: blocker\nversion: \"1.0.0\"\ndescription: holds the only worker\ncategory: utility\nrequires_internet: false\n",
        Some(script),
    );
    sb.write(
        "gathm.yaml",
        "groups:\n  a: {max_concurrent: 4, drain: true, drain_max: 2}\n  b: {max_concurrent: 4, drain: true, drain_max: 2}\n",
    );
    let stamps = sb.path().join("stamps");
    let s = Server::start(
        &sb,
        &[
            ("STAMP_FILE", stamps.to_str().unwrap()),
            ("GATHM_MAX_CONCURRENCY", "1"),
        ],
    );
    let first = submit(
        &s,
        None,
        json!({"tool": "blocker", "args": ["blocker", "1"]}),
    );
    wait_job(&s, first["id"].as_str().unwrap(), None, &["running"]);
    let mut ids = Vec::new();
    for item in ["a1", "b1", "a2", "b2", "a3", "b3"] {
        let tool = if item.starts_with('a') { "ta" } else { "tb" };
        let j = submit(&s, None, json!({"tool": tool, "args": [item]}));
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_job(&s, id, None, &["completed"]);
    }
    let order: Vec<String> = std::fs::read_to_string(&stamps)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        order,
        ["blocker", "a1", "a2", "b1", "b2", "a3", "b3"],
        "{order:?}"
    );
}

/// A job's run uses the manifest's `retry`, and the record counts the tries.
#[test]
fn jobs_use_the_manifest_retry_and_record_attempts() {
    let sb = Sandbox::new(&["ok"]);
    sb.manifest(
        "flappy",
        "name: flappy\nversion: \"1.0.0\"\ndescription: always fails, retried\ncategory: utility\nrequires_internet: false\nretry: {attempts: 3, delay: 0, max_delay: 0}\n",
        Some("#!/bin/sh\necho try >&2\nexit 4\n"),
    );
    let s = Server::start(&sb, &[]);
    let j = submit(&s, None, json!({"tool": "flappy"}));
    let done = wait_job(&s, j["id"].as_str().unwrap(), None, &["failed"]);
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["exit_code"], 4, "{done}");
    let j = submit(&s, None, json!({"tool": "ok"}));
    let done = wait_job(&s, j["id"].as_str().unwrap(), None, &["completed"]);
    assert_eq!(done["attempts"], 1, "{done}");
}
