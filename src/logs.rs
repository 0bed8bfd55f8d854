//! The app, audit and metrics logs: one JSON object per line, appended with a
//! single write, rotated by size (`GATHM_MAX_LOG_SIZE_MB`, `GATHM_LOG_ROTATE_COUNT`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::{AttemptOutcome, Reason, RunStatus};
use crate::clock;
use crate::home::Home;
use crate::jsonline;
use crate::state;

/// Writes the three JSON-lines logs under the log directory.
#[derive(Debug, Clone)]
pub struct Logger {
    home: Home,
    max_bytes: u64,
    keep: u32,
    level: Level,
    /// Open descriptors per log file, for long-running processes
    /// (`keep_open`); a CLI run opens and closes each file once.
    /// Open logs by file name: a few entries, found by a scan (cheaper
    /// than hashing the name on every record).
    kept: Option<Arc<Mutex<KeptLogs>>>,
}

/// Kept-open logs by file name.
type KeptLogs = Vec<(&'static str, state::KeptLog)>;

/// How often a kept-open log's path is checked for a rotation by another
/// process.
const RECHECK: Duration = Duration::from_secs(1);

/// Append `record` to `buf` as one JSON line (nothing if it cannot be
/// serialised).
pub fn push_line<T: Serialize + ?Sized>(buf: &mut Vec<u8>, record: &T) {
    let at = buf.len();
    if serde_json::to_writer(&mut *buf, record).is_ok() {
        buf.push(b'\n');
    } else {
        buf.truncate(at);
    }
}

/// Append an audit record built as JSON to `buf`, with a timestamp if it
/// lacks one.
pub fn push_audit_value(buf: &mut Vec<u8>, mut record: Value, ts: &str) {
    if let Value::Object(o) = &mut record {
        o.entry("timestamp").or_insert_with(|| ts.into());
    }
    push_line(buf, &record);
}

// The records of the run path, typed so that a run serialises them directly
// instead of building a JSON map first. Fields are in the alphabetical order
// the earlier maps printed them in, so the lines are unchanged.

/// `audit.log`: a policy decision (`action: policy_decision`).
#[derive(Serialize)]
pub struct DecisionRecord<'a> {
    /// Always `policy_decision`.
    pub action: &'static str,
    /// Who asked.
    pub actor: &'a str,
    /// The verdict.
    pub decision: crate::policy::Verdict,
    /// Always `tool:execute`.
    pub permission: &'static str,
    /// The caller's role.
    pub role: &'a str,
    /// The rule that decided.
    pub rule: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// When (RFC 3339).
    pub timestamp: &'a str,
    /// The tool asked for.
    pub tool: &'a str,
}

/// `audit.log`: a finished run (`action: tool_execute`).
#[derive(Serialize)]
pub struct ExecuteRecord<'a> {
    /// Always `tool_execute`.
    pub action: &'static str,
    /// Who asked.
    pub actor: &'a str,
    /// The arguments (lossy UTF-8).
    pub args: &'a [String],
    /// Answered from the cache.
    pub cached: bool,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// The run's exit code.
    pub exit_code: i32,
    /// Why it ended without the tool deciding.
    pub reason: Option<Reason>,
    /// The caller's role.
    pub role: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// The fallback that answered.
    pub served_by: Option<&'a str>,
    /// `success` or `error`.
    pub status: RunStatus,
    /// When (RFC 3339).
    pub timestamp: &'a str,
    /// The tool asked for.
    pub tool: &'a str,
}

/// `metrics.log`: one attempt, or a cache hit.
#[derive(Serialize)]
pub struct MetricRecord<'a> {
    /// Present (true) for a cache hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// Wall time of the attempt.
    pub duration_ms: u64,
    /// Its exit code.
    pub exit_code: i32,
    /// What happened (attempts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// The run.
    pub run_id: &'a str,
    /// `success` (exit 0) or `failure`.
    pub status: &'static str,
    /// When (RFC 3339).
    pub timestamp: &'a str,
    /// The tool that ran.
    pub tool: &'a str,
    /// The attempt's number (attempts only).
    #[serde(skip_serializing_if = "Option::is_none", rename = "try")]
    pub try_number: Option<u32>,
}

