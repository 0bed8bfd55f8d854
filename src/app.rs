//! The command-line front-end: parse argv, build the `Context`, call the
//! operations, print text or JSON, and turn the result into an exit code.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use clap::{CommandFactory, Parser};

use crate::api::{Envelope, RunStatus};
use crate::chain;
use crate::cli::{BreakerCmd, CacheCmd, Cli, Command, Global, PolicyCmd, RunArgs, SchemaKind};
use crate::cli::{ChainArgs, ParallelArgs, PipelineCmd};
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::health;
use crate::manifest::Severity;
use crate::ops;
use crate::output;
use crate::parallel;
use crate::pipeline;
use crate::run::{self, Member, RunRequest};
use crate::runner::{self, StdSink, Stdin};
use crate::schema;
use crate::slots;

fn exit(n: i32) -> i32 {
    n.clamp(0, 255)
}

/// The process entry point (`src/main.rs` is the C `main`, without Rust's
/// runtime start-up; see ARCHITECTURE.md): make the process safe to run in,
/// run the CLI, and return the exit status. A panic is reported by the panic
/// hook and exits 101, as under Rust's own `main`.
pub fn entry(args: impl IntoIterator<Item = OsString>) -> i32 {
    prepare_process();
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main(args))).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// What Rust's runtime start-up would have done that gathm relies on.
///
/// - Descriptors 0, 1 and 2 are open: a closed one is reopened on
///   `/dev/null`, so no state file or pipe is ever opened as "stdout".
/// - SIGPIPE does not kill gathm: writing to a closed pipe (`gathm run t |
///   head -1`, a chain whose next tool stopped reading) fails with EPIPE,
///   which the printers ignore, and the tool's process group is still
///   cleaned up. A handler rather than SIG_IGN, so tools start with the
///   default disposition (exec resets handled signals).
pub fn prepare_process() {
    let stdio = [
        rustix::io::fcntl_getfd(std::io::stdin()).is_err(),
        rustix::io::fcntl_getfd(std::io::stdout()).is_err(),
        rustix::io::fcntl_getfd(std::io::stderr()).is_err(),
    ];
    for (fd, closed) in stdio.into_iter().enumerate() {
        if closed {
            // The lowest free descriptor is `fd`: the lower ones are open.
            let f = std::fs::OpenOptions::new()
                .read(fd == 0)
                .write(fd != 0)
                .open("/dev/null");
            if let Ok(f) = f {
                let _ = std::os::fd::IntoRawFd::into_raw_fd(f);
            }
        }
    }
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGPIPE,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
}

