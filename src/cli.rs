//! The command line (clap derive): argv only; no behaviour lives here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

/// The top-level parser.
#[derive(Debug, Parser)]
#[command(
    name = "gathm",
    version,
    about = "Discover tools described by tool.yaml manifests and run them behind a circuit breaker, fallbacks, a result cache, policies and rate limits.",
    after_help = EXIT_CODES_HELP,
    args_conflicts_with_subcommands = false,
    subcommand_required = true
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after the command name (never after a tool name).
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print a run's output only if it failed (for cron).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Role for policy decisions.
    #[arg(long, global = true, env = "GATHM_ROLE", default_value = "admin")]
    pub role: String,
    /// Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools).
    #[arg(long = "tools-dir", global = true, value_name = "DIR")]
    pub tools_dir: Vec<PathBuf>,
    /// Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in).
    #[arg(long, global = true, value_name = "FILE")]
    pub policies: Option<PathBuf>,
    /// Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Options of `run` (also used by the `gathm TOOL` shortcut).
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Neither read nor write the result cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Ignore a cached result but store the new one.
    #[arg(long)]
    pub refresh: bool,
    /// Kill the tool's process group after SECS seconds (overrides the manifest).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Approve a tool that the role's policy marks `requires_approval`.
    #[arg(long)]
    pub approve: bool,
    /// Exit 75 at once if the tool's concurrency group is full, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Wait at most SECS seconds for a concurrency-group slot, then exit 75.
    #[arg(long, value_name = "SECS")]
    pub wait_timeout: Option<f64>,
    /// The tool, then its arguments, passed to it untouched.
    #[arg(
        value_name = "TOOL [ARGS]...",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// `schema` kinds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// tool.yaml
    Tool,
    /// policies.yaml
    Policies,
    /// gathm.yaml (schedules and groups)
    Config,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tools the role may discover.
    List {
        /// Only tools of this category.
        #[arg(long)]
        category: Option<String>,
    },
    /// Show a tool's whole manifest.
    Show {
        /// Tool name.
        tool: String,
    },
    /// Check manifests (file, line and column), the fallback graph and the policies.
    Validate {
        /// Only these tools (default: all).
        tools: Vec<String>,
        /// Treat warnings (unknown keys, cycles, shadowed tools) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the JSON Schema of tool.yaml or policies.yaml.
    Schema {
        /// Which file.
        kind: SchemaKind,
    },
    /// Run a tool: gathm's options first, then TOOL and its arguments.
    Run(RunArgs),
    /// Version, paths, tools, open breakers, cache.
    Status,
    /// Print a shell completion script.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Check executables, system dependencies, API health endpoints and breakers.
    Health {
        /// A tool, or `all` (default).
        tool: Option<String>,
    },
    /// Re-check a tool (or `all`) and reset the breaker of each healthy one.
    Heal {
        /// A tool, or `all`.
        tool: String,
    },
    /// Circuit-breaker state.
    #[command(subcommand)]
    Breaker(BreakerCmd),
    /// The result cache.
    Cache {
        /// What to do (default: stats).
        #[command(subcommand)]
        cmd: Option<CacheCmd>,
    },
    /// Policy decisions and the effective policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Run several tools at once; output grouped per tool, in the order given.
    #[command(after_help = PARALLEL_HELP)]
    Parallel(ParallelArgs),
    /// Run tools one after another, each step's stdout feeding the next step's stdin.
    #[command(after_help = CHAIN_HELP)]
    Chain(ChainArgs),
    /// Run or check a DAG of steps described in a YAML file.
    #[command(subcommand, after_help = PIPELINE_HELP)]
    Pipeline(PipelineCmd),
    /// Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
    /// Serve the HTTP API (see README, "gathm serve").
    Serve {
        /// Address to bind.
        #[arg(long, env = "GATHM_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Port to bind (0: any free port; the address is printed first).
        #[arg(long, env = "GATHM_PORT", default_value_t = 8080)]
        port: u16,
        /// Share breakers, rate limits, group slots and jobs with a fleet on
        /// this Redis (redis://[user:pass@]host:port/db or rediss://);
        /// overrides GATHM_STATE_URL and state.url in gathm.yaml.
        #[arg(long, value_name = "URL")]
        state_url: Option<String>,
    },
    /// Create a new tool: NAME/tool.yaml and an executable script that handles --help.
    #[command(name = "new-tool")]
    NewTool {
        /// Tool name (letters, digits, '-', '_', '.').
        name: String,
        /// Category: security, networking, data, media, utility, finance, science or productivity.
        #[arg(long, default_value = "utility")]
        category: String,
        /// Script language.
        #[arg(long, value_enum, default_value = "bash")]
        lang: crate::newtool::Lang,
        /// Create it under DIR (default: the first directory of the tool search path).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// One-line description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Pick the tool for a plain-language request (keyword scoring; no model).
    #[command(after_help = ASK_HELP)]
    Ask(AskArgs),
    /// Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent).
    Init {
        /// Copy the tools from DIR (default: the repository's tools/ found beside the executable).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Symlink each tool instead of copying it.
        #[arg(long)]
        link: bool,
    },
    /// Run the health checks periodically, feeding the breakers; log transitions.
    Monitor {
        /// Seconds between rounds (default: $GATHM_MONITOR_INTERVAL, else 30).
        #[arg(long, value_name = "S")]
        interval: Option<f64>,
        /// One round, then exit (1 if any tool is unhealthy).
        #[arg(long)]
        once: bool,
        /// Only these tools (default: every tool, rescanned each round).
        tools: Vec<String>,
    },
    /// For the shell completion scripts: print tool names, one a line.
    #[command(name = "__complete", hide = true)]
    Complete {
        /// What to list (`tools`).
        what: String,
    },
    /// Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP").
    Mcp {
        /// Approve the tools matching GLOB that the role's policy marks `requires_approval` (repeatable).
        #[arg(long = "approve-tools", value_name = "GLOB")]
        approve_tools: Vec<String>,
    },
    /// `gathm TOOL ARGS…` is short for `gathm run TOOL ARGS…`.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

const PARALLEL_HELP: &str = "\
Forms:
  gathm parallel 'dns a.com, httpprobe https://b.com'
      one argument: items separated by commas, each split into words
      (single and double quotes and backslashes work as in a shell;
      nothing is expanded)
  gathm parallel -j 4 -- dns a.com ::: httpprobe https://b.com
      several arguments: items separated by ':::', passed untouched

Each item's output is printed under a header `==> ITEM (exit N, T ms)`,
in the order given. Exit status: 0 if every item succeeded, 130 if
interrupted, otherwise the exit code of the first failing item in the
order given (127 for a missing tool, 77 for a policy refusal).";

const CHAIN_HELP: &str = "\
Example: gathm chain 'geo -w | ipinfo'
Steps are separated by '|' (quote a literal '|'). Each step's stdout is the
next step's stdin. In a step's arguments, {prev} is replaced by the previous
step's trimmed stdout inside that one argument, and an argument that is
exactly {prev_words} becomes that output split on whitespace. The first step
reads gathm's stdin when it is not a terminal. The chain stops at the first
failing step, names it on stderr and exits with its code.";

const PIPELINE_HELP: &str = "\
File: name, timeout (seconds), steps: [{id, tool, args, needs, when, retry:
{attempts, delay, backoff, max_delay}, timeout, continue_on_error}].
Arguments may use ${steps.ID.output} (trimmed stdout), ${steps.ID.exit_code}
and ${steps.ID.status}, each inside one argument. `when` examples:
  steps.a.status == 'success'    steps.a.exit_code != 0 && !failure()
