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
use crate::clock;
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
        warn_missing_dirs(&g);
        let ctx = Context::new(&g.tools_dir, g.policies.as_deref()).with_config(g.config.clone());
        // `gathm TOOL` (no `run` before the tool): a near-miss of a command is a usage error.
        let tool = r.command.first().cloned().unwrap_or_default();
        let shortcut = !args
            .iter()
            .skip(1)
            .take_while(|a| **a != tool)
            .any(|a| a == "run");
        let json = g.json;
        return match run_cmd(&ctx, &g, r, shortcut) {
            Ok(c) => exit(c),
            Err(e) => report_error(json, &e),
        };
    }
    let json_wanted = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return clap_error(e, json_wanted),
    };
    let json = cli.global.json;
    match dispatch(cli) {
        Ok(c) => exit(c),
        Err(e) => report_error(json, &e),
    }
}

/// Print an error (as `{"error", "exit_code"}` on stdout under `--json`) and
/// return its exit status.
fn report_error(json: bool, e: &Error) -> i32 {
    let code = i32::from(e.exit_code());
    if json {
        output::json(&serde_json::json!({"error": e.to_string(), "exit_code": code}));
    } else {
        output::error(&e.to_string());
    }
    exit(code)
}

/// Options of `run` (they go after `run`, before the tool name).
const RUN_OPTIONS: [&str; 4] = ["--no-cache", "--refresh", "--timeout", "--approve"];
/// Options accepted anywhere before the tool name.
const GLOBAL_OPTIONS: [&str; 7] = [
    "--json",
    "--quiet",
    "--role",
    "--tools-dir",
    "--policies",
    "--help",
    "--version",
];

/// "did you mean" for an unknown option, over gathm's own options.
fn option_hint(bad: &str) -> Option<String> {
    let flag = bad.split('=').next().unwrap_or(bad);
    if RUN_OPTIONS.contains(&flag) {
        return Some(format!(
            "{flag} is an option of `run`: gathm run {flag} TOOL [ARGS]..."
        ));
    }
    let all: Vec<String> = GLOBAL_OPTIONS
        .iter()
        .chain(RUN_OPTIONS.iter())
        .map(|s| s.to_string())
        .collect();
    let s = crate::registry::suggestions(flag, &all);
    s.first().map(|c| format!("did you mean {c:?}?"))
}

/// A clap parse error: help and version print as they are; a usage error
/// gets gathm's own hints (a `run` option given before the tool without
/// `run`, a near-miss option) and exits 2.
fn clap_error(e: clap::Error, json: bool) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    let mut hint = None;
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(bad)) = e.get(ContextKind::InvalidArg)
    {
        let has_tip = e.get(ContextKind::SuggestedArg).is_some();
        hint = option_hint(bad).filter(|h| !has_tip || h.contains("option of `run`"));
    }
    if json {
        // The error's first paragraph, on one line.
        let rendered = e.render().to_string();
        let msg = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg).to_string();
        output::json(&serde_json::json!({
            "error": msg,
            "hint": hint,
            "exit_code": code::USAGE,
        }));
    } else {
        let _ = e.print();
        if let Some(h) = hint {
            output::raw_err(format!("hint: {h}\n").as_bytes());
        }
    }
    exit(i32::from(code::USAGE))
}

/// A `--tools-dir` or `GATHM_TOOLS_PATH` entry that does not exist is a warning.
fn warn_missing_dirs(g: &Global) {
    let env = std::env::var("GATHM_TOOLS_PATH").ok();
    for d in crate::registry::missing_explicit_dirs(&g.tools_dir, env.as_deref()) {
        let from = if g.tools_dir.is_empty() {
            "GATHM_TOOLS_PATH"
        } else {
            "--tools-dir"
        };
        output::error(&format!(
            "warning: {from} entry {} does not exist",
            d.display()
        ));
    }
}