/// Parse `args` and run the command; the whole CLI. Returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some((g, r)) = crate::cli::fast_run(&args) {
        let ctx = Context::new(&g.tools_dir, g.policies.as_deref()).with_config(g.config.clone());
        return match run_cmd(&ctx, &g, r) {
            Ok(c) => exit(c),
            Err(e) => {
                output::error(&e.to_string());
                exit(i32::from(e.exit_code()))
            }
        };
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return exit(if e.use_stderr() {
                i32::from(code::USAGE)
            } else {
                0
            });
        }
    };
    match dispatch(cli) {
        Ok(c) => exit(c),
        Err(e) => {
            output::error(&e.to_string());
            exit(i32::from(e.exit_code()))
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let g = cli.global;
    // Completions and schemas work without touching GATHM_HOME.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "gathm", &mut buf);
            output::raw_out(&buf);
            return Ok(0);
        }
        Command::Schema { kind } => {
            output::json(&match kind {
                SchemaKind::Tool => schema::tool(),
                SchemaKind::Policies => schema::policies(),
                SchemaKind::Config => schema::config(),
            });
            return Ok(0);
        }
        _ => {}
    }
    let ctx = Context::new(&g.tools_dir, g.policies.as_deref()).with_config(g.config.clone());
    match cli.command {
        Command::Run(args) => run_cmd(&ctx, &g, args),
        Command::External(argv) => run_cmd(
            &ctx,
            &g,
            RunArgs {
                command: argv,
                ..RunArgs::default()
            },
        ),
        Command::Parallel(a) => parallel_cmd(&ctx, &g, a),
        Command::Chain(a) => chain_cmd(&ctx, &g, a),
        Command::Pipeline(cmd) => pipeline_cmd(&ctx, &g, cmd),
        Command::List { category } => {
            let (list, diags) = ops::list(&ctx, &g.role, category.as_deref())?;
            for d in &diags {
                output::error(&d.to_string());
            }
            if g.json {
                output::json(&list);
            } else {
                let w = list.tools.iter().map(|t| t.name.len()).max().unwrap_or(4);
                let mut s = String::new();
                for t in &list.tools {
                    s.push_str(&format!(
                        "{:<w$}  {:<8}  {:<22}  {}\n",
                        t.name,
                        t.version,
                        t.category.join(","),
                        t.description
                    ));
                }
                s.push_str(&format!("{} tools\n", list.count));
                output::text(&s);
            }
            Ok(0)
        }
        Command::Show { tool } => {
            let v = ops::show(&ctx, &g.role, &tool)?;
            if g.json {
                output::json(&v);
            } else {
                let yaml = serde_saphyr::to_string(&v).unwrap_or_default();
                output::text(&yaml);
            }
            Ok(0)
        }
        Command::Validate { tools, strict } => {
            let report = ops::validate(&ctx, &tools, strict)?;
            if g.json {
                output::json(&report);
            } else {
                for d in &report.diagnostics {
                    output::raw_err(format!("{d}\n").as_bytes());
                }
                output::text(&format!(
                    "{} manifests checked ({}), policies {}: {} errors, {} warnings",
                    report.checked,
                    if report.ok { "ok" } else { "FAILED" },
                    report.policies,
                    report.errors,
                    report.warnings
                ));
            }
            Ok(if report.ok {
                0
            } else {
                i32::from(code::DATA_ERR)
            })
        }
        Command::Status => {
            let s = ops::status(&ctx, &g.role)?;
            if g.json {
                output::json(&s);
            } else {
                let mut t = format!(
                    "gathm {}\nhome:      {}\ntools:     {} found in {}\npolicies:  {}\nrole:      {}\ncache:     {} active entries, {} expired, {} bytes\n",
                    s.version,
                    s.home,
                    s.tools,
                    s.tools_path.join(":"),
                    s.policies,
                    s.role,
                    s.cache.active,
                    s.cache.expired,
                    s.cache.size_bytes
                );
                if s.manifest_problems > 0 {
                    t.push_str(&format!(
                        "manifests: {} problems (run `gathm validate`)\n",
                        s.manifest_problems
                    ));
                }
                if s.breakers.is_empty() {
                    t.push_str("breakers:  all closed\n");
                }
                for b in &s.breakers {
                    t.push_str(&format!(
                        "breaker:   {} is {} ({} failures)\n",
                        b.tool, b.state, b.failures
                    ));
                }
                output::text(&t);
            }
            Ok(0)
        }
        Command::Health { tool } => health_cmd(&ctx, &g, tool.as_deref().unwrap_or("all"), false),
        Command::Heal { tool } => health_cmd(&ctx, &g, &tool, true),
        Command::Breaker(BreakerCmd::Status { tool }) => {
            let list = ops::breaker_status(&ctx, tool.as_deref())?;
            if g.json {
                if tool.is_some() {
                    output::json(&list[0]);
                } else {
                    output::json(&list);
                }
            } else if list.is_empty() {
                output::text("no breaker state recorded (all closed)");
            } else {
                let mut s = String::new();
                for b in &list {
                    s.push_str(&format!(
                        "{}  {}  failures={} (threshold {}){}\n",
                        b.tool,
                        b.state,
                        b.failures,
                        b.failure_threshold,
                        b.retry_in
                            .map(|r| format!("  probe in {r:.0} s"))
                            .unwrap_or_default()
                    ));
                }
                output::text(&s);
            }
            Ok(0)
        }
        Command::Breaker(BreakerCmd::Reset { tool }) => {
            let reset = ops::breaker_reset(&ctx, &tool)?;
            if g.json {
                output::json(&serde_json::json!({"reset": reset}));
            } else {
                output::text(&format!(
                    "reset: {}",
                    if reset.is_empty() {
                        "nothing".into()
                    } else {
                        reset.join(", ")
                    }
                ));
            }
            Ok(0)
        }
        Command::Cache { cmd } => {
            let v = match cmd.unwrap_or(CacheCmd::Stats) {
                CacheCmd::Stats => serde_json::to_value(ops::cache_stats(&ctx)?),
                CacheCmd::Clear => serde_json::to_value(ops::cache_change(&ctx, "clear", None)?),
                CacheCmd::Purge => serde_json::to_value(ops::cache_change(&ctx, "purge", None)?),
                CacheCmd::Invalidate { tool } => {
                    serde_json::to_value(ops::cache_change(&ctx, "invalidate", Some(&tool))?)
                }
            }
            .map_err(|e| Error::Internal(e.to_string()))?;
            if g.json {
                output::json(&v);
            } else {
                let mut s = String::new();
                if let serde_json::Value::Object(o) = &v {
                    for (k, val) in o {
                        s.push_str(&format!("{k}: {val}\n"));
                    }
                }
                output::text(&s);
            }
            Ok(0)
        }
        Command::Policy(PolicyCmd::Check {
            tool,
            args,
            approve,
        }) => {
            let c = ops::policy_check(&ctx, &g.role, &tool, &args, approve)?;
            if g.json {
                output::json(&c);
            } else {
                let verdict = serde_json::to_value(c.decision.decision).unwrap_or_default();
                output::text(&format!(
                    "{}: {}\nrule: {}\npolicies: {}",
                    verdict.as_str().unwrap_or(""),
                    c.decision.message,
                    c.decision.rule,
                    c.policies
                ));
            }
            Ok(if c.decision.allowed() {
                0
            } else {
                i32::from(code::NO_PERM)
            })
        }
        Command::Policy(PolicyCmd::Show) => {
            let v = ops::policy_show(&ctx)?;
            if g.json {
                output::json(&v);
            } else {
                output::text(&format!("# source: {}", v["source"].as_str().unwrap_or("")));
                output::text(&serde_saphyr::to_string(&v["policy"]).unwrap_or_default());
            }
            Ok(0)
        }
        Command::Schedule(cmd) => crate::schedule::commands::command(&ctx, &g, cmd),
        Command::Serve { host, port } => {
            crate::server::serve(ctx, crate::server::Options::new(host, port))
        }
        Command::Mcp { approve_tools } => crate::mcp::serve(ctx, &g.role, approve_tools),
        Command::Completions { .. } | Command::Schema { .. } => Ok(0),
    }
}