impl DecisionRecord<'_> {
    /// Append the record as one line ([`push_line`]'s bytes, built faster).
    pub fn push(&self, buf: &mut Vec<u8>) {
        let mut o = jsonline::Object::start(buf);
        o.plain("action", self.action)
            .str("actor", self.actor)
            .plain("decision", self.decision.as_str())
            .plain("permission", self.permission)
            .str("role", self.role)
            .str("rule", self.rule)
            .str("run_id", self.run_id)
            .str("timestamp", self.timestamp)
            .str("tool", self.tool);
        o.end_line();
    }
}

impl ExecuteRecord<'_> {
    /// Append the record as one line ([`push_line`]'s bytes, built faster).
    pub fn push(&self, buf: &mut Vec<u8>) {
        let mut o = jsonline::Object::start(buf);
        o.plain("action", self.action)
            .str("actor", self.actor)
            .strs("args", self.args)
            .bool("cached", self.cached)
            .u64("duration_ms", self.duration_ms)
            .i64("exit_code", i64::from(self.exit_code));
        match self.reason {
            Some(r) => o.plain("reason", r.as_str()),
            None => o.raw("reason", "null"),
        };
        o.str("role", self.role)
            .str("run_id", self.run_id)
            .opt_str("served_by", self.served_by)
            .plain("status", self.status.as_str())
            .str("timestamp", self.timestamp)
            .str("tool", self.tool);
        o.end_line();
    }
}

impl MetricRecord<'_> {
    /// The `status` of a record for this exit code.
    pub fn status_of(exit_code: i32) -> &'static str {
        if exit_code == 0 { "success" } else { "failure" }
    }

    /// Append the record as one line ([`push_line`]'s bytes, built faster).
    pub fn push(&self, buf: &mut Vec<u8>) {
        let mut o = jsonline::Object::start(buf);
        if let Some(c) = self.cached {
            o.bool("cached", c);
        }
        o.u64("duration_ms", self.duration_ms)
            .i64("exit_code", i64::from(self.exit_code));
        if let Some(out) = self.outcome {
            o.plain("outcome", out.as_str());
        }
        o.str("run_id", self.run_id)
            .plain("status", self.status)
            .str("timestamp", self.timestamp)
            .str("tool", self.tool);
        if let Some(t) = self.try_number {
            o.u64("try", u64::from(t));
        }
        o.end_line();
    }
}

/// Log levels of `gathm.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn parse(s: &str) -> Level {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Level::Debug,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" | "FATAL" => Level::Error,
            _ => Level::Info,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// This machine's name, as every `gathm.log` line carries it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

