//! `gathm.yaml`: the configuration file for what is neither a tool nor a
//! policy (`schedules:` and `groups:` now). Found by `--config`,
//! `GATHM_CONFIG`, `$GATHM_HOME/config.yaml`, then `./gathm.yaml`. Unknown
//! keys and bad values are errors with file, line and column (pure: text in,
//! `ConfigFile` and diagnostics out; the tool references are checked by the
//! caller, which has the registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::manifest::{Diagnostic, Severity};
use crate::schedule::cron::Cron;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Cron schedules run by `gathm serve` or `gathm schedule tick`.
    pub schedules: Vec<Schedule>,
    /// Concurrency groups that tools join with `concurrency_group:`.
    pub groups: BTreeMap<String, Group>,
    /// Where the shared state lives (`state.url`; `GATHM_STATE_URL` wins).
    pub state: StateConfig,
}

/// The `state:` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `redis://[user:pass@]host:port/db` or `rediss://…`: breakers, rate
    /// limits, group slots and jobs shared by a fleet. Unset: the embedded
    /// store under `GATHM_HOME`.
    pub url: Option<String>,
}

/// What to do when a slot is due while the previous run of the schedule is
/// still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not start the new slot; it is recorded as `skipped`.
    #[default]
    Skip,
    /// Wait for the previous run to end, then run.
    Queue,
    /// Cancel the previous run (its process group is killed), then run.
    CancelPrevious,
}

/// Which missed slots (within `catchup_window`) run after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// None: missed slots are recorded as `missed` (cron's behaviour).
    #[default]
    None,
    /// Only the most recent missed slot runs (anacron's behaviour).
    Latest,
    /// Every missed slot runs, oldest first.
    All,
}

/// One entry of `schedules:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Unique name (letters, digits, `.`, `_`, `-`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))]
    pub name: String,
    /// 5 fields (minute hour day month weekday), 6 with seconds first, or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schemars(with = "String")]
    pub cron: Spanned<String>,
    /// IANA time zone the cron fields are read in (default `UTC`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// The tool to run (or `pipeline`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tool: Option<Spanned<String>>,
    /// Arguments for the tool, passed as they are (no shell).
    #[serde(default)]
    pub args: Vec<String>,
    /// A pipeline file to run instead of a tool (relative to the config file).
    #[serde(default)]
    pub pipeline: Option<PathBuf>,
    /// Role for the policies (default `admin`, as for the CLI).
    #[serde(default)]
    pub role: Option<String>,
    /// `skip` (default), `queue` or `cancel_previous`.
    #[serde(default)]
    pub overlap: Overlap,
    /// `none` (default), `latest` or `all`.
    #[serde(default)]
    pub catchup: Catchup,
    /// How far back, in seconds, missed slots may be caught up (default 3600).
    #[serde(default = "default_window")]
    #[schemars(range(min = 0.0, max = 31_622_400.0))]
    pub catchup_window: f64,
    /// Random delay, in seconds, up to which a slot's start is spread
    /// (deterministic per slot; default 0).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 3600.0))]
    pub jitter: f64,
    /// Seconds before the run is killed (default: the tool's own).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// `false` keeps the entry but never runs it.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_window() -> f64 {
    3600.0
}
fn yes() -> bool {
    true
}

/// One entry of `groups:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Runs of the group's tools at once, across every gathm process on the machine.
    #[schemars(range(min = 1, max = 10_000))]
    pub max_concurrent: u32,
    /// Runs that may wait for a slot; beyond it a run is refused (exit 75 /
    /// HTTP 429). Default 1,000.
    #[serde(default = "default_queue")]
    pub queue_size: u32,
    /// In the job queue, prefer the group that last ran (as foreman drains
    /// by model), up to `drain_max` in a row.
    #[serde(default)]
    pub drain: bool,
    /// Fairness bound of `drain` (default 8).
    #[serde(default = "default_drain_max")]
    #[schemars(range(min = 1))]
    pub drain_max: u32,
}

fn default_queue() -> u32 {
    1000
}
fn default_drain_max() -> u32 {
    8
}