A step without `when` runs only if every step it needs succeeded.
Exit status: 65 invalid file (file:line:col on stderr), 130 interrupted,
124 pipeline timeout, else the code of the first failed step (file order)
without continue_on_error, else 0.";

const ASK_HELP: &str = "\
Examples:
  gathm ask what is the weather in Paris
  gathm ask --explain resolve the MX records of a domain
  gathm ask --run resolve mx records -- example.com -t MX

Words before `--` are the request; with --run, the words after `--` are
passed to the chosen tool as its arguments (after a confirmation at a
terminal; --yes skips it). Exit status: 0 when a tool matched, 1 when none
did; with --run, the tool's exit status.";

/// Options of `ask`.
#[derive(Debug, Args, Clone)]
pub struct AskArgs {
    /// Show how each candidate scored.
    #[arg(long)]
    pub explain: bool,
    /// Run the best match with the words after `--` as its arguments.
    #[arg(long)]
    pub run: bool,
    /// With --run: do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The request, then optionally `-- ARGS…` for --run.
    #[arg(value_name = "QUERY", required = true, num_args = 1.., trailing_var_arg = true)]
    pub query: Vec<String>,
}

/// Options of `parallel`.
#[derive(Debug, Args, Clone)]
pub struct ParallelArgs {
    /// At most N tools at once (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Approve tools that the role's policy marks `requires_approval`.
    #[arg(long)]
    pub approve: bool,
    /// One string of comma-separated items, or `TOOL ARGS… ::: TOOL ARGS…`.
    #[arg(
        value_name = "ITEMS",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub items: Vec<OsString>,
}

