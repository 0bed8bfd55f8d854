//! The resolved configuration: the state home, the tool search path, the
//! policies and the settings from `GATHM_*` variables. Both front-ends build
//! one `Context` and pass it to the operations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::breaker;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::logs::Logger;
use crate::policy::{self, Policies, Source};
use crate::registry::SearchPath;

/// Settings read from the environment once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GATHM_CACHE_ENABLED` (default true).
    pub cache_enabled: bool,
    /// `GATHM_CACHE_DEFAULT_TTL` (default 300): the TTL of `cache: true`.
    pub cache_ttl: u64,
    /// `GATHM_CACHE_DEFAULT_TTL` was set in the environment: tools without a
    /// `cache` block are cached too (the reference's cache-everything).
    pub cache_everything: bool,
    /// `GATHM_MAX_OUTPUT_MB` (default 16): bytes captured per stream; more
    /// fails the run with reason `output_limit`.
    pub max_output: usize,
    /// Breaker defaults (`CB_FAILURE_THRESHOLD`, `CB_RECOVERY_TIMEOUT`).
    pub breaker: breaker::Config,
    /// `GATHM_MAX_FALLBACK_DEPTH` (default 3).
    pub max_fallback_depth: u32,
    /// `GATHM_DEFAULT_TIMEOUT` (default 120 s).
    pub default_timeout: f64,
    /// `GATHM_KILL_GRACE` seconds between TERM and KILL (default 2).
    pub kill_grace: f64,
}

/// The one reader of numeric (and other `FromStr`) `GATHM_*` variables:
/// `None` when unset; a value that does not parse is reported once on stderr
/// and treated as unset, so a typo never silently means something else.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    let raw = std::env::var(name).ok()?;
    let v = raw.trim().parse().ok();
    if v.is_none() && !raw.trim().is_empty() {
        warn_bad_env(name, &raw);
    }
    v
}

/// A duration in seconds from the environment: `default` when unset; a value
/// that is not a finite number from 0 (exclusive when `positive`) to
/// `manifest::MAX_SECONDS` is reported once and replaced by `default`, so an
/// operator's typo can never become a panic or an endless wait.
pub fn env_seconds(name: &str, positive: bool, default: f64) -> f64 {
    let Some(v) = env_parse::<f64>(name) else {
        return default;
    };
    let ok =
        v.is_finite() && v <= crate::manifest::MAX_SECONDS && (v > 0.0 || (!positive && v == 0.0));
    if ok {
        v
    } else {
        warn_bad_env(name, &v.to_string());
        default
    }
}

/// The lease of anything a process holds in the shared state and renews
/// while it lives (Redis group slots, fleet job claims):
/// `GATHM_LEASE_TTL` seconds, default 30. A holder that dies is forgotten
/// at most this long after its last renewal.
pub fn lease_ttl() -> f64 {
    env_seconds("GATHM_LEASE_TTL", true, 30.0).max(0.5)
}

/// A Redis client for `url`, or why it cannot be one.
fn open_redis(
    url: &str,
    timeout: std::time::Duration,
) -> std::result::Result<crate::fleet::Redis, String> {
    let scheme = url.split("://").next().unwrap_or("");
    if !matches!(scheme, "redis" | "rediss") || !url.contains("://") {
        return Err(format!(
            "the state URL {} is not a redis:// or rediss:// URL, so shared limits cannot be enforced",
            crate::fleet::redact(url)
        ));
    }
    crate::fleet::Redis::new(url, timeout).map_err(|e| e.to_string())
}

fn warn_bad_env(name: &str, raw: &str) {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.iter().any(|n| n == name) {
        seen.push(name.to_string());
        eprintln!("gathm: warning: ignoring {name}={raw:?}: not a valid value");
    }
}

impl Settings {
    /// Read from the environment.
    pub fn from_env() -> Settings {
        Settings {
            cache_enabled: std::env::var("GATHM_CACHE_ENABLED")
                .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
                .unwrap_or(true),
            cache_ttl: env_parse("GATHM_CACHE_DEFAULT_TTL").unwrap_or(300),
            cache_everything: env_parse::<u64>("GATHM_CACHE_DEFAULT_TTL").is_some(),
            max_output: env_parse::<f64>("GATHM_MAX_OUTPUT_MB")
                .filter(|n| *n > 0.0 && *n <= 65_536.0)
                .map_or(16 << 20, |mb| (mb * 1048576.0) as usize),
            breaker: breaker::Config {
                threshold: env_parse("CB_FAILURE_THRESHOLD")
                    .filter(|n| *n > 0)
                    .unwrap_or(3),
                recovery_timeout: env_seconds("CB_RECOVERY_TIMEOUT", false, 60.0),
            },
            max_fallback_depth: env_parse("GATHM_MAX_FALLBACK_DEPTH").unwrap_or(3),
            default_timeout: env_seconds("GATHM_DEFAULT_TIMEOUT", true, 120.0),
            kill_grace: env_seconds("GATHM_KILL_GRACE", false, 2.0),
        }
    }
}