impl Schedule {
    /// The role the schedule's runs use.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("admin")
    }

    /// The time zone name (default `UTC`).
    pub fn zone(&self) -> &str {
        self.timezone.as_ref().map_or("UTC", |t| t.value.as_str())
    }

    /// The parsed cron expression in its zone.
    pub fn cron(&self) -> Result<Cron, String> {
        Cron::parse(&self.cron.value, self.zone())
    }

    /// What the schedule runs, for display: `tool args…` or `pipeline FILE`.
    pub fn target(&self) -> String {
        match (&self.tool, &self.pipeline) {
            (Some(t), _) => crate::words::display(&t.value, &self.args),
            (None, Some(p)) => format!("pipeline {}", p.display()),
            (None, None) => String::new(),
        }
    }
}

/// Where the configuration file is, if any: `--config`, `GATHM_CONFIG`,
/// `$GATHM_HOME/config.yaml`, `./gathm.yaml`, the first that is given (for
/// the first two) or exists (for the last two). A file named by `--config`
/// or `GATHM_CONFIG` that does not exist is an error for the caller to report.
pub fn locate(explicit: Option<&Path>, home: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("GATHM_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    [home.join("config.yaml"), PathBuf::from("gathm.yaml")]
        .into_iter()
        .find(|p| p.is_file())
}

fn diag(file: &Path, at: Option<(u64, u64)>, message: String) -> Diagnostic {
    let (line, column) = at.unwrap_or((1, 1));
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

fn loc<T>(s: &Spanned<T>) -> Option<(u64, u64)> {
    Some((s.referenced.line(), s.referenced.column()))
}

fn finite_in(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

/// Parse and check a configuration file. `path` names it in messages.
/// Every problem is reported, each at its own place.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, Vec<Diagnostic>> {
    match parse_all(path, text) {
        (Some(c), d) if d.is_empty() => Ok(c),
        (_, d) => Err(d),
    }
}

/// Like `parse`, but returns what parsed even when it has problems (so
/// `validate` can check the tool references too).
pub fn parse_all(path: &Path, text: &str) -> (Option<ConfigFile>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        return (Some(ConfigFile::default()), Vec::new());
    }
    let c: ConfigFile = match serde_saphyr::from_str(text) {
        Ok(c) => c,
        Err(e) => return (None, vec![crate::manifest::yaml_diag(path, &e)]),
    };
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for s in &c.schedules {
        let at = loc(&s.cron);
        if !crate::manifest::valid_name(&s.name) {
            out.push(diag(
                path,
                at,
                format!(
                    "schedule name {:?} must be letters, digits, `.`, `_` or `-`",
                    s.name
                ),
            ));
        }
        if seen.insert(s.name.clone(), ()).is_some() {
            out.push(diag(
                path,
                at,
                format!("schedule {:?} is defined twice", s.name),
            ));
        }
        if let Some(tz) = &s.timezone
            && jiff::tz::TimeZone::get(&tz.value).is_err()
        {
            out.push(diag(
                path,
                loc(tz),
                format!(
                    "schedule {:?}: unknown time zone {:?} (an IANA name such as Europe/Paris)",
                    s.name, tz.value
                ),
            ));
        } else if let Err(e) = s.cron() {
            out.push(diag(
                path,
                at,
                format!("schedule {:?}: cron {:?}: {e}", s.name, s.cron.value),
            ));
        }
        match (&s.tool, &s.pipeline) {
            (Some(_), Some(_)) => out.push(diag(
                path,
                at,
                format!("schedule {:?}: give `tool` or `pipeline`, not both", s.name),
            )),
            (None, None) => out.push(diag(
                path,
                at,
                format!("schedule {:?}: needs a `tool` or a `pipeline`", s.name),
            )),
            (None, Some(_)) if !s.args.is_empty() => out.push(diag(
                path,
                at,
                format!(
                    "schedule {:?}: `args` go with `tool`, not `pipeline`",
                    s.name
                ),
            )),
            _ => {}
        }
        if !finite_in(s.catchup_window, 0.0, 31_622_400.0) {
            out.push(diag(
                path,
                at,
                format!(
                    "schedule {:?}: catchup_window must be 0 to 31622400 seconds",
                    s.name
                ),
            ));
        }
        if !finite_in(s.jitter, 0.0, 3600.0) {
            out.push(diag(
                path,
                at,
                format!("schedule {:?}: jitter must be 0 to 3600 seconds", s.name),
            ));
        }
        if let Some(t) = s.timeout
            && !(t.is_finite() && t > 0.0 && t <= 31_622_400.0)
        {
            out.push(diag(
                path,
                at,
                format!(
                    "schedule {:?}: timeout must be a positive number of seconds",
                    s.name
                ),
            ));
        }
    }
    for (name, g) in &c.groups {
        if !crate::manifest::valid_name(name) {
            out.push(diag(
                path,
                None,
                format!("group name {name:?} must be letters, digits, `.`, `_` or `-`"),
            ));
        }
        if g.max_concurrent == 0 || g.max_concurrent > 10_000 {
            out.push(diag(
                path,
                None,
                format!("group {name:?}: max_concurrent must be 1 to 10000"),
            ));
        }
        if g.drain_max == 0 {
            out.push(diag(
                path,
                None,
                format!("group {name:?}: drain_max must be at least 1"),
            ));
        }
    }
    (Some(c), out)
}

/// Read and parse the file at `path`; a missing or unreadable file is one
/// diagnostic naming it (no line and column).
pub fn load(path: &Path) -> Result<ConfigFile, Vec<Diagnostic>> {
    match load_all(path) {
        (Some(c), d) if d.is_empty() => Ok(c),
        (_, d) => Err(d),
    }
}

/// Like `load`, but returns what parsed even when it has problems.
pub fn load_all(path: &Path) -> (Option<ConfigFile>, Vec<Diagnostic>) {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            let d = Diagnostic {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read the configuration file: {e}"),
            };
            return (None, vec![d]);
        }
    };
    let Ok(text) = String::from_utf8(text) else {
        let d = diag(
            path,
            Some((1, 1)),
            "the configuration file is not UTF-8".into(),
        );
        return (None, vec![d]);
    };
    let (c, d) = parse_all(path, &text);
    let Some(mut c) = c else {
        return (None, d);
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    for s in &mut c.schedules {
        if let Some(p) = &mut s.pipeline
            && p.is_relative()
        {
            *p = dir.join(&*p);
        }
    }
    (Some(c), d)
}

