//! gathm: discover tools described by `tool.yaml` manifests and run them
//! behind a persisted circuit breaker, fallback chains, a result cache, role
//! policies and rate limits, with audit logs. See ARCHITECTURE.md for the map.

#![recursion_limit = "256"]
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod ask;
pub mod breaker;
pub mod cache;
pub mod chain;
pub mod chat;
pub mod checks;
pub mod cli;
pub mod client;
pub mod clock;
pub mod complete;
pub mod config;
pub mod error;
pub mod fallback;
pub mod fleet;
pub mod health;
pub mod home;
pub mod init;
pub mod jobs;
pub mod jsonline;
pub mod logs;
pub mod manifest;
pub mod mcp;
pub mod monitor;
pub mod newtool;
pub mod ops;
pub mod output;
pub mod parallel;
pub mod parsed;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod registry;
pub mod retry;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod schema;
pub mod serve;
pub mod slots;
pub mod state;
pub mod table;
pub mod views;
pub mod words;
pub mod workspace;
pub mod yamlspan;

// The job store counts executions; `crate::metrics` keeps its path stable.
pub use serve::metrics;

pub use app::{entry, main};
