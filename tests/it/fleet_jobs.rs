//! Jobs across a fleet: several `gathm serve` instances (each with its own
//! `GATHM_HOME`, the same tools) on one Redis (`GATHM_STATE_URL`, AOF on).
//! Any instance answers get, list and SSE of a job another one runs; a
//! cancel through one kills the process group on the other; a job whose
//! instance is killed is reclaimed within the lease TTL and ends once; a
//! Redis restart during a burst loses no acknowledged job; a paused
//! instance cannot overwrite a reclaimed job; each callback is sent once by
//! one instance; a Redis without AOF is refused unless
//! `GATHM_REDIS_VOLATILE=1`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Sandbox, alive, wait_until};
use crate::redis::RedisServer;
use crate::serve::{
    Server, WAIT, client, delete, get, read_http_request, read_sse, submit, wait_job,
};

/// The lease of the tests' instances, seconds.
const LEASE: &str = "2";

/// One instance's sandbox: its own home, the same tools.
fn instance(tools: &[(&str, &str, &str)]) -> Sandbox {
    let sb = Sandbox::new(&["lines"]);
    for (name, yaml, script) in tools {
        sb.manifest(name, yaml, Some(script));
    }
    sb
}

fn fleet_env<'a>(redis: &'a RedisServer, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("GATHM_STATE_URL", redis.url.as_str()),
        ("GATHM_LEASE_TTL", LEASE),
        ("GATHM_MAX_QUEUE_DEPTH", "100000"),
    ];
    env.extend_from_slice(extra);
    env
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn fleet_jobs_any_instance_answers_and_streams_every_line_once() {
    let redis = RedisServer::start();
    let (sa, sb) = (instance(&[]), instance(&[]));
    let env = fleet_env(&redis, &[]);
    let a = Server::start(&sa, &env);
    let job = submit(&a, None, json!({"tool": "lines", "args": ["60", "0.05"]}));
    let id = id_of(&job);
    wait_job(&a, &id, None, &["running"]);
    // B starts after A took the job: A runs it.
    let b = Server::start(&sb, &env);
    let seen = get(&b, &format!("/api/v1/jobs/{id}"), None);
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.body["status"], "running");
    let listed = get(&b, "/api/v1/jobs?status=running", None).body;
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{listed}"
    );
    // SSE on B while A runs it: every line once, in order.
    let (events, done) = read_sse(&b.base, &id, None);
    assert_eq!(done["status"], "completed", "{done}");
    let lines: Vec<String> = events
        .iter()
        .map(|(_, v)| v["line"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (1..=60).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
    let ids: Vec<u64> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(ids, (1..=60).collect::<Vec<u64>>());
    // Resumed on B with Last-Event-ID: the rest only, same ids.
    let (rest, _) = read_sse(&b.base, &id, Some(45));
    assert_eq!(
        rest.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        (46..=60).collect::<Vec<u64>>()
    );
    // The final record is the same on both.
    let on_a = get(&a, &format!("/api/v1/jobs/{id}"), None).body;
    let on_b = get(&b, &format!("/api/v1/jobs/{id}"), None).body;
    assert_eq!(on_a["status"], "completed");
    assert_eq!(on_a["finished_at"], on_b["finished_at"]);
    assert_eq!(on_b["line_count"], 60);
    assert!(on_b["output"].as_str().unwrap().ends_with("line 60"));
}

#[test]
fn fleet_jobs_cancel_through_another_instance_kills_the_process_group() {
    let redis = RedisServer::start();
    let tree = (
        "tree",
        "name: tree\nversion: \"1.0.0\"\ndescription: a process tree\ncategory: utility\nrequires_internet: false\ncache: false\n",
        "#!/bin/sh\necho $$ > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\nsh -c 'trap \"\" TERM; sleep 300' &\necho $! > \"$2.tmp\" && mv \"$2.tmp\" \"$2\"\nsleep 300\n",
    );
    let (sa, sb) = (instance(&[tree]), instance(&[tree]));
    let env = fleet_env(&redis, &[]);
    let a = Server::start(&sa, &env);
    let (p1, p2) = (sa.path().join("tool.pid"), sa.path().join("gc.pid"));
    let job = submit(
        &a,
        None,
        json!({"tool": "tree", "args": [p1.to_str().unwrap(), p2.to_str().unwrap()]}),
    );
    let id = id_of(&job);
    wait_until("the tool's pids", WAIT, || p1.exists() && p2.exists());
    let pid = |p: &std::path::Path| -> i32 {
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    };
    let (tool, grandchild) = (pid(&p1), pid(&p2));
    assert!(alive(tool) && alive(grandchild));
    let b = Server::start(&sb, &env);
    let r = delete(&b, &format!("/api/v1/jobs/{id}"), None);
    assert!([200, 202].contains(&r.status), "{} {}", r.status, r.body);
    let end = wait_job(&b, &id, None, &["cancelled"]);
    assert_eq!(end["reason"], "cancelled", "{end}");
    wait_until("A's process group to die", WAIT, || {
        !alive(tool) && !alive(grandchild)
    });
    drop(a);
}

#[test]
fn fleet_jobs_a_killed_instance_s_jobs_are_reclaimed_once() {
    let redis = RedisServer::start();
    let script = "#!/bin/sh\necho \"run $1 $GATHM_JOB_ID\" >> \"$STAMP_FILE\"\nsleep \"$2\"\necho \"end $1\" >> \"$STAMP_FILE\"\n";
    let again = (
        "again",
        "name: again\nversion: \"1.0.0\"\ndescription: runs again after a crash\ncategory: utility\nrequires_internet: false\nretry_on_interrupt: true\ncache: false\n",
        script,
    );
    let once = (
        "once",
        "name: once\nversion: \"1.0.0\"\ndescription: fails after a crash\ncategory: utility\nrequires_internet: false\ncache: false\n",
        script,
    );
    let boxes: Vec<Sandbox> = (0..3).map(|_| instance(&[again, once])).collect();
    let stamps = boxes[0].path().join("stamps");
    let env = fleet_env(&redis, &[("STAMP_FILE", stamps.to_str().unwrap())]);
    let mut a = Server::start(&boxes[0], &env);
    let ja = id_of(&submit(
        &a,
        None,
        json!({"tool": "again", "args": ["a", "3"]}),
    ));
    let jb = id_of(&submit(
        &a,
        None,
        json!({"tool": "once", "args": ["b", "60"]}),
    ));
    wait_job(&a, &ja, None, &["running"]);
    wait_job(&a, &jb, None, &["running"]);
    let b = Server::start(&boxes[1], &env);
    let c = Server::start(&boxes[2], &env);
    a.signal(rustix::process::Signal::KILL);
    a.wait_exit(WAIT);
    let killed = Instant::now();
    let end_b = wait_job(&b, &jb, None, &["failed"]);
    let took = killed.elapsed();
    assert_eq!(end_b["reason"], "interrupted", "{end_b}");
    // Within the lease TTL (plus the reclaim poll and this test's polling).
    assert!(took < Duration::from_secs(6), "reclaimed after {took:?}");
    let end_a = wait_job(&c, &ja, None, &["completed"]);
    assert_eq!(end_a["exit_code"], 0, "{end_a}");
    let runs = std::fs::read_to_string(&stamps).unwrap();
    assert_eq!(runs.matches("run a").count(), 2, "{runs}");
    assert_eq!(runs.matches("run b").count(), 1, "{runs}");
    // The orphan of the killed instance was killed by the reclaim.
    assert_eq!(runs.matches("end b").count(), 0, "{runs}");
    // Ended once: the records agree and stay put.
    std::thread::sleep(Duration::from_millis(1500));
    for s in [&b, &c] {
        let v = get(s, &format!("/api/v1/jobs/{jb}"), None).body;
        assert_eq!(v["finished_at"], end_b["finished_at"], "{v}");
        let v = get(s, &format!("/api/v1/jobs/{ja}"), None).body;
        assert_eq!(v["finished_at"], end_a["finished_at"], "{v}");
    }
}

/// A paused instance (SIGSTOP past its lease) loses its job to the fleet;
/// resumed, its fencing token is refused: the reclaimed record stays.
#[test]
fn fleet_jobs_a_paused_instance_cannot_overwrite_a_reclaimed_job() {
    let redis = RedisServer::start();
    let (sa, sb) = (instance(&[]), instance(&[]));
    let env = fleet_env(&redis, &[]);
    let a = Server::start(&sa, &env);
    let id = id_of(&submit(
        &a,
        None,
        json!({"tool": "lines", "args": ["40", "0.1"]}),
    ));
    wait_job(&a, &id, None, &["running"]);
    let b = Server::start(&sb, &env);
    a.signal(rustix::process::Signal::STOP);
    let end = wait_job(&b, &id, None, &["failed"]);
    assert_eq!(end["reason"], "interrupted", "{end}");
    a.signal(rustix::process::Signal::CONT);
    // A finishes its run (the tool kept going) or stops it; either way its
    // end is refused and the record stays as the reclaim left it.
    wait_until("A to answer again", WAIT, || {
        client()
            .get(a.url("/api/v1/ping"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    // A's worker tried to record the end and was refused.
    let log = sa.home().join("logs/gathm.log");
    wait_until("A's refused end", WAIT, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("superseded"))
    });
    let now = get(&a, &format!("/api/v1/jobs/{id}"), None).body;
    assert_eq!(now["status"], "failed", "{now}");
    assert_eq!(now["finished_at"], end["finished_at"], "{now}");
}

#[test]
fn fleet_jobs_survive_a_redis_restart_during_a_burst() {
    let mut redis = RedisServer::start();
    let (sa, sb) = (instance(&[]), instance(&[]));
    let env = fleet_env(&redis, &[("GATHM_MAX_CONCURRENCY", "2")]);
    let a = Server::start(&sa, &env);
    let b = Server::start(&sb, &env);
    let got = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let (got, refused) = (Arc::clone(&got), Arc::clone(&refused));
            std::thread::spawn(move || {
                let c = client();
                while Instant::now() < stop {
                    let r = c
                        .post(format!("{base}/api/v1/jobs"))
                        .json(&json!({"tool": "lines", "args": ["1", "0"]}))
                        .send();
                    let Ok(r) = r else { continue };
                    if r.status().as_u16() != 202 {
                        *refused.lock().unwrap() += 1;
                        continue;
                    }
                    let v: Value = r.json().unwrap();
                    got.lock().unwrap().push(id_of(&v));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    redis.restart();
    for c in clients {
        c.join().unwrap();
    }
    let acked = std::mem::take(&mut *got.lock().unwrap());
    eprintln!(
        "{} acknowledged, {} refused",
        acked.len(),
        refused.lock().unwrap()
    );
    assert!(acked.len() > 50, "only {} acknowledged", acked.len());
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len());
    let c = client();
    for (i, id) in acked.iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = c.get(s.url(&format!("/api/v1/jobs/{id}"))).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "acknowledged job {id} is gone");
    }
    // And they all run to their end.
    wait_until("every job to end", Duration::from_secs(120), || {
        let p = get(&a, "/api/v1/jobs?status=pending&limit=1", None).body;
        let r = get(&a, "/api/v1/jobs?status=running&limit=1", None).body;
        p["count"] == 0 && r["count"] == 0
    });
}

#[test]
fn fleet_jobs_refuse_a_redis_without_aof_unless_volatile() {
    let redis = RedisServer::with_args(&["--appendonly", "no"]);
    let sb = instance(&[]);
    let out = sb
        .cmd()
        .args(["serve", "--port", "0"])
        .env("GATHM_STATE_URL", &redis.url)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("appendonly no"), "{err}");
    assert!(err.contains("GATHM_REDIS_VOLATILE=1"), "{err}");
    assert!(err.contains(&redis.url), "{err}");
    let s = Server::start(
        &sb,
        &[
            ("GATHM_STATE_URL", &redis.url),
            ("GATHM_REDIS_VOLATILE", "1"),
        ],
    );
    let id = id_of(&submit(
        &s,
        None,
        json!({"tool": "lines", "args": ["2", "0"]}),
    ));
    wait_job(&s, &id, None, &["completed"]);
    drop(s);
    let log = std::fs::read_to_string(sb.path().join("server.err")).unwrap();
    assert!(log.contains("warning") && log.contains("loses"), "{log}");
}

/// The shared outbox: every job's callback arrives once (one delivery id
/// each, first attempt), whichever instance ran the job and whichever
/// polls the outbox.
#[test]
fn fleet_jobs_callbacks_are_delivered_once_by_one_instance() {
    use std::io::Write;
    let redis = RedisServer::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    {
        let got = Arc::clone(&got);
        std::thread::spawn(move || {
            for c in listener.incoming() {
                let Ok(mut c) = c else { return };
                let (head, _) = read_http_request(&mut c);
                let h = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                got.lock().unwrap().push((
                    h("x-gathm-job"),
                    h("x-gathm-delivery"),
                    h("x-gathm-delivery-attempt"),
                ));
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
    }
    let (sa, sb) = (instance(&[]), instance(&[]));
    let env = fleet_env(
        &redis,
        &[
            ("GATHM_CALLBACK_SECRET", "s3cret"),
            ("GATHM_CALLBACK_ALLOW", "127.0.0.0/8"),
        ],
    );
    let a = Server::start(&sa, &env);
    let b = Server::start(&sb, &env);
    let mut ids = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let v = submit(
            s,
            None,
            json!({"tool": "lines", "args": ["1", "0"], "callback_url": url}),
        );
        ids.push(id_of(&v));
    }
    for id in &ids {
        wait_job(&a, id, None, &["completed"]);
    }
    wait_until("20 callbacks", WAIT, || got.lock().unwrap().len() >= 20);
    // Both instances keep polling the outbox; nothing is sent again.
    std::thread::sleep(Duration::from_millis(1500));
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 20, "{got:?}");
    let jobs: HashSet<&str> = got.iter().map(|(j, _, _)| j.as_str()).collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(jobs, want);
    let deliveries: HashSet<&str> = got.iter().map(|(_, d, _)| d.as_str()).collect();
    assert_eq!(deliveries.len(), 20);
    assert!(got.iter().all(|(_, _, n)| n == "1"), "{got:?}");
}
