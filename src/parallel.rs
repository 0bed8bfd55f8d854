//! `gathm parallel`: run several tools at once (PRODUCT.md §6).
//!
//! Every item goes through [`run::run`] (policy, rate limit, cache, breaker,
//! retries, fallbacks, audit) on its own thread; a dispatcher bounds the
//! concurrency by `-j` and by each tool's `max_concurrency` and launches items
//! in the order given. Results come back in that order whatever order the
//! runs finish in, so output is grouped per item and never interleaved.
//!
//! Two spellings: the reference's string, `'dns a.com, httpprobe b.com'`
//! (comma-separated items, each word-split by [`crate::words`]), and an argv
//! form, `-- TOOL ARGS… ::: TOOL ARGS…`, which never splits anything.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::api::{Envelope, Reason, RunStatus};
use crate::clock;
use crate::config::Context;
use crate::error::{Error, Result, code};
use crate::run::{self, Member, RunRequest};
use crate::runner;
use crate::slots::{self, Slots};
use crate::words;

/// The separator between tool groups in the argv form.
pub const ARGV_SEPARATOR: &str = ":::";

/// One tool to run.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[schema(as = ParallelItem)]
pub struct Item {
    /// Tool name.
    pub tool: String,
    /// Its arguments, passed as they are.
    #[serde(default)]
    pub args: Vec<String>,
}

impl Item {
    /// The item as a command line (quoted where needed).
    pub fn display(&self) -> String {
        words::display(&self.tool, &self.args)
    }
}

/// How to run the items.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many runs at once (0 is treated as 1).
    pub jobs: usize,
    /// Show an indicatif progress display on stderr.
    pub progress: bool,
    /// Role, approval, cancel token and actor shared by every member run.
    pub member: Member,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: slots::default_jobs(),
            progress: false,
            member: Member::new("parallel"),
        }
    }
}

/// Parse the reference's string form: `'dns a.com, httpprobe https://b.com'`.
pub fn parse_spec(text: &str) -> Result<Vec<Item>> {
    words::split_items(text, ',').map(|items| {
        items
            .into_iter()
            .map(|mut w| {
                let tool = w.remove(0);
                Item { tool, args: w }
            })
            .collect()
    })
}

/// Parse the argv form: `TOOL ARGS… ::: TOOL ARGS…` (nothing is split).
pub fn parse_argv(argv: &[String]) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, group) in argv.split(|a| a == ARGV_SEPARATOR).enumerate() {
        let Some((tool, args)) = group.split_first() else {
            return Err(Error::Usage(format!(
                "item {} is empty (nothing between `{ARGV_SEPARATOR}` separators)",
                n + 1
            )));
        };
        if tool.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(Error::Usage(format!(
                "{tool:?} is not a tool name: give the items as one quoted string \
                 ('dns a.com, ok b') or separate them with `{ARGV_SEPARATOR}`"
            )));
        }
        items.push(Item {
            tool: tool.clone(),
            args: args.to_vec(),
        });
    }
    Ok(items)
}

/// Parse the command line of `gathm parallel`: one word is the string form,
/// several words (or any `:::`) the argv form.
pub fn parse_cli(words: &[String]) -> Result<Vec<Item>> {
    match words {
        [] => Err(Error::Usage("nothing to run".into())),
        [one] if one != ARGV_SEPARATOR => parse_spec(one),
        many => parse_argv(many),
    }
}

/// gathm's exit code for a set of results: 0 if all succeeded, 130 if the
/// run was interrupted, else the exit code of the first failing item in the
/// order given.
pub fn exit_code(results: &[Envelope]) -> i32 {
    if results
        .iter()
        .any(|e| e.reason == Some(Reason::Interrupted))
    {
        return i32::from(code::INTERRUPTED);
    }
    results
        .iter()
        .find(|e| e.status != RunStatus::Success)
        .map_or(0, |e| e.exit_code)
}

/// An envelope for an item that never started because of a cancel.
pub(crate) fn not_started(tool: &str, why: &str) -> Envelope {
    let message = format!("{tool} was not started: {why}");
    Envelope {
        tool: tool.to_string(),
        run_id: clock::new_id(),
        status: RunStatus::Error,
        reason: Some(Reason::Interrupted),
        exit_code: i32::from(code::INTERRUPTED),
        output: String::new(),
        error: format!("gathm: {message}\n"),
        duration_ms: 0,
        cached: false,
        attempts: Vec::new(),
        timestamp: clock::rfc3339(clock::now()),
        served_by: None,
        message: Some(message),
        rule: None,
        retry_after: None,
        warnings: Vec::new(),
    }
}

