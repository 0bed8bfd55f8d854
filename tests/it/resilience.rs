//! Breaker, fallback, retries, cache and health through the binary.

use std::time::Duration;

use crate::harness::*;

fn breaker_file(s: &Sandbox, tool: &str) -> serde_json::Value {
    let p = s.home().join("health").join(format!("cb_{tool}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

#[test]
fn breaker_opens_exits_69_and_resets() {
    let s = Sandbox::new(&["fail"]);
    for _ in 0..3 {
        assert_eq!(s.run(&["run", "fail", "1"]).status.code(), Some(1));
    }
    let counter = s.path().join("runs");
    let o = s
        .cmd()
        .args(["run", "fail", "1"])
        .env("FAIL_COUNTER", &counter)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        count_lines(&counter),
        0,
        "an open breaker does not run the tool"
    );
    let e = stderr(&o);
    assert!(
        e.contains("gathm breaker reset fail") && e.contains("probe"),
        "{e}"
    );
    let (_, v) = s.json(&["--json", "fail", "1"]);
    assert_eq!(v["reason"], "circuit_open");
    assert!(v["retry_after"].as_f64().unwrap() > 0.0);
    let (_, st) = s.json(&["breaker", "status", "--json", "fail"]);
    assert_eq!(st["state"], "open");
    assert_eq!(st["failures"], 3);
    assert!(s.run(&["breaker", "reset", "fail"]).status.success());
    let (_, st) = s.json(&["breaker", "status", "--json", "fail"]);
    assert_eq!(st["state"], "closed");
    assert_eq!(s.run(&["run", "fail", "0"]).status.code(), Some(0));
}

#[test]
fn uncounted_outcomes_and_env_threshold() {
    let s = Sandbox::new(&["fail", "ok"]);
    // Usage errors (exit 2) never count.
    for _ in 0..5 {
        assert_eq!(s.run(&["run", "fail", "2"]).status.code(), Some(2));
    }
    assert!(
        !s.home().join("health/cb_fail.json").exists(),
        "exit 2 wrote no breaker state"
    );
    // A healthy success writes no breaker state.
    assert!(s.run(&["run", "ok"]).status.success());
    assert!(!s.home().join("health/cb_ok.json").exists());
    // CB_FAILURE_THRESHOLD overrides the default; GATHM_HEALTH_DIR moves the state.
    let hd = s.path().join("hd");
    let o = s
        .cmd()
        .args(["run", "fail", "1"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .env("GATHM_HEALTH_DIR", &hd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = s
        .cmd()
        .args(["run", "fail", "1"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .env("GATHM_HEALTH_DIR", &hd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69));
    assert!(hd.join("cb_fail.json").exists());
}

#[test]
fn concurrent_failures_are_all_counted() {
    let s = Sandbox::new(&["fail"]);
    let mut kids = vec![];
    for _ in 0..32 {
        let mut c = s.cmd();
        c.env("CB_FAILURE_THRESHOLD", "100000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Each process runs 20 times in a shell loop.
        let script = format!(
            "for i in $(seq 20); do {} run fail 1; done; exit 0",
            bin().display()
        );
        kids.push(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .envs(
                    c.get_envs()
                        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
                )
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let b = breaker_file(&s, "fail");
    assert_eq!(b["failures"], 640);
    assert_eq!(b["total_failures"], 640);
    assert_eq!(b["state"], "closed");
}

#[test]
fn half_open_lets_exactly_one_probe_through() {
    let s = Sandbox::new(&[]);
    s.manifest(
        "probe",
        "name: probe\nversion: \"1.0.0\"\ndescription: counts its runs\ncategory: utility\ncache: false\nbreaker: {failure_threshold: 1, recovery_timeout: 0}\n",
        Some("#!/bin/sh\necho run >> \"$COUNTER_FILE\"\nsleep \"${COUNTER_SLEEP:-0}\"\nexit \"${COUNTER_EXIT:-0}\"\n"),
    );
    let counter = s.path().join("count");
    let o = s
        .cmd()
        .args(["run", "probe"])
        .env("COUNTER_FILE", &counter)
        .env("COUNTER_EXIT", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(count_lines(&counter), 1);
    // Open with a zero recovery timeout: half-open at once. 16 callers race.
    let codes = race(16, || {
        let mut c = s.cmd();
        c.args(["run", "probe"])
            .env("COUNTER_FILE", &counter)
            .env("COUNTER_SLEEP", "2");
        c
    });
    assert_eq!(count_lines(&counter), 2, "exactly one probe ran: {codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 69).count(), 15, "{codes:?}");
    assert_eq!(breaker_file(&s, "probe")["state"], "closed");
}

#[test]
fn kill_9_never_leaves_unreadable_state() {
    let s = Sandbox::new(&["fail", "ok"]);
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..100 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let tool = if i % 2 == 0 { "fail" } else { "ok" };
        let mut child = s
            .cmd()
            .args(["--role", "user", "run", tool, "1", &format!("{}", i % 7)])
            .env("CB_FAILURE_THRESHOLD", "1000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % 15_000));
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut checked = 0;
    for p in files_under(&s.home()) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".json.0") {
            // Two-slot records: at least one slot always parses.
            let ok = [".json.0", ".json.1"].iter().any(|suf| {
                std::fs::read(p.with_file_name(format!("{base}{suf}")))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some()
            });
            assert!(ok, "{base}: no readable slot");
            checked += 1;
        }
        if name.ends_with(".json") {
            let b = std::fs::read(&p).unwrap();
            serde_json::from_slice::<serde_json::Value>(&b)
                .unwrap_or_else(|e| panic!("{name} unreadable: {e}"));
            checked += 1;
        }
        assert!(
            !name.contains(".corrupt-"),
            "nothing needed quarantining: {name}"
        );
    }
    assert!(checked > 0);
    // And the next run works.
    assert!(s.run(&["run", "ok"]).status.success());
}

#[test]
fn corrupt_state_is_quarantined_and_the_run_proceeds() {
    let s = Sandbox::new(&["fail"]);
    let p = s.home().join("health/cb_fail.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"{\"state\": \"op").unwrap();
    let o = s.run(&["run", "fail", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("was unreadable"), "{}", stderr(&o));
    let aside = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert_eq!(aside, 1);
    assert_eq!(breaker_file(&s, "fail")["failures"], 1);
}

#[test]
fn fallback_chain_attempts_and_cycle() {
    let s = Sandbox::new(&["primary", "backup", "geo", "ipinfo"]);
    let (code, v) = s.json(&["--json", "primary", "x"]);
    assert_eq!(code, 0);
    assert_eq!(v["output"], "backup answered: x\n");
    assert_eq!(v["served_by"], "backup");
    let att: Vec<(&str, &str)> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["tool"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(att, [("primary", "failed"), ("backup", "success")]);
    // Text mode says what happened on stderr.
    let o = s.run(&["primary", "y"]);
    assert!(
        stderr(&o).contains("falling back to backup"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "backup answered: y\n");
    // The reference's geo <-> ipinfo cycle terminates: each runs once.
    let (code, v) = s.json(&["--json", "geo"]);
    assert_eq!(code, 6, "exit code of the last tool that ran");
    assert_eq!(v["reason"], "fallback_exhausted");
    let att: Vec<(&str, &str)> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["tool"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        att,
        [("geo", "failed"), ("ipinfo", "failed"), ("geo", "skipped")]
    );
}

#[test]
fn open_breaker_goes_to_fallback_and_depth_limit() {
    let s = Sandbox::new(&["primary", "backup"]);
    let o = s
        .cmd()
        .args(["run", "primary"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let (code, v) = s.json(&["--json", "primary", "z"]);
    assert_eq!(code, 0);
    assert_eq!(v["attempts"][0]["outcome"], "circuit_open", "{v}");
    assert_eq!(v["attempts"][1]["tool"], "backup");
    // Depth 0: no fallback hop at all.
    let s2 = Sandbox::new(&["primary", "backup"]);
    let o = s2
        .cmd()
        .args(["--json", "primary"])
        .env("GATHM_MAX_FALLBACK_DEPTH", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
}

#[test]
fn retries_follow_the_manifest_and_never_retry_exit_2() {
    let s = Sandbox::new(&["flaky"]);
    let f = s.path().join("flaky.count");
    let o = s
        .cmd()
        .args(["--json", "flaky", "3"])
        .env("FLAKY_FILE", &f)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 0, "{v}");
    let tries: Vec<i64> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["try_number"].as_i64().unwrap())
        .collect();
    assert_eq!(tries, [1, 2, 3]);
    assert_eq!(count_lines(&f), 3);
    // One failure recorded in the breaker per call, not per try.
    assert!(!s.home().join("health/cb_flaky.json").exists());
    s.manifest(
        "usage",
        "name: usage\nversion: \"1.0.0\"\ndescription: usage error\ncategory: utility\ncache: false\nretry: {attempts: 5, delay: 0}\n",
        Some("#!/bin/sh\necho x >> \"$FLAKY_FILE\"\nexit 2\n"),
    );
    let f2 = s.path().join("usage.count");
    let o = s
        .cmd()
        .args(["run", "usage"])
        .env("FLAKY_FILE", &f2)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(count_lines(&f2), 1);
}

#[test]
fn cache_hits_keys_and_commands() {
    let s = Sandbox::new(&["ok"]);
    let c = s.path().join("ok.count");
    let run = |args: &[&str]| s.cmd().args(args).env("OK_COUNTER", &c).output().unwrap();
    assert!(run(&["run", "ok", "a b"]).status.success());
    let o = run(&["run", "--json", "ok", "a b"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cached"], true);
    assert_eq!(v["output"], "[\"a b\"]\n");
    assert_eq!(count_lines(&c), 1, "the hit did not run the tool");
    // ["a","b"] is a different key from ["a b"].
    let o = run(&["run", "ok", "a", "b"]);
    assert_eq!(stdout(&o), "[\"a\", \"b\"]\n");
    assert_eq!(count_lines(&c), 2);
    // --no-cache and --refresh run it; GATHM_CACHE_ENABLED=false too.
    run(&["run", "--no-cache", "ok", "a b"]);
    run(&["run", "--refresh", "ok", "a b"]);
    s.cmd()
        .args(["run", "ok", "a b"])
        .env("OK_COUNTER", &c)
        .env("GATHM_CACHE_ENABLED", "false")
        .output()
        .unwrap();
    assert_eq!(count_lines(&c), 5);
    let (_, st) = s.json(&["cache", "stats", "--json"]);
    assert_eq!(st["active"], 2);
    assert_eq!(st["per_tool"]["ok"], 2);
    let (_, r) = s.json(&["cache", "invalidate", "ok", "--json"]);
    assert_eq!(r["removed"], 2);
    run(&["run", "ok", "a b"]);
    assert_eq!(count_lines(&c), 6);
    // TTL: expired entries miss and `purge` removes them; `clear` empties the cache.
    let o = s
        .cmd()
        .args(["run", "ok", "ttl"])
        .env("OK_COUNTER", &c)
        .env("GATHM_CACHE_DEFAULT_TTL", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(2100));
    let (_, r) = s.json(&["cache", "purge", "--json"]);
    assert_eq!(r["removed"], 1);
    let (_, r) = s.json(&["cache", "clear", "--json"]);
    assert_eq!(r["removed"], 1);
    let (_, st) = s.json(&["cache", "stats", "--json"]);
    assert_eq!(st["total_entries"], 0);
}

#[test]
fn failures_and_cache_false_are_never_cached() {
    let s = Sandbox::new(&["fail", "counter"]);
    let c = s.path().join("n");
    for _ in 0..2 {
        s.cmd()
            .args(["run", "counter"])
            .env("COUNTER_FILE", &c)
            .output()
            .unwrap();
    }
    assert_eq!(count_lines(&c), 2, "cache: false");
    s.manifest(
        "failc",
        "name: failc\nversion: \"1.0.0\"\ndescription: fails, cacheable\ncategory: utility\n",
        Some("#!/bin/sh\necho x >> \"$COUNTER_FILE\"\nexit 3\n"),
    );
    for _ in 0..2 {
        s.cmd()
            .args(["run", "failc"])
            .env("COUNTER_FILE", &c)
            .output()
            .unwrap();
    }
    assert_eq!(count_lines(&c), 4, "failures are not cached");
}

#[test]
fn health_checks_each_part_and_heal_resets() {
    let s = Sandbox::new(&["ok"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.manifest(
        "svc",
        &format!(
            "name: svc\nversion: \"1.0.0\"\ndescription: uses two apis\ncategory: networking\ndependencies:\n  system: [sh]\napis:\n  - name: up\n    base_url: http://127.0.0.1:{port}\n    health_endpoint: http://127.0.0.1:{port}/health\n  - name: down\n    base_url: http://127.0.0.1:{closed}\n    health_endpoint: http://127.0.0.1:{closed}/health\n"
        ),
        Some("#!/bin/sh\nexit 1\n"),
    );
    s.manifest(
        "broken",
        "name: broken\nversion: \"1.0.0\"\ndescription: needs a missing command\ncategory: utility\ndependencies:\n  system: [definitely-not-installed-xyz]\n",
        Some("#!/bin/sh\nexit 0\n"),
    );
    let (code, v) = s.json(&["health", "--json"]);
    assert_eq!(code, 1, "an unhealthy tool makes health exit 1");
    let by = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|h| h["tool"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("ok")["status"], "healthy");
    assert_eq!(by("broken")["status"], "unhealthy");
    let svc = by("svc");
    assert_eq!(svc["status"], "degraded", "{svc}");
    let checks = svc["checks"].as_array().unwrap();
    let up = checks.iter().find(|c| c["name"] == "api:up").unwrap();
    let down = checks.iter().find(|c| c["name"] == "api:down").unwrap();
    assert_eq!(up["ok"], true, "{up}");
    assert_eq!(down["ok"], false, "{down}");
    // Heal resets a healthy tool's breaker.
    let o = s
        .cmd()
        .args(["run", "ok"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    s.manifest(
        "okfail",
        "name: okfail\nversion: \"1.0.0\"\ndescription: fails once\ncategory: utility\n",
        Some("#!/bin/sh\nexit 1\n"),
    );
    s.cmd()
        .args(["run", "okfail"])
        .env("CB_FAILURE_THRESHOLD", "1")
        .output()
        .unwrap();
    let (_, h) = s.json(&["health", "okfail", "--json"]);
    assert_eq!(h["breaker"], "open");
    assert_eq!(h["status"], "degraded");
    let (_, r) = s.json(&["heal", "okfail", "--json"]);
    assert_eq!(r["healed"], serde_json::json!(["okfail"]));
    let (_, h) = s.json(&["health", "okfail", "--json"]);
    assert_eq!(h["breaker"], "closed");
}

/// Health probes over HTTPS go through rustls with the ring provider and the
/// system trust store (`SSL_CERT_FILE` here): a certificate from a trusted CA
/// passes, the same server without that CA is reported with rustls' reason.
#[test]
fn health_probes_https_and_reports_the_tls_reason() {
    let s = Sandbox::new(&[]);
    let dir = s.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj /CN=gathm-test-ca -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign 2>/dev/null && \
        openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost 2>/dev/null && \
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
        -days 2 -extfile ext.cnf 2>/dev/null",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            "leaf.pem",
        ])
        .args(["-key", "leaf.key", "-www", "-quiet"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("openssl s_server listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    s.manifest(
        "tls",
        &format!(
            "name: tls\nversion: \"1.0.0\"\ndescription: an https api\ncategory: networking\napis:\n  - name: secure\n    base_url: https://localhost:{port}\n    health_endpoint: https://localhost:{port}/\n"
        ),
        Some("#!/bin/sh\nexit 0\n"),
    );
    let check = |ca: Option<&std::path::Path>| {
        let mut c = s.cmd();
        c.args(["health", "tls", "--json"]);
        match ca {
            Some(p) => c.env("SSL_CERT_FILE", p),
            None => c.env("SSL_CERT_FILE", dir.join("leaf.csr")),
        };
        let o = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "api:secure")
            .unwrap()
            .clone()
    };
    let trusted = check(Some(&dir.join("ca.pem")));
    let untrusted = check(None);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(trusted["ok"], true, "{trusted}");
    assert!(
        trusted["detail"].as_str().unwrap().contains("HTTP 200"),
        "{trusted}"
    );
    assert_eq!(untrusted["ok"], false, "{untrusted}");
    assert!(
        untrusted["detail"]
            .as_str()
            .unwrap()
            .contains("invalid peer certificate"),
        "the TLS reason is reported: {untrusted}"
    );
}