fn health_cmd(ctx: &Context, g: &Global, which: &str, heal: bool) -> Result<i32> {
    let tools = if which == "all" {
        ctx.search.scan().tools
    } else {
        vec![ops::find(ctx, which)?]
    };
    let results = health::check_all(ctx, &tools);
    let mut healed = Vec::new();
    if heal {
        for h in &results {
            if health::healthy_ignoring_breaker(h) {
                ops::breaker_reset(ctx, &h.tool)?;
                healed.push(h.tool.clone());
            }
        }
    }
    let unhealthy = results
        .iter()
        .filter(|h| h.status == health::Status::Unhealthy)
        .count();
    if g.json {
        if heal {
            output::json(&serde_json::json!({"healed": healed, "health": results}));
        } else if which == "all" {
            output::json(&results);
        } else {
            output::json(&results[0]);
        }
    } else {
        let mut s = String::new();
        for h in &results {
            s.push_str(&format!(
                "{:<16} {:<9} breaker={}\n",
                h.tool,
                format!("{:?}", h.status).to_lowercase(),
                h.breaker
            ));
            for i in &h.issues {
                s.push_str(&format!("    - {i}\n"));
            }
        }
        if heal {
            s.push_str(&format!(
                "healed (breaker reset): {}\n",
                if healed.is_empty() {
                    "none".into()
                } else {
                    healed.join(", ")
                }
            ));
        }
        output::text(&s);
    }
    Ok(if unhealthy > 0 { 1 } else { 0 })
}

fn parallel_cmd(ctx: &Context, g: &Global, a: ParallelArgs) -> Result<i32> {
    let words = a
        .items
        .into_iter()
        .map(|w| {
            w.into_string()
                .map_err(|_| Error::Usage("parallel: arguments must be UTF-8".into()))
        })
        .collect::<Result<Vec<String>>>()?;
    let items = parallel::parse_cli(&words)?;
    runner::install_signal_flags();
    let opts = parallel::Options {
        jobs: a.jobs.map_or_else(slots::default_jobs, |j| j as usize),
        progress: !g.json && !g.quiet && std::io::stderr().is_terminal(),
        member: Member {
            role: g.role.clone(),
            approved: a.approve,
            ..Member::new("parallel")
        },
    };
    let text = !g.json;
    let quiet = g.quiet;
    let results = parallel::run_ordered(ctx, &items, &opts, &mut |i, env| {
        if !text || (quiet && env.status == RunStatus::Success) {
            return;
        }
        output::raw_out(
            format!("==> {} ({})\n", items[i].display(), parallel::verdict(env)).as_bytes(),
        );
        output::raw_out(env.output.as_bytes());
        if !env.output.is_empty() && !env.output.ends_with('\n') {
            output::raw_out(b"\n");
        }
        output::raw_err(env.error.as_bytes());
    });
    let code = parallel::exit_code(&results);
    if g.json {
        output::json(&results);
    } else if code != 0 {
        // Piped output carries nothing but results unless something failed.
        let failed = results
            .iter()
            .filter(|e| e.status != RunStatus::Success)
            .count();
        output::raw_err(
            format!(
                "gathm: parallel: {} items, {failed} failed; exit {code}\n",
                results.len()
            )
            .as_bytes(),
        );
    }
    Ok(code)
}

