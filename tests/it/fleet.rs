//! Shared state on one Redis (`GATHM_STATE_URL`): rate limits, breakers and
//! concurrency groups counted across `gathm serve` instances and CLI
//! processes with separate homes (as on separate machines), and what
//! happens when Redis is unreachable.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::redis::RedisServer;
use crate::serve::{Server, post};

const POLICIES: &str = r#"roles:
  admin:
    permissions: ["*"]
    rate_limit: 0
rate_limiting:
  enabled: true
  window_seconds: 60
  default_limit: 0
  per_tool_limits:
    noop: 5
  burst_allowance: 0
"#;

/// A "machine": its own home and tools, the fleet's Redis.
fn machine(url: &str) -> (Sandbox, Vec<(String, String)>) {
    let s = Sandbox::new(&["noop", "fail", "slow"]);
    s.write("home/policies.yaml", POLICIES);
    let env = vec![
        ("GATHM_STATE_URL".to_string(), url.to_string()),
        ("CB_FAILURE_THRESHOLD".to_string(), "3".to_string()),
        ("CB_RECOVERY_TIMEOUT".to_string(), "2".to_string()),
    ];
    (s, env)
}

fn cli(s: &Sandbox, env: &[(String, String)]) -> Command {
    let mut c = s.cmd();
    c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c
}

fn serve(s: &Sandbox, env: &[(String, String)]) -> Server {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(s, &e)
}