/// The location of a schedule's `tool:` value (for "unknown tool" messages).
pub fn tool_at(s: &Schedule) -> (u64, u64) {
    s.tool
        .as_ref()
        .and_then(loc)
        .or_else(|| loc(&s.cron))
        .unwrap_or((1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ConfigFile, Vec<Diagnostic>> {
        parse(Path::new("gathm.yaml"), text)
    }

    #[test]
    fn parses_schedules_and_groups_with_defaults() {
        let c = p("schedules:\n  - name: nightly\n    cron: '0 3 * * *'\n    timezone: Europe/Paris\n    tool: diskcheck\n    args: [/]\ngroups:\n  gpu: {max_concurrent: 2}\n").unwrap();
        let s = &c.schedules[0];
        assert_eq!(s.overlap, Overlap::Skip);
        assert_eq!(s.catchup, Catchup::None);
        assert_eq!(s.catchup_window, 3600.0);
        assert!(s.enabled);
        assert_eq!(s.role(), "admin");
        assert_eq!(s.target(), "diskcheck /");
        assert_eq!(c.groups["gpu"].queue_size, 1000);
        assert_eq!(c.groups["gpu"].drain_max, 8);
    }

    #[test]
    fn every_problem_is_located() {
        let e = p("schedules:\n  - name: a\n    cron: '0 3 * *'\n    tool: x\n  - name: b\n    cron: '@daily'\n    timezone: Mars/Olympus\n    tool: y\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (3, 11), "{e:?}");
        assert!(e[0].message.contains("cron"), "{e:?}");
        assert_eq!(e[1].line, 7, "{e:?}");
        assert!(e[1].message.contains("unknown time zone"), "{e:?}");
        let e =
            p("schedules:\n  - name: a\n    cron: '@daily'\n    tool: x\n    overlap: sometimes\n")
                .unwrap_err();
        assert_eq!(e[0].line, 5, "{e:?}");
        let e = p("groups:\n  g: {max_concurent: 2}\n").unwrap_err();
        assert_eq!(e[0].line, 2, "{e:?}");
        assert!(e[0].message.contains("max_concurent"), "{e:?}");
        let e = p("schedule: []\n").unwrap_err();
        assert!(e[0].message.contains("schedule"), "{e:?}");
    }
}