/// Options of `chain`.
#[derive(Debug, Args, Clone)]
pub struct ChainArgs {
    /// Kill each step's process group after SECS seconds (overrides the manifest).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Approve tools that the role's policy marks `requires_approval`.
    #[arg(long)]
    pub approve: bool,
    /// The steps, `'tool args | tool args'` (one argument).
    #[arg(value_name = "STEPS")]
    pub steps: String,
}

/// `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Every schedule with its next and last run and the last outcome.
    List,
    /// The next fire times of a schedule.
    Next {
        /// Schedule name.
        name: String,
        /// How many.
        #[arg(short = 'n', default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
    },
    /// Check gathm.yaml (exit 65 on problems, each with file:line:col).
    Validate,
    /// Run a schedule now, by hand (with its overlap rule).
    Run {
        /// Schedule name.
        name: String,
    },
    /// Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab.
    Tick,
}

/// `pipeline` subcommands.
#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Validate, then run the steps (independent ones in parallel).
    Run {
        /// The pipeline file (YAML or JSON).
        file: PathBuf,
        /// At most N steps at once (default: the number of CPUs).
        #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
        /// Approve tools that the role's policy marks `requires_approval`.
        #[arg(long)]
        approve: bool,
    },
    /// Check the file without running anything (exit 65 on problems).
    Validate {
        /// The pipeline file (YAML or JSON).
        file: PathBuf,
    },
}

/// `breaker` subcommands.
#[derive(Debug, Subcommand)]
pub enum BreakerCmd {
    /// Show breaker state (all tools with state, or one).
    Status {
        /// Tool name.
        tool: Option<String>,
    },
    /// Reset a tool's breaker to closed (`all` for every one).
    Reset {
        /// Tool name or `all`.
        tool: String,
    },
}

/// `cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCmd {
    /// Entry counts and sizes.
    Stats,
    /// Remove every entry (empty the cache).
    Clear,
    /// Remove expired entries only.
    Purge,
    /// Remove one tool's entries.
    Invalidate {
        /// Tool name.
        tool: String,
    },
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Print the decision for a role and tool, and the rule behind it.
    Check {
        /// Tool name.
        tool: String,
        /// Arguments to validate too.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// Treat the call as approved.
        #[arg(long)]
        approve: bool,
    },
    /// Print the effective policy and where it came from.
    Show,
}

/// Subcommand names: anything else in command position is a tool (the shortcut).
pub const SUBCOMMANDS: [&str; 24] = [
    "mcp",
    "schedule",
    "monitor",
    "new-tool",
    "ask",
    "init",
    "__complete",
    "list",
    "show",
    "validate",
    "schema",
    "run",
    "status",
    "completions",
    "health",
    "heal",
    "breaker",
    "cache",
    "policy",
    "serve",
    "parallel",
    "chain",
    "pipeline",
    "help",
];