#[test]
fn fleet_rate_limit_is_exact_across_instances_and_cli_processes() {
    let redis = RedisServer::start();
    let machines: Vec<_> = (0..4).map(|_| machine(&redis.url)).collect();
    let servers: Vec<Server> = machines[..3].iter().map(|(s, e)| serve(s, e)).collect();
    // 40 concurrent calls: 10 through each of three servers, 10 CLI runs.
    let mut threads = Vec::new();
    for s in &servers {
        for _ in 0..10 {
            let url = s.url("/api/v1/tools/noop/execute");
            threads.push(std::thread::spawn(move || {
                let r = crate::serve::client()
                    .post(url)
                    .json(&json!({"args": []}))
                    .send()
                    .unwrap();
                r.status().as_u16()
            }));
        }
    }
    let (s, env) = &machines[3];
    let kids: Vec<_> = (0..10)
        .map(|_| {
            cli(s, env)
                .args(["run", "noop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let http: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let codes: Vec<i32> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    let admitted =
        http.iter().filter(|&&c| c == 200).count() + codes.iter().filter(|&&c| c == 0).count();
    assert_eq!(admitted, 5, "http {http:?} cli {codes:?}");
    assert!(http.iter().all(|&c| c == 200 || c == 429), "{http:?}");
    assert!(codes.iter().all(|&c| c == 0 || c == 75), "{codes:?}");
    // The windows live in Redis, not in any home.
    for (s, _) in &machines {
        assert!(!s.home().join("ratelimit/tool-noop.json.0").exists());
    }
}

/// A tool whose runs are counted in one file shared by every "machine";
/// its exit code and duration come from files next to it.
fn probe_tool(s: &Sandbox, shared: &std::path::Path) {
    let d = shared.display();
    s.manifest(
        "probe",
        "name: probe\nversion: \"1.0.0\"\ndescription: counts its runs\ncategory: utility\ncache: false\nbreaker: {failure_threshold: 3, recovery_timeout: 1}\n",
        Some(&format!(
            "#!/bin/sh\necho run >> {d}/count\nsleep \"$(cat {d}/sleep)\"\nexit \"$(cat {d}/exit)\"\n"
        )),
    );
}

#[test]
fn fleet_breaker_opens_across_processes_and_admits_one_probe() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let put = |f: &str, v: &str| std::fs::write(shared.path().join(f), v).unwrap();
    put("sleep", "0");
    put("exit", "1");
    let (a, env_a) = machine(&redis.url);
    let (b, env_b) = machine(&redis.url);
    probe_tool(&a, shared.path());
    probe_tool(&b, shared.path());
    // Three failures on two machines open it for everyone.
    for (s, e) in [(&a, &env_a), (&b, &env_b), (&a, &env_a)] {
        let code = cli(s, e).args(["run", "probe"]).status().unwrap().code();
        assert_eq!(code, Some(1));
    }
    let o = cli(&b, &env_b).args(["run", "probe"]).output().unwrap();
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert_eq!(count_lines(&shared.path().join("count")), 3);
    let o = cli(&b, &env_b)
        .args(["breaker", "status", "--json", "probe"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["state"], "open");
    assert_eq!(st["failures"], 3);
    assert!(
        !a.home().join("health/cb_probe.json").exists(),
        "not in a home"
    );
    // After the recovery timeout, 12 callers on two servers and the CLI:
    // exactly one half-open probe runs the tool (it sleeps, holding the
    // probe lease); everyone else is refused as open.
    put("exit", "0");
    put("sleep", "2");
    let sa = serve(&a, &env_a);
    let sb = serve(&b, &env_b);
    std::thread::sleep(Duration::from_millis(1100));
    let mut threads = Vec::new();
    for i in 0..8 {
        let url = if i % 2 == 0 {
            sa.url("/api/v1/tools/probe/execute")
        } else {
            sb.url("/api/v1/tools/probe/execute")
        };
        threads.push(std::thread::spawn(move || {
            let r = crate::serve::send(crate::serve::client().post(url).json(&json!({"args": []})));
            // The envelope's exit code (69: circuit open).
            r.body["exit_code"].as_i64().unwrap_or(-1) as i32
        }));
    }
    let kids: Vec<_> = (0..4)
        .map(|_| {
            cli(&b, &env_b)
                .args(["run", "probe"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    codes.extend(
        kids.into_iter()
            .map(|k| k.wait_with_output().unwrap().status.code().unwrap_or(-1)),
    );
    assert_eq!(
        codes.iter().filter(|&&c| c == 0).count(),
        1,
        "exactly one probe: {codes:?}"
    );
    assert_eq!(count_lines(&shared.path().join("count")), 4);
    assert_eq!(codes.iter().filter(|&&c| c == 69).count(), 11, "{codes:?}");
    let o = cli(&a, &env_a)
        .args(["breaker", "status", "--json", "probe"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        st["state"], "closed",
        "the probe's success closed it for all"
    );
}

#[test]
fn fleet_concurrency_group_is_shared() {
    let redis = RedisServer::start();
    let machines: Vec<_> = (0..2).map(|_| machine(&redis.url)).collect();
    for (s, _) in &machines {
        s.write(
            "home/config.yaml",
            &format!(
                "state:\n  url: {}\ngroups:\n  gpu: {{max_concurrent: 1, queue_size: 10}}\n",
                redis.url
            ),
        );
        s.manifest(
            "hold",
            "name: hold\nversion: \"1.0.0\"\ndescription: holds the group\ncategory: utility\ncache: false\nconcurrency_group: gpu\n",
            Some("#!/bin/sh\nsleep \"${HOLD:-1}\"\n"),
        );
    }
    // `state.url` in gathm.yaml selects Redis without the variable.
    let o = machines[0]
        .0
        .cmd()
        .args(["status", "--json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["shared"]["location"], redis.url.as_str());
    // One run holds the only slot; --no-wait on the other machine is refused.
    let (s0, e0) = &machines[0];
    let (s1, e1) = &machines[1];
    let mut holder = cli(s0, e0).args(["run", "hold"]).spawn().unwrap();
    wait_until("the slot is taken", Duration::from_secs(10), || {
        let o = cli(s1, e1)
            .args(["run", "--no-wait", "hold"])
            .output()
            .unwrap();
        o.status.code() == Some(75) && stderr(&o).contains("gpu")
    });
    // Waiting works: it gets the slot once the holder ends.
    let o = cli(s1, e1).args(["run", "hold"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(holder.wait().unwrap().success());
    // A holder killed with SIGKILL stops renewing its lease: the slot is
    // free again within GATHM_LEASE_TTL.
    use std::os::unix::process::CommandExt;
    let mut holder = cli(s0, e0)
        .args(["run", "hold"])
        .env("GATHM_LEASE_TTL", "1")
        .env("HOLD", "30")
        .process_group(0)
        .spawn()
        .unwrap();
    wait_until("the slot is taken", Duration::from_secs(10), || {
        let o = cli(s1, e1)
            .args(["run", "--no-wait", "hold"])
            .output()
            .unwrap();
        o.status.code() == Some(75)
    });
    // SIGKILL to gathm and its tool (the whole process group).
    let pg = rustix::process::Pid::from_raw(holder.id() as i32).unwrap();
    rustix::process::kill_process_group(pg, rustix::process::Signal::KILL).unwrap();
    holder.wait().unwrap();
    let t0 = std::time::Instant::now();
    wait_until("the lease lapses", Duration::from_secs(5), || {
        cli(s1, e1)
            .args(["run", "--no-wait", "hold"])
            .status()
            .unwrap()
            .success()
    });
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[test]
fn fleet_without_redis_fails_closed_or_falls_back_as_configured() {
    let mut redis = RedisServer::start();
    let (s, env) = machine(&redis.url);
    assert_eq!(
        cli(&s, &env).args(["run", "noop"]).status().unwrap().code(),
        Some(0)
    );
    let o = cli(&s, &env).args(["status", "--json"]).output().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["shared"]["kind"], "redis");
    assert_eq!(st["shared"]["reachable"], true);
    let server = serve(&s, &env);
    assert_eq!(crate::serve::get(&server, "/readyz", None).status, 200);
    redis.kill();
    // A rate-limited tool is refused, naming the URL and the cause.
    let o = cli(&s, &env).args(["run", "noop"]).output().unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&redis.url) && e.contains("rate-limit"), "{e}");
    // A tool without limits runs; its breaker degrades with a warning.
    let o = cli(&s, &env).args(["run", "fail", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    // status says it, and exits 1.
    let o = cli(&s, &env).args(["status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("UNREACHABLE"), "{}", stdout(&o));
    // The server stays alive and says it is not ready.
    assert_eq!(crate::serve::get(&server, "/healthz", None).status, 200);
    let r = crate::serve::get(&server, "/readyz", None);
    assert_eq!(r.status, 503, "{:?}", r.body);
    let r = post(
        &server,
        "/api/v1/tools/noop/execute",
        None,
        &json!({"args": []}),
    );
    assert_eq!(r.status, 503, "{:?}", r.body);
    // Nothing is acknowledged that is not stored: a submission is a 503.
    let r = post(
        &server,
        "/api/v1/jobs",
        None,
        &json!({"tool": "noop", "args": []}),
    );
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert!(r.body.to_string().contains("127.0.0.1"), "{:?}", r.body);
    // GATHM_STATE_FALLBACK=local: runs on the embedded store, with a warning.
    let o = cli(&s, &env)
        .args(["run", "noop"])
        .env("GATHM_STATE_FALLBACK", "local")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("GATHM_STATE_FALLBACK=local"),
        "{}",
        stderr(&o)
    );
    assert!(s.home().join("ratelimit").exists());
    // A URL that is not Redis fails closed too.
    let o = s
        .cmd()
        .args(["run", "noop"])
        .env("GATHM_STATE_URL", "http://nowhere")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a redis://"), "{}", stderr(&o));
    // Redis back: ready again, limits enforced again.
    redis.restart();
    wait_until("ready again", Duration::from_secs(10), || {
        crate::serve::get(&server, "/readyz", None).status == 200
    });
    assert_eq!(
        cli(&s, &env).args(["run", "noop"]).status().unwrap().code(),
        Some(0)
    );
    let r = post(
        &server,
        "/api/v1/jobs",
        None,
        &json!({"tool": "noop", "args": []}),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
}

#[test]
fn fleet_serve_takes_the_state_url_from_its_flag() {
    use std::io::BufRead;
    let redis = RedisServer::start();
    let (s, _) = machine(&redis.url);
    let mut child = s
        .cmd()
        .args(["serve", "--port", "0", "--state-url", &redis.url])
        .env("GATHM_SHUTDOWN_GRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let r = crate::serve::send(
        crate::serve::client()
            .post(format!("{base}/api/v1/tools/noop/execute"))
            .json(&json!({"args": []})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        redis.command("EXISTS gathm:ratelimit:tool-noop").as_deref(),
        Some(":1"),
        "the window is in Redis"
    );
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("shared state: redis at redis://127.0.0.1"),
        "{err}"
    );
}

#[test]
fn fleet_an_invalid_config_never_silently_means_the_embedded_store() {
    let (s, _) = machine("unused");
    s.write("home/config.yaml", "state:\n  url: [not, a, string]\n");
    let o = s.cmd().args(["run", "noop"]).output().unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("where the shared state lives is unknown"),
        "{}",
        stderr(&o)
    );
    assert!(!s.home().join("ratelimit").exists());
}

fn slot_jobs(s: &Sandbox) -> Vec<(String, String)> {
    let h: serde_json::Value = std::fs::read(s.home().join("schedules/sec.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    h["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                // Skipped slots (overlap: the fleet's job of that slot was
                // still running) name no job of their own.
                .filter(|r| r["outcome"] != "skipped")
                .filter_map(|r| {
                    let job = r["message"].as_str()?.strip_prefix("job ")?;
                    let id = job.split_whitespace().next()?;
                    Some((r["slot"].as_str()?.to_string(), id.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Two instances with the same schedule: each slot becomes one job of the
/// fleet (its deterministic slot id is the idempotency key), run once.
#[test]
fn fleet_schedule_slots_run_once_across_instances() {
    let redis = RedisServer::start();
    let stamps = tempfile::NamedTempFile::new().unwrap();
    let stamp_file = stamps.path().to_str().unwrap().to_string();
    let machines: Vec<Sandbox> = (0..2)
        .map(|_| {
            let s = Sandbox::new(&["stamp"]);
            s.write(
                "gathm.yaml",
                "schedules:\n  - name: sec\n    cron: '* * * * * *'\n    tool: stamp\n    args: [s]\n",
            );
            s
        })
        .collect();
    let env = [
        ("GATHM_STATE_URL", redis.url.as_str()),
        ("STAMP_FILE", stamp_file.as_str()),
    ];
    let servers: Vec<Server> = machines.iter().map(|s| Server::start(s, &env)).collect();
    wait_until(
        "both instances submitted 4 slots",
        Duration::from_secs(30),
        || machines.iter().all(|s| slot_jobs(s).len() >= 4),
    );
    // Let what was submitted finish, then stop both.
    wait_until("the queue drains", Duration::from_secs(20), || {
        let r = crate::serve::get(&servers[0], "/api/v1/jobs?status=running", None).body;
        let p = crate::serve::get(&servers[0], "/api/v1/jobs?status=pending", None).body;
        r["count"] == 0 && p["count"] == 0
    });
    let listed = crate::serve::get(&servers[1], "/api/v1/jobs?tool=stamp&limit=1000", None).body;
    drop(servers);
    let mut by_slot = std::collections::BTreeMap::new();
    for s in &machines {
        for (slot, id) in slot_jobs(s) {
            if let Some(other) = by_slot.insert(slot.clone(), id.clone()) {
                assert_eq!(other, id, "slot {slot} became two jobs");
            }
        }
    }
    // A slot submitted by both instances got one job (the second submission
    // returned the first's); under load the second may skip it instead
    // (overlap: skip, the fleet's job of that slot still running).
    assert!(!by_slot.is_empty());
    let jobs = listed["jobs"].as_array().unwrap();
    let mut ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    let mut slot_ids: Vec<&String> = by_slot.values().collect();
    slot_ids.sort();
    slot_ids.dedup();
    assert_eq!(ids.len(), slot_ids.len(), "one job per slot: {listed}");
    let runs = std::fs::read_to_string(stamps.path())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("start"))
        .count();
    assert_eq!(runs, ids.len(), "each job ran once");
}

/// `rediss://`: TLS to Redis (rustls), trusting the CA that
/// `SSL_CERT_FILE` names; the certificate is checked (a client without the
/// CA is refused, and says so).
#[test]
fn fleet_over_tls_with_rediss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl (Debian: openssl; .ci/run installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=gathm test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
    ]);
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext",
        "-out",
        "srv.pem",
    ]);
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let redis = RedisServer::with_args(&[
        "--appendonly",
        "yes",
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &p("srv.pem"),
        "--tls-key-file",
        &p("srv.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let (s, _) = machine(&url);
    let o = s
        .cmd()
        .args(["run", "noop"])
        .env("GATHM_STATE_URL", &url)
        .env("SSL_CERT_FILE", p("ca.pem"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        redis.command("EXISTS gathm:ratelimit:tool-noop").as_deref(),
        Some(":1"),
        "the window is in Redis, reached over TLS"
    );
    // Without the CA the server's certificate is not trusted: refused.
    let o = s
        .cmd()
        .args(["run", "noop"])
        .env("GATHM_STATE_URL", &url)
        .env("SSL_CERT_FILE", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
}

#[test]
fn fleet_a_bad_schedule_does_not_stop_runs_on_the_embedded_store() {
    // `gathm run` reads only the `state:` section of the configuration file:
    // a schedule's bad cron expression is `gathm schedule`'s business, and
    // the file says plainly that the state is embedded.
    let (s, _) = machine("unused");
    s.write(
        "home/config.yaml",
        "schedules:\n  - name: bad\n    cron: 'not a cron'\n    tool: noop\n",
    );
    let o = s.cmd().args(["run", "noop"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    s.write("home/config.yaml", "stat:\n  url: redis://127.0.0.1:1\n");
    let o = s.cmd().args(["run", "noop"]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(75),
        "a misspelt section: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("where the shared state lives is unknown"),
        "{}",
        stderr(&o)
    );
}