/// A diagnostic as `file:line:col: severity: message`, or `file: …` when the
/// position is unknown (a file that cannot be read).
fn diag_text(d: &crate::manifest::Diagnostic) -> String {
    if d.line == 0 {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        format!("{}: {sev}: {}", d.file.display(), d.message)
    } else {
        d.to_string()
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let g = cli.global;
    // Completions and schemas work without touching GATHM_HOME.
    match &cli.command {
        Command::Completions { shell } => {
            let script = completion_script(*shell);
            if g.json {
                output::json(&serde_json::json!({
                    "shell": shell.to_string(),
                    "script": script,
                }));
            } else {
                output::raw_out(script.as_bytes());
            }
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
    if !matches!(
        cli.command,
        Command::Validate { .. } | Command::Complete { .. }
    ) {
        warn_missing_dirs(&g);
    }
    let ctx = Context::new(&g.tools_dir, g.policies.as_deref()).with_config(g.config.clone());
    match cli.command {
        Command::Run(args) => run_cmd(&ctx, &g, args, false),
        Command::External(argv) => run_cmd(
            &ctx,
            &g,
            RunArgs {
                command: argv,
                ..RunArgs::default()
            },
            true,
        ),
        Command::NewTool {
            name,
            category,
            lang,
            dir,
            description,
        } => new_tool_cmd(
            &ctx,
            &g,
            crate::newtool::Options {
                name,
                category: Some(category),
                lang,
                dir,
                description,
            },
        ),
        Command::Ask(a) => ask_cmd(&ctx, &g, a),
        Command::Init { from, link } => {
            let r = crate::init::init(&ctx, from.as_deref(), link)?;
            if g.json {
                output::json(&r);
            } else {
                let mut s = format!(
                    "{}: {} tools installed ({}) from {}, {} already there; policies.yaml {}\n",
                    r.home.display(),
                    r.installed.len(),
                    if r.linked { "linked" } else { "copied" },
                    r.source.display(),
                    r.kept.len(),
                    r.policies
                );
                s.push_str("next: gathm list\n");
                output::text(&s);
            }
            Ok(0)
        }
        Command::Monitor {
            interval,
            once,
            tools,
        } => monitor_cmd(&ctx, &g, interval, once, &tools),
        Command::Complete { what } => {
            if what == "tools" {
                let mut s = String::new();
                for n in crate::complete::tool_names(&ctx) {
                    s.push_str(&n);
                    s.push('\n');
                }
                output::raw_out(s.as_bytes());
            }
            Ok(0)
        }
        Command::Parallel(a) => parallel_cmd(&ctx, &g, a),
        Command::Chain(a) => chain_cmd(&ctx, &g, a),
        Command::Pipeline(cmd) => pipeline_cmd(&ctx, &g, cmd),
        Command::List { category } => {
            if let Some(c) = &category {
                crate::newtool::check_category(c)?;
            }
            let (tools, diags) = ops::list_tools(&ctx, &g.role, category.as_deref())?;
            for d in &diags {
                output::error(&diag_text(d));
            }
            if tools.is_empty() && category.is_none() {
                output::error(&format!(
                    "no tools found; looked in {}\n{}",
                    ctx.search.describe_dirs(),
                    crate::registry::ADD_TOOLS_HINT
                ));
            }
            if g.json {
                // The reference's shape: a JSON array of tools (HTTP keeps
                // `{"tools", "count"}`).
                let tools: Vec<_> = tools.iter().map(ops::summary).collect();
                output::json(&tools);
            } else {
                output::text(&crate::views::list(&tools));
            }
            Ok(0)
        }
        Command::Show { tool } => {
            let mut v = ops::show(&ctx, &g.role, &tool)?;
            if g.json {
                let t = ops::find(&ctx, &tool)?;
                v["effective"] =
                    serde_json::to_value(crate::views::effective(&ctx, &t)).unwrap_or_default();
                output::json(&v);
            } else {
                let t = ops::find(&ctx, &tool)?;
                output::text(&crate::views::show(&ctx, &t));
            }
            Ok(0)
        }
        Command::Validate { tools, strict } => {
            let mut report = ops::validate(&ctx, &tools, strict)?;
            let env = std::env::var("GATHM_TOOLS_PATH").ok();
            for d in crate::registry::missing_explicit_dirs(&g.tools_dir, env.as_deref()) {
                report.diagnostics.push(crate::manifest::Diagnostic {
                    severity: if strict {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    file: d,
                    line: 0,
                    column: 0,
                    message: "tools directory does not exist".into(),
                });
                if strict {
                    report.errors += 1;
                    report.ok = false;
                } else {
                    report.warnings += 1;
                }
            }
            if g.json {
                output::json(&report);
            } else {
                for d in &report.diagnostics {
                    output::raw_err(format!("{}\n", diag_text(d)).as_bytes());
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
                    ctx.search.describe_dirs(),
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
                for d in s.state.iter().filter(|d| !d.writable) {
                    t.push_str(&format!(
                        "state:     {} NOT WRITABLE: {}\n",
                        d.part,
                        d.error.as_deref().unwrap_or("")
                    ));
                }
                if s.state.iter().all(|d| d.writable) {
                    t.push_str(&format!("state:     writable ({})\n", s.home));
                }
                if s.shared.backend.kind != "local" {
                    let fallback = if s.shared.backend.fallback {
                        ", falls back to local"
                    } else {
                        ""
                    };
                    match &s.shared.error {
                        None => t.push_str(&format!(
                            "shared:    {} {} (reachable{fallback})\n",
                            s.shared.backend.kind, s.shared.backend.location
                        )),
                        Some(e) => t.push_str(&format!(
                            "shared:    {} UNREACHABLE{fallback}: {e}\n",
                            s.shared.backend.kind
                        )),
                    }
                }
                for b in &s.breakers {
                    t.push_str(&format!(
                        "breaker:   {} is {} ({} failures)\n",
                        b.tool, b.state, b.failures
                    ));
                }
                output::text(&t);
            }
            Ok(
                if s.state.iter().all(|d| d.writable) && s.shared.reachable {
                    0
                } else {
                    1
                },
            )
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
                output::text(&crate::views::breakers(&list));
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
            let answer = match cmd.unwrap_or(CacheCmd::Stats) {
                CacheCmd::Stats => {
                    let stats = ops::cache_stats(&ctx)?;
                    if g.json {
                        output::json(&stats);
                    } else {
                        output::text(&crate::views::cache_stats(&stats));
                    }
                    return Ok(0);
                }
                // `clear` empties the cache, `purge` removes expired entries
                // (ops names them the other way round, as the HTTP API does).
                CacheCmd::Clear => ops::CacheAnswer {
                    action: "clear",
                    ..ops::cache_change(&ctx, "purge", None)?
                },
                CacheCmd::Purge => ops::CacheAnswer {
                    action: "purge",
                    ..ops::cache_change(&ctx, "clear", None)?
                },
                CacheCmd::Invalidate { tool } => {
                    ops::cache_change(&ctx, "invalidate", Some(&tool))?
                }
            };
            if g.json {
                output::json(&answer);
            } else {
                output::text(&format!(
                    "cache {}: {} entr{} removed{}",
                    answer.action,
                    answer.removed,
                    if answer.removed == 1 { "y" } else { "ies" },
                    answer
                        .tool
                        .as_deref()
                        .map(|t| format!(" for {t}"))
                        .unwrap_or_default()
                ));
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
        Command::Serve {
            host,
            port,
            state_url,
        } => crate::serve::serve(
            ctx.with_state_url(state_url),
            crate::serve::Options::new(host, port),
        ),
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
    // The state directory's health: on stderr (the JSON shape on stdout is
    // the reference's), and exit 1 when a part cannot be written.
    let state = ops::state_health(ctx);
    for d in state.iter().filter(|d| !d.writable) {
        output::error(&format!(
            "state: {} cannot be written: {} (the breaker, cache and logs are degraded; rate limits and required audits refuse calls)",
            d.part,
            d.error.as_deref().unwrap_or("")
        ));
    }
    let state_ok = state.iter().all(|d| d.writable);
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
        let mut s = crate::views::health(&results);
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
    Ok(if unhealthy > 0 || !state_ok { 1 } else { 0 })
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
    let approved = a.approve || approve_at_terminal(ctx, g, items.iter().map(|i| i.tool.as_str()))?;
    runner::install_signal_flags();
    let opts = parallel::Options {
        jobs: a.jobs.map_or_else(slots::default_jobs, |j| j as usize),
        progress: !g.json && !g.quiet && std::io::stderr().is_terminal(),
        member: Member {
            role: g.role.clone(),
            approved,
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
    if !g.json {
        print_warnings(&results);
    }
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

/// At a terminal (text mode), ask once for the tools of a batch that the
/// role's policy marks `requires_approval`; `true` when approved.
fn approve_at_terminal<'a>(
    ctx: &Context,
    g: &Global,
    tools: impl Iterator<Item = &'a str>,
) -> Result<bool> {
    if g.json || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let p = ctx.policies()?;
    let mut need: Vec<&str> = tools
        .filter(|t| {
            crate::policy::decide(&p, &g.role, t, crate::policy::Action::Execute, false).decision
                == crate::policy::Verdict::ApprovalRequired
        })
        .collect();
    need.sort();
    need.dedup();
    if need.is_empty() {
        return Ok(false);
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "gathm: {} require{} approval for role {}. Run {}? [y/N] ",
        need.join(", "),
        if need.len() == 1 { "s" } else { "" },
        g.role,
        if need.len() == 1 { "it" } else { "them" }
    );
    let _ = err.flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
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
    print_warnings(&r.steps);
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
        output::raw_err(format!("{}\n", diag_text(d)).as_bytes());
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
                // Each step's output under a header, as `parallel` prints
                // its items (file order; --quiet: failed steps only), then
                // the summary table.
                for s in &r.steps {
                    let Some(env) = &s.envelope else { continue };
                    if g.quiet && s.status != pipeline::StepStatus::Failed {
                        continue;
                    }
                    output::raw_out(
                        format!("==> {} ({}) ({})\n", s.id, s.tool, parallel::verdict(env))
                            .as_bytes(),
                    );
                    output::raw_out(env.output.as_bytes());
                    if !env.output.is_empty() && !env.output.ends_with('\n') {
                        output::raw_out(b"\n");
                    }
                    output::raw_err(env.error.as_bytes());
                }
                output::text(&pipeline::table(&r));
            }
            Ok(r.exit_code)
        }
    }
}

fn run_cmd(ctx: &Context, g: &Global, a: RunArgs, shortcut: bool) -> Result<i32> {
    let mut argv = a.command.into_iter();
    let tool = argv
        .next()
        .ok_or_else(|| Error::Usage("missing tool name".into()))?
        .into_string()
        .map_err(|_| Error::Usage("tool name is not UTF-8".into()))?;
    if tool.starts_with('-') {
        // An option gathm does not know, before the tool name.
        let hint = option_hint(&tool)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "unknown option {tool:?} before the tool name{hint}\nusage: gathm run [--no-cache] [--refresh] [--timeout SECS] [--approve] TOOL [ARGS]..."
        )));
    }
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
            let answer = read_answer();
            if answer.is_none() {
                let _ = writeln!(err);
            }
            answer.is_some_and(|line| matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
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
    if shortcut && env.reason == Some(crate::api::Reason::NotFound) {
        let commands: Vec<String> = crate::cli::SUBCOMMANDS
            .iter()
            .filter(|c| !c.starts_with('_'))
            .map(|c| c.to_string())
            .collect();
        if let Some(c) = crate::registry::suggestions(&tool, &commands).first() {
            return Err(Error::Usage(format!(
                "no tool or command {tool:?}; did you mean the command {c:?}?"
            )));
        }
    }
    print_envelope(g, &env, live);
    if !g.json
        && env.reason == Some(crate::api::Reason::NotExecutable)
        && let Ok(Some(t)) = ctx.search.find(&tool)
    {
        // Say why it cannot start, where the manifest sets it.
        for (key, problem) in crate::checks::start_problems(&t) {
            output::error(&format!("hint: {problem} ({})", crate::checks::at(&t, key)));
        }
    }
    Ok(env.exit_code)
}

/// One line from the terminal, or `None` at Ctrl-C (the signal flag is set:
/// `poll` is not restarted after a signal, a blocking read would be) or EOF.
fn read_answer() -> Option<String> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        if runner::interrupted() {
            return None;
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    let mut line = String::new();
    match stdin.lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

/// State warnings of several runs, each distinct one once (text mode).
fn print_warnings(envs: &[Envelope]) {
    let mut seen: Vec<&str> = Vec::new();
    for w in envs.iter().flat_map(|e| e.warnings.iter()) {
        if !seen.contains(&w.as_str()) {
            seen.push(w);
            output::error(&format!("warning: {w}"));
        }
    }
}

/// The completion script for a shell: clap's, plus the layer that completes
/// tool names (bash, zsh, fish).
pub fn completion_script(shell: clap_complete::Shell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gathm", &mut buf);
    let generated = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        clap_complete::Shell::Bash => generated + &crate::complete::bash(),
        clap_complete::Shell::Fish => crate::complete::fish(&generated),
        clap_complete::Shell::Zsh => crate::complete::zsh(&generated),
        _ => generated,
    }
}

fn new_tool_cmd(ctx: &Context, g: &Global, o: crate::newtool::Options) -> Result<i32> {
    let c = crate::newtool::create(ctx, &o)?;
    if g.json {
        output::json(&c);
        return Ok(0);
    }
    let mut s = format!(
        "created {}\n        {}\n",
        c.manifest.display(),
        c.script.display()
    );
    if c.on_search_path {
        s.push_str(&format!(
            "try it:  gathm run {n} --help; gathm validate --strict {n}\n",
            n = c.name
        ));
    } else {
        let parent = c.dir.parent().unwrap_or(&c.dir);
        s.push_str(&format!(
            "{} is not on the tool search path: gathm --tools-dir {} run {} --help\n",
            parent.display(),
            parent.display(),
            c.name
        ));
    }
    s.push_str("next: edit the description, input_schema and the script\n");
    output::text(&s);
    Ok(0)
}

fn ask_cmd(ctx: &Context, g: &Global, a: crate::cli::AskArgs) -> Result<i32> {
    let (query, tool_args): (Vec<String>, Vec<String>) =
        match a.query.iter().position(|w| w == "--") {
            Some(i) => (a.query[..i].to_vec(), a.query[i + 1..].to_vec()),
            None => (a.query.clone(), Vec::new()),
        };
    let q = query.join(" ");
    if q.trim().is_empty() {
        return Err(Error::Usage("ask: the request is empty".into()));
    }
    let answer = crate::ask::ask(ctx, &g.role, &q)?;
    let Some(best) = answer.matched_tool.clone() else {
        if g.json {
            output::json(&answer);
        } else {
            output::error(&format!(
                "no matching tool for {q:?}; see `gathm list` for what is available"
            ));
        }
        return Ok(1);
    };
    if g.json && !a.run {
        output::json(&answer);
        return Ok(0);
    }
    if !g.json {
        let mut s = format!(
            "{best}  (score {})  {}\n",
            answer.confidence,
            answer.description.as_deref().unwrap_or("")
        );
        if a.explain {
            for r in &answer.reasons {
                s.push_str(&format!("    {r}\n"));
            }
        }
        if !answer.alternatives.is_empty() {
            s.push_str("also:\n");
            for c in &answer.alternatives {
                s.push_str(&format!(
                    "  {}  (score {})  {}\n",
                    c.tool, c.score, c.description
                ));
                if a.explain {
                    for r in &c.reasons {
                        s.push_str(&format!("      {r}\n"));
                    }
                }
            }
        }
        if !a.run {
            s.push_str(&format!("run: gathm run {best} ...\n"));
        }
        if !a.run {
            output::text(&s);
        } else if !g.quiet {
            // The tool's output owns stdout.
            output::raw_err(s.as_bytes());
        }
    }
    if !a.run {
        return Ok(0);
    }
    if !a.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "gathm: run `{best}{}{}`? [y/N] ",
            if tool_args.is_empty() { "" } else { " " },
            tool_args.join(" ")
        );
        let _ = err.flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            output::error("not run");
            return Ok(1);
        }
    }
    let mut command = vec![OsString::from(&best)];
    command.extend(tool_args.into_iter().map(OsString::from));
    run_cmd(
        ctx,
        g,
        RunArgs {
            command,
            ..RunArgs::default()
        },
        false,
    )
}

/// Print a run's result for the CLI's modes.
fn print_envelope(g: &Global, env: &Envelope, streamed: bool) {
    if g.json {
        output::json(env);
        return;
    }
    // State that could not be written is never silent, not even with --quiet.
    for w in &env.warnings {
        output::error(&format!("warning: {w}"));
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

fn monitor_cmd(
    ctx: &Context,
    g: &Global,
    interval: Option<f64>,
    once: bool,
    names: &[String],
) -> Result<i32> {
    use crate::monitor;
    let interval = interval.or_else(monitor::env_interval).unwrap_or(30.0);
    if !(interval > 0.0 && interval.is_finite()) {
        return Err(Error::Usage(
            "--interval must be a positive number of seconds".into(),
        ));
    }
    let fixed: Option<Vec<crate::registry::Tool>> = if names.is_empty() {
        None
    } else {
        Some(
            names
                .iter()
                .map(|n| ops::find(ctx, n))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    runner::install_signal_flags();
    let live = !g.json && std::io::stdout().is_terminal();
    let mut recent: Vec<String> = Vec::new();
    let mut first = true;
    let mut unhealthy = false;
    let mut on_round = |r: &monitor::Round| {
        unhealthy = r
            .health
            .iter()
            .any(|h| h.status == health::Status::Unhealthy);
        if g.json {
            if once {
                output::json(r);
            } else {
                let line = serde_json::to_string(r).unwrap_or_default();
                output::raw_out(format!("{line}\n").as_bytes());
            }
        } else if live {
            recent.extend(r.transitions.iter().map(monitor::line));
            let keep = recent.len().saturating_sub(10);
            recent.drain(..keep);
            let mut s = String::new();
            if !once {
                s.push_str("\x1b[H\x1b[2J");
            }
            s.push_str(&format!(
                "gathm monitor: {} tools, every {interval} s, {}{}\n\n",
                r.health.len(),
                clock::rfc3339(clock::now()),
                if once { "" } else { " (Ctrl-C to stop)" }
            ));
            s.push_str(&monitor::table(&r.health));
            if !recent.is_empty() {
                s.push_str("\nrecent transitions:\n");
                for l in &recent {
                    s.push_str(&format!("  {l}\n"));
                }
            }
            output::raw_out(s.as_bytes());
        } else {
            let mut s = String::new();
            if first || once {
                s.push_str(&monitor::table(&r.health));
            }
            for t in &r.transitions {
                // The first round's health "transitions" are the table itself.
                if !first || t.what == "breaker" {
                    s.push_str(&monitor::line(t));
                    s.push('\n');
                }
            }
            output::raw_out(s.as_bytes());
        }
        first = false;
    };
    monitor::run_loop(
        ctx,
        fixed.as_deref(),
        interval,
        once,
        &runner::interrupted,
        &mut on_round,
    )?;
    Ok(if runner::interrupted() {
        i32::from(code::INTERRUPTED)
    } else if once && unhealthy {
        1
    } else {
        0
    })
}
