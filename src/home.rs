//! The layout of the state directory: `GATHM_HOME` and its named sub-paths.
//!
//! Only paths are computed here; reading and writing goes through `state`.

use std::path::{Path, PathBuf};

/// Resolved locations of gathm's state.
#[derive(Debug, Clone)]
pub struct Home {
    /// `GATHM_HOME` (default `~/.gathm`).
    pub root: PathBuf,
    /// `GATHM_LOG_DIR` or `<root>/logs`.
    pub logs: PathBuf,
    /// `GATHM_CACHE_DIR` or `<root>/cache`.
    pub cache: PathBuf,
    /// `GATHM_HEALTH_DIR` or `<root>/health` (circuit-breaker state).
    pub health: PathBuf,
    /// `<root>/ratelimit`.
    pub ratelimit: PathBuf,
    /// `<root>/jobs`.
    pub jobs: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Home {
    /// Resolve from the environment.
    pub fn from_env() -> Home {
        let root = env_path("GATHM_HOME").unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".gathm")
        });
        Home::with_overrides(
            root,
            env_path("GATHM_LOG_DIR"),
            env_path("GATHM_CACHE_DIR"),
            env_path("GATHM_HEALTH_DIR"),
        )
    }

    /// Build a layout from a root and optional overrides.
    pub fn with_overrides(
        root: PathBuf,
        logs: Option<PathBuf>,
        cache: Option<PathBuf>,
        health: Option<PathBuf>,
    ) -> Home {
        Home {
            logs: logs.unwrap_or_else(|| root.join("logs")),
            cache: cache.unwrap_or_else(|| root.join("cache")),
            health: health.unwrap_or_else(|| root.join("health")),
            ratelimit: root.join("ratelimit"),
            jobs: root.join("jobs"),
            root,
        }
    }

    /// `<root>/tools`, the last entry of the tool search path.
    pub fn tools(&self) -> PathBuf {
        self.root.join("tools")
    }

    /// `<root>/policies.yaml`.
    pub fn policies(&self) -> PathBuf {
        self.root.join("policies.yaml")
    }

    /// A log file by name (`gathm.log`, `audit.log`, `metrics.log`).
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// The directory holding one tool's cache entries.
    pub fn cache_dir_of(&self, tool: &str) -> PathBuf {
        self.cache.join(tool)
    }

    /// The manifest index (a cache of parsed manifests for full scans).
    pub fn manifest_index(&self) -> PathBuf {
        self.root.join("index").join("manifests.json")
    }

    /// `<root>/work`: the isolated workspaces, one directory per run.
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// The directory of one job.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.jobs.join(id)
    }
}

/// Display a path relative to nothing: helper for messages.
pub fn show(path: &Path) -> String {
    path.display().to_string()
}
