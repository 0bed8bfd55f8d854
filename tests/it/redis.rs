//! A private `redis-server` for the fleet tests: started on a free loopback
//! port with AOF on (`appendfsync always` unless asked otherwise) in its own
//! temporary directory, stopped when dropped. `restart` kills it and starts
//! it again on the same port and data directory (the AOF is replayed), as a
//! crash and restart would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server owned by one test.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    extra: Vec<String>,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// AOF on, `appendfsync always`.
    pub fn start() -> RedisServer {
        RedisServer::with_args(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Start with these extra `redis-server` arguments (e.g. AOF off).
    pub fn with_args(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let mut r = RedisServer {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            url: format!("redis://127.0.0.1:{port}/0"),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let bin = std::env::var("GATHM_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut args = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--dir".into(),
            self.dir.path().to_str().unwrap().to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        let child = Command::new(&bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}); install it (Debian: redis-server; .ci/run does)")
            });
        self.child = Some(child);
        let t0 = Instant::now();
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (the AOF lives here).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Send one inline command; the first line of the reply.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        text.lines().next().map(str::to_string)
    }

    /// Kill it (SIGKILL: nothing is flushed beyond what AOF already has).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill it and start it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn redis_server_restarts_with_its_aof() {
    let mut r = RedisServer::start();
    assert!(r.url.ends_with(&format!(":{}/0", r.port())));
    assert_eq!(r.command("SET k v").as_deref(), Some("+OK"));
    assert!(
        std::fs::read_dir(r.dir()).unwrap().next().is_some(),
        "AOF written"
    );
    r.restart();
    assert_eq!(r.command("GET k").as_deref(), Some("$1"));
    r.kill();
    assert_eq!(r.command("PING"), None);
}