fn chain_cmd(ctx: &Context, g: &Global, a: ChainArgs) -> Result<i32> {
    let steps = chain::parse_spec(&a.steps)?;
    if let Some(t) = a.timeout
        && !(t > 0.0 && t.is_finite())
    {
        return Err(Error::Usage(
            "--timeout must be a positive number of seconds".into(),
        ));
    }
    runner::install_signal_flags();
    let opts = chain::Options {
        member: Member {
            role: g.role.clone(),
            approved: a.approve,
            ..Member::new("chain")
        },
        stdin: if std::io::stdin().is_terminal() {
            Stdin::Null
        } else {
            Stdin::Inherit
        },
        timeout: a.timeout,
    };
    let r = chain::run(ctx, &steps, &opts);
    if g.json {
        output::json(&r);
        return Ok(r.exit_code);
    }
    let failed = r.failed_step.is_some();
    if !g.quiet || failed {
        for e in &r.steps {
            output::raw_err(e.error.as_bytes());
        }
    }
    if let Some(n) = r.failed_step {
        let e = &r.steps[n - 1];
        output::raw_out(e.output.as_bytes());
        output::error(&format!(
            "chain failed at step {n} of {} ({}): {}",
            steps.len(),
            steps[n - 1].tool,
            parallel::verdict(e)
        ));
    } else if !g.quiet
        && let Some(last) = r.steps.last()
    {
        output::raw_out(last.output.as_bytes());
    }
    Ok(r.exit_code)
}

fn read_pipeline(
    file: &std::path::Path,
) -> std::result::Result<pipeline::Pipeline, Vec<crate::manifest::Diagnostic>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![crate::manifest::Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the pipeline: {e}"),
        }]
    })?;
    pipeline::parse(file, &text)
}

fn print_diagnostics(diags: &[crate::manifest::Diagnostic]) {
    for d in diags {
        output::raw_err(format!("{d}\n").as_bytes());
    }
}