/// [`run::run`], with a panic turned into an internal-error envelope so that
/// a dispatcher waiting for the result never hangs.
pub(crate) fn run_caught(ctx: &Context, req: &RunRequest) -> Envelope {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run::run(ctx, req))).unwrap_or_else(
        |_| {
            let mut e = not_started(&req.tool, "gathm failed internally");
            e.reason = None;
            e.exit_code = i32::from(code::INTERNAL);
            e
        },
    )
}

/// A one-line verdict for a finished item: `exit 0, 12 ms` or `exit 127, not_found, 0 ms`.
pub fn verdict(e: &Envelope) -> String {
    let reason = e
        .reason
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_str().map(|s| format!(", {s}")))
        .unwrap_or_default();
    let cached = if e.cached { ", cached" } else { "" };
    format!("exit {}{reason}{cached}, {} ms", e.exit_code, e.duration_ms)
}

/// The progress display: one spinner per item (a single counter bar for many items).
struct Progress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    total: Option<ProgressBar>,
    failed: usize,
    done: usize,
}

const MAX_BARS: usize = 16;

impl Progress {
    fn new(items: &[Item], on: bool) -> Option<Progress> {
        if !on {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let mut p = Progress {
            multi,
            bars: Vec::new(),
            total: None,
            failed: 0,
            done: 0,
        };
        if items.len() <= MAX_BARS {
            for it in items {
                let b = p
                    .multi
                    .add(ProgressBar::new_spinner().with_style(style.clone()));
                b.set_prefix(it.display());
                b.set_message("queued");
                p.bars.push(b);
            }
        } else {
            let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let b = p
                .multi
                .add(ProgressBar::new(items.len() as u64).with_style(style));
            b.enable_steady_tick(Duration::from_millis(100));
            p.total = Some(b);
        }
        Some(p)
    }

    fn started(&self, i: usize) {
        if let Some(b) = self.bars.get(i) {
            b.set_message("running");
            b.enable_steady_tick(Duration::from_millis(100));
        }
    }

    fn finished(&mut self, i: usize, e: &Envelope) {
        self.done += 1;
        if e.status != RunStatus::Success {
            self.failed += 1;
        }
        if let Some(b) = self.bars.get(i) {
            let word = if e.status == RunStatus::Success {
                "ok"
            } else {
                "FAILED"
            };
            b.finish_with_message(format!("{word} ({})", verdict(e)));
        }
        if let Some(t) = &self.total {
            t.set_position(self.done as u64);
            t.set_message(format!("{} failed", self.failed));
        }
    }

    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    fn clear(&self) {
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
        for b in &self.bars {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// Run every item and return their envelopes in the order given.
pub fn run_all(ctx: &Context, items: &[Item], opts: &Options) -> Vec<Envelope> {
    run_ordered(ctx, items, opts, &mut |_, _| {})
}

/// Like [`run_all`], and call `ready(index, envelope)` for each item in the
/// order given, as soon as it and every item before it have finished (so a
/// front-end can print grouped output progressively). Output of `ready`
/// printed to a terminal does not collide with the progress display.
pub fn run_ordered(
    ctx: &Context,
    items: &[Item],
    opts: &Options,
    ready: &mut dyn FnMut(usize, &Envelope),
) -> Vec<Envelope> {
    let n = items.len();
    let mut results: Vec<Option<Envelope>> = vec![None; n];
    let mut slots = Slots::new(opts.jobs);
    slots.cap_from_manifests(ctx, items.iter().map(|i| i.tool.as_str()));
    let mut queue: VecDeque<usize> = (0..n).collect();
    let mut progress = Progress::new(items, opts.progress);
    let mut emitted = 0usize;
    let (tx, rx) = mpsc::channel::<(usize, Envelope)>();
    std::thread::scope(|scope| {
        loop {
            let stop = runner::interrupted() || opts.member.cancel.is_cancelled();
            if stop {
                opts.member.cancel.cancel();
                // Ctrl-C: take the live display down at once, so no spinner
                // line is left while the killed items are reaped.
                if let Some(p) = progress.take() {
                    p.clear();
                }
                for i in queue.drain(..) {
                    results[i] = Some(not_started(&items[i].tool, "interrupted"));
                }
            }
            // Launch, in order, every queued item that has a free slot.
            let mut k = 0;
            while k < queue.len() && !slots.full() {
                let i = queue[k];
                if !slots.acquire(&items[i].tool) {
                    k += 1;
                    continue;
                }
                queue.remove(k);
                if let Some(p) = &progress {
                    p.started(i);
                }
                let req = opts.member.request(&items[i].tool, &items[i].args);
                let tx = tx.clone();
                scope.spawn(move || {
                    let _ = tx.send((i, run_caught(ctx, &req)));
                });
            }
            // Hand over finished results in order.
            while emitted < n {
                let Some(e) = &results[emitted] else { break };
                match &progress {
                    Some(p) => p.suspend(|| ready(emitted, e)),
                    None => ready(emitted, e),
                }
                emitted += 1;
            }
            if emitted == n && slots.running() == 0 {
                break;
            }
            if let Ok((i, env)) = rx.recv_timeout(Duration::from_millis(25)) {
                slots.release(&items[i].tool);
                if let Some(p) = &mut progress {
                    p.finished(i, &env);
                }
                results[i] = Some(env);
            }
        }
    });
    if let Some(p) = &progress {
        p.clear();
    }
    results
        .into_iter()
        .zip(items)
        .map(|(r, it)| r.unwrap_or_else(|| not_started(&it.tool, "interrupted")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tool: &str, args: &[&str]) -> Item {
        Item {
            tool: tool.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn string_form() {
        assert_eq!(
            parse_spec("dns a.com, httpprobe https://b.com").unwrap(),
            [
                item("dns", &["a.com"]),
                item("httpprobe", &["https://b.com"])
            ]
        );
        assert_eq!(
            parse_spec("ok 'a, b' c").unwrap(),
            [item("ok", &["a, b", "c"])]
        );
        assert!(parse_spec("ok, , ok").is_err());
    }

    #[test]
    fn argv_form() {
        assert_eq!(
            parse_argv(&s(&["ok", "a, b", ":::", "fail", "3"])).unwrap(),
            [item("ok", &["a, b"]), item("fail", &["3"])]
        );
        assert!(parse_argv(&s(&["ok", ":::"])).is_err());
        assert!(parse_argv(&s(&[":::", "ok"])).is_err());
        assert!(parse_argv(&s(&["ok a", "ok b"])).is_err());
        assert!(parse_argv(&s(&["ok,", "b"])).is_err());
    }

    #[test]
    fn cli_form_is_chosen_by_word_count() {
        assert_eq!(
            parse_cli(&s(&["ok a, ok b"])).unwrap(),
            [item("ok", &["a"]), item("ok", &["b"])]
        );
        assert_eq!(
            parse_cli(&s(&["ok", "a, ok b"])).unwrap(),
            [item("ok", &["a, ok b"])]
        );
        assert!(parse_cli(&[]).is_err());
        assert!(parse_cli(&s(&[":::"])).is_err());
    }

    fn env(status: RunStatus, reason: Option<Reason>, code: i32) -> Envelope {
        let mut e = not_started("t", "x");
        e.status = status;
        e.reason = reason;
        e.exit_code = code;
        e
    }

    #[test]
    fn exit_code_is_the_first_failure_in_order() {
        let ok = env(RunStatus::Success, None, 0);
        assert_eq!(exit_code(&[ok.clone(), ok.clone()]), 0);
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(
            exit_code(&[
                ok.clone(),
                env(RunStatus::Error, Some(Reason::NotFound), 127),
                env(RunStatus::Error, None, 3)
            ]),
            127
        );
        assert_eq!(
            exit_code(&[
                env(RunStatus::Error, None, 3),
                env(RunStatus::Error, Some(Reason::Interrupted), 130)
            ]),
            130
        );
    }

    #[test]
    fn verdict_names_the_reason() {
        let mut e = env(RunStatus::Error, Some(Reason::NotFound), 127);
        e.duration_ms = 3;
        assert_eq!(verdict(&e), "exit 127, not_found, 3 ms");
        let mut e = env(RunStatus::Success, None, 0);
        e.duration_ms = 12;
        assert_eq!(verdict(&e), "exit 0, 12 ms");
    }
}