/// The hot path without clap: `gathm [GLOBAL…] [run [RUN-OPTS…]] TOOL ARGS…`.
///
/// Building clap's command tree costs about 0.3 ms per process; this parser
/// accepts exactly the same argv for those forms and returns `None` for
/// anything else (help, version, other commands, unknown or malformed
/// options), which then goes through clap. A unit test checks that both agree.
pub fn fast_run(args: &[OsString]) -> Option<(Global, RunArgs)> {
    let mut g = Global {
        json: false,
        quiet: false,
        role: std::env::var("GATHM_ROLE").unwrap_or_else(|_| "admin".into()),
        tools_dir: Vec::new(),
        policies: None,
        config: None,
    };
    let mut r = RunArgs::default();
    let mut saw_run = false;
    let mut i = 1;
    let value = |i: &mut usize, inline: Option<&str>| -> Option<String> {
        if let Some(v) = inline {
            return Some(v.to_string());
        }
        *i += 1;
        let v = args.get(*i)?.to_str()?;
        (!v.starts_with('-')).then(|| v.to_string())
    };
    while i < args.len() {
        let a = args[i].to_str()?;
        if !a.starts_with('-') || a == "-" {
            if !saw_run && a == "run" {
                saw_run = true;
                i += 1;
                continue;
            }
            if !saw_run && SUBCOMMANDS.contains(&a) {
                return None;
            }
            if a.is_empty() || a == "-" {
                return None;
            }
            r.command = args[i..].to_vec();
            return Some((g, r));
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (a, None),
        };
        match (flag, inline) {
            ("--json", None) => g.json = true,
            ("-q" | "--quiet", None) => g.quiet = true,
            ("--role", _) => g.role = value(&mut i, inline)?,
            ("--tools-dir", _) => g.tools_dir.push(PathBuf::from(value(&mut i, inline)?)),
            ("--policies", _) => g.policies = Some(PathBuf::from(value(&mut i, inline)?)),
            ("--config", _) => g.config = Some(PathBuf::from(value(&mut i, inline)?)),
            ("--no-cache", None) if saw_run => r.no_cache = true,
            ("--refresh", None) if saw_run => r.refresh = true,
            ("--approve", None) if saw_run => r.approve = true,
            ("--no-wait", None) if saw_run => r.no_wait = true,
            ("--wait-timeout", _) if saw_run => {
                r.wait_timeout = Some(value(&mut i, inline)?.parse().ok()?)
            }
            ("--timeout", _) if saw_run => r.timeout = Some(value(&mut i, inline)?.parse().ok()?),
            _ => return None,
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn subcommand_list_matches_clap() {
        let mut names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        names.push("help".into());
        names.sort();
        let mut ours: Vec<String> = SUBCOMMANDS.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(names, ours);
    }

    #[test]
    fn fast_path_agrees_with_clap() {
        let cases: &[&[&str]] = &[
            &["gathm", "dns", "a.com"],
            &["gathm", "run", "dns", "a b", "--json", "-t", "MX"],
            &[
                "gathm",
                "--json",
                "run",
                "--no-cache",
                "--timeout",
                "2.5",
                "ok",
                "x",
            ],
            &[
                "gathm",
                "-q",
                "--role",
                "user",
                "--tools-dir",
                "/t",
                "--tools-dir=/u",
                "ok",
            ],
            &[
                "gathm",
                "run",
                "--json",
                "--approve",
                "--refresh",
                "--policies=/p",
                "ok",
                "--",
                "-x",
            ],
            &["gathm", "--role=agent", "run", "--quiet", "t"],
            &["gathm", "run", "--timeout=1", "t", "--timeout", "9"],
        ];
        for case in cases {
            let argv: Vec<OsString> = case.iter().map(OsString::from).collect();
            let (g, r) = fast_run(&argv).unwrap_or_else(|| panic!("fast path refused {case:?}"));
            let c = Cli::try_parse_from(case.iter()).unwrap();
            let (cg, cr) = match c.command {
                Command::Run(r) => (c.global, r),
                Command::External(v) => (
                    c.global,
                    RunArgs {
                        command: v,
                        ..RunArgs::default()
                    },
                ),
                other => panic!("clap parsed {case:?} as {other:?}"),
            };
            assert_eq!(format!("{g:?}"), format!("{cg:?}"), "{case:?}");
            assert_eq!(format!("{r:?}"), format!("{cr:?}"), "{case:?}");
        }
        for refused in [
            &["gathm"][..],
            &["gathm", "--help"],
            &["gathm", "--version"],
            &["gathm", "list"],
            &["gathm", "run"],
            &["gathm", "--json"],
            &["gathm", "--bogus", "t"],
            &["gathm", "--no-cache", "t"],
            &["gathm", "run", "--timeout", "x", "t"],
            &["gathm", "--role"],
            &["gathm", "help", "run"],
        ] {
            let argv: Vec<OsString> = refused.iter().map(OsString::from).collect();
            assert!(fast_run(&argv).is_none(), "{refused:?}");
        }
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_after_the_tool_belong_to_the_tool() {
        let c = Cli::try_parse_from([
            "gathm", "run", "--json", "dns", "x.com", "--json", "-t", "MX",
        ])
        .unwrap();
        assert!(c.global.json);
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(
            r.command,
            ["dns", "x.com", "--json", "-t", "MX"].map(OsString::from)
        );
        let c = Cli::try_parse_from(["gathm", "run", "dns", "--json"]).unwrap();
        assert!(!c.global.json);
        let c = Cli::try_parse_from(["gathm", "--json", "dns", "a b"]).unwrap();
        assert!(c.global.json);
        let Command::External(v) = c.command else {
            panic!()
        };
        assert_eq!(v, ["dns", "a b"].map(OsString::from));
    }
}
