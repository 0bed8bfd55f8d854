//! The floor of a sync execute: a bare HTTP server (tokio + hyper, as
//! `gathm serve`) that answers every POST by running one program with
//! `posix_spawn`, its output on pipes and `/dev/null` as stdin in its own
//! process group, appending a line to two log files and answering a small
//! JSON body. No policy, breaker, registry or metrics: what is left is the
//! cost of the design itself, which `bench/exec-floor.sh` compares with
//! `gathm serve` and webhook (CPU per request of the server process).
//!
//! Two designs, the same code otherwise:
//! - `blocking`: the run goes to tokio's blocking pool and waits in `poll(2)`
//!   there (what `gathm serve` does: a hand-off to a pool thread and back
//!   for every request);
//! - `async`: the run is spawned from the worker that read the request and
//!   its end is awaited on the pidfd through the reactor (no hand-off).
//!
//! Run: `cargo run --release --example exec_floor -- PORT PROGRAM async|blocking`.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use rustix::process::{Pid, PidfdFlags, WaitOptions};

struct Shared {
    program: CString,
    env: Vec<CString>,
    null: OwnedFd,
    logs: Mutex<(std::fs::File, std::fs::File)>,
}

/// Start the program; the pid and the read ends of stdout and stderr.
fn spawn(s: &Shared) -> std::io::Result<(i32, OwnedFd, OwnedFd)> {
    let io = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
    let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
    let (out_r, out_w) = rustix::pipe::pipe_with(flags)?;
    let (err_r, err_w) = rustix::pipe::pipe_with(flags)?;
    let mut actions = PosixSpawnFileActions::init().map_err(io)?;
    actions.add_dup2(s.null.as_raw_fd(), 0).map_err(io)?;
    actions.add_dup2(out_w.as_raw_fd(), 1).map_err(io)?;
    actions.add_dup2(err_w.as_raw_fd(), 2).map_err(io)?;
    let mut attr = PosixSpawnAttr::init().map_err(io)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
            | PosixSpawnFlags::POSIX_SPAWN_SETPGROUP,
    )
    .map_err(io)?;
    attr.set_pgroup(nix::unistd::Pid::from_raw(0)).map_err(io)?;
    attr.set_sigmask(&nix::sys::signal::SigSet::empty())
        .map_err(io)?;
    let argv = [s.program.as_c_str()];
    let pid = posix_spawn(s.program.as_c_str(), &actions, &attr, &argv, &s.env).map_err(io)?;
    Ok((pid.as_raw(), out_r, err_r))
}

/// Read what the pipes hold (a no-op tool writes nothing), reap, log.
fn finish(s: &Shared, pid: i32, out: &OwnedFd, err: &OwnedFd) -> i32 {
    let mut buf = [0u8; 4096];
    let _ = rustix::io::read(out, &mut buf);
    let _ = rustix::io::read(err, &mut buf);
    let code = Pid::from_raw(pid)
        .and_then(|p| rustix::process::waitpid(Some(p), WaitOptions::empty()).ok()?)
        .and_then(|(_, st)| st.exit_status())
        .unwrap_or(-1);
    let line = format!("{{\"action\":\"tool_execute\",\"exit_code\":{code}}}\n");
    let mut logs = s.logs.lock().unwrap_or_else(|e| e.into_inner());
    let _ = logs.0.write_all(line.as_bytes());
    let _ = logs.1.write_all(line.as_bytes());
    code
}

/// The whole run on the calling thread: spawn, then `poll(2)` on the pidfd.
fn run_blocking(s: &Shared) -> std::io::Result<i32> {
    let (pid, out, err) = spawn(s)?;
    let pidfd = rustix::process::pidfd_open(
        Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidData)?,
        PidfdFlags::empty(),
    )?;
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    rustix::event::poll(&mut fds, None)?;
    Ok(finish(s, pid, &out, &err))
}

/// Spawn here, await the pidfd through the reactor.
async fn run_async(s: &Shared) -> std::io::Result<i32> {
    let (pid, out, err) = spawn(s)?;
    let pidfd = rustix::process::pidfd_open(
        Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidData)?,
        PidfdFlags::NONBLOCK,
    )?;
    // `new` is deprecated in favour of the `unsafe` `register` (the crate
    // forbids `unsafe`); the descriptor is an `OwnedFd` this function owns,
    // so the I/O-safety concern behind the deprecation does not arise.
    #[allow(deprecated)]
    let fd = tokio::io::unix::AsyncFd::new(pidfd)?;
    let _ready = fd.readable().await?;
    Ok(finish(s, pid, &out, &err))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(program), Some(mode)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: exec_floor PORT PROGRAM async|blocking");
        std::process::exit(2);
    };
    let port: u16 = port.parse().map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let blocking = mode == "blocking";
    let env = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).ok()
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("exec-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let shared = Arc::new(Shared {
        program: CString::new(program.as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?,
        env,
        null: rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?,
        logs: Mutex::new((open("audit.log")?, open("metrics.log")?)),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://127.0.0.1:{port} ({mode})");
        loop {
            let (sock, _) = listener.accept().await?;
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let shared = Arc::clone(&shared);
                    async move {
                        let _ = req.into_body().collect().await;
                        let code = if blocking {
                            let s = Arc::clone(&shared);
                            tokio::task::spawn_blocking(move || run_blocking(&s))
                                .await
                                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                        } else {
                            run_async(&shared).await
                        };
                        let body = match code {
                            Ok(c) => format!("{{\"status\":\"success\",\"exit_code\":{c}}}"),
                            Err(e) => format!("{{\"status\":\"error\",\"error\":\"{e}\"}}"),
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    })
}