impl Logger {
    /// A logger for a home, with rotation settings from the environment.
    pub fn new(home: &Home) -> Logger {
        let mb: f64 = std::env::var("GATHM_MAX_LOG_SIZE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100.0);
        let keep = std::env::var("GATHM_LOG_ROTATE_COUNT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let level = Level::parse(&std::env::var("GATHM_LOG_LEVEL").unwrap_or_default());
        Logger {
            home: home.clone(),
            max_bytes: (mb * 1024.0 * 1024.0) as u64,
            keep,
            level,
            kept: None,
        }
    }

    /// Keep the log files open between writes (`gathm serve`): one `write`
    /// and one `lseek` per record instead of four system calls. See
    /// `state::KeptLog` for how rotation by another process is noticed.
    pub fn keep_open(&mut self) {
        self.kept = Some(Arc::new(Mutex::new(Vec::new())));
    }

    /// Whether a level would be written (skip building the record otherwise).
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    /// Complete lines of `gathm.log` (JSON, each with the common fields:
    /// timestamp, level, component, message, hostname, pid, and a newline);
    /// nothing below the logger's level.
    pub fn app_raw(&self, level: Level, lines: &[u8]) {
        if level >= self.level && !lines.is_empty() {
            let _ = self.write_bytes("gathm.log", lines);
        }
    }

    fn write(&self, file: &'static str, records: &[Value]) -> crate::error::Result<()> {
        let mut buf = Vec::with_capacity(256 * records.len());
        for r in records {
            if serde_json::to_writer(&mut buf, r).is_ok() {
                buf.push(b'\n');
            }
        }
        self.write_bytes(file, &buf)
    }

    fn write_bytes(&self, file: &'static str, buf: &[u8]) -> crate::error::Result<()> {
        // Logging never fails a run: errors are swallowed here on purpose.
        if let Some(kept) = &self.kept {
            let mut files = kept.lock().unwrap_or_else(|e| e.into_inner());
            let at = match files.iter().position(|(f, _)| *f == file) {
                Some(i) => i,
                None => {
                    let log = state::KeptLog::new(self.home.log_file(file), RECHECK);
                    files.push((file, log));
                    files.len() - 1
                }
            };
            let log = &mut files[at].1;
            let len = log.append(buf)?;
            if len > self.max_bytes {
                let _ = state::rotate(log.path(), self.max_bytes, self.keep);
                log.reopen();
            }
            return Ok(());
        }
        let path = self.home.log_file(file);
        let len = state::append(&path, buf)?;
        if len > self.max_bytes {
            let _ = state::rotate(&path, self.max_bytes, self.keep);
        }
        Ok(())
    }

    /// A line of `gathm.log`.
    pub fn app(&self, level: Level, component: &str, message: &str, extra: Map<String, Value>) {
        if level < self.level {
            return;
        }
        let mut obj = Map::new();
        obj.insert("timestamp".into(), clock::rfc3339(clock::now()).into());
        obj.insert("level".into(), level.as_str().into());
        obj.insert("component".into(), component.into());
        obj.insert("message".into(), message.into());
        obj.insert("hostname".into(), hostname().into());
        obj.insert("pid".into(), std::process::id().into());
        obj.extend(extra);
        let _ = self.write("gathm.log", &[Value::Object(obj)]);
    }

    /// Several lines of `gathm.log` in one write (level, component, message, extra
    /// fields); used by the HTTP access log, which batches under load.
    pub fn app_batch(&self, lines: Vec<(Level, &str, String, Map<String, Value>)>) {
        let host = hostname();
        let pid = std::process::id();
        let ts = clock::rfc3339(clock::now());
        let records: Vec<Value> = lines
            .into_iter()
            .filter(|(level, ..)| *level >= self.level)
            .map(|(level, component, message, extra)| {
                let mut obj = Map::new();
                obj.insert("timestamp".into(), ts.clone().into());
                obj.insert("level".into(), level.as_str().into());
                obj.insert("component".into(), component.into());
                obj.insert("message".into(), message.into());
                obj.insert("hostname".into(), host.clone().into());
                obj.insert("pid".into(), pid.into());
                obj.extend(extra);
                Value::Object(obj)
            })
            .collect();
        if !records.is_empty() {
            let _ = self.write("gathm.log", &records);
        }
    }

    /// Lines of `audit.log` (each gets a timestamp if it lacks one).
    pub fn audit(&self, records: Vec<Value>) {
        let _ = self.try_audit(records);
    }

    /// [`Logger::audit`], saying whether the lines were appended.
    pub fn try_audit(&self, records: Vec<Value>) -> crate::error::Result<()> {
        let ts = clock::rfc3339(clock::now());
        let mut buf = Vec::with_capacity(256 * records.len());
        for r in records {
            push_audit_value(&mut buf, r, &ts);
        }
        self.write_bytes("audit.log", &buf)
    }

    /// Append complete lines (from [`push_line`]) to `audit.log`.
    pub fn try_audit_lines(&self, lines: &[u8]) -> crate::error::Result<()> {
        self.write_bytes("audit.log", lines)
    }

    /// Append one typed line to `metrics.log`.
    pub fn try_metric_record(&self, record: &MetricRecord<'_>) -> crate::error::Result<()> {
        let mut buf = Vec::with_capacity(256);
        record.push(&mut buf);
        self.write_bytes("metrics.log", &buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(p: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn kept_open_logs_rotate_by_size_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::with_overrides(dir.path().to_path_buf(), None, None, None);
        let mut log = Logger::new(&home);
        log.max_bytes = 1000;
        log.keep = 3;
        log.keep_open();
        for i in 0..20 {
            let run_id = i.to_string();
            log.try_metric_record(&MetricRecord {
                cached: None,
                duration_ms: i,
                exit_code: 0,
                outcome: None,
                run_id: &run_id,
                status: "success",
                timestamp: "t",
                tool: "t",
                try_number: None,
            })
            .unwrap();
        }
        let current = home.log_file("metrics.log");
        let mut all: Vec<Value> = Vec::new();
        for suffix in ["", ".1", ".2", ".3"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", current.display()));
            all.extend(lines(&p));
        }
        assert!(lines(&current).len() < 20, "the file was rotated");
        // Three generations are kept: the newest records are all there, in
        // order, each a whole JSON object.
        let mut seen: Vec<u64> = all
            .iter()
            .map(|r| r["duration_ms"].as_u64().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen.last(), Some(&19));
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    }

    #[test]
    fn typed_records_print_the_lines_the_json_maps_printed() {
        // The typed records replaced `json!` maps (keys in alphabetical
        // order): readers of the logs see the same lines.
        let args = vec!["-x".to_string()];
        let mut buf = Vec::new();
        push_line(
            &mut buf,
            &ExecuteRecord {
                action: "tool_execute",
                actor: "cli",
                args: &args,
                cached: false,
                duration_ms: 3,
                exit_code: 0,
                reason: None,
                role: "admin",
                run_id: "r1",
                served_by: None,
                status: RunStatus::Success,
                timestamp: "ts",
                tool: "noop",
            },
        );
        let map = json!({
            "action": "tool_execute", "actor": "cli", "role": "admin", "tool": "noop",
            "args": args, "status": RunStatus::Success, "reason": Option::<Reason>::None,
            "exit_code": 0, "cached": false, "served_by": Option::<String>::None,
            "duration_ms": 3, "run_id": "r1", "timestamp": "ts",
        });
        assert_eq!(String::from_utf8(buf).unwrap(), format!("{map}\n"));
        let mut buf = Vec::new();
        push_line(
            &mut buf,
            &MetricRecord {
                cached: None,
                duration_ms: 7,
                exit_code: 1,
                outcome: Some(AttemptOutcome::Failed),
                run_id: "r2",
                status: "failure",
                timestamp: "ts",
                tool: "t",
                try_number: Some(2),
            },
        );
        let map = json!({
            "timestamp": "ts", "tool": "t", "duration_ms": 7, "exit_code": 1, "status": "failure",
            "run_id": "r2", "outcome": AttemptOutcome::Failed, "try": 2,
        });
        assert_eq!(String::from_utf8(buf).unwrap(), format!("{map}\n"));
    }

    #[test]
    fn records_built_by_hand_are_the_serialised_records() {
        // `push` must print exactly what the derived `Serialize` prints,
        // whatever the strings hold and whichever options are set.
        let odd = ["", "plain", "a \"q\" \\ b", "nl\n\u{1}", "é ✓"];
        let args: Vec<String> = odd.iter().map(ToString::to_string).collect();
        let same = |hand: Vec<u8>, serde: Vec<u8>| {
            assert_eq!(
                String::from_utf8(hand).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        };
        for (i, s) in odd.iter().enumerate() {
            let e = ExecuteRecord {
                action: "tool_execute",
                actor: s,
                args: &args[..i],
                cached: i.is_multiple_of(2),
                duration_ms: i as u64 * 1000,
                exit_code: -(i as i32),
                reason: [None, Some(Reason::Timeout), Some(Reason::CircuitOpen)][i % 3],
                role: s,
                run_id: s,
                served_by: (i % 2 == 1).then_some(*s),
                status: if i.is_multiple_of(2) {
                    RunStatus::Success
                } else {
                    RunStatus::Error
                },
                timestamp: s,
                tool: s,
            };
            let (mut hand, mut serde) = (Vec::new(), Vec::new());
            e.push(&mut hand);
            push_line(&mut serde, &e);
            same(hand, serde);
            let m = MetricRecord {
                cached: (i.is_multiple_of(2)).then_some(i.is_multiple_of(4)),
                duration_ms: u64::MAX - i as u64,
                exit_code: i32::MIN + i as i32,
                outcome: (i % 3 != 0).then_some(AttemptOutcome::Failed),
                run_id: s,
                status: "failure",
                timestamp: s,
                tool: s,
                try_number: (i % 2 == 1).then_some(i as u32),
            };
            let (mut hand, mut serde) = (Vec::new(), Vec::new());
            m.push(&mut hand);
            push_line(&mut serde, &m);
            same(hand, serde);
            let d = DecisionRecord {
                action: "policy_decision",
                actor: s,
                decision: crate::policy::Verdict::ApprovalRequired,
                permission: "tool:execute",
                role: s,
                rule: s,
                run_id: s,
                timestamp: s,
                tool: s,
            };
            let (mut hand, mut serde) = (Vec::new(), Vec::new());
            d.push(&mut hand);
            push_line(&mut serde, &d);
            same(hand, serde);
        }
    }
}