/// The lazily chosen shared-state backend.
#[derive(Default)]
struct SharedCell(std::sync::OnceLock<Arc<dyn crate::state::shared::SharedState>>);

impl std::fmt::Debug for SharedCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(s) => write!(f, "SharedCell({:?})", s.backend()),
            None => write!(f, "SharedCell(not yet chosen)"),
        }
    }
}

/// Parsed policies and the stamp of the file they came from (`None`: built in).
type CachedPolicies = (Option<[i64; 6]>, Arc<Policies>);

/// Everything an operation needs.
#[derive(Debug)]
pub struct Context {
    /// State layout.
    pub home: Home,
    /// Tool search path.
    pub search: SearchPath,
    /// Where the policies come from.
    pub policy_source: Source,
    policies: Mutex<Option<CachedPolicies>>,
    /// Log writer.
    pub logger: Logger,
    /// Environment settings.
    pub settings: Settings,
    /// `--config` (else `GATHM_CONFIG`, `$GATHM_HOME/config.yaml`, `./gathm.yaml`).
    config_path: Option<PathBuf>,
    config: std::sync::OnceLock<LoadedConfig>,
    state_url: Option<String>,
    shared: SharedCell,
}

/// The configuration file as loaded: where it is (if anywhere) and its
/// contents, or every problem with it.
pub type LoadedConfig = std::result::Result<
    Option<(PathBuf, crate::schedule::file::ConfigFile)>,
    Vec<crate::manifest::Diagnostic>,
>;

/// The top level of `gathm.yaml` as far as the shared state is concerned:
/// the other sections are only checked to be there by name (as the full
/// loader's `deny_unknown_fields` does), not parsed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateOnly {
    #[serde(default)]
    #[allow(dead_code)]
    schedules: serde::de::IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    groups: serde::de::IgnoredAny,
    #[serde(default)]
    state: crate::schedule::file::StateConfig,
}

/// The `state:` section of the configuration file at `path`, through the
/// parse cache under `files_dir`. Every `gathm run` needs it (breakers and
/// limits may live in Redis), and loading the whole file validates each
/// schedule's cron expression and time zone (jiff reads the whole
/// zoneinfo directory): about 3.6 M instructions, 1 ms, per run. A file
/// that cannot be read or whose top level or `state:` is malformed is an
/// error, so the caller fails closed.
fn state_section(
    files_dir: &Path,
    path: &Path,
) -> std::result::Result<crate::schedule::file::StateConfig, String> {
    let parse = |bytes: &[u8]| -> std::result::Result<crate::schedule::file::StateConfig, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| crate::manifest::utf8_error(path, bytes, &e).to_string())?;
        if text.trim().is_empty() {
            return Ok(Default::default());
        }
        serde_saphyr::from_str::<StateOnly>(text)
            .map(|s| s.state)
            .map_err(|e| crate::manifest::yaml_diag(path, &e).to_string())
    };
    let io_err = |e: std::io::Error| {
        format!(
            "{}: cannot read the configuration file: {e}",
            path.display()
        )
    };
    match crate::parsed::load(Some(files_dir), path, parse, io_err)? {
        Some((s, _)) => Ok(s),
        None => Err(format!(
            "{}: cannot read the configuration file: not found",
            path.display()
        )),
    }
}

impl Context {
    /// Resolve from command-line values and the environment.
    pub fn new(tools_dirs: &[PathBuf], policies_file: Option<&Path>) -> Context {
        let home = Home::from_env();
        let search = SearchPath::new(
            tools_dirs,
            std::env::var("GATHM_TOOLS_PATH").ok().as_deref(),
            home.tools(),
        )
        .with_index(home.manifest_index());
        let policy_source = policy::locate(
            policies_file,
            std::env::var("GATHM_POLICIES").ok().as_deref(),
            &home.policies(),
        );
        Context {
            logger: Logger::new(&home),
            home,
            search,
            policy_source,
            policies: Mutex::new(None),
            settings: Settings::from_env(),
            config_path: None,
            config: std::sync::OnceLock::new(),
            state_url: None,
            shared: SharedCell::default(),
        }
    }

    /// Use this shared-state URL (`--state-url`) whatever the environment says.
    pub fn with_state_url(mut self, url: Option<String>) -> Context {
        if url.is_some() {
            self.state_url = url;
        }
        self
    }