fn pipeline_cmd(ctx: &Context, g: &Global, cmd: PipelineCmd) -> Result<i32> {
    match cmd {
        PipelineCmd::Validate { file } => {
            let (steps, order, diags) = match read_pipeline(&file) {
                Ok(p) => {
                    // The order is quadratic: only for pipelines within the limit.
                    let order: Vec<String> = if p.steps.len() <= pipeline::MAX_STEPS {
                        pipeline::order(&p)
                            .iter()
                            .map(|&i| p.steps[i].id.clone())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (p.steps.len(), order, pipeline::validate(ctx, &p))
                }
                Err(d) => (0, Vec::new(), d),
            };
            let ok = diags.is_empty();
            if g.json {
                output::json(&serde_json::json!({
                    "ok": ok,
                    "file": file,
                    "steps": steps,
                    "order": order,
                    "diagnostics": diags,
                }));
            } else {
                print_diagnostics(&diags);
                if ok {
                    output::text(&format!("{}: ok ({steps} steps)", file.display()));
                }
            }
            Ok(if ok { 0 } else { i32::from(code::DATA_ERR) })
        }
        PipelineCmd::Run {
            file,
            jobs,
            approve,
        } => {
            let p = match read_pipeline(&file) {
                Ok(p) => p,
                Err(diagnostics) => {
                    let r = pipeline::PipelineResult {
                        name: None,
                        status: pipeline::PipelineStatus::Invalid,
                        exit_code: i32::from(code::DATA_ERR),
                        duration_ms: 0,
                        steps: Vec::new(),
                        diagnostics,
                    };
                    if g.json {
                        output::json(&r);
                    } else {
                        print_diagnostics(&r.diagnostics);
                    }
                    return Ok(r.exit_code);
                }
            };
            runner::install_signal_flags();
            let opts = pipeline::Options {
                jobs: jobs.map_or_else(slots::default_jobs, |j| j as usize),
                member: Member {
                    role: g.role.clone(),
                    approved: approve,
                    ..Member::new(pipeline::actor_for(&file))
                },
            };
            let live = !g.json && !g.quiet && std::io::stderr().is_terminal();
            let on_event = |e: &pipeline::Event| {
                if !live {
                    return;
                }
                let line = match e {
                    pipeline::Event::StepStarted { id, tool } => format!("started  {id} ({tool})"),
                    pipeline::Event::StepRetrying {
                        id,
                        attempt,
                        exit_code,
                        delay_ms,
                    } => format!(
                        "retrying {id}: attempt {attempt} exited {exit_code}; next in {delay_ms} ms"
                    ),
                    pipeline::Event::StepFinished {
                        id,
                        status,
                        exit_code,
                        duration_ms,
                        ..
                    } => format!(
                        "{:<8} {id} (exit {}, {duration_ms} ms)",
                        status.as_str(),
                        exit_code.map_or_else(|| "-".to_string(), |c| c.to_string())
                    ),
                };
                output::raw_err(format!("gathm: {line}\n").as_bytes());
            };
            let r = pipeline::run(ctx, &p, &opts, &on_event);
            if g.json {
                output::json(&r);
                return Ok(r.exit_code);
            }
            print_diagnostics(&r.diagnostics);
            if r.status == pipeline::PipelineStatus::Invalid {
                return Ok(r.exit_code);
            }
            if !g.quiet || r.exit_code != 0 {
                output::text(&pipeline::table(&r));
                for s in &r.steps {
                    if s.status == pipeline::StepStatus::Failed
                        && let Some(env) = &s.envelope
                    {
                        output::raw_err(
                            format!("--- step {} ({}) stderr:\n", s.id, s.tool).as_bytes(),
                        );
                        output::raw_err(env.error.as_bytes());
                    }
                }
            }
            Ok(r.exit_code)
        }
    }
}

fn run_cmd(ctx: &Context, g: &Global, a: RunArgs) -> Result<i32> {
    let mut argv = a.command.into_iter();
    let tool = argv
        .next()
        .ok_or_else(|| Error::Usage("missing tool name".into()))?
        .into_string()
        .map_err(|_| Error::Usage("tool name is not UTF-8".into()))?;
    runner::install_signal_flags();
    let mut req = RunRequest::new(&tool, argv.collect(), &g.role);
    req.approved = a.approve;
    req.use_cache = !a.no_cache;
    req.refresh = a.refresh;
    req.timeout = a.timeout;
    req.group_wait = run::GroupWait {
        no_wait: a.no_wait,
        timeout: a.wait_timeout,
    };
    req.stdin = Stdin::Inherit;
    let live = !g.json && !g.quiet;
    if live {
        req.sink = Some(Arc::new(StdSink));
    }
    req.notes = !g.json && !g.quiet;
    if !g.json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        req.prompt = Some(Arc::new(|tool: &str, role: &str| {
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "gathm: {tool} requires approval for role {role}. Run it? [y/N] "
            );
            let _ = err.flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
        }));
    }
    if let Some(t) = a.timeout
        && !(t > 0.0 && t.is_finite())
    {
        return Err(Error::Usage(
            "--timeout must be a positive number of seconds".into(),
        ));
    }
    if let Some(t) = a.wait_timeout
        && !(t >= 0.0 && t.is_finite())
    {
        return Err(Error::Usage(
            "--wait-timeout must be a number of seconds >= 0".into(),
        ));
    }
    let env = run::run(ctx, &req);
    print_envelope(g, &env, live);
    Ok(env.exit_code)
}

/// Print a run's result for the CLI's modes.
fn print_envelope(g: &Global, env: &Envelope, streamed: bool) {
    if g.json {
        output::json(env);
        return;
    }
    let ran = env.attempts.iter().any(|a| a.exit_code.is_some());
    if g.quiet {
        if env.status == RunStatus::Error {
            output::raw_out(env.output.as_bytes());
            output::raw_err(env.error.as_bytes());
            if ran && let Some(m) = &env.message {
                output::error(m);
            }
        }
        return;
    }
    if !streamed || !ran {
        // Nothing was streamed: refusals (policy, rate limit, not found, breaker).
        output::raw_err(env.error.as_bytes());
    } else if let Some(m) = &env.message {
        output::error(m);
    }
}
