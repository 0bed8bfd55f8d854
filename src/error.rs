//! The typed error of gathm and the one mapping from errors and outcomes to exit codes.

use std::path::PathBuf;

/// Exit codes, documented in `--help`, the README and PRODUCT.md §3.
pub mod code {
    /// The tool (or a fallback) succeeded.
    pub const OK: u8 = 0;
    /// Usage error (bad command line).
    pub const USAGE: u8 = 2;
    /// Invalid manifest, policies or pipeline file.
    pub const DATA_ERR: u8 = 65;
    /// Circuit open and no fallback could run.
    pub const UNAVAILABLE: u8 = 69;
    /// Rate limited: try again later.
    pub const TEMP_FAIL: u8 = 75;
    /// Denied by policy, or approval required.
    pub const NO_PERM: u8 = 77;
    /// Timed out; the whole process group was killed.
    pub const TIMEOUT: u8 = 124;
    /// gathm itself failed.
    pub const INTERNAL: u8 = 125;
    /// The tool's output exceeded the capture limit (`GATHM_MAX_OUTPUT_MB`).
    pub const OUTPUT_LIMIT: u8 = 125;
    /// Tool found but cannot be executed.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// Tool not found.
    pub const NOT_FOUND: u8 = 127;
    /// Interrupted (SIGINT/SIGTERM).
    pub const INTERRUPTED: u8 = 130;
}

/// The text of the exit-code table, shared by `--help` and the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    the tool or a fallback succeeded
  N    the last tool that ran failed with code N
  2    usage error
  65   invalid manifest, policies or pipeline file
  69   circuit open and no fallback could run
  75   rate limited (try again later)
  77   denied by policy, or approval required
  124  timed out (the whole process group was killed)
  125  gathm itself failed, or the output exceeded GATHM_MAX_OUTPUT_MB
       (reason output_limit)
  126  tool found but cannot be executed
  127  tool not found
  130  interrupted";

/// Errors raised by gathm's own operations (not by the tools it runs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line usage that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// A manifest, policies or pipeline file that does not parse or validate.
    #[error("{0}")]
    InvalidData(String),
    /// A tool that is not on the search path.
    #[error("{0}")]
    NotFound(String),
    /// Denied by policy.
    #[error("{0}")]
    Denied(String),
    /// An I/O failure on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The shared state (Redis) cannot be reached or refused the operation;
    /// the message names the URL (without its password) and the cause.
    #[error("{0}")]
    StateUnavailable(String),
    /// Anything else that went wrong inside gathm.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Build an I/O error that names the path and what was being attempted.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether this is a full filesystem (ENOSPC or EDQUOT).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(c) if c == rustix::io::Errno::NOSPC.raw_os_error() || c == rustix::io::Errno::DQUOT.raw_os_error()))
    }

    /// The one mapping from an error to an exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => code::USAGE,
            Error::InvalidData(_) => code::DATA_ERR,
            Error::NotFound(_) => code::NOT_FOUND,
            Error::Denied(_) => code::NO_PERM,
            Error::StateUnavailable(_) => code::TEMP_FAIL,
            Error::Io { .. } | Error::Internal(_) => code::INTERNAL,
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