    /// Where the shared state lives: `--state-url`, else `GATHM_STATE_URL`,
    /// else `state.url` in the configuration file; `None` (or an empty
    /// value) is the embedded store under `GATHM_HOME`.
    pub fn state_url(&self) -> Option<String> {
        self.state_url_checked().unwrap_or_default()
    }

    /// [`state_url`](Self::state_url), or why it cannot be known: a
    /// configuration file that does not load (it might name a Redis, so
    /// the embedded store is not assumed).
    fn state_url_checked(&self) -> std::result::Result<Option<String>, String> {
        if let Some(u) = &self.state_url {
            return Ok(Some(u.clone()).filter(|u| !u.trim().is_empty()));
        }
        if let Ok(u) = std::env::var("GATHM_STATE_URL") {
            return Ok(Some(u).filter(|u| !u.trim().is_empty()));
        }
        // A loaded configuration says it all; otherwise read only `state:`.
        if let Some(loaded) = self.config.get() {
            return match loaded {
                Ok(Some((_, c))) => Ok(c.state.url.clone().filter(|u| !u.trim().is_empty())),
                Ok(None) => Ok(None),
                Err(d) => Err(format!(
                    "the configuration file is invalid, so where the shared state lives is unknown: {}",
                    d.first().map(ToString::to_string).unwrap_or_default()
                )),
            };
        }
        let Some(path) =
            crate::schedule::file::locate(self.config_path.as_deref(), &self.home.root)
        else {
            return Ok(None);
        };
        match state_section(&self.home.root.join("index").join("files"), &path) {
            Ok(s) => Ok(s.url.filter(|u| !u.trim().is_empty())),
            Err(e) => Err(format!(
                "the configuration file is invalid, so where the shared state lives is unknown: {e}"
            )),
        }
    }

    /// Use this configuration file (`--config`) instead of looking for one.
    pub fn with_config(mut self, path: Option<PathBuf>) -> Context {
        self.config_path = path;
        self
    }

    /// The configuration file given by `--config`, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The configuration file (`gathm.yaml`), loaded once: `Ok(None)` when
    /// there is none; a file named by `--config` or `GATHM_CONFIG` that
    /// cannot be read is an error.
    pub fn config(&self) -> &LoadedConfig {
        self.config.get_or_init(|| {
            match crate::schedule::file::locate(self.config_path.as_deref(), &self.home.root) {
                None => Ok(None),
                Some(p) => crate::schedule::file::load(&p).map(|c| Some((p, c))),
            }
        })
    }

    /// The shared state (breakers, rate limits, group slots), built on first
    /// use: the embedded store under `GATHM_HOME`, or Redis when
    /// [`state_url`](Self::state_url) names one. Nothing connects here: the
    /// first operation does, with a short timeout
    /// (`GATHM_STATE_CONNECT_TIMEOUT`, default 1 s). A URL that is not a
    /// Redis URL gives a backend whose every operation fails (closed).
    pub fn shared(&self) -> &Arc<dyn crate::state::shared::SharedState> {
        use crate::state::shared::{Broken, Fallback, Local};
        self.shared.0.get_or_init(|| {
            let local = Local::new(&self.home);
            let url = match self.state_url_checked() {
                Ok(Some(url)) => url,
                Ok(None) => return Arc::new(local),
                Err(why) => {
                    return Arc::new(Broken {
                        kind: "unknown",
                        why,
                        location: "(gathm.yaml is invalid)".into(),
                    });
                }
            };
            let timeout = std::time::Duration::from_secs_f64(env_seconds(
                "GATHM_STATE_CONNECT_TIMEOUT",
                true,
                1.0,
            ));
            let primary: Arc<dyn crate::state::shared::SharedState> =
                match open_redis(&url, timeout) {
                    Ok(r) => Arc::new(crate::fleet::shared::RedisShared::new(r, lease_ttl())),
                    Err(why) => Arc::new(Broken {
                        kind: "redis",
                        why,
                        location: crate::fleet::redact(&url),
                    }),
                };
            match std::env::var("GATHM_STATE_FALLBACK").as_deref() {
                Ok("local") => Arc::new(Fallback::new(primary, local)),
                Ok("") | Ok("none") | Err(_) => primary,
                Ok(other) => {
                    warn_bad_env("GATHM_STATE_FALLBACK", other);
                    primary
                }
            }
        })
    }

