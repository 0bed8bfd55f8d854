//! `gathm chain 'geo -w | ipinfo'`: run tools one after another, each step's
//! stdout becoming the next step's stdin (PRODUCT.md §6).
//!
//! Every step goes through [`run::run`]. A step's arguments may contain
//! `{prev}`, replaced by the previous step's trimmed stdout as part of one
//! argument, or be exactly `{prev_words}`, replaced by that output split on
//! whitespace into several arguments (the reference's behaviour, which
//! appended the words to the arguments). Nothing goes through a shell. The
//! chain stops at the first failing step.

use serde::{Deserialize, Serialize};

use crate::api::{Envelope, RunStatus};
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::parallel::{not_started, run_caught};
use crate::run::Member;
use crate::runner::{self, Stdin};
use crate::words;

/// Replaced by the previous step's trimmed stdout, inside one argument.
pub const PREV: &str = "{prev}";
/// A whole argument replaced by the previous step's stdout split on whitespace.
pub const PREV_WORDS: &str = "{prev_words}";

/// One step of a chain.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[schema(as = ChainStep)]
pub struct Step {
    /// Tool name.
    pub tool: String,
    /// Its arguments; may use `{prev}` and `{prev_words}`.
    #[serde(default)]
    pub args: Vec<String>,
}

/// How to run a chain.
#[derive(Debug, Clone)]
pub struct Options {
    /// The first step's stdin (the CLI passes its own stdin when it is not a terminal).
    pub stdin: Stdin,
    /// Timeout of each step in seconds (default: the tool's own).
    pub timeout: Option<f64>,
    /// Role, approval, cancel token and actor shared by every member run.
    pub member: Member,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            member: Member::new("chain"),
            stdin: Stdin::Null,
            timeout: None,
        }
    }
}

/// The result of a chain: every step that ran (or was refused), in order.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct ChainResult {
    /// One envelope per step that was attempted.
    pub steps: Vec<Envelope>,
    /// The 1-based number of the step that failed, or null.
    pub failed_step: Option<usize>,
    /// gathm's exit code: 0, or the failing step's code.
    pub exit_code: i32,
}

/// Check where `{prev}` and `{prev_words}` may appear.
pub fn check(steps: &[Step]) -> Result<()> {
    if steps.is_empty() {
        return Err(Error::Usage("nothing to run: the chain is empty".into()));
    }
    for (n, s) in steps.iter().enumerate() {
        for a in &s.args {
            let uses = a.contains(PREV) || a.contains(PREV_WORDS);
            if n == 0 && uses {
                return Err(Error::Usage(format!(
                    "step 1 ({}) uses {PREV} or {PREV_WORDS}, but there is no previous step",
                    s.tool
                )));
            }
            if a.contains(PREV_WORDS) && a != PREV_WORDS {
                return Err(Error::Usage(format!(
                    "step {} ({}): {PREV_WORDS} must be a whole argument (use {PREV} inside one)",
                    n + 1,
                    s.tool
                )));
            }
        }
    }
    Ok(())
}

/// Parse the string form `'geo -w | ipinfo {prev}'` (quotes protect `|`).
pub fn parse_spec(text: &str) -> Result<Vec<Step>> {
    let steps: Vec<Step> = words::split_items(text, '|')?
        .into_iter()
        .map(|mut w| {
            let tool = w.remove(0);
            Step { tool, args: w }
        })
        .collect();
    check(&steps)?;
    Ok(steps)
}

/// Substitute `{prev}` and `{prev_words}` in a step's arguments.
pub fn expand(args: &[String], prev: &str) -> Vec<String> {
    let trimmed = prev.trim();
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if a == PREV_WORDS {
            out.extend(trimmed.split_whitespace().map(str::to_string));
        } else {
            out.push(a.replace(PREV, trimmed));
        }
    }
    out
}

/// Run the steps in order, piping stdout to stdin; stop at the first failure.
pub fn run(ctx: &Context, steps: &[Step], opts: &Options) -> ChainResult {
    if let Err(e) = check(steps) {
        let mut env = not_started(
            steps.first().map_or("", |s| s.tool.as_str()),
            &e.to_string(),
        );
        env.reason = None;
        env.exit_code = i32::from(code::USAGE);
        return ChainResult {
            steps: vec![env],
            failed_step: Some(1),
            exit_code: i32::from(code::USAGE),
        };
    }
    let mut results: Vec<Envelope> = Vec::with_capacity(steps.len());
    let mut stdin = opts.stdin.clone();
    let mut prev = String::new();
    for (n, step) in steps.iter().enumerate() {
        let env = if runner::interrupted() || opts.member.cancel.is_cancelled() {
            not_started(&step.tool, "interrupted")
        } else {
            let args = expand(&step.args, &prev);
            let mut req = opts.member.request(&step.tool, &args);
            req.timeout = opts.timeout;
            req.stdin = std::mem::replace(&mut stdin, Stdin::Null);
            run_caught(ctx, &req)
        };
        let failed = env.status != RunStatus::Success;
        let exit_code = env.exit_code;
        if !failed {
            stdin = Stdin::Bytes(env.output.clone().into_bytes());
            prev = env.output.clone();
        }
        results.push(env);
        if failed {
            return ChainResult {
                steps: results,
                failed_step: Some(n + 1),
                exit_code,
            };
        }
    }
    ChainResult {
        steps: results,
        failed_step: None,
        exit_code: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(tool: &str, args: &[&str]) -> Step {
        Step {
            tool: tool.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn parses_steps() {
        assert_eq!(
            parse_spec("geo -w | ipinfo").unwrap(),
            [step("geo", &["-w"]), step("ipinfo", &[])]
        );
        assert_eq!(
            parse_spec("ok 'a|b' | ok --ip={prev} {prev_words}").unwrap(),
            [
                step("ok", &["a|b"]),
                step("ok", &["--ip={prev}", "{prev_words}"])
            ]
        );
    }

    #[test]
    fn placeholder_rules() {
        assert!(parse_spec("ok {prev} | ok").is_err());
        assert!(parse_spec("ok | ok x{prev_words}").is_err());
        assert!(parse_spec("ok |  | ok").is_err());
        assert!(check(&[]).is_err());
    }

    #[test]
    fn expands_as_one_argument_or_words() {
        let prev = "  a b\nc \n";
        assert_eq!(
            expand(&["{prev}".into(), "x={prev}".into(), "lit".into()], prev),
            ["a b\nc", "x=a b\nc", "lit"]
        );
        assert_eq!(
            expand(&["-v".into(), "{prev_words}".into()], prev),
            ["-v", "a", "b", "c"]
        );
        assert_eq!(expand(&["{prev_words}".into()], "  "), Vec::<String>::new());
    }
}
