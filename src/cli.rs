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
    /// Serve the HTTP API (see README, "gathm serve").
    Serve {
        /// Address to bind.
        #[arg(long, env = "GATHM_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Port to bind (0: any free port; the address is printed first).
        #[arg(long, env = "GATHM_PORT", default_value_t = 8080)]
        port: u16,
    },
    /// `gathm TOOL ARGS…` is short for `gathm run TOOL ARGS…`.
    #[command(external_subcommand)]
    External(Vec<OsString>),
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
    /// Remove expired entries.
    Clear,
    /// Remove every entry.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