    /// The text of the effective policies file.
    pub fn policies_text(&self) -> Result<(PathBuf, String)> {
        match &self.policy_source {
            Source::Builtin => Ok((
                PathBuf::from("(built-in policies.yaml)"),
                policy::DEFAULT_POLICIES.to_string(),
            )),
            Source::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| {
                    Error::InvalidData(format!("cannot read policies {}: {e}", p.display()))
                })?;
                match String::from_utf8(bytes) {
                    Ok(t) => Ok((p.clone(), t)),
                    Err(e) => Err(Error::InvalidData(
                        crate::manifest::utf8_error(p, e.as_bytes(), &e.utf8_error()).to_string(),
                    )),
                }
            }
        }
    }

    /// The effective policies; an invalid file is an `InvalidData` error.
    ///
    /// A policies file is re-checked on every call by its stamp (one `stat`)
    /// and re-read when it changed, so a long-running `gathm serve` picks up
    /// edits without a restart, as the reference's API did. Parsing goes
    /// through the JSON cache of `parsed.rs`.
    pub fn policies(&self) -> Result<Arc<Policies>> {
        let mut cached = self.policies.lock().unwrap_or_else(|e| e.into_inner());
        let Source::File(path) = &self.policy_source else {
            if let Some((_, p)) = cached.as_ref() {
                return Ok(Arc::clone(p));
            }
            let p = Arc::new(Policies::builtin());
            *cached = Some((None, Arc::clone(&p)));
            return Ok(p);
        };
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| crate::parsed::stamp(&m));
        if let Some((s, p)) = cached.as_ref()
            && stamp.is_some()
            && *s == stamp
        {
            return Ok(Arc::clone(p));
        }
        let files_dir = self.home.root.join("index").join("files");
        let parse = |bytes: &[u8]| -> std::result::Result<Policies, String> {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| crate::manifest::utf8_error(path, bytes, &e).to_string())?;
            let p = policy::parse(path, text).map_err(|d| d.to_string())?;
            match policy::check(path, text, &p).first() {
                Some(problem) => Err(problem.to_string()),
                None => Ok(p),
            }
        };
        match crate::parsed::load(Some(&files_dir), path, parse, |e| e.to_string()) {
            Ok(Some((p, _))) => {
                let p = Arc::new(p);
                *cached = Some((stamp, Arc::clone(&p)));
                Ok(p)
            }
            Ok(None) => Err(Error::InvalidData(format!(
                "cannot read policies {}: not found",
                path.display()
            ))),
            Err(e) => Err(Error::InvalidData(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> std::result::Result<Option<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gathm.yaml");
        std::fs::write(&path, text).unwrap();
        state_section(&dir.path().join("index"), &path).map(|s| s.url)
    }

    #[test]
    fn the_state_section_is_read_without_validating_schedules() {
        // A schedule the full loader rejects (cron and zone) does not hide
        // where the shared state lives.
        let text = "schedules:\n  - name: bad\n    cron: 'not a cron'\n    timezone: Nowhere/City\n    tool: noop\ngroups:\n  gpu: {max_concurrent: 2}\nstate:\n  url: redis://127.0.0.1:6379/0\n";
        let path = Path::new("gathm.yaml");
        assert!(crate::schedule::file::parse(path, text).is_err());
        assert_eq!(section(text), Ok(Some("redis://127.0.0.1:6379/0".into())));
        assert_eq!(section("schedules: []\n"), Ok(None));
        assert_eq!(section(""), Ok(None));
    }

    #[test]
    fn a_malformed_top_level_or_state_section_is_an_error() {
        let e = section("stat:\n  url: redis://x\n").unwrap_err();
        assert!(e.contains("stat"), "{e}");
        assert!(section("state:\n  url: [not, a, string]\n").is_err());
        assert!(section("state:\n  ur1: redis://x\n").is_err());
        assert!(section("state: [\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = state_section(dir.path(), &dir.path().join("absent.yaml")).unwrap_err();
        assert!(e.contains("cannot read the configuration file"), "{e}");
    }

    #[test]
    fn the_state_reader_accepts_every_top_level_key_of_the_full_file() {
        // A key added to `ConfigFile` must be added to `StateOnly` too, or
        // every run would fail closed on a file that uses it.
        let full = serde_json::to_string(&crate::schedule::file::ConfigFile::default()).unwrap();
        assert_eq!(section(&full), Ok(None), "{full}");
    }

    #[test]
    fn the_state_section_is_served_from_the_parse_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gathm.yaml");
        std::fs::write(&path, "state:\n  url: redis://a\n").unwrap();
        let index = dir.path().join("index");
        assert_eq!(
            state_section(&index, &path).unwrap().url.as_deref(),
            Some("redis://a")
        );
        assert_eq!(std::fs::read_dir(&index).unwrap().count(), 1);
        assert_eq!(
            state_section(&index, &path).unwrap().url.as_deref(),
            Some("redis://a")
        );
        // An edit (a new stamp) is re-read.
        std::fs::write(&path, "state:\n  url: redis://bb\n").unwrap();
        assert_eq!(
            state_section(&index, &path).unwrap().url.as_deref(),
            Some("redis://bb")
        );
    }
}
